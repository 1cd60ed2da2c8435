/* applier: the ordered feed into the local replica, in groups, with the contiguity check. A group
 * holds copies (frames, msg ids, user ids) because the feed's pointers last only until the next
 * read; a group whose commit fails is kept and committed again, so nothing read is ever dropped. */
#include "cluster/applier.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "cluster/jetstream.h"
#include "feed.h"
#include "frame.h"
#include "log.h"
#include "store/store.h"

/* Bound one local transaction, as the writer does: its latency and the burst it hands the loops. */
#define APPLY_MAX_GROUP 4096
#define APPLY_MAX_GROUP_BYTES (256 * 1024)
/* How long one read waits when the stream is idle: the pace of health checks and of stopping. */
#define READ_WAIT_MS 200
#define HEALTH_EVERY_MS 1000
/* Msg ids are kept as idempotency keys, so that a duplicate can be answered with its id. */
#define KEY_WINDOW_MS (120 * 1000)
#define PRUNE_EVERY_MS (10 * 1000)

struct applied_event {
    struct frame *frame;
    char *msg_id;
    char *user_id;
};

struct applier {
    struct app *app;
    struct store *store;
    struct js_engine *engine;
    struct js_feed *feed;
    pthread_t thread;
    bool running;
    atomic_bool stopping;
    int64_t last;      /* the last sequence applied to the replica (or skipped as foreign) */
    int64_t consumed;  /* the last sequence read from the feed (>= last: the group lies between) */
    bool stopped_at_gap;
    struct applied_event group[APPLY_MAX_GROUP];
    size_t n, bytes;
    long health_at, pruned_at; /* monotonic ms */
};

static long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void group_clear(struct applier *a)
{
    for (size_t i = 0; i < a->n; i++) {
        frame_unref(a->group[i].frame);
        free(a->group[i].msg_id);
        free(a->group[i].user_id);
    }
    a->n = a->bytes = 0;
}

/* /healthz and /metrics: can JetStream take writes, and how far is the stream ahead of us. */
static void check_health(struct applier *a)
{
    long now = monotonic_ms();
    if (now - a->health_at < HEALTH_EVERY_MS)
        return;
    a->health_at = now;
    bool ok = js_ping(a->engine) == 0;
    if (ok != atomic_load(&a->app->engine_ok))
        log_info("cluster: JetStream %s", ok ? "takes writes again" : "cannot take writes (no quorum or unreachable)");
    atomic_store(&a->app->engine_ok, ok);
    uint64_t last;
    if (ok && js_last_seq(a->engine, &last) == 0 && (long long)last > atomic_load(&a->app->stream_last))
        atomic_store(&a->app->stream_last, (long long)last);
}

static void stop_at(struct applier *a, const char *what, uint64_t seq)
{
    log_error("cluster: %s: stream sequence %" PRIu64 " after local id %" PRId64 "; this node stops "
              "applying the stream (its log would differ from its peers'). Rebuild it: stop it, delete "
              "its --db and start it again", what, seq, a->last);
    a->stopped_at_gap = true;
    atomic_store(&a->app->applier_ok, false);
}

/* Copies one event of the feed into the group. 0, or -ENOMEM. */
static int group_add(struct applier *a, const struct js_event *ev)
{
    struct applied_event *g = &a->group[a->n];
    g->frame = frame_new((int64_t)ev->seq, ev->event, ev->event_len, ev->data, ev->data_len);
    g->msg_id = ev->msg_id[0] ? strdup(ev->msg_id) : NULL;
    g->user_id = strdup(ev->user_id);
    if (!g->frame || (ev->msg_id[0] && !g->msg_id) || !g->user_id) {
        frame_unref(g->frame);
        free(g->msg_id);
        free(g->user_id);
        return -ENOMEM;
    }
    a->n++;
    a->bytes += ev->data_len;
    return 0;
}

/* Reads what the feed has, up to a group: waits READ_WAIT_MS for the first event, then takes only
 * what is already there. Returns -ESHUTDOWN when the engine closed, else 0. */
static int read_group(struct applier *a)
{
    int wait = READ_WAIT_MS;
    while (a->n < APPLY_MAX_GROUP && a->bytes < APPLY_MAX_GROUP_BYTES && !a->stopped_at_gap) {
        struct js_event ev;
        int rc = js_feed_next(a->feed, wait, &ev);
        if (rc == -ETIMEDOUT)
            return 0;
        if (rc == -ESHUTDOWN)
            return rc;
        if (rc != 0 && rc != -EBADMSG) {
            log_error("cluster: reading the stream: %s", strerror(-rc));
            return 0;
        }
        wait = 1;
        int64_t seq = (int64_t)ev.seq;
        if (seq > atomic_load(&a->app->stream_last))
            atomic_store(&a->app->stream_last, seq);
        if (seq <= a->consumed) {
            stop_at(a, "a sequence delivered twice", ev.seq);
            return 0;
        }
        /* A fresh replica takes the stream from wherever it starts (its head may have been
         * removed by the operator); afterwards every sequence must follow the last. */
        if (seq != a->consumed + 1 && a->consumed > 0) {
            stop_at(a, "a gap in the stream", ev.seq);
            return 0;
        }
        if (rc == -EBADMSG) {
            log_warn("cluster: skipping stream sequence %" PRId64 ": not an event broker wrote", seq);
        } else if (group_add(a, &ev) != 0) {
            stop_at(a, "out of memory holding", ev.seq);
            return 0;
        }
        a->consumed = seq;
        if (a->n == 0)
            a->last = seq; /* only foreign messages so far: nothing to commit for them */
    }
    return 0;
}

/* Commits the group to the local replica and feeds the loops. 0, or the store's error (the group
 * is kept for the next attempt). */
static int apply_group(struct applier *a)
{
    struct app *app = a->app;
    struct frame *frames[APPLY_MAX_GROUP];
    for (size_t i = 0; i < a->n; i++)
        frames[i] = a->group[i].frame;
    struct feed_msgs *msgs = feed_prepare(app);
    if (!msgs)
        return -ENOMEM;
    int err = store_begin(a->store);
    bool in_tx = err == 0;
    for (size_t i = 0; i < a->n && !err; i++) {
        const struct frame *f = frames[i];
        err = store_apply_event(a->store, f->id, f->text + f->event_off, f->event_len,
                                f->text + f->data_off, f->data_len, a->group[i].user_id);
        if (!err && a->group[i].msg_id)
            err = store_put_key(a->store, a->group[i].msg_id, strlen(a->group[i].msg_id), f->id);
    }
    if (!err)
        err = feed_record_latest(a->store, frames, a->n);
    long now = monotonic_ms();
    if (!err && now - a->pruned_at >= PRUNE_EVERY_MS) {
        err = store_prune_keys(a->store, KEY_WINDOW_MS);
        a->pruned_at = now;
    }
    struct batch *batch = NULL;
    if (!err) {
        for (size_t i = 0; i < a->n; i++)
            frame_ref(frames[i]); /* the batch takes these; the group keeps its own until done */
        if (!(batch = batch_new(frames, a->n)))
            err = -ENOMEM;
    }
    if (!err)
        err = store_commit(a->store);
    else if (in_tx)
        store_rollback(a->store);
    if (err) {
        batch_unref(batch);
        feed_discard(msgs);
        if (atomic_exchange(&app->store_ok, false))
            log_error("cluster: cannot apply %zu events to the local replica: %s", a->n, strerror(-err));
        atomic_fetch_add_explicit(&app->metrics.commit_failures, 1, memory_order_relaxed);
        return err;
    }
    if (!atomic_exchange(&app->store_ok, true))
        log_info("cluster: the local replica accepts writes again");
    a->last = a->consumed;
    atomic_store(&app->applied, a->last);
    atomic_fetch_add_explicit(&app->metrics.events_inserted, a->n, memory_order_relaxed);
    feed_post(app, msgs, batch);
    batch_unref(batch);
    group_clear(a);
    return 0;
}

static void *applier_main(void *arg)
{
    struct applier *a = arg;
    while (!atomic_load(&a->stopping) && !a->feed) {
        int rc = js_feed_open(a->engine, (uint64_t)a->last, &a->feed);
        if (rc == 0)
            break;
        log_warn("cluster: cannot open the stream's feed yet (%s); retrying", strerror(-rc));
        check_health(a);
        usleep(500 * 1000);
    }
    while (!atomic_load(&a->stopping)) {
        check_health(a);
        if (a->stopped_at_gap) {
            usleep(READ_WAIT_MS * 1000);
            continue;
        }
        if (a->n == 0 && read_group(a) == -ESHUTDOWN)
            break;
        if (a->n > 0 && apply_group(a) != 0)
            usleep(1000 * 1000); /* the disk: try the same group again in a second */
    }
    if (a->n > 0 && apply_group(a) != 0)
        log_error("cluster: %zu events read but not applied at shutdown; they are applied from the "
                  "stream at the next start", a->n);
    group_clear(a);
    return NULL;
}

int applier_start(struct app *app, struct store *store, struct js_engine *engine, struct applier **out)
{
    *out = NULL;
    struct applier *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->app = app;
    a->engine = engine;
    int rc = store_max_id(store, &a->last);
    if (rc != 0) {
        free(a);
        return rc;
    }
    a->consumed = a->last;
    atomic_store(&app->applied, a->last);
    atomic_store(&app->applier_ok, true);
    atomic_store(&app->engine_ok, true);
    a->store = store;
    if (pthread_create(&a->thread, NULL, applier_main, a) != 0) {
        free(a);
        return -EAGAIN;
    }
    a->running = true;
    *out = a;
    return 0;
}

void applier_stop(struct applier *a)
{
    if (!a || !a->running)
        return;
    atomic_store(&a->stopping, true);
    pthread_join(a->thread, NULL);
    a->running = false;
}

void applier_free(struct applier *a)
{
    if (!a)
        return;
    applier_stop(a);
    js_feed_close(a->feed);
    store_close(a->store);
    free(a);
}
