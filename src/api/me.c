/* api/me: a logged-in user's own account (SPEC §5). Login tokens only (a stream ticket is refused).
 *
 *   GET    /users/me                   {"id", "username", "roles", "totp"}
 *   POST   /users/me/password          {"password", "new_password"}: older tokens stop working
 *   POST   /users/me/totp              a new pending secret: {"secret", "uri", "qr_svg"}
 *   POST   /users/me/totp/confirm      {"code"}: TOTP is on from then on
 *   DELETE /users/me/totp              {"code"} (a current code): TOTP is off */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/qr_svg.h"
#include "access/totp.h"
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

static void get_me(struct loop *l, struct http_request *req, const struct token_claims *me)
{
    struct user_record u;
    struct user_watch *index = l->app->user_watch;
    int rc = index ? user_watch_get(index, me->sub, &u) : store_user_by_id(l->reader, me->sub, &u);
    if (rc == -ENOENT)
        http_reply_error(req, 404, "no such user");
    else if (rc != 0)
        http_reply_error(req, 500, "cannot read the user");
    else
        http_reply_json(req, 200, api_user_json(&u, 0));
    sodium_memzero(&u, sizeof u);
}

static void password_changed(struct user_update *u, int rc)
{
    if (rc == -EPERM) {
        http_reply_error(u->req, 401, "invalid password");
        return;
    }
    if (user_update_common_error(u, rc))
        return;
    if (rc != 0) {
        http_reply_error(u->req, 500, "cannot change the password");
        return;
    }
    log_info("users: user %s changed their password (token version %lld)", u->user.id,
             (long long)u->user.ver);
    http_reply_json(u->req, 200, api_user_json(&u->user, 0));
}

static void change_password(struct loop *l, struct http_request *req, const struct token_claims *me)
{
    const char *err, *old, *next;
    size_t old_len, next_len;
    char reason[96];
    json_t *root = http_read_json_object(req, &err);
    if (!root) {
        http_reply_error(req, 400, err);
        return;
    }
    if (api_string_member(root, "password", &old, &old_len, reason, sizeof reason) != 0 ||
        api_string_member(root, "new_password", &next, &next_len, reason, sizeof reason) != 0) {
        http_reply_error(req, 400, reason);
        json_decref(root);
        return;
    }
    const char *bad = validate_password(next, next_len);
    if (bad) {
        snprintf(reason, sizeof reason, "new_%s", bad); /* "new_password must be ..." */
        http_reply_error(req, 400, reason);
        json_decref(root);
        return;
    }
    struct user_update *u = user_update_new(l, req, me->sub, me->username, password_changed);
    if (!u || user_update_set_password(u, next, next_len, old, old_len) != 0) {
        user_update_discard(u);
        json_decref(root);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    json_decref(root);
    u->reason = "password changed";
    user_update_submit(u);
}

/* The code of a TOTP body ({"code": "123456"}) into u->code; 0, or -1 after a 400. */
static int read_code(struct http_request *req, struct user_update *u)
{
    const char *err, *code;
    size_t len;
    char reason[64];
    json_t *root = http_read_json_object(req, &err);
    if (!root) {
        http_reply_error(req, 400, err);
        return -1;
    }
    int rc = api_string_member(root, "code", &code, &len, reason, sizeof reason);
    if (rc == 0 && len >= sizeof u->code) {
        snprintf(reason, sizeof reason, "code must be 6 digits");
        rc = -1;
    }
    if (rc == 0) {
        memcpy(u->code, code, len);
        u->change.totp_code = u->code;
        u->change.totp_code_len = len;
        u->change.now = (int64_t)time(NULL);
    } else {
        http_reply_error(req, 400, reason);
    }
    json_decref(root);
    return rc;
}

static void totp_enrolled(struct user_update *u, int rc)
{
    if (rc == -EALREADY) {
        http_reply_error(u->req, 409, "TOTP is already on: turn it off first (DELETE /users/me/totp)");
        return;
    }
    if (user_update_common_error(u, rc))
        return;
    if (rc != 0) {
        http_reply_error(u->req, 500, "cannot enrol TOTP");
        return;
    }
    const struct config *cfg = u->loop->app->cfg;
    char *uri = totp_uri(cfg->totp_issuer, u->user.username, u->user.username_len, u->totp_secret);
    char *svg = uri ? qr_svg(uri) : NULL;
    if (!uri) {
        http_reply_error(u->req, 500, "out of memory");
    } else {
        log_info("users: user %s began a TOTP enrolment", u->user.id);
        http_reply_json(u->req, 200, json_pack("{s:s, s:s, s:s*}", "secret", u->totp_secret, "uri", uri,
                                               "qr_svg", svg));
    }
    if (svg) {
        sodium_memzero(svg, strlen(svg)); /* the secret, drawn */
        free(svg);
    }
    if (uri) {
        sodium_memzero(uri, strlen(uri));
        free(uri);
    }
}

static void totp_checked(struct user_update *u, int rc)
{
    bool confirm = u->change.totp == USER_TOTP_CONFIRM;
    if (rc == -EACCES) { /* (-EINVAL, a stored secret that does not decode, is our fault: 500) */
        http_reply_error(u->req, 401, "invalid TOTP code");
        return;
    }
    if (rc == -ENODATA) {
        http_reply_error(u->req, 409, confirm ? "no TOTP enrolment to confirm (POST /users/me/totp first)"
                                              : "TOTP is off");
        return;
    }
    if (user_update_common_error(u, rc))
        return;
    if (rc != 0) {
        http_reply_error(u->req, 500, "cannot change TOTP");
        return;
    }
    log_info("users: user %s turned TOTP %s", u->user.id, confirm ? "on" : "off");
    http_reply_json(u->req, 200, api_user_json(&u->user, 0));
}

static void totp_route(struct loop *l, struct http_request *req, const struct token_claims *me,
                       enum user_totp_op op)
{
    struct user_update *u =
        user_update_new(l, req, me->sub, me->username, op == USER_TOTP_ENROL ? totp_enrolled : totp_checked);
    if (!u) {
        http_reply_error(req, 500, "out of memory");
        return;
    }
    u->change.totp = op;
    if (op == USER_TOTP_ENROL) {
        if (totp_new_secret(u->totp_secret) != 0) {
            user_update_discard(u);
            http_reply_error(req, 500, "cannot make a secret");
            return;
        }
        u->change.totp_secret_new = u->totp_secret;
    } else if (read_code(req, u) != 0) {
        user_update_discard(u);
        return;
    }
    user_update_submit(u);
}

static void method_not_allowed(struct http_request *req, const char *allow)
{
    http_add_header(req, "Allow", allow);
    http_reply_error(req, 405, "method not allowed");
}

void api_me(struct loop *l, struct http_request *req)
{
    const char *path = req->path;
    bool me = strcmp(path, "/users/me") == 0, password = strcmp(path, "/users/me/password") == 0,
         totp = strcmp(path, "/users/me/totp") == 0, confirm = strcmp(path, "/users/me/totp/confirm") == 0;
    if (!me && !password && !totp && !confirm) {
        http_reply_error(req, 404, "not found");
        return;
    }
    int method = req->method;
    if ((me && method != HTTP_GET) || ((password || confirm) && method != HTTP_POST) ||
        (totp && method != HTTP_POST && method != HTTP_DELETE)) {
        method_not_allowed(req, me ? "GET, OPTIONS" : totp ? "POST, DELETE, OPTIONS" : "POST, OPTIONS");
        return;
    }
    struct token_claims claims;
    if (api_authenticate(l, req, 0, &claims) != 0)
        return;
    if (me)
        get_me(l, req, &claims);
    else if (password)
        change_password(l, req, &claims);
    else if (confirm)
        totp_route(l, req, &claims, USER_TOTP_CONFIRM);
    else
        totp_route(l, req, &claims, method == HTTP_POST ? USER_TOTP_ENROL : USER_TOTP_DISABLE);
}
