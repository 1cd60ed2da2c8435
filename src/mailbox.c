/* mailbox: a mutex-protected FIFO of tasks plus an eventfd that wakes the owning event loop. The
 * loop takes the whole list at once, so one wake-up runs everything that piled up meanwhile. */
#include "mailbox.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

struct mailbox {
    pthread_mutex_t lock;
    struct task *head, *tail;
    int efd;
    struct event *ev;
    void (*after)(void *arg);
    void *after_arg;
};

static void mailbox_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct mailbox *mb = arg;
    uint64_t n;
    /* Non-blocking; EAGAIN just means another wake-up already consumed the count. */
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_error("mailbox: read eventfd: %s", strerror(errno));
    pthread_mutex_lock(&mb->lock);
    struct task *t = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);
    while (t) {
        struct task *next = t->next; /* run() may free t */
        t->run(t);
        t = next;
    }
    if (mb->after)
        mb->after(mb->after_arg);
}

struct mailbox *mailbox_new(struct event_base *base, void (*after)(void *arg), void *arg)
{
    struct mailbox *mb = calloc(1, sizeof *mb);
    if (!mb)
        return NULL;
    mb->after = after;
    mb->after_arg = arg;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0 || pthread_mutex_init(&mb->lock, NULL) != 0) {
        if (mb->efd >= 0)
            close(mb->efd);
        free(mb);
        return NULL;
    }
    mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_drain, mb);
    if (!mb->ev || event_add(mb->ev, NULL) != 0) {
        if (mb->ev)
            event_free(mb->ev);
        close(mb->efd);
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return NULL;
    }
    return mb;
}

void mailbox_free(struct mailbox *mb)
{
    if (!mb)
        return;
    event_free(mb->ev);
    close(mb->efd);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

void mailbox_post(struct mailbox *mb, struct task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&mb->lock);
    int was_empty = mb->head == NULL;
    if (mb->tail)
        mb->tail->next = t;
    else
        mb->head = t;
    mb->tail = t;
    pthread_mutex_unlock(&mb->lock);
    if (was_empty) {
        /* Only the first task after a drain needs to wake the loop. */
        uint64_t one = 1;
        if (write(mb->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_error("mailbox: write eventfd: %s", strerror(errno));
    }
}
