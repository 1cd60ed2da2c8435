/* api/router: path + method → handler, CORS on every answer, OPTIONS preflight on every path,
 * JSON 404/405 for everything else, and the JSON answer to what the HTTP layer refuses by itself
 * (malformed, too large, too slow). */
#include "api/api.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "access/directory.h"
#include "app.h"
#include "http/reply.h"
#include "loop.h"
#include "metrics.h"
#include "token_cache.h"

struct route {
    const char *path;
    enum http_method method;
    void (*handler)(struct loop *l, struct http_request *req);
};

static const struct route routes[] = {
    { "/users", HTTP_POST, api_users },
    { "/login", HTTP_POST, api_login },
    { "/insert", HTTP_POST, api_insert },
    { "/sse", HTTP_GET, api_sse },
    { "/sse/ticket", HTTP_POST, api_sse_ticket },
    { "/healthz", HTTP_GET, api_healthz },
    { "/metrics", HTTP_GET, api_metrics },
};

/* The identity routes (SPEC §5) are families of paths with methods of their own; their handlers
 * route within the family. */
static bool is_admin_path(const char *path)
{
    return strcmp(path, "/admin") == 0 || strncmp(path, "/admin/", 7) == 0;
}
static bool is_me_path(const char *path) { return strncmp(path, "/users/me", 9) == 0 && (!path[9] || path[9] == '/'); }

static void reply_preflight(struct http_request *req)
{
    bool identity = is_admin_path(req->path) || is_me_path(req->path);
    http_add_header(req, "Access-Control-Allow-Methods",
                    api_admin_console_path(req->path) ? "GET, HEAD, OPTIONS"
                    : identity                        ? "GET, POST, PATCH, DELETE, OPTIONS"
                                                      : "GET, POST, OPTIONS");
    http_add_header(req, "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Last-Event-ID, Idempotency-Key");
    http_add_header(req, "Access-Control-Max-Age", "86400");
    http_reply(req, 204, "application/json", "", 0);
}

void api_refuse(struct http_request *req, int status, const char *message, void *arg)
{
    struct loop *l = arg;
    req->route = metrics_route_of(req->path);
    http_add_cors(req, l->app->cfg);
    if (status == 408 || status == 429) /* a 503 gets one from http_reply */
        http_add_header(req, "Retry-After", "1");
    http_reply_error(req, status, message);
}

void api_dispatch(struct http_request *req, void *arg)
{
    struct loop *l = arg;
    const char *path = req->path;
    req->route = metrics_route_of(path);
    http_add_cors(req, l->app->cfg);
    if (req->method == HTTP_OPTIONS) {
        reply_preflight(req);
        return;
    }
    /* The console's paths are under /admin too: they go first, since they need no admin token
     * (a browser opening the page cannot send one) and the admin API has none of them. */
    void (*family)(struct loop *, struct http_request *) =
        api_admin_console_path(path) ? api_admin_console
        : is_admin_path(path)        ? api_admin
        : is_me_path(path)           ? api_me
                                     : NULL;
    if (family) {
        if (atomic_load(&l->app->draining))
            http_reply_error(req, 503, "server is shutting down");
        else
            family(l, req);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (req->method != (int)routes[i].method) {
            http_add_header(req, "Allow", routes[i].method == HTTP_GET ? "GET, OPTIONS" : "POST, OPTIONS");
            http_reply_error(req, 405, "method not allowed");
            return;
        }
        if (atomic_load(&l->app->draining) && routes[i].handler != api_healthz) {
            http_reply_error(req, 503, "server is shutting down");
            return;
        }
        routes[i].handler(l, req);
        return;
    }
    http_reply_error(req, 404, "not found");
}

int api_authenticate(struct loop *l, struct http_request *req, int allow_ticket,
                     struct token_claims *claims)
{
    const char *token = http_bearer_token(req);
    if (!token) {
        http_reply_error(req, 401, "missing bearer token");
        return -1;
    }
    const char *reason;
    if (token_cache_verify(l->tokens, l->app->secret, l->app->secret_len, token, (long)time(NULL),
                           claims, &reason) != 0) {
        http_reply_error(req, 401, reason);
        return -1;
    }
    if (claims->scope[0] != '\0' && !(allow_ticket && strcmp(claims->scope, AUTH_SCOPE_SSE) == 0)) {
        http_reply_error(req, 401, "this token cannot be used here");
        return -1;
    }
    return api_token_current(l, req, claims);
}

int api_token_current(struct loop *l, struct http_request *req, const struct token_claims *claims)
{
    const char *reason;
    if (directory_check(l->app->directory, claims->sub, claims->ver, &reason) != 0) {
        http_reply_error(req, 401, reason);
        return -1;
    }
    return 0;
}

int api_string_member(json_t *object, const char *name, const char **out, size_t *len, char *err,
                      size_t errcap)
{
    json_t *v = json_object_get(object, name);
    if (!v) {
        snprintf(err, errcap, "%s is required", name);
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(err, errcap, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}
