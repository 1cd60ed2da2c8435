/* api/users: POST /users, and the admin API's POST /admin/users (with roles, whatever
 * --registration says). The loop validates, a worker hashes the password (Argon2id, never on a
 * loop thread) and hands the row to the writer, and the loop answers once it is committed. In
 * cluster mode the worker stores the user in the cluster's bucket itself (a bounded blocking call)
 * instead. */
#include <errno.h>
#include <sodium.h>
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
#include "validate.h"
#include "workers.h"
#include "writer.h"

struct users_request {
    struct work work;        /* runs on a worker: hash */
    struct writer_job job;   /* runs on the writer: insert; job.done answers on the loop */
    struct loop *loop;
    struct http_request *req;
    char *username;
    size_t username_len;
    char *password;
    size_t password_len;
    struct user_record user;
    int by_admin;
};

static void users_request_free(struct users_request *u)
{
    free(u->username);
    if (u->password) {
        sodium_memzero(u->password, u->password_len);
        free(u->password);
    }
    sodium_memzero(u->user.hash, sizeof u->user.hash);
    free(u);
}

static void users_done(struct task *t)
{
    struct users_request *u = (struct users_request *)((char *)t - offsetof(struct users_request, job.done));
    switch (u->job.result) {
    case 0:
        if (u->by_admin) {
            log_info("admin: created user %s with roles [%s]", u->user.id, u->user.roles);
            atomic_fetch_add_explicit(&u->loop->app->metrics.admin_actions, 1, memory_order_relaxed);
            http_reply_json(u->req, 200, api_user_json(&u->user, 1));
        } else {
            log_info("users: created user %s", u->user.id);
            http_reply_json(u->req, 200, json_pack("{s:s, s:s%}", "id", u->user.id, "username",
                                                   u->username, u->username_len));
        }
        break;
    case -EEXIST:
        http_reply_error(u->req, 409, "username is taken");
        break;
    case -ENOSPC:
        /* The writer probes the disk every second; a client need not try much sooner than that. */
        http_add_header(u->req, "Retry-After", "5");
        http_reply_error(u->req, 503, "storage is full");
        break;
    case -ESHUTDOWN:
        http_reply_error(u->req, 503, "server is shutting down");
        break;
    case -EAGAIN:
        http_add_header(u->req, "Retry-After", "2");
        http_reply_error(u->req, 503, "the cluster cannot store users now; nothing was stored");
        break;
    default:
        http_reply_error(u->req, 500, "storage fault");
        break;
    }
    users_request_free(u);
}

/* Worker thread. */
static void users_hash(struct work *w, struct store *reader)
{
    (void)reader;
    struct users_request *u = (struct users_request *)w;
    int rc = auth_password_hash(u->password, u->password_len, u->user.hash);
    sodium_memzero(u->password, u->password_len);
    if (rc != 0) {
        u->job.result = rc;
        mailbox_post(u->job.reply_to, &u->job.done);
        return;
    }
    auth_new_user_id(u->user.id);
    memcpy(u->user.username, u->username, u->username_len + 1);
    u->user.username_len = u->username_len;
    u->user.created_at = (int64_t)time(NULL);
    struct app *app = u->loop->app;
    if (app->engine) {
        u->job.result = cluster_user_create(app->engine, &u->user);
        mailbox_post(u->job.reply_to, &u->job.done);
        return;
    }
    u->job.kind = WRITER_ADD_USER;
    u->job.user = &u->user;
    writer_submit(u->loop->app->writer, &u->job);
}

/* Worker thread, when the pool stops before this user got its turn. */
static void users_cancel(struct work *w)
{
    struct users_request *u = (struct users_request *)w;
    sodium_memzero(u->password, u->password_len);
    u->job.result = -ESHUTDOWN;
    mailbox_post(u->job.reply_to, &u->job.done);
}

/* Shared by /users and /login: the two fields, present, strings, within the rules. */
int api_submit_password_work(struct loop *l, struct http_request *req, struct work *w)
{
    long retry_after = 1;
    int rc = workers_submit(l->app->workers, w, &retry_after);
    if (rc == 0)
        return 0;
    char value[24];
    snprintf(value, sizeof value, "%ld", rc == -EBUSY ? retry_after : 1L);
    http_add_header(req, "Retry-After", value);
    http_reply_error(req, 503, rc == -EBUSY ? "too many password operations in progress, retry later"
                                            : "server is shutting down");
    return -1;
}

int api_read_credentials(struct http_request *req, const char **username, size_t *ulen,
                         const char **password, size_t *plen, json_t **root, int check_rules)
{
    const char *err;
    char reason[96];
    *root = http_read_json_object(req, &err);
    if (!*root) {
        http_reply_error(req, 400, err);
        return -1;
    }
    if (api_string_member(*root, "username", username, ulen, reason, sizeof reason) != 0 ||
        api_string_member(*root, "password", password, plen, reason, sizeof reason) != 0) {
        http_reply_error(req, 400, reason);
        json_decref(*root);
        return -1;
    }
    const char *bad = validate_username(*username, *ulen);
    if (!bad && check_rules)
        bad = validate_password(*password, *plen);
    else if (!bad && (*plen == 0 || *plen > PASSWORD_MAX))
        bad = *plen == 0 ? "password must not be empty" : "password must be at most 1024 bytes";
    if (bad) {
        http_reply_error(req, 400, bad);
        json_decref(*root);
        return -1;
    }
    return 0;
}

/* POST /users, and POST /admin/users (by_admin: registration closed or not, with roles). */
void api_create_user(struct loop *l, struct http_request *req, int by_admin)
{
    const char *username, *password;
    size_t ulen, plen;
    json_t *root;
    if (api_read_credentials(req, &username, &ulen, &password, &plen, &root, 1) != 0)
        return;
    char roles[USER_ROLES_TEXT_MAX] = "";
    if (by_admin && api_read_roles(req, root, roles, NULL) != 0) {
        json_decref(root);
        return;
    }
    struct users_request *u = calloc(1, sizeof *u);
    if (u) {
        u->username = malloc(ulen + 1);
        u->password = malloc(plen + 1);
    }
    if (!u || !u->username || !u->password) {
        if (u)
            users_request_free(u);
        json_decref(root);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    memcpy(u->username, username, ulen + 1);
    u->username_len = ulen;
    memcpy(u->password, password, plen + 1);
    u->password_len = plen;
    json_decref(root);
    memcpy(u->user.roles, roles, sizeof roles);
    u->by_admin = by_admin;
    u->loop = l;
    u->req = req;
    u->work.run = users_hash;
    u->work.cancel = users_cancel;
    u->job.reply_to = l->mailbox;
    u->job.done.run = users_done;
    if (api_submit_password_work(l, req, &u->work) != 0)
        users_request_free(u);
}

void api_users(struct loop *l, struct http_request *req)
{
    if (l->app->cfg->registration_admin) {
        http_reply_error(req, 403, "registration is closed: an administrator creates users");
        return;
    }
    api_create_user(l, req, 0);
}
