/* api/router: path + method → handler, CORS on every answer, OPTIONS preflight on every path,
 * JSON 404/405 for everything else. */
#include "api/api.h"

#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "http/reply.h"
#include "loop.h"
#include "metrics.h"
#include "token_cache.h"

struct route {
    const char *path;
    enum evhttp_cmd_type method;
    void (*handler)(struct loop *l, struct evhttp_request *req);
};

static const struct route routes[] = {
    { "/users", EVHTTP_REQ_POST, api_users },
    { "/login", EVHTTP_REQ_POST, api_login },
    { "/insert", EVHTTP_REQ_POST, api_insert },
    { "/sse", EVHTTP_REQ_GET, api_sse },
    { "/sse/ticket", EVHTTP_REQ_POST, api_sse_ticket },
    { "/healthz", EVHTTP_REQ_GET, api_healthz },
    { "/metrics", EVHTTP_REQ_GET, api_metrics },
};

static void reply_preflight(struct evhttp_request *req)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    evhttp_add_header(out, "Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID");
    evhttp_add_header(out, "Access-Control-Max-Age", "86400");
    evhttp_send_reply(req, 204, "No Content", NULL);
}

/* Counts every answered request by route and status (streams count themselves when they start). */
static void count_completed(struct evhttp_request *req, void *arg)
{
    struct loop *l = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    metrics_count_request(&l->app->metrics, metrics_route_of(uri ? evhttp_uri_get_path(uri) : NULL),
                          evhttp_request_get_response_code(req));
}

void api_dispatch(struct evhttp_request *req, void *arg)
{
    struct loop *l = arg;
    evhttp_request_set_on_complete_cb(req, count_completed, l);
    http_add_cors(req, l->app->cfg);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path) {
        http_reply_error(req, 400, "malformed request URI");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_OPTIONS) {
        reply_preflight(req);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (method != routes[i].method) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                              routes[i].method == EVHTTP_REQ_GET ? "GET, OPTIONS" : "POST, OPTIONS");
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

int api_authenticate(struct loop *l, struct evhttp_request *req, int allow_ticket,
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
