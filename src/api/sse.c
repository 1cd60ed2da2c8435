/* api/sse: GET /sse and POST /sse/ticket. Reads the stream options (credential, Last-Event-ID,
 * filter), decides between snapshot, resume and reset, and hands the request to the loop's hub,
 * which owns it from then on. */
#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <sys/queue.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "app.h"
#include "event_filter.h"
#include "http/reply.h"
#include "hub.h"
#include "loop.h"
#include "metrics.h"
#include "snapshot.h"
#include "token_cache.h"

/* A Last-Event-ID is a non-negative decimal integer that fits an event id; anything else cannot
 * be resumed from. */
static int parse_event_id(const char *s, int64_t *out)
{
    if (!*s)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* Authenticates a stream: a bearer token (login token or ticket) in the header, else a ticket in
 * the URL. A login token is never accepted in a URL: URLs end up in logs and histories. */
static int authenticate_stream(struct loop *l, struct http_request *req, const char *url_ticket,
                               struct token_claims *claims)
{
    if (http_bearer_token(req) || !url_ticket)
        return api_authenticate(l, req, 1, claims);
    const char *reason;
    if (token_cache_verify(l->tokens, l->app->secret, l->app->secret_len, url_ticket,
                           (long)time(NULL), claims, &reason) != 0) {
        http_reply_error(req, 401, reason);
        return -1;
    }
    if (strcmp(claims->scope, AUTH_SCOPE_SSE) != 0) {
        http_reply_error(req, 401, "only a ticket from POST /sse/ticket is accepted in the URL");
        return -1;
    }
    return api_token_current(l, req, claims);
}

void api_sse(struct loop *l, struct http_request *req)
{
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    const char *qs = req->query;
    /* libevent's query decoder (evhttp_parse_query_str) yields C strings: a %00 would silently cut
     * a value short ("a%00b" -> "a"). */
    if (qs && (strstr(qs, "%00") || evhttp_parse_query_str(qs, &query) != 0)) {
        http_reply_error(req, 400, "malformed query string");
        return;
    }
    struct token_claims claims;
    struct stream_request sr = { 0 };
    if (authenticate_stream(l, req, evhttp_find_header(&query, "ticket"), &claims) != 0)
        goto out;
    sr.exp = claims.exp;
    sr.iat = claims.iat;
    sr.who = &claims;

    const char *events = evhttp_find_header(&query, "events");
    if (events) {
        const char *reason;
        if (event_filter_parse(events, &sr.filter, &reason) != 0) {
            http_reply_error(req, 400, reason);
            goto out;
        }
    }
    /* The header wins: it is what a reconnecting EventSource sends. */
    const char *last = http_header(req, "Last-Event-ID");
    if (!last || !*last)
        last = evhttp_find_header(&query, "lastEventId");
    if (last && *last) {
        int64_t id;
        if (parse_event_id(last, &id) != 0)
            sr.reset_reason = "Last-Event-ID is not an event id";
        else if (id > snapshot_watermark(l->app->snapshot) &&
                 (!l->app->engine || id > atomic_load(&l->app->stream_last)))
            sr.reset_reason = "Last-Event-ID is ahead of the store (was it replaced?)";
        /* (Cluster mode: an id the stream holds but this node has not applied yet is resumed from:
         * the events after it arrive as the node catches up.) */
        else {
            sr.resume = true;
            sr.resume_after = id;
        }
    }
    if (hub_subscribe(l->hub, req, &sr) != 0)
        http_reply_error(req, 500, "out of memory");
out:
    event_filter_free(sr.filter);
    evhttp_clear_headers(&query);
}

void api_sse_ticket(struct loop *l, struct http_request *req)
{
    struct token_claims claims;
    if (api_authenticate(l, req, 0, &claims) != 0)
        return;
    long now = (long)time(NULL);
    struct token_claims ticket = claims;
    ticket.iat = now;
    ticket.exp = now + l->app->cfg->ticket_ttl;
    if (ticket.exp > claims.exp)
        ticket.exp = claims.exp; /* never outlives the login token */
    strcpy(ticket.scope, AUTH_SCOPE_SSE);
    char *token = auth_token_issue(l->app->secret, l->app->secret_len, &ticket);
    if (!token) {
        http_reply_error(req, 500, "cannot issue a ticket");
        return;
    }
    http_reply_json(req, 200, json_pack("{s:s, s:I}", "ticket", token, "expires_in",
                                        (json_int_t)(ticket.exp - now)));
    free(token);
}
