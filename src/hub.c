/* hub: subscriber list, snapshot-then-live delivery and the backlog bound.
 *
 * The seam rule (DESIGN §2): each subscriber remembers last_sent_id and skips anything at or below
 * it. On subscribe it takes the snapshot and its watermark W under the snapshot lock and sets
 * last_sent_id = W; the writer updates the snapshot before it posts a batch to the loops, so
 * batches already queued for this loop hold only ids <= W (skipped) and later ones only ids > W. */
#include "hub.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdint.h>
#include <stdlib.h>

#include "app.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "snapshot.h"

/* A subscriber's socket is only read to notice that the peer closed; a client that sends data
 * instead gets at most this much buffered before reading pauses. */
#define SUBSCRIBER_READ_LIMIT 4096

struct subscriber {
    struct subscriber *prev, *next;
    struct hub *hub;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    int64_t last_sent_id;
};

struct hub {
    struct loop *loop;
    struct subscriber *head;
    size_t count;
    struct evbuffer *scratch; /* reused to gather one batch for one subscriber */
};

static void frame_release(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    frame_unref(arg);
}

/* Appends a reference to f (no copy) to buf. */
static int add_frame(struct evbuffer *buf, struct frame *f)
{
    frame_ref(f);
    if (evbuffer_add_reference(buf, f->text, f->len, frame_release, f) != 0) {
        frame_unref(f);
        return -ENOMEM;
    }
    return 0;
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
    free(s);
}

static size_t backlog_of(const struct subscriber *s)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
    return evbuffer_get_length(bufferevent_get_output(bev));
}

/* Sends what scratch holds as one chunk; disconnects the subscriber when its unsent backlog
 * passes --max_backlog (it can resume from the store; nobody else waits for it). Returns -1 when
 * the subscriber is gone. */
static int flush_to(struct subscriber *s, struct evbuffer *scratch)
{
    if (evbuffer_get_length(scratch) > 0)
        evhttp_send_reply_chunk(s->req, scratch);
    if (backlog_of(s) > s->hub->loop->app->cfg->max_backlog) {
        log_info("sse: disconnecting a slow subscriber (%zu bytes unsent)", backlog_of(s));
        evbuffer_drain(scratch, evbuffer_get_length(scratch));
        evhttp_connection_free(s->evcon); /* runs on_connection_close */
        return -1;
    }
    return 0;
}

struct hub *hub_new(struct loop *loop)
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = loop;
    h->scratch = evbuffer_new();
    if (!h->scratch) {
        free(h);
        return NULL;
    }
    return h;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    hub_close_all(h);
    evbuffer_free(h->scratch);
    free(h);
}

size_t hub_count(const struct hub *h) { return h->count; }

int hub_subscribe(struct hub *h, struct evhttp_request *req)
{
    struct frame **frames = NULL;
    size_t n = 0;
    int64_t watermark = 0;
    struct subscriber *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (snapshot_copy(h->loop->app->snapshot, NULL, NULL, &frames, &n, &watermark) != 0) {
        free(s);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_frame(h->scratch, frames[i]);
    for (size_t i = 0; i < n; i++)
        frame_unref(frames[i]);
    free(frames);
    if (rc != 0) {
        evbuffer_drain(h->scratch, evbuffer_get_length(h->scratch));
        free(s);
        return rc;
    }

    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "text/event-stream");
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    evhttp_add_header(headers, "X-Accel-Buffering", "no");
    /* A stream is never followed by another request on its connection. */
    evhttp_add_header(headers, "Connection", "close");
    evhttp_send_reply_start(req, 200, "OK");

    s->hub = h;
    s->req = req;
    s->evcon = evhttp_request_get_connection(req);
    s->last_sent_id = watermark;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
    /* Streams are long-lived by nature: no idle timeouts (DESIGN §3). */
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_READ, 0, SUBSCRIBER_READ_LIMIT);
    evhttp_connection_set_closecb(s->evcon, on_connection_close, s);

    s->next = h->head;
    if (h->head)
        h->head->prev = s;
    h->head = s;
    h->count++;
    atomic_fetch_add(&h->loop->app->subscribers, 1);
    log_debug("sse: subscriber joined with %zu snapshot events up to id %lld (%zu on loop %d)", n,
              (long long)watermark, h->count, h->loop->index);
    flush_to(s, h->scratch);
    return 0;
}

void hub_deliver(struct hub *h, const struct batch *b)
{
    if (b->count == 0)
        return;
    int64_t last = b->frames[b->count - 1]->id;
    for (struct subscriber *s = h->head, *next; s; s = next) {
        next = s->next; /* flush_to may free s */
        if (s->last_sent_id >= last)
            continue;
        int rc = 0;
        for (size_t i = 0; i < b->count && rc == 0; i++)
            if (b->frames[i]->id > s->last_sent_id)
                rc = add_frame(h->scratch, b->frames[i]);
        if (rc != 0) {
            /* Out of memory: a gap would be silent, so end the stream; the client resumes. */
            log_error("sse: out of memory delivering to a subscriber; disconnecting it");
            evbuffer_drain(h->scratch, evbuffer_get_length(h->scratch));
            evhttp_connection_free(s->evcon);
            continue;
        }
        s->last_sent_id = last;
        flush_to(s, h->scratch);
    }
}

void hub_close_all(struct hub *h)
{
    while (h->head) {
        struct subscriber *s = h->head;
        unlink_subscriber(s);
        evhttp_connection_set_closecb(s->evcon, NULL, NULL);
        evhttp_send_reply_end(s->req); /* terminates the chunked body; the connection closes */
        free(s);
    }
}
