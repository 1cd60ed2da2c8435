/* http/server: accepting (with the per-address cap), the list of connections, shutdown. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http/conn.h"
#include "http/h2.h"
#include "http/peer_limit.h"
#include "log.h"
#include "metrics.h"

/* How long a closing connection waits for the client to read the answer and close its side. */
#define LINGER_SECONDS 2

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_flush_all(arg);
    h2_flush_all(arg);
}

int http_server_init(struct http_server *s, struct event_base *base, const struct config *cfg,
                     SSL_CTX *tls, struct peer_limit *peers, struct metrics *metrics)
{
    memset(s, 0, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    s->tls = tls;
    s->peers = peers;
    s->metrics = metrics;
    /* Common timeouts: every connection's deadline of one kind lives in one queue, so arming one
     * is a list append rather than a heap insertion. */
    struct timeval head = { cfg->header_timeout, 0 }, request = { cfg->request_timeout, 0 },
                   idle = { cfg->idle_timeout, 0 }, linger = { LINGER_SECONDS, 0 };
    s->head_timeout = event_base_init_common_timeout(base, &head);
    s->request_timeout = event_base_init_common_timeout(base, &request);
    s->idle_timeout = event_base_init_common_timeout(base, &idle);
    s->linger_timeout = event_base_init_common_timeout(base, &linger);
    s->flush = event_new(base, -1, 0, on_flush, s);
    if (!s->head_timeout || !s->request_timeout || !s->idle_timeout || !s->linger_timeout || !s->flush)
        return -ENOMEM;
    return 0;
}

/* Over the per-address cap: a plain-HTTP client is told so, a TLS one just sees the close. */
static void refuse_connection(struct http_server *s, int fd, const struct sockaddr *sa)
{
    static const char busy[] =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        "Content-Length: 52\r\nRetry-After: 5\r\nConnection: close\r\n"
        "Access-Control-Allow-Origin: *\r\n\r\n"
        "{\"error\":\"too many connections from your address\"}";
    if (!s->tls)
        (void)send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    atomic_fetch_add_explicit(&s->metrics->connections_refused, 1, memory_order_relaxed);
    time_t now = time(NULL);
    if (now != s->refusal_logged_at) { /* at most one such line per second */
        s->refusal_logged_at = now;
        char addr[INET6_ADDRSTRLEN] = "?";
        const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                                 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        inet_ntop(sa->sa_family, a, addr, sizeof addr);
        log_warn("http: %s is at --max_connections_per_address (%d); refusing a connection", addr,
                 s->cfg->max_connections_per_address);
    }
}

void http_server_accept(struct http_server *s, int fd, const struct sockaddr *sa, socklen_t len)
{
    (void)len;
    struct peer_slot *slot = NULL;
    int rc = peer_limit_acquire(s->peers, sa, &slot);
    if (rc == -1) {
        refuse_connection(s, fd, sa);
        return;
    }
    atomic_fetch_add_explicit(&s->metrics->connections_accepted, 1, memory_order_relaxed);
    SSL *ssl = NULL;
    if (rc == 0 && s->tls && (!(ssl = SSL_new(s->tls)) || SSL_set_fd(ssl, fd) != 1))
        rc = -ENOMEM;
    if (rc == 0)
        rc = conn_new(s, fd, ssl, slot, sa);
    if (rc != 0) {
        log_error("http: out of memory accepting a connection; dropping it");
        SSL_free(ssl);
        peer_limit_release(slot);
        close(fd);
    }
}

void http_server_drain(struct http_server *s)
{
    s->draining = true;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = conn_next(c);
        conn_drain(c); /* may free c */
    }
    for (struct h2_conn *c = s->h2_conns, *next; c; c = next) {
        next = h2_conn_next(c);
        h2_conn_drain(c); /* GOAWAY; the connection closes once its streams end */
    }
}

void http_server_close_all(struct http_server *s)
{
    while (s->conns)
        conn_free(s->conns);
    while (s->h2_conns)
        h2_conn_free(s->h2_conns);
    if (s->flush) {
        event_free(s->flush);
        s->flush = NULL;
    }
}
