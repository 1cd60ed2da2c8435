/* http/h2_stream: one HTTP/2 stream: its request (headers and body, bounded like HTTP/1.1) made a
 * struct http_request for the router, its answer (HEADERS, then DATA from the answer buffer), and an
 * event stream's DATA pulled from the hub's source while the peer's flow-control window is open.
 *
 * A stream struct lives until nghttp2 has closed the stream and no handler holds its request: a
 * handler that answers after the client reset the stream, or after the connection went away,
 * answers into nothing (counted, then freed), exactly like HTTP/1.1's socket_gone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http/append.h"
#include "http/h2_internal.h"
#include "http/server.h"
#include "log.h"
#include "metrics.h"

struct h2_stream *h2_stream_new(struct h2_conn *c, int32_t id)
{
    struct h2_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->conn = c;
    st->server = c->server;
    st->id = id;
    st->begun = h2_monotonic();
    st->req.h2 = st;
    st->req.method = -1;
    st->req.target = "?";
    st->req.body = "";
    memcpy(st->peer, c->peer, sizeof st->peer);
    memcpy(st->address, c->address, sizeof st->address);
    st->req.peer = st->peer;
    st->req.address = st->address;
    st->req.route = ROUTE_OTHER;
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    c->nstreams++;
    c->incomplete++;
    return st;
}

void h2_stream_free(struct h2_stream *st)
{
    free(st->heads);
    free(st->target);
    free(st->body);
    free(st->extra);
    free(st->answer);
    free(st);
}

/* Takes st off its connection's list (the connection no longer knows it). */
static void unlink_stream(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    if (!c)
        return;
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    c->nstreams--;
    if (!st->complete)
        c->incomplete--;
    st->conn = NULL;
}

int h2_stream_add_header(struct h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                         size_t vlen)
{
    const struct config *cfg = st->server->cfg;
    /* The decoded size is what counts (an HPACK bomb is small on the wire). */
    if (st->nheads == H2_MAX_HEADERS || st->heads_len + nlen + vlen + 2 > cfg->max_header)
        return -1;
    if (conn_append(&st->heads, &st->heads_len, &st->heads_cap, name, nlen) != 0 ||
        conn_append(&st->heads, &st->heads_len, &st->heads_cap, "", 1) != 0 ||
        conn_append(&st->heads, &st->heads_len, &st->heads_cap, value, vlen) != 0 ||
        conn_append(&st->heads, &st->heads_len, &st->heads_cap, "", 1) != 0)
        return -ENOMEM;
    st->nheads++;
    return 0;
}

int h2_stream_add_body(struct h2_stream *st, const uint8_t *data, size_t len)
{
    if (st->fail_status || st->dispatched)
        return 0; /* refused already: the rest is read and dropped */
    if (st->body_len + len > st->server->cfg->max_body) {
        h2_stream_refuse(st, 413, "request body is too large");
        return 0;
    }
    if (conn_append(&st->body, &st->body_len, &st->body_cap, data, len) != 0) {
        st->fail_status = 503;
        st->fail_message = "out of memory";
    }
    return 0;
}

/* Whether the handler added header name (lowercase) to the answer. */
static bool find_extra(const struct h2_stream *st, const char *name)
{
    const char *p = st->extra;
    for (int i = 0; i < st->nextra; i++) {
        const char *value = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return true;
        p = value + strlen(value) + 1;
    }
    return false;
}

/* The value of header name (any case) in st's request, or NULL. */
static const char *find(const struct h2_stream *st, const char *name)
{
    const char *p = st->heads;
    for (int i = 0; i < st->nheads; i++) {
        const char *value = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

const char *h2_header(const struct http_request *req, const char *name)
{
    const struct h2_stream *st = h2_stream_of(req);
    if (name[0] == ':')
        return NULL; /* pseudo-headers are not headers */
    if (strcasecmp(name, "host") == 0) {
        const char *authority = find(st, ":authority");
        if (authority)
            return authority;
    }
    return find(st, name);
}

/* enum http_method of an HTTP/2 :method, or -1. */
static int method_of(const char *name)
{
    for (int m = 0; m <= HTTP_SOURCE; m++)
        if (strcmp(http_method_str((enum http_method)m), name) == 0)
            return m;
    return -1;
}

void h2_stream_refuse(struct h2_stream *st, int status, const char *message)
{
    if (st->dispatched)
        return;
    st->dispatched = true;
    /* Refused before its dispatch (408, 413): a HEAD still gets its answer without a body. */
    const char *method = find(st, ":method");
    if (method && st->req.method < 0)
        st->req.method = method_of(method);
    struct http_server *s = st->server;
    s->on_refusal(&st->req, status, message, s->arg);
}

void h2_stream_dispatch(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    st->complete = true;
    c->incomplete--;
    h2_conn_update_deadline(c);
    if (st->dispatched)
        return; /* refused while it arrived */
    atomic_fetch_add_explicit(&st->server->metrics->h2_streams, 1, memory_order_relaxed);
    const char *method = find(st, ":method"), *path = find(st, ":path");
    if (method) {
        st->req.method = method_of(method);
        if (st->req.method < 0) {
            h2_stream_refuse(st, 400, "malformed request (invalid HTTP method)");
            return;
        }
    }
    if (st->fail_status) {
        h2_stream_refuse(st, st->fail_status, st->fail_message);
        return;
    }
    /* nghttp2 has checked the pseudo-headers (RFC 9113 §8.3): :method and :path are there, and
     * :path is not empty; CONNECT is the exception and has no route here. */
    if (!method || !path || path[0] != '/') {
        h2_stream_refuse(st, 400, "malformed request target");
        return;
    }
    st->req.target = path;
    size_t n = strlen(path);
    if (!(st->target = malloc(n + 2))) {
        h2_stream_refuse(st, 503, "out of memory");
        return;
    }
    memcpy(st->target, path, n + 1);
    st->target[n + 1] = '\0';
    char *q = strchr(st->target, '?');
    if (q) {
        *q = '\0';
        st->req.query = q + 1;
    }
    char *hash = strchr(st->target, '#'); /* never sent by a client, but not part of the path */
    if (hash)
        *hash = '\0';
    st->req.path = st->target;
    if (st->body_len) {
        st->req.body = st->body;
        st->req.body_len = st->body_len;
    }
    st->dispatched = true;
    struct http_server *s = st->server;
    s->on_request(&st->req, s->arg);
}

void h2_stream_closed(struct h2_stream *st, bool conn_gone)
{
    (void)conn_gone;
    st->closed = true;
    if (st->src) {
        const struct h2_source *src = st->src;
        st->src = NULL;
        src->gone(st->src_arg);
    }
    unlink_stream(st);
    if (!st->dispatched || st->answered)
        h2_stream_free(st);
    /* else its handler still holds the request: freed by its answer */
}

void h2_add_header(struct http_request *req, const char *name, const char *value)
{
    struct h2_stream *st = h2_stream_of(req);
    size_t nl = strlen(name);
    char lower[64];
    if (nl >= sizeof lower)
        return; /* our own header names are short */
    for (size_t i = 0; i < nl; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    /* Out of memory: the answer goes without this header. */
    size_t before = st->extra_len;
    if (conn_append(&st->extra, &st->extra_len, &st->extra_cap, lower, nl) == 0 &&
        conn_append(&st->extra, &st->extra_len, &st->extra_cap, "", 1) == 0 &&
        conn_append(&st->extra, &st->extra_len, &st->extra_cap, value, strlen(value) + 1) == 0)
        st->nextra++;
    else
        st->extra_len = before;
}

/* nghttp2_data_source_read_callback: an answer's body, an event stream's data from its source, or
 * the tail of an event stream that is ending. */
static ssize_t read_data(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)id;
    (void)user_data;
    struct h2_stream *st = source->ptr;
    if (st->event_stream && !st->finishing) {
        size_t n = st->src ? st->src->read(st->src_arg, buf, length) : 0;
        if (n == 0) {
            st->deferred = true; /* h2_stream_resume wakes it */
            return NGHTTP2_ERR_DEFERRED;
        }
        return (ssize_t)n;
    }
    size_t n = st->answer_len - st->answer_off;
    if (n > length)
        n = length;
    if (n)
        memcpy(buf, st->answer + st->answer_off, n);
    st->answer_off += n;
    if (st->answer_off == st->answer_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Submits the response HEADERS (:status, date, content-type and content-length when given, then
 * the handler's headers) and, with body, a data source. nghttp2 copies the fields. */
static int submit(struct h2_stream *st, int status, const char *content_type, const char *length, bool body)
{
    size_t count = 4 + (size_t)st->nextra;
    nghttp2_nv stack[32];
    nghttp2_nv *nv = count <= 32 ? stack : malloc(count * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    size_t k = 0;
#define NV(nm, nl, val, vl) nv[k++] = (nghttp2_nv){ (uint8_t *)(nm), (uint8_t *)(val), (nl), (vl), 0 }
    const char *date = http_server_date(st->server);
    NV(":status", 7, code, strlen(code));
    NV("date", 4, date, strlen(date));
    if (content_type)
        NV("content-type", 12, content_type, strlen(content_type));
    if (length)
        NV("content-length", 14, length, strlen(length));
    const char *p = st->extra;
    for (int i = 0; i < st->nextra; i++) {
        size_t nl = strlen(p);
        const char *v = p + nl + 1;
        size_t vl = strlen(v);
        NV(p, nl, v, vl);
        p = v + vl + 1;
    }
#undef NV
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = read_data };
    int rc = nghttp2_submit_response(st->conn->session, st->id, nv, k, body ? &prd : NULL);
    if (nv != stack)
        free(nv);
    if (rc != 0) {
        log_debug("h2: cannot answer stream %d of %s: %s", st->id, st->conn->peer, nghttp2_strerror(rc));
        return -EINVAL;
    }
    h2_conn_want_write(st->conn);
    return 0;
}

/* Whether st can still be answered on its connection. */
static bool answerable(const struct h2_stream *st) { return st->conn && !st->closed; }

void h2_reply(struct http_request *req, int status, const char *content_type, const char *body, size_t len)
{
    struct h2_stream *st = h2_stream_of(req);
    if (st->answered)
        return; /* answered twice: a bug, but not one worth a crash */
    st->answered = true;
    if (req->route >= 0 && req->route < ROUTE_COUNT)
        metrics_count_request(st->server->metrics, (enum metric_route)req->route, status);
    if (!answerable(st)) {
        h2_stream_free(st); /* the client reset it, or the connection went away */
        return;
    }
    /* Every 503 says when to come back (SPEC §2); a handler that knows better added its own. */
    if (status == 503 && !find_extra(st, "retry-after"))
        h2_add_header(req, "Retry-After", "1");
    bool bodiless = status == 204 || status == 304;
    bool with_body = req->method != HTTP_HEAD && !bodiless && len > 0;
    if (with_body) {
        if (!(st->answer = malloc(len))) {
            log_error("http: out of memory answering %s over HTTP/2; resetting the stream", req->peer);
            nghttp2_submit_rst_stream(st->conn->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
            h2_conn_want_write(st->conn);
            return;
        }
        memcpy(st->answer, body, len);
        st->answer_len = len;
    }
    char length[24];
    snprintf(length, sizeof length, "%zu", len);
    /* A HEAD answer says how long the body would be, without it; a 204 or 304 has neither. */
    if (submit(st, status, bodiless ? NULL : content_type, bodiless ? NULL : length, with_body) != 0)
        nghttp2_submit_rst_stream(st->conn->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

int h2_take_stream(struct http_request *req, const char *const headers[][2], size_t n,
                   struct h2_stream **out)
{
    struct h2_stream *st = h2_stream_of(req);
    if (!answerable(st) || st->answered)
        return -EINVAL;
    int before = st->nextra;
    size_t before_len = st->extra_len;
    for (size_t i = 0; i < n; i++)
        h2_add_header(req, headers[i][0], headers[i][1]);
    if (st->nextra != before + (int)n) {
        st->nextra = before;
        st->extra_len = before_len;
        return -ENOMEM;
    }
    st->event_stream = true;
    if (submit(st, 200, NULL, NULL, true) != 0) {
        st->event_stream = false;
        st->nextra = before;
        st->extra_len = before_len;
        return -ENOMEM;
    }
    st->answered = true;
    metrics_count_request(st->server->metrics, (enum metric_route)req->route, 200);
    /* The request is over: an event stream lives long, and its headers (a JWT among them) and the
     * answer's (copied by nghttp2) would cost it most of a kilobyte for nothing. */
    free(st->heads);
    free(st->target);
    free(st->body);
    free(st->extra);
    st->heads = st->target = st->body = st->extra = NULL;
    st->heads_len = st->heads_cap = st->body_len = st->body_cap = st->extra_len = st->extra_cap = 0;
    st->nheads = st->nextra = 0;
    req->target = "?";
    req->path = NULL;
    req->query = NULL;
    req->body = "";
    req->body_len = 0;
    *out = st;
    return 0;
}

void h2_stream_bind(struct h2_stream *st, const struct h2_source *src, void *arg)
{
    st->src = src;
    st->src_arg = arg;
}

void h2_stream_resume(struct h2_stream *st)
{
    if (!answerable(st))
        return;
    if (st->deferred) {
        st->deferred = false;
        (void)nghttp2_session_resume_data(st->conn->session, st->id);
    }
    st->resumed = true;
    h2_conn_want_write(st->conn);
}

void h2_stream_finish(struct h2_stream *st, const void *tail, size_t len)
{
    st->src = NULL;
    st->src_arg = NULL;
    if (!answerable(st))
        return;
    free(st->answer);
    st->answer = NULL;
    st->answer_len = st->answer_off = 0;
    if (len && !(st->answer = malloc(len))) {
        h2_stream_reset(st);
        return;
    }
    if (len)
        memcpy(st->answer, tail, len);
    st->answer_len = len;
    st->finishing = true;
    h2_stream_resume(st);
}

void h2_stream_reset(struct h2_stream *st)
{
    st->src = NULL;
    st->src_arg = NULL;
    if (!answerable(st))
        return;
    nghttp2_submit_rst_stream(st->conn->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    h2_conn_want_write(st->conn);
}
