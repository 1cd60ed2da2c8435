/* workers: a fixed pool of threads for the slow, CPU-bound work that must never run on a loop
 * thread (Argon2id costs tens of milliseconds and tens of MiB by design). The queue is bounded:
 * when it is full, submission fails at once and the route answers 503 instead of queueing forever.
 * Each worker has its own read-only store connection. */
#ifndef BROKER_WORKERS_H
#define BROKER_WORKERS_H

#include <stddef.h>

struct store;
struct work;

struct work {
    struct work *next;
    /* Runs on a worker thread; owns w until it hands it on (typically by posting a task to the
     * loop that submitted it). */
    void (*run)(struct work *w, struct store *reader);
    /* Instead of run once the pool is stopping: answers without doing the work (a shutdown does
     * not wait for a queue of hashes), handing w on the same way. */
    void (*cancel)(struct work *w);
};

struct workers;

/* n threads, each opening db_path as a reader; queue_max bounds the jobs waiting. */
int workers_start(const char *db_path, int n, size_t queue_max, struct workers **out);
/* 0, -EBUSY when the queue is full, -ESHUTDOWN when the pool is stopping. */
int workers_submit(struct workers *pool, struct work *w);
/* Cancels every queued job (runs it where there is no cancel), then joins the threads. */
void workers_stop(struct workers *pool);
void workers_free(struct workers *pool);

#endif
