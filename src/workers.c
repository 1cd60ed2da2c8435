/* workers: a mutex + condition-variable queue drained by n threads, each with its own read-only
 * store connection (a SQLite connection belongs to one thread), and the admission rule: the
 * estimated wait of a new job against max_wait, with the cost of a job a moving average of the
 * measured ones. */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store/store.h"

/* Niceness of the hashing threads (the loops run at 0). */
#define WORKER_NICE 19
/* Whatever the estimate says, never more jobs than this wait (a few hundred bytes each). */
#define WORKERS_MAX_QUEUED 65536
/* The moving average gives each new measurement this weight (1/8): it follows a change of load
 * within a few dozen jobs without jumping at one outlier. */
#define COST_WEIGHT_SHIFT 3

struct worker {
    struct workers *pool;
    pthread_t thread;
    bool running;
    struct store *reader;
};

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct work *head, *tail;
    size_t queued;
    long max_wait_us;
    long cost_us; /* moving average of a job's wall time */
    bool stopping;
    int n;
    struct worker *slots;
};

static long monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Called with the lock held. Wall time, not CPU time: what a client waits for is the wall time
 * of the jobs ahead of it, including what the loops took from these low-priority threads. */
static void record_cost(struct workers *pool, long took_us)
{
    pool->cost_us += (took_us - pool->cost_us) >> COST_WEIGHT_SHIFT;
    if (pool->cost_us < 1)
        pool->cost_us = 1;
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct workers *pool = self->pool;
    /* Hashing must never slow delivery: at nice 19 a hash thread weighs 1/68 of a loop thread, so
     * a loop thread that wakes up preempts it at once. Not SCHED_IDLE: that starves hashing
     * outright while the cores are busy (the fuzzer's shutdown waited minutes for queued logins),
     * and a login must finish, if slowly. On Linux nice is per thread. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), WORKER_NICE) != 0)
        log_debug("workers: cannot lower the thread priority: %s", strerror(errno));
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->stopping)
            pthread_cond_wait(&pool->ready, &pool->lock);
        struct work *w = pool->head;
        if (!w)
            break; /* stopping and drained */
        pool->head = w->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        bool cancel = pool->stopping && w->cancel;
        pthread_mutex_unlock(&pool->lock);
        if (cancel) {
            w->cancel(w);
            pthread_mutex_lock(&pool->lock);
            continue;
        }
        long start = monotonic_us();
        w->run(w, self->reader); /* w may be gone after this */
        long took = monotonic_us() - start;
        pthread_mutex_lock(&pool->lock);
        record_cost(pool, took);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int workers_start(const char *db_path, int n, long max_wait_ms, long initial_cost_us,
                  struct workers **out)
{
    *out = NULL;
    struct workers *pool = calloc(1, sizeof *pool);
    if (!pool)
        return -ENOMEM;
    pool->slots = calloc((size_t)n, sizeof *pool->slots);
    if (!pool->slots) {
        free(pool);
        return -ENOMEM;
    }
    pool->n = n;
    pool->max_wait_us = max_wait_ms * 1000;
    pool->cost_us = initial_cost_us > 0 ? initial_cost_us : 1;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        pool->slots[i].pool = pool;
        rc = store_open(db_path, STORE_READER, &pool->slots[i].reader);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        if (pthread_create(&pool->slots[i].thread, NULL, worker_main, &pool->slots[i]) != 0) {
            log_error("workers: cannot start thread %d", i);
            rc = -EAGAIN;
        } else {
            pool->slots[i].running = true;
        }
    }
    if (rc) {
        workers_stop(pool);
        workers_free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

int workers_submit(struct workers *pool, struct work *w, long *retry_after)
{
    int rc = 0;
    w->next = NULL;
    pthread_mutex_lock(&pool->lock);
    /* The new job waits for the queued ones, then runs: all of that spread over n threads. */
    long wait_us = (long)((pool->queued + 1) * (unsigned long)pool->cost_us / (unsigned long)pool->n);
    if (pool->stopping) {
        rc = -ESHUTDOWN;
    } else if (wait_us > pool->max_wait_us || pool->queued >= WORKERS_MAX_QUEUED) {
        rc = -EBUSY;
        /* By then the queue has drained to within the bound again. */
        long excess_us = wait_us - pool->max_wait_us;
        if (excess_us < pool->cost_us)
            excess_us = pool->cost_us;
        *retry_after = (excess_us + 999999) / 1000000;
    } else {
        if (pool->tail)
            pool->tail->next = w;
        else
            pool->head = w;
        pool->tail = w;
        pool->queued++;
        pthread_cond_signal(&pool->ready);
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

long workers_cost_us(struct workers *pool)
{
    pthread_mutex_lock(&pool->lock);
    long cost = pool->cost_us;
    pthread_mutex_unlock(&pool->lock);
    return cost;
}

void workers_stop(struct workers *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n; i++) {
        if (pool->slots[i].running)
            pthread_join(pool->slots[i].thread, NULL);
        pool->slots[i].running = false;
    }
}

void workers_free(struct workers *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->n; i++)
        store_close(pool->slots[i].reader);
    free(pool->slots);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->ready);
    free(pool);
}
