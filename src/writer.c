/* writer: group commit. Everything that can fail (frames, the batch, the feed messages) is
 * allocated before COMMIT, so once the data is durable, publishing it cannot fail. */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/user.h"
#include "app.h"
#include "feed.h"
#include "frame.h"
#include "log.h"
#include "store/store.h"

/* Bound one transaction, in jobs and in event bytes: its latency, and the burst it hands every
 * subscriber at once (which --max_backlog must absorb). Whatever is left waits for the next round. */
#define WRITER_MAX_GROUP 4096
#define WRITER_MAX_GROUP_BYTES (256 * 1024)
/* Inserts with the same Idempotency-Key within this window are stored once (SPEC §4), the same
 * window as JetStream's de-duplication in cluster mode; older keys are pruned every PRUNE_EVERY. */
#define IDEMPOTENCY_WINDOW_MS (120 * 1000)
#define PRUNE_EVERY_MS (10 * 1000)

struct writer {
    struct app *app;
    struct store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct writer_job *head, *tail;
    bool stopping;
    bool running;
    struct timespec pruned_at;
};

static void complete_all(struct writer_job *list, int result)
{
    while (list) {
        struct writer_job *next = list->next; /* done.run may free the job */
        if (result)
            list->result = result;
        mailbox_post(list->reply_to, &list->done);
        list = next;
    }
}

static double elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Read, change, write: on the writer thread, so two changes of one user never interleave. */
static int update_user(struct store *st, struct writer_job *j)
{
    struct user_record u;
    int rc = store_user_by_id(st, j->user->id, &u);
    if (rc == 0)
        rc = user_apply(&u, j->change, &j->ver_changed);
    if (rc == 0)
        rc = store_update_user(st, &u);
    if (rc == 0)
        *j->user = u;
    return rc;
}

static void commit_group(struct writer *w, struct writer_job *list, size_t njobs, size_t nevents)
{
    struct app *app = w->app;
    struct frame **frames = nevents ? calloc(nevents, sizeof *frames) : NULL;
    struct feed_msgs *msgs = nevents ? feed_prepare(app) : NULL;
    struct batch *batch = NULL;
    size_t nframes = 0;
    int err = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (nevents && (!frames || !msgs))
        err = -ENOMEM;
    if (!err)
        err = store_begin(w->store);
    bool in_tx = err == 0;
    for (struct writer_job *j = list; j && !err; j = j->next) {
        j->result = 0;
        if (j->kind == WRITER_ADD_USER) {
            int rc = store_add_user(w->store, j->user);
            if (rc == -EEXIST)
                j->result = -EEXIST; /* only this job fails; the transaction goes on */
            else
                err = rc;
            continue;
        }
        if (j->kind == WRITER_UPDATE_USER) {
            int rc = update_user(w->store, j);
            if (rc == -ENOENT || rc == -ENODATA || rc == -EACCES || rc == -EALREADY || rc == -EINVAL)
                j->result = rc; /* refused: this job only */
            else
                err = rc;
            continue;
        }
        j->replayed = false;
        if (j->key) {
            int rc = store_find_key(w->store, j->key, j->key_len, IDEMPOTENCY_WINDOW_MS, &j->id);
            if (rc == 0) {
                j->replayed = true; /* stored before: answer its id, store nothing */
                continue;
            }
            if (rc != -ENOENT) {
                err = rc;
                break;
            }
        }
        err = store_append_event(w->store, j->event, j->event_len, j->data, j->data_len, j->user_id,
                                 &j->id);
        if (!err && j->key)
            err = store_put_key(w->store, j->key, j->key_len, j->id);
        if (!err && !(frames[nframes] = frame_new(j->id, j->event, j->event_len, j->data, j->data_len)))
            err = -ENOMEM;
        if (!err)
            nframes++;
    }
    size_t inserted = nframes;
    if (!err && elapsed_ms(&w->pruned_at) >= PRUNE_EVERY_MS) {
        err = store_prune_keys(w->store, IDEMPOTENCY_WINDOW_MS);
        clock_gettime(CLOCK_MONOTONIC, &w->pruned_at);
    }
    if (!err && nframes)
        err = feed_record_latest(w->store, frames, nframes);
    if (!err && nframes) {
        batch = batch_new(frames, nframes); /* takes the frame references, even on failure */
        nframes = 0;
        if (!batch)
            err = -ENOMEM;
    }
    if (!err)
        err = store_commit(w->store); /* rolls back by itself on failure */
    else if (in_tx)
        store_rollback(w->store);

    unsigned long micros = (unsigned long)(elapsed_ms(&t0) * 1000);
    if (err) {
        log_error("writer: group of %zu jobs failed: %s", njobs, strerror(-err));
        atomic_store(&app->store_ok, false);
        atomic_fetch_add_explicit(&app->metrics.commit_failures, 1, memory_order_relaxed);
        for (size_t i = 0; i < nframes; i++)
            frame_unref(frames[i]);
        batch_unref(batch);
        feed_discard(msgs);
        free(frames);
        complete_all(list, err);
        return;
    }
    atomic_store(&app->store_ok, true);
    metrics_observe_commit(&app->metrics, micros);
    atomic_fetch_add_explicit(&app->metrics.events_inserted, inserted, memory_order_relaxed);
    log_debug("writer: committed %zu jobs (%zu events) in %lu us", njobs, inserted, micros);
    if (batch) {
        feed_post(app, msgs, batch);
        batch_unref(batch);
    } else {
        feed_discard(msgs); /* every insert of the group was a replay: nothing to feed */
    }
    free(frames);
    complete_all(list, 0);
}

/* While the store is failing, /healthz says 503; without inserts nothing would ever say it
 * recovered, so the idle writer probes the disk once a second until a write succeeds. */
static void probe_if_failing(struct writer *w)
{
    if (atomic_load(&w->app->store_ok))
        return;
    pthread_mutex_unlock(&w->lock);
    if (store_probe_write(w->store) == 0) {
        atomic_store(&w->app->store_ok, true);
        log_info("writer: the store accepts writes again");
    }
    pthread_mutex_lock(&w->lock);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping) {
            if (atomic_load(&w->app->store_ok)) {
                pthread_cond_wait(&w->ready, &w->lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            if (pthread_cond_timedwait(&w->ready, &w->lock, &until) == ETIMEDOUT)
                probe_if_failing(w);
        }
        if (!w->head)
            break; /* stopping and drained */
        struct writer_job *list = w->head, *last = list;
        size_t njobs = 1, nevents = list->kind == WRITER_APPEND_EVENT;
        size_t bytes = list->data_len;
        while (last->next && njobs < WRITER_MAX_GROUP && bytes + last->next->data_len <= WRITER_MAX_GROUP_BYTES) {
            last = last->next;
            njobs++;
            nevents += last->kind == WRITER_APPEND_EVENT;
            bytes += last->data_len;
        }
        w->head = last->next;
        if (!w->head)
            w->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&w->lock);
        commit_group(w, list, njobs, nevents);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int writer_start(struct app *app, struct store *store, struct writer **out)
{
    *out = NULL;
    struct writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->app = app;
    w->store = store;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->ready, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        w->store = NULL; /* the caller still owns it on failure */
        writer_free(w);
        return -EAGAIN;
    }
    w->running = true;
    *out = w;
    return 0;
}

void writer_submit(struct writer *w, struct writer_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        job->result = -ESHUTDOWN;
        mailbox_post(job->reply_to, &job->done);
        return;
    }
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    pthread_cond_signal(&w->ready);
    pthread_mutex_unlock(&w->lock);
}

void writer_stop(struct writer *w)
{
    if (!w || !w->running)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->ready);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->running = false;
}

void writer_free(struct writer *w)
{
    if (!w)
        return;
    store_close(w->store);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->ready);
    free(w);
}
