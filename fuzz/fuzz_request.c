/* fuzz_request: the real request path. LLVMFuzzerInitialize starts the whole server in-process
 * once (app_start: loop thread, writer, worker, SQLite in a temporary --db under $TMPDIR or /tmp,
 * port 0 on 127.0.0.1); each input then goes, over a fresh loopback TCP connection, through
 * the HTTP layer (http/conn.c on http_parser), the router and the handlers (users, login, insert,
 * sse, ops), the worker, the writer and the hub.
 *
 * The first byte of the input chooses what the rest becomes:
 *   bits 0-2: 0 the raw bytes as they are             4 GET /sse?<rest> with a valid Bearer token
 *             1 POST /users with the rest as body     5 GET /sse?ticket=<valid ticket>&<rest>
 *             2 POST /login with the rest as body     6 GET /sse, Bearer, rest = more header lines
 *             3 POST /insert, Bearer, rest as body    7 POST /insert, Authorization: <rest>
 *   bit 3:   half-close our side after writing (always for raw bytes): the server sees EOF
 *            while it may still be working on the request
 *   bit 4:   write in two pieces, 1 ms apart
 * In the rest, "@L" becomes a valid login token, "@T" a valid stream ticket (minted here with
 * auth_token_issue and the server's secret) and "@A" the admin token, so mutations of seeds keep
 * reaching code behind authentication (the admin API, /users/me). The server runs with a rules
 * file (self, roles and any rules, SPEC §5), so every stream and insert goes through them. The response is read until the server closes, for at most 200 ms (5 ms of
 * silence once something arrived), then the connection is closed (with a reset if still open).
 *
 * Every event stream read must carry compact JSON on each data: line (SPEC §2).
 * Every 1000 inputs (and at start) the server must still answer GET /healthz with 200, and once
 * our connections are all closed its subscribers must drop to 0 and its descriptors back near the
 * start: otherwise abort(). At exit the server is stopped with app_stop (so LeakSanitizer sees a
 * full shutdown) and the database removed; a summary of the statuses seen goes to stderr. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "config.h"
#include "log.h"

#define SECRET "fuzz-request-secret-0123456789abcdef-0123"
#define ADMIN_TOKEN "fuzz-admin-token-0123456789abcdef"
#define RULES "{\"rules\": [{\"events\": \"user.{user_id}.*\", \"publish\": \"self\", \"subscribe\": \"self\"}," \
              " {\"events\": \"staff.*\", \"publish\": [\"staff\"], \"subscribe\": [\"staff\", \"ops\"]}," \
              " {\"events\": \"*\", \"publish\": \"any\", \"subscribe\": \"any\"}]}"
#define READ_TOTAL_MS 200
#define READ_IDLE_MS 5
#define CHECK_EVERY 1000

static struct config cfg;
static struct app app;
static int app_running;
static char dbdir[512];
static char *login_token, *ticket;
static struct sockaddr_in server;
static unsigned long inputs;
static long baseline_fds;
static unsigned long statuses[6]; /* 1xx..5xx by first digit, [0] = no status line */
static unsigned long status_detail[600];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, err = 0;
    socklen_t len = sizeof err;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    /* Non-blocking, so that libFuzzer's timer signal (EINTR) cannot cut it short. */
    if (connect(fd, (struct sockaddr *)&server, sizeof server) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            close(fd);
            return -1;
        }
        long deadline = now_ms() + 5000;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        while (poll(&p, 1, 100) <= 0 || !(p.revents & (POLLOUT | POLLERR | POLLHUP)))
            if (now_ms() > deadline) {
                close(fd);
                errno = ETIMEDOUT;
                return -1;
            }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            close(fd);
            errno = err ? err : errno;
            return -1;
        }
    }
    return fd;
}

/* Writes as much as the server takes within the deadline; 0, or -1 once it stops reading. */
static int send_all(int fd, const char *buf, size_t len, long deadline)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1; /* the server answered early (413, 400) and closed: fine */
        long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        poll(&p, 1, (int)left);
    }
    return 0;
}

/* Reads until EOF, the total deadline or READ_IDLE_MS of silence after the first bytes. Keeps the
 * first cap - 1 bytes in buf (NUL-terminated), their count in *kept. Returns 1 when the server
 * closed. */
static int read_response(int fd, char *buf, size_t cap, size_t *kept, long total_ms)
{
    long deadline = now_ms() + total_ms;
    size_t got = 0;
    char sink[16384];
    buf[0] = '\0';
    *kept = 0;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        int wait = (int)(got > 0 && left > READ_IDLE_MS ? READ_IDLE_MS : left);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int pr = poll(&p, 1, wait);
        if (pr == 0) {
            if (got > 0)
                return 0;
            continue;
        }
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        ssize_t r = recv(fd, sink, sizeof sink, 0);
        if (r == 0)
            return 1;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return 1; /* reset by the server */
        }
        if (*kept < cap - 1) {
            size_t take = (size_t)r < cap - 1 - *kept ? (size_t)r : cap - 1 - *kept;
            memcpy(buf + *kept, sink, take);
            *kept += take;
            buf[*kept] = '\0';
        }
        got += (size_t)r;
    }
}

/* SPEC §2: every event's data is delivered as compact JSON. Checks each complete frame of an
 * event stream in resp: a data: line must be one JSON value with no raw control byte. */
static void check_stream(const char *resp, size_t len)
{
    const char *body = memmem(resp, len, "\r\n\r\n", 4);
    if (!body || !memmem(resp, (size_t)(body - resp), "text/event-stream", 17))
        return;
    body += 4;
    const char *end = resp + len;
    while (body < end) {
        const char *stop = memmem(body, (size_t)(end - body), "\n\n", 2);
        if (!stop)
            break; /* the last frame was cut by our read */
        for (const char *line = body; line < stop;) {
            const char *eol = memchr(line, '\n', (size_t)(stop - line));
            if (!eol)
                eol = stop;
            if (eol - line >= 5 && memcmp(line, "data:", 5) == 0) {
                const char *d = line + 5;
                size_t dlen = (size_t)(eol - d);
                int control = 0;
                for (size_t i = 0; i < dlen; i++)
                    control |= (unsigned char)d[i] < 0x20;
                json_t *v = json_loadb(d, dlen, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
                                     NULL);
                if (control || !v) {
                    fprintf(stderr, "fuzz_request: an event stream delivered data that is not compact "
                                    "JSON (%zu bytes):\n", dlen);
                    for (size_t i = 0; i < dlen && i < 512; i++)
                        fprintf(stderr, (unsigned char)d[i] < 0x20 ? "\\x%02x" : "%c",
                                (unsigned char)d[i]);
                    fprintf(stderr, "\n");
                    abort();
                }
                json_decref(v);
            }
            line = eol + 1;
        }
        body = stop + 2;
    }
}

static void close_connection(int fd, int server_closed)
{
    if (!server_closed) {
        /* A reset instead of a FIN: no TIME_WAIT pile-up, and the server sees an abrupt peer. */
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
}

static int status_of(const char *head)
{
    int code;
    if (strncmp(head, "HTTP/1.", 7) != 0 || sscanf(head + 9, "%3d", &code) != 1 || code < 100 ||
        code > 599)
        return 0;
    return code;
}

/* GET /healthz must answer 200 within a few seconds. */
static int healthz_ok(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = connect_server();
        if (fd < 0) {
            sleep(1);
            continue;
        }
        char head[256];
        size_t kept;
        int closed = send_all(fd, req, sizeof req - 1, now_ms() + 5000) == 0 &&
                     read_response(fd, head, sizeof head, &kept, 5000);
        close_connection(fd, closed);
        if (status_of(head) == 200)
            return 1;
        sleep(1);
    }
    return 0;
}

static void check_server(const char *when)
{
    if (!healthz_ok()) {
        fprintf(stderr, "fuzz_request: the server stopped answering GET /healthz (%s, after %lu inputs)\n",
                when, inputs);
        abort();
    }
    /* All our connections are closed: streams must end and descriptors come back. */
    long deadline = now_ms() + 10000, fds = 0, subs = 0;
    for (;;) {
        subs = atomic_load(&app.subscribers);
        fds = open_fds();
        if (subs == 0 && fds <= baseline_fds + 16)
            return;
        if (now_ms() > deadline)
            break;
        usleep(10000);
    }
    fprintf(stderr, "fuzz_request: %ld subscribers and %ld descriptors (%ld at start) left 10 s after "
                    "every client closed (%s, after %lu inputs)\n", subs, fds, baseline_fds, when, inputs);
    abort();
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void *exit_watchdog(void *arg)
{
    (void)arg;
    sleep(60);
    fprintf(stderr, "fuzz_request: app_stop did not finish within 60 s\n");
    abort();
}

static void at_exit(void)
{
    fprintf(stderr, "fuzz_request: %lu inputs; responses:", inputs);
    for (int i = 100; i < 600; i++)
        if (status_detail[i])
            fprintf(stderr, " %d:%lu", i, status_detail[i]);
    fprintf(stderr, " none:%lu\n", statuses[0]);
    if (app_running) {
        pthread_t t;
        if (pthread_create(&t, NULL, exit_watchdog, NULL) == 0)
            pthread_detach(t);
        app_stop(&app);
        app_running = 0;
    }
    config_free(&cfg);
    free(login_token);
    free(ticket);
    if (dbdir[0])
        nftw(dbdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* main.c does this for the real binary */
    const char *tmp = getenv("TMPDIR");
    snprintf(dbdir, sizeof dbdir, "%s/broker-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dbdir)) {
        perror("fuzz_request: mkdtemp");
        abort();
    }
    char rules[600];
    snprintf(rules, sizeof rules, "%s/rules.json", dbdir);
    FILE *rf = fopen(rules, "w");
    if (!rf || fputs(RULES, rf) < 0 || fclose(rf) != 0) {
        perror("fuzz_request: rules file");
        abort();
    }
    /* The configuration is built in code: config_parse for the defaults and checks, then port 0
     * (which the command line does not allow) so the kernel picks a free port. */
    char *args[] = { "broker", "--db", dbdir, "--host", "127.0.0.1", "--port", "1", "--threads",
                     "1", "--workers", "1", "--jwt_secret", SECRET, "--log_level", "error",
                     "--max_body", "65536", "--request_timeout", "2",
                     "--login_address_max_failures", "1000000", "--admin_token", ADMIN_TOKEN,
                     "--rules", rules, NULL };
    char err[512];
    char *noenv[] = { NULL };
    if (config_parse(&cfg, (int)(sizeof args / sizeof args[0]) - 1, args, noenv, err, sizeof err) !=
        CONFIG_OK) {
        fprintf(stderr, "fuzz_request: config: %s\n", err);
        abort();
    }
    cfg.port = 0;
    log_set_level(cfg.log_level);
    if (app_start(&app, &cfg) != 0) {
        fprintf(stderr, "fuzz_request: app_start failed\n");
        abort();
    }
    app_running = 1;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)app.port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    long now = (long)time(NULL);
    struct token_claims c = { .sub = "0123456789abcdef0123456789abcdef", .username = "fuzz",
                              .iat = now, .exp = now + 10L * 365 * 86400 };
    login_token = auth_token_issue((const unsigned char *)SECRET, strlen(SECRET), &c);
    strcpy(c.scope, AUTH_SCOPE_SSE);
    ticket = auth_token_issue((const unsigned char *)SECRET, strlen(SECRET), &c);
    if (!login_token || !ticket)
        abort();
    atexit(at_exit);
    baseline_fds = open_fds();
    check_server("at start");
    fprintf(stderr, "fuzz_request: server on 127.0.0.1:%d, db %s\n", app.port, dbdir);
    return 0;
}

/* A growable buffer for the request. */
struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *b = realloc(o->buf, cap);
        if (!b)
            abort();
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* The rest of the input with "@L" / "@T" / "@A" expanded. */
static void put_expanded(struct out *o, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '@' && i + 1 < n && (p[i + 1] == 'L' || p[i + 1] == 'T' || p[i + 1] == 'A')) {
            puts_(o, p[i + 1] == 'L' ? login_token : p[i + 1] == 'T' ? ticket : ADMIN_TOKEN);
            i++;
        } else {
            put(o, p + i, 1);
        }
    }
}

static void put_post(struct out *o, const char *path, const char *auth, const uint8_t *body, size_t n)
{
    struct out b = { 0 };
    put_expanded(&b, body, n);
    char line[128];
    puts_(o, "POST ");
    puts_(o, path);
    puts_(o, " HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n");
    if (auth) {
        puts_(o, "Authorization: Bearer ");
        puts_(o, auth);
        puts_(o, "\r\n");
    }
    snprintf(line, sizeof line, "Content-Length: %zu\r\nConnection: close\r\n\r\n", b.len);
    puts_(o, line);
    if (b.len)
        put(o, b.buf, b.len);
    free(b.buf);
}

/* A crash on a server thread can land while libFuzzer already runs the next input, so the
 * reproducer it saves may not be the culprit: with FUZZ_REQUEST_LAST=<dir> the last 8 inputs are
 * also kept there as files (replay them in mtime order: ls -tr). */
static void keep_last(const uint8_t *data, size_t size)
{
    static int fds[8], ready = -1;
    if (ready < 0) {
        const char *dir = getenv("FUZZ_REQUEST_LAST");
        ready = 0;
        if (!dir || !*dir)
            return;
        for (int i = 0; i < 8; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/last-input-%d", dir, i);
            fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fds[i] < 0)
                return;
        }
        ready = 1;
    }
    if (!ready)
        return;
    int fd = fds[inputs % 8];
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        ready = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    keep_last(data, size);
    uint8_t sel = data[0];
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    int kind = sel & 7, half_close = kind == 0 || (sel & 8), split = sel & 16;
    struct out o = { 0 };
    switch (kind) {
    case 0:
        put_expanded(&o, rest, n);
        break;
    case 1:
        put_post(&o, "/users", NULL, rest, n);
        break;
    case 2:
        put_post(&o, "/login", NULL, rest, n);
        break;
    case 3:
        put_post(&o, "/insert", login_token, rest, n);
        break;
    case 4:
        puts_(&o, "GET /sse?");
        put_expanded(&o, rest, n);
        puts_(&o, " HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer ");
        puts_(&o, login_token);
        puts_(&o, "\r\n\r\n");
        break;
    case 5:
        puts_(&o, "GET /sse?ticket=");
        puts_(&o, ticket);
        puts_(&o, "&");
        put_expanded(&o, rest, n);
        puts_(&o, " HTTP/1.1\r\nHost: fuzz\r\n\r\n");
        break;
    case 6:
        puts_(&o, "GET /sse HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer ");
        puts_(&o, login_token);
        puts_(&o, "\r\n");
        put_expanded(&o, rest, n);
        puts_(&o, "\r\n\r\n");
        break;
    case 7:
        puts_(&o, "POST /insert HTTP/1.1\r\nHost: fuzz\r\nAuthorization: ");
        put_expanded(&o, rest, n);
        puts_(&o, "\r\nContent-Type: application/json\r\nContent-Length: 22\r\nConnection: close\r\n\r\n"
                  "{\"event\":\"e\",\"data\":1}");
        break;
    }

    int fd = connect_server();
    if (fd < 0) {
        fprintf(stderr, "fuzz_request: cannot connect to the server: %s\n", strerror(errno));
        abort();
    }
    long deadline = now_ms() + 1000;
    int sent;
    if (split && o.len > 1) {
        sent = send_all(fd, o.buf, o.len / 2, deadline);
        usleep(1000);
        if (sent == 0)
            sent = send_all(fd, o.buf + o.len / 2, o.len - o.len / 2, deadline);
    } else {
        sent = send_all(fd, o.buf, o.len, deadline);
    }
    if (sent == 0 && half_close)
        shutdown(fd, SHUT_WR);
    static char resp[1 << 18];
    size_t kept;
    int closed = read_response(fd, resp, sizeof resp, &kept, READ_TOTAL_MS);
    close_connection(fd, closed);
    free(o.buf);
    check_stream(resp, kept);

    int code = status_of(resp);
    statuses[code / 100]++;
    status_detail[code]++;
    if (++inputs % CHECK_EVERY == 0)
        check_server("periodic check");
    return 0;
}
