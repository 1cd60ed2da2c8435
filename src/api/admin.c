/* api/admin: the admin API (SPEC §5), behind --admin_token. Without the flag every /admin route
 * answers 404, as if it did not exist. Every change is logged (who: "admin", what, which user;
 * never a password) and counted.
 *
 *   GET   /admin/users?after=<id>&limit=<n>   a page of users in id order, and the next cursor
 *   GET   /admin/users/<id>
 *   POST  /admin/users   {"username", "password", "roles"?}   (also with --registration=admin)
 *   PATCH /admin/users/<id>   {"password"?, "roles"?, "revoked"?} */
#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "access/user.h"
#include "api/api.h"
#include "api/user_update.h"
#include "app.h"
#include "cluster/user_watch.h"
#include "http/reply.h"
#include "log.h"
#include "loop.h"
#include "store/store.h"
#include "validate.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

/* Constant time whatever the lengths: both sides are hashed first. */
static int admin_token_matches(const char *given, const char *expected)
{
    unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
    crypto_generichash(a, sizeof a, (const unsigned char *)given, strlen(given), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)expected, strlen(expected), NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

struct page {
    json_t *users;
    char last[AUTH_ID_MAX];
};

static int page_row(void *arg, const struct user_record *u)
{
    struct page *p = arg;
    memcpy(p->last, u->id, sizeof p->last);
    return json_array_append_new(p->users, api_user_json(u, 1)) == 0 ? 0 : -ENOMEM;
}

static void list_users(struct loop *l, struct http_request *req)
{
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    if (req->query && evhttp_parse_query_str(req->query, &query) != 0) {
        http_reply_error(req, 400, "malformed query string");
        return;
    }
    const char *after = evhttp_find_header(&query, "after");
    const char *limit_text = evhttp_find_header(&query, "limit");
    long limit = PAGE_DEFAULT;
    if (limit_text) {
        char *end;
        limit = strtol(limit_text, &end, 10);
        if (!*limit_text || *end || limit < 1 || limit > PAGE_MAX) {
            http_reply_error(req, 400, "limit must be 1 to 1000");
            evhttp_clear_headers(&query);
            return;
        }
    }
    struct page p = { .users = json_array() };
    int rows = 0;
    /* An indexed read of at most PAGE_MAX rows on the loop's read-only connection, like a page of
     * a resume; in a cluster, the node's index of the users bucket (memory only). */
    struct user_watch *index = l->app->user_watch;
    int rc = !p.users ? -ENOMEM
             : index  ? user_watch_each(index, after, (int)limit, page_row, &p, &rows)
                      : store_each_user(l->reader, after, (int)limit, page_row, &p, &rows);
    evhttp_clear_headers(&query);
    if (rc != 0) {
        json_decref(p.users);
        http_reply_error(req, 500, "cannot read the users");
        return;
    }
    json_t *next = rows == limit ? json_string(p.last) : json_null();
    http_reply_json(req, 200, json_pack("{s:o, s:o}", "users", p.users, "next", next));
}

/* User id, without blocking the loop on the network: the store, or the cluster's index. */
static int find_user(struct loop *l, const char *id, struct user_record *u)
{
    struct user_watch *index = l->app->user_watch;
    return index ? user_watch_get(index, id, u) : store_user_by_id(l->reader, id, u);
}

static void get_user(struct loop *l, struct http_request *req, const char *id)
{
    struct user_record u;
    int rc = find_user(l, id, &u);
    if (rc == -ENOENT)
        http_reply_error(req, 404, "no such user");
    else if (rc != 0)
        http_reply_error(req, 500, "cannot read the user");
    else
        http_reply_json(req, 200, api_user_json(&u, 1));
    sodium_memzero(&u, sizeof u);
}

static void patched(struct user_update *u, int rc)
{
    if (user_update_common_error(u, rc))
        return;
    if (rc != 0) {
        http_reply_error(u->req, 500, "cannot change the user");
        return;
    }
    atomic_fetch_add_explicit(&u->loop->app->metrics.admin_actions, 1, memory_order_relaxed);
    log_info("admin: changed user %s (%s; roles [%s], revoked %s, token version %lld)", u->user.id,
             u->reason, u->user.roles, u->user.revoked ? "yes" : "no", (long long)u->user.ver);
    http_reply_json(u->req, 200, api_user_json(&u->user, 1));
}

static void patch_user(struct loop *l, struct http_request *req, const char *id)
{
    const char *err;
    json_t *root = http_read_json_object(req, &err);
    if (!root) {
        http_reply_error(req, 400, err);
        return;
    }
    /* The cluster keys records by username: learn it from the index (and answer 404 at once). */
    struct user_record known;
    int found = find_user(l, id, &known);
    if (found != 0) {
        json_decref(root);
        if (found == -ENOENT)
            http_reply_error(req, 404, "no such user");
        else
            http_reply_error(req, 500, "cannot read the user");
        return;
    }
    struct user_update *u = user_update_new(l, req, id, known.username, patched);
    sodium_memzero(&known, sizeof known);
    if (!u) {
        json_decref(root);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    int has_roles = 0;
    json_t *password = json_object_get(root, "password");
    json_t *revoked = json_object_get(root, "revoked");
    const char *bad = NULL;
    if (api_read_roles(req, root, u->roles, &has_roles) != 0)
        goto answered;
    else if (password && !json_is_string(password))
        bad = "password must be a string";
    else if (password && (bad = validate_password(json_string_value(password), json_string_length(password))))
        ;
    else if (revoked && !json_is_boolean(revoked))
        bad = "revoked must be true or false";
    else if (!password && !revoked && !has_roles)
        bad = "nothing to change: give password, roles or revoked";
    if (bad) {
        http_reply_error(req, 400, bad);
        goto answered;
    }
    if (has_roles)
        u->change.roles = u->roles;
    if (revoked)
        u->change.revoked = json_is_true(revoked);
    u->reason = revoked && json_is_true(revoked) ? "user revoked"
                : password                          ? "password changed"
                : has_roles                         ? "roles changed"
                                                    : "user changed";
    if (password && user_update_set_password(u, json_string_value(password), json_string_length(password),
                                              NULL, 0) != 0) {
        http_reply_error(req, 500, "out of memory");
        goto answered;
    }
    json_decref(root);
    user_update_submit(u);
    return;
answered:
    json_decref(root);
    user_update_discard(u);
}

void api_admin(struct loop *l, struct http_request *req)
{
    const struct config *cfg = l->app->cfg;
    if (!cfg->admin_token) {
        http_reply_error(req, 404, "not found");
        return;
    }
    const char *token = http_bearer_token(req);
    if (!token || !admin_token_matches(token, cfg->admin_token)) {
        log_info("admin: refused a request to %s from %s (%s admin token)", req->path, req->address,
                 token ? "wrong" : "no");
        http_reply_error(req, 401, "missing or wrong admin token");
        return;
    }
    const char *path = req->path;
    if (strcmp(path, "/admin/users") == 0) {
        if (req->method == HTTP_GET)
            list_users(l, req);
        else if (req->method == HTTP_POST)
            api_create_user(l, req, 1);
        else {
            http_add_header(req, "Allow", "GET, POST, OPTIONS");
            http_reply_error(req, 405, "method not allowed");
        }
        return;
    }
    const char *id = strncmp(path, "/admin/users/", 13) == 0 ? path + 13 : NULL;
    if (!id || !*id || strlen(id) >= AUTH_ID_MAX || strchr(id, '/')) {
        http_reply_error(req, 404, id && *id ? "no such user" : "not found");
        return;
    }
    if (req->method == HTTP_GET)
        get_user(l, req, id);
    else if (req->method == HTTP_PATCH)
        patch_user(l, req, id);
    else {
        http_add_header(req, "Allow", "GET, PATCH, OPTIONS");
        http_reply_error(req, 405, "method not allowed");
    }
}
