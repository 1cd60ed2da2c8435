/* loop: one event-loop thread. It owns an event_base, an HTTP server (http/conn) accepting on its
 * own SO_REUSEPORT socket, a mailbox through which other threads reach it, and the hub of the
 * subscribers whose connections it accepted. Nothing it owns is touched by another thread except
 * through the mailbox. */
#ifndef BROKER_LOOP_H
#define BROKER_LOOP_H

#include <pthread.h>
#include <time.h>

#include "app.h"
#include "http/server.h"
#include "mailbox.h"

struct event_base;
struct event;
struct evconnlistener;
struct hub;
struct store;
struct token_cache;
struct rules;

struct loop {
    int index;
    struct app *app;
    struct event_base *base;
    struct evconnlistener *listener;
    struct http_server http;
    struct mailbox *mailbox;
    struct hub *hub;
    struct store *reader; /* this thread's read-only store connection (resumes) */
    struct token_cache *tokens; /* recently verified tokens */
    const struct rules *rules;  /* the access rules this loop applies now (NULL: none) */
    unsigned rules_gen;         /* which load of the rules file that is (masks cache it) */
    int reserve_fd;        /* kept to refuse connections cleanly at the descriptor limit */
    struct event *housekeeping; /* loop 0 only: gives freed heap pages back */
    unsigned long trimmed_at;   /* connections accepted at the last trim */
    time_t last_limit_log;
    pthread_t thread;
    int started;
};

/* listen_fd: a bound, listening, non-blocking socket that the loop takes over. */
int loop_new(struct app *app, int index, int listen_fd, struct loop **out);
int loop_start(struct loop *l);
/* Thread-safe: stop accepting and end every stream (first step of shutdown). */
void loop_post_drain(struct loop *l);
/* Thread-safe: exit once the mailbox is empty and replies are flushed (last step). */
void loop_post_exit(struct loop *l);
void loop_join(struct loop *l);
void loop_free(struct loop *l);

#endif
