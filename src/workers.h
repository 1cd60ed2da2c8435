/* workers: a fixed pool of threads for the slow, CPU-bound work that must never run on a loop
 * thread (Argon2id costs tens of milliseconds and tens of MiB by design). The queue is bounded by
 * time, not by a count: a job is admitted while its estimated wait (the jobs ahead of it times the
 * measured cost of one, spread over the threads) fits inside max_wait, so a burst the cores clear in
 * a few seconds is served whole, and a flood beyond that is refused at once with a time to come
 * back (the route answers 503 with Retry-After). A queued job holds no hash memory, only its
 * request, so the queue costs little; a hard cap on the count guards against a cost estimate gone
 * wrong. Each worker has its own read-only store connection. */
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

/* n threads, each opening db_path as a reader. A job is admitted while its estimated wait is at
 * most max_wait_ms; until jobs have been timed, each is assumed to cost initial_cost_us (the cost
 * of one hash measured at start-up). */
int workers_start(const char *db_path, int n, long max_wait_ms, long initial_cost_us,
                  struct workers **out);
/* 0; -EBUSY when the estimated wait is too long, with *retry_after set to the seconds after which
 * the queue should have room again (at least 1); -ESHUTDOWN when the pool is stopping. */
int workers_submit(struct workers *pool, struct work *w, long *retry_after);
/* The estimated cost of one job in microseconds (a moving average of the last ones). */
long workers_cost_us(struct workers *pool);
/* Cancels every queued job (runs it where there is no cancel), then joins the threads. */
void workers_stop(struct workers *pool);
void workers_free(struct workers *pool);

#endif
