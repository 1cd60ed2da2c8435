/* workers: a mutex + condition-variable queue drained by n threads, each with its own read-only
 * store connection (a SQLite connection belongs to one thread). */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "store/store.h"

/* Niceness of the hashing threads (the loops run at 0). */
#define WORKER_NICE 19

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
    size_t queued, queue_max;
    bool stopping;
    int n;
    struct worker *slots;
};

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
        if (cancel)
            w->cancel(w);
        else
            w->run(w, self->reader);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int workers_start(const char *db_path, int n, size_t queue_max, struct workers **out)
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
    pool->queue_max = queue_max;
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

int workers_submit(struct workers *pool, struct work *w)
{
    int rc = 0;
    w->next = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        rc = -ESHUTDOWN;
    } else if (pool->queued >= pool->queue_max) {
        rc = -EBUSY;
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
