/* http/reply: JSON in, JSON out, CORS on every answer. */
#include "http/reply.h"

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

void http_add_cors(struct http_request *req, const struct config *cfg)
{
    /* Without this a cross-origin page could not read when to retry, or that an insert was a
     * replay: neither is a CORS-safelisted response header. */
    http_add_header(req, "Access-Control-Expose-Headers", "Retry-After, Idempotent-Replayed");
    if (strcmp(cfg->origin, "*") == 0) {
        http_add_header(req, "Access-Control-Allow-Origin", "*");
        return;
    }
    /* Echoed only when it matches an entry of our own list, so it never carries other bytes. */
    const char *origin = http_header(req, "Origin");
    if (origin && origin_listed(cfg->origin, origin))
        http_add_header(req, "Access-Control-Allow-Origin", origin);
    /* The answer depends on Origin, so caches must key on it even when nothing matched. */
    http_add_header(req, "Vary", "Origin");
}

void http_reply_json(struct http_request *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        http_reply(req, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_reply(req, status, "application/json", text, strlen(text));
    free(text);
}

static const char *method_name(int m)
{
    return m >= 0 ? http_method_str((enum http_method)m) : "?";
}

void http_reply_error(struct http_request *req, int status, const char *message)
{
    enum log_level level = status >= 500 ? LOG_ERROR : status == 401 ? LOG_DEBUG : LOG_INFO;
    /* The path only: a query string can hold a stream ticket. */
    if (log_enabled(level))
        log_write(level, "http %d %s %.200s from %s: %s", status, method_name(req->method),
                  req->path ? req->path : "?", req->peer, message);
    http_reply_json(req, status, json_pack("{s:s}", "error", message));
}

json_t *http_read_json_object(struct http_request *req, const char **err)
{
    const char *data = req->body;
    size_t len = req->body_len;
    if (len == 0) {
        *err = "request body must be a JSON object";
        return NULL;
    }
    /* A raw NUL byte is never valid JSON, but jansson stops reading at one and can accept what came
     * before; the data, kept as sent, would then carry it into the stream. */
    if (memchr(data, '\0', len)) {
        *err = "malformed JSON";
        return NULL;
    }
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON and the data is the user's business. Integers beyond
     * 64 bits are valid JSON too (the data is kept as sent, see json_raw.h; this parse only
     * validates it): jansson refuses them unless they are read as reals, which costs a strtod per
     * integer, so that second reading is only for bodies that need it. */
    json_t *root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    if (!root && json_error_code(&jerr) == json_error_numeric_overflow)
        root = json_loadb(data, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
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

const char *http_bearer_token(struct http_request *req)
{
    const char *h = http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}
