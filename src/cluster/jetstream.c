/* jetstream: the engine of cluster mode on libnats (see jetstream.h for the contract). This file
 * owns the NATS connection and every libnats object made on it, the publisher thread and its
 * table of publishes in flight, and the setup checks of js_open (server version, stream, bucket).
 *
 * Publishing is our own request/reply rather than libnats's js_PublishMsgAsync, because:
 *   - each publish needs its own closure (the caller's loop and request); the async API has one
 *     handler per context and would make us find the caller again by message pointer;
 *   - a retry must wait (50 ms doubling to 1 s) and the deadline covers all attempts; the async
 *     API fails a message on the first "no responders" and has no timer we could hang a backoff on;
 *   - sending happens on our publisher thread, so a loop thread never blocks in a socket write
 *     when the connection is slow (libnats writes synchronously once its buffer is full).
 * Every attempt of one publish carries the same reply subject ("<inbox>.<token>") and the same
 * Nats-Msg-Id, so whichever attempt JetStream answers first completes it, and JetStream stores the
 * event once however many attempts reached it. */
#include "cluster/jetstream.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nats/nats.h>

#include "cluster/subject.h"
#include "log.h"

/* How long one attempt waits for its answer before it is sent again (publish), or at most waits
 * (KV calls): long enough for a replicated write on a loaded cluster, short enough to ride out a
 * leader election inside a request timeout of a few seconds. */
#define JS_ATTEMPT_MS 1000
#define JS_BACKOFF_FIRST_MS 50
#define JS_BACKOFF_MAX_MS 1000
/* Bounds on what js_publish accepts before answering -EAGAIN (the memory of an outage). */
#define JS_MAX_IN_FLIGHT 65536
#define JS_MAX_IN_FLIGHT_BYTES ((size_t)64 << 20)
/* Buckets of the table of publishes in flight (tokens are sequential: no clustering). */
#define JS_BUCKETS 4096
/* Publishes the publisher thread sends per turn before it lets go of the lock. */
#define JS_SEND_BATCH 256
#define JS_DEDUP_WINDOW_NS (120LL * 1000000000LL)
#define JS_PING_MS 2000
#define JS_SETUP_DEFAULT_MS 30000
/* The ordered consumer's idle heartbeat: libnats recreates the consumer after two are missed,
 * so this is how fast the feed notices a lost consumer (a restarted server, a new leader). */
#define JS_FEED_HEARTBEAT_NS 1000000000LL
/* How long js_close waits for libnats's threads to let go of the engine. */
#define JS_CLOSE_WAIT_MS 5000
/* The version probe reads at most this much of a server's INFO line. */
#define JS_INFO_MAX (64 * 1024)

#define MSG_ID_HEADER "Nats-Msg-Id"
#define USER_HEADER "Broker-User"
#define USER_KEY_PREFIX "name."

/* One publish in flight. Owned by the table while in it; the publisher thread holds an extra
 * reference while it sends the message outside the lock. Freed when the last reference goes. */
struct pending {
    struct pending *next_in_bucket;
    uint64_t token;
    natsMsg *msg; /* subject, reply "<inbox>.<token>", headers, data: sent as is by every attempt */
    size_t bytes;
    js_publish_cb cb;
    void *arg;
    int64_t deadline_ms; /* first attempt + timeout_ms: then -EAGAIN */
    int64_t next_ms;     /* when the publisher thread next acts on it (send, resend, expire) */
    int64_t backoff_ms;
    size_t heap_index;
    atomic_int refs;
};

struct js_engine {
    char *stream;
    char *bucket;
    char prefix[SUBJECT_PREFIX_CAP];
    int replicas;
    int timeout_ms;
    int kv_attempt_ms; /* the Wait of js_kv: a sixth of timeout_ms, at most JS_ATTEMPT_MS */

    natsConnection *nc;
    jsCtx *js;    /* stream administration, feeds; Wait = timeout_ms */
    jsCtx *js_kv; /* the users bucket; Wait = kv_attempt_ms */
    kvStore *kv;
    natsInbox *inbox;
    natsSubscription *replies; /* "<inbox>.*": publish acknowledgements */

    atomic_uint_least64_t reconnects;
    atomic_llong last_async_error_ms; /* rate limit of the async error log */

    /* Guards everything below and the pendings' table fields (next_ms, backoff, heap_index). */
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* the publisher thread: something is due sooner */
    pthread_cond_t closed; /* js_close: the reply subscription or the connection is done */
    bool stopping;
    bool replies_done;
    bool conn_closed;
    bool publisher_started;
    pthread_t publisher;
    uint64_t next_token;
    size_t in_flight, in_flight_bytes;
    struct pending *buckets[JS_BUCKETS];
    struct pending **heap; /* min-heap on next_ms */
    size_t heap_len, heap_cap;
};

struct js_feed {
    struct js_engine *e;
    natsSubscription *sub;
    natsMsg *msg; /* the message behind the last js_event */
    uint64_t last_seq;
    char name[SUBJECT_NAME_MAX];
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libnats's text for the last error on this thread (its own, else the status's). */
static const char *nats_reason(natsStatus s)
{
    const char *text = nats_GetLastError(NULL);
    return text && *text ? text : natsStatus_GetText(s);
}

/* Failures that say "not now" rather than "no": the meta group or a stream leader is being
 * elected, a server is starting, the connection is down. */
static bool transient(natsStatus s, jsErrCode jerr)
{
    if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT || s == NATS_CONNECTION_DISCONNECTED ||
        s == NATS_NO_SERVER)
        return true;
    switch ((int)jerr) {
    case 10005: /* no suitable peers for placement: peers not known yet */
    case 10008: /* JetStream system temporarily unavailable */
    case 10009: /* cluster can not handle request: not the leader (yet) */
    case 10023: /* insufficient resources: a fresh meta leader before the peers reported */
    case 10076: /* JetStream not enabled: a server still starting JetStream */
        return true;
    default:
        return false;
    }
}

static bool connected(struct js_engine *e)
{
    return natsConnection_Status(e->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* ---- the server version: from the INFO line each server sends first on a new connection ---- */

/* Splits "nats://user:pass@host:port" into host and port (4222 when absent). */
static int parse_url(const char *url, char *host, size_t hostcap, char *port, size_t portcap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at)
        p = at + 1;
    const char *hend, *colon = NULL;
    if (*p == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return -EINVAL;
        p++;
        hend = close;
        if (close + 1 < end && close[1] == ':')
            colon = close + 1;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
    }
    size_t hlen = (size_t)(hend - p);
    if (hlen == 0 || hlen >= hostcap)
        return -EINVAL;
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    const char *ps = colon ? colon + 1 : "4222";
    size_t plen = colon ? (size_t)(end - ps) : 4;
    if (plen == 0 || plen >= portcap)
        return -EINVAL;
    memcpy(port, ps, plen);
    port[plen] = '\0';
    return 0;
}

/* Connects to host:port and reads the server's INFO line into the caller's buffer, within
 * timeout_ms. The connection is closed right after: it never sends CONNECT. */
static int read_info(const char *host, const char *port, int timeout_ms, char *buf, size_t cap)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return -EHOSTUNREACH;
    int64_t deadline = now_ms() + timeout_ms;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && rc != 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        size_t len = 0;
        rc = -ETIMEDOUT;
        while (len + 1 < cap) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                break;
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            int n = poll(&pfd, 1, (int)left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            ssize_t got = recv(fd, buf + len, cap - 1 - len, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                rc = got == 0 ? -ECONNRESET : -errno;
                break;
            }
            len += (size_t)got;
            buf[len] = '\0';
            if (strstr(buf, "\r\n")) {
                rc = 0;
                break;
            }
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* Reads the version of the server at url ("2.10.27") into version. */
static int probe_version(const char *url, int timeout_ms, char *version, size_t cap)
{
    char host[256], port[16];
    if (parse_url(url, host, sizeof host, port, sizeof port) != 0)
        return -EINVAL;
    char *buf = malloc(JS_INFO_MAX);
    if (!buf)
        return -ENOMEM;
    int rc = read_info(host, port, timeout_ms, buf, JS_INFO_MAX);
    if (rc == 0) {
        rc = -EPROTO;
        if (strncmp(buf, "INFO ", 5) == 0) {
            json_t *info = json_loads(buf + 5, JSON_DISABLE_EOF_CHECK, NULL);
            const char *v = info ? json_string_value(json_object_get(info, "version")) : NULL;
            if (v && strlen(v) < cap) {
                memcpy(version, v, strlen(v) + 1);
                rc = 0;
            }
            json_decref(info);
        }
    }
    free(buf);
    return rc;
}

static bool version_at_least_2_10(const char *v)
{
    if (*v == 'v')
        v++;
    char *end;
    long major = strtol(v, &end, 10);
    if (end == v || *end != '.')
        return false;
    long minor = strtol(end + 1, NULL, 10);
    return major > 2 || (major == 2 && minor >= 10);
}

/* The server this connection reached must be 2.10 or later: 2.9 can renumber a replica's log
 * after a crash, and event ids are stream sequences. The other configured servers are checked
 * too when they answer, so a mixed cluster is caught at start rather than after a fail-over. */
static int check_versions(struct js_engine *e, const char *urls, int64_t deadline, char *err,
                          size_t errlen)
{
    char url[1024], version[64];
    if (natsConnection_GetConnectedUrl(e->nc, url, sizeof url) != NATS_OK || !url[0]) {
        set_err(err, errlen, "cannot tell which NATS server the connection reached");
        return -EIO;
    }
    int left = (int)min64(deadline - now_ms(), 5000);
    int rc = probe_version(url, left > 100 ? left : 100, version, sizeof version);
    if (rc != 0) {
        set_err(err, errlen, "cannot read the version of nats-server at %s: %s", url, strerror(-rc));
        return rc == -EINVAL ? -EINVAL : -EIO;
    }
    if (!version_at_least_2_10(version)) {
        set_err(err, errlen, "nats-server %s is too old: broker needs 2.10 or later (2.9 can "
                "renumber a replica's log after a crash)", version);
        return -EPROTONOSUPPORT;
    }
    log_info("cluster: connected to nats-server %s at %s", version, url);

    char *list = strdup(urls);
    if (!list)
        return -ENOMEM;
    char *save = NULL;
    rc = 0;
    for (char *u = strtok_r(list, ",", &save); u && rc == 0; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        char other[64];
        /* Best effort: a server that is down now is checked by nobody; one that answers is. */
        if (probe_version(u, 1000, other, sizeof other) == 0 && !version_at_least_2_10(other)) {
            set_err(err, errlen, "nats-server %s (at %s) is too old: broker needs 2.10 or later "
                    "(2.9 can renumber a replica's log after a crash)", other, u);
            rc = -EPROTONOSUPPORT;
        }
    }
    free(list);
    return rc;
}

/* ---- connection events (libnats's callback thread) ---- */

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    if (!natsConnection_IsClosed(nc)) /* libnats reports js_close's own disconnect too */
        log_warn("cluster: disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct js_engine *e = closure;
    atomic_fetch_add(&e->reconnects, 1);
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    log_info("cluster: reconnected to NATS at %s", url);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    struct js_engine *e = closure;
    pthread_mutex_lock(&e->lock);
    e->conn_closed = true;
    pthread_cond_broadcast(&e->closed);
    pthread_mutex_unlock(&e->lock);
}

/* Slow consumers, missed heartbeats of the feed (libnats then recreates it), failed consumer
 * re-creations during an outage: logged at most once per second, they repeat while it lasts. */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    struct js_engine *e = closure;
    int64_t now = now_ms();
    long long last = atomic_load(&e->last_async_error_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&e->last_async_error_ms, &last, now))
        return;
    log_warn("cluster: NATS: %s", natsStatus_GetText(err));
}

/* 250 ms after the first round over every server, doubling to 1 s, plus up to 100 ms of jitter
 * so that the nodes of a cluster do not reconnect in step. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    (void)nc;
    (void)closure;
    int64_t delay = 250;
    for (int i = 1; i < attempts && delay < 1000; i++)
        delay *= 2;
    return min64(delay, 1000) + nats_NowInNanoSeconds() % 101;
}

/* ---- setup: the stream and the bucket ---- */

static const char *storage_name(jsStorageType t) { return t == js_MemoryStorage ? "memory" : "file"; }

/* An existing stream must have what broker relies on: exactly our subjects (ids are its
 * sequences), our replica count, file storage, and limits retention (a work-queue or interest
 * stream would delete events). */
static int check_stream(struct js_engine *e, const jsStreamConfig *c, const char *subject,
                        char *err, size_t errlen)
{
    if (c->SubjectsLen != 1 || strcmp(c->Subjects[0], subject) != 0) {
        char got[512] = "";
        size_t n = 0;
        for (int i = 0; i < c->SubjectsLen && n < sizeof got; i++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%s", i ? ", " : "", c->Subjects[i]);
        set_err(err, errlen, "stream %s exists with subjects [%s], broker needs exactly [%s]",
                e->stream, got, subject);
        return -EINVAL;
    }
    if (c->Replicas != e->replicas) {
        set_err(err, errlen, "stream %s exists with replicas %" PRId64 ", broker is configured for %d",
                e->stream, c->Replicas, e->replicas);
        return -EINVAL;
    }
    if (c->Storage != js_FileStorage) {
        set_err(err, errlen, "stream %s exists with %s storage, broker needs file storage",
                e->stream, storage_name(c->Storage));
        return -EINVAL;
    }
    if (c->Retention != js_LimitsPolicy) {
        set_err(err, errlen, "stream %s exists with a %s retention policy, broker needs limits",
                e->stream, c->Retention == js_WorkQueuePolicy ? "work-queue" : "interest");
        return -EINVAL;
    }
    if (c->Duplicates != JS_DEDUP_WINDOW_NS)
        log_warn("cluster: stream %s has a de-duplication window of %" PRId64 " ms (broker creates "
                 "streams with 120000 ms: Idempotency-Key retries are de-duplicated within it)",
                 e->stream, c->Duplicates / 1000000);
    return 0;
}

/* Logs a transient setup failure and sleeps before the next try; false when the deadline is past. */
static bool setup_retry(const char *what, natsStatus s, jsErrCode jerr, int64_t deadline,
                        int64_t *backoff)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return false;
    log_warn("cluster: %s: %s (JetStream error %d); retrying", what, nats_reason(s), (int)jerr);
    sleep_ms(min64(*backoff, left));
    *backoff = min64(*backoff * 2, 1000);
    return true;
}

static int ensure_stream(struct js_engine *e, int64_t deadline, char *err, size_t errlen)
{
    char subject[SUBJECT_PREFIX_CAP + 2];
    snprintf(subject, sizeof subject, "%s.>", e->prefix);
    int64_t backoff = 250;
    for (int attempt = 0; attempt < 1000; attempt++) {
        jsOptions o;
        jsOptions_Init(&o);
        o.Wait = min64(deadline - now_ms(), JS_ATTEMPT_MS); /* an unanswered try is retried */
        if (o.Wait < 100)
            o.Wait = 100;
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(&si, e->js, e->stream, &o, &jerr);
        if (s == NATS_OK) {
            int rc = check_stream(e, si->Config, subject, err, errlen);
            jsStreamInfo_Destroy(si);
            return rc;
        }
        if (s == NATS_NOT_FOUND || jerr == 10059) {
            jsStreamConfig c;
            jsStreamConfig_Init(&c);
            const char *subjects[] = { subject };
            c.Name = e->stream;
            c.Subjects = subjects;
            c.SubjectsLen = 1;
            c.Storage = js_FileStorage;
            c.Retention = js_LimitsPolicy;
            c.Discard = js_DiscardOld;
            c.Replicas = e->replicas;
            c.Duplicates = JS_DEDUP_WINDOW_NS;
            jerr = 0;
            s = js_AddStream(&si, e->js, &c, &o, &jerr);
            jsStreamInfo_Destroy(si);
            if (s == NATS_OK) {
                log_info("cluster: created stream %s (subjects %s, %d replicas)", e->stream,
                         subject, e->replicas);
                return 0;
            }
            if (jerr == 10058) /* another node created it meanwhile: check it */
                continue;
        }
        if (!transient(s, jerr)) {
            set_err(err, errlen, "stream %s: %s (JetStream error %d)", e->stream, nats_reason(s),
                    (int)jerr);
            return -EIO;
        }
        if (!setup_retry("stream not ready", s, jerr, deadline, &backoff)) {
            set_err(err, errlen, "stream %s: JetStream did not answer in time: %s (error %d)",
                    e->stream, nats_reason(s), (int)jerr);
            return -ETIMEDOUT;
        }
    }
    set_err(err, errlen, "stream %s: gave up", e->stream);
    return -ETIMEDOUT;
}

/* The bucket's stream ("KV_<bucket>") must have our replica count, history 1 and file storage. */
static int check_bucket(struct js_engine *e, const jsStreamConfig *c, char *err, size_t errlen)
{
    if (c->Replicas != e->replicas) {
        set_err(err, errlen, "KV bucket %s exists with replicas %" PRId64 ", broker is configured "
                "for %d", e->bucket, c->Replicas, e->replicas);
        return -EINVAL;
    }
    if (c->MaxMsgsPerSubject != 1) {
        set_err(err, errlen, "KV bucket %s exists with history %" PRId64 ", broker needs 1",
                e->bucket, c->MaxMsgsPerSubject);
        return -EINVAL;
    }
    if (c->Storage != js_FileStorage) {
        set_err(err, errlen, "KV bucket %s exists with %s storage, broker needs file storage",
                e->bucket, storage_name(c->Storage));
        return -EINVAL;
    }
    return 0;
}

static int ensure_bucket(struct js_engine *e, int64_t deadline, char *err, size_t errlen)
{
    char stream[SUBJECT_STREAM_MAX + 8];
    snprintf(stream, sizeof stream, "KV_%s", e->bucket);
    int64_t backoff = 250;
    for (int attempt = 0; attempt < 1000; attempt++) {
        jsOptions o;
        jsOptions_Init(&o);
        o.Wait = min64(deadline - now_ms(), JS_ATTEMPT_MS); /* an unanswered try is retried */
        if (o.Wait < 100)
            o.Wait = 100;
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(&si, e->js, stream, &o, &jerr);
        if (s == NATS_OK) {
            int rc = check_bucket(e, si->Config, err, errlen);
            jsStreamInfo_Destroy(si);
            if (rc != 0)
                return rc;
            /* Bind the handle used by js_user_*: its context's Wait is one KV attempt. */
            s = js_KeyValue(&e->kv, e->js_kv, e->bucket);
            if (s == NATS_OK)
                return 0;
            jerr = 0;
        } else if (s == NATS_NOT_FOUND || jerr == 10059) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = e->bucket;
            kc.History = 1;
            kc.Replicas = e->replicas;
            kc.StorageType = js_FileStorage;
            kvStore *created = NULL;
            /* Created through the long-wait context; bound to js_kv on the next turn. */
            s = js_CreateKeyValue(&created, e->js, &kc);
            kvStore_Destroy(created);
            if (s == NATS_OK) {
                log_info("cluster: created KV bucket %s (%d replicas)", e->bucket, e->replicas);
                continue;
            }
        }
        if (!transient(s, jerr)) {
            set_err(err, errlen, "KV bucket %s: %s (JetStream error %d)", e->bucket,
                    nats_reason(s), (int)jerr);
            return -EIO;
        }
        if (!setup_retry("KV bucket not ready", s, jerr, deadline, &backoff)) {
            set_err(err, errlen, "KV bucket %s: JetStream did not answer in time: %s", e->bucket,
                    nats_reason(s));
            return -ETIMEDOUT;
        }
    }
    set_err(err, errlen, "KV bucket %s: gave up", e->bucket);
    return -ETIMEDOUT;
}

/* ---- publishes in flight: a table by token and a min-heap by next_ms (lock held) ---- */

static void heap_swap(struct js_engine *e, size_t a, size_t b)
{
    struct pending *t = e->heap[a];
    e->heap[a] = e->heap[b];
    e->heap[b] = t;
    e->heap[a]->heap_index = a;
    e->heap[b]->heap_index = b;
}

static void heap_fix(struct js_engine *e, size_t i)
{
    while (i > 0 && e->heap[(i - 1) / 2]->next_ms > e->heap[i]->next_ms) {
        heap_swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->heap_len && e->heap[l]->next_ms < e->heap[m]->next_ms)
            m = l;
        if (r < e->heap_len && e->heap[r]->next_ms < e->heap[m]->next_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

static int table_add(struct js_engine *e, struct pending *p)
{
    if (e->heap_len == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 256;
        struct pending **h = realloc(e->heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        e->heap = h;
        e->heap_cap = cap;
    }
    p->heap_index = e->heap_len;
    e->heap[e->heap_len++] = p;
    heap_fix(e, p->heap_index);
    struct pending **b = &e->buckets[p->token % JS_BUCKETS];
    p->next_in_bucket = *b;
    *b = p;
    e->in_flight++;
    e->in_flight_bytes += p->bytes;
    return 0;
}

static struct pending *table_find(struct js_engine *e, uint64_t token)
{
    for (struct pending *p = e->buckets[token % JS_BUCKETS]; p; p = p->next_in_bucket)
        if (p->token == token)
            return p;
    return NULL;
}

/* Takes p out of the table and the heap; the table's reference passes to the caller. */
static void table_remove(struct js_engine *e, struct pending *p)
{
    for (struct pending **b = &e->buckets[p->token % JS_BUCKETS]; *b; b = &(*b)->next_in_bucket) {
        if (*b == p) {
            *b = p->next_in_bucket;
            break;
        }
    }
    size_t i = p->heap_index, last = e->heap_len - 1;
    if (i != last) {
        heap_swap(e, i, last);
        e->heap_len--;
        heap_fix(e, i);
    } else {
        e->heap_len--;
    }
    e->in_flight--;
    e->in_flight_bytes -= p->bytes;
}

static void pending_unref(struct pending *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        natsMsg_Destroy(p->msg);
        free(p);
    }
}

/* Schedules the next attempt after the current backoff (lock held). */
static void schedule_retry(struct js_engine *e, struct pending *p, int64_t now)
{
    p->next_ms = min64(p->deadline_ms, now + p->backoff_ms);
    p->backoff_ms = min64(p->backoff_ms * 2, JS_BACKOFF_MAX_MS);
    heap_fix(e, p->heap_index);
    if (e->heap[0] == p)
        pthread_cond_signal(&e->wake);
}

/* ---- the answers: libnats's delivery thread of the reply subscription ---- */

/* What an answer means for its publish. */
struct answer {
    enum { ANSWER_DONE, ANSWER_RETRY } kind;
    int rc;
    uint64_t seq;
    bool duplicate;
    const char *why; /* of a retry, for the debug log */
};

static struct answer parse_answer(struct js_engine *e, natsMsg *msg)
{
    struct answer a = { .kind = ANSWER_DONE, .rc = -EIO };
    if (natsMsg_IsNoResponders(msg)) { /* no stream leader is listening: an election, an outage */
        a.kind = ANSWER_RETRY;
        a.why = "no responders";
        return a;
    }
    json_t *j = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    if (!j) {
        log_warn("cluster: unreadable publish acknowledgement (%d bytes)", natsMsg_GetDataLength(msg));
        return a;
    }
    json_t *error = json_object_get(j, "error");
    if (error) {
        json_int_t code = json_integer_value(json_object_get(error, "code"));
        json_int_t err_code = json_integer_value(json_object_get(error, "err_code"));
        const char *desc = json_string_value(json_object_get(error, "description"));
        if (code == 503 || err_code == 10008 || err_code == 10076) {
            a.kind = ANSWER_RETRY;
            a.why = desc ? desc : "unavailable";
        } else {
            a.rc = err_code == 10047 || err_code == 10023 ? -ENOSPC
                 : err_code == 10054                      ? -EMSGSIZE
                                                          : -EIO;
            log_warn("cluster: publish refused: %s (code %lld, JetStream error %lld)",
                     desc ? desc : "?", (long long)code, (long long)err_code);
        }
        json_decref(j);
        return a;
    }
    const char *stream = json_string_value(json_object_get(j, "stream"));
    json_t *seq = json_object_get(j, "seq");
    if (!stream || strcmp(stream, e->stream) != 0 || (seq && !json_is_integer(seq))) {
        log_warn("cluster: publish acknowledged by an unexpected stream %s", stream ? stream : "?");
    } else {
        a.rc = 0;
        a.seq = seq ? (uint64_t)json_integer_value(seq) : 0;
        a.duplicate = json_is_true(json_object_get(j, "duplicate"));
        /* A clustered nats-server 2.10 stages a msg id with sequence 0 when it proposes the
         * message and sets the real sequence only once the message is committed and applied.
         * "duplicate, seq 0" therefore means "an attempt with this id is in flight", NOT
         * "stored": without a quorum that attempt may never be committed (js_check sees this
         * answer to the resend after 1 s with 2 of 3 servers dead). Ask again until the server
         * names the sequence or the deadline passes. */
        if (a.seq == 0) {
            a.kind = ANSWER_RETRY;
            a.why = "duplicate, seq 0";
        }
    }
    json_decref(j);
    return a;
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    struct js_engine *e = closure;
    const char *subject = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subject, '.');
    char *end = NULL;
    uint64_t token = dot ? strtoull(dot + 1, &end, 10) : 0;
    if (!dot || end == dot + 1 || *end != '\0') {
        natsMsg_Destroy(msg);
        return;
    }
    struct answer a = parse_answer(e, msg);
    natsMsg_Destroy(msg);

    pthread_mutex_lock(&e->lock);
    struct pending *p = table_find(e, token);
    if (!p) { /* already answered by another attempt, expired, or failed at close */
        pthread_mutex_unlock(&e->lock);
        return;
    }
    if (a.kind == ANSWER_RETRY) {
        schedule_retry(e, p, now_ms());
        pthread_mutex_unlock(&e->lock);
        log_debug("cluster: publish %" PRIu64 ": %s; trying again", token, a.why);
        return;
    }
    table_remove(e, p);
    pthread_mutex_unlock(&e->lock);
    p->cb(p->arg, a.rc, a.seq, a.duplicate);
    pending_unref(p);
}

static void on_replies_complete(void *closure)
{
    struct js_engine *e = closure;
    pthread_mutex_lock(&e->lock);
    e->replies_done = true;
    pthread_cond_broadcast(&e->closed);
    pthread_mutex_unlock(&e->lock);
}

/* ---- the publisher thread: first sends, resends, deadlines ---- */

static void *publisher_main(void *arg)
{
    struct js_engine *e = arg;
    struct pending *send[JS_SEND_BATCH], *expired[JS_SEND_BATCH];
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        int64_t now = now_ms();
        size_t nsend = 0, nexpired = 0;
        bool up = connected(e);
        /* Each step moves the top's next_ms into the future or removes it: bounded by the batch. */
        while (e->heap_len > 0 && e->heap[0]->next_ms <= now && nsend < JS_SEND_BATCH &&
               nexpired < JS_SEND_BATCH) {
            struct pending *p = e->heap[0];
            if (now >= p->deadline_ms) {
                table_remove(e, p);
                expired[nexpired++] = p;
            } else if (up) {
                /* Silence until then means a lost attempt: send again. */
                p->next_ms = min64(p->deadline_ms, now + JS_ATTEMPT_MS);
                heap_fix(e, 0);
                atomic_fetch_add(&p->refs, 1);
                send[nsend++] = p;
            } else {
                /* Nothing to send to: wait, and let the reconnect buffer stay small. */
                p->next_ms = min64(p->deadline_ms, now + p->backoff_ms);
                p->backoff_ms = min64(p->backoff_ms * 2, JS_BACKOFF_MAX_MS);
                heap_fix(e, 0);
            }
        }
        if (nsend == 0 && nexpired == 0) {
            if (e->heap_len == 0) {
                pthread_cond_wait(&e->wake, &e->lock);
            } else {
                int64_t wait = e->heap[0]->next_ms - now;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += wait / 1000;
                ts.tv_nsec += (long)(wait % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&e->wake, &e->lock, &ts);
            }
            continue;
        }
        pthread_mutex_unlock(&e->lock);
        for (size_t i = 0; i < nexpired; i++) {
            expired[i]->cb(expired[i]->arg, -EAGAIN, 0, false);
            pending_unref(expired[i]);
        }
        for (size_t i = 0; i < nsend; i++) {
            struct pending *p = send[i];
            natsStatus s = natsConnection_PublishMsg(e->nc, p->msg);
            if (s != NATS_OK) {
                bool too_big = false;
                pthread_mutex_lock(&e->lock);
                if (table_find(e, p->token) == p) { /* not answered meanwhile */
                    if (s == NATS_MAX_PAYLOAD) {
                        table_remove(e, p);
                        too_big = true;
                    } else {
                        schedule_retry(e, p, now_ms());
                    }
                }
                pthread_mutex_unlock(&e->lock);
                if (too_big) { /* the server's max_payload is smaller than this event */
                    p->cb(p->arg, -EMSGSIZE, 0, false);
                    pending_unref(p); /* the table's reference */
                }
            }
            pending_unref(p); /* the send's reference */
        }
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* A header value must survive the NATS header syntax unchanged: printable ASCII, no edge spaces
 * (the server trims them; the HTTP layer has trimmed them already anyway). */
static bool header_value_ok(const char *v)
{
    size_t len = strlen(v);
    if (len == 0 || v[0] == ' ' || v[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return true;
}

int js_publish(struct js_engine *e, const char *event, size_t event_len, const char *data,
               size_t data_len, const char *user_id, const char *msg_id, js_publish_cb cb,
               void *arg)
{
    if (!e || !cb || !msg_id || !header_value_ok(msg_id) || (user_id && !header_value_ok(user_id)))
        return -EINVAL;
    if (!data && data_len > 0)
        return -EINVAL;
    char subject[SUBJECT_CAP];
    if (subject_encode(e->prefix, event, event_len, subject, sizeof subject, NULL) != 0)
        return -EINVAL;
    size_t headers = sizeof MSG_ID_HEADER + strlen(msg_id) + 4 +
                     (user_id ? sizeof USER_HEADER + strlen(user_id) + 4 : 0) + 16;
    int64_t max_payload = natsConnection_GetMaxPayload(e->nc);
    if (data_len > INT_MAX || (max_payload > 0 && data_len + headers > (uint64_t)max_payload))
        return -EMSGSIZE;

    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_lock(&e->lock);
    int rc = e->stopping ? -ESHUTDOWN
           : e->in_flight >= JS_MAX_IN_FLIGHT || e->in_flight_bytes + data_len > JS_MAX_IN_FLIGHT_BYTES
               ? -EAGAIN
               : 0;
    p->token = ++e->next_token;
    pthread_mutex_unlock(&e->lock);
    if (rc != 0) {
        free(p);
        return rc;
    }

    char reply[128];
    snprintf(reply, sizeof reply, "%s.%" PRIu64, e->inbox, p->token);
    natsStatus s = natsMsg_Create(&p->msg, subject, reply, data, (int)data_len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(p->msg, MSG_ID_HEADER, msg_id);
    if (s == NATS_OK && user_id)
        s = natsMsgHeader_Set(p->msg, USER_HEADER, user_id);
    if (s != NATS_OK) {
        natsMsg_Destroy(p->msg);
        free(p);
        return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
    }
    p->bytes = data_len + headers;
    p->cb = cb;
    p->arg = arg;
    atomic_init(&p->refs, 1);
    int64_t now = now_ms();
    p->deadline_ms = now + e->timeout_ms;
    p->next_ms = now;
    p->backoff_ms = JS_BACKOFF_FIRST_MS;

    pthread_mutex_lock(&e->lock);
    rc = e->stopping ? -ESHUTDOWN : table_add(e, p);
    if (rc == 0 && e->heap[0] == p)
        pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (rc != 0)
        pending_unref(p);
    return rc;
}

/* ---- the feed ---- */

int js_feed_open(struct js_engine *e, uint64_t after_seq, struct js_feed **out)
{
    struct js_feed *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->e = e;
    f->last_seq = after_seq;
    char subject[SUBJECT_PREFIX_CAP + 2];
    snprintf(subject, sizeof subject, "%s.>", e->prefix);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = e->stream;
    so.Ordered = true;
    so.Config.Heartbeat = JS_FEED_HEARTBEAT_NS;
    if (after_seq > 0) {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = after_seq + 1;
    } else {
        so.Config.DeliverPolicy = js_DeliverAll;
    }
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&f->sub, e->js, subject, NULL, &so, &jerr);
    if (s != NATS_OK) {
        log_warn("cluster: cannot open the feed after %" PRIu64 ": %s (JetStream error %d)",
                 after_seq, nats_reason(s), (int)jerr);
        free(f);
        return transient(s, jerr) || s == NATS_CONNECTION_CLOSED ? -EAGAIN : -EIO;
    }
    *out = f;
    return 0;
}

int js_feed_next(struct js_feed *f, int timeout_ms, struct js_event *ev)
{
    natsMsg_Destroy(f->msg);
    f->msg = NULL;
    memset(ev, 0, sizeof *ev);
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    /* Bounded in time, and in count for the case of a long run of already-seen messages. */
    for (int skipped = 0; skipped < 100000; skipped++) {
        int64_t left = deadline - now_ms();
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, f->sub, left > 0 ? left : 0);
        if (s == NATS_TIMEOUT)
            return -ETIMEDOUT;
        if (s == NATS_SLOW_CONSUMER || s == NATS_MISSED_HEARTBEAT || s == NATS_MISMATCH) {
            /* libnats noticed the gap and recreates the ordered consumer from the last sequence. */
            if (left <= 0)
                return -ETIMEDOUT;
            continue;
        }
        if (s != NATS_OK)
            return s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION ? -ESHUTDOWN : -EIO;
        jsMsgMetaData *meta = NULL;
        s = natsMsg_GetMetaData(&meta, m);
        if (s != NATS_OK) {
            natsMsg_Destroy(m);
            continue;
        }
        uint64_t seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        if (seq <= f->last_seq) { /* redelivered by a recreated consumer: seen already */
            natsMsg_Destroy(m);
            continue;
        }
        f->last_seq = seq;
        f->msg = m;
        ev->seq = seq;
        const char *subject = natsMsg_GetSubject(m);
        size_t name_len;
        if (subject_decode(f->e->prefix, subject, strlen(subject), f->name, sizeof f->name,
                           &name_len) != 0) {
            log_warn("cluster: stream sequence %" PRIu64 " has a subject broker did not write: %.64s",
                     seq, subject);
            return -EBADMSG;
        }
        const char *msg_id = NULL, *user_id = NULL;
        if (natsMsgHeader_Get(m, MSG_ID_HEADER, &msg_id) != NATS_OK || !msg_id)
            msg_id = "";
        if (natsMsgHeader_Get(m, USER_HEADER, &user_id) != NATS_OK || !user_id)
            user_id = "";
        ev->event = f->name;
        ev->event_len = name_len;
        ev->data = natsMsg_GetData(m);
        ev->data_len = (size_t)natsMsg_GetDataLength(m);
        if (!ev->data)
            ev->data = "";
        ev->msg_id = msg_id;
        ev->user_id = user_id;
        return 0;
    }
    return -ETIMEDOUT;
}

void js_feed_close(struct js_feed *f)
{
    if (!f)
        return;
    natsMsg_Destroy(f->msg);
    /* Unsubscribing deletes the consumer on the server now (a request, bounded by timeout_ms);
     * while disconnected that would only wait, and the server drops an ephemeral consumer
     * without interest by itself, so the subscription is just destroyed. */
    if (connected(f->e))
        natsSubscription_Unsubscribe(f->sub);
    natsSubscription_Destroy(f->sub);
    free(f);
}

/* ---- the users bucket ---- */

/* "name.<base64url(username)>": a valid KV key for any bytes, one key per name. */
static int user_key(const char *username, size_t len, char *key, size_t cap)
{
    if (!username || len == 0 || len > 4096)
        return -EINVAL;
    size_t plen = sizeof USER_KEY_PREFIX - 1;
    if (cap <= plen)
        return -ENOSPC;
    memcpy(key, USER_KEY_PREFIX, plen);
    return subject_token_encode(username, len, key + plen, cap - plen, NULL);
}

static bool kv_transient(natsStatus s)
{
    return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || s == NATS_CONNECTION_DISCONNECTED ||
           s == NATS_NO_SERVER;
}

/* Whether another attempt (at most `attempt` ms) still fits before the deadline after sleeping
 * the backoff: the blocking calls end by timeout_ms, an attempt is never cut short. */
static bool kv_may_retry(int64_t deadline, int64_t attempt, int64_t *backoff)
{
    if (now_ms() + *backoff + attempt > deadline)
        return false;
    sleep_ms(*backoff);
    *backoff = min64(*backoff * 2, JS_BACKOFF_MAX_MS);
    return true;
}

/* Reads the current value of key: 0 (*entry set), -ENOENT, -EAGAIN (transient), -EIO. */
static int kv_read(struct js_engine *e, const char *key, kvEntry **entry)
{
    if (!connected(e))
        return -EAGAIN;
    natsStatus s = kvStore_Get(entry, e->kv, key);
    if (s == NATS_OK)
        return 0;
    if (s == NATS_NOT_FOUND)
        return -ENOENT;
    if (kv_transient(s))
        return -EAGAIN;
    log_warn("cluster: KV get in %s: %s", e->bucket, nats_reason(s));
    return -EIO;
}

int js_user_create(struct js_engine *e, const char *username, size_t len, const char *record,
                   size_t record_len)
{
    char key[SUBJECT_TOKEN_CAP * 16 + 8];
    if (!e || user_key(username, len, key, sizeof key) != 0 || record_len > INT_MAX)
        return -EINVAL;
    int64_t deadline = now_ms() + e->timeout_ms, backoff = JS_BACKOFF_FIRST_MS;
    bool uncertain = false; /* an earlier attempt may have stored our record */
    for (int attempt = 0; attempt < 64; attempt++) {
        int rc = -EAGAIN;
        if (connected(e)) {
            natsStatus s = kvStore_Create(NULL, e->kv, key, record, (int)record_len);
            if (s == NATS_OK)
                return 0;
            if (kv_transient(s)) {
                uncertain = uncertain || s == NATS_TIMEOUT;
            } else {
                /* kvStore_Create reports a taken key as a plain error: look at what is there. */
                kvEntry *entry = NULL;
                rc = kv_read(e, key, &entry);
                if (rc == 0) {
                    bool ours = uncertain && (size_t)kvEntry_ValueLen(entry) == record_len &&
                                memcmp(kvEntry_Value(entry), record, record_len) == 0;
                    kvEntry_Destroy(entry);
                    return ours ? 0 : -EEXIST;
                }
                if (rc == -ENOENT) {
                    log_warn("cluster: KV create in %s: %s", e->bucket, nats_reason(s));
                    return -EIO;
                }
            }
        }
        /* kvStore_Create makes up to two requests and a taken name costs one more read. */
        if (rc == -EIO || !kv_may_retry(deadline, 3 * e->kv_attempt_ms, &backoff))
            return rc == -EIO ? -EIO : -EAGAIN;
    }
    return -EAGAIN;
}

int js_user_get(struct js_engine *e, const char *username, size_t len, char **record,
                size_t *record_len, uint64_t *revision)
{
    char key[SUBJECT_TOKEN_CAP * 16 + 8];
    if (!e || user_key(username, len, key, sizeof key) != 0)
        return -EINVAL;
    int64_t deadline = now_ms() + e->timeout_ms, backoff = JS_BACKOFF_FIRST_MS;
    for (int attempt = 0; attempt < 64; attempt++) {
        kvEntry *entry = NULL;
        int rc = kv_read(e, key, &entry);
        if (rc == 0) {
            size_t n = (size_t)kvEntry_ValueLen(entry);
            char *copy = malloc(n + 1);
            if (copy) {
                if (n)
                    memcpy(copy, kvEntry_Value(entry), n);
                copy[n] = '\0';
                *record = copy;
                *record_len = n;
                if (revision)
                    *revision = kvEntry_Revision(entry);
            }
            kvEntry_Destroy(entry);
            return copy ? 0 : -ENOMEM;
        }
        if (rc != -EAGAIN || !kv_may_retry(deadline, e->kv_attempt_ms, &backoff))
            return rc;
    }
    return -EAGAIN;
}

int js_user_update(struct js_engine *e, const char *username, size_t len, const char *record,
                   size_t record_len, uint64_t revision)
{
    char key[SUBJECT_TOKEN_CAP * 16 + 8];
    if (!e || user_key(username, len, key, sizeof key) != 0 || record_len > INT_MAX)
        return -EINVAL;
    int64_t deadline = now_ms() + e->timeout_ms, backoff = JS_BACKOFF_FIRST_MS;
    for (int attempt = 0; attempt < 64; attempt++) {
        if (connected(e)) {
            uint64_t rev = 0;
            natsStatus s = kvStore_Update(&rev, e->kv, key, record, (int)record_len, revision);
            if (s == NATS_OK)
                return 0;
            if (!kv_transient(s)) {
                /* A wrong last sequence is a plain error too: whoever wrote since, the caller reads
                 * again and re-applies its change. (A timed-out attempt that was stored after all
                 * also reads as moved on: the re-applied change then finds itself done.) */
                log_debug("cluster: KV update in %s refused: %s", e->bucket, nats_reason(s));
                return -ESTALE;
            }
        }
        if (!kv_may_retry(deadline, e->kv_attempt_ms, &backoff))
            return -EAGAIN;
    }
    return -EAGAIN;
}

struct js_user_watch {
    kvWatcher *w;
};

int js_user_watch_start(struct js_engine *e, struct js_user_watch **out)
{
    struct js_user_watch *uw = calloc(1, sizeof *uw);
    if (!uw)
        return -ENOMEM;
    kvWatchOptions o;
    kvWatchOptions_Init(&o);
    o.Timeout = e->timeout_ms;
    natsStatus s = kvStore_Watch(&uw->w, e->kv, USER_KEY_PREFIX ">", &o);
    if (s != NATS_OK) {
        log_error("cluster: cannot watch the users bucket %s: %s", e->bucket, nats_reason(s));
        free(uw);
        return kv_transient(s) ? -EAGAIN : -EIO;
    }
    *out = uw;
    return 0;
}

int js_user_watch_next(struct js_user_watch *uw, int timeout_ms, char *username, size_t cap,
                       size_t *username_len, char **record, size_t *record_len)
{
    kvEntry *entry = NULL;
    natsStatus s = kvWatcher_Next(&entry, uw->w, timeout_ms);
    if (s == NATS_TIMEOUT)
        return -ETIMEDOUT;
    if (s == NATS_ILLEGAL_STATE)
        return -ESHUTDOWN;
    if (s != NATS_OK)
        return -EIO;
    if (!entry)
        return 0; /* the current values are all delivered */
    const char *key = kvEntry_Key(entry);
    size_t plen = sizeof USER_KEY_PREFIX - 1;
    int rc = 1;
    if (kvEntry_Operation(entry) != kvOp_Put || strncmp(key, USER_KEY_PREFIX, plen) != 0 ||
        subject_token_decode(key + plen, strlen(key + plen), username, cap - 1, username_len) != 0) {
        rc = -EAGAIN; /* not a user record (a delete or a stranger key): skip it */
    } else {
        username[*username_len] = '\0';
        size_t n = (size_t)kvEntry_ValueLen(entry);
        char *copy = malloc(n + 1);
        if (!copy) {
            rc = -ENOMEM;
        } else {
            if (n)
                memcpy(copy, kvEntry_Value(entry), n);
            copy[n] = '\0';
            *record = copy;
            *record_len = n;
        }
    }
    kvEntry_Destroy(entry);
    return rc;
}

void js_user_watch_stop(struct js_user_watch *uw)
{
    if (uw)
        kvWatcher_Stop(uw->w);
}

void js_user_watch_free(struct js_user_watch *uw)
{
    if (!uw)
        return;
    kvWatcher_Destroy(uw->w);
    free(uw);
}

/* ---- state ---- */

/* Whether the leader that answered still hears from a quorum. A leader that lost its followers
 * answers stream info for several seconds before it steps down, so an answer alone proves
 * nothing; its view of its peers does: a peer counts while it is current, not offline and was
 * heard from within the last JS_PEER_SILENCE_NS (raft heartbeats come every second). */
#define JS_PEER_SILENCE_NS 3000000000LL
static bool has_quorum(const jsStreamInfo *si, int replicas)
{
    if (replicas <= 1 || !si->Cluster)
        return true;
    int alive = 1; /* the leader */
    for (int i = 0; i < si->Cluster->ReplicasLen; i++) {
        const jsPeerInfo *p = si->Cluster->Replicas[i];
        log_debug("cluster: stream peer %s: current %d offline %d active %" PRId64 " ms", p->Name,
                  p->Current, p->Offline, p->Active / 1000000);
        if (p->Current && !p->Offline && p->Active < JS_PEER_SILENCE_NS)
            alive++;
    }
    return alive > replicas / 2;
}

static int stream_info(struct js_engine *e, int wait_ms, bool need_quorum, uint64_t *last_seq)
{
    if (!connected(e))
        return -EAGAIN;
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = wait_ms;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, e->js, e->stream, &o, &jerr);
    if (s != NATS_OK)
        return transient(s, jerr) ? -EAGAIN : -EIO;
    int rc = 0;
    if (need_quorum && !has_quorum(si, e->replicas))
        rc = -EAGAIN;
    if (last_seq)
        *last_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return rc;
}

int js_last_seq(struct js_engine *e, uint64_t *seq)
{
    return stream_info(e, e->timeout_ms, false, seq);
}

int js_ping(struct js_engine *e)
{
    return stream_info(e, e->timeout_ms < JS_PING_MS ? e->timeout_ms : JS_PING_MS, true, NULL);
}

enum js_state js_state(struct js_engine *e)
{
    switch (natsConnection_Status(e->nc)) {
    case NATS_CONN_STATUS_CONNECTED:
        return JS_CONNECTED;
    case NATS_CONN_STATUS_CLOSED:
        return JS_CLOSED;
    default:
        return JS_RECONNECTING;
    }
}

uint64_t js_reconnects(struct js_engine *e) { return atomic_load(&e->reconnects); }

/* ---- open and close ---- */

static bool bucket_name_ok(const char *b)
{
    size_t len = b ? strlen(b) : 0;
    if (len == 0 || len > SUBJECT_STREAM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int make_options(struct js_engine *e, const struct js_config *cfg, natsOptions **out,
                        char *err, size_t errlen)
{
    char *list = strdup(cfg->urls);
    const char *servers[64];
    int count = 0;
    if (!list)
        return -ENOMEM;
    char *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u && count < 64; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        if (*u)
            servers[count++] = u;
    }
    natsOptions *o = NULL;
    natsStatus s = count == 0 ? NATS_INVALID_ARG : natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, servers, count);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, "broker");
    /* libnats 3.4 takes no TLS hint from a tls:// URL: without this it would refuse the server
     * ("secure connection required"). The server's certificate is checked against the system's
     * CA store (SSL_CTX_set_default_verify_paths) and its host name. */
    if (s == NATS_OK && strstr(cfg->urls, "tls://"))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && cfg->creds)
        s = natsOptions_SetUserCredentialsFromFiles(o, cfg->creds, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(o, reconnect_delay, NULL);
    if (s == NATS_OK) /* connect attempt per server */
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK) /* a silent server (a partition, not a crash) is noticed in ~4-6 s */
        s = natsOptions_SetPingInterval(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(o, 2);
    if (s == NATS_OK) /* requests in flight at a disconnect fail now rather than at their timeout */
        s = natsOptions_SetFailRequestsOnDisconnect(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, e);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, e);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, e);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_async_error, e);
    free(list);
    if (s != NATS_OK) {
        set_err(err, errlen, "NATS options (--cluster=%s): %s", cfg->urls,
                count == 0 ? "no URL" : nats_reason(s));
        natsOptions_Destroy(o);
        return -EINVAL;
    }
    *out = o;
    return 0;
}

static int connect_with_retries(struct js_engine *e, natsOptions *o, const char *urls,
                                int64_t deadline, char *err, size_t errlen)
{
    int64_t backoff = 250;
    for (int attempt = 0; attempt < 1000; attempt++) {
        natsStatus s = natsConnection_Connect(&e->nc, o);
        if (s == NATS_OK)
            return 0;
        e->nc = NULL;
        int64_t left = deadline - now_ms();
        if (s != NATS_NO_SERVER && s != NATS_TIMEOUT) {
            set_err(err, errlen, "cannot connect to %s: %s", urls, nats_reason(s));
            return -EIO;
        }
        if (left <= 0) {
            set_err(err, errlen, "cannot connect to %s: %s", urls, nats_reason(s));
            return -ETIMEDOUT;
        }
        log_warn("cluster: cannot connect to %s: %s; retrying", urls, nats_reason(s));
        sleep_ms(min64(backoff, left));
        backoff = min64(backoff * 2, 1000);
    }
    set_err(err, errlen, "cannot connect to %s", urls);
    return -ETIMEDOUT;
}

/* Everything js_open may have made, in reverse; also js_close's last step. */
static void engine_free(struct js_engine *e)
{
    kvStore_Destroy(e->kv);
    jsCtx_Destroy(e->js_kv);
    jsCtx_Destroy(e->js);
    if (e->replies) {
        natsSubscription_Unsubscribe(e->replies);
        /* The delivery thread may be inside on_reply: wait until it let go of e. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += JS_CLOSE_WAIT_MS / 1000;
        pthread_mutex_lock(&e->lock);
        while (!e->replies_done)
            if (pthread_cond_timedwait(&e->closed, &e->lock, &ts) != 0)
                break;
        pthread_mutex_unlock(&e->lock);
        natsSubscription_Destroy(e->replies);
    }
    if (e->nc) {
        natsConnection_Close(e->nc);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += JS_CLOSE_WAIT_MS / 1000;
        pthread_mutex_lock(&e->lock);
        while (!e->conn_closed)
            if (pthread_cond_timedwait(&e->closed, &e->lock, &ts) != 0)
                break;
        pthread_mutex_unlock(&e->lock);
        natsConnection_Destroy(e->nc);
    }
    natsInbox_Destroy(e->inbox);
    free(e->heap);
    free(e->stream);
    free(e->bucket);
    pthread_cond_destroy(&e->closed);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

static int engine_new(const struct js_config *cfg, struct js_engine **out, char *err, size_t errlen)
{
    struct js_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int failed = pthread_mutex_init(&e->lock, NULL);
    failed |= pthread_cond_init(&e->wake, &ca);
    failed |= pthread_cond_init(&e->closed, &ca);
    pthread_condattr_destroy(&ca);
    e->stream = strdup(cfg->stream);
    e->bucket = strdup(cfg->users_bucket);
    if (failed || !e->stream || !e->bucket) {
        free(e->stream);
        free(e->bucket);
        free(e);
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    e->replicas = cfg->replicas;
    e->timeout_ms = cfg->timeout_ms;
    /* A create costs up to three requests; a sixth leaves room for a retry inside timeout_ms. */
    e->kv_attempt_ms = cfg->timeout_ms / 6 < JS_ATTEMPT_MS ? cfg->timeout_ms / 6 : JS_ATTEMPT_MS;
    atomic_init(&e->reconnects, 0);
    atomic_init(&e->last_async_error_ms, 0);
    subject_prefix(cfg->stream, e->prefix, sizeof e->prefix);
    *out = e;
    return 0;
}

int js_open(const struct js_config *cfg, struct js_engine **out, char *err, size_t errlen)
{
    char prefix[SUBJECT_PREFIX_CAP];
    if (!cfg || !out || !cfg->urls || !cfg->stream || !cfg->users_bucket) {
        set_err(err, errlen, "incomplete cluster configuration");
        return -EINVAL;
    }
    if (subject_prefix(cfg->stream, prefix, sizeof prefix) != 0) {
        set_err(err, errlen, "bad stream name %.80s: 1-%d of A-Z a-z 0-9 _ -", cfg->stream,
                SUBJECT_STREAM_MAX);
        return -EINVAL;
    }
    if (!bucket_name_ok(cfg->users_bucket)) {
        set_err(err, errlen, "bad KV bucket name %.80s: 1-%d of A-Z a-z 0-9 _ -",
                cfg->users_bucket, SUBJECT_STREAM_MAX);
        return -EINVAL;
    }
    if (cfg->replicas < 1 || cfg->replicas > 5 || cfg->timeout_ms < 100) {
        set_err(err, errlen, "replicas must be 1-5 and the timeout at least 100 ms");
        return -EINVAL;
    }
    int64_t deadline = now_ms() + (cfg->setup_timeout_ms > 0 ? cfg->setup_timeout_ms
                                                            : JS_SETUP_DEFAULT_MS);
    struct js_engine *e;
    int rc = engine_new(cfg, &e, err, errlen);
    if (rc != 0)
        return rc;

    natsOptions *o = NULL;
    rc = make_options(e, cfg, &o, err, errlen);
    if (rc == 0) {
        rc = connect_with_retries(e, o, cfg->urls, deadline, err, errlen);
        natsOptions_Destroy(o); /* the connection keeps its own copy */
    }
    if (rc == 0)
        rc = check_versions(e, cfg->urls, deadline, err, errlen);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg->timeout_ms;
    if (rc == 0 && natsConnection_JetStream(&e->js, e->nc, &jo) != NATS_OK)
        rc = -ENOMEM;
    jo.Wait = e->kv_attempt_ms;
    if (rc == 0 && natsConnection_JetStream(&e->js_kv, e->nc, &jo) != NATS_OK)
        rc = -ENOMEM;
    if (rc == 0)
        rc = ensure_stream(e, deadline, err, errlen);
    if (rc == 0)
        rc = ensure_bucket(e, deadline, err, errlen);
    if (rc == 0 && natsInbox_Create(&e->inbox) != NATS_OK)
        rc = -ENOMEM;
    if (rc == 0) {
        char subject[128];
        snprintf(subject, sizeof subject, "%s.*", e->inbox);
        natsStatus s = natsConnection_Subscribe(&e->replies, e->nc, subject, on_reply, e);
        if (s == NATS_OK)
            s = natsSubscription_SetOnCompleteCB(e->replies, on_replies_complete, e);
        /* Acknowledgements are small and must never be dropped as a slow consumer. */
        if (s == NATS_OK)
            s = natsSubscription_SetPendingLimits(e->replies, -1, 256 * 1024 * 1024);
        if (s != NATS_OK) {
            set_err(err, errlen, "cannot subscribe to publish acknowledgements: %s", nats_reason(s));
            rc = -EIO;
        }
    }
    if (rc == 0) {
        if (pthread_create(&e->publisher, NULL, publisher_main, e) != 0) {
            set_err(err, errlen, "cannot start the publisher thread");
            rc = -EAGAIN;
        } else {
            e->publisher_started = true;
        }
    }
    if (rc != 0) {
        if (err && errlen && !err[0])
            set_err(err, errlen, "%s", strerror(-rc));
        engine_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void js_library_close(void)
{
    if (nats_CloseAndWait(5000) != NATS_OK)
        log_warn("cluster: libnats did not finish its threads in 5 s");
}

void js_close(struct js_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (e->publisher_started)
        pthread_join(e->publisher, NULL);
    /* What is still pending fails here, on this thread. An answer racing with this completes its
     * publish instead (whoever takes it out of the table first); engine_free then waits until
     * the reply subscription's thread is out of on_reply before anything is freed. */
    for (int round = 0; round < JS_MAX_IN_FLIGHT + 1; round++) {
        pthread_mutex_lock(&e->lock);
        struct pending *p = e->heap_len > 0 ? e->heap[0] : NULL;
        if (p)
            table_remove(e, p);
        pthread_mutex_unlock(&e->lock);
        if (!p)
            break;
        p->cb(p->arg, -ESHUTDOWN, 0, false);
        pending_unref(p);
    }
    engine_free(e);
}
