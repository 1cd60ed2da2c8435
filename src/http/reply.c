/* http/reply: JSON in, JSON out, CORS on every answer. */
#include "http/reply.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"

/* Is origin (NUL-terminated) one of the comma-separated entries of list? */
static int origin_listed(const char *list, const char *origin)
{
    size_t olen = strlen(origin);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && last[-1] == ' ')
            last--;
        if ((size_t)(last - p) == olen && olen > 0 && memcmp(p, origin, olen) == 0)
            return 1;
        p = end;
    }
    return 0;
}

void http_add_cors(struct evhttp_request *req, const struct config *cfg)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (strcmp(cfg->origin, "*") == 0) {
        evhttp_add_header(out, "Access-Control-Allow-Origin", "*");
        return;
    }
    const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    if (origin && origin_listed(cfg->origin, origin))
        evhttp_add_header(out, "Access-Control-Allow-Origin", origin);
    /* The answer depends on Origin, so caches must key on it even when nothing matched. */
    evhttp_add_header(out, "Vary", "Origin");
}

static void free_text(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    free(arg);
}

void http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!buf || !text) {
        free(text);
        if (buf)
            evbuffer_free(buf);
        evhttp_send_reply(req, 500, NULL, NULL);
        return;
    }
    evbuffer_add_reference(buf, text, strlen(text), free_text, text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    /* libevent 2.1's phrase table predates RFC 6585. */
    evhttp_send_reply(req, status, status == 429 ? "Too Many Requests" : NULL, buf);
    evbuffer_free(buf);
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "?";
}

void http_reply_error(struct evhttp_request *req, int status, const char *message)
{
    char peer[64];
    const char *uri = evhttp_request_get_uri(req);
    enum log_level level = status >= 500 ? LOG_ERROR : status == 401 ? LOG_DEBUG : LOG_INFO;
    if (log_enabled(level))
        log_write(level, "http %d %s %.200s from %s: %s", status,
                  method_name(evhttp_request_get_command(req)), uri ? uri : "?",
                  http_peer(req, peer, sizeof peer), message);
    http_reply_json(req, status, json_pack("{s:s}", "error", message));
}

json_t *http_read_json_object(struct evhttp_request *req, const char **err)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        *err = "request body must be a JSON object";
        return NULL;
    }
    const char *data = (const char *)evbuffer_pullup(in, -1);
    if (!data) {
        *err = "cannot read request body";
        return NULL;
    }
    /* A raw NUL byte is never valid JSON, but jansson stops reading at one and can accept what came
     * before; the data, kept as sent, would then carry it into the stream. */
    if (memchr(data, '\0', len)) {
        *err = "malformed JSON";
        return NULL;
    }
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON and the data is the user's business.
     * JSON_DECODE_INT_AS_REAL: integers beyond 64 bits are valid JSON too (the data is kept as
     * sent, see json_raw.h; this parse only validates it). */
    json_t *root = json_loadb(data, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        *err = "malformed JSON";
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *err = "request body must be a JSON object";
        return NULL;
    }
    return root;
}

const char *http_bearer_token(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

const char *http_peer(struct evhttp_request *req, char *buf, size_t cap)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (!evcon) {
        snprintf(buf, cap, "(gone)");
        return buf;
    }
    evhttp_connection_get_peer(evcon, &addr, &port);
    snprintf(buf, cap, "%s:%u", addr ? addr : "?", (unsigned)port);
    return buf;
}
