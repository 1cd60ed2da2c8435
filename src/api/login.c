/* api/login: POST /login. A worker looks the user up and verifies the Argon2id hash; an unknown
 * user is verified against a dummy hash so both failures cost the same time and read the same.
 * A revoked user gets 403 only after the right password (SPEC §5). A user with TOTP on also sends
 * {"totp": "123456"}: the writer checks the code and records its step (a code works once), and
 * the loop issues the token once that is committed; in a cluster the worker records the step in
 * the users bucket with a compare-and-set. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/user.h"
#include "api/api.h"
#include "app.h"
#include "cluster/users.h"
#include "http/reply.h"
#include "log.h"
#include "loop.h"
#include "store/store.h"
#include "throttle.h"
#include "workers.h"
#include "writer.h"

/* Results of the check beyond 0 and storage errors. */
#define LOGIN_WRONG (-EACCES)        /* unknown user or wrong password: 401 */
#define LOGIN_REVOKED (-EPERM)       /* right password, revoked user: 403 */
#define LOGIN_TOTP_MISSING (-ENOKEY) /* right password, TOTP on, no code: 401 */
#define LOGIN_TOTP_WRONG (-EKEYREJECTED) /* right password, wrong or replayed code: 401 */

struct login_request {
    struct work work;
    struct writer_job job; /* TOTP: records the code's step; job.done answers */
    struct task done;
    struct loop *loop;
    struct http_request *req;
    char *username;
    size_t username_len;
    char *password;
    size_t password_len;
    char *totp; /* the code, or NULL */
    size_t totp_len;
    int result;
    char address[64];
    struct user_record user;
    struct user_change change;
};

static void login_request_free(struct login_request *r)
{
    free(r->username);
    if (r->password) {
        sodium_memzero(r->password, r->password_len);
        free(r->password);
    }
    free(r->totp);
    sodium_memzero(&r->user, sizeof r->user);
    free(r);
}

static void reply_token(struct login_request *r)
{
    struct app *app = r->loop->app;
    struct token_claims c = { .iat = (long)time(NULL), .ver = (long)r->user.ver };
    c.exp = c.iat + app->cfg->jwt_expiry;
    memcpy(c.sub, r->user.id, sizeof c.sub);
    memcpy(c.username, r->username, r->username_len + 1);
    memcpy(c.roles, r->user.roles, sizeof c.roles);
    char *token = auth_token_issue(app->secret, app->secret_len, &c);
    if (!token) {
        http_reply_error(r->req, 500, "cannot issue a token");
        return;
    }
    throttle_clear(app->login_by_user, r->username, r->username_len);
    http_reply_json(r->req, 200, json_pack("{s:s}", "jwt", token));
    free(token);
}

/* On the loop: the answer. */
static void answer(struct login_request *r, int result)
{
    struct app *app = r->loop->app;
    long now = (long)time(NULL);
    switch (result) {
    case 0:
        reply_token(r);
        break;
    case LOGIN_TOTP_MISSING:
    case LOGIN_TOTP_WRONG:
        atomic_fetch_add_explicit(&app->metrics.totp_failures, 1, memory_order_relaxed);
        /* fall through: counted by the throttle like a wrong password */
    case LOGIN_WRONG:
        throttle_fail(app->login_by_user, r->username, r->username_len, now);
        throttle_fail(app->login_by_address, r->address, strlen(r->address), now);
        http_reply_error(r->req, 401, result == LOGIN_WRONG          ? "invalid username or password"
                                      : result == LOGIN_TOTP_MISSING ? "a TOTP code is required (\"totp\")"
                                                                     : "invalid TOTP code");
        break;
    case LOGIN_REVOKED:
        http_reply_error(r->req, 403, "user revoked");
        break;
    case -ESHUTDOWN:
        http_reply_error(r->req, 503, "server is shutting down");
        break;
    case -EAGAIN:
        http_reply_error(r->req, 503, "the cluster cannot read users now");
        break;
    default:
        http_reply_error(r->req, 500, "cannot check credentials");
        break;
    }
    login_request_free(r);
}

static void login_done(struct task *t)
{
    struct login_request *r = (struct login_request *)((char *)t - offsetof(struct login_request, done));
    answer(r, r->result);
}

/* The writer checked the TOTP code (and recorded its step). */
static void totp_done(struct task *t)
{
    struct login_request *r =
        (struct login_request *)((char *)t - offsetof(struct login_request, job.done));
    int rc = r->job.result;
    answer(r, rc == -EACCES || rc == -ENODATA ? LOGIN_TOTP_WRONG : rc == -ENOENT ? LOGIN_WRONG : rc);
}

/* Worker thread. */
static void login_check(struct work *w, struct store *reader)
{
    struct login_request *r = (struct login_request *)w;
    struct app *app = r->loop->app;
    int rc = app->engine ? cluster_user_find(app->engine, r->username, r->username_len, &r->user)
                         : store_user_by_name(reader, r->username, r->username_len, &r->user);
    if (rc == 0)
        r->result = auth_password_verify(r->user.hash, r->password, r->password_len);
    else if (rc == -ENOENT)
        r->result = auth_password_verify(NULL, r->password, r->password_len);
    else
        r->result = rc;
    sodium_memzero(r->password, r->password_len);
    sodium_memzero(r->user.hash, sizeof r->user.hash);
    if (r->result == 0 && r->user.revoked)
        r->result = LOGIN_REVOKED;
    else if (r->result == 0 && r->user.totp_secret[0] && !r->totp)
        r->result = LOGIN_TOTP_MISSING;
    else if (r->result == 0 && r->user.totp_secret[0]) {
        r->change = (struct user_change){ .revoked = -1, .totp = USER_TOTP_USE, .totp_code = r->totp,
                                          .totp_code_len = r->totp_len, .now = (int64_t)time(NULL) };
        if (app->engine) { /* the step is recorded with a compare-and-set: once, cluster-wide */
            bool changed;
            int rc2 = cluster_user_update(app->engine, r->username, r->username_len, &r->change, &r->user,
                                          &changed);
            r->result = rc2 == -EACCES || rc2 == -ENODATA ? LOGIN_TOTP_WRONG : rc2;
            mailbox_post(r->loop->mailbox, &r->done);
            return;
        }
        r->job.kind = WRITER_UPDATE_USER;
        r->job.user = &r->user;
        r->job.change = &r->change;
        writer_submit(app->writer, &r->job);
        return;
    }
    mailbox_post(r->loop->mailbox, &r->done);
}

/* Worker thread, when the pool stops before this login got its turn. */
static void login_cancel(struct work *w)
{
    struct login_request *r = (struct login_request *)w;
    sodium_memzero(r->password, r->password_len);
    r->result = -ESHUTDOWN;
    mailbox_post(r->loop->mailbox, &r->done);
}

static char *copy_bytes(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy)
        memcpy(copy, s, len + 1);
    return copy;
}

void api_login(struct loop *l, struct http_request *req)
{
    const char *username, *password, *totp = NULL;
    size_t ulen, plen, tlen = 0;
    json_t *root;
    if (api_read_credentials(req, &username, &ulen, &password, &plen, &root, 0) != 0)
        return;
    json_t *code = json_object_get(root, "totp");
    if (code && !json_is_null(code)) {
        char reason[64];
        if (api_string_member(root, "totp", &totp, &tlen, reason, sizeof reason) != 0) {
            json_decref(root);
            http_reply_error(req, 400, reason);
            return;
        }
    }
    /* During a lock-out even the right password gets 429, so the answer reveals nothing. */
    char address[64];
    snprintf(address, sizeof address, "%s", req->address);
    long now = (long)time(NULL);
    long wait = throttle_wait(l->app->login_by_user, username, ulen, now);
    long wait_address = throttle_wait(l->app->login_by_address, address, strlen(address), now);
    if (wait_address > wait)
        wait = wait_address;
    if (wait > 0) {
        char retry[24];
        snprintf(retry, sizeof retry, "%ld", wait);
        http_add_header(req, "Retry-After", retry);
        json_decref(root);
        http_reply_error(req, 429, "too many failed logins, retry later");
        return;
    }
    struct login_request *r = calloc(1, sizeof *r);
    if (r) {
        r->username = copy_bytes(username, ulen);
        r->password = copy_bytes(password, plen);
        r->totp = totp ? copy_bytes(totp, tlen) : NULL;
    }
    if (!r || !r->username || !r->password || (totp && !r->totp)) {
        if (r)
            login_request_free(r);
        json_decref(root);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    r->username_len = ulen;
    r->password_len = plen;
    r->totp_len = tlen;
    json_decref(root);
    memcpy(r->address, address, sizeof r->address);
    r->loop = l;
    r->req = req;
    r->work.run = login_check;
    r->work.cancel = login_cancel;
    r->done.run = login_done;
    r->job.reply_to = l->mailbox;
    r->job.done.run = totp_done;
    if (api_submit_password_work(l, req, &r->work) != 0)
        login_request_free(r);
}
