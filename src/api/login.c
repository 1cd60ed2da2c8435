/* api/login: POST /login. A worker looks the user up and verifies the Argon2id hash; an unknown
 * user is verified against a dummy hash so both failures cost the same time and read the same. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "app.h"
#include "cluster/users.h"
#include "http/reply.h"
#include "log.h"
#include "loop.h"
#include "store/store.h"
#include "throttle.h"
#include "workers.h"

struct login_request {
    struct work work;
    struct task done;
    struct loop *loop;
    struct http_request *req;
    char *username;
    size_t username_len;
    char *password;
    size_t password_len;
    int result;  /* 0, -EACCES, or a storage error */
    char address[64];
    char *token; /* malloc'd by libjwt */
};

static void login_request_free(struct login_request *r)
{
    free(r->username);
    if (r->password) {
        sodium_memzero(r->password, r->password_len);
        free(r->password);
    }
    free(r->token);
    free(r);
}

static void login_done(struct task *t)
{
    struct login_request *r = (struct login_request *)((char *)t - offsetof(struct login_request, done));
    struct app *app = r->loop->app;
    if (r->result == 0 && r->token) {
        throttle_clear(app->login_by_user, r->username, r->username_len);
        http_reply_json(r->req, 200, json_pack("{s:s}", "jwt", r->token));
    } else if (r->result == -EACCES) {
        long now = (long)time(NULL);
        throttle_fail(app->login_by_user, r->username, r->username_len, now);
        throttle_fail(app->login_by_address, r->address, strlen(r->address), now);
        http_reply_error(r->req, 401, "invalid username or password");
    }
    else if (r->result == -ESHUTDOWN)
        http_reply_error(r->req, 503, "server is shutting down");
    else if (r->result == -EAGAIN)
        http_reply_error(r->req, 503, "the cluster cannot read users now");
    else
        http_reply_error(r->req, 500, "cannot check credentials");
    login_request_free(r);
}

/* Worker thread. */
static void login_check(struct work *w, struct store *reader)
{
    struct login_request *r = (struct login_request *)w;
    struct app *app = r->loop->app;
    char id[AUTH_ID_MAX], hash[AUTH_HASH_MAX];
    int rc = app->engine ? cluster_user_find(app->engine, r->username, r->username_len, id, sizeof id,
                                             hash, sizeof hash)
                         : store_find_user(reader, r->username, r->username_len, id, sizeof id, hash,
                                           sizeof hash);
    if (rc == 0) {
        r->result = auth_password_verify(hash, r->password, r->password_len);
    } else if (rc == -ENOENT) {
        r->result = auth_password_verify(NULL, r->password, r->password_len);
    } else {
        r->result = rc;
    }
    sodium_memzero(r->password, r->password_len);
    sodium_memzero(hash, sizeof hash);
    if (r->result == 0) {
        struct token_claims c = { .iat = (long)time(NULL) };
        c.exp = c.iat + app->cfg->jwt_expiry;
        memcpy(c.sub, id, sizeof c.sub);
        memcpy(c.username, r->username, r->username_len + 1);
        r->token = auth_token_issue(app->secret, app->secret_len, &c);
        if (!r->token)
            r->result = -ENOMEM;
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

void api_login(struct loop *l, struct http_request *req)
{
    const char *username, *password;
    size_t ulen, plen;
    json_t *root;
    if (api_read_credentials(req, &username, &ulen, &password, &plen, &root, 0) != 0)
        return;
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
        r->username = malloc(ulen + 1);
        r->password = malloc(plen + 1);
    }
    if (!r || !r->username || !r->password) {
        if (r)
            login_request_free(r);
        json_decref(root);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    memcpy(r->username, username, ulen + 1);
    r->username_len = ulen;
    memcpy(r->password, password, plen + 1);
    r->password_len = plen;
    json_decref(root);
    memcpy(r->address, address, sizeof r->address);
    r->loop = l;
    r->req = req;
    r->work.run = login_check;
    r->work.cancel = login_cancel;
    r->done.run = login_done;
    if (api_submit_password_work(l, req, &r->work) != 0)
        login_request_free(r);
}
