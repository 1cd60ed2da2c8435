/* cluster/user_watch: the watch thread and the index: an array of users sorted by id under a
 * mutex (a new user is a binary search and a memmove; changes are rare next to reads). */
#include "cluster/user_watch.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/user.h"
#include "app.h"
#include "cluster/jetstream.h"
#include "cluster/users.h"
#include "log.h"

/* A watch that failed is started again after this long. */
#define REWATCH_MS 1000

struct watched_user {
    char id[AUTH_ID_MAX];
    char *username;
    size_t username_len;
    char *roles;
    int64_t created_at, ver;
    bool revoked, totp;
};

struct user_watch {
    struct app *app;
    struct js_engine *e;
    pthread_t thread;
    atomic_bool stopping;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t ready_cond;
    bool ready;           /* the records that existed at the start are read */
    struct js_user_watch *watch;
    struct watched_user *users;
    size_t count, cap;
};

/* The index of the first user whose id is >= id. */
static size_t lower_bound(const struct user_watch *w, const char *id)
{
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(w->users[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Records u in the index; *before receives what was known of it (ver -1: it is new), its strings
 * then belong to the caller. */
static int index_put(struct user_watch *w, const struct user_record *u, struct watched_user *before)
{
    char *username = malloc(u->username_len + 1), *roles = strdup(u->roles);
    if (!username || !roles) {
        free(username);
        free(roles);
        return -ENOMEM;
    }
    memcpy(username, u->username, u->username_len + 1);
    pthread_mutex_lock(&w->lock);
    size_t i = lower_bound(w, u->id);
    bool found = i < w->count && strcmp(w->users[i].id, u->id) == 0;
    if (!found && w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct watched_user *grown = realloc(w->users, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&w->lock);
            free(username);
            free(roles);
            return -ENOMEM;
        }
        w->users = grown;
        w->cap = cap;
    }
    struct watched_user *slot = &w->users[i];
    if (found) {
        *before = *slot;
    } else {
        before->ver = -1;
        memmove(slot + 1, slot, (w->count - i) * sizeof *slot);
        w->count++;
    }
    memcpy(slot->id, u->id, sizeof slot->id);
    slot->username = username;
    slot->username_len = u->username_len;
    slot->roles = roles;
    slot->created_at = u->created_at;
    slot->ver = u->ver;
    slot->revoked = u->revoked;
    slot->totp = u->totp_secret[0] != '\0';
    pthread_mutex_unlock(&w->lock);
    return 0;
}

/* One record from the watch: into the index, the directory, and the streams of this node. */
static void apply_record(struct user_watch *w, const char *username, size_t ulen, const char *text,
                         size_t len)
{
    struct user_record u;
    if (cluster_user_decode(text, len, username, ulen, &u) != 0)
        return;
    struct watched_user before = { .ver = -1 };
    if (index_put(w, &u, &before) != 0)
        log_error("cluster: out of memory indexing user %s", u.id);
    bool moved = before.ver >= 0 && (u.ver > before.ver || u.revoked != before.revoked);
    if (before.ver < 0 || moved) {
        /* The same reasons as on the node that made the change (api/admin.c, api/me.c). */
        const char *reason = u.revoked && !before.revoked                    ? "user revoked"
                             : before.roles && strcmp(before.roles, u.roles) ? "roles changed"
                                                                             : "password changed";
        app_user_changed(w->app, &u, moved && u.ver > before.ver, reason);
    }
    free(before.username);
    free(before.roles);
    sodium_memzero(&u, sizeof u);
}

static void *watch_thread(void *arg)
{
    struct user_watch *w = arg;
    char username[USERNAME_MAX + 1];
    while (!atomic_load(&w->stopping)) {
        if (!w->watch && js_user_watch_start(w->e, &w->watch) != 0) {
            usleep(REWATCH_MS * 1000);
            continue;
        }
        char *record = NULL;
        size_t ulen = 0, len = 0;
        int rc = js_user_watch_next(w->watch, 1000, username, sizeof username, &ulen, &record, &len);
        if (rc == 1) {
            apply_record(w, username, ulen, record, len);
            sodium_memzero(record, len);
            free(record);
        } else if (rc == 0) {
            pthread_mutex_lock(&w->lock);
            if (!w->ready)
                log_info("cluster: %zu users read from the users bucket", w->count);
            w->ready = true;
            pthread_cond_broadcast(&w->ready_cond);
            pthread_mutex_unlock(&w->lock);
        } else if (rc == -ESHUTDOWN || rc == -EIO) {
            if (atomic_load(&w->stopping))
                break;
            /* The watch broke (the connection was closed): a new one reads every record again,
             * which changes nothing that is already known. */
            log_warn("cluster: the watch of the users bucket stopped; watching again");
            js_user_watch_free(w->watch);
            w->watch = NULL;
            usleep(REWATCH_MS * 1000);
        }
    }
    return NULL;
}

int user_watch_start(struct app *app, struct js_engine *e, int timeout_ms, struct user_watch **out)
{
    struct user_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->app = app;
    w->e = e;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->ready_cond, NULL);
    if (js_user_watch_start(e, &w->watch) != 0 || pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
        log_error("cluster: cannot watch the users bucket");
        js_user_watch_free(w->watch);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->ready_cond);
        free(w);
        return -1;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&w->lock);
    while (!w->ready && pthread_cond_timedwait(&w->ready_cond, &w->lock, &until) == 0)
        ;
    bool ready = w->ready;
    pthread_mutex_unlock(&w->lock);
    if (!ready) {
        log_error("cluster: the users bucket was not read within %d ms", timeout_ms);
        user_watch_stop(w);
        return -1;
    }
    *out = w;
    return 0;
}

void user_watch_stop(struct user_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, true);
    pthread_mutex_lock(&w->lock);
    js_user_watch_stop(w->watch);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    js_user_watch_free(w->watch);
    for (size_t i = 0; i < w->count; i++) {
        free(w->users[i].username);
        free(w->users[i].roles);
    }
    free(w->users);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->ready_cond);
    free(w);
}

/* The index entry x as a record without hash or secrets. */
static void summary(const struct watched_user *x, struct user_record *u)
{
    memset(u, 0, sizeof *u);
    memcpy(u->id, x->id, sizeof u->id);
    memcpy(u->username, x->username, x->username_len + 1);
    u->username_len = x->username_len;
    snprintf(u->roles, sizeof u->roles, "%s", x->roles);
    u->created_at = x->created_at;
    u->ver = x->ver;
    u->revoked = x->revoked;
    if (x->totp)
        strcpy(u->totp_secret, "on");
}

int user_watch_get(struct user_watch *w, const char *id, struct user_record *out)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&w->lock);
    size_t i = lower_bound(w, id);
    if (i < w->count && strcmp(w->users[i].id, id) == 0) {
        summary(&w->users[i], out);
        rc = 0;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int user_watch_each(struct user_watch *w, const char *after, int limit, store_user_fn fn, void *arg,
                    int *rows)
{
    struct user_record *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    int rc = 0;
    *rows = 0;
    pthread_mutex_lock(&w->lock);
    size_t i = after ? lower_bound(w, after) : 0;
    if (after && i < w->count && strcmp(w->users[i].id, after) == 0)
        i++;
    for (; i < w->count && *rows < limit && rc == 0; i++, (*rows)++) {
        summary(&w->users[i], u);
        rc = fn(arg, u);
    }
    pthread_mutex_unlock(&w->lock);
    free(u);
    return rc;
}
