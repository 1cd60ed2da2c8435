/* api/user_update: worker (hash) -> writer (apply) -> loop (record the version, close old streams,
 * answer). */
#include "api/user_update.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "cluster/users.h"
#include "http/reply.h"
#include "log.h"
#include "loop.h"
#include "store/store.h"

void user_update_discard(struct user_update *u)
{
    if (!u)
        return;
    if (u->password) {
        sodium_memzero(u->password, u->password_len);
        free(u->password);
    }
    if (u->old_password) {
        sodium_memzero(u->old_password, u->old_password_len);
        free(u->old_password);
    }
    sodium_memzero(u, sizeof *u); /* hashes, TOTP secret and code */
    free(u);
}

struct user_update *user_update_new(struct loop *l, struct http_request *req, const char *id,
                                    const char *username, void (*answer)(struct user_update *u, int result))
{
    struct user_update *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->loop = l;
    u->req = req;
    u->answer = answer;
    snprintf(u->user.id, sizeof u->user.id, "%s", id);
    if (username) {
        snprintf(u->user.username, sizeof u->user.username, "%s", username);
        u->user.username_len = strlen(u->user.username);
    }
    u->change.revoked = -1;
    u->job.kind = WRITER_UPDATE_USER;
    u->job.reply_to = l->mailbox;
    u->job.user = &u->user;
    u->job.change = &u->change;
    return u;
}

static char *copy_secret(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

int user_update_set_password(struct user_update *u, const char *pw, size_t len, const char *old,
                             size_t old_len)
{
    if (!(u->password = copy_secret(pw, len)))
        return -1;
    u->password_len = len;
    if (old) {
        if (!(u->old_password = copy_secret(old, old_len)))
            return -1;
        u->old_password_len = old_len;
    }
    return 0;
}

/* On the loop: the change is committed (or refused). */
static void on_done(struct task *t)
{
    struct user_update *u = (struct user_update *)((char *)t - offsetof(struct user_update, job.done));
    if (u->job.result == 0)
        app_user_changed(u->loop->app, &u->user, u->job.ver_changed, u->reason ? u->reason : "user changed");
    u->answer(u, u->job.result);
    user_update_discard(u);
}

/* Worker thread: check the old password and hash the new one (when there are), then hand the
 * change to the writer, or, in a cluster, apply it to the bucket here (blocking, bounded). */
static void run_on_worker(struct work *w, struct store *reader)
{
    struct user_update *u = (struct user_update *)w;
    struct js_engine *engine = u->loop->app->engine;
    int rc = 0;
    if (u->old_password) {
        struct user_record stored;
        rc = engine ? cluster_user_find(engine, u->user.username, u->user.username_len, &stored)
                    : store_user_by_id(reader, u->user.id, &stored);
        if (rc == 0 && strcmp(stored.id, u->user.id) != 0)
            rc = -ENOENT; /* the name was taken by someone else: not this user any more */
        if (rc == 0 && auth_password_verify(stored.hash, u->old_password, u->old_password_len) != 0)
            rc = -EPERM;
        sodium_memzero(&stored, sizeof stored);
    }
    if (rc == 0 && u->password)
        rc = auth_password_hash(u->password, u->password_len, u->hash);
    if (u->password)
        sodium_memzero(u->password, u->password_len);
    if (rc == 0 && u->password)
        u->change.hash = u->hash;
    if (rc != 0 || engine) {
        if (rc == 0)
            rc = cluster_user_update(engine, u->user.username, u->user.username_len, &u->change, &u->user,
                                     &u->job.ver_changed);
        u->job.result = rc;
        mailbox_post(u->job.reply_to, &u->job.done);
        return;
    }
    writer_submit(u->loop->app->writer, &u->job);
}

static void cancel_on_worker(struct work *w)
{
    struct user_update *u = (struct user_update *)w;
    u->job.result = -ESHUTDOWN;
    mailbox_post(u->job.reply_to, &u->job.done);
}

void user_update_submit(struct user_update *u)
{
    u->job.done.run = on_done;
    if (!u->password && !u->loop->app->engine) {
        writer_submit(u->loop->app->writer, &u->job);
        return;
    }
    /* A worker: hashing, or (in a cluster) the blocking round trips to the users bucket. */
    u->work.run = run_on_worker;
    u->work.cancel = cancel_on_worker;
    if (api_submit_password_work(u->loop, u->req, &u->work) != 0)
        user_update_discard(u); /* answered 503 */
}

int user_update_common_error(struct user_update *u, int rc)
{
    switch (rc) {
    case -ENOENT:
        http_reply_error(u->req, 404, "no such user");
        return 1;
    case -ENOSPC:
        http_add_header(u->req, "Retry-After", "5");
        http_reply_error(u->req, 503, "storage is full");
        return 1;
    case -ESHUTDOWN:
        http_reply_error(u->req, 503, "server is shutting down");
        return 1;
    case -ENOMEM:
    case -EIO:
        http_reply_error(u->req, 500, "storage fault");
        return 1;
    default:
        return 0;
    }
}
