/* http/conn_answer: the answers of a connection: status line, common headers (Date cached per
 * second, Content-Length, Connection), the handler's headers, the body; and the hand-over of a
 * connection to a stream. An answer is written after the handlers that are ready now have run, so
 * answers completing together leave in one write. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/conn_internal.h"
#include "http/h2.h"
#include "log.h"
#include "metrics.h"

const char *http_server_date(struct http_server *s)
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
    case 304: return "Not Modified";
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

void http_add_header(struct http_request *req, const char *name, const char *value)
{
    if (req->h2) {
        h2_add_header(req, name, value);
        return;
    }
    struct pending *p = pending_of(req);
    size_t nl = strlen(name), vl = strlen(value);
    /* Out of memory: the answer goes without this header. */
    if (conn_append(&p->extra, &p->extra_len, &p->extra_cap, name, nl) == 0 &&
        conn_append(&p->extra, &p->extra_len, &p->extra_cap, ": ", 2) == 0 &&
        conn_append(&p->extra, &p->extra_len, &p->extra_cap, value, vl) == 0)
        (void)conn_append(&p->extra, &p->extra_len, &p->extra_cap, "\r\n", 2);
}

/* Formats the status line and the common headers into head. Bytes written, or -1. */
static int format_head(struct conn *c, const struct pending *p, char *head, size_t cap, int status,
                       const char *content_type, size_t content_length, bool stream)
{
    const char *connection = p->close_after || stream ? "Connection: close\r\n"
                           : p->http_minor == 0       ? "Connection: keep-alive\r\n"
                                                      : "";
    int n;
    /* 204 and 304: no body, so no Content-Length either (RFC 9110 §8.6; a 304's would have to be
     * the length of the body it stands for) */
    if (stream || status == 204 || status == 304)
        n = snprintf(head, cap, "HTTP/1.1 %d %s\r\nDate: %s\r\n%s", status, http_status_phrase(status),
                     http_server_date(c->server), connection);
    else
        n = snprintf(head, cap,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s",
                     status, http_status_phrase(status), http_server_date(c->server), content_type,
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
    if (req->h2) {
        h2_reply(req, status, content_type, body, len);
        return;
    }
    struct pending *p = pending_of(req);
    struct conn *c = req->conn;
    if (p->answered)
        return; /* answered twice: a bug, but not one worth a crash */
    if (req->route >= 0 && req->route < ROUTE_COUNT)
        metrics_count_request(c->server->metrics, (enum metric_route)req->route, status);
    /* Every 503 says when to come back (SPEC §2); a handler that knows better added its own. */
    if (status == 503 && !(p->extra && memmem(p->extra, p->extra_len, "Retry-After:", 12)))
        http_add_header(req, "Retry-After", "1");
    char head[320];
    /* A HEAD answer says how long the body would be, without it. */
    bool with_body = req->method != HTTP_HEAD && status != 204 && status != 304;
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
                     struct transport *out, struct h2_stream **h2, char **head, size_t *head_len)
{
    *h2 = NULL;
    if (req->h2) {
        out->fd = -1;
        *head = NULL;
        *head_len = 0;
        return h2_take_stream(req, headers, n, h2);
    }
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
        rc = conn_append(&text, &tlen, &tcap, q->answer + skip, q->answer_len - skip);
    }
    if (rc == 0)
        rc = conn_append(&text, &tlen, &tcap, line, (size_t)len);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = conn_append(&text, &tlen, &tcap, headers[i][0], strlen(headers[i][0]));
        if (rc == 0)
            rc = conn_append(&text, &tlen, &tcap, ": ", 2);
        if (rc == 0)
            rc = conn_append(&text, &tlen, &tcap, headers[i][1], strlen(headers[i][1]));
        if (rc == 0)
            rc = conn_append(&text, &tlen, &tcap, "\r\n", 2);
    }
    if (rc == 0 && p->extra_len)
        rc = conn_append(&text, &tlen, &tcap, p->extra, p->extra_len);
    if (rc == 0)
        rc = conn_append(&text, &tlen, &tcap, "\r\n", 2);
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
    conn_arm_write(c, false);
    conn_set_deadline(c, DL_NONE);
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
