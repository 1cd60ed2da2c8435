/* hub: subscriber lifecycle, snapshot / resume / live delivery, heartbeats, token expiry and the
 * backlog bound.
 *
 * The seam rule (DESIGN §2): each subscriber remembers last_sent_id and skips anything at or below
 * it.
 * - Snapshot: the subscriber copies the snapshot and its watermark W under the snapshot lock and
 *   sets last_sent_id = W. The writer updates the snapshot before it posts a batch to the loops,
 *   so batches already queued for this loop hold only ids <= W (skipped), later ones ids > W.
 * - Resume: the subscriber pages through the store from its Last-Event-ID while live batches pass
 *   it by. Every batch this loop has applied was committed before the loop applied it, so the
 *   page that comes back short (the end of the log) already held all of them: switching to live
 *   right then loses nothing, and anything older that still arrives is skipped.
 *
 * Each subscriber has an output queue of frame references (never copies). The hub owns the
 * connection outright once the stream starts (http_take_stream): the HTTP layer's buffers are gone,
 * so an idle subscriber costs a few hundred bytes, and a batch leaves in one writev (TLS: one
 * record of up to 16 KiB) with no epoll_ctl unless the socket is full (then EV_WRITE is armed until
 * it drains). The queue is the backlog that --max_backlog bounds. */
#include "hub.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "event_filter.h"
#include "frame.h"
#include "http/request.h"
#include "http/transport.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "snapshot.h"
#include "store/store.h"

/* A resume reads the next page only when the backlog is below this. */
#define HIGH_WATER (64 * 1024)
/* A resume reads the store in pages of this many events, and at most a few pages per turn so that
 * one subscriber cannot hold the loop. */
#define REPLAY_PAGE_ROWS 256
#define REPLAY_PAGES_PER_TURN 4
/* The reconnection delay suggested to EventSource clients in the first frame of a stream. */
#define RETRY_HINT_MS 2000
/* Writes gather at most this many frames per writev. */
#define WRITEV_MAX 64

enum stream_mode { MODE_REPLAY, MODE_LIVE };

struct subscriber {
    struct subscriber *prev, *next;
    struct subscriber *next_pending;
    struct hub *hub;
    int64_t last_sent_id;
    enum stream_mode mode;
    bool retry_sent;
    bool warned;
    bool write_armed; /* EV_WRITE is armed because the socket was full */
    bool pending;     /* on the hub's list of subscribers with frames to write */
    long exp, warn_at; /* unix seconds; 0 = no expiry */
    time_t last_write; /* monotonic seconds, for heartbeats */
    struct event_filter *filter;
    struct event *kick; /* continues a replay on the next loop turn (resumes only) */

    /* Output queue: items[head .. head+count), the first one possibly partly written (raw). */
    struct frame **items;
    size_t head, count, cap;
    size_t bytes;  /* unsent bytes in the queue */
    size_t offset; /* bytes of items[head] already written */

    struct transport t;
    struct event ev; /* embedded: one allocation per subscriber */
};

struct hub {
    struct loop *loop;
    struct subscriber *head;
    size_t count;
    struct pool *pool;        /* the subscribers */
    struct subscriber *pending; /* queued frames not yet offered to the socket */
    struct event *tick;       /* once a second: heartbeats and token expiry */
};

static void pump(struct subscriber *s);
static int flush(struct subscriber *s);
static void on_socket_event(evutil_socket_t fd, short what, void *arg);

static time_t monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static struct metrics *metrics_of(const struct hub *h) { return &h->loop->app->metrics; }

/* ---- the output queue ---- */

/* Appends f, taking a new reference. */
static int queue_push(struct subscriber *s, struct frame *f)
{
    if (s->head + s->count == s->cap) {
        if (s->head > 0) {
            memmove(s->items, s->items + s->head, s->count * sizeof *s->items);
            s->head = 0;
        } else {
            size_t cap = s->cap ? s->cap * 2 : 8;
            struct frame **items = realloc(s->items, cap * sizeof *items);
            if (!items)
                return -ENOMEM;
            s->items = items;
            s->cap = cap;
        }
    }
    frame_ref(f);
    s->items[s->head + s->count++] = f;
    s->bytes += f->len;
    return 0;
}

/* Removes the first item; the caller takes over its reference. */
static struct frame *queue_pop(struct subscriber *s)
{
    struct frame *f = s->items[s->head];
    s->bytes -= f->len - s->offset;
    s->offset = 0;
    s->head++;
    if (--s->count == 0) {
        /* Idle streams hold no queue memory. */
        free(s->items);
        s->items = NULL;
        s->head = s->cap = 0;
    }
    return f;
}

static void queue_clear(struct subscriber *s)
{
    while (s->count)
        frame_unref(queue_pop(s));
    free(s->items);
    s->items = NULL;
    s->cap = 0;
}

/* A new frame holding text, queued. */
static int queue_text(struct subscriber *s, const char *text, size_t len)
{
    struct frame *f = frame_new_text(text, len);
    if (!f)
        return -ENOMEM;
    int rc = queue_push(s, f);
    frame_unref(f);
    return rc;
}

/* Queues event frame f: by reference, except the stream's first frame, which is a copy carrying
 * the retry hint between event: and data: (where broker-client expects it). */
static int queue_event(struct subscriber *s, struct frame *f)
{
    if (s->retry_sent)
        return queue_push(s, f);
    char stack[1024];
    size_t need = frame_format(stack, sizeof stack, f->id, f->text + f->event_off, f->event_len,
                               f->text + f->data_off, f->data_len, RETRY_HINT_MS);
    char *text = need < sizeof stack ? stack : malloc(need + 1);
    if (!text)
        return -ENOMEM;
    if (text != stack)
        frame_format(text, need + 1, f->id, f->text + f->event_off, f->event_len,
                     f->text + f->data_off, f->data_len, RETRY_HINT_MS);
    int rc = queue_text(s, text, need);
    if (text != stack)
        free(text);
    if (rc == 0)
        s->retry_sent = true;
    return rc;
}

/* A frame without an id (reset, token_expiring), so it never moves the client's Last-Event-ID. */
static int queue_control(struct subscriber *s, const char *event, const char *data)
{
    char retry[32] = "";
    if (!s->retry_sent)
        snprintf(retry, sizeof retry, "retry:%d\n", RETRY_HINT_MS);
    char text[512];
    int n = snprintf(text, sizeof text, "event:%s\n%sdata:%s\n\n", event, retry, data);
    if (n < 0 || (size_t)n >= sizeof text)
        return -EINVAL;
    s->retry_sent = true;
    return queue_text(s, text, (size_t)n);
}

/* --slow_consumer=conflate: keeps only the newest queued frame of each name (and every frame that
 * is not an event, and the one being written), in order. One pass from the newest, with a
 * temporary hash set of the names already kept. Without memory for the set nothing changes, and
 * the caller falls back to disconnecting. */
static void conflate(struct subscriber *s)
{
    struct frame **q = s->items + s->head;
    size_t cap = 16;
    while (cap < 2 * s->count)
        cap *= 2;
    struct frame **kept_names = calloc(cap, sizeof *kept_names);
    if (!kept_names)
        return;
    for (size_t i = s->count; i-- > 0;) {
        struct frame *f = q[i];
        if (f->id == 0 || (i == 0 && s->offset > 0))
            continue;
        size_t h = (size_t)frame_hash_name(f) & (cap - 1);
        while (kept_names[h] && !frame_same_name(kept_names[h], f))
            h = (h + 1) & (cap - 1);
        if (kept_names[h]) {
            frame_unref(f); /* a newer frame of this name is queued */
            q[i] = NULL;
        } else {
            kept_names[h] = f;
        }
    }
    free(kept_names);
    size_t kept = 0, bytes = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (!q[i])
            continue;
        bytes += q[i]->len;
        q[kept++] = q[i];
    }
    s->count = kept;
    s->bytes = bytes - s->offset;
}

/* ---- subscriber lifetime ---- */

static void link_subscriber(struct hub *h, struct subscriber *s)
{
    s->next = h->head;
    if (h->head)
        h->head->prev = s;
    h->head = s;
    h->count++;
    atomic_fetch_add(&h->loop->app->subscribers, 1);
}

static void unlink_subscriber(struct subscriber *s)
{
    struct hub *h = s->hub;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    h->count--;
    atomic_fetch_sub(&h->loop->app->subscribers, 1);
}

static void subscriber_free(struct subscriber *s)
{
    if (s->pending) {
        struct subscriber **p = &s->hub->pending;
        while (*p != s)
            p = &(*p)->next_pending;
        *p = s->next_pending;
    }
    queue_clear(s);
    event_filter_free(s->filter);
    if (s->kick)
        event_free(s->kick);
    if (event_initialized(&s->ev))
        event_del(&s->ev);
    transport_close(&s->t);
    pool_put(s->hub->pool, s);
}

/* Drops the stream at once (the client resumes with Last-Event-ID). Frees s. */
static void disconnect(struct subscriber *s)
{
    unlink_subscriber(s);
    log_debug("sse: subscriber left (%zu on loop %d)", s->hub->count, s->hub->loop->index);
    subscriber_free(s);
}

static int write_out(struct subscriber *s);

/* Ends the stream cleanly: what is queued is still offered to the socket. Frees s. */
static void end_stream(struct subscriber *s)
{
    unlink_subscriber(s);
    (void)write_out(s); /* best effort, never blocks */
    transport_shutdown(&s->t);
    subscriber_free(s);
}

/* ---- writing ---- */

static size_t backlog(const struct subscriber *s) { return s->bytes; }

static void arm_write(struct subscriber *s, bool on)
{
    if (s->write_armed == on)
        return;
    short what = EV_READ | EV_PERSIST | (on ? EV_WRITE : 0);
    event_del(&s->ev);
    event_assign(&s->ev, s->hub->loop->base, s->t.fd, what, on_socket_event, s);
    event_add(&s->ev, NULL);
    s->write_armed = on;
}

/* Writes as much of the queue as the socket takes, in writevs of up to WRITEV_MAX frames. Returns
 * -1 when the connection failed (the caller disconnects). */
static int write_out(struct subscriber *s)
{
    while (s->count) {
        struct iovec iov[WRITEV_MAX];
        int n = 0;
        for (size_t i = 0; i < s->count && n < WRITEV_MAX; i++, n++) {
            struct frame *f = s->items[s->head + i];
            size_t skip = i == 0 ? s->offset : 0;
            iov[n].iov_base = f->text + skip;
            iov[n].iov_len = f->len - skip;
        }
        ssize_t w = transport_writev(&s->t, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* A TLS write may wait for the socket to be readable instead: the read event,
                 * always armed, flushes then. */
                arm_write(s, s->t.want_write);
                return 0;
            }
            return -1;
        }
        s->last_write = monotonic_seconds();
        size_t left = (size_t)w;
        while (left > 0) {
            struct frame *f = s->items[s->head];
            size_t rest = f->len - s->offset;
            if (left < rest) {
                s->offset += left;
                s->bytes -= left;
                break;
            }
            left -= rest;
            frame_unref(queue_pop(s));
        }
    }
    arm_write(s, false);
    return 0;
}

/* Offers the queue to the transport. Returns -1 when the subscriber failed and was freed. */
static int flush(struct subscriber *s)
{
    if (write_out(s) != 0) {
        log_debug("sse: write failed: %s", strerror(errno));
        disconnect(s);
        return -1;
    }
    return 0;
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct subscriber *s = arg;
    if (what & EV_READ) {
        /* Subscribers have nothing to say; reading only tells whether the peer is still there. */
        char sink[1024];
        ssize_t n = transport_read(&s->t, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            disconnect(s);
            return;
        }
        if (s->count && !s->write_armed)
            what |= EV_WRITE; /* a TLS write that waited for this */
    }
    if ((what & EV_WRITE) && flush(s) == 0 && s->mode == MODE_REPLAY && backlog(s) < HIGH_WATER)
        pump(s);
}

/* ---- delivery ---- */

/* Applies the slow-consumer policy when the backlog passes --max_backlog. Returns -1 when the
 * subscriber was disconnected (and freed). */
static int enforce_backlog(struct subscriber *s)
{
    const struct config *cfg = s->hub->loop->app->cfg;
    if (backlog(s) <= cfg->max_backlog)
        return 0;
    if (cfg->slow_consumer == SLOW_CONSUMER_CONFLATE) {
        conflate(s);
        atomic_fetch_add_explicit(&metrics_of(s->hub)->slow_consumer_conflations, 1,
                                  memory_order_relaxed);
        if (backlog(s) <= cfg->max_backlog)
            return 0;
    }
    log_info("sse: disconnecting a slow subscriber (%zu bytes unsent, limit %zu)", backlog(s),
             cfg->max_backlog);
    atomic_fetch_add_explicit(&metrics_of(s->hub)->slow_consumer_disconnects, 1, memory_order_relaxed);
    disconnect(s);
    return -1;
}

/* store_event_fn for a replay page. */
static int replay_row(void *arg, int64_t id, const char *event, size_t event_len, const char *data,
                      size_t data_len)
{
    struct subscriber *s = arg;
    s->last_sent_id = id;
    if (!event_filter_match(s->filter, event, event_len))
        return 0;
    struct frame *f = frame_new(id, event, event_len, data, data_len);
    if (!f)
        return -ENOMEM;
    int rc = queue_event(s, f);
    frame_unref(f);
    if (rc == 0)
        atomic_fetch_add_explicit(&metrics_of(s->hub)->events_delivered, 1, memory_order_relaxed);
    return rc;
}

/* Resume: reads the next pages from the store while the backlog is small, and switches to live
 * at the end of the log. It runs again when the output drains, or on the next loop turn (kick)
 * when the socket took everything at once, so a long replay never holds the loop. */
static void pump(struct subscriber *s)
{
    struct store *reader = s->hub->loop->reader;
    for (int pages = 0; s->mode == MODE_REPLAY && backlog(s) < HIGH_WATER &&
                        pages < REPLAY_PAGES_PER_TURN; pages++) {
        int rows = 0;
        int rc = store_each_after(reader, s->last_sent_id, REPLAY_PAGE_ROWS, replay_row, s, &rows);
        if (rc != 0) {
            log_error("sse: cannot read the store to resume a stream: %s", strerror(-rc));
            disconnect(s);
            return;
        }
        if (rows < REPLAY_PAGE_ROWS) {
            s->mode = MODE_LIVE; /* caught up with everything this loop has seen */
            log_debug("sse: resume caught up at id %" PRId64, s->last_sent_id);
        }
    }
    if (flush(s) != 0)
        return;
    if (s->mode == MODE_REPLAY && backlog(s) < HIGH_WATER)
        event_active(s->kick, EV_TIMEOUT, 0);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

void hub_deliver(struct hub *h, const struct batch *b)
{
    if (b->count == 0)
        return;
    int64_t last = b->frames[b->count - 1]->id;
    unsigned long delivered = 0;
    for (struct subscriber *s = h->head, *next; s; s = next) {
        next = s->next; /* s may be freed below */
        if (s->mode != MODE_LIVE || s->last_sent_id >= last)
            continue; /* a replay catches up from the store instead */
        int rc = 0;
        for (size_t i = 0; i < b->count && rc == 0; i++) {
            struct frame *f = b->frames[i];
            if (f->id <= s->last_sent_id ||
                !event_filter_match(s->filter, f->text + f->event_off, f->event_len))
                continue;
            rc = queue_event(s, f);
            delivered++;
        }
        if (rc != 0) {
            /* Out of memory: a silent gap is worse than a reconnect. */
            log_error("sse: out of memory delivering to a subscriber; disconnecting it");
            disconnect(s);
            continue;
        }
        s->last_sent_id = last;
        if (!s->pending) {
            s->pending = true;
            s->next_pending = h->pending;
            h->pending = s;
        }
    }
    atomic_fetch_add_explicit(&metrics_of(h)->events_delivered, delivered, memory_order_relaxed);
}

void hub_flush_pending(void *arg)
{
    struct hub *h = arg;
    while (h->pending) {
        struct subscriber *s = h->pending;
        h->pending = s->next_pending;
        s->pending = false;
        /* A full socket is flushed by its EV_WRITE; either way, what the socket did not take is
         * the backlog that the slow-consumer policy bounds. */
        if (s->write_armed)
            enforce_backlog(s);
        else if (flush(s) == 0)
            enforce_backlog(s);
    }
}

/* Once a second: end streams whose credential expired, warn those about to, and send a
 * heartbeat comment on streams that have been silent for --heartbeat seconds. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hub *h = arg;
    long now = (long)time(NULL);
    time_t mono = monotonic_seconds();
    int heartbeat = h->loop->app->cfg->heartbeat;
    unsigned long beats = 0;
    for (struct subscriber *s = h->head, *next; s; s = next) {
        next = s->next;
        if (s->exp && now >= s->exp) {
            log_debug("sse: credential expired; ending a stream");
            end_stream(s);
            continue;
        }
        if (s->exp && !s->warned && now >= s->warn_at) {
            char data[64];
            snprintf(data, sizeof data, "{\"exp\":%ld}", s->exp);
            s->warned = true;
            if (queue_control(s, "token_expiring", data) == 0)
                flush(s);
            continue;
        }
        if (heartbeat > 0 && mono - s->last_write >= heartbeat && backlog(s) == 0) {
            if (queue_text(s, ":\n\n", 3) == 0) {
                beats++;
                flush(s);
            }
        }
    }
    if (beats)
        atomic_fetch_add_explicit(&metrics_of(h)->heartbeats, beats, memory_order_relaxed);
}

/* ---- subscribing ---- */

struct hub *hub_new(struct loop *loop)
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = loop;
    h->tick = event_new(loop->base, -1, EV_PERSIST, on_tick, h);
    h->pool = pool_new(sizeof(struct subscriber));
    static const struct timeval second = { 1, 0 };
    if (!h->tick || !h->pool || event_add(h->tick, &second) != 0) {
        hub_free(h);
        return NULL;
    }
    return h;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    hub_close_all(h);
    if (h->tick)
        event_free(h->tick);
    pool_free(h->pool);
    free(h);
}

size_t hub_count(const struct hub *h) { return h->count; }

void hub_close_all(struct hub *h)
{
    while (h->head)
        end_stream(h->head);
}

/* Queues the snapshot (filtered) and sets last_sent_id to its watermark. */
static int queue_snapshot(struct subscriber *s)
{
    struct frame **frames = NULL;
    size_t n = 0;
    int64_t watermark = 0;
    if (snapshot_copy(s->hub->loop->app->snapshot, s->filter ? event_filter_match_fn : NULL,
                      s->filter, &frames, &n, &watermark) != 0)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = queue_event(s, frames[i]);
    for (size_t i = 0; i < n; i++)
        frame_unref(frames[i]);
    free(frames);
    s->last_sent_id = watermark;
    atomic_fetch_add_explicit(&metrics_of(s->hub)->events_delivered, n, memory_order_relaxed);
    return rc;
}

/* The socket arrives from the HTTP layer registered nowhere: watch it for reads (the peer going
 * away) from now on. */
static int watch_socket(struct subscriber *s)
{
    if (event_assign(&s->ev, s->hub->loop->base, s->t.fd, EV_READ | EV_PERSIST, on_socket_event, s) != 0 ||
        event_add(&s->ev, NULL) != 0)
        return -ENOMEM;
    return 0;
}

/* http_take_stream adds "Connection: close": a stream is never followed by another request. */
static const char *const stream_headers[][2] = {
    { "Content-Type", "text/event-stream" },
    { "Cache-Control", "no-cache" },
    { "X-Accel-Buffering", "no" },
};

int hub_subscribe(struct hub *h, struct http_request *req, struct stream_request *sr)
{
    struct subscriber *s = pool_get(h->pool);
    if (!s) {
        event_filter_free(sr->filter);
        sr->filter = NULL;
        return -ENOMEM;
    }
    s->hub = h;
    s->t.fd = -1;
    s->filter = sr->filter;
    sr->filter = NULL;
    s->exp = sr->exp;
    if (s->exp) {
        /* Warn a tenth of the credential's lifetime ahead, between 1 and 60 seconds. */
        long lead = (s->exp - sr->iat) / 10;
        lead = lead < 1 ? 1 : lead > 60 ? 60 : lead;
        s->warn_at = s->exp - lead;
    }
    s->mode = sr->resume ? MODE_REPLAY : MODE_LIVE;
    if (sr->resume) {
        s->last_sent_id = sr->resume_after;
        s->kick = event_new(h->loop->base, -1, 0, on_kick, s);
    }
    char *head = NULL;
    size_t head_len = 0;
    if ((sr->resume && !s->kick) ||
        http_take_stream(req, stream_headers, sizeof stream_headers / sizeof stream_headers[0],
                         &s->t, &head, &head_len) != 0) {
        subscriber_free(s);
        return -ENOMEM; /* the caller still answers req */
    }
    /* From here on req is gone: a failure can only close the socket. */
    int rc = queue_text(s, head, head_len);
    free(head);
    if (rc == 0)
        rc = watch_socket(s);
    if (rc == 0 && sr->reset_reason) {
        char data[256];
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", sr->reset_reason);
        rc = queue_control(s, "reset", data);
    }
    if (rc == 0 && !sr->resume)
        rc = queue_snapshot(s);
    if (rc != 0) {
        log_error("sse: cannot start a stream: %s", strerror(-rc));
        subscriber_free(s);
        return 0;
    }
    s->last_write = monotonic_seconds();
    link_subscriber(h, s);
    log_debug("sse: subscriber joined (%s, after id %" PRId64 ", %zu on loop %d)",
              sr->resume ? "resume" : "snapshot", s->last_sent_id, h->count, h->loop->index);
    if (s->mode == MODE_REPLAY)
        pump(s); /* reads the first pages and flushes */
    else
        flush(s);
    return 0;
}
