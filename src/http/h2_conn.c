/* http/h2_conn: one HTTP/2 connection, from the hand-over by conn.c to the close:
 *
 *   OPEN -> (GOAWAY: shutdown, idle, abuse) -> LINGER -> freed
 *
 * libnghttp2 does the framing, HPACK, stream states and flow control; this file moves bytes
 * between the transport and the session and keeps the connection within its limits:
 * - Input is fed to nghttp2_session_mem_recv as it arrives; the callbacks build the streams
 *   (h2_stream.c), which go to the router once their request is whole.
 * - Output: everything the session has to send (answers, event-stream DATA pulled from the hub's
 *   subscribers while their windows are open, control frames) is serialised into one buffer of up
 *   to OUT_CAP bytes and written in one writev, after the callbacks that are ready now have run.
 *   So every stream's frames of a batch leave together: one write per connection per batch. A
 *   socket that does not drain stops the pulling, and what piles up in the subscribers is their
 *   backlog (the slow-consumer policy applies per stream).
 * - Floods end the connection with GOAWAY(ENHANCE_YOUR_CALM): more than so many PING, SETTINGS,
 *   RST_STREAM (rapid reset, CVE-2023-44487) or empty DATA frames in a second, a header block in
 *   more than H2_MAX_CONTINUATIONS frames, or decoded headers over --max_header (HPACK bombs).
 * - Deadlines as on HTTP/1.1: --idle_timeout with no stream open, --request_timeout for a request
 *   to arrive whole (408) and for the socket to take what is written. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "config.h"
#include "http/h2_internal.h"
#include "http/server.h"
#include "log.h"
#include "metrics.h"

/* Bytes serialised ahead of the socket per connection. */
#define OUT_CAP (64 * 1024)
/* Bytes read per call, and calls per readable event (then the next loop turn). */
#define READ_CHUNK 16384
#define READ_ROUNDS 8
/* Frames of a kind per connection per second before it is a flood. Browsers send a handful. */
#define PINGS_PER_SECOND 20
#define SETTINGS_PER_SECOND 20
#define EMPTY_DATA_PER_SECOND 100
#define H2_MAX_CONTINUATIONS 16

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof preface - 1)

const unsigned char h2_alpn_protos[] = "\x02h2\x08http/1.1";
const unsigned h2_alpn_protos_len = sizeof h2_alpn_protos - 1;

static void send_all(struct h2_conn *c);
static void update_deadline(struct h2_conn *c);

time_t h2_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

int h2_preface_match(const char *buf, size_t len)
{
    size_t n = len < PREFACE_LEN ? len : PREFACE_LEN;
    if (memcmp(buf, preface, n) != 0)
        return -1;
    return len >= PREFACE_LEN ? 1 : 0;
}

/* ---- abuse ---- */

/* Ends the connection for abuse: GOAWAY(ENHANCE_YOUR_CALM), nothing more is read. Returns the
 * callback failure that makes nghttp2 stop processing the input at once. */
static int abuse(struct h2_conn *c, const char *what)
{
    if (!c->abusive) {
        c->abusive = true;
        log_warn("h2: %s from %s; ending the connection with GOAWAY", what, c->peer);
        atomic_fetch_add_explicit(&c->server->metrics->h2_abuse_goaways, 1, memory_order_relaxed);
        (void)nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* Counts one frame of a kind in the current second; true when that passes limit. */
static bool over(struct h2_conn *c, unsigned *count, unsigned limit)
{
    time_t now = h2_monotonic();
    if (now != c->window) {
        c->window = now;
        c->pings = c->settings = c->resets = c->empty_data = 0;
    }
    return ++*count > limit;
}

static unsigned resets_per_second(const struct h2_conn *c)
{
    unsigned n = 2u * (unsigned)c->server->cfg->h2_max_streams;
    return n < 100 ? 100 : n;
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *arg)
{
    (void)session;
    struct h2_conn *c = arg;
    if (hd->type == NGHTTP2_HEADERS)
        c->continuations = 0;
    else if (hd->type == NGHTTP2_CONTINUATION && ++c->continuations > H2_MAX_CONTINUATIONS)
        return abuse(c, "a CONTINUATION flood");
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    struct h2_conn *c = arg;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = h2_stream_new(c, frame->hd.stream_id);
    if (!st) {
        log_error("h2: out of memory for a stream of %s; refusing it", c->peer);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
    }
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
    (void)flags;
    struct h2_conn *c = arg;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers: nothing here reads them */
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    int rc = h2_stream_add_header(st, name, namelen, value, valuelen);
    if (rc == -1)
        return abuse(c, "an oversized header block");
    return rc == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *arg)
{
    (void)flags;
    (void)arg;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, id);
    if (st && !st->complete)
        (void)h2_stream_add_body(st, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    struct h2_conn *c = arg;
    switch (frame->hd.type) {
    case NGHTTP2_PING:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && over(c, &c->pings, PINGS_PER_SECOND))
            return abuse(c, "a PING flood");
        return 0;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && over(c, &c->settings, SETTINGS_PER_SECOND))
            return abuse(c, "a SETTINGS flood");
        return 0;
    case NGHTTP2_RST_STREAM:
        if (over(c, &c->resets, resets_per_second(c)))
            return abuse(c, "a stream reset flood (rapid reset)");
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            over(c, &c->empty_data, EMPTY_DATA_PER_SECOND))
            return abuse(c, "a flood of empty DATA frames");
        break;
    case NGHTTP2_HEADERS:
        break;
    default:
        return 0;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st && !st->complete)
        h2_stream_dispatch(st);
    return 0;
}

/* An answer sent whole before its request arrived whole (413, 408): tell the client to stop
 * sending the rest (RFC 9113 §8.1). */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    (void)arg;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st && !st->complete)
        (void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *arg)
{
    (void)error_code;
    (void)arg;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, id);
    if (st) {
        nghttp2_session_set_stream_user_data(session, id, NULL);
        h2_stream_closed(st, false);
    }
    return 0;
}

static nghttp2_session_callbacks *callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (cbs)
        return cbs; /* made once per loop thread; read-only afterwards */
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    return cbs;
}

/* ---- I/O ---- */

static void arm_write(struct h2_conn *c, bool on)
{
    if (on == c->write_armed)
        return;
    c->write_armed = on;
    if (on)
        event_add(&c->wr, NULL);
    else
        event_del(&c->wr);
}

/* Closes once the GOAWAY and the last answers are out: FIN (or close_notify), then a moment for
 * the client to read them. */
static void start_linger(struct h2_conn *c)
{
    if (c->deadline == H2_DL_LINGER)
        return;
    transport_shutdown(&c->t);
    arm_write(c, false);
    c->deadline = H2_DL_LINGER;
    event_add(&c->timer, c->server->linger_timeout);
}

/* Writes out[out_off..out_len). 1 when all of it went, 0 when the socket is full, -1 on failure. */
static int write_out(struct h2_conn *c)
{
    while (c->out_off < c->out_len) {
        struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
        ssize_t w = transport_writev(&c->t, &iov, 1);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                arm_write(c, c->t.want_write || !c->t.ssl);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    arm_write(c, false);
    return 1;
}

/* Serialises what the session has to send into out, up to about OUT_CAP. -1 on a session error. */
static int fill_out(struct h2_conn *c)
{
    while (c->out_len < OUT_CAP) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            log_debug("h2: sending to %s: %s", c->peer, nghttp2_strerror((int)n));
            return -1;
        }
        if (n == 0)
            break;
        if (c->out_len + (size_t)n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 16384;
            while (cap < c->out_len + (size_t)n)
                cap *= 2;
            uint8_t *p = realloc(c->out, cap);
            if (!p)
                return -1;
            c->out = p;
            c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, data, (size_t)n);
        c->out_len += (size_t)n;
    }
    return 0;
}

/* Tells the event streams that had more to send that the write is done: what they still hold is
 * their backlog (a shut window, or a full socket). A source may reset its stream here, which only
 * queues a frame: no stream struct is freed during the walk. */
static void report_sent(struct h2_conn *c)
{
    for (struct h2_stream *st = c->streams; st; st = st->next) {
        if (!st->resumed)
            continue;
        st->resumed = false;
        if (st->src && st->src->sent)
            st->src->sent(st->src_arg);
    }
}

/* Writes everything the session has to send, as far as the socket takes it; closes the connection
 * when the session is done (GOAWAY sent and no stream left). May free c. */
static void send_all(struct h2_conn *c)
{
    if (c->deadline == H2_DL_LINGER)
        return;
    for (;;) {
        int rc = write_out(c);
        if (rc < 0) {
            log_debug("h2: write to %s failed: %s", c->peer, strerror(errno));
            h2_conn_free(c);
            return;
        }
        if (rc == 0)
            break; /* on_writable goes on */
        if (fill_out(c) != 0) {
            h2_conn_free(c);
            return;
        }
        if (c->out_len == 0)
            break;
    }
    report_sent(c);
    if (c->out_len == 0 && c->out) {
        /* Nothing waits for the socket: an idle connection holds no output buffer. */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    if (c->out_len == 0 && ((!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) ||
                            c->abusive)) {
        start_linger(c);
        return;
    }
    update_deadline(c);
}

/* Feeds input to the session; the callbacks run the streams. -1 when the session failed. */
static int feed(struct h2_conn *c, const uint8_t *data, size_t len)
{
    c->in_recv = true;
    ssize_t n = nghttp2_session_mem_recv(c->session, data, len);
    c->in_recv = false;
    if (n < 0 && !c->abusive) {
        log_debug("h2: from %s: %s", c->peer, nghttp2_strerror((int)n));
        /* Most protocol errors are answered inside nghttp2 with a GOAWAY already queued; for the
         * rest (a bad preface, a flood nghttp2 caught itself) say so too before closing. */
        (void)nghttp2_session_terminate_session(c->session, n == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                                     : NGHTTP2_PROTOCOL_ERROR);
        c->abusive = true;
    }
    return n < 0 ? -1 : 0;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h2_conn *c = arg;
    uint8_t buf[READ_CHUNK];
    for (int round = 0; round < READ_ROUNDS; round++) {
        ssize_t n = transport_read(&c->t, buf, sizeof buf);
        if (n > 0) {
            if (c->deadline == H2_DL_LINGER || c->abusive)
                continue; /* drained and dropped */
            if (feed(c, buf, (size_t)n) != 0)
                break;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (n < 0)
                log_debug("h2: reading from %s: %s", c->peer, strerror(errno));
            h2_conn_free(c); /* the client is gone: its streams with it */
            return;
        }
        if (c->t.want_write)
            arm_write(c, true);
        break;
    }
    if (c->deadline == H2_DL_LINGER)
        return;
    if (transport_has_pending(&c->t) && !c->abusive)
        event_active(&c->rd, EV_READ, 1);
    send_all(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h2_conn *c = arg;
    if (c->out_off == c->out_len && c->t.want_write) {
        arm_write(c, false);
        on_readable(fd, EV_READ, c); /* a TLS read that wanted the socket writable */
        return;
    }
    send_all(c);
}

/* ---- deadlines ---- */

static void set_deadline(struct h2_conn *c, enum h2_deadline d)
{
    if (c->deadline == d)
        return;
    c->deadline = d;
    const struct http_server *s = c->server;
    const struct timeval *tv = d == H2_DL_IDLE ? s->idle_timeout : d == H2_DL_NONE ? NULL : s->request_timeout;
    if (tv)
        event_add(&c->timer, tv);
    else
        event_del(&c->timer);
}

static void update_deadline(struct h2_conn *c)
{
    if (c->deadline == H2_DL_LINGER)
        return;
    if (c->write_armed)
        set_deadline(c, H2_DL_WRITE); /* the client does not read */
    else if (c->incomplete)
        set_deadline(c, H2_DL_REQUEST);
    else if (c->nstreams == 0)
        set_deadline(c, H2_DL_IDLE);
    else
        set_deadline(c, H2_DL_NONE);
}

void h2_conn_update_deadline(struct h2_conn *c) { update_deadline(c); }

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h2_conn *c = arg;
    enum h2_deadline d = c->deadline;
    c->deadline = H2_DL_NONE;
    switch (d) {
    case H2_DL_IDLE:
        /* Graceful: GOAWAY, then the close once it is out. */
        (void)nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                                    nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                                    NULL, 0);
        c->draining = true;
        send_all(c);
        return;
    case H2_DL_REQUEST: {
        time_t now = h2_monotonic();
        int limit = c->server->cfg->request_timeout;
        for (struct h2_stream *st = c->streams, *next; st; st = next) {
            next = st->next;
            if (!st->complete && !st->dispatched && now - st->begun >= limit) {
                log_info("http: %s sent a request too slowly over HTTP/2; answering 408", c->peer);
                h2_stream_refuse(st, 408, "request took too long to arrive");
            }
        }
        send_all(c);
        return;
    }
    case H2_DL_WRITE:
        log_info("http: %s does not read its answers; closing", c->peer);
        h2_conn_free(c);
        return;
    case H2_DL_LINGER:
    case H2_DL_NONE:
        h2_conn_free(c);
        return;
    }
}

/* ---- the connection ---- */

void h2_conn_want_write(struct h2_conn *c)
{
    if (c->in_recv || c->flush_queued)
        return; /* the read handler sends once the input is processed */
    struct http_server *s = c->server;
    c->flush_queued = true;
    c->next_flush = s->h2_flush_list;
    s->h2_flush_list = c;
    event_active(s->flush, EV_TIMEOUT, 1);
}

void h2_flush_all(struct http_server *s)
{
    while (s->h2_flush_list) {
        struct h2_conn *c = s->h2_flush_list;
        s->h2_flush_list = c->next_flush;
        c->flush_queued = false;
        send_all(c);
    }
}

static int start_session(struct h2_conn *c)
{
    const struct config *cfg = c->server->cfg;
    nghttp2_session_callbacks *cbs = callbacks();
    nghttp2_option *opt;
    if (!cbs || nghttp2_option_new(&opt) != 0)
        return -ENOMEM;
    /* nghttp2's own flood guards stay on, set above ours so that ours answer first. */
    nghttp2_option_set_max_continuations(opt, 2 * H2_MAX_CONTINUATIONS);
    nghttp2_option_set_stream_reset_rate_limit(opt, 4 * resets_per_second(c), 2 * resets_per_second(c));
    int rc = nghttp2_session_server_new2(&c->session, cbs, c, opt);
    nghttp2_option_del(opt);
    if (rc != 0)
        return -ENOMEM;
    const nghttp2_settings_entry settings[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)cfg->h2_max_streams },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]) != 0)
        return -ENOMEM;
    return 0;
}

int h2_conn_new(struct http_server *s, struct transport *t, const char *peer, const char *address,
                const char *in, size_t in_len)
{
    struct h2_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->server = s;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    snprintf(c->address, sizeof c->address, "%s", address);
    if (start_session(c) != 0 ||
        event_assign(&c->rd, s->base, t->fd, EV_READ | EV_PERSIST, on_readable, c) != 0 ||
        event_assign(&c->wr, s->base, t->fd, EV_WRITE | EV_PERSIST, on_writable, c) != 0 ||
        event_assign(&c->timer, s->base, -1, 0, on_deadline, c) != 0 || event_add(&c->rd, NULL) != 0) {
        if (c->session)
            nghttp2_session_del(c->session);
        free(c);
        return -ENOMEM;
    }
    c->t = *t;
    t->fd = -1;
    t->ssl = NULL;
    t->slot = NULL;
    c->next = s->h2_conns;
    if (s->h2_conns)
        s->h2_conns->prev = c;
    s->h2_conns = c;
    s->nh2_conns++;
    atomic_fetch_add_explicit(&s->metrics->h2_connections, 1, memory_order_relaxed);
    log_debug("h2: %s speaks HTTP/2", c->peer);
    if (in_len > 0 && feed(c, (const uint8_t *)in, in_len) != 0) {
        send_all(c);
        return 0;
    }
    if (transport_has_pending(&c->t))
        event_active(&c->rd, EV_READ, 1);
    if (s->draining)
        h2_conn_drain(c);
    else
        send_all(c); /* our SETTINGS, and the answers of what came with the preface */
    return 0;
}

void h2_conn_drain(struct h2_conn *c)
{
    if (c->draining || c->abusive || c->deadline == H2_DL_LINGER)
        return;
    c->draining = true;
    (void)nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->session),
                                NGHTTP2_NO_ERROR, NULL, 0);
    h2_conn_want_write(c); /* after the hub has ended its streams on this connection */
}

void h2_conn_free(struct h2_conn *c)
{
    struct http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->h2_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nh2_conns--;
    if (c->flush_queued) {
        struct h2_conn **p = &s->h2_flush_list;
        while (*p != c)
            p = &(*p)->next_flush;
        *p = c->next_flush;
    }
    event_del(&c->rd);
    event_del(&c->wr);
    event_del(&c->timer);
    /* Streams first: an event stream's owner is told, a handler's request waits for its answer. */
    while (c->streams)
        h2_stream_closed(c->streams, true);
    nghttp2_session_del(c->session);
    transport_close(&c->t);
    free(c->out);
    free(c);
}

struct h2_conn *h2_conn_next(const struct h2_conn *c) { return c->next; }
