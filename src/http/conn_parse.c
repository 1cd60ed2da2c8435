/* http/conn_parse: http_parser's callbacks for a connection. They record where the request
 * target, each header and the body lie in the connection's input buffer (offsets: the buffer may
 * grow or shift while the request arrives), terminate the strings in place once the head is
 * complete, join a chunked body in place, and stop a request at the first limit it passes. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http/conn_internal.h"
#include "http/h2.h"
#include "metrics.h"

static struct conn *conn_of(http_parser *p) { return p->data; }

/* Records that [at, at+len) belongs to *sp. -1 once the head passes --max_header (a request that
 * arrived whole is parsed in one go, so the size is checked here, not only between reads). */
static int extend(struct span *sp, struct conn *c, const char *at, size_t len)
{
    uint32_t off = (uint32_t)(at - c->in);
    if (sp->off == 0)
        sp->off = off;
    sp->len = off + (uint32_t)len - sp->off;
    if (off + len - c->req_start > c->server->cfg->max_header) {
        c->fail_status = 431;
        c->fail_message = "request head is too large";
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->begun = true;
    memset(&c->url, 0, sizeof c->url);
    c->nheaders = 0;
    c->last_was_value = false;
    c->head_done = false;
    c->body_off = c->body_len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    return extend(&c->url, c, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->nheaders == 0 || c->last_was_value) {
        if (c->nheaders == MAX_HEADERS) {
            c->fail_status = 431;
            c->fail_message = "too many request headers";
            return -1;
        }
        memset(&c->headers[c->nheaders++], 0, sizeof c->headers[0]);
        c->last_was_value = false;
    }
    return extend(&c->headers[c->nheaders - 1].name, c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    c->last_was_value = true;
    /* An empty value ("X-Empty:") comes as a call of length 0 pointing at the next header's name:
     * recorded, finish_headers would write its terminating NUL over that name's first byte. */
    if (len == 0)
        return 0;
    return extend(&c->headers[c->nheaders - 1].value, c, at, len);
}

/* Terminates every header name and value in place. A value that spans lines (obsolete folding)
 * is refused (RFC 9112 §5.2 allows that), so no value ever holds CR or LF. */
static int finish_headers(struct conn *c)
{
    for (int i = 0; i < c->nheaders; i++) {
        struct header_span *h = &c->headers[i];
        c->in[h->name.off + h->name.len] = '\0'; /* the ':' */
        if (h->value.off == 0)
            continue;
        char *v = c->in + h->value.off;
        size_t len = h->value.len;
        if (memchr(v, '\r', len) || memchr(v, '\n', len))
            return -1;
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        v[len] = '\0'; /* trailing blank, or the CR of the line */
    }
    return 0;
}

static const char *find_header(const struct conn *c, const struct header_span *h, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcasecmp(c->in + h[i].name.off, name) == 0)
            return h[i].value.off ? c->in + h[i].value.off : "";
    }
    return NULL;
}

const char *http_header(const struct http_request *req, const char *name)
{
    if (req->h2)
        return h2_header(req, name);
    const struct pending *p = (const struct pending *)req;
    return find_header(req->conn, p->headers, p->nheaders, name);
}

/* "Expect: 100-continue" (curl sends it for bodies over 1 KiB): say go on, when nothing else is
 * in the queue (an interim answer must not overtake earlier ones; the client then just sends the
 * body after its own short wait). A body over --max_body never gets here: it is refused unread. */
static void maybe_continue(struct conn *c)
{
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const char *expect = find_header(c, c->headers, c->nheaders, "Expect");
    if (!expect || strcasecmp(expect, "100-continue") != 0 || c->queue || c->parser.http_minor < 1 ||
        c->parser.content_length == 0 || c->parser.content_length == ULLONG_MAX)
        return;
    conn_enqueue_interim(c, go_on, sizeof go_on - 1); /* progress() writes it after this parse */
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->head_done = true;
    if (p->http_major != 1) {
        c->fail_status = 505;
        c->fail_message = "only HTTP/1.0 and HTTP/1.1 are spoken here";
        return -1;
    }
    if (c->url.off)
        c->in[c->url.off + c->url.len] = '\0'; /* the space before the version */
    if (finish_headers(c) != 0) {
        c->fail_status = 400;
        c->fail_message = "malformed request header (folded or with a line break)";
        return -1;
    }
    if (p->content_length != ULLONG_MAX && p->content_length > c->server->cfg->max_body) {
        c->fail_status = 413;
        c->fail_message = "request body is too large";
        return -1;
    }
    maybe_continue(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->body_len + len > c->server->cfg->max_body) {
        c->fail_status = 413;
        c->fail_message = "request body is too large";
        return -1;
    }
    if (c->body_len == 0 && c->body_off == 0)
        c->body_off = (size_t)(at - c->in);
    char *dst = c->in + c->body_off + c->body_len;
    if (dst != at)
        memmove(dst, at, len); /* joins a chunked body; only over bytes already parsed */
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->message_done = true;
    http_parser_pause(p, 1); /* the next request waits in the buffer until this one is out */
    return 0;
}

/* A pending request for what the parser holds now (all of it when complete, else what is known). */
struct pending *conn_new_pending(struct conn *c)
{
    int n = c->head_done ? c->nheaders : 0;
    struct pending *p = calloc(1, sizeof *p + (size_t)n * sizeof p->headers[0]);
    if (!p)
        return NULL;
    memcpy(p->headers, c->headers, (size_t)n * sizeof p->headers[0]);
    p->nheaders = n;
    p->http_minor = c->head_done ? c->parser.http_minor : 1;
    struct http_request *r = &p->req;
    r->conn = c;
    r->method = c->head_done ? (int)c->parser.method : -1;
    r->body = "";
    r->peer = c->peer;
    r->address = c->address;
    r->route = ROUTE_OTHER;
    return p;
}

/* Fills the target and body of req from the parsed request. -1 when the target is not a URL. */
int conn_fill_target(struct conn *c, struct http_request *r)
{
    if (c->url.off == 0)
        return -1;
    char *url = c->in + c->url.off;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, c->url.len, c->parser.method == HTTP_CONNECT, &u) != 0)
        return -1;
    if (u.field_set & (1 << UF_QUERY)) {
        r->query = url + u.field_data[UF_QUERY].off;
        url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
    }
    if (u.field_set & (1 << UF_PATH)) {
        r->path = url + u.field_data[UF_PATH].off;
        url[u.field_data[UF_PATH].off + u.field_data[UF_PATH].len] = '\0'; /* the '?', if any */
    } else {
        r->path = "/";
    }
    if (c->body_len)
        r->body = c->in + c->body_off;
    r->body_len = c->body_len;
    return 0;
}

const http_parser_settings conn_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
