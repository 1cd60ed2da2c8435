/* http/conn: one client connection, from accept to close:
 *
 *   HANDSHAKE (TLS) -> OPEN -> LINGER -> freed      (closing after an answer)
 *                      OPEN -> GONE                 (a handler took the connection as a stream)
 *
 * While OPEN, requests are read, parsed and handed to the router; their answers leave in request
 * order (HTTP/1.1), several in one write when they are ready together. Pipelined POSTs are handled
 * concurrently (up to PIPELINE_MAX per connection), so a publisher that pipelines inserts gets them
 * into one group commit; any other request waits until everything before it is answered, so a
 * stream (GET /sse) always starts on a connection with nothing else in flight.
 *
 * Input accumulates in one buffer per connection; http_parser marks where the request target, the
 * headers and the body lie in it (offsets, so the buffer may grow or shift while a request
 * arrives), and the strings are terminated in place once the head is complete: no copies per
 * header. A chunked body is joined in place too. While a handler holds a request the buffer never
 * moves: more input is read only into the room left, then reading pauses.
 *
 * One timer per connection carries the deadline of the moment: the head of a request
 * (--header_timeout from its first byte, or for a TLS handshake), the rest of it
 * (--request_timeout), an idle keep-alive connection (--idle_timeout), answers the client does not
 * read, a lingering close. The durations are libevent "common timeouts": arming one is cheap. */
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
#include "http/transport.h"
#include "log.h"
#include "metrics.h"

#define INPUT_INITIAL 4096
#define READ_ROOM_MIN 1024
#define MAX_HEADERS 100
/* Requests of one connection in the handlers at once (pipelined POSTs). */
#define PIPELINE_MAX 32
/* Requests parsed for one connection per loop turn, so a pipelining client cannot hold the loop. */
#define REQUESTS_PER_TURN 64
/* Answers gathered into one write. */
#define WRITE_IOV 64

enum conn_state { S_HANDSHAKE, S_OPEN, S_LINGER, S_GONE };
enum deadline { DL_NONE, DL_IDLE, DL_HEAD, DL_BODY, DL_WRITE, DL_LINGER };

struct span {
    uint32_t off, len; /* off 0 = unset: offset 0 is always a request's method, never a field */
};

struct header_span {
    struct span name, value;
};

/* One request from dispatch to its answer being written; answers leave in queue order. */
struct pending {
    struct http_request req; /* first: the handlers' pointer is the pending's */
    struct pending *next;
    char *answer;            /* the whole answer, once given */
    size_t answer_len;
    bool answered;
    bool close_after;        /* the connection closes once this answer is out */
    bool post;               /* may run alongside other POSTs */
    char *extra;             /* headers added by the handler, "Name: value\r\n"... */
    size_t extra_len, extra_cap;
    int http_minor;
    int nheaders;
    struct header_span headers[]; /* into conn->in */
};

struct conn {
    struct conn *prev, *next;
    struct conn *next_flush;
    struct http_server *server;
    struct transport t;
    struct event rd, wr, timer;
    enum conn_state state;
    enum deadline deadline;
    bool in_handler;   /* a handler is running on our stack: answers wait for progress() */
    bool closing;      /* no new requests: close once the queue is answered */
    bool socket_gone;  /* the socket is closed; the struct waits for the handlers' answers */
    bool peer_eof;     /* the client closed its side */
    bool read_paused;  /* rd removed: no room while requests are out, or EOF */
    bool write_armed;
    bool flush_queued; /* on the server's list of connections with new answers */
    bool begun, head_done, message_done, last_was_value;
    int fail_status;
    const char *fail_message;
    http_parser parser;

    /* input: bytes [0, in_len) buffered, [0, parsed) consumed by the parser */
    char *in;
    size_t in_len, in_cap, parsed;
    size_t req_start; /* where the request being parsed starts (when begun) */
    struct span url;
    struct header_span headers[MAX_HEADERS];
    int nheaders;
    size_t body_off, body_len;

    /* requests out, oldest first; out_off bytes of the first answer are already written */
    struct pending *queue, *queue_tail;
    int inflight;   /* in the queue and not answered yet */
    size_t out_off;

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

static int append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t size = *cap ? *cap : 128;
        while (size < *len + n)
            size *= 2;
        char *p = realloc(*buf, size);
        if (!p)
            return -ENOMEM;
        *buf = p;
        *cap = size;
    }
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

/* ---- the queue of requests out ---- */

static struct pending *pending_of(struct http_request *req) { return (struct pending *)req; }

static void pending_free(struct pending *p)
{
    free(p->answer);
    free(p->extra);
    free(p);
}

static void enqueue(struct conn *c, struct pending *p)
{
    if (c->queue_tail)
        c->queue_tail->next = p;
    else
        c->queue = p;
    c->queue_tail = p;
}

static struct pending *dequeue(struct conn *c)
{
    struct pending *p = c->queue;
    c->queue = p->next;
    if (!c->queue)
        c->queue_tail = NULL;
    c->out_off = 0;
    return p;
}

/* A queued answer that no request owns: "100 Continue". */
static void enqueue_interim(struct conn *c, const char *text, size_t len)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || !(p->answer = malloc(len))) {
        free(p);
        return; /* the client goes on after its own timeout */
    }
    memcpy(p->answer, text, len);
    p->answer_len = len;
    p->answered = true;
    enqueue(c, p);
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
    enqueue_interim(c, go_on, sizeof go_on - 1); /* progress() writes it after this parse */
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

/* A pending request for what the parser holds now (all of it when complete, else what is known). */
static struct pending *new_pending(struct conn *c)
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
static int fill_target(struct conn *c, struct http_request *r)
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

static void run_handler(struct conn *c, struct pending *p, int status, const char *message)
{
    struct http_server *s = c->server;
    enqueue(c, p);
    c->inflight++;
    c->in_handler = true;
    if (status)
        s->on_refusal(&p->req, status, message, s->arg);
    else
        s->on_request(&p->req, s->arg);
    c->in_handler = false;
}

/* The server refuses by itself: the answer queues behind the earlier ones, then the connection
 * closes. */
static void refuse(struct conn *c, int status, const char *message)
{
    struct pending *p = new_pending(c);
    c->closing = true;
    c->message_done = false;
    pause_reading(c, true); /* whatever else comes is not read now; the linger drains it */
    if (!p) {
        log_error("http: out of memory refusing a request from %s; closing", c->peer);
        c->peer_eof = true; /* nothing to say: end once the queue is out */
        return;
    }
    p->close_after = true;
    run_handler(c, p, status, message);
}

/* The parsed request goes to its handler, if its turn has come. false when it must wait. */
static bool dispatch(struct conn *c)
{
    bool post = c->parser.method == HTTP_POST;
    if (c->queue && (!post || c->inflight >= PIPELINE_MAX || !c->queue_tail->post))
        return false; /* waits for the queue (a stream must start on an idle connection) */
    struct pending *p = new_pending(c);
    if (!p) {
        refuse(c, 503, "out of memory");
        return true;
    }
    c->message_done = false;
    c->begun = false;
    if (fill_target(c, &p->req) != 0) {
        pending_free(p);
        refuse(c, 400, "malformed request target");
        return true;
    }
    p->post = post;
    if (!http_should_keep_alive(&c->parser) || c->parser.upgrade || c->server->draining) {
        p->close_after = true;
        c->closing = true;
    }
    run_handler(c, p, 0, NULL);
    return true;
}

void http_add_header(struct http_request *req, const char *name, const char *value)
{
    struct pending *p = pending_of(req);
    size_t nl = strlen(name), vl = strlen(value);
    /* Out of memory: the answer goes without this header. */
    if (append(&p->extra, &p->extra_len, &p->extra_cap, name, nl) == 0 &&
        append(&p->extra, &p->extra_len, &p->extra_cap, ": ", 2) == 0 &&
        append(&p->extra, &p->extra_len, &p->extra_cap, value, vl) == 0)
        (void)append(&p->extra, &p->extra_len, &p->extra_cap, "\r\n", 2);
}

/* Formats the status line and the common headers into head. Bytes written, or -1. */
static int format_head(struct conn *c, const struct pending *p, char *head, size_t cap, int status,
                       const char *content_type, size_t content_length, bool stream)
{
    const char *connection = p->close_after || stream ? "Connection: close\r\n"
                           : p->http_minor == 0       ? "Connection: keep-alive\r\n"
                                                      : "";
    int n;
    if (stream || status == 204) /* 204: no body, so no Content-Length either (RFC 9110) */
        n = snprintf(head, cap, "HTTP/1.1 %d %s\r\nDate: %s\r\n%s", status, http_status_phrase(status),
                     current_date(c->server), connection);
    else
        n = snprintf(head, cap,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s",
                     status, http_status_phrase(status), current_date(c->server), content_type,
                     content_length, connection);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* An answer is ready: it is written after the current handlers return (in_handler) or once the
 * loop has run every callback that is ready now (the flush event), so answers that complete
 * together leave together. */
static void answer_ready(struct conn *c)
{
    struct http_server *s = c->server;
    c->inflight--;
    if (c->in_handler)
        return;
    if (!c->flush_queued) {
        c->flush_queued = true;
        c->next_flush = s->flush_list;
        s->flush_list = c;
        event_active(s->flush, EV_TIMEOUT, 1);
    }
}

void http_reply(struct http_request *req, int status, const char *content_type, const char *body,
                size_t len)
{
    struct pending *p = pending_of(req);
    struct conn *c = req->conn;
    if (p->answered)
        return; /* answered twice: a bug, but not one worth a crash */
    if (req->route >= 0 && req->route < ROUTE_COUNT)
        metrics_count_request(c->server->metrics, (enum metric_route)req->route, status);
    char head[320];
    /* A HEAD answer says how long the body would be, without it. */
    bool with_body = req->method != HTTP_HEAD && status != 204;
    int n = format_head(c, p, head, sizeof head, status, content_type, len, false);
    size_t total = (n > 0 ? (size_t)n : 0) + p->extra_len + 2 + (with_body ? len : 0);
    p->answered = true;
    if (!c->socket_gone && n > 0 && (p->answer = malloc(total))) {
        memcpy(p->answer, head, (size_t)n);
        memcpy(p->answer + n, p->extra ? p->extra : "", p->extra_len);
        memcpy(p->answer + n + p->extra_len, "\r\n", 2);
        if (with_body)
            memcpy(p->answer + n + p->extra_len + 2, body, len);
        p->answer_len = total;
    } else if (!c->socket_gone) {
        log_error("http: out of memory answering %s; closing the connection", c->peer);
        p->close_after = true; /* an empty answer, then the close */
        c->closing = true;
    }
    answer_ready(c);
}

int http_take_stream(struct http_request *req, const char *const headers[][2], size_t n,
                     struct transport *out, char **head, size_t *head_len)
{
    struct pending *p = pending_of(req);
    struct conn *c = req->conn;
    if (c->socket_gone || p != c->queue_tail || p->answered)
        return -EINVAL;
    /* Only interim answers ("100 Continue") can still be ahead of it: they go first. */
    char line[320];
    p->close_after = true;
    int len = format_head(c, p, line, sizeof line, 200, NULL, 0, true);
    char *text = NULL;
    size_t tlen = 0, tcap = 0;
    int rc = len > 0 ? 0 : -EINVAL;
    for (struct pending *q = c->queue; q != p && rc == 0; q = q->next) {
        size_t skip = q == c->queue ? c->out_off : 0;
        rc = append(&text, &tlen, &tcap, q->answer + skip, q->answer_len - skip);
    }
    if (rc == 0)
        rc = append(&text, &tlen, &tcap, line, (size_t)len);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = append(&text, &tlen, &tcap, headers[i][0], strlen(headers[i][0]));
        if (rc == 0)
            rc = append(&text, &tlen, &tcap, ": ", 2);
        if (rc == 0)
            rc = append(&text, &tlen, &tcap, headers[i][1], strlen(headers[i][1]));
        if (rc == 0)
            rc = append(&text, &tlen, &tcap, "\r\n", 2);
    }
    if (rc == 0 && p->extra_len)
        rc = append(&text, &tlen, &tcap, p->extra, p->extra_len);
    if (rc == 0)
        rc = append(&text, &tlen, &tcap, "\r\n", 2);
    if (rc != 0) {
        free(text);
        p->close_after = false;
        return -ENOMEM;
    }
    *head = text;
    *head_len = tlen;
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
    c->state = S_GONE; /* freed by progress(), after the handler returns */
    p->answered = true;
    c->inflight--;
    if (!c->in_handler)
        conn_free(c);
    return 0;
}

/* ---- I/O ---- */

/* Is the input buffer referenced by a handler (a request out, not answered)? */
static bool pinned(const struct conn *c) { return c->inflight > 0; }

/* Drops consumed bytes from the front of the input buffer, keeping a request being parsed (whose
 * spans shift with it). Only when no handler holds a pointer into the buffer. */
static void compact(struct conn *c)
{
    size_t shift = c->begun ? c->req_start : c->parsed;
    if (shift == 0 || pinned(c))
        return;
    memmove(c->in, c->in + shift, c->in_len - shift);
    c->in_len -= shift;
    c->parsed -= shift;
    c->req_start = c->begun ? 0 : c->parsed;
    if (!c->begun)
        return;
    if (c->url.off)
        c->url.off -= (uint32_t)shift;
    for (int i = 0; i < c->nheaders; i++) {
        if (c->headers[i].name.off)
            c->headers[i].name.off -= (uint32_t)shift;
        if (c->headers[i].value.off)
            c->headers[i].value.off -= (uint32_t)shift;
    }
    if (c->body_off)
        c->body_off -= shift;
}

/* Reads what the socket has into the input buffer: 0, or -1 when the connection failed. Sets
 * peer_eof when the client closed its side (what came before is in the buffer). */
static int read_input(struct conn *c)
{
    for (int rounds = 0; rounds < 8; rounds++) {
        if (c->in_cap - c->in_len < READ_ROOM_MIN && !pinned(c)) {
            compact(c);
            size_t limit = input_limit(c);
            if (c->in_cap - c->in_len < READ_ROOM_MIN && c->in_cap < limit) {
                size_t cap = c->in_cap ? c->in_cap * 2 : INPUT_INITIAL;
                cap = cap > limit ? limit : cap;
                char *p = realloc(c->in, cap);
                if (!p)
                    return -1;
                c->in = p;
                c->in_cap = cap;
            }
        }
        size_t room = c->in_cap - c->in_len;
        if (room == 0) {
            /* Full: while handlers hold requests, wait for them; else the parser refuses. */
            if (pinned(c))
                pause_reading(c, true);
            return 0;
        }
        ssize_t n = transport_read(&c->t, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            if ((size_t)n < room && !c->t.ssl)
                return 0; /* a short read drained the socket; saves a recv that says EAGAIN */
            continue;
        }
        if (n == 0) {
            c->peer_eof = true;
            pause_reading(c, true);
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->t.want_write)
                arm_write(c, true);
            return 0;
        }
        return -1;
    }
    event_active(&c->rd, EV_READ, 1); /* more is waiting: next turn, after the others */
    return 0;
}

/* The last answer is out: say so (FIN, or TLS close_notify) and give the client a moment to read
 * it and close its side; closing at once could reset the connection under the unread answer. */
static void start_linger(struct conn *c)
{
    transport_shutdown(&c->t);
    c->state = S_LINGER;
    arm_write(c, false);
    pause_reading(c, c->peer_eof);
    set_deadline(c, DL_LINGER);
}

/* Writes the answers at the head of the queue, several per write. 0, or -1 when the connection
 * failed. Starts the lingering close after an answer that ends the connection. */
static int write_answers(struct conn *c)
{
    while (c->queue && c->queue->answered) {
        struct iovec iov[WRITE_IOV];
        int n = 0;
        for (struct pending *p = c->queue; p && p->answered && n < WRITE_IOV; p = p->next) {
            size_t skip = p == c->queue ? c->out_off : 0;
            iov[n].iov_base = p->answer + skip;
            iov[n++].iov_len = p->answer_len - skip;
            if (p->close_after)
                break;
        }
        ssize_t w = transport_writev(&c->t, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                arm_write(c, c->t.want_write || !c->t.ssl);
                return 0;
            }
            return -1;
        }
        size_t left = (size_t)w;
        while (c->queue && c->queue->answered) {
            struct pending *p = c->queue;
            size_t rest = p->answer_len - c->out_off;
            if (left < rest) {
                c->out_off += left;
                break;
            }
            left -= rest;
            bool last = p->close_after;
            pending_free(dequeue(c));
            if (last) {
                start_linger(c);
                return 0;
            }
        }
    }
    arm_write(c, false);
    return 0;
}

/* ---- the state machine ---- */

/* Parses and dispatches what is buffered, as far as the queue allows. true when something
 * happened that may let more happen (call again). */
static bool parse_step(struct conn *c)
{
    if (c->closing)
        return false;
    if (c->message_done)
        return dispatch(c);
    if (c->parsed == c->in_len)
        return false;
    if (!c->begun)
        c->req_start = c->parsed;
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
        const char *why = c->fail_message;
        int status = c->fail_status;
        if (!status) {
            status = err == HPE_HEADER_OVERFLOW ? 431 : 400;
            snprintf(reason, sizeof reason, "malformed request (%s)", http_errno_description(err));
            why = err == HPE_HEADER_OVERFLOW ? "request head is too large" : reason;
        }
        refuse(c, status, why);
        return true;
    }
    if (c->in_len - c->req_start >= input_limit(c)) {
        refuse(c, c->head_done ? 413 : 431, c->head_done ? "request body is too large" : "request head is too large");
        return true;
    }
    return false;
}

static void update_deadline(struct conn *c)
{
    if (c->state != S_OPEN)
        return;
    if (c->write_armed)
        set_deadline(c, DL_WRITE); /* the client does not read its answers */
    else if (c->begun && !c->message_done && !c->closing)
        set_deadline(c, c->head_done ? DL_BODY : DL_HEAD);
    else if (c->queue || c->message_done)
        set_deadline(c, DL_NONE); /* the server is working */
    else
        set_deadline(c, DL_IDLE);
}

/* Runs the connection as far as it can go now. false when it ended (c is freed). */
static bool progress(struct conn *c)
{
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
        c->state = S_OPEN;
        set_deadline(c, DL_IDLE);
        if (transport_has_pending(&c->t))
            event_active(&c->rd, EV_READ, 1);
        return true; /* the request itself comes with the next readable event */
    }
    case S_LINGER:
        return true;
    case S_GONE:
        conn_free(c);
        return false;
    case S_OPEN:
        break;
    }
    if (c->socket_gone) {
        while (c->queue && c->queue->answered)
            pending_free(dequeue(c));
        if (!c->queue) {
            conn_free(c);
            return false;
        }
        return true;
    }
    int budget = REQUESTS_PER_TURN;
    for (;;) {
        while (budget > 0 && parse_step(c)) {
            budget--;
            if (c->state == S_GONE) {
                conn_free(c);
                return false;
            }
        }
        if (write_answers(c) != 0) {
            log_debug("http: write to %s failed: %s", c->peer, strerror(errno));
            conn_free(c);
            return false;
        }
        if (c->state == S_OPEN && c->closing && !c->queue)
            start_linger(c); /* closing (shutdown, a refusal) and nothing more is owed */
        if (c->state == S_LINGER) {
            if (c->peer_eof) {
                conn_free(c);
                return false;
            }
            return true;
        }
        /* A request that waited for the queue may go now that the queue is written out. */
        if (!(c->message_done && !c->queue && !c->closing))
            break;
        if (budget == 0) {
            event_active(&c->rd, EV_READ, 1); /* more pipelined requests: next turn */
            break;
        }
    }
    if (budget == 0)
        event_active(&c->rd, EV_READ, 1);
    if (c->peer_eof && !c->queue && !c->message_done) {
        if (c->begun)
            log_debug("http: %s went away mid-request", c->peer);
        conn_free(c); /* nothing more will come, nothing is owed */
        return false;
    }
    /* Reading paused for room resumes once no handler holds the buffer. */
    if (c->read_paused && !c->peer_eof && !c->closing && !pinned(c)) {
        pause_reading(c, false);
        event_active(&c->rd, EV_READ, 1);
    }
    update_deadline(c);
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == S_LINGER) {
        char sink[4096];
        ssize_t n;
        int rounds = 0;
        while ((n = transport_read(&c->t, sink, sizeof sink)) > 0 && ++rounds < 16)
            ;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            conn_free(c);
        return;
    }
    if (c->state == S_OPEN && !c->peer_eof && read_input(c) != 0) {
        log_debug("http: reading from %s: %s", c->peer, strerror(errno));
        if (!c->queue) {
            conn_free(c);
            return;
        }
        /* Handlers hold requests: keep the struct until they answer, without the socket. */
        event_del(&c->rd);
        arm_write(c, false);
        set_deadline(c, DL_NONE);
        transport_close(&c->t);
        c->socket_gone = true;
        return;
    }
    (void)progress(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == S_OPEN && !c->queue) {
        arm_write(c, false);
        on_readable(fd, EV_READ, c); /* a TLS read that wanted the socket writable */
        return;
    }
    (void)progress(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    enum deadline d = c->deadline;
    c->deadline = DL_NONE;
    if ((d == DL_HEAD || d == DL_BODY) && c->state == S_OPEN) {
        log_info("http: %s sent a request too slowly; answering 408", c->peer);
        refuse(c, 408, "request took too long to arrive");
        (void)progress(c);
        return;
    }
    if (d == DL_WRITE)
        log_info("http: %s does not read its answers; closing", c->peer);
    if (c->queue && c->state == S_OPEN && d != DL_WRITE)
        return; /* cannot happen: no deadline runs while handlers work */
    if (c->inflight) {
        event_del(&c->rd);
        arm_write(c, false);
        transport_close(&c->t);
        c->socket_gone = true;
        return;
    }
    conn_free(c); /* idle, a stalled handshake, a linger that ran out, a stuck write */
}

void conn_free(struct conn *c)
{
    struct http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->flush_queued) {
        struct conn **p = &s->flush_list;
        while (*p != c)
            p = &(*p)->next_flush;
        *p = c->next_flush;
    }
    if (event_initialized(&c->rd))
        event_del(&c->rd);
    if (event_initialized(&c->wr))
        event_del(&c->wr);
    if (event_initialized(&c->timer))
        event_del(&c->timer);
    while (c->queue)
        pending_free(dequeue(c));
    transport_close(&c->t);
    free(c->in);
    free(c);
}

/* ---- for the server (server.c) ---- */

void conn_flush_all(struct http_server *s)
{
    while (s->flush_list) {
        struct conn *c = s->flush_list;
        s->flush_list = c->next_flush;
        c->flush_queued = false;
        (void)progress(c);
    }
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

int conn_new(struct http_server *s, int fd, SSL *ssl, struct peer_slot *slot, const struct sockaddr *sa)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->server = s;
    c->t.fd = fd;
    c->t.ssl = ssl;
    c->t.slot = slot;
    if (ssl)
        SSL_set_accept_state(ssl);
    describe_peer(c, sa);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = ssl ? S_HANDSHAKE : S_OPEN;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (event_assign(&c->rd, s->base, fd, EV_READ | EV_PERSIST, on_readable, c) != 0 ||
        event_assign(&c->wr, s->base, fd, EV_WRITE | EV_PERSIST, on_writable, c) != 0 ||
        event_assign(&c->timer, s->base, -1, 0, on_deadline, c) != 0 || event_add(&c->rd, NULL) != 0) {
        c->t.fd = -1; /* the caller still owns the socket, the session and the slot */
        c->t.ssl = NULL;
        c->t.slot = NULL;
        conn_free(c);
        return -ENOMEM;
    }
    /* A TLS handshake is part of the head's time; a plain connection may wait idle for its first
     * request like between two (browsers open connections ahead of need). */
    set_deadline(c, ssl ? DL_HEAD : DL_IDLE);
    if (s->draining)
        c->closing = true;
    return 0;
}

void conn_drain(struct conn *c)
{
    if (c->state == S_HANDSHAKE ||
        (c->state == S_OPEN && !c->queue && !c->begun && !c->message_done && c->parsed == c->in_len)) {
        conn_free(c);
        return;
    }
    /* The answers owed still go out, the last one saying the connection closes. */
    c->closing = true;
    if (c->queue_tail && !c->queue_tail->answered)
        c->queue_tail->close_after = true;
    else if (c->state == S_OPEN && !c->queue_tail)
        (void)progress(c);
}

struct conn *conn_next(const struct conn *c) { return c->next; }
