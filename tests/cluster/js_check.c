/* js_check: cluster/jetstream against real nats-server processes on 127.0.0.1 (meson suite
 * 'cluster'). It starts its own servers, one and then three in a cluster, and checks:
 *   - stream and bucket creation, re-opening, and each kind of conflicting configuration;
 *   - 1000 events with awkward names (dots, spaces, '*', '>', CRLF, UTF-8, 255 bytes) published at
 *     once and read back through the feed: contiguous sequences, exact names, data, user ids;
 *   - a retried msg id is stored once (sequentially and racing), and what the acks said;
 *   - the users bucket: create, create again (-EEXIST), get, unknown user;
 *   - nats-server 2.9 refused with its version in the message (NATS_SERVER_OLD);
 *   - with 2 of 3 servers killed: publish gives -EAGAIN within timeout_ms, ping fails fast, and
 *     after a restart publishing and the feed continue.
 * NATS_SERVER is the nats-server >= 2.10 binary (scripts/nats-server.sh); without it the test is
 * skipped (exit 77). NATS_SERVER_OLD is Debian 12's 2.9 (scripts/nats-server.sh --old); without it
 * that one check is skipped. Every server is stopped by pid, also when a check fails or the test is
 * killed; the temporary directory is removed unless a check failed. Timings go to stdout; with
 * JS_CHECK_DEBUG set, the engine's debug log during the outage (why each publish was retried,
 * js_ping's view of the stream's peers) and the idle pings go to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <nats/nats.h>

#include "cluster/jetstream.h"
#include "cluster/subject.h"
#include "log.h"

extern char **environ;

#define EVENTS 1000
#define PAIRS 200
#define TIMEOUT_MS 3000

/* ---- servers ---- */

struct server {
    pid_t pid;
    int port, cport, mport;
    char name[16];
};

struct cluster {
    const char *binary;
    int n;
    struct server s[3];
    char urls[256];
};

static char tmp_dir[] = "/tmp/js-check-XXXXXX";
/* Every child alive, for the exit and signal paths (async-signal-safe: a fixed array). */
static volatile pid_t children[16];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void kill_children(void)
{
    for (size_t i = 0; i < sizeof children / sizeof *children; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

static void on_signal(int sig)
{
    for (size_t i = 0; i < sizeof children / sizeof *children; i++)
        if (children[i] > 0)
            kill(children[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void track(pid_t pid, bool add)
{
    for (size_t i = 0; i < sizeof children / sizeof *children; i++) {
        if (add ? children[i] == 0 : children[i] == pid) {
            children[i] = add ? pid : 0;
            return;
        }
    }
}

static void fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail(int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "FAIL (js_check.c:%d): ", line);
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n(server logs kept in %s)\n", tmp_dir);
    va_end(ap);
    fflush(stdout);
    kill_children();
    exit(1);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__LINE__, __VA_ARGS__);                                                           \
    } while (0)

static int checks;
#define OK(cond, ...)                                                                              \
    do {                                                                                           \
        CHECK(cond, __VA_ARGS__);                                                                  \
        checks++;                                                                                  \
    } while (0)

/* A port in [20000, 32000): below the ephemeral range, so no outgoing connection takes it
 * between our check and the server's bind. */
static int free_port(const int *avoid, int navoid)
{
    for (int tries = 0; tries < 200; tries++) {
        int port = 20000 + rand() % 12000;
        bool clash = false;
        for (int i = 0; i < navoid; i++)
            clash = clash || avoid[i] == port;
        if (clash)
            continue;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
        if (rc == 0)
            return port;
    }
    fail(__LINE__, "no free port");
}

static void start_server(struct cluster *c, int i)
{
    struct server *s = &c->s[i];
    char port[8], mport[8], store[300], log[300], clusterurl[64], routes[200] = "";
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(mport, sizeof mport, "%d", s->mport);
    snprintf(store, sizeof store, "%s/%s", tmp_dir, s->name);
    snprintf(log, sizeof log, "%s/%s.log", tmp_dir, s->name);
    snprintf(clusterurl, sizeof clusterurl, "nats://127.0.0.1:%d", s->cport);
    for (int j = 0; j < c->n; j++) {
        if (j == i)
            continue;
        size_t n = strlen(routes);
        snprintf(routes + n, sizeof routes - n, "%snats://127.0.0.1:%d", n ? "," : "", c->s[j].cport);
    }
    const char *argv[32] = { c->binary, "-a", "127.0.0.1", "-p", port, "-n", s->name, "-m", mport,
                             "-js", "-sd", store };
    int argc = 12;
    if (c->n > 1) {
        argv[argc++] = "--cluster";
        argv[argc++] = clusterurl;
        argv[argc++] = "--cluster_name";
        argv[argc++] = "js_check";
        argv[argc++] = "--routes";
        argv[argc++] = routes;
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, c->binary, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    CHECK(rc == 0, "cannot start %s: %s", c->binary, strerror(rc));
    s->pid = pid;
    track(pid, true);
}

/* Stops one server by its pid: sig, then SIGKILL after 10 s. */
static void stop_server(struct server *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    int64_t deadline = now_ms() + 10000;
    while (waitpid(s->pid, NULL, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            break;
        }
        sleep_ms(20);
    }
    track(s->pid, false);
    s->pid = 0;
}

/* The status of GET path on the monitoring port, or -1. */
static int http_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { .tv_sec = 1 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char req[256], resp[64] = "";
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n && read(fd, resp, sizeof resp - 1) > 12)
            sscanf(resp, "HTTP/%*s %d", &status);
    }
    close(fd);
    return status;
}

static void wait_ready(struct cluster *c, int i, const char *path)
{
    struct server *s = &c->s[i];
    int64_t deadline = now_ms() + 20000;
    while (http_status(s->mport, path) != 200) {
        CHECK(waitpid(s->pid, NULL, WNOHANG) == 0, "%s exited at start (see %s/%s.log)", s->name,
              tmp_dir, s->name);
        CHECK(now_ms() < deadline, "%s not ready in 20 s", s->name);
        sleep_ms(50);
    }
}

/* Starts the servers one after the other, each once the previous one is ready (ready_path on its
 * monitoring port): three servers bootstrapping at the same instant sometimes never elect a meta
 * leader (about 1 start in 25 here with nats-server 2.10.27). */
static void start_cluster(struct cluster *c, const char *binary, int n, const char *tag,
                          const char *ready_path)
{
    memset(c, 0, sizeof *c);
    c->binary = binary;
    c->n = n;
    int used[9], nused = 0;
    for (int i = 0; i < n; i++) {
        struct server *s = &c->s[i];
        snprintf(s->name, sizeof s->name, "%s%d", tag, i);
        int *ports[] = { &s->port, &s->cport, &s->mport };
        for (int k = 0; k < 3; k++) {
            *ports[k] = free_port(used, nused);
            used[nused++] = *ports[k];
        }
    }
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(c->urls + len, sizeof c->urls - len, "%snats://127.0.0.1:%d",
                                i ? "," : "", c->s[i].port);
    for (int i = 0; i < n; i++) {
        start_server(c, i);
        wait_ready(c, i, ready_path);
    }
}

static void stop_cluster(struct cluster *c)
{
    for (int i = 0; i < c->n; i++)
        stop_server(&c->s[i], SIGTERM);
}

/* ---- publishing and its results ---- */

struct waiter {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int done;
};

struct result {
    struct waiter *w;
    int rc;
    uint64_t seq;
    bool duplicate;
    bool done;
    int64_t at_ms;
};

static void on_published(void *arg, int rc, uint64_t seq, bool duplicate)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->w->m);
    CHECK(!r->done, "a publish was answered twice");
    r->rc = rc;
    r->seq = seq;
    r->duplicate = duplicate;
    r->done = true;
    r->at_ms = now_ms();
    r->w->done++;
    pthread_cond_broadcast(&r->w->cv);
    pthread_mutex_unlock(&r->w->m);
}

static void waiter_init(struct waiter *w)
{
    pthread_mutex_init(&w->m, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = 0;
}

static bool wait_done(struct waiter *w, int n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000 + 1;
    pthread_mutex_lock(&w->m);
    while (w->done < n)
        if (pthread_cond_timedwait(&w->cv, &w->m, &ts) != 0)
            break;
    bool all = w->done >= n;
    pthread_mutex_unlock(&w->m);
    return all;
}

/* The i-th awkward event of a run. */
struct sample {
    char name[SUBJECT_NAME_MAX];
    size_t name_len;
    char data[128];
    char user[32];
    char msg_id[48];
};

static void make_sample(struct sample *s, const char *run, int i)
{
    char *n = s->name;
    int len;
    switch (i % 10) {
    case 0: len = snprintf(n, sizeof s->name, "dots.%d.a.b", i); break;
    case 1: len = snprintf(n, sizeof s->name, "with space %d ", i); break;
    case 2: len = snprintf(n, sizeof s->name, "star*%d", i); break;
    case 3: len = snprintf(n, sizeof s->name, "gt>%d", i); break;
    case 4: len = snprintf(n, sizeof s->name, "crlf\r\n%d", i); break;
    case 5: len = snprintf(n, sizeof s->name, "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x9a\x80 %d", i); break;
    case 6: /* exactly 255 bytes of UTF-8 */
        len = snprintf(n, sizeof s->name, "long%d-", i);
        while (len + 2 <= SUBJECT_NAME_MAX) {
            n[len++] = '\xc3';
            n[len++] = '\xa9';
        }
        while (len < SUBJECT_NAME_MAX)
            n[len++] = 'x';
        break;
    case 7: len = snprintf(n, sizeof s->name, "*"); break;
    case 8: len = snprintf(n, sizeof s->name, ">"); break;
    default: len = snprintf(n, sizeof s->name, "a.*.>.%d", i); break;
    }
    s->name_len = (size_t)len;
    snprintf(s->data, sizeof s->data, "{\"i\":%d,\"text\":\"line\\nbreak \\u00e9\",\"run\":\"%s\"}", i, run);
    snprintf(s->user, sizeof s->user, "user-%d", i % 7);
    snprintf(s->msg_id, sizeof s->msg_id, "%s-%d", run, i);
}

static void publish_sample(struct js_engine *e, const struct sample *s, struct result *r)
{
    int rc = js_publish(e, s->name, s->name_len, s->data, strlen(s->data), s->user, s->msg_id,
                        on_published, r);
    CHECK(rc == 0, "js_publish %s: %d", s->msg_id, rc);
}

/* Reads n events from the feed: sequences first_seq..first_seq+n-1, each matching the sample its
 * msg id names, and (when acks are given) the sequence its ack reported. */
static void read_feed(struct js_feed *f, uint64_t first_seq, int n, const char *run,
                      const struct sample *samples, const struct result *acks, int nsamples)
{
    for (int k = 0; k < n; k++) {
        struct js_event ev;
        int rc = js_feed_next(f, 10000, &ev);
        CHECK(rc == 0, "feed: event %d of %d: %d", k + 1, n, rc);
        CHECK(ev.seq == first_seq + (uint64_t)k, "feed: sequence %" PRIu64 ", expected %" PRIu64,
              ev.seq, first_seq + (uint64_t)k);
        size_t rl = strlen(run);
        CHECK(strncmp(ev.msg_id, run, rl) == 0 && ev.msg_id[rl] == '-', "feed: msg id %s", ev.msg_id);
        int i = atoi(ev.msg_id + rl + 1);
        CHECK(i >= 0 && i < nsamples, "feed: msg id %s", ev.msg_id);
        const struct sample *s = &samples[i];
        CHECK(ev.event_len == s->name_len && memcmp(ev.event, s->name, s->name_len) == 0,
              "feed: seq %" PRIu64 " name differs", ev.seq);
        CHECK(ev.data_len == strlen(s->data) && memcmp(ev.data, s->data, ev.data_len) == 0,
              "feed: seq %" PRIu64 " data differs", ev.seq);
        CHECK(strcmp(ev.user_id, s->user) == 0, "feed: seq %" PRIu64 " user %s", ev.seq, ev.user_id);
        if (acks && !acks[i].duplicate)
            CHECK(acks[i].seq == ev.seq, "feed: %s at %" PRIu64 " but acked as %" PRIu64,
                  ev.msg_id, ev.seq, acks[i].seq);
    }
}

static struct js_config config(const struct cluster *c, int replicas)
{
    return (struct js_config){ .urls = c->urls, .stream = "BROKER_EVENTS",
                               .users_bucket = "BROKER_USERS", .replicas = replicas,
                               .timeout_ms = TIMEOUT_MS, .setup_timeout_ms = 30000 };
}

/* ---- the checks shared by the single server and the cluster ---- */

static void check_events(struct js_engine *e, const char *label)
{
    static struct sample samples[EVENTS];
    static struct result acks[EVENTS];
    struct waiter w;
    waiter_init(&w);
    for (int i = 0; i < EVENTS; i++) {
        make_sample(&samples[i], "ev", i);
        acks[i] = (struct result){ .w = &w };
    }
    int64_t t0 = now_ms();
    for (int i = 0; i < EVENTS; i++)
        publish_sample(e, &samples[i], &acks[i]);
    OK(wait_done(&w, EVENTS, 30000), "%s: not every publish was answered", label);
    int64_t t1 = now_ms();
    bool seen[EVENTS + 1] = { false };
    for (int i = 0; i < EVENTS; i++) {
        CHECK(acks[i].rc == 0, "%s: publish %d: rc %d", label, i, acks[i].rc);
        CHECK(!acks[i].duplicate, "%s: publish %d: duplicate", label, i);
        CHECK(acks[i].seq >= 1 && acks[i].seq <= EVENTS && !seen[acks[i].seq],
              "%s: publish %d: seq %" PRIu64, label, i, acks[i].seq);
        seen[acks[i].seq] = true;
    }
    checks++;
    printf("timing %s: %d publishes in flight at once, all acked in %" PRId64 " ms (%.0f/s)\n",
           label, EVENTS, t1 - t0, EVENTS * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1));

    struct js_feed *f;
    OK(js_feed_open(e, 0, &f) == 0, "%s: feed", label);
    t0 = now_ms();
    read_feed(f, 1, EVENTS, "ev", samples, acks, EVENTS);
    checks++;
    printf("timing %s: feed read %d events in %" PRId64 " ms\n", label, EVENTS, now_ms() - t0);

    /* The same msg id again, after the first was stored: JetStream keeps one. */
    struct waiter w2;
    waiter_init(&w2);
    struct result again = { .w = &w2 };
    publish_sample(e, &samples[0], &again);
    OK(wait_done(&w2, 1, TIMEOUT_MS), "%s: retry not answered", label);
    OK(again.rc == 0 && again.duplicate, "%s: retry rc %d duplicate %d", label, again.rc,
       again.duplicate);
    printf("check %s: a sequential retry of a stored msg id: duplicate, seq %" PRIu64
           " (the original is %" PRIu64 ")\n", label, again.seq, acks[0].seq);
    OK(again.seq == 0 || again.seq == acks[0].seq, "%s: retry seq %" PRIu64, label, again.seq);

    /* Racing retries: each msg id published twice at once. */
    static struct sample pairs[PAIRS];
    static struct result pair_acks[2 * PAIRS];
    struct waiter w3;
    waiter_init(&w3);
    for (int i = 0; i < PAIRS; i++) {
        make_sample(&pairs[i], "pair", i);
        pair_acks[2 * i] = (struct result){ .w = &w3 };
        pair_acks[2 * i + 1] = (struct result){ .w = &w3 };
        publish_sample(e, &pairs[i], &pair_acks[2 * i]);
        publish_sample(e, &pairs[i], &pair_acks[2 * i + 1]);
    }
    OK(wait_done(&w3, 2 * PAIRS, 30000), "%s: pairs not answered", label);
    int stored = 0, dup_seq = 0, dup_zero = 0;
    for (int i = 0; i < 2 * PAIRS; i++) {
        CHECK(pair_acks[i].rc == 0, "%s: pair publish rc %d", label, pair_acks[i].rc);
        if (!pair_acks[i].duplicate)
            stored++;
        else if (pair_acks[i].seq == 0)
            dup_zero++;
        else
            dup_seq++;
    }
    printf("check %s: %d msg ids published twice at once: %d stored, %d duplicates with the seq, "
           "%d duplicates with seq 0\n", label, PAIRS, stored, dup_seq, dup_zero);
    OK(stored == PAIRS, "%s: %d of the pairs stored, expected %d", label, stored, PAIRS);
    /* "duplicate, seq 0" is never passed on: both copies name the one stored sequence. */
    OK(dup_zero == 0, "%s: %d duplicates reported with seq 0", label, dup_zero);
    for (int i = 0; i < PAIRS; i++)
        CHECK(pair_acks[2 * i].seq == pair_acks[2 * i + 1].seq, "%s: pair %d acked as %" PRIu64
              " and %" PRIu64, label, i, pair_acks[2 * i].seq, pair_acks[2 * i + 1].seq);
    /* The acks of the stored ones name the sequence: feed checks use them. */
    static struct result stored_acks[PAIRS];
    for (int i = 0; i < PAIRS; i++)
        stored_acks[i] = pair_acks[2 * i].duplicate ? pair_acks[2 * i + 1] : pair_acks[2 * i];
    read_feed(f, EVENTS + 1, PAIRS, "pair", pairs, stored_acks, PAIRS);
    struct js_event ev;
    OK(js_feed_next(f, 300, &ev) == -ETIMEDOUT, "%s: an extra event on the feed", label);
    js_feed_close(f);

    uint64_t last = 0;
    t0 = now_ms();
    OK(js_last_seq(e, &last) == 0 && last == EVENTS + PAIRS, "%s: last seq %" PRIu64, label, last);
    printf("timing %s: js_last_seq %" PRId64 " ms\n", label, now_ms() - t0);

    /* A feed from the middle starts right after it. */
    OK(js_feed_open(e, 500, &f) == 0, "%s: feed from 500", label);
    OK(js_feed_next(f, 5000, &ev) == 0 && ev.seq == 501, "%s: feed from 500 starts at %" PRIu64,
       label, ev.seq);
    js_feed_close(f);
    /* A feed from the end waits. */
    OK(js_feed_open(e, last, &f) == 0, "%s: feed from the end", label);
    OK(js_feed_next(f, 200, &ev) == -ETIMEDOUT, "%s: feed from the end is not empty", label);
    js_feed_close(f);

    t0 = now_ms();
    OK(js_ping(e) == 0, "%s: ping", label);
    printf("timing %s: js_ping %" PRId64 " ms\n", label, now_ms() - t0);
    OK(js_state(e) == JS_CONNECTED, "%s: state", label);
}

static void check_users(struct js_engine *e, const char *label)
{
    const char *names[] = { "alice", "bob.smith", "caf\xc3\xa9 > *", "crlf\r\nname" };
    int64_t t0 = now_ms();
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char record[64];
        snprintf(record, sizeof record, "{\"id\":\"u%zu\"}", i);
        OK(js_user_create(e, names[i], strlen(names[i]), record, strlen(record)) == 0,
           "%s: create user %zu", label, i);
    }
    printf("timing %s: 4 js_user_create in %" PRId64 " ms\n", label, now_ms() - t0);
    OK(js_user_create(e, "alice", 5, "{\"id\":\"other\"}", 14) == -EEXIST, "%s: alice twice", label);
    OK(js_user_create(e, "alice", 5, "{\"id\":\"u0\"}", 11) == -EEXIST,
       "%s: alice twice, same record", label);
    OK(js_user_create(e, "Alice", 5, "{}", 2) == 0, "%s: names are exact", label);
    char *rec = NULL;
    size_t rlen = 0;
    t0 = now_ms();
    OK(js_user_get(e, names[2], strlen(names[2]), &rec, &rlen, NULL) == 0, "%s: get", label);
    printf("timing %s: js_user_get %" PRId64 " ms\n", label, now_ms() - t0);
    OK(rlen == strlen("{\"id\":\"u2\"}") && strcmp(rec, "{\"id\":\"u2\"}") == 0, "%s: record %s",
       label, rec);
    free(rec);
    OK(js_user_get(e, "nobody", 6, &rec, &rlen, NULL) == -ENOENT, "%s: unknown user", label);
    OK(js_user_create(e, "", 0, "{}", 2) == -EINVAL, "%s: empty name", label);
}

/* ---- single server ---- */

static void add_raw_stream(const char *url, const char *name, const char *subject,
                           jsStorageType storage)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    CHECK(natsConnection_ConnectTo(&nc, url) == NATS_OK, "raw connect");
    CHECK(natsConnection_JetStream(&js, nc, NULL) == NATS_OK, "raw js");
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    const char *subjects[] = { subject };
    c.Name = name;
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = storage;
    jsStreamInfo *si = NULL;
    natsStatus s = js_AddStream(&si, js, &c, NULL, NULL);
    CHECK(s == NATS_OK, "raw stream %s: %s", name, natsStatus_GetText(s));
    jsStreamInfo_Destroy(si);
    if (storage == js_FileStorage && strcmp(name, "KVLIKE") == 0) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = "HISTORY5";
        kc.History = 5;
        kvStore *kv = NULL;
        CHECK(js_CreateKeyValue(&kv, js, &kc) == NATS_OK, "raw bucket");
        kvStore_Destroy(kv);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static void expect_refusal(struct js_config cfg, int want, const char *needle, const char *what)
{
    char err[512] = "";
    struct js_engine *e = NULL;
    int64_t t0 = now_ms();
    int rc = js_open(&cfg, &e, err, sizeof err);
    OK(rc == want && e == NULL && strstr(err, needle), "%s: rc %d, \"%s\"", what, rc, err);
    printf("check %s: refused in %" PRId64 " ms: %s\n", what, now_ms() - t0, err);
}

static void single_server(const char *binary)
{
    struct cluster c;
    start_cluster(&c, binary, 1, "one", "/healthz?js-enabled-only=true");
    struct js_config cfg = config(&c, 1);
    char err[512] = "";
    struct js_engine *e = NULL;
    int64_t t0 = now_ms();
    OK(js_open(&cfg, &e, err, sizeof err) == 0, "single: js_open: %s", err);
    printf("timing single: js_open (creates stream and bucket) %" PRId64 " ms\n", now_ms() - t0);
    check_events(e, "single");
    check_users(e, "single");
    js_close(e);

    /* Re-opening finds both as they should be. */
    t0 = now_ms();
    OK(js_open(&cfg, &e, err, sizeof err) == 0, "single: re-open: %s", err);
    printf("timing single: js_open on existing stream and bucket %" PRId64 " ms\n", now_ms() - t0);
    js_close(e);

    /* Conflicts, each named. */
    struct js_config bad = cfg;
    bad.replicas = 3;
    expect_refusal(bad, -EINVAL, "with replicas 1", "conflicting replicas");
    add_raw_stream(c.urls, "FOREIGN", "foreign.>", js_FileStorage);
    bad = cfg;
    bad.stream = "FOREIGN";
    expect_refusal(bad, -EINVAL, "subjects [foreign.>]", "conflicting subjects");
    add_raw_stream(c.urls, "INMEMORY", "inmemory.ev.>", js_MemoryStorage);
    bad = cfg;
    bad.stream = "INMEMORY";
    expect_refusal(bad, -EINVAL, "memory storage", "conflicting storage");
    add_raw_stream(c.urls, "KVLIKE", "kvlike.>", js_FileStorage);
    bad = cfg;
    bad.users_bucket = "HISTORY5";
    expect_refusal(bad, -EINVAL, "history 5", "conflicting bucket");
    bad = cfg;
    bad.stream = "bad.name";
    expect_refusal(bad, -EINVAL, "bad stream name", "bad stream name");

    stop_cluster(&c);
    /* Nothing listens any more: js_open gives up after setup_timeout_ms. */
    bad = cfg;
    bad.setup_timeout_ms = 1500;
    expect_refusal(bad, -ETIMEDOUT, "cannot connect", "no server");
}

static void old_server(const char *binary)
{
    struct cluster c;
    start_cluster(&c, binary, 1, "old", "/healthz");
    struct js_config cfg = config(&c, 1);
    expect_refusal(cfg, -EPROTONOSUPPORT, "nats-server 2.9.", "nats-server 2.9");
    stop_cluster(&c);
}

/* ---- three servers ---- */

static void three_servers(const char *binary)
{
    struct cluster c;
    start_cluster(&c, binary, 3, "node", "/healthz?js-enabled-only=true");
    struct js_config cfg = config(&c, 3);
    char err[512] = "";
    struct js_engine *e = NULL;
    /* Right away, while the meta group may still be forming: js_open rides it out. */
    int64_t t0 = now_ms();
    int rc = js_open(&cfg, &e, err, sizeof err);
    if (rc == -ETIMEDOUT) {
        /* The server-side bootstrap flake: js_open gave up with the reason, as it should. Restart
         * what is unhealthy, once, and go on. */
        printf("note cluster: js_open gave up after %" PRId64 " ms: %s\n", now_ms() - t0, err);
        for (int i = 0; i < 3; i++) {
            int status = http_status(c.s[i].mport, "/healthz");
            printf("note cluster: %s /healthz %d%s\n", c.s[i].name, status,
                   status == 200 ? "" : ": restarting it");
            if (status != 200) {
                stop_server(&c.s[i], SIGTERM);
                start_server(&c, i);
                wait_ready(&c, i, "/healthz?js-enabled-only=true");
            }
        }
        t0 = now_ms();
        rc = js_open(&cfg, &e, err, sizeof err);
    }
    OK(rc == 0, "cluster: js_open: %s", err);
    printf("timing cluster: js_open on a fresh 3-server cluster (meta leader election included) "
           "%" PRId64 " ms\n", now_ms() - t0);
    check_events(e, "cluster");
    check_users(e, "cluster");
    struct js_config bad = cfg;
    bad.replicas = 1;
    expect_refusal(bad, -EINVAL, "with replicas 3", "cluster: conflicting replicas");

    /* An idle healthy stream stays healthy: js_ping judges the leader's view of its peers, which
     * must not age while nothing is published. */
    int64_t idle_start = now_ms(), worst_ping = 0;
    if (getenv("JS_CHECK_DEBUG"))
        log_set_level(LOG_DEBUG);
    for (int i = 0; i < 12; i++) {
        sleep_ms(500);
        int64_t p0 = now_ms();
        int prc = js_ping(e);
        worst_ping = now_ms() - p0 > worst_ping ? now_ms() - p0 : worst_ping;
        OK(prc == 0, "cluster: idle ping %d after %" PRId64 " ms", prc, now_ms() - idle_start);
    }
    log_set_level(LOG_WARN);
    printf("check cluster: js_ping ok throughout %" PRId64 " ms of idleness (slowest %" PRId64
           " ms)\n", now_ms() - idle_start, worst_ping);

    /* A feed at the end, to see it continue across the outage. */
    uint64_t last = 0;
    OK(js_last_seq(e, &last) == 0, "cluster: last seq");
    struct js_feed *f;
    OK(js_feed_open(e, last, &f) == 0, "cluster: feed");

    /* Two of three servers die: no quorum. */
    stop_server(&c.s[1], SIGKILL);
    stop_server(&c.s[2], SIGKILL);
    int64_t killed = now_ms();
    enum { OUTAGE = 20 };
    static struct sample lost[OUTAGE];
    static struct result lost_acks[OUTAGE];
    struct waiter w;
    waiter_init(&w);
    for (int i = 0; i < OUTAGE; i++) {
        make_sample(&lost[i], "outage", i);
        lost_acks[i] = (struct result){ .w = &w };
    }
    if (getenv("JS_CHECK_DEBUG"))
        log_set_level(LOG_DEBUG);
    t0 = now_ms();
    for (int i = 0; i < OUTAGE; i++)
        publish_sample(e, &lost[i], &lost_acks[i]);
    /* Meanwhile /healthz's view: how soon after the kill does js_ping say no, and how long does
     * one call take. */
    int pings = 0;
    int64_t ping_ms = 0, unhealthy_after = -1;
    rc = 0;
    for (; pings < 50 && now_ms() - killed < 10000; pings++) {
        int64_t p0 = now_ms();
        rc = js_ping(e);
        ping_ms = now_ms() - p0;
        CHECK(ping_ms <= 2300, "cluster: one js_ping took %" PRId64 " ms", ping_ms);
        if (rc != 0) {
            unhealthy_after = now_ms() - killed;
            break;
        }
        sleep_ms(100);
    }
    printf("timing cluster, 2 of 3 down: js_ping says %d %" PRId64 " ms after the kill (%d pings "
           "said ok before; the failing one took %" PRId64 " ms)\n", rc, unhealthy_after, pings, ping_ms);
    OK(rc != 0 && unhealthy_after <= 5000, "cluster: ping still ok 10 s into the outage");
    OK(wait_done(&w, OUTAGE, TIMEOUT_MS + 5000), "cluster: outage publishes not answered");
    log_set_level(LOG_WARN);
    int64_t slowest = 0, fastest = INT64_MAX;
    int eagain = 0;
    for (int i = 0; i < OUTAGE; i++) {
        int64_t took = lost_acks[i].at_ms - t0;
        slowest = took > slowest ? took : slowest;
        fastest = took < fastest ? took : fastest;
        eagain += lost_acks[i].rc == -EAGAIN;
    }
    printf("check cluster, 2 of 3 down: first answer rc %d seq %" PRIu64 " duplicate %d\n",
           lost_acks[0].rc, lost_acks[0].seq, lost_acks[0].duplicate);
    printf("timing cluster, 2 of 3 down: %d publishes: %d -EAGAIN, answered after %" PRId64 "-%"
           PRId64 " ms (timeout_ms %d)\n", OUTAGE, eagain, fastest, slowest, TIMEOUT_MS);
    OK(eagain == OUTAGE, "cluster: %d of %d outage publishes gave -EAGAIN", eagain, OUTAGE);
    OK(slowest <= TIMEOUT_MS + 500 && fastest >= TIMEOUT_MS - 50,
       "cluster: -EAGAIN after %" PRId64 "-%" PRId64 " ms", fastest, slowest);
    t0 = now_ms();
    rc = js_user_create(e, "during-outage", 13, "{}", 2);
    printf("timing cluster, 2 of 3 down: js_user_create %d in %" PRId64 " ms\n", rc, now_ms() - t0);
    OK(rc == -EAGAIN && now_ms() - t0 <= TIMEOUT_MS + 500, "cluster: user create during outage %d",
       rc);
    char *rec = NULL;
    size_t rlen;
    t0 = now_ms();
    rc = js_user_get(e, "alice", 5, &rec, &rlen, NULL);
    printf("timing cluster, 2 of 3 down: js_user_get %d in %" PRId64 " ms\n", rc, now_ms() - t0);
    OK((rc == 0 || rc == -EAGAIN) && now_ms() - t0 <= TIMEOUT_MS + 500, "cluster: get %d", rc);
    free(rec);
    printf("check cluster, 2 of 3 down: state %s, reconnects %" PRIu64 "\n",
           js_state(e) == JS_CONNECTED ? "connected" : "reconnecting", js_reconnects(e));

    /* They come back: publishing works again, the feed continues. */
    start_server(&c, 1);
    start_server(&c, 2);
    int64_t back = now_ms();
    static struct sample after;
    make_sample(&after, "after", 0);
    struct result ok = { 0 };
    for (int tries = 0; tries < 20; tries++) {
        struct waiter w2;
        waiter_init(&w2);
        ok = (struct result){ .w = &w2 };
        publish_sample(e, &after, &ok);
        CHECK(wait_done(&w2, 1, TIMEOUT_MS + 2000), "cluster: recovery publish not answered");
        if (ok.rc == 0)
            break;
    }
    OK(ok.rc == 0, "cluster: no publish succeeded after the restart: %d", ok.rc);
    printf("timing cluster: after restarting the 2 servers, the first publish succeeded in %" PRId64
           " ms (outage %" PRId64 " ms in all), seq %" PRIu64 "%s\n", now_ms() - back,
           now_ms() - killed, ok.seq, ok.duplicate ? " (duplicate)" : "");
    /* A client retrying one of the -EAGAIN'd events with its key: when the old leader kept its
     * staged msg id, this stays -EAGAIN until the de-duplication window (2 min) forgets it. */
    struct result retried = { 0 };
    int64_t retry_start = now_ms();
    int retry_tries = 0;
    for (; retry_tries < 5; retry_tries++) {
        struct waiter w2;
        waiter_init(&w2);
        retried = (struct result){ .w = &w2 };
        publish_sample(e, &lost[0], &retried);
        CHECK(wait_done(&w2, 1, TIMEOUT_MS + 2000), "cluster: retried outage publish not answered");
        if (retried.rc == 0)
            break;
    }
    printf("check cluster: re-publishing an -EAGAIN'd msg id after recovery: rc %d seq %" PRIu64
           "%s after %d tries in %" PRId64 " ms\n", retried.rc, retried.seq,
           retried.duplicate ? " (duplicate)" : "", retry_tries + (retried.rc == 0), now_ms() - retry_start);
    /* The feed goes on from where it was, contiguous. The -EAGAIN'd events may or may not have
     * been stored (that is what -EAGAIN means); the acknowledged ones are. */
    uint64_t expect = last + 1;
    bool saw_after = false, saw_retried = retried.rc != 0;
    int lost_stored = 0;
    for (int k = 0; k < OUTAGE + 2 && !(saw_after && saw_retried); k++) {
        struct js_event ev;
        rc = js_feed_next(f, 15000, &ev);
        CHECK(rc == 0, "cluster: feed after the outage: %d", rc);
        CHECK(ev.seq == expect, "cluster: feed after the outage: seq %" PRIu64 ", expected %" PRIu64,
              ev.seq, expect);
        expect++;
        if (strcmp(ev.msg_id, after.msg_id) == 0) {
            saw_after = true;
            CHECK(ev.seq == ok.seq, "cluster: acked as %" PRIu64 ", on the feed at %" PRIu64,
                  ok.seq, ev.seq);
        } else {
            CHECK(strncmp(ev.msg_id, "outage-", 7) == 0, "cluster: unexpected %s", ev.msg_id);
            lost_stored++;
            if (strcmp(ev.msg_id, lost[0].msg_id) == 0) {
                saw_retried = true;
                CHECK(retried.rc != 0 || ev.seq == retried.seq, "cluster: retried acked as %"
                      PRIu64 ", on the feed at %" PRIu64, retried.seq, ev.seq);
            }
        }
    }
    OK(saw_after && saw_retried, "cluster: an acknowledged event is not on the feed");
    printf("check cluster: the feed continued across the outage; %d outage msg ids on it\n",
           lost_stored);
    js_feed_close(f);
    printf("check cluster: reconnects %" PRIu64 "\n", js_reconnects(e));
    js_close(e);
    stop_cluster(&c);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *binary = getenv("NATS_SERVER");
    const char *old = getenv("NATS_SERVER_OLD");
    if (!binary || !*binary) {
        printf("NATS_SERVER is not set (scripts/nats-server.sh prints one): skipped\n");
        return 77;
    }
    srand((unsigned)(getpid() ^ time(NULL)));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    CHECK(mkdtemp(tmp_dir) != NULL, "mkdtemp: %s", strerror(errno));
    log_set_level(LOG_WARN);

    int64_t t0 = now_ms();
    single_server(binary);
    if (old && *old)
        old_server(old);
    else
        printf("NATS_SERVER_OLD is not set (scripts/nats-server.sh --old): 2.9 refusal skipped\n");
    three_servers(binary);

    kill_children();
    nats_CloseAndWait(5000);
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d checks passed in %" PRId64 " ms\n", checks, now_ms() - t0);
    return 0;
}
