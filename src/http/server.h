/* http/server: the HTTP/1.1 server of one loop thread: accepts connections (after the
 * per-address cap), owns their list, and shuts them down. Each connection is run by http/conn.c
 * on top of the http_parser library: keep-alive, pipelined POSTs handled concurrently with answers
 * in order, the limits (head and body size, a deadline for the head and for the whole request, an
 * idle timeout) with JSON refusals, each request handed to the router, and a lingering close so a
 * refusal reaches the client before the close. Loop-thread only. */
#ifndef BROKER_HTTP_SERVER_H
#define BROKER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "http/request.h"

struct event;
struct event_base;
struct config;
struct conn;
struct h2_conn;
struct metrics;
struct peer_limit;
typedef struct ssl_ctx_st SSL_CTX;

struct http_server {
    struct event_base *base;
    const struct config *cfg;
    SSL_CTX *tls;               /* NULL: plain HTTP */
    struct peer_limit *peers;   /* shared by every loop; NULL: no per-address cap */
    struct metrics *metrics;
    /* Every complete request goes to on_request; a request the server refuses by itself
     * (malformed, too large, too slow) to on_refusal, which must answer with status. */
    void (*on_request)(struct http_request *req, void *arg);
    void (*on_refusal)(struct http_request *req, int status, const char *message, void *arg);
    void *arg;
    const struct timeval *head_timeout, *request_timeout, *idle_timeout, *linger_timeout;
    struct conn *conns;         /* every connection of this loop */
    size_t nconns;
    struct conn *flush_list;    /* connections with answers to write */
    struct h2_conn *h2_conns;   /* the HTTP/2 connections (http/h2.h) */
    size_t nh2_conns;
    struct h2_conn *h2_flush_list; /* HTTP/2 connections with frames to write */
    struct event *flush;        /* writes them, after the callbacks ready now have run */
    bool draining;
    time_t refusal_logged_at;   /* per-address refusals are logged once a second at most */
    time_t date_at;             /* the cached Date header below is for this second */
    char date[40];
};

/* 0, or -ENOMEM. */
int http_server_init(struct http_server *s, struct event_base *base, const struct config *cfg,
                     SSL_CTX *tls, struct peer_limit *peers, struct metrics *metrics);
/* Takes over an accepted, non-blocking socket. */
void http_server_accept(struct http_server *s, int fd, const struct sockaddr *sa, socklen_t len);
/* Shutdown: closes idle connections now; the others close once their requests are answered. */
void http_server_drain(struct http_server *s);
/* The Date header's value for now (cached per second). */
const char *http_server_date(struct http_server *s);
/* Closes every connection at once and frees what the server holds (the loop is going away). */
void http_server_close_all(struct http_server *s);

#endif
