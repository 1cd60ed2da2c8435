/* fuzz_server: the in-process server of fuzz_request and fuzz_h2 and the client side they share
 * (see fuzz_server.h). The server: 1 loop, 1 worker, SQLite in a temporary --db under $TMPDIR or
 * /tmp, a --rules file (self, roles and any rules, SPEC §5), port 0 on 127.0.0.1, plus the flags
 * each fuzzer adds. */
#include "fuzz_server.h"

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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "log.h"

#define RULES "{\"rules\": [{\"events\": \"user.{user_id}.*\", \"publish\": \"self\", \"subscribe\": \"self\"}," \
              " {\"events\": \"staff.*\", \"publish\": [\"staff\"], \"subscribe\": [\"staff\", \"ops\"]}," \
              " {\"events\": \"*\", \"publish\": \"any\", \"subscribe\": \"any\"}]}"
#define MAX_ARGS 64

struct app fuzz_app;
char *fuzz_login_token, *fuzz_ticket;

static const char *name = "fuzz";
static struct config cfg;
static int app_running;
static char dbdir[512];
static struct sockaddr_in server;
static long baseline_fds;

long fuzz_now_ms(void)
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

int fuzz_connect(void)
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
        long deadline = fuzz_now_ms() + 5000;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        while (poll(&p, 1, 100) <= 0 || !(p.revents & (POLLOUT | POLLERR | POLLHUP)))
            if (fuzz_now_ms() > deadline) {
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

int fuzz_send_all(int fd, const void *data, size_t len, long deadline)
{
    const char *buf = data;
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
            return -1; /* the server answered early (413, 400, GOAWAY) and closed: fine */
        long left = deadline - fuzz_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        poll(&p, 1, (int)left);
    }
    return 0;
}

int fuzz_read_response(int fd, char *buf, size_t cap, size_t *kept, long total_ms, int idle_ms)
{
    long deadline = fuzz_now_ms() + total_ms;
    size_t got = 0;
    char sink[16384];
    buf[0] = '\0';
    *kept = 0;
    for (;;) {
        long left = deadline - fuzz_now_ms();
        if (left <= 0)
            return 0;
        int wait = (int)(got > 0 && left > idle_ms ? idle_ms : left);
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

void fuzz_close(int fd, int server_closed)
{
    if (!server_closed) {
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
}

int fuzz_http_status(const char *head)
{
    int code;
    if (strncmp(head, "HTTP/1.", 7) != 0 || sscanf(head + 9, "%3d", &code) != 1 || code < 100 ||
        code > 599)
        return 0;
    return code;
}

void fuzz_check_event_text(const char *text, size_t len)
{
    const char *body = text, *end = text + len;
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
                    fprintf(stderr, "%s: an event stream delivered data that is not compact JSON (%zu bytes):\n",
                            name, dlen);
                    for (size_t i = 0; i < dlen && i < 512; i++)
                        fprintf(stderr, (unsigned char)d[i] < 0x20 ? "\\x%02x" : "%c", (unsigned char)d[i]);
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

/* GET /healthz must answer 200 within a few seconds. */
static int healthz_ok(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = fuzz_connect();
        if (fd < 0) {
            sleep(1);
            continue;
        }
        char head[256];
        size_t kept;
        int closed = fuzz_send_all(fd, req, sizeof req - 1, fuzz_now_ms() + 5000) == 0 &&
                     fuzz_read_response(fd, head, sizeof head, &kept, 5000, 5);
        fuzz_close(fd, closed);
        if (fuzz_http_status(head) == 200)
            return 1;
        sleep(1);
    }
    return 0;
}

void fuzz_check_server(const char *when, unsigned long inputs)
{
    if (!healthz_ok()) {
        fprintf(stderr, "%s: the server stopped answering GET /healthz (%s, after %lu inputs)\n", name, when,
                inputs);
        abort();
    }
    /* All our connections are closed: streams must end and descriptors come back. */
    long deadline = fuzz_now_ms() + 10000, fds = 0, subs = 0;
    for (;;) {
        subs = atomic_load(&fuzz_app.subscribers);
        fds = open_fds();
        if (subs == 0 && fds <= baseline_fds + 16)
            return;
        if (fuzz_now_ms() > deadline)
            break;
        usleep(10000);
    }
    fprintf(stderr, "%s: %ld subscribers and %ld descriptors (%ld at start) left 10 s after every client "
                    "closed (%s, after %lu inputs)\n", name, subs, fds, baseline_fds, when, inputs);
    abort();
}

void fuzz_keep_last(const char *env, unsigned long n, const uint8_t *data, size_t size)
{
    static int fds[8], ready = -1;
    if (ready < 0) {
        const char *dir = getenv(env);
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
    int fd = fds[n % 8];
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        ready = 0;
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
    fprintf(stderr, "%s: app_stop did not finish within 60 s\n", name);
    abort();
}

static void stop_server(void)
{
    if (app_running) {
        pthread_t t;
        if (pthread_create(&t, NULL, exit_watchdog, NULL) == 0)
            pthread_detach(t);
        app_stop(&fuzz_app);
        app_running = 0;
    }
    config_free(&cfg);
    free(fuzz_login_token);
    free(fuzz_ticket);
    if (dbdir[0])
        nftw(dbdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

void fuzz_server_start(const char *who, const char *const *extra)
{
    name = who;
    signal(SIGPIPE, SIG_IGN); /* main.c does this for the real binary */
    const char *tmp = getenv("TMPDIR");
    snprintf(dbdir, sizeof dbdir, "%s/broker-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dbdir)) {
        fprintf(stderr, "%s: mkdtemp: %s\n", name, strerror(errno));
        abort();
    }
    char rules[600];
    snprintf(rules, sizeof rules, "%s/rules.json", dbdir);
    FILE *rf = fopen(rules, "w");
    if (!rf || fputs(RULES, rf) < 0 || fclose(rf) != 0) {
        fprintf(stderr, "%s: rules file: %s\n", name, strerror(errno));
        abort();
    }
    /* The configuration is built in code: config_parse for the defaults and checks, then port 0
     * (which the command line does not allow) so the kernel picks a free port. */
    const char *common[] = { "broker", "--db", dbdir, "--host", "127.0.0.1", "--port", "1", "--threads",
                             "1", "--workers", "1", "--jwt_secret", FUZZ_SECRET, "--log_level", "error",
                             "--request_timeout", "2", "--login_address_max_failures", "1000000",
                             "--admin_token", FUZZ_ADMIN_TOKEN, "--rules", rules };
    char *args[MAX_ARGS + 1];
    int argc = 0;
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        args[argc++] = (char *)common[i];
    for (size_t i = 0; extra && extra[i]; i++) {
        if (argc == MAX_ARGS)
            abort();
        args[argc++] = (char *)extra[i];
    }
    args[argc] = NULL;
    char err[512];
    char *noenv[] = { NULL };
    if (config_parse(&cfg, argc, args, noenv, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "%s: config: %s\n", name, err);
        abort();
    }
    cfg.port = 0;
    log_set_level(cfg.log_level);
    if (app_start(&fuzz_app, &cfg) != 0) {
        fprintf(stderr, "%s: app_start failed\n", name);
        abort();
    }
    app_running = 1;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)fuzz_app.port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    long now = (long)time(NULL);
    struct token_claims c = { .sub = "0123456789abcdef0123456789abcdef", .username = "fuzz",
                              .iat = now, .exp = now + 10L * 365 * 86400 };
    fuzz_login_token = auth_token_issue((const unsigned char *)FUZZ_SECRET, strlen(FUZZ_SECRET), &c);
    strcpy(c.scope, AUTH_SCOPE_SSE);
    fuzz_ticket = auth_token_issue((const unsigned char *)FUZZ_SECRET, strlen(FUZZ_SECRET), &c);
    if (!fuzz_login_token || !fuzz_ticket)
        abort();
    atexit(stop_server);
    baseline_fds = open_fds();
    fuzz_check_server("at start", 0);
    fprintf(stderr, "%s: server on 127.0.0.1:%d, db %s\n", name, fuzz_app.port, dbdir);
}
