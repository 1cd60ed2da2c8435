/* http/conn: one client connection, from accept to close, as a small state machine:
 *
 *   HANDSHAKE (TLS) -> READ -> BUSY -> WRITE -> READ ...      (keep-alive, pipelining)
 *                                          \-> LINGER -> freed (closing after an answer)
 *                             BUSY -> GONE                   (the handler took the stream)
 *
 * Input accumulates in one buffer per connection; http_parser marks where the request target,
 * the headers and the body lie in it (offsets, so the buffer may grow while a request arrives),
 * and the strings are terminated in place once the head is complete: no copies per header. A
 * chunked body is joined in place too. While a request is in its handler the buffer never moves:
 * pipelined bytes are read only into the room left, then reading pauses.
 *
 * One timer per connection carries the deadline of the current state: the head of a request
 * (--header_timeout from its first byte, or from the accept), the rest of it (--request_timeout),
 * an idle keep-alive connection, an answer the client does not read, a lingering close. The
 * durations are libevent "common timeouts", so arming one costs no heap operation. */
#include "http/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "http/peer_limit.h"
#include "http/transport.h"
#include "log.h"
#include "metrics.h"

#define INPUT_INITIAL 4096
#define READ_ROOM_MIN 1024
#define MAX_HEADERS 100
/* Requests handled for one connection per loop turn, so a pipelining client cannot hold the loop. */
#define REQUESTS_PER_TURN 32
/* How long a closing connection waits for the client to read the answer and close its side. */
#define LINGER_SECONDS 2

enum conn_state { S_HANDSHAKE, S_READ, S_BUSY, S_WRITE, S_LINGER, S_GONE };
enum deadline { DL_NONE, DL_IDLE, DL_HEAD, DL_BODY, DL_WRITE, DL_LINGER };

struct span {
    uint32_t off, len; /* off 0 = unset: offset 0 is always the method, never a field */
};

struct header_span {
    struct span name, value;
};

struct conn {
    struct conn *prev, *next;
    struct http_server *server;
    struct transport t;
    struct event rd, wr, timer;
    enum conn_state state;
    enum deadline deadline;
    bool in_handler;  /* on_request / on_refusal is running on our stack */
    bool closing;     /* close once the current answer is written */
    bool socket_gone; /* the socket is closed; the struct waits for the handler's answer */
    bool read_paused; /* rd removed: buffer full while a request is out, or the peer's EOF */
    bool write_armed;
    bool head_done, message_done, last_was_value;
    int fail_status;
    const char *fail_message;
    http_parser parser;

    /* input: bytes [0, in_len) buffered, [0, parsed) consumed; a request always starts at 0 */
    char *in;
    size_t in_len, in_cap, parsed;
    struct span url;
    struct header_span headers[MAX_HEADERS];
    int nheaders;
    size_t body_off, body_len;

    /* output: [out_off, out_len) still to write */
    char *out;
    size_t out_len, out_off, out_cap;
    /* response headers added by the handler, already "Name: value\r\n" */
    char *extra;
    size_t extra_len, extra_cap;

    struct http_request req;
    char peer[64];
    char address[INET6_ADDRSTRLEN];
};

static bool progress(struct conn *c);

/* ---- small helpers ---- */

static size_t input_limit(const struct conn *c)
{
    /* head + body, plus room for the framing of a chunked body */
    return c->server->cfg->max_header + c->server->cfg->max_body + 8192;
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (reserve(buf, cap, *len + n) != 0)
        return -ENOMEM;
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

static void set_deadline(struct conn *c, enum deadline d)
{
    if (c->deadline == d)
        return;
    c->deadline = d;
    const struct http_server *s = c->server;
    const struct timeval *tv = d == DL_IDLE     ? s->idle_timeout
                             : d == DL_HEAD     ? s->head_timeout
                             : d == DL_LINGER   ? s->linger_timeout
                             : d == DL_NONE     ? NULL
                                                : s->request_timeout;
    if (tv)
        event_add(&c->timer, tv);
    else
        event_del(&c->timer);
}

static void arm_write(struct conn *c, bool on)
{
    if (on == c->write_armed)
        return;
    c->write_armed = on;
    if (on)
        event_add(&c->wr, NULL);
    else
        event_del(&c->wr);
}

static void pause_reading(struct conn *c, bool pause)
{
    if (pause == c->read_paused)
        return;
    c->read_paused = pause;
    if (pause)
        event_del(&c->rd);
    else
        event_add(&c->rd, NULL);
}

static const char *current_date(struct http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_at) {
        struct tm tm;
        s->date_at = now;
        if (!gmtime_r(&now, &tm) || strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
            strcpy(s->date, "Thu, 01 Jan 1970 00:00:00 GMT");
    }
    return s->date;
}

const char *http_status_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* ---- parsing (http_parser callbacks; data points into c->in) ---- */

static struct conn *conn_of(http_parser *p) { return p->data; }

/* Records that [at, at+len) belongs to *sp. -1 once the head passes --max_header (a request that
 * arrived whole is parsed in one go, so the size is checked here, not only between reads). */
static int extend(struct span *sp, struct conn *c, const char *at, size_t len)
{
    uint32_t off = (uint32_t)(at - c->in);
    if (sp->off == 0)
        sp->off = off;
    sp->len = off + (uint32_t)len - sp->off;
    if (off + len > c->server->cfg->max_header) {
        c->fail_status = 431;
        c->fail_message = "request head is too large";
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = conn_of(p);
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
    return extend(&c->headers[c->nheaders - 1].value, c, at, len);
}

static const char *span_text(const struct conn *c, const struct span *sp)
{
    return sp->off ? c->in + sp->off : "";
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

const char *http_header(const struct http_request *req, const char *name)
{
    const struct conn *c = req->conn;
    if (!c->head_done)
        return NULL;
    for (int i = 0; i < c->nheaders; i++) {
        if (strcasecmp(c->in + c->headers[i].name.off, name) == 0)
            return span_text(c, &c->headers[i].value);
    }
    return NULL;
}

/* "Expect: 100-continue" (curl sends it for bodies over 1 KiB): say go on (harmless if the body
 * is on its way already). The interim answer goes through the output buffer, ahead of the real
 * one. A body over --max_body never gets here: it is refused without reading it. */
static void maybe_continue(struct conn *c)
{
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const char *expect = http_header(&c->req, "Expect");
    if (!expect || strcasecmp(expect, "100-continue") != 0 || c->parser.http_major != 1 ||
        c->parser.http_minor < 1 || c->parser.content_length == 0 ||
        c->parser.content_length == ULLONG_MAX)
        return;
    if (append(&c->out, &c->out_len, &c->out_cap, go_on, sizeof go_on - 1) != 0)
        return;
    struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
    ssize_t w = transport_writev(&c->t, &iov, 1);
    if (w > 0)
        c->out_off += (size_t)w;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    else
        arm_write(c, true); /* the rest goes when the socket drains (on_writable) */
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
    http_parser_pause(p, 1); /* one request at a time: the next waits in the buffer */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- requests and answers ---- */

static void reset_request(struct conn *c)
{
    memset(&c->req, 0, sizeof c->req);
    c->req.conn = c;
    c->req.method = -1;
    c->req.body = "";
    c->req.peer = c->peer;
    c->req.address = c->address;
    c->req.route = ROUTE_OTHER;
    c->extra_len = 0;
}

/* Fills req from the parsed head. -1 when the target is not a URL we can route. */
static int fill_request(struct conn *c)
{
    struct http_request *r = &c->req;
    r->method = c->parser.method;
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

static void run_handler(struct conn *c, int status, const char *message)
{
    struct http_server *s = c->server;
    c->state = S_BUSY;
    set_deadline(c, DL_NONE);
    c->in_handler = true;
    if (status)
        s->on_refusal(&c->req, status, message, s->arg);
    else
        s->on_request(&c->req, s->arg);
    c->in_handler = false;
}

/* The server refuses the request by itself; the connection closes after the answer. */
static void refuse(struct conn *c, int status, const char *message)
{
    c->closing = true;
    pause_reading(c, true); /* whatever else comes is not read now; the linger drains it */
    run_handler(c, status, message);
}

static void dispatch(struct conn *c)
{
    c->message_done = false;
    if (fill_request(c) != 0) {
        refuse(c, 400, "malformed request target");
        return;
    }
    if (!http_should_keep_alive(&c->parser) || c->parser.upgrade || c->server->draining)
        c->closing = true;
    run_handler(c, 0, NULL);
}

void http_add_header(struct http_request *req, const char *name, const char *value)
{
    struct conn *c = req->conn;
    size_t nl = strlen(name), vl = strlen(value);
    if (reserve(&c->extra, &c->extra_cap, c->extra_len + nl + vl + 4) != 0)
        return; /* out of memory: the answer goes without this header */
    memcpy(c->extra + c->extra_len, name, nl);
    memcpy(c->extra + c->extra_len + nl, ": ", 2);
    memcpy(c->extra + c->extra_len + nl + 2, value, vl);
    memcpy(c->extra + c->extra_len + nl + 2 + vl, "\r\n", 2);
    c->extra_len += nl + vl + 4;
}

/* Writes the status line and the common headers into the output buffer. */
static int put_head(struct conn *c, int status, const char *content_type, size_t content_length,
                    bool stream)
{
    char head[320];
    const char *connection = c->closing || stream ? "Connection: close\r\n"
                           : c->parser.http_minor == 0 ? "Connection: keep-alive\r\n" : "";
    int n;
    if (stream || status == 204) /* 204: no body, so no Content-Length either (RFC 9110) */
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nDate: %s\r\n%s", status,
                     http_status_phrase(status), current_date(c->server), connection);
    else
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s",
                     status, http_status_phrase(status), current_date(c->server), content_type,
                     content_length, connection);
    if (n < 0 || (size_t)n >= sizeof head)
        return -EINVAL;
    return append(&c->out, &c->out_len, &c->out_cap, head, (size_t)n);
}

void http_reply(struct http_request *req, int status, const char *content_type, const char *body,
                size_t len)
{
    struct conn *c = req->conn;
    if (c->state != S_BUSY)
        return; /* answered twice: a bug, but not one worth a crash */
    if (req->route >= 0 && req->route < ROUTE_COUNT)
        metrics_count_request(c->server->metrics, (enum metric_route)req->route, status);
    if (c->socket_gone) {
        c->state = S_GONE;
        if (!c->in_handler)
            (void)progress(c);
        return;
    }
    /* A HEAD answer says how long the body would be, without it. */
    bool with_body = c->req.method != HTTP_HEAD && status != 204;
    if (put_head(c, status, content_type, len, false) != 0 ||
        append(&c->out, &c->out_len, &c->out_cap, c->extra, c->extra_len) != 0 ||
        append(&c->out, &c->out_len, &c->out_cap, "\r\n", 2) != 0 ||
        (with_body && append(&c->out, &c->out_len, &c->out_cap, body, len) != 0)) {
        log_error("http: out of memory answering %s; closing the connection", c->peer);
        c->out_len = c->out_off = 0;
        c->closing = true;
        c->state = S_GONE; /* nothing sensible can be sent */
        transport_close(&c->t);
        c->socket_gone = true;
    } else {
        c->state = S_WRITE;
    }
    if (!c->in_handler)
        (void)progress(c);
}

int http_take_stream(struct http_request *req, const char *const headers[][2], size_t n,
                     struct transport *out, char **head, size_t *head_len)
{
    struct conn *c = req->conn;
    size_t saved = c->out_len;
    if (c->state != S_BUSY || c->socket_gone)
        return -EINVAL;
    int rc = put_head(c, 200, NULL, 0, true);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = append(&c->out, &c->out_len, &c->out_cap, headers[i][0], strlen(headers[i][0]));
        if (rc == 0)
            rc = append(&c->out, &c->out_len, &c->out_cap, ": ", 2);
        if (rc == 0)
            rc = append(&c->out, &c->out_len, &c->out_cap, headers[i][1], strlen(headers[i][1]));
        if (rc == 0)
            rc = append(&c->out, &c->out_len, &c->out_cap, "\r\n", 2);
    }
    if (rc == 0)
        rc = append(&c->out, &c->out_len, &c->out_cap, c->extra, c->extra_len);
    if (rc == 0)
        rc = append(&c->out, &c->out_len, &c->out_cap, "\r\n", 2);
    char *text = rc == 0 ? malloc(c->out_len - c->out_off + 1) : NULL;
    if (!text) {
        c->out_len = saved;
        return -ENOMEM;
    }
    /* A 100 Continue still unsent goes first: it belongs to the stream's bytes too. */
    *head_len = c->out_len - c->out_off;
    memcpy(text, c->out + c->out_off, *head_len);
    text[*head_len] = '\0';
    *head = text;
    c->out_len = c->out_off = 0;
    metrics_count_request(c->server->metrics, (enum metric_route)req->route, 200);
    /* The socket changes hands: our events go, the hub registers its own. */
    event_del(&c->rd);
    arm_write(c, false);
    set_deadline(c, DL_NONE);
    *out = c->t;
    out->want_write = false;
    c->t.fd = -1;
    c->t.ssl = NULL;
    c->t.slot = NULL;
    c->state = S_GONE;
    if (!c->in_handler)
        (void)progress(c);
    return 0;
}

/* ---- I/O ---- */

/* Reads what the socket has into the input buffer: 1 read something, 0 nothing (yet), -1 failed.
 * *eof: the client closed its side (what came before it is in the buffer). While a request is
 * out (grow false) the buffer does not move: reading pauses when its room is used up. */
static int read_input(struct conn *c, bool grow, bool *eof)
{
    *eof = false;
    int got = 0;
    for (int rounds = 0; rounds < 8; rounds++) {
        if (c->in_cap - c->in_len < READ_ROOM_MIN) {
            size_t limit = input_limit(c);
            if (!grow || c->in_cap >= limit) {
                if (c->in_cap == c->in_len) {
                    if (grow)
                        return got; /* full at the limit: the parser decides (431/413) */
                    pause_reading(c, true);
                    return got;
                }
            } else {
                size_t cap = c->in_cap ? c->in_cap * 2 : INPUT_INITIAL;
                char *p = realloc(c->in, cap > limit ? limit : cap);
                if (!p)
                    return -1;
                c->in = p;
                c->in_cap = cap > limit ? limit : cap;
            }
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n = transport_read(&c->t, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            got = 1;
            if ((size_t)n < room && !c->t.ssl)
                return got; /* a short read drained the socket; saves a recv that says EAGAIN */
            continue;
        }
        if (n == 0) {
            *eof = true;
            return got;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->t.want_write)
                arm_write(c, true);
            return got;
        }
        return -1;
    }
    event_active(&c->rd, EV_READ, 1); /* more is waiting: next turn, after the others */
    return got;
}

/* Writes the output buffer: 1 all written, 0 waiting for the socket, -1 failed. */
static int flush_output(struct conn *c)
{
    while (c->out_off < c->out_len) {
        struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
        ssize_t w = transport_writev(&c->t, &iov, 1);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                arm_write(c, c->t.want_write || !c->t.ssl);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    arm_write(c, false);
    return 1;
}

/* ---- the state machine ---- */

static void conn_free(struct conn *c)
{
    struct http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (event_initialized(&c->rd))
        event_del(&c->rd);
    if (event_initialized(&c->wr))
        event_del(&c->wr);
    if (event_initialized(&c->timer))
        event_del(&c->timer);
    transport_close(&c->t);
    free(c->in);
    free(c->out);
    free(c->extra);
    free(c);
}

/* Ends the connection now. While a handler holds the request, the struct stays (without its
 * socket) until the handler answers. */
static void conn_close(struct conn *c)
{
    if (c->state == S_BUSY) {
        event_del(&c->rd);
        arm_write(c, false);
        set_deadline(c, DL_NONE);
        transport_close(&c->t);
        c->socket_gone = true;
        return;
    }
    conn_free(c);
}

/* The answer is out: linger if closing, else make ready for the next request. */
static void finish_answer(struct conn *c)
{
    if (c->closing) {
        transport_shutdown(&c->t);
        c->state = S_LINGER;
        set_deadline(c, DL_LINGER);
        pause_reading(c, false);
        return;
    }
    /* Drop the request's bytes; a pipelined one moves to the front. */
    memmove(c->in, c->in + c->parsed, c->in_len - c->parsed);
    c->in_len -= c->parsed;
    c->parsed = 0;
    reset_request(c);
    c->state = S_READ;
    set_deadline(c, c->in_len ? DL_HEAD : DL_IDLE);
    pause_reading(c, false);
    if (transport_has_pending(&c->t))
        event_active(&c->rd, EV_READ, 1);
}

/* Parses what is buffered. Returns true when the state changed (call again), false when more
 * input is needed. */
static bool parse_input(struct conn *c)
{
    if (c->parsed == c->in_len) {
        set_deadline(c, c->in_len ? DL_HEAD : DL_IDLE);
        return false;
    }
    size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + c->parsed,
                                   c->in_len - c->parsed);
    c->parsed += n;
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (c->message_done) {
        if (err == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        dispatch(c);
        return true;
    }
    if (err != HPE_OK) {
        char reason[96];
        if (!c->fail_status)
            snprintf(reason, sizeof reason, "malformed request (%s)", http_errno_description(err));
        refuse(c, c->fail_status ? c->fail_status : err == HPE_HEADER_OVERFLOW ? 431 : 400,
               c->fail_status ? c->fail_message : err == HPE_HEADER_OVERFLOW ? "request head is too large" : reason);
        return true;
    }
    if (!c->head_done && c->parsed > c->server->cfg->max_header) {
        refuse(c, 431, "request head is too large");
        return true;
    }
    if (c->in_len >= input_limit(c)) {
        refuse(c, 413, "request body is too large");
        return true;
    }
    set_deadline(c, c->head_done ? DL_BODY : DL_HEAD);
    return false;
}

/* Runs the connection as far as it can go now. false when it ended (c is freed). */
static bool progress(struct conn *c)
{
    for (int requests = 0; requests < REQUESTS_PER_TURN;) {
        switch (c->state) {
        case S_HANDSHAKE: {
            int rc = transport_handshake(&c->t);
            if (rc < 0) {
                log_debug("http: TLS handshake with %s failed", c->peer);
                conn_free(c);
                return false;
            }
            if (rc == 0) {
                arm_write(c, c->t.want_write);
                return true;
            }
            arm_write(c, false);
            c->state = S_READ;
            set_deadline(c, DL_IDLE);
            if (transport_has_pending(&c->t))
                event_active(&c->rd, EV_READ, 1);
            return true; /* the request itself comes with the next readable event */
        }
        case S_READ:
            if (!parse_input(c))
                return true;
            requests++;
            continue;
        case S_BUSY:
            return true;
        case S_WRITE: {
            int rc = flush_output(c);
            if (rc < 0) {
                log_debug("http: write to %s failed: %s", c->peer, strerror(errno));
                conn_free(c);
                return false;
            }
            if (rc == 0) {
                set_deadline(c, DL_WRITE);
                return true;
            }
            finish_answer(c);
            continue;
        }
        case S_LINGER:
            return true;
        case S_GONE:
            conn_free(c);
            return false;
        }
    }
    event_active(&c->rd, EV_READ, 1); /* more pipelined requests: next turn */
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    bool eof;
    int rc;
    switch (c->state) {
    case S_HANDSHAKE:
        progress(c);
        return;
    case S_LINGER: {
        char sink[4096];
        ssize_t n;
        int rounds = 0;
        while ((n = transport_read(&c->t, sink, sizeof sink)) > 0 && ++rounds < 16)
            ;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            conn_free(c);
        return;
    }
    case S_READ:
        rc = read_input(c, true, &eof);
        if (rc < 0) {
            log_debug("http: reading from %s: %s", c->peer, strerror(errno));
            conn_free(c);
            return;
        }
        if (eof) {
            /* Half-closed: a request already sent is still answered, then the connection ends. */
            c->closing = true;
            pause_reading(c, true);
        }
        if (progress(c) && eof && c->state == S_READ) {
            if (c->in_len > 0)
                log_debug("http: %s went away mid-request", c->peer);
            conn_free(c);
        }
        return;
    case S_BUSY:
    case S_WRITE:
        rc = read_input(c, false, &eof);
        if (rc < 0) {
            conn_close(c); /* reset: no one to answer */
            return;
        }
        if (eof) {
            c->closing = true; /* it may still read the answer (half-close) */
            pause_reading(c, true);
        }
        if (c->state == S_WRITE)
            progress(c);
        return;
    case S_GONE:
        return;
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == S_READ && c->out_len > c->out_off) {
        /* the rest of a 100 Continue */
        if (flush_output(c) < 0)
            conn_free(c);
        return;
    }
    if (c->state == S_READ) {
        arm_write(c, false);
        on_readable(fd, EV_READ, c); /* a TLS read that wanted the socket writable */
        return;
    }
    progress(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    enum deadline d = c->deadline;
    c->deadline = DL_NONE;
    switch (d) {
    case DL_HEAD:
    case DL_BODY:
        if (c->state == S_READ && (c->in_len > 0 || c->parsed > 0)) {
            log_info("http: %s sent too slowly; answering 408", c->peer);
            refuse(c, 408, "request took too long to arrive");
            if (c->state != S_BUSY)
                (void)progress(c);
            return;
        }
        conn_free(c); /* nothing of a request yet (or still in the TLS handshake) */
        return;
    case DL_WRITE:
        log_info("http: %s does not read its answer; closing", c->peer);
        conn_free(c);
        return;
    case DL_IDLE:
    case DL_LINGER:
    case DL_NONE:
        conn_free(c);
        return;
    }
}

/* ---- the server ---- */

int http_server_init(struct http_server *s, struct event_base *base, const struct config *cfg,
                     SSL_CTX *tls, struct peer_limit *peers, struct metrics *metrics)
{
    memset(s, 0, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    s->tls = tls;
    s->peers = peers;
    s->metrics = metrics;
    struct timeval head = { cfg->header_timeout, 0 }, request = { cfg->request_timeout, 0 },
                   idle = { cfg->idle_timeout, 0 }, linger = { LINGER_SECONDS, 0 };
    s->head_timeout = event_base_init_common_timeout(base, &head);
    s->request_timeout = event_base_init_common_timeout(base, &request);
    s->idle_timeout = event_base_init_common_timeout(base, &idle);
    s->linger_timeout = event_base_init_common_timeout(base, &linger);
    if (!s->head_timeout || !s->request_timeout || !s->idle_timeout || !s->linger_timeout)
        return -ENOMEM;
    return 0;
}

static void describe_peer(struct conn *c, const struct sockaddr *sa)
{
    const void *addr = NULL;
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        addr = &((const struct sockaddr_in *)sa)->sin_addr;
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    if (!addr || !inet_ntop(sa->sa_family, addr, c->address, sizeof c->address))
        strcpy(c->address, "?");
    snprintf(c->peer, sizeof c->peer, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", c->address,
             port);
}

/* Over the per-address cap: a plain-HTTP client is told so, a TLS one just sees the close. */
static void refuse_connection(struct http_server *s, int fd, const struct sockaddr *sa)
{
    static const char busy[] =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        "Content-Length: 52\r\nRetry-After: 5\r\nConnection: close\r\n"
        "Access-Control-Allow-Origin: *\r\n\r\n"
        "{\"error\":\"too many connections from your address\"}";
    if (!s->tls)
        (void)send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    atomic_fetch_add_explicit(&s->metrics->connections_refused, 1, memory_order_relaxed);
    time_t now = time(NULL);
    if (now != s->refusal_logged_at) { /* at most one such line per second */
        s->refusal_logged_at = now;
        char addr[INET6_ADDRSTRLEN] = "?";
        const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                                 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        inet_ntop(sa->sa_family, a, addr, sizeof addr);
        log_warn("http: %s is at --max_connections_per_address (%d); refusing a connection", addr,
                 s->cfg->max_connections_per_address);
    }
}

void http_server_accept(struct http_server *s, int fd, const struct sockaddr *sa, socklen_t len)
{
    (void)len;
    struct peer_slot *slot = NULL;
    int rc = peer_limit_acquire(s->peers, sa, &slot);
    if (rc == -1) {
        refuse_connection(s, fd, sa);
        return;
    }
    atomic_fetch_add_explicit(&s->metrics->connections_accepted, 1, memory_order_relaxed);
    struct conn *c = rc == 0 ? calloc(1, sizeof *c) : NULL;
    SSL *ssl = NULL;
    if (c && s->tls && (!(ssl = SSL_new(s->tls)) || SSL_set_fd(ssl, fd) != 1)) {
        SSL_free(ssl);
        free(c);
        c = NULL;
    }
    if (!c) {
        log_error("http: out of memory accepting a connection; dropping it");
        peer_limit_release(slot);
        close(fd);
        return;
    }
    c->server = s;
    c->t.fd = fd;
    c->t.ssl = ssl;
    c->t.slot = slot;
    if (ssl)
        SSL_set_accept_state(ssl);
    describe_peer(c, sa);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    reset_request(c);
    c->state = ssl ? S_HANDSHAKE : S_READ;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (event_assign(&c->rd, s->base, fd, EV_READ | EV_PERSIST, on_readable, c) != 0 ||
        event_assign(&c->wr, s->base, fd, EV_WRITE | EV_PERSIST, on_writable, c) != 0 ||
        event_assign(&c->timer, s->base, -1, 0, on_deadline, c) != 0 || event_add(&c->rd, NULL) != 0) {
        conn_free(c);
        return;
    }
    /* A TLS handshake is part of the head's time; a plain connection may wait idle for its first
     * request like between two (browsers open connections ahead of need). */
    set_deadline(c, ssl ? DL_HEAD : DL_IDLE);
    if (s->draining)
        c->closing = true;
}

void http_server_drain(struct http_server *s)
{
    s->draining = true;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == S_HANDSHAKE || (c->state == S_READ && c->in_len == 0))
            conn_free(c);
        else
            c->closing = true;
    }
}

void http_server_close_all(struct http_server *s)
{
    while (s->conns)
        conn_free(s->conns);
}
