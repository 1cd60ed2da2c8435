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
 * Flow control: frames are handed to the connection only while its output buffer is under
 * OUTPUT_HIGH_WATER; beyond that they wait in the subscriber's pending queue (references, not
 * copies) and move on when evhttp reports the buffer drained. The pending queue plus the output
 * buffer is the backlog that --max_backlog bounds. */
#include "hub.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "event_filter.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "snapshot.h"
#include "store/store.h"

/* Frames go to the socket buffer while it holds less than this; the rest wait in pending. */
#define OUTPUT_HIGH_WATER (64 * 1024)
/* A resume reads the store in pages of this many events, and at most a few pages per turn so that
 * one subscriber cannot hold the loop. */
#define REPLAY_PAGE_ROWS 256
#define REPLAY_PAGES_PER_TURN 4
/* The reconnection delay suggested to EventSource clients in the first frame of a stream. */
#define RETRY_HINT_MS 2000
/* A subscriber's socket is only read to notice that the peer closed; a client that sends data
 * instead gets at most this much buffered before reading pauses. */
#define SUBSCRIBER_READ_LIMIT 4096

enum stream_mode { MODE_REPLAY, MODE_LIVE };

struct subscriber {
    struct subscriber *prev, *next;
    struct hub *hub;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    int64_t last_sent_id;
    enum stream_mode mode;
    bool retry_sent;
    bool warned;
    long exp, warn_at;  /* unix seconds; 0 = no expiry */
    time_t last_write;  /* monotonic seconds, for heartbeats */
    struct event_filter *filter;
    struct event *kick; /* continues a replay on the next loop turn (resumes only) */
    struct frame **pending;
    size_t npending, pending_cap, pending_bytes;
};

struct hub {
    struct loop *loop;
    struct subscriber *head;
    size_t count;
    struct evbuffer *scratch; /* gathers what goes out to one subscriber in one chunk */
    struct event *tick;       /* once a second: heartbeats and token expiry */
};

static void pump(struct subscriber *s);

static time_t monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static struct metrics *metrics_of(const struct hub *h) { return &h->loop->app->metrics; }

static void frame_release(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    frame_unref(arg);
}

/* Appends f to the scratch buffer: by reference, except the stream's first event frame, which is
 * a copy carrying the retry hint between event: and data: (where broker-client expects it). */
static int scratch_add_frame(struct subscriber *s, struct frame *f)
{
    struct evbuffer *buf = s->hub->scratch;
    if (!s->retry_sent) {
        char stack[1024];
        size_t need = frame_format(stack, sizeof stack, f->id, f->text + f->event_off, f->event_len,
                                   f->text + f->data_off, f->data_len, RETRY_HINT_MS);
        char *text = need < sizeof stack ? stack : malloc(need + 1);
        if (!text)
            return -ENOMEM;
        if (text != stack)
            frame_format(text, need + 1, f->id, f->text + f->event_off, f->event_len,
                         f->text + f->data_off, f->data_len, RETRY_HINT_MS);
        int rc = evbuffer_add(buf, text, need);
        if (text != stack)
            free(text);
        if (rc != 0)
            return -ENOMEM;
        s->retry_sent = true;
        return 0;
    }
    frame_ref(f);
    if (evbuffer_add_reference(buf, f->text, f->len, frame_release, f) != 0) {
        frame_unref(f);
        return -ENOMEM;
    }
    return 0;
}

/* A frame without an id (reset, token_expiring), so it never moves the client's Last-Event-ID. */
static int scratch_add_control(struct subscriber *s, const char *event, const char *data)
{
    char retry[32] = "";
    if (!s->retry_sent) {
        snprintf(retry, sizeof retry, "retry:%d\n", RETRY_HINT_MS);
        s->retry_sent = true;
    }
    return evbuffer_add_printf(s->hub->scratch, "event:%s\n%sdata:%s\n\n", event, retry, data) < 0
               ? -ENOMEM
               : 0;
}

static size_t output_length(const struct subscriber *s)
{
    return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(s->evcon)));
}

static void on_drained(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    pump(arg);
}

/* Sends what the scratch buffer holds as one chunk, and asks to hear when it has drained. */
static void send_scratch(struct subscriber *s)
{
    struct evbuffer *buf = s->hub->scratch;
    if (evbuffer_get_length(buf) == 0)
        return;
    evhttp_send_reply_chunk_with_cb(s->req, buf, on_drained, s);
    s->last_write = monotonic_seconds();
}

static void release_pending(struct subscriber *s)
{
    for (size_t i = 0; i < s->npending; i++)
        frame_unref(s->pending[i]);
    s->npending = 0;
    s->pending_bytes = 0;
}

static void subscriber_free(struct subscriber *s)
{
    release_pending(s);
    free(s->pending);
    event_filter_free(s->filter);
    if (s->kick)
        event_free(s->kick);
    free(s);
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

/* evhttp calls this when the connection goes away: the peer closed it, a write failed, or we freed
 * it ourselves (slow consumer). */
static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct subscriber *s = arg;
    unlink_subscriber(s);
    /* When the peer went away, evhttp detached the request from the connection and left it to us;
     * when we freed the connection, the request is still queued on it and evhttp frees it. */
    if (evhttp_request_get_connection(s->req) == NULL)
        evhttp_request_free(s->req);
    log_debug("sse: subscriber left (%zu on loop %d)", s->hub->count, s->hub->loop->index);
    subscriber_free(s);
}

/* Drops the connection at once (the client resumes with Last-Event-ID). */
static void disconnect(struct subscriber *s)
{
    evbuffer_drain(s->hub->scratch, evbuffer_get_length(s->hub->scratch));
    evhttp_connection_free(s->evcon); /* runs on_connection_close, which frees s */
}

/* Ends the stream cleanly: what was handed to the connection is still sent. */
static void end_stream(struct subscriber *s)
{
    unlink_subscriber(s);
    evhttp_connection_set_closecb(s->evcon, NULL, NULL);
    evhttp_send_reply_end(s->req);
    subscriber_free(s);
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
    int rc = scratch_add_frame(s, f);
    frame_unref(f);
    if (rc == 0)
        atomic_fetch_add_explicit(&metrics_of(s->hub)->events_delivered, 1, memory_order_relaxed);
    return rc;
}

/* Moves frames towards the socket while its buffer has room: replay pages first, then pending. */
static void pump(struct subscriber *s)
{
    struct store *reader = s->hub->loop->reader;
    for (int pages = 0; s->mode == MODE_REPLAY && output_length(s) < OUTPUT_HIGH_WATER; pages++) {
        if (pages == REPLAY_PAGES_PER_TURN) {
            event_active(s->kick, EV_TIMEOUT, 0); /* let other work run, then go on */
            return;
        }
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
        send_scratch(s);
    }
    if (s->mode != MODE_LIVE || s->npending == 0)
        return;
    size_t room = output_length(s) < OUTPUT_HIGH_WATER ? OUTPUT_HIGH_WATER - output_length(s) : 0;
    size_t moved = 0, bytes = 0;
    while (moved < s->npending && bytes < room) {
        struct frame *f = s->pending[moved];
        if (scratch_add_frame(s, f) != 0)
            break;
        bytes += f->len;
        frame_unref(f);
        moved++;
    }
    memmove(s->pending, s->pending + moved, (s->npending - moved) * sizeof *s->pending);
    s->npending -= moved;
    s->pending_bytes -= bytes;
    send_scratch(s);
}

static int pending_push(struct subscriber *s, struct frame *f)
{
    if (s->npending == s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap * 2 : 16;
        struct frame **p = realloc(s->pending, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        s->pending = p;
        s->pending_cap = cap;
    }
    frame_ref(f);
    s->pending[s->npending++] = f;
    s->pending_bytes += f->len;
    return 0;
}

static bool same_name(const struct frame *a, const struct frame *b)
{
    return a->event_len == b->event_len &&
           memcmp(a->text + a->event_off, b->text + b->event_off, a->event_len) == 0;
}

/* --slow_consumer=conflate: keeps only the newest pending frame of each name, in id order. The
 * quadratic scan is bounded: the pending queue is at most --max_backlog bytes. */
static void conflate_pending(struct subscriber *s)
{
    size_t kept = 0, bytes = 0;
    for (size_t i = 0; i < s->npending; i++) {
        bool superseded = false;
        for (size_t j = i + 1; j < s->npending && !superseded; j++)
            superseded = same_name(s->pending[i], s->pending[j]);
        if (superseded) {
            frame_unref(s->pending[i]);
            continue;
        }
        bytes += s->pending[i]->len;
        s->pending[kept++] = s->pending[i];
    }
    s->npending = kept;
    s->pending_bytes = bytes;
}

/* Applies the slow-consumer policy when the backlog passes --max_backlog. Returns -1 when the
 * subscriber was disconnected (and freed). */
static int enforce_backlog(struct subscriber *s)
{
    const struct config *cfg = s->hub->loop->app->cfg;
    size_t backlog = output_length(s) + s->pending_bytes;
    if (backlog <= cfg->max_backlog)
        return 0;
    if (cfg->slow_consumer == SLOW_CONSUMER_CONFLATE) {
        conflate_pending(s);
        atomic_fetch_add_explicit(&metrics_of(s->hub)->slow_consumer_conflations, 1,
                                  memory_order_relaxed);
        backlog = output_length(s) + s->pending_bytes;
        if (backlog <= cfg->max_backlog)
            return 0;
    }
    log_info("sse: disconnecting a slow subscriber (%zu bytes unsent, limit %zu)", backlog,
             cfg->max_backlog);
    atomic_fetch_add_explicit(&metrics_of(s->hub)->slow_consumer_disconnects, 1, memory_order_relaxed);
    disconnect(s);
    return -1;
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
        bool direct = s->npending == 0 && output_length(s) < OUTPUT_HIGH_WATER;
        int rc = 0;
        for (size_t i = 0; i < b->count && rc == 0; i++) {
            struct frame *f = b->frames[i];
            if (f->id <= s->last_sent_id ||
                !event_filter_match(s->filter, f->text + f->event_off, f->event_len))
                continue;
            rc = direct ? scratch_add_frame(s, f) : pending_push(s, f);
            delivered++;
        }
        if (rc != 0) {
            /* Out of memory: a silent gap is worse than a reconnect. */
            log_error("sse: out of memory delivering to a subscriber; disconnecting it");
            disconnect(s);
            continue;
        }
        s->last_sent_id = last;
        if (direct)
            send_scratch(s);
        enforce_backlog(s);
    }
    atomic_fetch_add_explicit(&metrics_of(h)->events_delivered, delivered, memory_order_relaxed);
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
            if (scratch_add_control(s, "token_expiring", data) == 0)
                send_scratch(s);
            continue;
        }
        if (heartbeat > 0 && mono - s->last_write >= heartbeat && output_length(s) == 0) {
            evbuffer_add(h->scratch, ":\n\n", 3);
            send_scratch(s);
            beats++;
        }
    }
    if (beats)
        atomic_fetch_add_explicit(&metrics_of(h)->heartbeats, beats, memory_order_relaxed);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

struct hub *hub_new(struct loop *loop)
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = loop;
    h->scratch = evbuffer_new();
    h->tick = event_new(loop->base, -1, EV_PERSIST, on_tick, h);
    static const struct timeval second = { 1, 0 };
    if (!h->scratch || !h->tick || event_add(h->tick, &second) != 0) {
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
    if (h->scratch)
        evbuffer_free(h->scratch);
    free(h);
}

size_t hub_count(const struct hub *h) { return h->count; }

/* Adds the snapshot (filtered) to the scratch buffer and sets last_sent_id to its watermark. */
static int add_snapshot(struct subscriber *s)
{
    struct frame **frames = NULL;
    size_t n = 0;
    int64_t watermark = 0;
    if (snapshot_copy(s->hub->loop->app->snapshot, s->filter ? event_filter_match_fn : NULL,
                      s->filter, &frames, &n, &watermark) != 0)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = scratch_add_frame(s, frames[i]);
    for (size_t i = 0; i < n; i++)
        frame_unref(frames[i]);
    free(frames);
    s->last_sent_id = watermark;
    atomic_fetch_add_explicit(&metrics_of(s->hub)->events_delivered, n, memory_order_relaxed);
    return rc;
}

int hub_subscribe(struct hub *h, struct evhttp_request *req, struct stream_request *sr)
{
    struct subscriber *s = calloc(1, sizeof *s);
    if (!s) {
        event_filter_free(sr->filter);
        return -ENOMEM;
    }
    s->hub = h;
    s->req = req;
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
    int rc = sr->resume && !s->kick ? -ENOMEM : 0;
    if (rc == 0 && sr->reset_reason) {
        char data[256];
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", sr->reset_reason);
        rc = scratch_add_control(s, "reset", data);
    }
    if (rc == 0 && !sr->resume)
        rc = add_snapshot(s);
    if (rc != 0) {
        evbuffer_drain(h->scratch, evbuffer_get_length(h->scratch));
        subscriber_free(s);
        return rc;
    }

    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "text/event-stream");
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    evhttp_add_header(headers, "X-Accel-Buffering", "no");
    /* A stream is never followed by another request on its connection. */
    evhttp_add_header(headers, "Connection", "close");
    evhttp_send_reply_start(req, 200, "OK");

    s->evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
    /* Streams are long-lived by nature: no idle timeouts (DESIGN §3). */
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_READ, 0, SUBSCRIBER_READ_LIMIT);
    evhttp_connection_set_closecb(s->evcon, on_connection_close, s);
    s->last_write = monotonic_seconds();

    s->next = h->head;
    if (h->head)
        h->head->prev = s;
    h->head = s;
    h->count++;
    atomic_fetch_add(&h->loop->app->subscribers, 1);
    log_debug("sse: subscriber joined (%s, after id %" PRId64 ", %zu on loop %d)",
              sr->resume ? "resume" : "snapshot", s->last_sent_id, h->count, h->loop->index);
    send_scratch(s);
    if (s->mode == MODE_REPLAY)
        pump(s);
    return 0;
}

void hub_close_all(struct hub *h)
{
    while (h->head)
        end_stream(h->head);
}
