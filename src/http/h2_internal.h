/* http/h2_internal: what the two parts of an HTTP/2 connection share: h2_conn.c (the socket, the
 * nghttp2 session and its callbacks, limits, deadlines, GOAWAY) and h2_stream.c (one stream: its
 * request as a struct http_request, its answer, an event stream's data). Nothing outside
 * src/http/h2*.c includes it. */
#ifndef BROKER_HTTP_H2_INTERNAL_H
#define BROKER_HTTP_H2_INTERNAL_H

#include <arpa/inet.h>
#include <event2/event_struct.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http/h2.h"
#include "http/request.h"
#include "http/transport.h"

/* Request headers kept per stream, as on HTTP/1.1 (more: the connection ends, SPEC §6). */
#define H2_MAX_HEADERS 100

enum h2_deadline { H2_DL_NONE, H2_DL_IDLE, H2_DL_REQUEST, H2_DL_WRITE, H2_DL_LINGER };

struct h2_conn {
    struct h2_conn *prev, *next;   /* the server's HTTP/2 connections */
    struct h2_conn *next_flush;
    struct http_server *server;
    struct transport t;
    struct event rd, wr, timer;
    nghttp2_session *session;
    struct h2_stream *streams;     /* streams with a struct, newest first */
    size_t nstreams;
    size_t incomplete;             /* streams whose request is still arriving */
    enum h2_deadline deadline;
    bool flush_queued;
    bool write_armed;
    bool in_recv;                  /* feeding input to nghttp2: writes wait until it returns */
    bool draining;                 /* GOAWAY sent for shutdown */
    bool abusive;                  /* GOAWAY sent for abuse: read nothing more */
    bool peer_eof;

    /* What nghttp2 serialised and the socket has not taken yet: out[out_off .. out_len). */
    uint8_t *out;
    size_t out_len, out_off, out_cap;

    /* Frames of each kind received in the current second (flood limits). */
    time_t window;
    unsigned pings, settings, resets, empty_data;
    unsigned continuations;        /* in the header block being received */

    char peer[64];
    char address[INET6_ADDRSTRLEN];
};

struct h2_stream {
    struct http_request req;       /* first: the handlers' pointer is the stream's */
    struct h2_conn *conn;          /* NULL once the connection is gone (waits for its handler) */
    struct http_server *server;
    struct h2_stream *prev, *next; /* the connection's streams */
    int32_t id;
    bool complete;                 /* the request arrived whole (END_STREAM) */
    bool dispatched;               /* the router has it */
    bool answered;
    bool closed;                   /* nghttp2 closed it */
    bool deferred;                 /* the data source said "nothing now" */
    bool resumed;                  /* the source has more: tell it when the connection wrote */
    bool event_stream;             /* taken over by the hub (h2_take_stream) */
    bool finishing;                /* an event stream ending: tail, then END_STREAM */
    int fail_status;               /* the server refuses it (413, 400) once it is complete */
    const char *fail_message;
    time_t begun;                  /* monotonic seconds: the request deadline */

    /* The request's headers as "name\0value\0" pairs (pseudo-headers included), and its target:
     * "path\0query\0" split once. */
    char *heads;
    size_t heads_len, heads_cap;
    int nheads;
    char *target;
    char *body;
    size_t body_len, body_cap;

    /* The answer: the handler's headers ("name\0value\0", names lowercased) and the body. */
    char *extra;
    size_t extra_len, extra_cap;
    int nextra;
    char *answer;
    size_t answer_len, answer_off;

    /* An event stream: the hub's source, or once finishing its tail (answer/answer_len). */
    const struct h2_source *src;
    void *src_arg;

    /* req.peer and req.address: copies, since a handler may answer after the connection is gone. */
    char peer[64];
    char address[INET6_ADDRSTRLEN];
};

static inline struct h2_stream *h2_stream_of(const struct http_request *req)
{
    return (struct h2_stream *)req;
}

/* h2_conn.c */
/* The connection has something to write: after the callbacks ready now have run. */
void h2_conn_want_write(struct h2_conn *c);
/* A stream's request ended or was abandoned: the request deadline may change. */
void h2_conn_update_deadline(struct h2_conn *c);
time_t h2_monotonic(void);

/* h2_stream.c */
struct h2_stream *h2_stream_new(struct h2_conn *c, int32_t id);
/* Frees st; only once nghttp2 closed it (or the session is gone) and no handler holds it. */
void h2_stream_free(struct h2_stream *st);
int h2_stream_add_header(struct h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                         size_t vlen);
int h2_stream_add_body(struct h2_stream *st, const uint8_t *data, size_t len);
/* The request arrived whole: to the router (or refused). */
void h2_stream_dispatch(struct h2_stream *st);
/* nghttp2 closed the stream (or the connection is going away: conn_gone). Frees st, or leaves it
 * to its handler. */
void h2_stream_closed(struct h2_stream *st, bool conn_gone);
/* Answers a request still arriving with status (a deadline passed). */
void h2_stream_refuse(struct h2_stream *st, int status, const char *message);

#endif
