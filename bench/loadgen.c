/* loadgen: a load generator for broker and, as the reference, nginx + nchan.
 *
 * One thread, one epoll loop, non-blocking sockets. It opens N Server-Sent-Events subscribers,
 * publishes M events over K keep-alive connections (paced or flat out), decodes every stream
 * incrementally (HTTP/1.1 chunked or plain), and measures publish -> deliver latency from the send
 * time carried in each event. Other modes: --mode=idle (memory per idle subscriber) and
 * --mode=login (a storm of POST /login on K keep-alive connections).
 *
 * Subscribe only (fan-out with --publishers=0 and --run-id=R): the events come from another loadgen
 * started with the same --run-id, e.g. through another node of a cluster; this one expects every
 * seq 0..--events-1 of run R and checks loss, duplicates, order and latency as for its own.
 *
 * Private events (--private-users=N, broker with --rules): subscriber i holds its own token, minted
 * here with --secret for the synthetic user "bench-u<i mod N>" (the broker takes any token signed
 * with its secret; the user need not exist), and reads GET /sse with no filter, so only the rules
 * keep other users' events away. Event seq s is published as "user.bench-u<s mod N>.msg"; a
 * subscriber must receive exactly the acknowledged seqs of its own user, in id order: anything
 * else it receives is counted as foreign, never ignored.
 *
 * HTTP/2 (--h2, broker only): the S subscribers are S streams of GET /sse spread over
 * ceil(S / --h2-streams-per-conn) connections, HTTP/2 with prior knowledge on plain TCP, through
 * libnghttp2 (framing, HPACK and flow control are the library's; windows of 1 MiB per stream and
 * 1 GiB per connection, so the client is not what holds the server back). Each stream's DATA is fed
 * to the same SSE line splitter as an HTTP/1.1 body, so loss, duplicates, order and latency are
 * counted the same way; a stream the server resets or ends counts as dropped, like a closed socket.
 *
 * Every loop is bounded: --duration-limit aborts whatever is stuck and reports status=timeout.
 * Only numeric IPv4 loopback targets are accepted.
 *
 * Output: a human readable report on stdout, then one machine-readable line starting "RESULT ".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define READ_BUF_SIZE (256 * 1024)
#define HEADER_MAX (16 * 1024)
#define LINE_MAX_BYTES (4 * 1024 * 1024)
#define PIPELINE_MAX 64
#define PUB_IN_MAX (64 * 1024)
#define MAX_EVENTS_PER_WAIT 1024
#define MAX_PIDS 64
#define PRIVATE_PREFIX "bench-u" /* synthetic user ids of --private-users: bench-u0, bench-u1, ... */
#define JWT_MAX 2048
#define H2_STREAM_WINDOW (1 << 20)     /* --h2: SETTINGS_INITIAL_WINDOW_SIZE, per stream */
#define H2_CONN_WINDOW (1 << 30)       /* --h2: the connection's receive window */

/* ---------------------------------------------------------------------------------------------- */
/* Options                                                                                        */

enum target { TARGET_BROKER, TARGET_NCHAN };
enum mode { MODE_FANOUT, MODE_IDLE, MODE_LOGIN };

static struct {
    enum target target;
    enum mode mode;
    char host[64];
    int port;
    long subscribers;
    long events;
    double rate;          /* events/s in total; 0 = flat out */
    long publishers;
    long pipeline;        /* requests in flight per publisher connection */
    long size;            /* approximate body size of a published event, bytes */
    double duration_limit;
    double publish_seconds; /* stop publishing after this long (0 = publish all --events) */
    double connect_rate;  /* new subscriber connections per second; 0 = unlimited */
    long connect_inflight; /* subscribers connecting or awaiting headers at once */
    long src_addrs;       /* spread connections over 127.0.0.1 .. 127.0.0.N */
    double drain_timeout; /* give up waiting for deliveries after this long without progress */
    double hold;          /* idle mode: seconds to hold the subscribers after measuring */
    char jwt[JWT_MAX];
    char secret[512];     /* broker's --jwt_secret: mint tokens here instead of logging in */
    char publisher_roles[512]; /* roles claim of the minted publisher token, comma separated */
    char event_name[256]; /* name of the published events (not with --private-users) */
    char sse_events[512]; /* the subscribers' ?events= filter; empty = none */
    bool sse_events_set;
    long private_users;   /* 0 = off; else subscriber i is user bench-u<i mod N> */
    char username[160];
    char password[160];
    pid_t server_pid;
    char label[64];
    int64_t run_id;       /* 0 = a random one; set to share a run between loadgen processes */
    bool progress;
    bool h2;              /* subscribers as HTTP/2 streams (prior knowledge, plain) */
    double settle;        /* fan-out: seconds of reading after connecting, before the memory sample */
    long h2_streams_per_conn;
} opt = {
    .target = TARGET_BROKER,
    .mode = MODE_FANOUT,
    .host = "127.0.0.1",
    .port = 8080,
    .subscribers = 100,
    .events = 1000,
    .rate = 0,
    .publishers = 4,
    .pipeline = 1,
    .size = 100,
    .duration_limit = 60,
    .publish_seconds = 0,
    .connect_rate = 0,
    .connect_inflight = 1000,
    .src_addrs = 4,
    .drain_timeout = 5,
    .hold = 3,
    .label = "",
    .event_name = "bench",
    .h2_streams_per_conn = 100,
};

/* ---------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                  */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        die("out of memory");
    return q;
}

/* Finds needle in the first len bytes of hay, case-insensitively. */
static const char *memcasemem(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl > len)
        return NULL;
    for (size_t i = 0; i + nl <= len; i++)
        if (strncasecmp(hay + i, needle, nl) == 0)
            return hay + i;
    return NULL;
}

/* The integer after key (e.g. "\"seq\":") in l[0..len), or -1. */
static int64_t find_int(const char *l, size_t len, const char *key)
{
    const char *p = memmem(l, len, key, strlen(key));
    if (!p)
        return -1;
    p += strlen(key);
    const char *end = l + len;
    while (p < end && *p == ' ')
        p++;
    if (p >= end || !isdigit((unsigned char)*p))
        return -1;
    int64_t v = 0;
    while (p < end && isdigit((unsigned char)*p) && v < INT64_MAX / 10)
        v = v * 10 + (*p++ - '0');
    return v;
}

/* ---------------------------------------------------------------------------------------------- */
/* Histogram: log-linear buckets over microseconds, exact below 128 us, ~1.5% above.               */

#define HIST_BUCKETS 3712

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n, max;
};

static size_t hist_index(uint64_t v)
{
    if (v < 128)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    int e = msb - 6;
    return (size_t)e * 64 + (size_t)(v >> e);
}

/* The middle of bucket i, in the same unit as the recorded values. */
static uint64_t hist_value(size_t i)
{
    if (i < 128)
        return i;
    size_t e = i / 64 - 1;
    uint64_t m = i % 64 + 64;
    return (m << e) + ((uint64_t)1 << e) / 2;
}

static void hist_add(struct hist *h, int64_t v)
{
    if (v < 0)
        v = 0;
    size_t i = hist_index((uint64_t)v);
    if (i >= HIST_BUCKETS)
        i = HIST_BUCKETS - 1;
    h->counts[i]++;
    h->n++;
    if ((uint64_t)v > h->max)
        h->max = (uint64_t)v;
}

static uint64_t hist_pct(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        acc += h->counts[i];
        if (acc >= want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---------------------------------------------------------------------------------------------- */
/* /proc readings: the server (and its descendants, e.g. nginx workers), and kernel socket memory. */

struct proc_sample {
    int npids;
    double cpu_s;  /* utime + stime, seconds */
    long rss_kb;   /* sum of VmRSS */
    long pss_kb;   /* sum of Pss: shared memory counted once across processes */
    long tcp_mem_kb;
    long tcp_inuse;
};

static long read_status_kb(pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) {
            v = strtol(line + kl, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Reads ppid and utime+stime (clock ticks) from /proc/pid/stat. */
static int read_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* fields from 3 on: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    char state;
    int pp;
    unsigned long long ut, st;
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &pp, &ut, &st) != 4)
        return -1;
    if (ppid)
        *ppid = pp;
    if (ticks)
        *ticks = ut + st;
    return 0;
}

/* The server pid and all its descendants (nginx: master + workers). */
static int server_pids(pid_t root, pid_t *out, int max)
{
    int n = 0;
    out[n++] = root;
    DIR *d = opendir("/proc");
    if (!d)
        return n;
    pid_t all[8192], parent[8192];
    int na = 0;
    struct dirent *de;
    while ((de = readdir(d)) && na < 8192) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid_t p = (pid_t)atoi(de->d_name), pp;
        if (read_stat(p, &pp, NULL) == 0) {
            all[na] = p;
            parent[na] = pp;
            na++;
        }
    }
    closedir(d);
    for (int i = 0; i < n && n < max; i++) /* breadth first over the tree */
        for (int j = 0; j < na && n < max; j++)
            if (parent[j] == out[i] && all[j] != root)
                out[n++] = all[j];
    return n;
}

static void read_sockstat(long *mem_kb, long *inuse)
{
    *mem_kb = -1;
    *inuse = -1;
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        long in, orphan, tw, alloc, mem;
        if (sscanf(line, "TCP: inuse %ld orphan %ld tw %ld alloc %ld mem %ld", &in, &orphan, &tw,
                   &alloc, &mem) == 5) {
            *mem_kb = mem * (sysconf(_SC_PAGESIZE) / 1024);
            *inuse = in;
        }
    }
    fclose(f);
}

static struct proc_sample sample_server(void)
{
    struct proc_sample s = { 0 };
    read_sockstat(&s.tcp_mem_kb, &s.tcp_inuse);
    if (opt.server_pid <= 0) {
        s.cpu_s = -1;
        s.rss_kb = s.pss_kb = -1;
        return s;
    }
    pid_t pids[MAX_PIDS];
    s.npids = server_pids(opt.server_pid, pids, MAX_PIDS);
    double hz = (double)sysconf(_SC_CLK_TCK);
    for (int i = 0; i < s.npids; i++) {
        unsigned long long t;
        if (read_stat(pids[i], NULL, &t) == 0)
            s.cpu_s += (double)t / hz;
        long rss = read_status_kb(pids[i], "status", "VmRSS:");
        long pss = read_status_kb(pids[i], "smaps_rollup", "Pss:");
        if (rss > 0)
            s.rss_kb += rss;
        if (pss > 0)
            s.pss_kb += pss;
    }
    return s;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------------------------------------- */
/* Blocking HTTP for the set-up requests (create a user, log in).                                  */

static int connect_blocking(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* POSTs body to path; returns the status (or -1) and copies the response body into out. */
static int http_post_blocking(const char *path, const char *body, char *out, size_t outcap)
{
    if (out && outcap)
        out[0] = 0;
    int fd = connect_blocking();
    if (fd < 0)
        return -1;
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, opt.host, opt.port, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    char buf[16384];
    size_t len = 0;
    for (int i = 0; i < 1000 && len < sizeof buf - 1; i++) {
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    const char *b = strstr(buf, "\r\n\r\n");
    if (out && outcap) {
        snprintf(out, outcap, "%s", b ? b + 4 : "");
    }
    return status;
}

/* Creates a unique user and logs in; fills opt.jwt. */
static void obtain_jwt(void)
{
    if (!opt.username[0]) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(opt.username, sizeof opt.username, "bench-%d-%lld-%ld", (int)getpid(),
                 (long long)ts.tv_sec, ts.tv_nsec);
    }
    if (!opt.password[0])
        snprintf(opt.password, sizeof opt.password, "bench-password-%d", (int)getpid());
    char body[512], resp[4096];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", opt.username, opt.password);
    int st = http_post_blocking("/users", body, resp, sizeof resp);
    if (st != 200 && st != 409)
        die("POST /users answered %d: %s", st, resp);
    st = http_post_blocking("/login", body, resp, sizeof resp);
    if (st != 200)
        die("POST /login answered %d: %s", st, resp);
    const char *p = strstr(resp, "\"jwt\"");
    if (!p || !(p = strchr(p + 5, '"')))
        die("no jwt in the /login answer: %s", resp);
    p++;
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= sizeof opt.jwt)
        die("bad jwt in the /login answer");
    memcpy(opt.jwt, p, (size_t)(e - p));
    opt.jwt[e - p] = 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Tokens minted here (--secret): HS256 JWTs with the claims broker's /login issues. Thousands of
 * distinct users then cost no POST /users and /login each (and no password hashing on the server,
 * which would dominate the connect phase and is not what the rules benchmark measures).            */

/* base64url without padding (RFC 7515); out needs 4 * ceil(n / 3) + 1 bytes. */
static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (n - i == 2)
            out[o++] = tab[v >> 6 & 63];
    }
    out[o] = 0;
    return o;
}

/* Role names as broker accepts them in a token: [A-Za-z0-9_.-]{1,64}, at most 32, comma separated. */
static bool roles_valid(const char *csv)
{
    int count = 0;
    for (const char *p = csv; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 64 || ++count > 32)
            return false;
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)p[i]) && !strchr("_.-", p[i]))
                return false;
        p += len;
        if (*p == ',' && !*++p)
            return false; /* a trailing comma */
    }
    return true;
}

/* A token for user id sub (also its username) holding the roles in roles_csv, valid for a day: the
 * claims of broker's own tokens (sub, username, iat, exp, ver 0, roles). sub is one of ours
 * (bench-...), so it needs no JSON escaping. */
static void mint_jwt(const char *sub, const char *roles_csv, char *out, size_t cap)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char roles[1200];
    size_t rl = 0;
    for (const char *p = roles_csv; *p;) {
        size_t len = strcspn(p, ",");
        rl += (size_t)snprintf(roles + rl, sizeof roles - rl, "%s\"%.*s\"", rl ? "," : "", (int)len, p);
        p += len + (p[len] == ',');
    }
    roles[rl] = 0;
    long iat = (long)time(NULL);
    char payload[1600];
    int pn = snprintf(payload, sizeof payload,
                      "{\"sub\":\"%s\",\"username\":\"%s\",\"iat\":%ld,\"exp\":%ld,\"ver\":0,\"roles\":[%s]}", sub,
                      sub, iat, iat + 86400, roles);
    if (pn < 0 || (size_t)pn >= sizeof payload)
        die("token claims too long");
    char signing[4 * (sizeof header + sizeof payload) / 3 + 8];
    size_t n = b64url((const unsigned char *)header, sizeof header - 1, signing);
    signing[n++] = '.';
    n += b64url((const unsigned char *)payload, (size_t)pn, signing + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), opt.secret, (int)strlen(opt.secret), (const unsigned char *)signing, n, mac, &maclen))
        die("HMAC-SHA256 failed");
    char sig[4 * EVP_MAX_MD_SIZE / 3 + 8];
    size_t sn = b64url(mac, maclen, sig);
    if (n + 1 + sn + 1 > cap)
        die("minted token too long");
    memcpy(out, signing, n);
    out[n] = '.';
    memcpy(out + n + 1, sig, sn + 1);
}

/* ---------------------------------------------------------------------------------------------- */
/* Connections                                                                                    */

enum kind { KIND_SUB, KIND_PUB, KIND_H2 };
enum conn_state { ST_IDLE, ST_CONNECTING, ST_HEADERS, ST_STREAM, ST_READY, ST_CLOSED };
enum chunk_state { CS_SIZE, CS_EXT, CS_DATA, CS_DATA_END, CS_DONE };
enum ev_name { EV_NONE, EV_MINE, EV_OTHER }; /* the event: line of the frame being read (private mode) */

struct sub {
    uint8_t kind; /* first member of every epoll target */
    uint8_t state;
    uint8_t chunked;
    uint8_t cstate;
    bool has_data;
    bool counted_ready;
    uint8_t ev_name;
    int fd;
    uint32_t idx;
    uint32_t req_off;
    char *req; /* this subscriber's own request (its own token), NULL = the shared sub_request */
    uint32_t req_len;
    uint64_t chunk_left;
    char *line; /* carry-over of an incomplete line; also the header buffer */
    uint32_t line_len, line_cap;
    int64_t ev_seq, ev_t, ev_run;
    int64_t last_id;
    uint8_t *seen; /* bitmap of the seqs received */
    uint32_t distinct;
    int h2_status; /* --h2: the :status of the response, 0 until it arrives */
};

/* --h2: one connection carrying the streams subs[first .. first + n). */
struct h2c {
    uint8_t kind; /* KIND_H2 */
    uint8_t state; /* ST_CONNECTING, ST_STREAM (session up), ST_CLOSED */
    bool want_out;
    int fd;
    uint32_t idx;
    uint32_t first, n;
    nghttp2_session *session;
};

struct pub {
    uint8_t kind;
    uint8_t state;
    int fd;
    int idx;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len;
    int inflight, head; /* ring of in-flight requests */
    int64_t sent_at[PIPELINE_MAX];
    int64_t seq[PIPELINE_MAX];
    bool want_out;
};

static int ep;
static char *rbuf;
static int64_t run_id;
static bool listen_only; /* --publishers=0 in fan-out mode: another loadgen publishes */
static struct sub *subs;
static struct pub *pubs;
static struct h2c *h2conns;
static long n_h2conns;
static uint8_t *acked_map;
static size_t map_bytes;
static char pub_jwt[JWT_MAX]; /* the publishers' token: opt.jwt, or minted with --publisher-roles */
/* --private-users: per user, acked events and subscribers with an open stream */
static uint32_t *acked_per_user, *live_per_user;
static volatile sig_atomic_t interrupted;

static struct {
    /* subscribers */
    long sub_started, sub_ready, sub_failed, sub_disconnected, sub_inflight;
    long fail_connect, fail_status, fail_closed;
    int first_fail_errno, first_fail_status;
    /* --h2: streams refused or reset by the server (RST_STREAM), GOAWAYs, the first error codes */
    long h2_refused, h2_resets, h2_goaways, h2_excess;
    uint32_t first_h2_error, first_goaway_error;
    char first_h2_fail[160];
    int64_t connect_start, connect_end;
    /* deliveries */
    uint64_t deliveries, dup, foreign, bad, heartbeats, order_violations, stream_ends;
    uint64_t live_distinct; /* distinct seqs received by subscribers still connected */
    /* --private-users: frames of another user's event (or of none), and what the live streams must
     * receive in all: the sum over them of their user's acked events */
    uint64_t foreign_user, live_expected;
    char first_foreign[128];
    int64_t first_delivery, last_delivery;
    struct hist lat;
    /* publishing */
    long pub_conn_failed, pub_reconnects, pub_errors_io;
    uint64_t sent, acked, errors;
    uint64_t status_counts[6]; /* 1xx..5xx, index 0 = other */
    int first_error_status;
    char first_error_body[200];
    int64_t pub_start, pub_end, last_ack;
    int64_t max_lag;
    struct hist ack;
} st;

static int64_t next_seq;

static void ep_ctl(int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = { .events = events, .data.ptr = ptr };
    if (epoll_ctl(ep, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
        die("epoll_ctl: %s", strerror(errno));
}

/* A non-blocking connect, spread over source addresses 127.0.0.1..N (bind before connect, with
 * IP_BIND_ADDRESS_NO_PORT so the port is picked per 4-tuple, not per address). */
static int open_socket(uint32_t idx, int *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_addrs > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % (uint32_t)opt.src_addrs));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            *err = errno;
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------------------------------------- */
/* Subscribers                                                                                    */

static char sub_request[4096];
static size_t sub_request_len;

/* The subscribe request with token jwt into out; returns its length. */
static size_t format_sub_request(char *out, size_t cap, const char *jwt)
{
    int n;
    if (opt.target == TARGET_BROKER)
        n = snprintf(out, cap,
                     "GET /sse%s%s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     opt.sse_events[0] ? "?events=" : "", opt.sse_events, opt.host, opt.port, jwt);
    else
        n = snprintf(out, cap,
                     "GET /sub/bench HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                     opt.host, opt.port);
    if (n < 0 || (size_t)n >= cap)
        die("subscriber request too long");
    return (size_t)n;
}

static void build_sub_request(void)
{
    sub_request_len = format_sub_request(sub_request, sizeof sub_request, opt.jwt);
}

/* The user index of subscriber s with --private-users. */
static long user_of(const struct sub *s)
{
    return (long)(s->idx % (uint32_t)opt.private_users);
}

/* --private-users: s's own request, with a token of its own user. Minted as it connects, so a
 * request costs memory only while it is being sent. */
static void build_private_request(struct sub *s)
{
    char user[48], tok[JWT_MAX], req[sizeof sub_request];
    snprintf(user, sizeof user, PRIVATE_PREFIX "%ld", user_of(s));
    mint_jwt(user, "", tok, sizeof tok);
    size_t n = format_sub_request(req, sizeof req, tok);
    s->req = xcalloc(n + 1, 1);
    memcpy(s->req, req, n);
    s->req_len = (uint32_t)n;
}

static void free_request(struct sub *s)
{
    free(s->req);
    s->req = NULL;
    s->req_len = 0;
}

static void sub_fail(struct sub *s, int err, int status)
{
    if (s->fd >= 0) {
        ep_ctl(EPOLL_CTL_DEL, s->fd, 0, NULL);
        close(s->fd);
        s->fd = -1;
    }
    s->state = ST_CLOSED;
    free_request(s);
    st.sub_failed++;
    st.sub_inflight--;
    if (err && !st.first_fail_errno)
        st.first_fail_errno = err;
    if (status && !st.first_fail_status)
        st.first_fail_status = status;
    st.connect_end = now_ns();
    free(s->line);
    s->line = NULL;
    s->line_len = s->line_cap = 0;
}

/* A subscriber that had its headers loses its stream. */
static void sub_lost(struct sub *s)
{
    if (s->fd >= 0) { /* --h2: a stream has no socket of its own */
        ep_ctl(EPOLL_CTL_DEL, s->fd, 0, NULL);
        close(s->fd);
        s->fd = -1;
    }
    s->state = ST_CLOSED;
    st.sub_disconnected++;
    st.live_distinct -= s->distinct;
    if (opt.private_users) {
        long u = user_of(s);
        live_per_user[u]--;
        st.live_expected -= acked_per_user[u]; /* each was counted for s when acked */
    }
}

static void sub_start(struct sub *s)
{
    int err = 0;
    s->kind = KIND_SUB;
    if (opt.private_users)
        build_private_request(s);
    s->fd = open_socket(s->idx, &err);
    st.sub_started++;
    st.sub_inflight++;
    if (s->fd < 0) {
        st.fail_connect++;
        sub_fail(s, err, 0);
        return;
    }
    s->state = ST_CONNECTING;
    s->last_id = -1;
    s->ev_seq = s->ev_t = s->ev_run = -1;
    ep_ctl(EPOLL_CTL_ADD, s->fd, EPOLLOUT, s);
}

static void line_append(struct sub *s, const char *p, size_t n)
{
    if ((size_t)s->line_len + n > LINE_MAX_BYTES) {
        s->line_len = 0; /* a runaway line: drop it, it is not ours */
        st.bad++;
        return;
    }
    if (s->line_len + n > s->line_cap) {
        size_t cap = s->line_cap ? s->line_cap : 256;
        while (cap < s->line_len + n)
            cap *= 2;
        s->line = xrealloc(s->line, cap);
        s->line_cap = (uint32_t)cap;
    }
    memcpy(s->line + s->line_len, p, n);
    s->line_len += (uint32_t)n;
}

static void sub_dispatch(struct sub *s, int64_t now)
{
    int64_t seq = s->ev_seq, t = s->ev_t, run = s->ev_run;
    uint8_t name = s->ev_name;
    s->has_data = false;
    s->ev_seq = s->ev_t = s->ev_run = -1;
    s->ev_name = EV_NONE;
    /* Private: a frame not named for this subscriber's own user is a leak, whatever it carries. */
    if (opt.private_users && name != EV_MINE) {
        st.foreign_user++;
        if (!st.first_foreign[0])
            snprintf(st.first_foreign, sizeof st.first_foreign, "a frame with no event name to user %ld", user_of(s));
        return;
    }
    if (run != run_id) {
        st.foreign++; /* a snapshot of an earlier run, or someone else's event */
        return;
    }
    if (seq < 0 || seq >= opt.events || t < 0) {
        st.bad++;
        return;
    }
    /* Private: the data of another user's event under this user's name is a leak too. */
    if (opt.private_users && seq % opt.private_users != user_of(s)) {
        st.foreign_user++;
        if (!st.first_foreign[0])
            snprintf(st.first_foreign, sizeof st.first_foreign, "seq %" PRId64 " under the name of user %ld",
                     seq, user_of(s));
        return;
    }
    if (!s->seen)
        s->seen = xcalloc(map_bytes, 1);
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (s->seen[seq >> 3] & bit) {
        st.dup++;
        return;
    }
    s->seen[seq >> 3] |= bit;
    s->distinct++;
    st.live_distinct++;
    st.deliveries++;
    /* Subscribe only: publishing started at the earliest send time seen (CLOCK_MONOTONIC is one
     * clock for every process on the machine, so latencies across processes are valid too). */
    if (listen_only && (!st.pub_start || t < st.pub_start))
        st.pub_start = t;
    hist_add(&st.lat, (now - t) / 1000);
    if (!st.first_delivery)
        st.first_delivery = now;
    st.last_delivery = now;
}

static void sub_line(struct sub *s, const char *l, size_t len, int64_t now)
{
    if (len && l[len - 1] == '\r')
        len--;
    if (len == 0) {
        if (s->has_data)
            sub_dispatch(s, now);
        s->ev_name = EV_NONE; /* an empty line ends the frame, whatever it held */
        return;
    }
    if (l[0] == ':') {
        st.heartbeats++;
        return;
    }
    if (len >= 5 && memcmp(l, "data:", 5) == 0) {
        s->has_data = true;
        s->ev_run = find_int(l + 5, len - 5, "\"run\":");
        s->ev_seq = find_int(l + 5, len - 5, "\"seq\":");
        s->ev_t = find_int(l + 5, len - 5, "\"t\":");
        return;
    }
    if (opt.private_users && len >= 6 && memcmp(l, "event:", 6) == 0) {
        char want[64];
        int wn = snprintf(want, sizeof want, "user." PRIVATE_PREFIX "%ld.msg", user_of(s));
        bool mine = wn > 0 && len - 6 == (size_t)wn && memcmp(l + 6, want, (size_t)wn) == 0;
        s->ev_name = mine ? EV_MINE : EV_OTHER;
        if (!mine && !st.first_foreign[0])
            snprintf(st.first_foreign, sizeof st.first_foreign, "\"%.*s\" to user %ld", (int)(len - 6 < 80 ? len - 6 : 80),
                     l + 6, user_of(s));
        return;
    }
    if (opt.target == TARGET_BROKER && len >= 3 && memcmp(l, "id:", 3) == 0) {
        int64_t id = 0;
        for (size_t i = 3; i < len && isdigit((unsigned char)l[i]); i++)
            id = id * 10 + (l[i] - '0');
        if (id <= s->last_id)
            st.order_violations++;
        s->last_id = id;
    }
}

/* Feeds decoded stream bytes through the line splitter. */
static void sse_feed(struct sub *s, const char *p, size_t n, int64_t now)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            line_append(s, p, n);
            return;
        }
        size_t len = (size_t)(nl - p);
        if (s->line_len) {
            line_append(s, p, len);
            sub_line(s, s->line, s->line_len, now);
            s->line_len = 0;
        } else {
            sub_line(s, p, len, now);
        }
        p = nl + 1;
        n -= len + 1;
    }
}

/* Decodes HTTP/1.1 chunked framing (or passes plain bytes through). Returns -1 at the last chunk. */
static int body_feed(struct sub *s, const char *p, size_t n, int64_t now)
{
    if (!s->chunked) {
        sse_feed(s, p, n, now);
        return 0;
    }
    while (n) {
        switch (s->cstate) {
        case CS_SIZE:
        case CS_EXT: {
            char c = *p++;
            n--;
            if (c == '\n') {
                if (s->chunk_left == 0) {
                    s->cstate = CS_DONE;
                    return -1;
                }
                s->cstate = CS_DATA;
            } else if (s->cstate == CS_SIZE && isxdigit((unsigned char)c)) {
                int d = isdigit((unsigned char)c) ? c - '0' : (tolower((unsigned char)c) - 'a' + 10);
                s->chunk_left = s->chunk_left * 16 + (uint64_t)d;
            } else if (c == ';') {
                s->cstate = CS_EXT;
            }
            break;
        }
        case CS_DATA: {
            size_t take = n < s->chunk_left ? n : (size_t)s->chunk_left;
            sse_feed(s, p, take, now);
            p += take;
            n -= take;
            s->chunk_left -= take;
            if (s->chunk_left == 0)
                s->cstate = CS_DATA_END;
            break;
        }
        case CS_DATA_END: {
            char c = *p++;
            n--;
            if (c == '\n') {
                s->cstate = CS_SIZE;
                s->chunk_left = 0;
            }
            break;
        }
        case CS_DONE:
            return -1;
        }
    }
    return 0;
}

static void sub_headers_done(struct sub *s, size_t hdr_len, int64_t now)
{
    int status = 0;
    sscanf(s->line, "HTTP/1.%*d %d", &status);
    if (status != 200) {
        st.fail_status++;
        sub_fail(s, 0, status ? status : -1);
        return;
    }
    s->chunked = memcasemem(s->line, hdr_len, "transfer-encoding: chunked") != NULL;
    s->cstate = CS_SIZE;
    s->chunk_left = 0;
    s->state = ST_STREAM;
    st.sub_ready++;
    st.sub_inflight--;
    st.connect_end = now;
    s->counted_ready = true;
    if (opt.private_users)
        live_per_user[user_of(s)]++;
    /* Whatever followed the headers is the start of the body: take the header buffer away from
     * the line splitter, feed the rest, and free it. */
    char *buf = s->line;
    size_t rest = s->line_len - hdr_len;
    s->line = NULL;
    s->line_len = s->line_cap = 0;
    if (rest && body_feed(s, buf + hdr_len, rest, now) < 0) {
        st.stream_ends++;
        sub_lost(s);
    }
    free(buf);
}

static void sub_event(struct sub *s, uint32_t events)
{
    int64_t now = now_ns();
    if (s->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            st.fail_connect++;
            sub_fail(s, err ? err : ECONNRESET, 0);
            return;
        }
        const char *req = s->req ? s->req : sub_request;
        size_t req_len = s->req ? s->req_len : sub_request_len;
        ssize_t w = send(s->fd, req + s->req_off, req_len - s->req_off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            st.fail_connect++;
            sub_fail(s, errno, 0);
            return;
        }
        if (w > 0)
            s->req_off += (uint32_t)w;
        if (s->req_off == req_len) {
            free_request(s);
            s->state = ST_HEADERS;
            ep_ctl(EPOLL_CTL_MOD, s->fd, EPOLLIN | EPOLLRDHUP, s);
        }
        return;
    }
    for (int rounds = 0; rounds < 8; rounds++) {
        ssize_t r = recv(s->fd, rbuf, READ_BUF_SIZE, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            if (s->state == ST_HEADERS) {
                st.fail_closed++;
                sub_fail(s, r < 0 ? errno : 0, -2);
            } else {
                sub_lost(s);
            }
            return;
        }
        if (s->state == ST_HEADERS) {
            size_t before = s->line_len;
            line_append(s, rbuf, (size_t)r);
            const char *end = memmem(s->line + (before > 3 ? before - 3 : 0),
                                     s->line_len - (before > 3 ? before - 3 : 0), "\r\n\r\n", 4);
            if (!end) {
                if (s->line_len > HEADER_MAX) {
                    st.fail_status++;
                    sub_fail(s, 0, -3);
                    return;
                }
                continue;
            }
            sub_headers_done(s, (size_t)(end + 4 - s->line), now);
            if (s->state != ST_STREAM)
                return;
            continue;
        }
        if (body_feed(s, rbuf, (size_t)r, now) < 0) {
            st.stream_ends++;
            sub_lost(s);
            return;
        }
        if ((size_t)r < READ_BUF_SIZE)
            return;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* HTTP/2 subscribers (--h2): streams over libnghttp2 client sessions                              */

static nghttp2_session_callbacks *h2_callbacks;
static int64_t h2_now; /* the receive time of the input being processed (once per recv) */

/* Records the first reason a stream failed, for the report. */
static void h2_note_fail(const char *fmt, ...)
{
    if (st.first_h2_fail[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.first_h2_fail, sizeof st.first_h2_fail, fmt, ap);
    va_end(ap);
}

/* The subscriber of stream id on c, or NULL (not ours, or already done with). */
static struct sub *h2_sub(struct h2c *c, int32_t id)
{
    if (c->state == ST_CLOSED)
        return NULL;
    return nghttp2_session_get_stream_user_data(c->session, id);
}

static ssize_t h2_send_cb(nghttp2_session *session, const uint8_t *data, size_t len, int flags, void *arg)
{
    (void)session;
    (void)flags;
    struct h2c *c = arg;
    ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return NGHTTP2_ERR_WOULDBLOCK;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return w;
}

static int h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
    (void)session;
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
        return 0;
    struct sub *s = h2_sub(arg, frame->hd.stream_id);
    if (!s || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    int status = 0;
    for (size_t i = 0; i < valuelen && isdigit(value[i]); i++)
        status = status * 10 + (value[i] - '0');
    s->h2_status = status;
    return 0;
}

/* The response headers of a stream are in: 200 makes it a subscriber, anything else a failure. */
static void h2_response(struct h2c *c, struct sub *s, int32_t id)
{
    if (s->state != ST_HEADERS)
        return;
    if (s->h2_status != 200) {
        st.fail_status++;
        sub_fail(s, 0, s->h2_status ? s->h2_status : -1);
        nghttp2_session_set_stream_user_data(c->session, id, NULL);
        /* the error body is of no interest: stop the stream */
        (void)nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        return;
    }
    s->state = ST_STREAM;
    st.sub_ready++;
    st.sub_inflight--;
    st.connect_end = h2_now;
    s->counted_ready = true;
    if (opt.private_users)
        live_per_user[user_of(s)]++;
}

static int h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    struct h2c *c = arg;
    if (c->state == ST_CLOSED)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
        if (frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
            return 0;
        struct sub *s = h2_sub(c, frame->hd.stream_id);
        if (s)
            h2_response(c, s, frame->hd.stream_id);
        return 0;
    }
    case NGHTTP2_SETTINGS: {
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            return 0;
        /* Streams beyond the server's limit would wait in nghttp2 for ever (an SSE stream never
         * ends): fail them now, saying why, instead of at --duration-limit. */
        uint32_t max = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        for (uint32_t i = max; i < c->n; i++) {
            struct sub *s = &subs[c->first + i];
            if (s->state != ST_HEADERS)
                continue;
            st.h2_excess++;
            st.fail_status++;
            h2_note_fail("the server allows %u streams per connection, --h2-streams-per-conn is %u", max, c->n);
            sub_fail(s, 0, -6);
        }
        return 0;
    }
    case NGHTTP2_GOAWAY:
        if (st.h2_goaways++ == 0)
            st.first_goaway_error = frame->goaway.error_code;
        return 0;
    default:
        return 0;
    }
}

static int h2_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                            void *arg)
{
    (void)session;
    (void)flags;
    struct sub *s = h2_sub(arg, id);
    if (s && s->state == ST_STREAM)
        sse_feed(s, (const char *)data, len, h2_now);
    return 0;
}

static int h2_on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *arg)
{
    struct sub *s = h2_sub(arg, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    if (error_code == NGHTTP2_REFUSED_STREAM)
        st.h2_refused++;
    else if (error_code != NGHTTP2_NO_ERROR)
        st.h2_resets++;
    if (error_code != NGHTTP2_NO_ERROR && !st.first_h2_error)
        st.first_h2_error = error_code;
    if (s->state == ST_STREAM) {
        if (error_code == NGHTTP2_NO_ERROR)
            st.stream_ends++;
        sub_lost(s);
    } else if (s->state == ST_HEADERS) {
        st.fail_closed++;
        h2_note_fail("stream closed before its response (%s)", nghttp2_http2_strerror(error_code));
        sub_fail(s, 0, -2);
    }
    return 0;
}

static void h2_init(void)
{
    if (nghttp2_session_callbacks_new(&h2_callbacks) != 0)
        die("nghttp2_session_callbacks_new: out of memory");
    nghttp2_session_callbacks_set_send_callback(h2_callbacks, h2_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(h2_callbacks, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h2_callbacks, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h2_callbacks, h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(h2_callbacks, h2_on_stream_close);
}

/* The connection is gone (or unusable): its streams with it. */
static void h2c_close(struct h2c *c, int err)
{
    if (c->state == ST_CLOSED)
        return;
    bool connecting = c->state == ST_CONNECTING;
    c->state = ST_CLOSED; /* from here on the callbacks ignore c */
    if (c->fd >= 0) {
        ep_ctl(EPOLL_CTL_DEL, c->fd, 0, NULL);
        close(c->fd);
        c->fd = -1;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        struct sub *s = &subs[c->first + i];
        if (s->state == ST_STREAM) {
            sub_lost(s);
        } else if (s->state != ST_CLOSED) {
            if (connecting)
                st.fail_connect++;
            else
                st.fail_closed++;
            sub_fail(s, err, connecting ? 0 : -2);
        }
    }
    if (c->session) {
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
}

static void h2c_arm(struct h2c *c)
{
    bool want = nghttp2_session_want_write(c->session) != 0;
    if (want != c->want_out) {
        ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), c);
        c->want_out = want;
    }
}

/* Sends what the session has (requests, SETTINGS, WINDOW_UPDATEs) as far as the socket takes it. */
static void h2c_flush(struct h2c *c)
{
    int rc = nghttp2_session_send(c->session);
    if (rc != 0) {
        h2_note_fail("sending: %s", nghttp2_strerror(rc));
        h2c_close(c, EIO);
        return;
    }
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
        h2c_close(c, 0); /* GOAWAY and no stream left */
        return;
    }
    h2c_arm(c);
}

/* The subscribe request of s as one stream of c. nghttp2 copies the header fields. */
static int h2_submit(struct h2c *c, struct sub *s)
{
    char path[600], authority[80], auth[JWT_MAX + 16];
    const char *jwt = opt.jwt;
    char tok[JWT_MAX];
    if (opt.private_users) {
        char user[48];
        snprintf(user, sizeof user, PRIVATE_PREFIX "%ld", user_of(s));
        mint_jwt(user, "", tok, sizeof tok);
        jwt = tok;
    }
    snprintf(path, sizeof path, "/sse%s%s", opt.sse_events[0] ? "?events=" : "", opt.sse_events);
    snprintf(authority, sizeof authority, "%s:%d", opt.host, opt.port);
    snprintf(auth, sizeof auth, "Bearer %s", jwt);
#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }
    const nghttp2_nv nva[] = {
        NV(":method", "GET"),       NV(":scheme", "http"),          NV(":authority", authority),
        NV(":path", path),          NV("authorization", auth),      NV("accept", "text/event-stream"),
    };
#undef NV
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, sizeof nva / sizeof nva[0], NULL, s);
    return id < 0 ? (int)id : 0;
}

/* Connected: the session, our SETTINGS and windows, then every stream's request. */
static void h2c_connected(struct h2c *c)
{
    int rc = nghttp2_session_client_new(&c->session, h2_callbacks, c);
    if (rc != 0)
        die("nghttp2_session_client_new: %s", nghttp2_strerror(rc));
    const nghttp2_settings_entry settings[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
    };
    rc = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]);
    if (rc == 0)
        rc = nghttp2_submit_window_update(c->session, NGHTTP2_FLAG_NONE, 0,
                                          H2_CONN_WINDOW - NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE);
    if (rc != 0)
        die("nghttp2 settings: %s", nghttp2_strerror(rc));
    c->state = ST_STREAM;
    for (uint32_t i = 0; i < c->n; i++) {
        struct sub *s = &subs[c->first + i];
        if (s->state != ST_CONNECTING)
            continue;
        rc = h2_submit(c, s);
        if (rc != 0) {
            st.fail_connect++;
            h2_note_fail("nghttp2_submit_request: %s", nghttp2_strerror(rc));
            sub_fail(s, 0, -7);
            continue;
        }
        s->state = ST_HEADERS;
    }
    c->want_out = true; /* as registered */
    h2c_flush(c);
}

/* Starts connection c: its n streams count as started (and in flight) from now. */
static void h2c_start(struct h2c *c)
{
    c->kind = KIND_H2;
    for (uint32_t i = 0; i < c->n; i++) {
        struct sub *s = &subs[c->first + i];
        s->kind = KIND_SUB;
        s->state = ST_CONNECTING;
        s->last_id = -1;
        s->ev_seq = s->ev_t = s->ev_run = -1;
    }
    st.sub_started += c->n;
    st.sub_inflight += c->n;
    int err = 0;
    c->fd = open_socket(c->idx, &err);
    if (c->fd < 0) {
        h2c_close(c, err); /* state is ST_CONNECTING: counted as connect failures */
        return;
    }
    c->state = ST_CONNECTING;
    c->want_out = true;
    ep_ctl(EPOLL_CTL_ADD, c->fd, EPOLLOUT, c);
}

static void h2c_event(struct h2c *c, uint32_t events)
{
    if (c->state == ST_CLOSED)
        return;
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            h2c_close(c, err ? err : ECONNRESET);
            return;
        }
        h2c_connected(c);
        return;
    }
    if (events & EPOLLOUT) {
        h2c_flush(c);
        if (c->state == ST_CLOSED)
            return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        return;
    for (int rounds = 0; rounds < 8; rounds++) {
        ssize_t r = recv(c->fd, rbuf, READ_BUF_SIZE, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (r <= 0) {
            h2c_close(c, r < 0 ? errno : 0);
            return;
        }
        h2_now = now_ns();
        ssize_t rc = nghttp2_session_mem_recv(c->session, (const uint8_t *)rbuf, (size_t)r);
        if (rc < 0) {
            h2_note_fail("receiving: %s", nghttp2_strerror((int)rc));
            h2c_close(c, EPROTO);
            return;
        }
        if ((size_t)r < READ_BUF_SIZE)
            break;
    }
    h2c_flush(c); /* WINDOW_UPDATEs, SETTINGS and PING acks */
}

/* Closes the connections and frees the sessions (at exit). */
static void h2_cleanup(void)
{
    for (long i = 0; i < n_h2conns; i++) {
        struct h2c *c = &h2conns[i];
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->state = ST_CLOSED;
        if (c->session)
            nghttp2_session_del(c->session);
        c->session = NULL;
    }
    free(h2conns);
    h2conns = NULL;
    n_h2conns = 0;
    if (h2_callbacks)
        nghttp2_session_callbacks_del(h2_callbacks);
    h2_callbacks = NULL;
}

/* Every epoll target starts with its kind. */
static void pub_event(struct pub *p, uint32_t events);
static void on_event(void *ptr, uint32_t events)
{
    switch (*(uint8_t *)ptr) {
    case KIND_SUB: sub_event(ptr, events); break;
    case KIND_PUB: pub_event(ptr, events); break;
    case KIND_H2: h2c_event(ptr, events); break;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Publishers (also the login clients of --mode=login)                                            */

static char *pad;
static char login_body[512];

static void pub_close(struct pub *p)
{
    if (p->fd >= 0) {
        ep_ctl(EPOLL_CTL_DEL, p->fd, 0, NULL);
        close(p->fd);
    }
    p->fd = -1;
    p->state = ST_CLOSED;
}

static void pub_connect(struct pub *p)
{
    int err = 0;
    p->kind = KIND_PUB;
    p->fd = open_socket((uint32_t)p->idx, &err);
    p->inflight = 0;
    p->head = 0;
    p->in_len = 0;
    p->out_len = p->out_off = 0;
    p->want_out = true;
    if (p->fd < 0) {
        st.pub_conn_failed++;
        p->state = ST_CLOSED;
        return;
    }
    p->state = ST_CONNECTING;
    ep_ctl(EPOLL_CTL_ADD, p->fd, EPOLLIN | EPOLLOUT, p);
}

static void pub_arm(struct pub *p)
{
    bool want = p->out_off < p->out_len || p->state == ST_CONNECTING;
    if (want != p->want_out) {
        ep_ctl(EPOLL_CTL_MOD, p->fd, EPOLLIN | (want ? EPOLLOUT : 0), p);
        p->want_out = want;
    }
}

static void pub_flush(struct pub *p)
{
    while (p->out_off < p->out_len) {
        ssize_t w = send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            st.pub_errors_io++;
            return;
        }
        p->out_off += (size_t)w;
    }
    if (p->out_off == p->out_len)
        p->out_off = p->out_len = 0;
    pub_arm(p);
}

static void out_reserve(struct pub *p, size_t more)
{
    if (p->out_len + more > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 4096;
        while (cap < p->out_len + more)
            cap *= 2;
        p->out = xrealloc(p->out, cap);
        p->out_cap = cap;
    }
}

/* Queues one request on p: an event (fan-out modes) or a login (login mode). An event's data is
 * {"run":R,"seq":i,"t":<send time, ns monotonic>,"pad":"xxx..."}, padded to about --size bytes;
 * broker wraps it as {"event":"<--event-name, or user.bench-u<i mod N>.msg>","data":<data>}, nchan
 * takes it as the message body. */
static void pub_send(struct pub *p, int64_t seq)
{
    int64_t now = now_ns();
    char data[256];
    size_t dlen = 0, padlen = 0, total;
    if (opt.mode == MODE_LOGIN) {
        total = strlen(login_body);
    } else {
        int n = snprintf(data, sizeof data, "{\"run\":%" PRId64 ",\"seq\":%" PRId64 ",\"t\":%" PRId64 ",\"pad\":\"",
                         run_id, seq, now);
        dlen = (size_t)n;
        padlen = opt.size > (long)dlen + 2 ? (size_t)opt.size - dlen - 2 : 0;
        total = dlen + padlen + 2;
    }
    char wrap_open[320];
    if (opt.private_users)
        snprintf(wrap_open, sizeof wrap_open, "{\"event\":\"user." PRIVATE_PREFIX "%" PRId64 ".msg\",\"data\":",
                 seq % opt.private_users);
    else
        snprintf(wrap_open, sizeof wrap_open, "{\"event\":\"%s\",\"data\":", opt.event_name);
    char head[3000];
    int hn;
    if (opt.mode == MODE_LOGIN)
        hn = snprintf(head, sizeof head,
                      "POST /login HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%s",
                      opt.host, opt.port, total, login_body);
    else if (opt.target == TARGET_BROKER)
        hn = snprintf(head, sizeof head,
                      "POST /insert HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      opt.host, opt.port, pub_jwt, total + strlen(wrap_open) + 1, wrap_open);
    else
        hn = snprintf(head, sizeof head,
                      "POST /pub/bench HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      opt.host, opt.port, total);
    if (hn < 0 || (size_t)hn >= sizeof head)
        die("request head too long");
    out_reserve(p, (size_t)hn + total + 8);
    memcpy(p->out + p->out_len, head, (size_t)hn);
    p->out_len += (size_t)hn;
    if (opt.mode != MODE_LOGIN) {
        memcpy(p->out + p->out_len, data, dlen);
        p->out_len += dlen;
        memcpy(p->out + p->out_len, pad, padlen);
        p->out_len += padlen;
        memcpy(p->out + p->out_len, "\"}", 2);
        p->out_len += 2;
        if (opt.target == TARGET_BROKER)
            p->out[p->out_len++] = '}';
    }
    int slot = (p->head + p->inflight) % PIPELINE_MAX;
    p->sent_at[slot] = now;
    p->seq[slot] = seq;
    p->inflight++;
    st.sent++;
    if (!st.pub_start)
        st.pub_start = now;
    pub_flush(p);
}

static void count_status(int status)
{
    int cls = status / 100;
    st.status_counts[cls >= 1 && cls <= 5 ? cls : 0]++;
}

/* Parses complete responses out of p->in. Returns -1 when the connection must be dropped. */
static int pub_parse(struct pub *p, int64_t now)
{
    for (;;) {
        if (p->in_len == 0)
            return 0;
        const char *end = memmem(p->in, p->in_len, "\r\n\r\n", 4);
        if (!end)
            return p->in_len >= PUB_IN_MAX ? -1 : 0;
        size_t hlen = (size_t)(end + 4 - p->in);
        int status = 0;
        sscanf(p->in, "HTTP/1.%*d %d", &status);
        size_t blen = 0;
        const char *cl = memcasemem(p->in, hlen, "\r\ncontent-length:");
        bool closes = memcasemem(p->in, hlen, "\r\nconnection: close") != NULL;
        if (cl) {
            blen = (size_t)strtoul(cl + 17, NULL, 10);
        } else if (memcasemem(p->in, hlen, "\r\ntransfer-encoding: chunked")) {
            const char *z = memmem(p->in + hlen, p->in_len - hlen, "\r\n0\r\n\r\n", 7);
            if (!z)
                return p->in_len >= PUB_IN_MAX ? -1 : 0;
            blen = (size_t)(z + 7 - (p->in + hlen));
        }
        if (hlen + blen > p->in_len)
            return hlen + blen > PUB_IN_MAX ? -1 : 0;
        if (p->inflight == 0)
            return -1; /* an answer to nothing */
        int slot = p->head;
        p->head = (p->head + 1) % PIPELINE_MAX;
        p->inflight--;
        count_status(status);
        bool ok = status >= 200 && status < 300;
        if (ok && opt.mode == MODE_LOGIN)
            ok = memmem(p->in + hlen, blen, "\"jwt\"", 5) != NULL;
        if (ok) {
            st.acked++;
            hist_add(&st.ack, (now - p->sent_at[slot]) / 1000);
            st.last_ack = now;
            int64_t seq = p->seq[slot];
            if (acked_map && seq >= 0 && seq < opt.events)
                acked_map[seq >> 3] |= (uint8_t)(1u << (seq & 7));
            if (opt.private_users && seq >= 0) {
                /* every subscriber has its stream before publishing starts: this event is due to
                 * the open streams of its user, now */
                long u = (long)(seq % opt.private_users);
                acked_per_user[u]++;
                st.live_expected += live_per_user[u];
            }
        } else {
            st.errors++;
            if (!st.first_error_status) {
                st.first_error_status = status ? status : -1;
                size_t bl = blen < sizeof st.first_error_body - 1 ? blen : sizeof st.first_error_body - 1;
                memcpy(st.first_error_body, p->in + hlen, bl);
                st.first_error_body[bl] = 0;
                for (char *c = st.first_error_body; *c; c++)
                    if (*c == '\n' || *c == '\r')
                        *c = ' ';
            }
        }
        memmove(p->in, p->in + hlen + blen, p->in_len - hlen - blen);
        p->in_len -= hlen + blen;
        if (closes)
            return -1;
    }
}

static void pub_event(struct pub *p, uint32_t events)
{
    int64_t now = now_ns();
    if (p->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            st.pub_conn_failed++;
            pub_close(p);
            return;
        }
        p->state = ST_READY;
        pub_arm(p);
    }
    if (events & EPOLLOUT)
        pub_flush(p);
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    for (int rounds = 0; rounds < 4; rounds++) {
        ssize_t r = recv(p->fd, p->in + p->in_len, PUB_IN_MAX - p->in_len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        int rc = r > 0 ? (p->in_len += (size_t)r, pub_parse(p, now)) : -1;
        if (rc < 0 || r <= 0) {
            /* Requests still in flight on a dropped connection are errors; reconnect for more. */
            st.errors += (uint64_t)p->inflight;
            if (p->inflight && !st.first_error_status)
                st.first_error_status = -4;
            pub_close(p);
            st.pub_reconnects++;
            pub_connect(p);
            return;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Main loop                                                                                      */

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    long subs_fds = opt.h2 ? (opt.subscribers + opt.h2_streams_per_conn - 1) / opt.h2_streams_per_conn : opt.subscribers;
    long need = subs_fds + opt.publishers + 32;
    if ((long)rl.rlim_cur < need)
        die("need %ld descriptors, the limit is %ld", need, (long)rl.rlim_cur);
}

static void usage(void)
{
    fputs(
        "usage: loadgen [options]\n"
        "  --target=broker|nchan     server kind [broker]\n"
        "  --mode=fanout|idle|login  [fanout]\n"
        "  --host=IP --port=N        loopback address of the server [127.0.0.1:8080]\n"
        "  --subscribers=N           SSE subscribers [100]\n"
        "  --events=M                events to publish (also the cap with --publish-seconds) [1000]\n"
        "  --rate=R                  total events/s, 0 = flat out [0]\n"
        "  --publishers=K            keep-alive publisher connections (login clients) [4];\n"
        "                            0 = subscribe only (fan-out, with --run-id): check another\n"
        "                            loadgen's --events events\n"
        "  --run-id=R                run id carried in the events, to share a run [random]\n"
        "  --pipeline=P              requests in flight per publisher connection, 1..64 [1]\n"
        "  --size=BYTES              approximate size of an event's data [100]\n"
        "  --publish-seconds=S       stop publishing after S seconds [0 = off]\n"
        "  --duration-limit=S        abort anything still running after S seconds [60]\n"
        "  --connect-rate=C          new subscriber connections per second, 0 = unlimited [0]\n"
        "  --connect-inflight=N      subscribers connecting at once [1000]\n"
        "  --src-addrs=N             spread connections over 127.0.0.1..127.0.0.N [4]\n"
        "  --drain-timeout=S         stop waiting for deliveries after S s without progress [5]\n"
        "  --hold=S                  idle mode: hold the subscribers S seconds after measuring [3]\n"
        "  --jwt=TOKEN               broker token (default: create a user and log in)\n"
        "  --secret=S                broker's --jwt_secret: mint HS256 tokens here instead of logging\n"
        "                            in (subscribers: user bench-shared; publishers: bench-publisher)\n"
        "  --publisher-roles=A,B     roles claim of the minted publisher token (needs --secret) [none]\n"
        "  --private-users=N         private events (needs --secret): subscriber i holds a token of its\n"
        "                            own user bench-u<i mod N> and reads /sse with no filter; event seq s\n"
        "                            is published as user.bench-u<s mod N>.msg; a subscriber must get\n"
        "                            exactly its user's events: any other frame counts as foreign [0 = off]\n"
        "  --event-name=NAME         name of the published events, [A-Za-z0-9_.-] (broker) [bench]\n"
        "  --sse-events=A,B          the subscribers' ?events= filter, empty = none (broker)\n"
        "                            [the event name; none with --private-users]\n"
        "  --username=U --password=P credentials to create/use (login mode, or to obtain the jwt)\n"
        "  --server-pid=PID          server process to sample (its descendants are included)\n"
        "  --label=TEXT              free text copied to the RESULT line\n"
        "  --progress                a progress line on stderr every second\n"
        "  --h2                      subscribers as HTTP/2 streams (prior knowledge, plain TCP; broker)\n"
        "  --h2-streams-per-conn=N   streams per HTTP/2 connection, at most the server's\n"
        "                            --h2_max_streams (also --h2_streams_per_conn) [100]\n"
        "  --settle=S                fan-out: read S s after connecting, before sampling the server's\n"
        "                            memory per subscriber and publishing [0]\n",
        stderr);
    exit(2);
}

static double parse_num(const char *name, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi)
        die("--%s: %s is not a number in [%g, %g]", name, v, lo, hi);
    return d;
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "target", 1, 0, 't' },         { "mode", 1, 0, 'm' },
        { "host", 1, 0, 'H' },           { "port", 1, 0, 'p' },
        { "subscribers", 1, 0, 'n' },    { "events", 1, 0, 'e' },
        { "rate", 1, 0, 'r' },           { "publishers", 1, 0, 'k' },
        { "pipeline", 1, 0, 'P' },       { "size", 1, 0, 's' },
        { "duration-limit", 1, 0, 'd' }, { "publish-seconds", 1, 0, 'S' },
        { "connect-rate", 1, 0, 'c' },   { "connect-inflight", 1, 0, 'i' },
        { "src-addrs", 1, 0, 'a' },      { "drain-timeout", 1, 0, 'D' },
        { "hold", 1, 0, 'h' },           { "jwt", 1, 0, 'j' },
        { "username", 1, 0, 'u' },       { "password", 1, 0, 'w' },
        { "server-pid", 1, 0, 'x' },     { "label", 1, 0, 'l' },
        { "progress", 0, 0, 'g' },       { "help", 0, 0, '?' },
        { "run-id", 1, 0, 'R' },
        { "secret", 1, 0, 'K' },         { "private-users", 1, 0, 'U' },
        { "publisher-roles", 1, 0, 'O' }, { "event-name", 1, 0, 'E' },
        { "sse-events", 1, 0, 'F' },
        { "h2", 0, 0, '2' },             { "h2-streams-per-conn", 1, 0, 'N' },
        { "h2_streams_per_conn", 1, 0, 'N' }, { "settle", 1, 0, 'T' },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            if (strcmp(optarg, "broker") == 0)
                opt.target = TARGET_BROKER;
            else if (strcmp(optarg, "nchan") == 0)
                opt.target = TARGET_NCHAN;
            else
                die("--target: broker or nchan");
            break;
        case 'm':
            if (strcmp(optarg, "fanout") == 0)
                opt.mode = MODE_FANOUT;
            else if (strcmp(optarg, "idle") == 0)
                opt.mode = MODE_IDLE;
            else if (strcmp(optarg, "login") == 0)
                opt.mode = MODE_LOGIN;
            else
                die("--mode: fanout, idle or login");
            break;
        case 'H': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
                die("--host: only a numeric loopback address (127.0.0.0/8) is allowed");
            snprintf(opt.host, sizeof opt.host, "%s", optarg);
            break;
        }
        case 'p': opt.port = (int)parse_num("port", optarg, 1, 65535); break;
        case 'n': opt.subscribers = (long)parse_num("subscribers", optarg, 0, 1000000); break;
        case 'e': opt.events = (long)parse_num("events", optarg, 0, 100000000); break;
        case 'r': opt.rate = parse_num("rate", optarg, 0, 1e7); break;
        case 'k': opt.publishers = (long)parse_num("publishers", optarg, 0, 10000); break;
        case 'P': opt.pipeline = (long)parse_num("pipeline", optarg, 1, PIPELINE_MAX); break;
        case 's': opt.size = (long)parse_num("size", optarg, 0, 400000); break;
        case 'd': opt.duration_limit = parse_num("duration-limit", optarg, 1, 3600); break;
        case 'S': opt.publish_seconds = parse_num("publish-seconds", optarg, 0, 3600); break;
        case 'c': opt.connect_rate = parse_num("connect-rate", optarg, 0, 1e7); break;
        case 'i': opt.connect_inflight = (long)parse_num("connect-inflight", optarg, 1, 1000000); break;
        case 'a': opt.src_addrs = (long)parse_num("src-addrs", optarg, 1, 250); break;
        case 'D': opt.drain_timeout = parse_num("drain-timeout", optarg, 0.1, 600); break;
        case 'h': opt.hold = parse_num("hold", optarg, 0, 600); break;
        case 'j': snprintf(opt.jwt, sizeof opt.jwt, "%s", optarg); break;
        case 'u': snprintf(opt.username, sizeof opt.username, "%s", optarg); break;
        case 'w': snprintf(opt.password, sizeof opt.password, "%s", optarg); break;
        case 'x': opt.server_pid = (pid_t)parse_num("server-pid", optarg, 1, 1e9); break;
        case 'l':
            snprintf(opt.label, sizeof opt.label, "%s", optarg);
            for (char *q = opt.label; *q; q++)
                if (isspace((unsigned char)*q))
                    *q = '_';
            break;
        case 'g': opt.progress = true; break;
        case 'R': opt.run_id = (int64_t)parse_num("run-id", optarg, 1, 0x3fffffffffffLL); break;
        case 'K':
            if (!optarg[0] || strlen(optarg) >= sizeof opt.secret)
                die("--secret: 1 to %zu bytes", sizeof opt.secret - 1);
            snprintf(opt.secret, sizeof opt.secret, "%s", optarg);
            break;
        case 'U': opt.private_users = (long)parse_num("private-users", optarg, 0, 1000000); break;
        case 'O':
            if (!roles_valid(optarg) || strlen(optarg) >= sizeof opt.publisher_roles)
                die("--publisher-roles: up to 32 comma-separated names of [A-Za-z0-9_.-]{1,64}");
            snprintf(opt.publisher_roles, sizeof opt.publisher_roles, "%s", optarg);
            break;
        case 'E':
            /* names that need no JSON escaping and no URL encoding in ?events= */
            if (!optarg[0] || strlen(optarg) >= sizeof opt.event_name ||
                strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(optarg))
                die("--event-name: 1 to 255 characters of [A-Za-z0-9_.-]");
            snprintf(opt.event_name, sizeof opt.event_name, "%s", optarg);
            break;
        case 'F':
            if (strlen(optarg) >= sizeof opt.sse_events ||
                strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,-") != strlen(optarg))
                die("--sse-events: comma-separated names of [A-Za-z0-9_.-]");
            snprintf(opt.sse_events, sizeof opt.sse_events, "%s", optarg);
            opt.sse_events_set = true;
            break;
        case '2': opt.h2 = true; break;
        case 'N': opt.h2_streams_per_conn = (long)parse_num("h2-streams-per-conn", optarg, 1, 1 << 20); break;
        case 'T': opt.settle = parse_num("settle", optarg, 0, 600); break;
        default: usage();
        }
    }
    if (opt.h2 && opt.target != TARGET_BROKER)
        die("--h2 needs --target=broker (nchan's /sub/bench speaks HTTP/1.1 here)");
    if (optind != argc)
        usage();
    if (opt.mode == MODE_LOGIN && opt.target != TARGET_BROKER)
        die("--mode=login needs --target=broker");
    if (opt.mode == MODE_LOGIN)
        opt.subscribers = 0;
    if (opt.mode == MODE_IDLE)
        opt.publishers = 0;
    if (opt.mode == MODE_LOGIN && opt.publishers == 0)
        die("--publishers must be at least 1");
    listen_only = opt.mode == MODE_FANOUT && opt.publishers == 0;
    if (listen_only && (!opt.run_id || !opt.subscribers))
        die("--publishers=0 (subscribe only) needs --run-id and --subscribers");
    if (opt.secret[0] && (opt.target != TARGET_BROKER || opt.mode == MODE_LOGIN))
        die("--secret needs --target=broker and --mode=fanout or idle");
    if (opt.publisher_roles[0] && (!opt.secret[0] || opt.jwt[0]))
        die("--publisher-roles needs --secret (and no --jwt)");
    if (opt.private_users) {
        if (!opt.secret[0])
            die("--private-users needs --secret to mint the users' tokens");
        if (listen_only)
            die("--private-users needs publishers of its own (--publishers >= 1)");
    }
    if (!opt.sse_events_set) /* private: no filter, so only the rules keep other users' events away */
        snprintf(opt.sse_events, sizeof opt.sse_events, "%s", opt.private_users ? "" : opt.event_name);
    if (opt.mode == MODE_LOGIN && opt.publish_seconds == 0)
        opt.publish_seconds = 10;
    if (opt.mode == MODE_LOGIN)
        opt.events = 100000000; /* bounded by --publish-seconds */
    /* the per-subscriber bitmaps of received seqs must fit */
    if ((double)opt.subscribers * (double)opt.events / 8 > 4e9)
        die("--subscribers x --events too large for the bitmaps of received events");
}

static const char *status_name(bool timed_out)
{
    if (interrupted)
        return "interrupted";
    return timed_out ? "timeout" : "ok";
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    raise_nofile();
    setvbuf(stdout, NULL, _IOLBF, 0);

    int64_t start = now_ns();
    int64_t deadline = start + (int64_t)(opt.duration_limit * 1e9);
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        run_id = ((int64_t)ts.tv_sec * 1000003 + ts.tv_nsec / 1000 + getpid()) & 0x3fffffffffffLL;
        if (opt.run_id)
            run_id = opt.run_id;
    }
    map_bytes = (size_t)(opt.events + 7) / 8;
    acked_map = xcalloc(map_bytes, 1);
    if (listen_only) { /* nothing is acked here: every seq of the run is expected */
        memset(acked_map, 0xff, map_bytes);
        if (opt.events % 8)
            acked_map[map_bytes - 1] = (uint8_t)((1u << (opt.events % 8)) - 1);
    }
    pad = xcalloc((size_t)opt.size + 1, 1);
    memset(pad, 'x', (size_t)opt.size);
    rbuf = xcalloc(READ_BUF_SIZE, 1);

    if (opt.secret[0] && !opt.jwt[0]) {
        mint_jwt("bench-shared", "", opt.jwt, sizeof opt.jwt);
        mint_jwt("bench-publisher", opt.publisher_roles, pub_jwt, sizeof pub_jwt);
    } else {
        if (opt.target == TARGET_BROKER &&
            (opt.mode == MODE_LOGIN || (!opt.jwt[0] && (opt.subscribers || opt.publishers))))
            obtain_jwt();
        memcpy(pub_jwt, opt.jwt, sizeof pub_jwt);
    }
    if (opt.private_users) {
        acked_per_user = xcalloc((size_t)opt.private_users, sizeof *acked_per_user);
        live_per_user = xcalloc((size_t)opt.private_users, sizeof *live_per_user);
    }
    if (opt.mode == MODE_LOGIN)
        snprintf(login_body, sizeof login_body, "{\"username\":\"%s\",\"password\":\"%s\"}", opt.username,
                 opt.password);
    build_sub_request();

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    subs = xcalloc((size_t)opt.subscribers, sizeof *subs);
    pubs = xcalloc((size_t)opt.publishers, sizeof *pubs);
    for (long i = 0; i < opt.subscribers; i++) {
        subs[i].idx = (uint32_t)i;
        subs[i].fd = -1;
        subs[i].kind = KIND_SUB;
    }
    if (opt.h2) {
        h2_init();
        n_h2conns = (opt.subscribers + opt.h2_streams_per_conn - 1) / opt.h2_streams_per_conn;
        h2conns = xcalloc((size_t)n_h2conns, sizeof *h2conns);
        for (long i = 0; i < n_h2conns; i++) {
            struct h2c *c = &h2conns[i];
            c->kind = KIND_H2;
            c->fd = -1;
            c->idx = (uint32_t)i;
            c->first = (uint32_t)(i * opt.h2_streams_per_conn);
            long left = opt.subscribers - (long)c->first;
            c->n = (uint32_t)(left < opt.h2_streams_per_conn ? left : opt.h2_streams_per_conn);
        }
    }
    for (long i = 0; i < opt.publishers; i++) {
        pubs[i].idx = (int)(i + opt.subscribers);
        pubs[i].fd = -1;
        pubs[i].in = xcalloc(PUB_IN_MAX, 1);
    }

    struct proc_sample before = sample_server();
    double lg_cpu0 = self_cpu_s();
    struct epoll_event evs[MAX_EVENTS_PER_WAIT];
    bool timed_out = false;

    /* Phase 1: subscribers. */
    long next_sub = 0, next_conn = 0;
    st.connect_start = now_ns();
    while (!interrupted && (next_sub < opt.subscribers || st.sub_inflight > 0)) {
        int64_t now = now_ns();
        if (now > deadline) {
            timed_out = true;
            break;
        }
        int64_t allowed = opt.subscribers;
        if (opt.connect_rate > 0)
            allowed = 1 + (int64_t)((double)(now - st.connect_start) / 1e9 * opt.connect_rate);
        if (opt.h2) {
            /* a connection at a time, with all its streams */
            while (next_conn < n_h2conns && next_sub < allowed && st.sub_inflight < opt.connect_inflight) {
                h2c_start(&h2conns[next_conn]);
                next_sub += h2conns[next_conn++].n;
            }
        } else {
            while (next_sub < opt.subscribers && next_sub < allowed && st.sub_inflight < opt.connect_inflight)
                sub_start(&subs[next_sub++]);
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS_PER_WAIT, opt.connect_rate > 0 ? 1 : 50);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        if (opt.progress) {
            static int64_t last;
            if (now - last > 1000000000) {
                last = now;
                fprintf(stderr, "connect: started=%ld ready=%ld failed=%ld\n", st.sub_started,
                        st.sub_ready, st.sub_failed);
            }
        }
    }
    if (!st.connect_end)
        st.connect_end = now_ns();
    double connect_s = (double)(st.connect_end - st.connect_start) / 1e9;
    printf("subscribers: %ld ready, %ld failed (connect %ld, status %ld, closed %ld) in %.3f s\n",
           st.sub_ready, st.sub_failed, st.fail_connect, st.fail_status, st.fail_closed, connect_s);
    if (st.sub_failed)
        printf("  first failure: errno %d (%s), status %d\n", st.first_fail_errno,
               st.first_fail_errno ? strerror(st.first_fail_errno) : "-", st.first_fail_status);
    if (opt.h2)
        printf("http/2: %ld streams on %ld connections (up to %ld each)%s%s\n", opt.subscribers, n_h2conns,
               opt.h2_streams_per_conn, st.first_h2_fail[0] ? "; first failure: " : "", st.first_h2_fail);

    if (opt.mode == MODE_IDLE) {
        /* Let the server settle, then measure. Keep reading (heartbeats, snapshot). */
        int64_t until = now_ns() + 1000000000;
        while (!interrupted && now_ns() < until && now_ns() < deadline) {
            int n = epoll_wait(ep, evs, MAX_EVENTS_PER_WAIT, 50);
            for (int i = 0; i < n; i++)
                on_event(evs[i].data.ptr, evs[i].events);
        }
        struct proc_sample after = sample_server();
        long ok = st.sub_ready - st.sub_disconnected;
        double per_sub_pss = ok > 0 ? (double)(after.pss_kb - before.pss_kb) * 1024 / (double)ok : 0;
        double per_sub_rss = ok > 0 ? (double)(after.rss_kb - before.rss_kb) * 1024 / (double)ok : 0;
        double per_sub_sock = ok > 0 ? (double)(after.tcp_mem_kb - before.tcp_mem_kb) * 1024 / (double)ok : 0;
        printf("server: rss %ld -> %ld kB, pss %ld -> %ld kB (%d processes)\n", before.rss_kb, after.rss_kb,
               before.pss_kb, after.pss_kb, after.npids);
        printf("per idle subscriber: %.0f bytes (pss), %.0f bytes (rss); kernel tcp memory %.0f bytes "
               "(both ends)\n",
               per_sub_pss, per_sub_rss, per_sub_sock);
        until = now_ns() + (int64_t)(opt.hold * 1e9);
        while (!interrupted && now_ns() < until && now_ns() < deadline) {
            int n = epoll_wait(ep, evs, MAX_EVENTS_PER_WAIT, 50);
            for (int i = 0; i < n; i++)
                on_event(evs[i].data.ptr, evs[i].events);
        }
        long still = st.sub_ready - st.sub_disconnected;
        printf("held %.1f s: %ld of %ld still connected\n", opt.hold, still, st.sub_ready);
        printf("RESULT target=%s mode=idle label=%s subs=%ld subs_ok=%ld conn_failed=%ld connect_s=%.3f "
               "rss_before_kb=%ld rss_kb=%ld pss_before_kb=%ld pss_kb=%ld bytes_per_sub=%.0f "
               "rss_bytes_per_sub=%.0f sock_bytes_per_sub=%.0f dropped=%ld status=%s h2=%d conns=%ld\n",
               opt.target == TARGET_BROKER ? "broker" : "nchan", opt.label[0] ? opt.label : "-",
               opt.subscribers, st.sub_ready, st.sub_failed, connect_s, before.rss_kb, after.rss_kb,
               before.pss_kb, after.pss_kb, per_sub_pss, per_sub_rss, per_sub_sock,
               st.sub_ready - still, status_name(timed_out || now_ns() > deadline), opt.h2,
               opt.h2 ? n_h2conns : st.sub_ready);
        h2_cleanup();
        return 0;
    }

    /* The server's memory with every subscriber connected, before any publisher: after --settle
     * seconds of reading (what scenario c's idle mode does for a second). */
    if (opt.settle > 0) {
        int64_t until = now_ns() + (int64_t)(opt.settle * 1e9);
        while (!interrupted && now_ns() < until && now_ns() < deadline) {
            int n = epoll_wait(ep, evs, MAX_EVENTS_PER_WAIT, 50);
            for (int i = 0; i < n; i++)
                on_event(evs[i].data.ptr, evs[i].events);
        }
    }
    struct proc_sample connected = sample_server();
    long connected_ok = st.sub_ready - st.sub_disconnected;

    /* Phase 2: publishers connect, then publish; subscribers keep reading. */
    for (long i = 0; i < opt.publishers; i++)
        pub_connect(&pubs[i]);
    struct proc_sample pub_before = sample_server();
    int64_t t0 = 0;
    int64_t last_progress = now_ns(), last_print = 0;
    uint64_t seen_deliveries = 0;
    long rr = 0;
    bool publishing_done = listen_only;
    int64_t pub_stop_at = 0;
    int64_t linger_until = 0;
    while (!interrupted) {
        int64_t now = now_ns();
        if (now > deadline) {
            timed_out = true;
            break;
        }
        long ready_pubs = 0, closed_pubs = 0;
        for (long i = 0; i < opt.publishers; i++) {
            ready_pubs += pubs[i].state == ST_READY;
            closed_pubs += pubs[i].state == ST_CLOSED;
        }
        if (opt.publishers && closed_pubs == opt.publishers) {
            fprintf(stderr, "loadgen: every publisher connection failed\n");
            break;
        }
        if (!t0 && ready_pubs + closed_pubs == opt.publishers) {
            t0 = now;
            pub_stop_at = opt.publish_seconds > 0 ? t0 + (int64_t)(opt.publish_seconds * 1e9) : 0;
        }
        int timeout_ms = 50;
        if (t0 && !publishing_done) {
            bool more = next_seq < opt.events && (!pub_stop_at || now < pub_stop_at);
            while (more) {
                int64_t due = opt.rate > 0 ? t0 + (int64_t)((double)next_seq * 1e9 / opt.rate) : now;
                if (due > now) {
                    int64_t ms = (due - now + 999999) / 1000000;
                    timeout_ms = ms < timeout_ms ? (int)ms : timeout_ms;
                    break;
                }
                struct pub *p = NULL;
                for (long j = 0; j < opt.publishers; j++) {
                    struct pub *c = &pubs[(rr + j) % opt.publishers];
                    if (c->state == ST_READY && c->inflight < opt.pipeline) {
                        p = c;
                        rr = (rr + j + 1) % opt.publishers;
                        break;
                    }
                }
                if (!p)
                    break;
                if (now - due > st.max_lag)
                    st.max_lag = now - due;
                pub_send(p, opt.mode == MODE_LOGIN ? -1 : next_seq);
                next_seq++;
                more = next_seq < opt.events && (!pub_stop_at || now < pub_stop_at);
            }
            if (!more) {
                long inflight = 0;
                for (long j = 0; j < opt.publishers; j++)
                    inflight += pubs[j].state != ST_CLOSED ? pubs[j].inflight : 0;
                if (inflight == 0) {
                    publishing_done = true;
                    st.pub_end = now;
                    last_progress = now;
                }
            }
        }
        if (publishing_done) {
            long live = st.sub_ready - st.sub_disconnected;
            /* what every subscriber must get: what was acked, or (subscribe only) every seq of the run */
            uint64_t expected = listen_only ? (uint64_t)opt.events : st.acked;
            uint64_t due = opt.private_users ? st.live_expected : (uint64_t)live * expected;
            if (opt.mode == MODE_LOGIN || live == 0)
                break;
            if (st.live_distinct >= due) {
                /* Private: every own event is in, but a leaked frame of another user's later event
                 * could still be on its way: keep reading for a second so it gets counted. */
                if (!opt.private_users)
                    break;
                if (!linger_until)
                    linger_until = now + 1000000000;
                else if (now >= linger_until)
                    break;
                last_progress = now;
            }
            if (listen_only && !st.deliveries)
                last_progress = now; /* the other loadgen has not started: --duration-limit bounds this */
            if (st.deliveries != seen_deliveries) {
                seen_deliveries = st.deliveries;
                last_progress = now;
            } else if (now - last_progress > (int64_t)(opt.drain_timeout * 1e9)) {
                fprintf(stderr, "loadgen: no delivery for %.1f s; giving up on the rest\n", opt.drain_timeout);
                break;
            }
        }
        if (opt.progress && now - last_print > 1000000000) {
            last_print = now;
            fprintf(stderr, "t=%.1fs sent=%" PRIu64 " acked=%" PRIu64 " errors=%" PRIu64 " deliveries=%" PRIu64
                    " live_subs=%ld\n",
                    (double)(now - start) / 1e9, st.sent, st.acked, st.errors, st.deliveries,
                    st.sub_ready - st.sub_disconnected);
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS_PER_WAIT, timeout_ms);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    int64_t end = now_ns();
    if (!st.pub_end)
        st.pub_end = end;
    struct proc_sample after = sample_server();
    double lg_cpu = self_cpu_s() - lg_cpu0;

    /* Loss: every acked (expected) event that a subscriber with a stream did not get. */
    uint64_t expected = listen_only ? (uint64_t)opt.events : st.acked;
    uint64_t lost = 0, unacked_delivered = 0;
    for (long i = 0; i < opt.subscribers; i++) {
        struct sub *s = &subs[i];
        if (!s->counted_ready)
            continue;
        uint64_t got = 0;
        for (size_t b = 0; b < map_bytes; b++) {
            uint8_t seen = s->seen ? s->seen[b] : 0;
            got += (uint64_t)__builtin_popcount(seen & acked_map[b]);
            unacked_delivered += (uint64_t)__builtin_popcount(seen & (uint8_t)~acked_map[b]);
        }
        /* private: s's bitmap holds only its own user's seqs (anything else was counted foreign) */
        lost += (opt.private_users ? acked_per_user[user_of(s)] : expected) - got;
    }

    const char *tname = opt.target == TARGET_BROKER ? "broker" : "nchan";
    double pub_s = st.pub_start ? (double)(st.pub_end - st.pub_start) / 1e9 : 0;
    double ack_per_s = pub_s > 0 ? (double)st.acked / pub_s : 0;
    double deliv_s = st.last_delivery && st.pub_start ? (double)(st.last_delivery - st.pub_start) / 1e9 : 0;
    double deliveries_per_s = deliv_s > 0 ? (double)st.deliveries / deliv_s : 0;
    double cpu_s = after.cpu_s >= 0 ? after.cpu_s - pub_before.cpu_s : -1;

    if (opt.mode == MODE_LOGIN) {
        printf("logins: %" PRIu64 " ok, %" PRIu64 " failed in %.2f s = %.1f/s; latency p50 %" PRIu64
               " us, p99 %" PRIu64 " us, max %" PRIu64 " us\n",
               st.acked, st.errors, pub_s, ack_per_s, hist_pct(&st.ack, .5), hist_pct(&st.ack, .99), st.ack.max);
    } else {
        if (listen_only)
            printf("published: by another loadgen (run %" PRId64 "); %ld events expected\n", run_id,
                   opt.events);
        else
            printf("published: %" PRIu64 " sent, %" PRIu64 " acked, %" PRIu64 " errors in %.3f s (%.0f acked/s; "
                   "ack latency p50 %" PRIu64 " us, p99 %" PRIu64 " us, max %" PRIu64 " us; max pacing lag %.1f "
                   "ms)\n",
                   st.sent, st.acked, st.errors, pub_s, ack_per_s, hist_pct(&st.ack, .5), hist_pct(&st.ack, .99),
                   st.ack.max, (double)st.max_lag / 1e6);
        printf("delivered: %" PRIu64 " frames in %.3f s = %.0f/s; latency p50 %" PRIu64 " us, p90 %" PRIu64
               " us, p99 %" PRIu64 " us, max %" PRIu64 " us\n",
               st.deliveries, deliv_s, deliveries_per_s, hist_pct(&st.lat, .5), hist_pct(&st.lat, .9),
               hist_pct(&st.lat, .99), st.lat.max);
        printf("integrity: lost %" PRIu64 ", duplicated %" PRIu64 ", out of order %" PRIu64 ", unacked but "
               "delivered %" PRIu64 ", foreign %" PRIu64 ", malformed %" PRIu64 ", heartbeats %" PRIu64
               ", streams dropped %ld\n",
               lost, st.dup, st.order_violations, unacked_delivered, st.foreign, st.bad, st.heartbeats,
               st.sub_disconnected);
        if (opt.private_users)
            printf("private: %ld users, subscriber i is user " PRIVATE_PREFIX "<i mod %ld>; frames of another user's "
                   "event (foreign) %" PRIu64 "%s%s\n",
                   opt.private_users, opt.private_users, st.foreign_user, st.first_foreign[0] ? ", first: " : "",
                   st.first_foreign);
    }
    if (st.errors)
        printf("  first error: status %d %s\n", st.first_error_status, st.first_error_body);
    printf("status classes: 2xx %" PRIu64 " 3xx %" PRIu64 " 4xx %" PRIu64 " 5xx %" PRIu64 " other %" PRIu64
           "; publisher connect failures %ld, reconnects %ld\n",
           st.status_counts[2], st.status_counts[3], st.status_counts[4], st.status_counts[5],
           st.status_counts[0] + st.status_counts[1], st.pub_conn_failed, st.pub_reconnects);
    printf("server: cpu %.2f s during publishing (%d processes), rss %ld -> %ld kB, pss %ld -> %ld kB; "
           "kernel tcp memory %ld -> %ld kB\n",
           cpu_s, after.npids, before.rss_kb, after.rss_kb, before.pss_kb, after.pss_kb, before.tcp_mem_kb,
           after.tcp_mem_kb);
    /* Server memory per subscriber: with every one connected (before publishing), and at the end. */
    double conn_rss_per_sub = -1, conn_pss_per_sub = -1, end_rss_per_sub = -1;
    if (opt.server_pid > 0 && connected_ok > 0) {
        conn_rss_per_sub = (double)(connected.rss_kb - before.rss_kb) * 1024 / (double)connected_ok;
        conn_pss_per_sub = (double)(connected.pss_kb - before.pss_kb) * 1024 / (double)connected_ok;
        end_rss_per_sub = (double)(after.rss_kb - before.rss_kb) * 1024 / (double)connected_ok;
        printf("server memory per subscriber: %.0f bytes (rss), %.0f bytes (pss) with %ld connected, before "
               "publishing (rss %ld -> %ld kB); %.0f bytes (rss) at the end\n",
               conn_rss_per_sub, conn_pss_per_sub, connected_ok, before.rss_kb, connected.rss_kb, end_rss_per_sub);
    }
    if (opt.h2)
        printf("http/2: %ld streams reset by the server (%ld refused), %ld GOAWAY (first error %u), %" PRIu64
               " streams ended%s%s\n",
               st.h2_resets, st.h2_refused, st.h2_goaways, st.first_goaway_error, st.stream_ends,
               st.first_h2_error ? ", first reset: " : "",
               st.first_h2_error ? nghttp2_http2_strerror(st.first_h2_error) : "");
    printf("loadgen: cpu %.2f s\n", lg_cpu);
    /* Added keys (after status=, so older parsers see the line as before): another user's events
     * received, the server's CPU per delivery and per event (omitted when there were none), its
     * memory per subscriber once all were connected (and at the end), and the HTTP/2 layout. */
    char extra[768];
    int xn = snprintf(extra, sizeof extra, " foreign=%" PRIu64 " private_users=%ld", st.foreign_user, opt.private_users);
    xn += snprintf(extra + xn, sizeof extra - (size_t)xn,
                   " h2=%d conns=%ld rss_connected_kb=%ld pss_connected_kb=%ld conn_rss_bytes_per_sub=%.0f"
                   " conn_pss_bytes_per_sub=%.0f end_rss_bytes_per_sub=%.0f tcp_mem_connected_kb=%ld h2_resets=%ld",
                   opt.h2, opt.h2 ? n_h2conns : st.sub_ready, connected.rss_kb, connected.pss_kb, conn_rss_per_sub,
                   conn_pss_per_sub, end_rss_per_sub, connected.tcp_mem_kb, st.h2_resets);
    if (cpu_s >= 0 && st.deliveries)
        xn += snprintf(extra + xn, sizeof extra - (size_t)xn, " cpu_ms_per_1k=%.3f", cpu_s * 1e6 / (double)st.deliveries);
    if (cpu_s >= 0 && st.acked)
        snprintf(extra + xn, sizeof extra - (size_t)xn, " cpu_us_per_event=%.1f", cpu_s * 1e6 / (double)st.acked);
    printf("RESULT target=%s mode=%s label=%s subs=%ld subs_ok=%ld conn_failed=%ld connect_s=%.3f events=%" PRIu64
           " acked=%" PRIu64 " pub_errors=%" PRIu64 " publishers=%ld pipeline=%ld rate=%.0f size=%ld pub_s=%.3f "
           "acked_per_s=%.0f ack_p50_us=%" PRIu64 " ack_p99_us=%" PRIu64 " ack_max_us=%" PRIu64
           " deliveries=%" PRIu64 " deliveries_per_s=%.0f p50_us=%" PRIu64 " p90_us=%" PRIu64 " p99_us=%" PRIu64
           " max_us=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64 " disorder=%" PRIu64 " dropped=%ld lag_ms=%.1f rss_kb=%ld "
           "pss_kb=%ld rss_before_kb=%ld pss_before_kb=%ld cpu_s=%.2f tcp_mem_kb=%ld loadgen_cpu_s=%.2f status=%s%s\n",
           tname, opt.mode == MODE_LOGIN ? "login" : "fanout", opt.label[0] ? opt.label : "-", opt.subscribers,
           st.sub_ready, st.sub_failed, connect_s, st.sent, st.acked, st.errors, opt.publishers, opt.pipeline,
           opt.rate, opt.size, pub_s, ack_per_s, hist_pct(&st.ack, .5), hist_pct(&st.ack, .99), st.ack.max,
           st.deliveries, deliveries_per_s, hist_pct(&st.lat, .5), hist_pct(&st.lat, .9), hist_pct(&st.lat, .99),
           st.lat.max, lost, st.dup, st.order_violations, st.sub_disconnected, (double)st.max_lag / 1e6, after.rss_kb, after.pss_kb,
           before.rss_kb, before.pss_kb, cpu_s,
           after.tcp_mem_kb, lg_cpu, status_name(timed_out), extra);

    /* Close everything before exiting so the server sees orderly disconnects. */
    for (long i = 0; i < opt.subscribers; i++)
        if (subs[i].fd >= 0)
            close(subs[i].fd);
    for (long i = 0; i < opt.publishers; i++)
        if (pubs[i].fd >= 0)
            close(pubs[i].fd);
    h2_cleanup();
    return timed_out ? 1 : 0;
}
