/* access/notify: what identity and access tell every loop — a new rules file (SIGHUP) and a user
 * whose older tokens stopped being valid (SPEC §5). Each message is one allocation holding a task
 * per loop; the loop that runs the last task frees it (and, for rules, the rules every loop has
 * now left). The mailboxes run tasks in order, so every loop sees reloads in the order they
 * happened. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/directory.h"
#include "access/rules.h"
#include "access/user.h"
#include "app.h"
#include "hub.h"
#include "log.h"
#include "loop.h"

struct loop_task {
    struct task task;
    struct loop *loop;
    struct broadcast *msg;
};

struct broadcast {
    atomic_int pending; /* loops that have not run their task yet */
    /* rules */
    struct rules *rules, *old_rules;
    unsigned gen;
    /* user change */
    char user_id[AUTH_ID_MAX];
    int64_t ver;
    char reason[64];
    struct loop_task tasks[]; /* one per loop */
};

static struct broadcast *broadcast_new(struct app *app, void (*run)(struct task *))
{
    struct broadcast *b = calloc(1, sizeof *b + (size_t)app->nloops * sizeof b->tasks[0]);
    if (!b)
        return NULL;
    atomic_init(&b->pending, app->nloops);
    for (int i = 0; i < app->nloops; i++) {
        b->tasks[i].task.run = run;
        b->tasks[i].loop = app->loops[i];
        b->tasks[i].msg = b;
    }
    return b;
}

static void broadcast_post(struct app *app, struct broadcast *b)
{
    for (int i = 0; i < app->nloops; i++)
        mailbox_post(app->loops[i]->mailbox, &b->tasks[i].task);
}

/* Whether this was the last loop to run its task. */
static bool broadcast_done(struct broadcast *b) { return atomic_fetch_sub(&b->pending, 1) == 1; }

static void on_rules(struct task *t)
{
    struct loop_task *lt = (struct loop_task *)t;
    struct broadcast *b = lt->msg;
    lt->loop->rules = b->rules;
    lt->loop->rules_gen = b->gen; /* role masks are recomputed on their next use */
    if (broadcast_done(b)) {
        rules_free(b->old_rules); /* no loop uses them any more */
        free(b);
    }
}

void app_reload_rules(struct app *app)
{
    const char *path = app->cfg->rules;
    if (!path) {
        log_info("SIGHUP: no --rules file to reload");
        return;
    }
    char err[512];
    struct rules *next = NULL;
    if (rules_load_file(path, &next, err, sizeof err) != 0) {
        log_error("SIGHUP: --rules %s: %s; keeping the rules loaded before", path, err);
        atomic_fetch_add_explicit(&app->metrics.rules_reload_failures, 1, memory_order_relaxed);
        return;
    }
    struct broadcast *b = broadcast_new(app, on_rules);
    if (!b) {
        log_error("SIGHUP: out of memory; keeping the rules loaded before");
        rules_free(next);
        return;
    }
    b->rules = next;
    b->old_rules = app->rules;
    b->gen = ++app->rules_gen;
    app->rules = next;
    broadcast_post(app, b);
    atomic_fetch_add_explicit(&app->metrics.rules_reloads, 1, memory_order_relaxed);
    log_info("SIGHUP: %zu rules from %s (streams follow them from the next event on)", rules_count(next),
             path);
}

static void on_user_changed(struct task *t)
{
    struct loop_task *lt = (struct loop_task *)t;
    struct broadcast *b = lt->msg;
    hub_revoke_user(lt->loop->hub, b->user_id, b->ver, b->reason);
    if (broadcast_done(b))
        free(b);
}

void app_user_changed(struct app *app, const struct user_record *u, bool ver_changed, const char *reason)
{
    if (directory_set(app->directory, u->id, u->ver, u->revoked) != 0)
        log_error("out of memory recording the token version of user %s: its older tokens stay "
                  "valid until they expire", u->id);
    /* Once shutdown began every stream is being ended anyway, and a loop that already left would
     * never run (and free) its task. */
    if (!ver_changed || atomic_load(&app->draining))
        return;
    struct broadcast *b = broadcast_new(app, on_user_changed);
    if (!b) {
        log_error("out of memory closing the streams of user %s; they end when their token expires",
                  u->id);
        return;
    }
    memcpy(b->user_id, u->id, sizeof b->user_id);
    b->ver = u->ver;
    snprintf(b->reason, sizeof b->reason, "%s", reason);
    broadcast_post(app, b);
}
