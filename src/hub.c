/* hub: subscriber lifecycle, snapshot / resume / live delivery, heartbeats, token expiry and the
 * backlog bound.
 *
 * The seam rule (DESIGN §2): each subscriber remembers last_sent_id and skips anything at or below
 * it.
 * - Snapshot: the subscriber copies the snapshot (a frame reference per name) and its watermark W
 *   under the snapshot lock and sets last_sent_id = W. The writer updates the snapshot before it
 *   posts a batch to the loops, so batches already queued for this loop hold only ids <= W
 *   (skipped), later ones ids > W. The copy is sent as the socket drains, while live batches pass
 *   the subscriber by; then, if this loop applied a batch past W meanwhile, the stream catches up
 *   from the store like a resume from W, else it is live at once.
 * - Resume: the subscriber pages through the store from its Last-Event-ID while live batches pass
 *   it by. Every batch this loop has applied was committed before the loop applied it, so the
 *   page that comes back short (the end of the log) already held all of them: switching to live
 *   right then loses nothing, and anything older that still arrives is skipped.
 * So a slow link gets through a snapshot or a replay of any size: neither counts as backlog, and
 * neither holds more than HIGH_WATER of queued bytes at a time.
 *
 * Each subscriber has an output queue of frame references (never copies). The hub owns the
 * connection outright once the stream starts (http_take_stream): the HTTP layer's buffers are gone,
 * so an idle subscriber costs a few hundred bytes, and a batch leaves in one writev (TLS: one
 * record of up to 16 KiB) with no epoll_ctl unless the socket is full (then EV_WRITE is armed until
 * it drains). The live frames in the queue are the backlog that --max_backlog bounds; what the
 * stream queued before it went live (head, snapshot, replay) and is still unsent is not.
 *
 * Over HTTP/2 (SPEC §6) a subscriber is one stream of a shared connection (s->h2, no socket of its
 * own): the same queue, but the connection pulls from it (h2_source.read) while the peer's window
 * is open, and after each write round the connection asks the policy about what is left
 * (h2_source.sent). A window that stays shut is then just a socket that stays full. */
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

#include "access/rules.h"
#include "access/user.h"
#include "app.h"
#include "auth.h"
#include "event_filter.h"
#include "frame.h"
#include "http/h2.h"
#include "http/request.h"
#include "http/transport.h"
#include "hub_users.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "snapshot.h"
#include "store/store.h"

/* A resume reads the next page only when the backlog is below this. */
#define HIGH_WATER (64 * 1024)
/* A resume reads the store in pages of this many events. A snapshot or a replay takes at most a
 * few steps (a page, or HIGH_WATER bytes of the snapshot) per loop turn, so that one subscriber
 * cannot hold the loop. */
#define REPLAY_PAGE_ROWS 256
#define PUMP_STEPS_PER_TURN 4
/* The reconnection delay suggested to EventSource clients in the first frame of a stream. */
#define RETRY_HINT_MS 2000
/* Writes gather at most this many frames per writev. */
#define WRITEV_MAX 64

/* How a stream goes on: from its copy of the snapshot, from the store, or from live batches. */
enum stream_mode { MODE_SNAPSHOT, MODE_REPLAY, MODE_LIVE };

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
    struct event *kick; /* continues a snapshot or replay on the next loop turn (made on demand) */
    struct hub_user *user; /* whose stream this is (SPEC §5: revocation, rules) */
    struct subscriber *user_prev, *user_next; /* the user's other streams on this loop */
    int64_t ver;           /* the token version of the credential that opened the stream */

    /* MODE_SNAPSHOT: the copy still to send, snap[snap_next .. snap_count) (one reference each). */
    struct frame **snap;
    size_t snap_next, snap_count;

    /* Output queue: items[head .. head+count), the first one possibly partly written (raw). The
     * first `exempt` items were queued before any live frame (head, control frames, snapshot,
     * replay); the others are the backlog, live_bytes of it unsent. */
    struct frame **items;
    size_t head, count, cap;
    size_t bytes;  /* unsent bytes in the queue */
    size_t offset; /* bytes of items[head] already written */
    size_t exempt;
    size_t live_bytes;
    size_t conflated, conflated_bytes; /* live items and bytes left by the last conflation */

    struct transport t;
    struct event ev; /* embedded: one allocation per subscriber */
    struct h2_stream *h2; /* HTTP/2: the stream this is (t and ev unused); NULL on HTTP/1.1 */
};

struct hub {
    struct loop *loop;
    int64_t applied_id;       /* the last id of the last batch delivered to this loop */
    struct subscriber *head;
    size_t count;
    struct pool *pool;        /* the subscribers */
    struct subscriber *pending; /* queued frames not yet offered to the socket */
    struct hub_users *users;  /* the users with streams on this loop */
    struct event *tick;       /* once a second: heartbeats and token expiry */
};

static void pump(struct subscriber *s);
static int flush(struct subscriber *s);
static void on_socket_event(evutil_socket_t fd, short what, void *arg);
static void on_kick(evutil_socket_t fd, short what, void *arg);

static time_t monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static struct metrics *metrics_of(const struct hub *h) { return &h->loop->app->metrics; }

/* ---- the output queue ---- */

/* Appends f, taking a new reference. A live frame counts as backlog; any other counts only when
 * live frames are queued ahead of it. */
static int queue_push(struct subscriber *s, struct frame *f, bool live)
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
    if (!live && s->exempt == s->count)
        s->exempt++;
    else
        s->live_bytes += f->len;
    s->items[s->head + s->count++] = f;
    s->bytes += f->len;
    return 0;
}

/* n bytes of the first item were written. */
static void queue_consumed(struct subscriber *s, size_t n)
{
    s->offset += n;
    s->bytes -= n;
    if (s->exempt == 0)
        s->live_bytes -= n;
}

/* Removes the first item; the caller takes over its reference. */
static struct frame *queue_pop(struct subscriber *s)
{
    struct frame *f = s->items[s->head];
    s->bytes -= f->len - s->offset;
    if (s->exempt > 0)
        s->exempt--;
    else
        s->live_bytes -= f->len - s->offset;
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

/* A new frame holding text, queued (never as backlog: head, control frames, heartbeats). */
static int queue_text(struct subscriber *s, const char *text, size_t len)
{
    struct frame *f = frame_new_text(text, len);
    if (!f)
        return -ENOMEM;
    int rc = queue_push(s, f, false);
    frame_unref(f);
    return rc;
}

/* Queues event frame f: by reference, except the stream's first frame, which is a copy carrying
 * the retry hint between event: and data: (where broker-client expects it). Live frames are
 * backlog; snapshot and replay frames are not. */
static int queue_event(struct subscriber *s, struct frame *f)
{
    bool live = s->mode == MODE_LIVE;
    if (s->retry_sent)
        return queue_push(s, f, live);
    char stack[1024];
    size_t need = frame_format(stack, sizeof stack, f->id, f->text + f->event_off, f->event_len,
                               f->text + f->data_off, f->data_len, RETRY_HINT_MS);
    char *text = need < sizeof stack ? stack : malloc(need + 1);
    if (!text)
        return -ENOMEM;
    if (text != stack)
        frame_format(text, need + 1, f->id, f->text + f->event_off, f->event_len,
                     f->text + f->data_off, f->data_len, RETRY_HINT_MS);
    struct frame *copy = frame_new_text(text, need);
    if (text != stack)
        free(text);
    if (!copy)
        return -ENOMEM;
    int rc = queue_push(s, copy, live);
    frame_unref(copy);
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

/* --slow_consumer=conflate: keeps only the newest queued live frame of each name (and every frame
 * that is not an event, the ones queued before the stream went live, and the one being written),
 * in order. One pass from the newest, with a temporary hash set of the names already kept. -ENOMEM
 * without memory for the set (nothing changed then). */
static int conflate(struct subscriber *s)
{
    struct frame **q = s->items + s->head;
    size_t first = s->exempt > 0 ? s->exempt : s->offset > 0 ? 1 : 0; /* the live ones from here */
    size_t cap = 16;
    while (cap < 2 * (s->count - first))
        cap *= 2;
    struct frame **kept_names = calloc(cap, sizeof *kept_names);
    if (!kept_names)
        return -ENOMEM;
    for (size_t i = s->count; i-- > first;) {
        struct frame *f = q[i];
        if (f->id == 0)
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
    size_t kept = first;
    for (size_t i = first; i < s->count; i++) {
        if (!q[i])
            continue;
        q[kept++] = q[i];
    }
    s->count = kept;
    size_t bytes = 0, live = 0;
    for (size_t i = 0; i < s->count; i++) {
        bytes += q[i]->len;
        if (i >= s->exempt)
            live += q[i]->len;
    }
    s->bytes = bytes - s->offset;
    s->live_bytes = live - (s->exempt == 0 ? s->offset : 0);
    s->conflated = s->count - s->exempt;
    s->conflated_bytes = s->live_bytes;
    return 0;
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
    for (size_t i = s->snap_next; i < s->snap_count; i++)
        frame_unref(s->snap[i]);
    free(s->snap);
    event_filter_free(s->filter);
    if (s->user) {
        if (s->user_prev)
            s->user_prev->user_next = s->user_next;
        else
            s->user->streams = s->user_next;
        if (s->user_next)
            s->user_next->user_prev = s->user_prev;
        hub_users_put(s->hub->users, s->user);
    }
    if (s->kick)
        event_free(s->kick);
    if (s->h2)
        h2_stream_reset(s->h2); /* dropped at once, like a closed socket */
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

/* HTTP/2: hands what is queued to the stream as its last bytes, then END_STREAM. */
static void finish_h2(struct subscriber *s)
{
    size_t len = 0;
    char *tail = s->bytes ? malloc(s->bytes) : NULL;
    if (tail) {
        for (size_t i = 0; i < s->count; i++) {
            struct frame *f = s->items[s->head + i];
            size_t skip = i == 0 ? s->offset : 0;
            memcpy(tail + len, f->text + skip, f->len - skip);
            len += f->len - skip;
        }
    }
    if (s->bytes && !tail)
        h2_stream_reset(s->h2); /* out of memory: ends like a drop */
    else
        h2_stream_finish(s->h2, tail, len);
    free(tail);
    s->h2 = NULL;
}

/* Ends the stream cleanly: what is queued is still offered to the socket. Frees s. */
static void end_stream(struct subscriber *s)
{
    unlink_subscriber(s);
    if (s->h2) {
        finish_h2(s);
    } else {
        (void)write_out(s); /* best effort, never blocks */
        transport_shutdown(&s->t);
    }
    subscriber_free(s);
}

/* ---- writing ---- */

/* The live bytes not yet sent: what --max_backlog bounds. */
static size_t backlog(const struct subscriber *s) { return s->live_bytes; }

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
    if (s->h2) {
        if (s->count)
            h2_stream_resume(s->h2); /* the connection pulls it with its next write */
        return 0;
    }
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
                queue_consumed(s, left);
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
    if ((what & EV_WRITE) && flush(s) == 0 && s->mode != MODE_LIVE && s->bytes < HIGH_WATER)
        pump(s);
}

/* ---- access (SPEC §5) ---- */

/* The caller the rules see in user u, its role mask brought up to date with the loop's rules. */
static struct rules_caller caller_of(const struct hub *h, struct hub_user *u)
{
    const struct loop *l = h->loop;
    if (u->mask_gen != l->rules_gen) {
        char buf[USER_ROLES_TEXT_MAX];
        const char *names[USER_ROLES_MAX];
        size_t n = roles_split(u->roles, buf, names);
        u->role_mask = rules_role_mask(l->rules, names, n);
        u->mask_gen = l->rules_gen;
    }
    return (struct rules_caller){ .user_id = u->id, .username = u->username, .role_mask = u->role_mask };
}

/* Whether s may be sent events named name: its ?events filter, then the rules. */
static bool may_read(struct subscriber *s, const char *name, size_t len)
{
    if (!event_filter_match(s->filter, name, len))
        return false;
    const struct rules *r = s->hub->loop->rules;
    if (!r)
        return true;
    struct rules_caller c = caller_of(s->hub, s->user);
    return rules_allows(r, RULES_SUBSCRIBE, name, len, &c);
}

/* snapshot_filter_fn adapter: arg is the subscriber. */
static int may_read_fn(const char *name, size_t len, void *arg) { return may_read(arg, name, len); }

/* ---- delivery ---- */

/* Applies the slow-consumer policy when the backlog passes --max_backlog. Returns -1 when the
 * subscriber was disconnected (and freed).
 * Conflation never disconnects (SPEC §2): what it leaves is at most one frame per name, frames the
 * snapshot holds anyway, so however large that still is in bytes, it costs a pointer per name. It
 * runs again only once the live queue has doubled since (in frames or in bytes), so a subscriber
 * that stays stuck costs amortised O(1) per frame. */
static int enforce_backlog(struct subscriber *s)
{
    const struct config *cfg = s->hub->loop->app->cfg;
    if (backlog(s) <= cfg->max_backlog)
        return 0;
    if (cfg->slow_consumer == SLOW_CONSUMER_CONFLATE) {
        if (s->count - s->exempt < 2 * s->conflated && backlog(s) < 2 * s->conflated_bytes)
            return 0;
        if (conflate(s) == 0) {
            atomic_fetch_add_explicit(&metrics_of(s->hub)->slow_consumer_conflations, 1,
                                      memory_order_relaxed);
            return 0;
        }
        log_error("sse: out of memory conflating a slow subscriber's backlog");
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
    if (!may_read(s, event, event_len))
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

/* One page of a replay from the store; at the end of the log the stream goes live. */
static int replay_step(struct subscriber *s)
{
    int rows = 0;
    int rc = store_each_after(s->hub->loop->reader, s->last_sent_id, REPLAY_PAGE_ROWS, replay_row, s,
                              &rows);
    if (rc != 0) {
        log_error("sse: cannot read the store to resume a stream: %s", strerror(-rc));
        return rc;
    }
    if (rows < REPLAY_PAGE_ROWS) {
        s->mode = MODE_LIVE; /* caught up with everything this loop has seen */
        log_debug("sse: resume caught up at id %" PRId64, s->last_sent_id);
    }
    return 0;
}

/* Queues the next frames of the snapshot copy, up to HIGH_WATER queued bytes. At its end the
 * stream is live, or first catches up from the store when this loop applied a batch past the
 * snapshot's watermark meanwhile (those events passed the subscriber by). */
static int snapshot_step(struct subscriber *s)
{
    size_t sent = 0;
    while (s->snap_next < s->snap_count && s->bytes < HIGH_WATER) {
        int rc = queue_event(s, s->snap[s->snap_next]);
        if (rc != 0)
            return rc; /* the frame stays in the copy, released with the subscriber */
        frame_unref(s->snap[s->snap_next++]);
        sent++;
    }
    atomic_fetch_add_explicit(&metrics_of(s->hub)->events_delivered, sent, memory_order_relaxed);
    if (s->snap_next == s->snap_count) {
        free(s->snap);
        s->snap = NULL;
        s->snap_next = s->snap_count = 0;
        s->mode = s->hub->applied_id > s->last_sent_id ? MODE_REPLAY : MODE_LIVE;
    }
    return 0;
}

/* Snapshot and replay: queues the next frames while the queue is small and offers them to the
 * socket, a few steps per loop turn so that one subscriber cannot hold the loop. It runs again
 * when the output drains (EV_WRITE), or on the next loop turn (kick) when the socket took
 * everything at once. */
static void pump(struct subscriber *s)
{
    for (int steps = 0; s->mode != MODE_LIVE && s->bytes < HIGH_WATER && steps < PUMP_STEPS_PER_TURN;
         steps++) {
        int rc = s->mode == MODE_SNAPSHOT ? snapshot_step(s) : replay_step(s);
        if (rc != 0) {
            if (rc == -ENOMEM)
                log_error("sse: out of memory sending a snapshot or replay; disconnecting");
            disconnect(s);
            return;
        }
        if (flush(s) != 0)
            return;
    }
    if (s->mode == MODE_LIVE || s->bytes >= HIGH_WATER)
        return; /* live, or EV_WRITE calls again */
    if (!s->kick && !(s->kick = event_new(s->hub->loop->base, -1, 0, on_kick, s))) {
        log_error("sse: out of memory continuing a stream; disconnecting");
        disconnect(s);
        return;
    }
    event_active(s->kick, EV_TIMEOUT, 0);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* ---- live fan-out ---- */

static void mark_pending(struct hub *h, struct subscriber *s)
{
    if (!s->pending) {
        s->pending = true;
        s->next_pending = h->pending;
        h->pending = s;
    }
}

/* Queues frames[0..n) for every live subscriber that may read them: aud[i] says who may read
 * frames[i] (aud NULL: there are no rules, everyone may). */
static void deliver_to_all(struct hub *h, struct frame *const *frames, size_t n,
                           const struct rules_audience *aud)
{
    int64_t last = frames[n - 1]->id;
    unsigned long delivered = 0;
    for (struct subscriber *s = h->head, *next; s; s = next) {
        next = s->next; /* s may be freed below */
        if (s->mode != MODE_LIVE || s->last_sent_id >= last)
            continue; /* a replay catches up from the store instead */
        struct rules_caller c;
        if (aud)
            c = caller_of(h, s->user);
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            struct frame *f = frames[i];
            if (f->id <= s->last_sent_id ||
                !event_filter_match(s->filter, f->text + f->event_off, f->event_len) ||
                (aud && !rules_audience_admits(&aud[i], &c)))
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
        mark_pending(h, s);
    }
    atomic_fetch_add_explicit(&metrics_of(h)->events_delivered, delivered, memory_order_relaxed);
}

/* A frame only its owner may read ("self") goes to the owner's streams on this loop alone. */
static void deliver_private(struct hub *h, struct frame *f, const struct rules_audience *aud)
{
    struct hub_user *u = aud->user_id ? hub_users_by_id(h->users, aud->user_id, aud->user_id_len)
                                      : hub_users_by_name(h->users, aud->username, aud->username_len);
    if (!u)
        return;
    struct rules_caller c = caller_of(h, u);
    if (!rules_audience_admits(aud, &c))
        return; /* e.g. {user_id} is the user's but {username} is not */
    unsigned long delivered = 0;
    for (struct subscriber *s = u->streams, *next; s; s = next) {
        next = s->user_next; /* s (and with the last one u) may be freed below */
        if (s->mode != MODE_LIVE || f->id <= s->last_sent_id ||
            !event_filter_match(s->filter, f->text + f->event_off, f->event_len))
            continue;
        if (queue_event(s, f) != 0) {
            log_error("sse: out of memory delivering to a subscriber; disconnecting it");
            disconnect(s);
            continue;
        }
        delivered++;
        s->last_sent_id = f->id;
        mark_pending(h, s);
    }
    atomic_fetch_add_explicit(&metrics_of(h)->events_delivered, delivered, memory_order_relaxed);
}

/* Audiences of up to this many frames live on the stack; a larger batch takes them from the heap
 * (and, without memory for that, is taken in parts of this size: still correct, a little slower). */
#define AUDIENCE_STACK 64

/* Delivers frames[0..n) whose audiences are aud[0..n): every run of frames others may read goes
 * through the subscribers once (with no per-frame test at all when the whole run is for anyone);
 * an event for its owner only goes to the owner's streams. Runs are taken in id order, so every
 * stream still gets its events in order. */
static void deliver_runs(struct hub *h, struct frame *const *frames, size_t n, const struct rules_audience *aud)
{
    for (size_t i = 0, j; i < n; i = j) {
        j = i + 1;
        if (aud[i].kind == RULES_AUD_SELF) {
            deliver_private(h, frames[i], &aud[i]);
        } else if (aud[i].kind != RULES_AUD_NONE) {
            bool anyone = aud[i].kind == RULES_AUD_ANY;
            while (j < n && (aud[j].kind == RULES_AUD_ANY || aud[j].kind == RULES_AUD_ROLES)) {
                anyone = anyone && aud[j].kind == RULES_AUD_ANY;
                j++;
            }
            deliver_to_all(h, frames + i, j - i, anyone ? NULL : aud + i);
        }
    }
}

void hub_deliver(struct hub *h, const struct batch *b)
{
    if (b->count == 0)
        return;
    h->applied_id = b->frames[b->count - 1]->id;
    const struct rules *r = h->loop->rules;
    if (!r) {
        deliver_to_all(h, b->frames, b->count, NULL);
        return;
    }
    /* Visibility is decided once per event (DESIGN §5), not once per subscriber. */
    struct rules_audience stack[AUDIENCE_STACK];
    struct rules_audience *aud = b->count <= AUDIENCE_STACK ? stack : malloc(b->count * sizeof *aud);
    size_t part = aud ? b->count : AUDIENCE_STACK;
    if (!aud)
        aud = stack;
    for (size_t base = 0; base < b->count; base += part) {
        size_t n = b->count - base < part ? b->count - base : part;
        struct frame *const *frames = b->frames + base;
        for (size_t i = 0; i < n; i++)
            rules_audience(r, RULES_SUBSCRIBE, frames[i]->text + frames[i]->event_off, frames[i]->event_len,
                           &aud[i]);
        deliver_runs(h, frames, n, aud);
    }
    if (aud != stack)
        free(aud);
}

void hub_flush_pending(void *arg)
{
    struct hub *h = arg;
    while (h->pending) {
        struct subscriber *s = h->pending;
        h->pending = s->next_pending;
        s->pending = false;
        /* A full socket is flushed by its EV_WRITE; either way, what the socket did not take is
         * the backlog that the slow-consumer policy bounds. An HTTP/2 stream is asked once its
         * connection has written (h2_sent). */
        if (s->h2)
            (void)flush(s);
        else if (s->write_armed)
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
        /* A bare comment line, between frames (nothing queued): a standard parser ignores it,
         * and broker-client, which splits on blank lines only, folds it into the next frame
         * instead of dispatching an empty message for ":\n\n" (SPEC §2). */
        if (heartbeat > 0 && mono - s->last_write >= heartbeat && s->count == 0) {
            if (queue_text(s, ":\n", 2) == 0) {
                beats++;
                flush(s);
            }
        }
    }
    if (beats)
        atomic_fetch_add_explicit(&metrics_of(h)->heartbeats, beats, memory_order_relaxed);
}

/* ---- HTTP/2 streams (http/h2.h) ---- */

/* h2_source.read: the connection takes up to cap bytes of the queue. */
static size_t h2_read(void *arg, uint8_t *buf, size_t cap)
{
    struct subscriber *s = arg;
    size_t n = 0;
    while (s->count && n < cap) {
        struct frame *f = s->items[s->head];
        size_t rest = f->len - s->offset, take = rest < cap - n ? rest : cap - n;
        memcpy(buf + n, f->text + s->offset, take);
        n += take;
        if (take < rest)
            queue_consumed(s, take);
        else
            frame_unref(queue_pop(s));
    }
    if (n)
        s->last_write = monotonic_seconds();
    /* A snapshot or replay goes on once the queue has room (what EV_WRITE does on HTTP/1.1), on
     * the next loop turn: not from inside the connection's write. */
    if (s->mode != MODE_LIVE && s->bytes < HIGH_WATER && s->kick)
        event_active(s->kick, EV_TIMEOUT, 0);
    return n;
}

/* h2_source.gone: the client reset the stream or the connection closed. */
static void h2_gone(void *arg)
{
    struct subscriber *s = arg;
    s->h2 = NULL;
    disconnect(s);
}

/* h2_source.sent: the connection wrote what the windows allowed; the rest is backlog. */
static void h2_sent(void *arg) { (void)enforce_backlog(arg); }

static const struct h2_source h2_source = { h2_read, h2_gone, h2_sent };

/* ---- subscribing ---- */

struct hub *hub_new(struct loop *loop)
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = loop;
    h->tick = event_new(loop->base, -1, EV_PERSIST, on_tick, h);
    h->pool = pool_new(sizeof(struct subscriber));
    h->users = hub_users_new();
    static const struct timeval second = { 1, 0 };
    if (!h->tick || !h->pool || !h->users || event_add(h->tick, &second) != 0) {
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
    hub_users_free(h->users);
    free(h);
}

size_t hub_count(const struct hub *h) { return h->count; }

/* Drops what is queued and not yet being written (a frame partly written stays, so the stream
 * still ends on a frame boundary). */
static void queue_drop_unsent(struct subscriber *s)
{
    size_t keep = s->offset > 0 ? 1 : 0;
    while (s->count > keep)
        frame_unref(s->items[s->head + --s->count]);
    s->bytes = keep ? s->items[s->head]->len - s->offset : 0;
    if (s->exempt > keep)
        s->exempt = keep;
    s->live_bytes = keep && s->exempt == 0 ? s->bytes : 0;
    s->conflated = s->conflated_bytes = 0;
}

void hub_revoke_user(struct hub *h, const char *id, int64_t ver, const char *reason)
{
    struct hub_user *u = hub_users_by_id(h->users, id, strlen(id));
    if (!u)
        return;
    char data[256];
    snprintf(data, sizeof data, "{\"reason\":\"%s\"}", reason);
    unsigned long closed = 0;
    for (struct subscriber *s = u->streams, *next; s; s = next) {
        next = s->user_next; /* ending the last stream frees u too */
        if (s->ver >= ver)
            continue; /* opened with a token issued after the change */
        queue_drop_unsent(s);
        (void)queue_control(s, "revoked", data);
        end_stream(s);
        closed++;
    }
    if (closed)
        log_info("sse: closed %lu stream(s) of user %s on loop %d (%s)", closed, id, h->loop->index,
                 reason);
    atomic_fetch_add_explicit(&metrics_of(h)->streams_revoked, closed, memory_order_relaxed);
}

void hub_close_all(struct hub *h)
{
    while (h->head)
        end_stream(h->head);
}

/* Takes the subscriber's copy of the snapshot (filtered; sent by pump) and sets last_sent_id to
 * its watermark. */
static int take_snapshot(struct subscriber *s)
{
    int64_t watermark = 0;
    bool all = !s->filter && !s->hub->loop->rules;
    if (snapshot_copy(s->hub->loop->app->snapshot, all ? NULL : may_read_fn, s, &s->snap,
                      &s->snap_count, &watermark) != 0)
        return -ENOMEM;
    s->snap_next = 0;
    s->last_sent_id = watermark;
    return 0;
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
    const struct token_claims *who = sr->who;
    s->user = hub_users_get(h->users, who->sub, who->username, strlen(who->username), who->roles);
    if (!s->user) {
        subscriber_free(s);
        return -ENOMEM;
    }
    s->ver = who->ver;
    s->user_next = s->user->streams;
    if (s->user_next)
        s->user_next->user_prev = s;
    s->user->streams = s;
    s->exp = sr->exp;
    if (s->exp) {
        /* Warn a tenth of the credential's lifetime ahead, between 1 and 60 seconds. */
        long lead = (s->exp - sr->iat) / 10;
        lead = lead < 1 ? 1 : lead > 60 ? 60 : lead;
        s->warn_at = s->exp - lead;
    }
    s->mode = sr->resume ? MODE_REPLAY : MODE_SNAPSHOT;
    if (sr->resume)
        s->last_sent_id = sr->resume_after;
    char *head = NULL;
    size_t head_len = 0;
    if (http_take_stream(req, stream_headers, sizeof stream_headers / sizeof stream_headers[0],
                         &s->t, &s->h2, &head, &head_len) != 0) {
        subscriber_free(s);
        return -ENOMEM; /* the caller still answers req */
    }
    /* From here on req is gone: a failure can only close the socket (or reset the stream). */
    int rc = 0;
    if (s->h2) {
        h2_stream_bind(s->h2, &h2_source, s); /* the head is submitted already */
        /* made now: h2_read, inside the connection's write, only activates it */
        if (!(s->kick = event_new(h->loop->base, -1, 0, on_kick, s)))
            rc = -ENOMEM;
    } else {
        rc = queue_text(s, head, head_len);
        free(head);
        if (rc == 0)
            rc = watch_socket(s);
    }
    if (rc == 0 && sr->reset_reason) {
        char data[256];
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", sr->reset_reason);
        rc = queue_control(s, "reset", data);
    }
    if (rc == 0 && !sr->resume)
        rc = take_snapshot(s);
    if (rc != 0) {
        log_error("sse: cannot start a stream: %s", strerror(-rc));
        subscriber_free(s);
        return 0;
    }
    s->last_write = monotonic_seconds();
    link_subscriber(h, s);
    log_debug("sse: subscriber joined (%s, after id %" PRId64 ", %zu on loop %d)",
              sr->resume ? "resume" : "snapshot", s->last_sent_id, h->count, h->loop->index);
    pump(s); /* queues the first frames and flushes */
    return 0;
}
