/* fuzz_request: the real request path. LLVMFuzzerInitialize starts the whole server in-process
 * once (fuzz_server.c: app_start with a loop thread, writer, worker, SQLite in a temporary --db
 * under $TMPDIR or /tmp, port 0 on 127.0.0.1); each input then goes, over a fresh loopback TCP
 * connection, through the HTTP layer (http/conn.c on http_parser), the router and the handlers
 * (users, login, insert, sse, ops), the worker, the writer and the hub.
 *
 * The first byte of the input chooses what the rest becomes:
 *   bits 0-2: 0 the raw bytes as they are             4 GET /sse?<rest> with a valid Bearer token
 *             1 POST /users with the rest as body     5 GET /sse?ticket=<valid ticket>&<rest>
 *             2 POST /login with the rest as body     6 GET /sse, Bearer, rest = more header lines
 *             3 POST /insert, Bearer, rest as body    7 POST /insert, Authorization: <rest>
 *   bit 3:   half-close our side after writing (always for raw bytes): the server sees EOF
 *            while it may still be working on the request
 *   bit 4:   write in two pieces, 1 ms apart
 * In the rest, "@L" becomes a valid login token, "@T" a valid stream ticket (minted by
 * fuzz_server.c with auth_token_issue and the server's secret) and "@A" the admin token, so
 * mutations of seeds keep reaching code behind authentication (the admin API, /users/me). The
 * server runs with a rules file (self, roles and any rules, SPEC §5), so every stream and insert
 * goes through them. The response is read until the server closes, for at most 200 ms (5 ms of
 * silence once something arrived), then the connection is closed (with a reset if still open).
 *
 * Every event stream read must carry compact JSON on each data: line (SPEC §2).
 * Every 1000 inputs (and at start) the server must still answer GET /healthz with 200, and once
 * our connections are all closed its subscribers must drop to 0 and its descriptors back near the
 * start: otherwise abort(). At exit a summary of the statuses seen goes to stderr, then the server
 * is stopped with app_stop (so LeakSanitizer sees a full shutdown) and the database removed.
 * With FUZZ_REQUEST_LAST=<dir> the last 8 inputs are also kept there (a crash on a server thread
 * may belong to an earlier input than the reproducer libFuzzer saves: replay them, ls -tr). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_server.h"

#define READ_TOTAL_MS 200
#define READ_IDLE_MS 5
#define CHECK_EVERY 1000

static unsigned long inputs;
static unsigned long statuses[6]; /* 1xx..5xx by first digit, [0] = no status line */
static unsigned long status_detail[600];

/* The body of an event stream in an HTTP/1.1 response, if it is one, checked (SPEC §2). */
static void check_stream(const char *resp, size_t len)
{
    const char *body = memmem(resp, len, "\r\n\r\n", 4);
    if (!body || !memmem(resp, (size_t)(body - resp), "text/event-stream", 17))
        return;
    body += 4;
    fuzz_check_event_text(body, (size_t)(resp + len - body));
}

static void at_exit(void)
{
    fprintf(stderr, "fuzz_request: %lu inputs; responses:", inputs);
    for (int i = 100; i < 600; i++)
        if (status_detail[i])
            fprintf(stderr, " %d:%lu", i, status_detail[i]);
    fprintf(stderr, " none:%lu\n", statuses[0]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char *const extra[] = { "--max_body", "65536", NULL };
    fuzz_server_start("fuzz_request", extra);
    atexit(at_exit); /* so it runs before the server's stop, registered before it */
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
            puts_(o, p[i + 1] == 'L' ? fuzz_login_token : p[i + 1] == 'T' ? fuzz_ticket : FUZZ_ADMIN_TOKEN);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    fuzz_keep_last("FUZZ_REQUEST_LAST", inputs, data, size);
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
        put_post(&o, "/insert", fuzz_login_token, rest, n);
        break;
    case 4:
        puts_(&o, "GET /sse?");
        put_expanded(&o, rest, n);
        puts_(&o, " HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer ");
        puts_(&o, fuzz_login_token);
        puts_(&o, "\r\n\r\n");
        break;
    case 5:
        puts_(&o, "GET /sse?ticket=");
        puts_(&o, fuzz_ticket);
        puts_(&o, "&");
        put_expanded(&o, rest, n);
        puts_(&o, " HTTP/1.1\r\nHost: fuzz\r\n\r\n");
        break;
    case 6:
        puts_(&o, "GET /sse HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer ");
        puts_(&o, fuzz_login_token);
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

    int fd = fuzz_connect();
    if (fd < 0) {
        fprintf(stderr, "fuzz_request: cannot connect to the server: %s\n", strerror(errno));
        abort();
    }
    long deadline = fuzz_now_ms() + 1000;
    int sent;
    if (split && o.len > 1) {
        sent = fuzz_send_all(fd, o.buf, o.len / 2, deadline);
        usleep(1000);
        if (sent == 0)
            sent = fuzz_send_all(fd, o.buf + o.len / 2, o.len - o.len / 2, deadline);
    } else {
        sent = fuzz_send_all(fd, o.buf, o.len, deadline);
    }
    if (sent == 0 && half_close)
        shutdown(fd, SHUT_WR);
    static char resp[1 << 18];
    size_t kept;
    int closed = fuzz_read_response(fd, resp, sizeof resp, &kept, READ_TOTAL_MS, READ_IDLE_MS);
    fuzz_close(fd, closed);
    free(o.buf);
    check_stream(resp, kept);

    int code = fuzz_http_status(resp);
    statuses[code / 100]++;
    status_detail[code]++;
    if (++inputs % CHECK_EVERY == 0)
        fuzz_check_server("periodic check", inputs);
    return 0;
}
