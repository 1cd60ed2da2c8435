/* loop: start-up, the accept path and the two shutdown steps of one event-loop thread. */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <time.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "hub.h"
#include "log.h"
#include "store/store.h"
#include "token_cache.h"

/* Steps of shutdown, posted through the mailbox so they run on the loop's own thread. */
struct loop_step {
    struct task task;
    struct loop *loop;
};

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

/* Out of descriptors, the listening socket stays readable and every accept() fails. The loop
 * keeps one descriptor in reserve for this: it gives it up to accept the waiting connection, says
 * 503 to it (plain HTTP only; a TLS client just sees the close) and takes the reserve back. So a
 * connection over the limit gets a clean refusal instead of waiting in the backlog. */
static int refuse_one(struct loop *l, evutil_socket_t listen_fd)
{
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 44\r\nRetry-After: 1\r\nConnection: close\r\n"
        "Access-Control-Allow-Origin: *\r\n\r\n"
        "{\"error\":\"server is at its connection limit\"}";
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        if (!l->app->tls && send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_debug("loop %d: refusing a connection: %s", l->index, strerror(errno));
        close(fd);
        atomic_fetch_add_explicit(&l->app->metrics.connections_refused, 1, memory_order_relaxed);
    }
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 0 : -1;
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    struct loop *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        log_debug("accept: %s", strerror(err));
        return;
    }
    time_t now = time(NULL);
    if (now != l->last_limit_log) {
        l->last_limit_log = now;
        log_warn("loop %d: at the descriptor limit (%s); refusing new connections", l->index,
                 strerror(err));
    }
    if (refuse_one(l, evconnlistener_get_fd(listener)) != 0) {
        /* Not even the reserve helped (the whole system is out): back off briefly. */
        static const struct timeval pause = { 0, 100 * 1000 };
        evconnlistener_disable(listener);
        event_base_once(l->base, -1, EV_TIMEOUT, resume_accepting, listener, &pause);
    }
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int len, void *arg)
{
    (void)listener;
    struct loop *l = arg;
    http_server_accept(&l->http, fd, sa, (socklen_t)len);
}

/* Accepting a connection allocates a few KiB of parsing state that is freed once it becomes a
 * stream, while the stream's own small objects stay: after a wave of connects the allocator holds
 * many free pages pinned between live objects. Once a second, after enough new connections, loop 0
 * hands such pages back (glibc's malloc_trim releases free pages inside the heap too). */
#define TRIM_AFTER_CONNECTIONS 1024

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *l = arg;
    unsigned long accepted = atomic_load_explicit(&l->app->metrics.connections_accepted,
                                                  memory_order_relaxed);
    if (accepted - l->trimmed_at >= TRIM_AFTER_CONNECTIONS) {
        l->trimmed_at = accepted;
        malloc_trim(0);
    }
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    if (event_base_dispatch(l->base) < 0)
        log_error("loop %d: event loop failed", l->index);
    return NULL;
}

int loop_new(struct app *app, int index, int listen_fd, struct loop **out)
{
    *out = NULL;
    struct loop *l = calloc(1, sizeof *l);
    if (!l) {
        close(listen_fd);
        return -ENOMEM;
    }
    l->index = index;
    l->app = app;
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* Only this thread touches the base; other threads reach it through the mailbox's eventfd. */
    struct event_config *ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        l->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!l->base || http_server_init(&l->http, l->base, app->cfg, app->tls, app->peers,
                                     &app->metrics) != 0) {
        close(listen_fd);
        loop_free(l);
        return -ENOMEM;
    }
    l->http.on_request = api_dispatch;
    l->http.on_refusal = api_refuse;
    l->http.arg = l;
    /* The sockets evconnlistener accepts are non-blocking and close-on-exec (accept4). Backlog 0:
     * the socket already listens (LISTEN_BACKLOG); libevent 2.1 takes -1 to mean listen(fd, 128),
     * which drops SYNs under a burst of connects (clients then wait out a 1 s retransmission). */
    l->listener = evconnlistener_new(l->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, listen_fd);
    if (!l->listener) {
        close(listen_fd);
        loop_free(l);
        return -ENOMEM;
    }
    evconnlistener_set_error_cb(l->listener, on_accept_error);
    int rc = store_open(app->db_path, STORE_READER, &l->reader);
    if (rc != 0) {
        loop_free(l);
        return rc;
    }
    l->hub = hub_new(l);
    l->mailbox = mailbox_new(l->base, hub_flush_pending, l->hub);
    l->tokens = token_cache_new();
    l->rules = app->rules;
    l->rules_gen = app->rules_gen;
    if (!l->mailbox || !l->hub || !l->tokens) {
        loop_free(l);
        return -ENOMEM;
    }
    if (index == 0) {
        static const struct timeval second = { 1, 0 };
        l->housekeeping = event_new(l->base, -1, EV_PERSIST, on_housekeeping, l);
        if (!l->housekeeping || event_add(l->housekeeping, &second) != 0) {
            loop_free(l);
            return -ENOMEM;
        }
    }
    *out = l;
    return 0;
}

int loop_start(struct loop *l)
{
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
        return -EAGAIN;
    l->started = 1;
    return 0;
}

static void drain_step(struct task *t)
{
    struct loop_step *s = (struct loop_step *)t;
    struct loop *l = s->loop;
    if (l->listener) {
        evconnlistener_free(l->listener); /* closes the listening socket */
        l->listener = NULL;
    }
    http_server_drain(&l->http);
    hub_close_all(l->hub);
    free(s);
}

static void exit_step(struct task *t)
{
    struct loop_step *s = (struct loop_step *)t;
    /* Every reply was queued before this step ran; give the sockets a moment to take them. */
    static const struct timeval flush = { 0, 200 * 1000 };
    event_base_loopexit(s->loop->base, &flush);
    free(s);
}

static void post_step(struct loop *l, void (*run)(struct task *))
{
    struct loop_step *s = calloc(1, sizeof *s);
    if (!s) {
        /* Cannot queue the step: fall back to stopping the loop outright. */
        event_base_loopbreak(l->base);
        return;
    }
    s->task.run = run;
    s->loop = l;
    mailbox_post(l->mailbox, &s->task);
}

void loop_post_drain(struct loop *l) { post_step(l, drain_step); }

void loop_post_exit(struct loop *l) { post_step(l, exit_step); }

void loop_join(struct loop *l)
{
    if (l->started)
        pthread_join(l->thread, NULL);
    l->started = 0;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    hub_free(l->hub);
    if (l->housekeeping)
        event_free(l->housekeeping);
    if (l->listener)
        evconnlistener_free(l->listener);
    if (l->base)
        http_server_close_all(&l->http);
    mailbox_free(l->mailbox);
    store_close(l->reader);
    token_cache_free(l->tokens);
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    if (l->base)
        event_base_free(l->base);
    free(l);
}
