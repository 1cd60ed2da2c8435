/* jetstream: cluster mode's engine (SPEC §4), NATS JetStream through libnats. It owns one NATS
 * connection and, on it, everything broker keeps in JetStream:
 *   - the event stream: one message per event on "<prefix>.<base64url(name)>" (cluster/subject.h),
 *     headers Nats-Msg-Id (de-duplication, 2-minute window) and Broker-User, the compact JSON data
 *     as payload; the stream sequence is the event id;
 *   - the feed: an ordered consumer over that stream, read by one thread at its own pace;
 *   - the users bucket: a KV bucket (history 1) whose create-if-absent makes usernames unique.
 *
 * Threads and ownership:
 *   - js_open / js_close: one thread, once. js_close is called after every feed was closed and
 *     after the last js_publish returned; nothing of the engine may be used after it.
 *   - js_publish: any thread, never blocks on the network (a mutex and an allocation); the engine
 *     copies everything it needs before returning.
 *   - js_publish_cb: called exactly once per accepted publish (js_publish returned 0), never from
 *     inside js_publish, on one of the engine's own threads (the publisher thread that sends and
 *     times out, or libnats's delivery thread of the reply subscription), or on the thread of
 *     js_close with -ESHUTDOWN for what is still pending then. It must be cheap and must not block
 *     or call back into the engine: hand the result to the caller's loop (its mailbox) and return.
 *   - js_feed_*: one feed belongs to one thread.
 *   - js_user_*, js_last_seq, js_ping: any thread, blocking (bounded); call them from workers.
 *   - js_state, js_reconnects: any thread, non-blocking.
 * libnats starts its own threads and keeps library-wide state: the process calls nats_Close()
 * once at exit, after js_close (that is the caller's job, not the engine's).
 *
 * Functions return 0 or a negative errno-style code:
 *   -EAGAIN     the engine cannot take this now (no quorum, leader election, disconnected, too
 *               much in flight): nothing is known to be stored; retry later with the same msg id
 *   -EEXIST     js_user_create: the username is taken
 *   -ENOENT     js_user_get: no such user
 *   -EINVAL     bad arguments (a name, id or header value that cannot be sent)
 *   -EMSGSIZE   the message is larger than the server accepts
 *   -ENOSPC     JetStream is out of storage
 *   -ESHUTDOWN  the engine is closing
 *   -EIO        any other engine fault (logged with its reason) */
#ifndef BROKER_CLUSTER_JETSTREAM_H
#define BROKER_CLUSTER_JETSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct js_config {
    const char *urls;         /* comma-separated nats:// or tls:// URLs (user:pass@ or a token work) */
    const char *creds;        /* NULL, or a NATS credentials file */
    const char *stream;       /* the event stream, [A-Za-z0-9_-]{1,64}, e.g. "BROKER_EVENTS" */
    const char *users_bucket; /* the users KV bucket, [A-Za-z0-9_-]+, e.g. "BROKER_USERS" */
    int replicas;             /* 1-5, for the stream and the bucket */
    int timeout_ms;           /* the bound of one publish (first attempt to -EAGAIN) and of each
                                 blocking call; >= 100 */
    int setup_timeout_ms;     /* js_open's bound for connecting and creating the stream and bucket
                                 (a fresh cluster needs a few seconds to elect its meta leader);
                                 0 means 30000 */
};

struct js_engine;
struct js_feed;

/* Connects (then reconnects forever by itself), refuses a server older than 2.10, creates the
 * stream and the bucket when missing and checks them when they exist. On failure returns a
 * negative code and writes the reason, one line for the log, into err:
 *   -EPROTONOSUPPORT  a server older than 2.10 ("nats-server 2.9.10 is too old: ...")
 *   -EINVAL           a bad configuration, or an existing stream or bucket that conflicts with it
 *                     (the reason names the difference)
 *   -ETIMEDOUT        no connection, or JetStream did not answer, within setup_timeout_ms
 *   -EIO              JetStream refused (the reason is the server's) */
int js_open(const struct js_config *cfg, struct js_engine **out, char *err, size_t errlen);
/* Fails what is still pending with -ESHUTDOWN, then closes the connection and destroys every
 * libnats object the engine made. NULL is a no-op. */
void js_close(struct js_engine *e);
/* Releases libnats's library-wide state and threads (waiting a bounded time for them): once per
 * process, after the last js_close. */
void js_library_close(void);

/* rc: 0 stored on a quorum of the stream's replicas, and seq (>= 1) is its stream sequence: the
 * event id. duplicate: JetStream already held this msg id (a retry, or the same Idempotency-Key
 * twice); seq is then the sequence of the copy it holds. Or rc < 0: -EAGAIN when the deadline
 * passed without a definite answer (not known to be stored: retry with the same msg id), -ENOSPC,
 * -EMSGSIZE, -EIO. The sequence is always the server's: the engine never invents one.
 * Note: a clustered nats-server 2.10 answers a msg id whose earlier attempt is proposed but not
 * yet committed with {"duplicate": true, "seq": 0}. That is not an acknowledgement (without a
 * quorum the proposal may never commit), so the engine keeps asking until the server names the
 * sequence. The flip side (read in nats-server 2.10.27's code, which never unstages a proposal
 * that fails; not seen in js_check, where a new leader was elected each time): a proposal lost in
 * an outage can leave its msg id staged on that server, and publishes with that id then get
 * -EAGAIN from it until the 2-minute de-duplication window forgets the id. */
typedef void (*js_publish_cb)(void *arg, int rc, uint64_t seq, bool duplicate);

/* Publishes one event. event: 1-255 bytes, any bytes (encoded into the subject). data: the
 * payload. user_id: NULL or a header value. msg_id: the de-duplication key, 1 or more printable
 * ASCII bytes, no leading or trailing space. Returns 0 and later calls cb exactly once, or returns
 * a negative code (-EINVAL, -EMSGSIZE, -EAGAIN when too much is in flight, -ESHUTDOWN, -ENOMEM)
 * and never calls cb. The message is sent again with the SAME msg id, backing off from 50 ms to
 * 1 s, on no responders, "JetStream unavailable" (503, 10008, 10076), "duplicate, seq 0" (above)
 * and after 1 s of silence, until timeout_ms after this call; then cb gets -EAGAIN. */
int js_publish(struct js_engine *e, const char *event, size_t event_len, const char *data,
               size_t data_len, const char *user_id, const char *msg_id, js_publish_cb cb,
               void *arg);

/* One event read from the feed. Every pointer is owned by the feed and valid until the next
 * js_feed_next or js_feed_close. event and data are byte strings with a length; msg_id and
 * user_id are NUL-terminated, "" when the message carried no such header. */
struct js_event {
    uint64_t seq; /* the stream sequence (from the JetStream metadata) */
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
    const char *msg_id;
    const char *user_id;
};

/* An ordered consumer over the whole event stream, from after_seq + 1 (0: from the start). It
 * survives reconnects and leader changes by itself (libnats recreates it after missed heartbeats,
 * from the last sequence it delivered). -EAGAIN when JetStream cannot create it now. */
int js_feed_open(struct js_engine *e, uint64_t after_seq, struct js_feed **out);
/* Waits up to timeout_ms for the next event, in stream order, each sequence once, strictly
 * increasing. 0 and *ev filled; -ETIMEDOUT when nothing arrived; -EBADMSG for a message on the
 * stream's subjects that broker did not write (its subject does not decode): ev->seq says which
 * sequence it consumed, the other fields are empty, the caller skips it; -ESHUTDOWN when the
 * engine closed. */
int js_feed_next(struct js_feed *f, int timeout_ms, struct js_event *ev);
/* Deletes the consumer on the server when connected (a request: up to timeout_ms), then frees. */
void js_feed_close(struct js_feed *f);

/* The stream's last sequence (for the replication lag). Blocking, up to timeout_ms. */
int js_last_seq(struct js_engine *e, uint64_t *seq);
/* Whether JetStream can take writes now: connected, the stream's leader answers, and it heard from
 * a quorum of the replicas in the last 3 s (a leader that lost its followers keeps answering for
 * a few seconds before it steps down). 0 or -EAGAIN; blocking, up to 2 s (less when timeout_ms is
 * less). For /healthz: with 2 of 3 servers killed it said -EAGAIN 1.9-2.6 s after the kill. */
int js_ping(struct js_engine *e);

enum js_state { JS_CONNECTED, JS_RECONNECTING, JS_CLOSED };
enum js_state js_state(struct js_engine *e);
/* How many times the connection was re-established since js_open (for /metrics). */
uint64_t js_reconnects(struct js_engine *e);

/* Stores record under username if the name is free, cluster-wide. 0, -EEXIST (taken), -EAGAIN
 * (the bucket cannot take writes now; retried inside the bound), -EINVAL (empty name). When an
 * attempt timed out but was stored after all, the next attempt of the same call finds the same
 * record bytes and answers 0. Blocking, up to timeout_ms. The key is "name.<base64url(username)>",
 * so other key families may share the bucket. */
int js_user_create(struct js_engine *e, const char *username, size_t len, const char *record,
                   size_t record_len);
/* The record stored under username: 0 and *record (malloc'd, NUL-terminated for convenience, the
 * caller frees it) with *record_len and, when revision is not NULL, its revision; -ENOENT;
 * -EAGAIN. Blocking, up to timeout_ms. Reads are "direct gets" that any replica answers, so they
 * work without a quorum, and a replica that lags may not have a user created a moment ago on
 * another node yet. */
int js_user_get(struct js_engine *e, const char *username, size_t len, char **record,
                size_t *record_len, uint64_t *revision);
/* Replaces the record of username if it is still at revision (compare-and-set): 0, -ESTALE (it
 * changed since, or is gone: read it again), -EAGAIN (no quorum within timeout_ms). Blocking. */
int js_user_update(struct js_engine *e, const char *username, size_t len, const char *record,
                   size_t record_len, uint64_t revision);

/* A watch of every user record: the current ones first, then each change as it is stored, on any
 * node. One thread reads it; js_user_watch_stop (any thread) wakes it for good. */
struct js_user_watch;
int js_user_watch_start(struct js_engine *e, struct js_user_watch **out);
/* The next record: 1 with username (NUL-terminated into cap bytes, *username_len) and *record
 * (malloc'd, the caller frees it); 0 once, when the records that existed at the start are all
 * delivered; -ETIMEDOUT after timeout_ms without a change; -EAGAIN for an entry that is not a
 * user record (skip it); -ESHUTDOWN once stopped; -ENOMEM; -EIO. */
int js_user_watch_next(struct js_user_watch *w, int timeout_ms, char *username, size_t cap,
                       size_t *username_len, char **record, size_t *record_len);
void js_user_watch_stop(struct js_user_watch *w);
void js_user_watch_free(struct js_user_watch *w);

#endif
