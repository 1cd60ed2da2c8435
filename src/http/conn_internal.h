/* http/conn_internal: what the three parts of a connection share: conn.c (reading, the queue of
 * requests out, writing, the state machine), conn_parse.c (where a request's parts lie in the input
 * buffer, from http_parser's callbacks) and conn_answer.c (formatting answers, handing a connection
 * over as a stream). Nothing outside src/http/conn*.c includes it. */
#ifndef BROKER_HTTP_CONN_INTERNAL_H
#define BROKER_HTTP_CONN_INTERNAL_H

#include <arpa/inet.h>
#include <event2/event_struct.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/append.h"
#include "http/server.h"
#include "http/transport.h"

/* Headers kept per request (more: 431). */
#define MAX_HEADERS 100

enum conn_state { S_HANDSHAKE, S_OPEN, S_LINGER, S_GONE };
enum deadline { DL_NONE, DL_IDLE, DL_HEAD, DL_BODY, DL_WRITE, DL_LINGER };

struct span {
    uint32_t off, len; /* off 0 = unset: offset 0 is always a request's method, never a field */
};

struct header_span {
    struct span name, value;
};

/* One request from dispatch to its answer being written; answers leave in queue order. */
struct pending {
    struct http_request req; /* first: the handlers' pointer is the pending's */
    struct pending *next;
    char *answer;            /* the whole answer, once given */
    size_t answer_len;
    bool answered;
    bool close_after;        /* the connection closes once this answer is out */
    bool post;               /* may run alongside other POSTs */
    char *extra;             /* headers added by the handler, "Name: value\r\n"... */
    size_t extra_len, extra_cap;
    int http_minor;
    int nheaders;
    struct header_span headers[]; /* into conn->in */
};

struct conn {
    struct conn *prev, *next;
    struct conn *next_flush;
    struct http_server *server;
    struct transport t;
    struct event rd, wr, timer;
    enum conn_state state;
    enum deadline deadline;
    bool in_handler;   /* a handler is running on our stack: answers wait for progress() */
    bool closing;      /* no new requests: close once the queue is answered */
    bool socket_gone;  /* the socket is closed; the struct waits for the handlers' answers */
    bool peer_eof;     /* the client closed its side */
    bool read_paused;  /* rd removed: no room while requests are out, or EOF */
    bool write_armed;
    bool flush_queued; /* on the server's list of connections with new answers */
    bool begun, head_done, message_done, last_was_value;
    bool proto_known;  /* HTTP/1.1 for sure (not the HTTP/2 preface, ALPN said so, or h2 is off) */
    int fail_status;
    const char *fail_message;
    http_parser parser;

    /* input: bytes [0, in_len) buffered, [0, parsed) consumed by the parser */
    char *in;
    size_t in_len, in_cap, parsed;
    size_t req_start; /* where the request being parsed starts (when begun) */
    struct span url;
    struct header_span headers[MAX_HEADERS];
    int nheaders;
    size_t body_off, body_len;

    /* requests out, oldest first; out_off bytes of the first answer are already written */
    struct pending *queue, *queue_tail;
    int inflight;   /* in the queue and not answered yet */
    size_t out_off;

    char peer[64];
    char address[INET6_ADDRSTRLEN];
};

static inline struct pending *pending_of(struct http_request *req) { return (struct pending *)req; }

/* conn.c */
void conn_set_deadline(struct conn *c, enum deadline d);
void conn_arm_write(struct conn *c, bool on);
/* Queues an answer that no request owns ("100 Continue"). */
void conn_enqueue_interim(struct conn *c, const char *text, size_t len);
void conn_pending_free(struct pending *p);
void conn_free(struct conn *c);

/* conn_parse.c */
extern const http_parser_settings conn_parser_settings;
/* A pending request for what the parser holds now (all of it once complete). NULL: no memory. */
struct pending *conn_new_pending(struct conn *c);
/* Fills the target and body of r from the parsed request. -1 when the target is not a URL. */
int conn_fill_target(struct conn *c, struct http_request *r);

#endif
