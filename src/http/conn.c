/* http/conn: one client connection, from accept to close:
 *
 *   HANDSHAKE (TLS) -> OPEN -> LINGER -> freed      (closing after an answer)
 *                      OPEN -> GONE                 (a handler took the connection as a stream)
 *
 * While OPEN, requests are read, parsed and handed to the router; their answers leave in request
 * order (HTTP/1.1), several in one write when they are ready together. Pipelined POSTs are handled
 * concurrently (up to PIPELINE_MAX per connection), so a publisher that pipelines inserts gets them
 * into one group commit; any other request waits until everything before it is answered, so a
 * stream (GET /sse) always starts on a connection with nothing else in flight.
 *
 * Input accumulates in one buffer per connection; http_parser marks where the request target, the
 * headers and the body lie in it (offsets, so the buffer may grow or shift while a request
 * arrives), and the strings are terminated in place once the head is complete: no copies per
 * header. A chunked body is joined in place too. While a handler holds a request the buffer never
 * moves: more input is read only into the room left, then reading pauses.
 *
 * One timer per connection carries the deadline of the moment: the head of a request
 * (--header_timeout from its first byte, or for a TLS handshake), the rest of it
 * (--request_timeout), an idle keep-alive connection (--idle_timeout), answers the client does not
 * read, a lingering close. The durations are libevent "common timeouts": arming one is cheap. */
#include "http/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "http/conn_internal.h"
#include "http/h2.h"
#include "http/transport.h"
#include "log.h"
#include "metrics.h"

#define INPUT_INITIAL 4096
#define READ_ROOM_MIN 1024
/* Requests of one connection in the handlers at once (pipelined POSTs). */
#define PIPELINE_MAX 32
/* Requests parsed for one connection per loop turn, so a pipelining client cannot hold the loop. */
#define REQUESTS_PER_TURN 64
/* Answers gathered into one write. */
#define WRITE_IOV 64

static bool progress(struct conn *c);

/* ---- small helpers ---- */

static size_t input_limit(const struct conn *c)
{
    /* head + body, plus room for the framing of a chunked body */
    return c->server->cfg->max_header + c->server->cfg->max_body + 8192;
}

int conn_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t size = *cap ? *cap : 128;
        while (size < *len + n)
            size *= 2;
        char *p = realloc(*buf, size);
        if (!p)
            return -ENOMEM;
        *buf = p;
        *cap = size;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

void conn_set_deadline(struct conn *c, enum deadline d)
{
    if (c->deadline == d)
        return;
    c->deadline = d;
    const struct http_server *s = c->server;
    const struct timeval *tv = d == DL_IDLE     ? s->idle_timeout
                             : d == DL_HEAD     ? s->head_timeout
                             : d == DL_LINGER   ? s->linger_timeout
                             : d == DL_NONE     ? NULL
                                                : s->request_timeout;
    if (tv)
        event_add(&c->timer, tv);
    else
        event_del(&c->timer);
}

void conn_arm_write(struct conn *c, bool on)
{
    if (on == c->write_armed)
        return;
    c->write_armed = on;
    if (on)
        event_add(&c->wr, NULL);
    else
        event_del(&c->wr);
}

static void pause_reading(struct conn *c, bool pause)
{
    if (pause == c->read_paused)
        return;
    c->read_paused = pause;
    if (pause)
        event_del(&c->rd);
    else
        event_add(&c->rd, NULL);
}

/* ---- the queue of requests out ---- */

void conn_pending_free(struct pending *p)
{
    free(p->answer);
    free(p->extra);
    free(p);
}

static void enqueue(struct conn *c, struct pending *p)
{
    if (c->queue_tail)
        c->queue_tail->next = p;
    else
        c->queue = p;
    c->queue_tail = p;
}

static struct pending *dequeue(struct conn *c)
{
    struct pending *p = c->queue;
    c->queue = p->next;
    if (!c->queue)
        c->queue_tail = NULL;
    c->out_off = 0;
    return p;
}

/* A queued answer that no request owns: "100 Continue". */
void conn_enqueue_interim(struct conn *c, const char *text, size_t len)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || !(p->answer = malloc(len))) {
        free(p);
        return; /* the client goes on after its own timeout */
    }
    memcpy(p->answer, text, len);
    p->answer_len = len;
    p->answered = true;
    enqueue(c, p);
}

/* ---- requests to the handlers (parsing: conn_parse.c; answers: conn_answer.c) ---- */

static void run_handler(struct conn *c, struct pending *p, int status, const char *message)
{
    struct http_server *s = c->server;
    enqueue(c, p);
    c->inflight++;
    c->in_handler = true;
    if (status)
        s->on_refusal(&p->req, status, message, s->arg);
    else
        s->on_request(&p->req, s->arg);
    c->in_handler = false;
}

/* The server refuses by itself: the answer queues behind the earlier ones, then the connection
 * closes. */
static void refuse(struct conn *c, int status, const char *message)
{
    struct pending *p = conn_new_pending(c);
    c->closing = true;
    c->message_done = false;
    pause_reading(c, true); /* whatever else comes is not read now; the linger drains it */
    if (!p) {
        log_error("http: out of memory refusing a request from %s; closing", c->peer);
        c->peer_eof = true; /* nothing to say: end once the queue is out */
        return;
    }
    p->close_after = true;
    run_handler(c, p, status, message);
}

/* The parsed request goes to its handler, if its turn has come. false when it must wait. */
static bool dispatch(struct conn *c)
{
    bool post = c->parser.method == HTTP_POST;
    if (c->queue && (!post || c->inflight >= PIPELINE_MAX || !c->queue_tail->post))
        return false; /* waits for the queue (a stream must start on an idle connection) */
    struct pending *p = conn_new_pending(c);
    if (!p) {
        refuse(c, 503, "out of memory");
        return true;
    }
    c->message_done = false;
    c->begun = false;
    if (conn_fill_target(c, &p->req) != 0) {
        conn_pending_free(p);
        refuse(c, 400, "malformed request target");
        return true;
    }
    p->post = post;
    if (!http_should_keep_alive(&c->parser) || c->parser.upgrade || c->server->draining) {
        p->close_after = true;
        c->closing = true;
    }
    run_handler(c, p, 0, NULL);
    return true;
}

/* ---- I/O ---- */

/* Is the input buffer referenced by a handler (a request out, not answered)? */
static bool pinned(const struct conn *c) { return c->inflight > 0; }

/* Drops consumed bytes from the front of the input buffer, keeping a request being parsed (whose
 * spans shift with it). Only when no handler holds a pointer into the buffer. */
static void compact(struct conn *c)
{
    size_t shift = c->begun ? c->req_start : c->parsed;
    if (shift == 0 || pinned(c))
        return;
    memmove(c->in, c->in + shift, c->in_len - shift);
    c->in_len -= shift;
    c->parsed -= shift;
    c->req_start = c->begun ? 0 : c->parsed;
    if (!c->begun)
        return;
    if (c->url.off)
        c->url.off -= (uint32_t)shift;
    for (int i = 0; i < c->nheaders; i++) {
        if (c->headers[i].name.off)
            c->headers[i].name.off -= (uint32_t)shift;
        if (c->headers[i].value.off)
            c->headers[i].value.off -= (uint32_t)shift;
    }
    if (c->body_off)
        c->body_off -= shift;
}

/* Could a read now find room in the input buffer (now, or after compacting or growing it)? */
static bool can_read_more(const struct conn *c)
{
    if (c->in_cap - c->in_len > 0)
        return true;
    return !pinned(c) && (c->in_cap < input_limit(c) || (c->begun ? c->req_start : c->parsed) > 0);
}

/* Reads what the socket has into the input buffer: 0, or -1 when the connection failed. Sets
 * peer_eof when the client closed its side (what came before is in the buffer). */
static int read_input(struct conn *c)
{
    for (int rounds = 0; rounds < 8; rounds++) {
        if (c->in_cap - c->in_len < READ_ROOM_MIN && !pinned(c)) {
            compact(c);
            size_t limit = input_limit(c);
            if (c->in_cap - c->in_len < READ_ROOM_MIN && c->in_cap < limit) {
                size_t cap = c->in_cap ? c->in_cap * 2 : INPUT_INITIAL;
                cap = cap > limit ? limit : cap;
                char *p = realloc(c->in, cap);
                if (!p)
                    return -1;
                c->in = p;
                c->in_cap = cap;
            }
        }
        size_t room = c->in_cap - c->in_len;
        if (room == 0) {
            /* Full: wait for the handlers or the queue to move (progress() resumes reading), or
             * the parser refuses a request that does not fit. */
            pause_reading(c, true);
            return 0;
        }
        ssize_t n = transport_read(&c->t, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            if ((size_t)n < room && !c->t.ssl)
                return 0; /* a short read drained the socket; saves a recv that says EAGAIN */
            continue;
        }
        if (n == 0) {
            c->peer_eof = true;
            pause_reading(c, true);
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->t.want_write)
                conn_arm_write(c, true);
            return 0;
        }
        return -1;
    }
    event_active(&c->rd, EV_READ, 1); /* more is waiting: next turn, after the others */
    return 0;
}

/* The last answer is out: say so (FIN, or TLS close_notify) and give the client a moment to read
 * it and close its side; closing at once could reset the connection under the unread answer. */
static void start_linger(struct conn *c)
{
    transport_shutdown(&c->t);
    c->state = S_LINGER;
    conn_arm_write(c, false);
    pause_reading(c, c->peer_eof);
    conn_set_deadline(c, DL_LINGER);
}

/* Writes the answers at the head of the queue, several per write. 0, or -1 when the connection
 * failed. Starts the lingering close after an answer that ends the connection. */
static int write_answers(struct conn *c)
{
    while (c->queue && c->queue->answered) {
        struct iovec iov[WRITE_IOV];
        int n = 0;
        for (struct pending *p = c->queue; p && p->answered && n < WRITE_IOV; p = p->next) {
            size_t skip = p == c->queue ? c->out_off : 0;
            iov[n].iov_base = p->answer + skip;
            iov[n++].iov_len = p->answer_len - skip;
            if (p->close_after)
                break;
        }
        ssize_t w = transport_writev(&c->t, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_arm_write(c, c->t.want_write || !c->t.ssl);
                return 0;
            }
            return -1;
        }
        size_t left = (size_t)w;
        while (c->queue && c->queue->answered) {
            struct pending *p = c->queue;
            size_t rest = p->answer_len - c->out_off;
            if (left < rest) {
                c->out_off += left;
                break;
            }
            left -= rest;
            bool last = p->close_after;
            conn_pending_free(dequeue(c));
            if (last) {
                start_linger(c);
                return 0;
            }
        }
    }
    conn_arm_write(c, false);
    return 0;
}

/* ---- the state machine ---- */

/* Parses and dispatches what is buffered, as far as the queue allows. true when something
 * happened that may let more happen (call again). */
static bool parse_step(struct conn *c)
{
    if (c->closing)
        return false;
    if (c->message_done)
        return dispatch(c);
    if (c->parsed == c->in_len)
        return false;
    if (!c->begun)
        c->req_start = c->parsed;
    size_t n = http_parser_execute(&c->parser, &conn_parser_settings, c->in + c->parsed,
                                   c->in_len - c->parsed);
    c->parsed += n;
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (c->message_done) {
        if (err == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        dispatch(c);
        return true;
    }
    if (err != HPE_OK) {
        char reason[96];
        const char *why = c->fail_message;
        int status = c->fail_status;
        if (!status) {
            status = err == HPE_HEADER_OVERFLOW ? 431 : 400;
            snprintf(reason, sizeof reason, "malformed request (%s)", http_errno_description(err));
            why = err == HPE_HEADER_OVERFLOW ? "request head is too large" : reason;
        }
        refuse(c, status, why);
        return true;
    }
    if (c->in_len - c->req_start >= input_limit(c)) {
        refuse(c, c->head_done ? 413 : 431, c->head_done ? "request body is too large" : "request head is too large");
        return true;
    }
    return false;
}

static void update_deadline(struct conn *c)
{
    if (c->state != S_OPEN)
        return;
    if (c->write_armed)
        conn_set_deadline(c, DL_WRITE); /* the client does not read its answers */
    else if (c->begun && !c->message_done && !c->closing)
        conn_set_deadline(c, c->head_done ? DL_BODY : DL_HEAD);
    else if (c->queue || c->message_done)
        conn_set_deadline(c, DL_NONE); /* the server is working */
    else
        conn_set_deadline(c, DL_IDLE);
}

/* The connection speaks HTTP/2 (ALPN, or the preface on plain HTTP): it goes to http/h2 with its
 * socket and what was read so far, and this struct is freed. Always false (c is gone). */
static bool hand_to_h2(struct conn *c)
{
    event_del(&c->rd);
    conn_arm_write(c, false);
    conn_set_deadline(c, DL_NONE);
    if (h2_conn_new(c->server, &c->t, c->peer, c->address, c->in ? c->in + c->parsed : NULL,
                    c->in_len - c->parsed) != 0)
        log_error("http: out of memory starting HTTP/2 with %s; closing", c->peer);
    conn_free(c); /* the socket is the h2 connection's now (or closed with c) */
    return false;
}

/* Plain HTTP: is this a client speaking HTTP/2 with prior knowledge (its first bytes are the
 * preface)? 1: yes, 0: cannot tell yet, -1: no (or HTTP/2 is off). Decided once per connection. */
static int prior_knowledge(struct conn *c)
{
    if (c->proto_known)
        return -1;
    if (c->t.ssl || c->server->cfg->h2_max_streams == 0 || c->begun || c->queue || c->parsed > 0) {
        c->proto_known = true;
        return -1;
    }
    if (c->in_len == 0)
        return -1; /* nothing to tell from yet: HTTP/1.1 as far as anything else is concerned */
    int m = h2_preface_match(c->in, c->in_len);
    if (m == 0 && c->peer_eof)
        m = -1; /* a prefix ("P", "PRI * HT") and then the end: HTTP/1.1's to refuse and close */
    if (m < 0)
        c->proto_known = true;
    return m;
}

/* Runs the connection as far as it can go now. false when it ended (c is freed). */
static bool progress(struct conn *c)
{
    switch (c->state) {
    case S_HANDSHAKE: {
        int rc = transport_handshake(&c->t);
        if (rc < 0) {
            log_debug("http: TLS handshake with %s failed", c->peer);
            conn_free(c);
            return false;
        }
        if (rc == 0) {
            conn_arm_write(c, c->t.want_write);
            return true;
        }
        conn_arm_write(c, false);
        c->state = S_OPEN;
        if (transport_alpn_h2(&c->t))
            return hand_to_h2(c);
        c->proto_known = true;
        conn_set_deadline(c, DL_IDLE);
        if (transport_has_pending(&c->t))
            event_active(&c->rd, EV_READ, 1);
        return true; /* the request itself comes with the next readable event */
    }
    case S_LINGER:
        return true;
    case S_GONE:
        conn_free(c);
        return false;
    case S_OPEN:
        break;
    }
    if (c->socket_gone) {
        while (c->queue && c->queue->answered)
            conn_pending_free(dequeue(c));
        if (!c->queue) {
            conn_free(c);
            return false;
        }
        return true;
    }
    switch (prior_knowledge(c)) {
    case 1:
        return hand_to_h2(c);
    case 0:
        return true; /* the rest of the preface comes with the next read */
    }
    int budget = REQUESTS_PER_TURN;
    for (;;) {
        while (budget > 0 && parse_step(c)) {
            budget--;
            if (c->state == S_GONE) {
                conn_free(c);
                return false;
            }
        }
        if (write_answers(c) != 0) {
            log_debug("http: write to %s failed: %s", c->peer, strerror(errno));
            conn_free(c);
            return false;
        }
        /* Closing (a refusal, Connection: close) or shutting down with no request under way, and
         * nothing more is owed: say goodbye. */
        if (c->state == S_OPEN && !c->queue &&
            (c->closing || (c->server->draining && !c->begun && !c->message_done && c->parsed == c->in_len)))
            start_linger(c);
        if (c->state == S_LINGER) {
            if (c->peer_eof) {
                conn_free(c);
                return false;
            }
            return true;
        }
        /* A request that waited for the queue may go now that the queue is written out. */
        if (!(c->message_done && !c->queue && !c->closing))
            break;
        if (budget == 0) {
            event_active(&c->rd, EV_READ, 1); /* more pipelined requests: next turn */
            break;
        }
    }
    if (budget == 0)
        event_active(&c->rd, EV_READ, 1);
    if (c->peer_eof && !c->queue && !c->message_done) {
        if (c->begun)
            log_debug("http: %s went away mid-request", c->peer);
        conn_free(c); /* nothing more will come, nothing is owed */
        return false;
    }
    /* Reading paused for room resumes once there can be room. */
    if (c->read_paused && !c->peer_eof && !c->closing && can_read_more(c)) {
        pause_reading(c, false);
        event_active(&c->rd, EV_READ, 1);
    }
    update_deadline(c);
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == S_LINGER) {
        char sink[4096];
        ssize_t n;
        int rounds = 0;
        while ((n = transport_read(&c->t, sink, sizeof sink)) > 0 && ++rounds < 16)
            ;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            conn_free(c);
        return;
    }
    if (c->state == S_OPEN && !c->peer_eof && read_input(c) != 0) {
        log_debug("http: reading from %s: %s", c->peer, strerror(errno));
        if (!c->queue) {
            conn_free(c);
            return;
        }
        /* Handlers hold requests: keep the struct until they answer, without the socket. */
        event_del(&c->rd);
        conn_arm_write(c, false);
        conn_set_deadline(c, DL_NONE);
        transport_close(&c->t);
        c->socket_gone = true;
        return;
    }
    (void)progress(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == S_OPEN && !c->queue) {
        conn_arm_write(c, false);
        on_readable(fd, EV_READ, c); /* a TLS read that wanted the socket writable */
        return;
    }
    (void)progress(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    enum deadline d = c->deadline;
    c->deadline = DL_NONE;
    if ((d == DL_HEAD || d == DL_BODY) && c->state == S_OPEN) {
        log_info("http: %s sent a request too slowly; answering 408", c->peer);
        refuse(c, 408, "request took too long to arrive");
        (void)progress(c);
        return;
    }
    if (d == DL_WRITE)
        log_info("http: %s does not read its answers; closing", c->peer);
    if (c->queue && c->state == S_OPEN && d != DL_WRITE)
        return; /* cannot happen: no deadline runs while handlers work */
    if (c->inflight) {
        event_del(&c->rd);
        conn_arm_write(c, false);
        transport_close(&c->t);
        c->socket_gone = true;
        return;
    }
    conn_free(c); /* idle, a stalled handshake, a linger that ran out, a stuck write */
}

void conn_free(struct conn *c)
{
    struct http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->flush_queued) {
        struct conn **p = &s->flush_list;
        while (*p != c)
            p = &(*p)->next_flush;
        *p = c->next_flush;
    }
    if (event_initialized(&c->rd))
        event_del(&c->rd);
    if (event_initialized(&c->wr))
        event_del(&c->wr);
    if (event_initialized(&c->timer))
        event_del(&c->timer);
    while (c->queue)
        conn_pending_free(dequeue(c));
    transport_close(&c->t);
    free(c->in);
    free(c);
}

/* ---- for the server (server.c) ---- */

void conn_flush_all(struct http_server *s)
{
    while (s->flush_list) {
        struct conn *c = s->flush_list;
        s->flush_list = c->next_flush;
        c->flush_queued = false;
        (void)progress(c);
    }
}

static void describe_peer(struct conn *c, const struct sockaddr *sa)
{
    const void *addr = NULL;
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        addr = &((const struct sockaddr_in *)sa)->sin_addr;
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    if (!addr || !inet_ntop(sa->sa_family, addr, c->address, sizeof c->address))
        strcpy(c->address, "?");
    snprintf(c->peer, sizeof c->peer, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", c->address,
             port);
}

int conn_new(struct http_server *s, int fd, SSL *ssl, struct peer_slot *slot, const struct sockaddr *sa)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->server = s;
    c->t.fd = fd;
    c->t.ssl = ssl;
    c->t.slot = slot;
    if (ssl)
        SSL_set_accept_state(ssl);
    describe_peer(c, sa);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = ssl ? S_HANDSHAKE : S_OPEN;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (event_assign(&c->rd, s->base, fd, EV_READ | EV_PERSIST, on_readable, c) != 0 ||
        event_assign(&c->wr, s->base, fd, EV_WRITE | EV_PERSIST, on_writable, c) != 0 ||
        event_assign(&c->timer, s->base, -1, 0, on_deadline, c) != 0 || event_add(&c->rd, NULL) != 0) {
        c->t.fd = -1; /* the caller still owns the socket, the session and the slot */
        c->t.ssl = NULL;
        c->t.slot = NULL;
        conn_free(c);
        return -ENOMEM;
    }
    /* A TLS handshake is part of the head's time; a plain connection may wait idle for its first
     * request like between two (browsers open connections ahead of need). */
    conn_set_deadline(c, ssl ? DL_HEAD : DL_IDLE);
    if (s->draining)
        c->closing = true;
    return 0;
}

void conn_drain(struct conn *c)
{
    if (c->state == S_HANDSHAKE) {
        conn_free(c);
        return;
    }
    if (c->state != S_OPEN || c->socket_gone)
        return; /* lingering, or waiting for its handlers without a socket: on its way out */
    /* A request the client sent before the shutdown began still gets an answer (the router says
     * 503 while draining) rather than a bare close: read what has arrived. */
    if (!c->queue && !c->begun && !c->message_done && !c->peer_eof && read_input(c) != 0) {
        conn_free(c);
        return;
    }
    if (c->queue_tail && !c->queue_tail->answered)
        c->queue_tail->close_after = true; /* its answer says the connection closes */
    (void)progress(c); /* answers what is buffered, or closes a connection left idle */
}

struct conn *conn_next(const struct conn *c) { return c->next; }
