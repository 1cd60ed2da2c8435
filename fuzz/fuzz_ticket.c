/* fuzz_ticket: the query string of GET /sse, read the way the server reads it: the request target
 * "/sse?<input>" through http_parser_parse_url (as http/conn.c does) for the query, then
 * evhttp_parse_query_str (as api/sse.c does); its "ticket" value goes through
 * auth_token_verify, "events" through event_filter_parse / event_filter_match.
 * ("lastEventId" is read by a static function of api/sse.c, which only fuzz_request reaches.)
 * The literal "@T" in the input is replaced by a valid ticket and "@L" by a valid login token
 * before parsing, so the ticket checks behind the signature are reached as well.
 * Invariants: never crash; when the decoded ticket is exactly one we minted it verifies, with
 * scope "sse" for the ticket and "" for the login token; an accepted filter matches each name
 * of the list and nothing that was not in it. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <http_parser.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "auth.h"
#include "event_filter.h"
#include "validate.h"

#define NOW 1700000000L
static const char secret[] = "fuzz-secret-0123456789abcdef-0123456789";
static char *ticket, *login_token;

static void fail(const char *what, const char *qs)
{
    fprintf(stderr, "fuzz_ticket: %s\nquery: %.3000s\n", what, qs);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    struct token_claims c = { .sub = "0123456789abcdef0123456789abcdef", .username = "fuzz",
                              .iat = NOW - 10, .exp = NOW + 3600, .scope = AUTH_SCOPE_SSE };
    ticket = auth_token_issue((const unsigned char *)secret, strlen(secret), &c);
    c.scope[0] = '\0';
    login_token = auth_token_issue((const unsigned char *)secret, strlen(secret), &c);
    if (!ticket || !login_token)
        abort();
    return 0;
}

/* "/sse?" + input with the placeholders expanded, NUL-terminated (a request line holds no NUL,
 * so the input ends at its first one). */
static char *build_uri(const uint8_t *data, size_t size)
{
    size_t cap = 5 + size * (strlen(ticket) + 1) + 1;
    char *uri = malloc(cap), *p = uri;
    if (!uri)
        abort();
    memcpy(p, "/sse?", 5);
    p += 5;
    for (size_t i = 0; i < size && data[i]; i++) {
        if (data[i] == '@' && i + 1 < size && (data[i + 1] == 'T' || data[i + 1] == 'L')) {
            const char *t = data[i + 1] == 'T' ? ticket : login_token;
            memcpy(p, t, strlen(t));
            p += strlen(t);
            i++;
            continue;
        }
        *p++ = (char)data[i];
    }
    *p = '\0';
    return uri;
}

static void check_filter(const char *list, const struct event_filter *f)
{
    /* Every non-empty item of the list is a name the filter matches. */
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0 && !event_filter_match(f, p, len))
            fail("an accepted filter does not match one of its names", list);
        if (len > 0 && validate_event_name(p, len) != NULL)
            fail("an accepted filter holds an invalid event name", list);
        if (!comma)
            break;
        p = comma + 1;
    }
    /* Names that cannot be in the list: empty, and one longer than any item. */
    if (event_filter_match(f, "", 0))
        fail("a filter matches the empty name", list);
    char longer[EVENT_NAME_MAX + 2];
    memset(longer, 'x', sizeof longer);
    if (event_filter_match(f, longer, sizeof longer))
        fail("a filter matches a name longer than 255 bytes", list);
    /* The adapter snapshot.c uses agrees. */
    if (event_filter_match_fn(list, strcspn(list, ","), (void *)f) !=
        event_filter_match(f, list, strcspn(list, ",")))
        fail("event_filter_match_fn disagrees with event_filter_match", list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *uri_text = build_uri(data, size);
    struct http_parser_url u;
    http_parser_url_init(&u);
    char *qs = NULL;
    if (http_parser_parse_url(uri_text, strlen(uri_text), 0, &u) == 0 && (u.field_set & (1 << UF_QUERY))) {
        qs = uri_text + u.field_data[UF_QUERY].off;
        qs[u.field_data[UF_QUERY].len] = '\0';
    }
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    if (qs && evhttp_parse_query_str(qs, &query) == 0) {
        const char *t = evhttp_find_header(&query, "ticket");
        if (t) {
            struct token_claims c;
            const char *reason = NULL;
            int rc = auth_token_verify((const unsigned char *)secret, strlen(secret), t, NOW, &c, &reason);
            if (strcmp(t, ticket) == 0 && (rc != 0 || strcmp(c.scope, AUTH_SCOPE_SSE) != 0))
                fail("our own ticket does not verify as a ticket", qs);
            if (strcmp(t, login_token) == 0 && (rc != 0 || c.scope[0] != '\0'))
                fail("our own login token does not verify as a login token", qs);
            if (rc != 0 && (!reason || !*reason))
                fail("refused without a reason", qs);
        }
        const char *events = evhttp_find_header(&query, "events");
        if (events) {
            struct event_filter *f = NULL;
            const char *reason = NULL;
            if (event_filter_parse(events, &f, &reason) == 0) {
                if (!f)
                    fail("event_filter_parse succeeded without a filter", qs);
                check_filter(events, f);
                event_filter_free(f);
            } else if (f || !reason || !*reason) {
                fail("event_filter_parse failed without a reason or left a filter", qs);
            }
        }
        /* What api/sse.c reads, so that each lookup is exercised. */
        (void)evhttp_find_header(&query, "lastEventId");
    }
    evhttp_clear_headers(&query);
    free(uri_text);
    return 0;
}
