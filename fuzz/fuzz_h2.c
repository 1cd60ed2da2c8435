/* fuzz_h2: HTTP/2 frames into a real connection of the whole server started in-process
 * (fuzz_server.c; plain HTTP, prior knowledge, so conn.c hands the connection to http/h2 as it
 * would for curl --http2-prior-knowledge). The server runs with --h2_max_streams 8,
 * --max_backlog 4096, --max_header 4096 and --max_body 4096, so its limits are within reach, and
 * at --log_level info (the default), so that what a log line names is read even when a handler
 * answers after its client went away.
 * Each input becomes: the client preface, an empty SETTINGS frame, then, by the first byte:
 *   bit 0: 0 the rest of the input as raw bytes
 *          1 "framed": the rest is cut into records [kind][flags][sel][len] + len payload bytes
 *            (len clamped to what is left), each written as well-formed frames (9-byte headers,
 *            lengths that match), see below
 *   bit 1: half-close our side after writing
 *   bit 2: write the last part in two pieces, 1 ms apart
 *   bit 3: park the connection instead of closing it: it stays open (unread) for 3 s, up to 8 at
 *          a time (more are closed as usual), so that the server's deadlines reach it (--request_timeout 2: 408 for a request
 *          still arriving; --idle_timeout 1: GOAWAY), heartbeats (--heartbeat 1) and the end of
 *          a stream whose token expired; then what it got is read, checked, and it is closed
 * A record's stream id comes from sel: bits 0-2 pick the latest stream a request opened, a new
 * odd id, 0, an older stream, the next idle id, or sel >> 3 as it is (which of these each kind
 * prefers: request_sid, other_sid, conn_sid). Record kinds (kind & 15):
 *   0 DATA, 2 HEADERS, 3 PRIORITY, 4 RST_STREAM, 5 SETTINGS, 6 PUSH_PROMISE, 7 PING, 8 GOAWAY,
 *   9 WINDOW_UPDATE, 10 CONTINUATION: flags and payload as they are
 *   1 a request HEADERS built from template kind >> 4 (/healthz, /users, /login, /insert and
 *     /sse with a valid Bearer token, /sse?ticket=, /metrics, the admin API, a preflight, ...):
 *     the payload's first line is added to the query, the other lines ("name: value") are more
 *     header fields; the flags byte says END_STREAM (0x01), split into HEADERS + CONTINUATION
 *     (0x02), leave the block open (0x04), PRIORITY (0x08), the HPACK form (0x30: literal without
 *     indexing, with incremental indexing, never indexed, or nghttp2's deflater with Huffman and
 *     the dynamic table), PADDED (0x40), a wrong content-length (0x80)
 *   15 the same request with the payload as its body in DATA (0x01: in two frames, 0x80: without
 *     content-length), END_STREAM on the last
 *   11 CONTINUATION with header lines from the payload; 12 an extension frame (type 0x0a + kind>>4)
 *   13 repeat the last (sel & 3) + 1 records flags + 1 times (floods: rapid reset, PING, ...)
 *   14 pause: write what is built, read for (flags & 31) + 1 ms (at most 50 ms per input)
 * In built text "@L" becomes a valid login token, "@T" a valid stream ticket, "@A" the admin token,
 * "@E" a login token that expires within 2 s (template 14 streams with it).
 *
 * Everything the server sends is parsed (frames, HPACK) and must be well-formed: frame lengths and
 * types a server may send, a :status first, lowercase names, no connection-specific fields, no
 * CR/LF/NUL or surrounding whitespace in values, no DATA on HEAD, 204 or after END_STREAM,
 * content-length equal to the DATA sent, event-stream data compact JSON (SPEC §2). A complete
 * request that the loop thread answers at once (/healthz, /metrics, /sse, a preflight, a 401) must
 * get its HEADERS or a RST_STREAM within 2 s unless a GOAWAY came, and the server never closes a
 * connection without a GOAWAY first (unless we sent one, half-closed or could not write). The
 * answer is read for at most 200 ms (5 ms of silence once nothing is awaited), then the connection
 * is reset. Every 1000 inputs (and at start) GET /healthz must answer 200 over HTTP/1.1 and over
 * HTTP/2, subscribers drop to 0 and descriptors come back near the start: otherwise abort(). A
 * summary goes to stderr at exit. With FUZZ_H2_LAST=<dir> the last 8 inputs are also kept there;
 * FUZZ_H2_VERBOSE=1 prints what each input got (replaying a reproducer). */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_server.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define OUT_MAX (256 * 1024)       /* bytes written per input */
#define WRITE_MS 1000
#define READ_TOTAL_MS 200
#define READ_IDLE_MS 5
#define PAUSE_BUDGET_MS 50
#define SYNC_ANSWER_MS 2000
#define CHECK_EVERY 1000
#define MAX_FIELDS 256
#define MAX_TRACKED 65536          /* streams with state per connection (odd ids below 2^17) */
#define EVENT_TEXT_MAX (256 * 1024)
#define MAX_FRAME 16384            /* nghttp2 never sends more per frame */
#define MAX_PARKED 8
#define PARK_MS 3000               /* past --request_timeout 2, --idle_timeout 1, --heartbeat 1 */

/* ---- buffers ---- */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

/* Appends n bytes (none with d NULL); b->p is never NULL afterwards. */
static void bput(struct buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap || !b->p) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void bbyte(struct buf *b, uint8_t c) { bput(b, &c, 1); }
static void bstr(struct buf *b, const char *s) { bput(b, s, strlen(s)); }

/* A login token that expires within 2 s (minted at most once a second): a stream opened with it
 * is ended by the server (SPEC §2: token_expiring, then the end of the stream). */
static const char *short_token(void)
{
    static char *token;
    static long minted;
    long now = (long)time(NULL);
    if (!token || now != minted) {
        struct token_claims c = { .sub = "0123456789abcdef0123456789abcdef", .username = "fuzz", .iat = now - 20,
                                  .exp = now + 2 };
        free(token);
        token = auth_token_issue((const unsigned char *)FUZZ_SECRET, strlen(FUZZ_SECRET), &c);
        if (!token)
            abort();
        minted = now;
    }
    return token;
}

/* Appends p[0..n) with "@L" (login token), "@T" (stream ticket), "@A" (admin token) and "@E" (a
 * login token about to expire) expanded. */
static void put_expanded(struct buf *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = i + 1 < n && p[i] == '@' ? p[i + 1] : 0;
        if (c == 'L' || c == 'T' || c == 'A' || c == 'E') {
            bstr(b, c == 'L' ? fuzz_login_token : c == 'T' ? fuzz_ticket : c == 'A' ? FUZZ_ADMIN_TOKEN : short_token());
            i++;
        } else {
            bbyte(b, p[i]);
        }
    }
}

/* ---- statistics ---- */

static bool verbose; /* FUZZ_H2_VERBOSE=1: what each input got */
static unsigned long inputs, framed_inputs, parked_inputs, statuses[600], goaways[16], resets[16], closes, no_answer;

/* ---- the connection's state: what we sent, what the server answered ---- */

struct stream_info {
    uint8_t method;    /* of our request: 0 unknown, 1 HEAD, 2 another */
    bool awaited;      /* a complete request: HEADERS or RST_STREAM is due */
    bool sync;         /* ... answered by the loop thread at once */
    bool cancelled;    /* we reset it */
    bool answered;     /* final HEADERS or RST_STREAM from the server */
    bool final;        /* final HEADERS received */
    bool ended;        /* END_STREAM or RST_STREAM from the server */
    bool event_stream;
    bool has_length;
    int status;
    unsigned long length, data;
    struct buf events;
};

struct session {
    int fd;
    unsigned long input; /* which input opened it */
    bool framed;
    long parked_at;      /* fuzz_now_ms() when parked, 0 if not */
    /* writing */
    struct buf out;
    size_t sent;
    bool full, write_failed, sent_goaway, half_closed, mixed_table;
    int32_t next_id, last_id, max_opened;
    nghttp2_hd_deflater *deflater;
    long write_deadline;
    /* streams */
    struct stream_info *streams;
    size_t nstreams;
    unsigned awaiting, awaiting_sync;
    /* reading */
    struct buf in;
    nghttp2_hd_inflater *inflater;
    int32_t block_sid;             /* header block in progress */
    bool block_end_stream, block_regular, block_has_length, block_event_stream;
    int block_status;
    unsigned long block_length;
    bool goaway, closed;
    size_t rx_total;
    long last_rx;
};

static void session_init(struct session *s)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->next_id = 1;
    if (nghttp2_hd_inflate_new(&s->inflater) != 0)
        abort();
}

static void session_free(struct session *s)
{
    for (size_t i = 0; i < s->nstreams; i++)
        free(s->streams[i].events.p);
    free(s->streams);
    free(s->out.p);
    free(s->in.p);
    if (s->deflater)
        nghttp2_hd_deflate_del(s->deflater);
    nghttp2_hd_inflate_del(s->inflater);
}

/* The state of odd stream id (client-initiated), or NULL. */
static struct stream_info *stream(struct session *s, int32_t id)
{
    if (id <= 0 || !(id & 1))
        return NULL;
    size_t i = (size_t)(id - 1) / 2;
    if (i >= MAX_TRACKED)
        return NULL;
    if (i >= s->nstreams) {
        size_t n = s->nstreams ? s->nstreams : 16;
        while (n <= i)
            n *= 2;
        struct stream_info *p = realloc(s->streams, n * sizeof *p);
        if (!p)
            abort();
        memset(p + s->nstreams, 0, (n - s->nstreams) * sizeof *p);
        s->streams = p;
        s->nstreams = n;
    }
    return &s->streams[i];
}

static void no_longer_awaited(struct session *s, struct stream_info *st)
{
    if (st->awaited && !st->answered && !st->cancelled) {
        s->awaiting--;
        if (st->sync)
            s->awaiting_sync--;
    }
}

static bool awaiting(const struct session *s) { return s->awaiting > 0 && !s->goaway; }
static bool awaiting_sync(const struct session *s) { return s->awaiting_sync > 0 && !s->goaway; }

/* ---- parsing what the server sends ---- */

static void dump(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && i < 96; i++)
        fprintf(stderr, "%02x%s", p[i], i % 32 == 31 ? "\n" : " ");
    fprintf(stderr, "\n");
}

static unsigned long parsing; /* the input whose connection is being parsed */

static void bad(const char *what, int32_t sid, const uint8_t *p, size_t n)
{
    fprintf(stderr, "fuzz_h2: the server sent %s (stream %d, connection of input %lu, now at input %lu); "
                    "bytes:\n", what, sid, parsing, inputs);
    dump(p, n);
    abort();
}

static bool token_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is(const nghttp2_nv *nv, const char *name)
{
    return nv->namelen == strlen(name) && memcmp(nv->name, name, nv->namelen) == 0;
}

/* One field of a response header block. */
static void on_field(struct session *s, const nghttp2_nv *nv)
{
    int32_t sid = s->block_sid;
    if (nv->namelen == 0)
        bad("an empty field name", sid, nv->name, 0);
    if (nv->name[0] == ':') {
        if (s->block_regular || !is(nv, ":status") || s->block_status)
            bad("a misplaced or unknown pseudo-header", sid, nv->name, nv->namelen);
        int code = 0;
        for (size_t i = 0; i < nv->valuelen; i++)
            code = nv->value[i] >= '0' && nv->value[i] <= '9' ? code * 10 + nv->value[i] - '0' : -1000;
        if (nv->valuelen != 3 || code < 100 || code > 599 || code == 101)
            bad("an invalid :status", sid, nv->value, nv->valuelen);
        s->block_status = code;
        return;
    }
    if (!s->block_status)
        bad("a field before :status", sid, nv->name, nv->namelen);
    s->block_regular = true;
    for (size_t i = 0; i < nv->namelen; i++)
        if (!token_char(nv->name[i]))
            bad("a field name that is not a lowercase token", sid, nv->name, nv->namelen);
    for (size_t i = 0; i < nv->valuelen; i++)
        if (nv->value[i] == 0 || nv->value[i] == '\r' || nv->value[i] == '\n')
            bad("a field value with NUL, CR or LF", sid, nv->value, nv->valuelen);
    if (nv->valuelen && (nv->value[0] == ' ' || nv->value[0] == '\t' || nv->value[nv->valuelen - 1] == ' ' ||
                         nv->value[nv->valuelen - 1] == '\t'))
        bad("a field value with surrounding whitespace", sid, nv->value, nv->valuelen);
    if (is(nv, "connection") || is(nv, "keep-alive") || is(nv, "proxy-connection") ||
        is(nv, "transfer-encoding") || is(nv, "upgrade") ||
        (is(nv, "te") && !(nv->valuelen == 8 && memcmp(nv->value, "trailers", 8) == 0)))
        bad("a connection-specific field (RFC 9113 §8.2.2)", sid, nv->name, nv->namelen);
    if (is(nv, "content-length")) {
        unsigned long v = 0;
        if (nv->valuelen == 0 || nv->valuelen > 12)
            bad("an invalid content-length", sid, nv->value, nv->valuelen);
        for (size_t i = 0; i < nv->valuelen; i++) {
            if (nv->value[i] < '0' || nv->value[i] > '9')
                bad("an invalid content-length", sid, nv->value, nv->valuelen);
            v = v * 10 + (unsigned long)(nv->value[i] - '0');
        }
        if (s->block_has_length)
            bad("two content-length fields", sid, nv->value, nv->valuelen);
        s->block_has_length = true;
        s->block_length = v;
    }
    if (is(nv, "content-type") && nv->valuelen >= 17 && memcmp(nv->value, "text/event-stream", 17) == 0)
        s->block_event_stream = true;
}

static void inflate(struct session *s, const uint8_t *p, size_t n, bool final)
{
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(s->inflater, &nv, &flags, p, n, final);
        if (rv < 0)
            bad("a header block that does not decode (HPACK)", s->block_sid, p, n);
        p += rv;
        n -= (size_t)rv;
        if (flags & NGHTTP2_HD_INFLATE_EMIT)
            on_field(s, &nv);
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(s->inflater);
            break;
        }
        if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
            break;
    }
}

/* A response header block is complete. */
static void end_block(struct session *s)
{
    int32_t sid = s->block_sid;
    struct stream_info *st = stream(s, sid);
    int status = s->block_status;
    s->block_sid = 0;
    if (!status)
        bad("a header block without :status", sid, NULL, 0);
    if (st && st->final)
        bad("a second final header block (trailers)", sid, NULL, 0);
    if (status < 200) {
        if (s->block_end_stream)
            bad("END_STREAM on an interim response", sid, NULL, 0);
        return;
    }
    statuses[status]++;
    if (status == 204 && s->block_has_length)
        bad("a 204 with content-length", sid, NULL, 0);
    if (!st)
        return;
    no_longer_awaited(s, st);
    st->answered = st->final = true;
    st->status = status;
    st->has_length = s->block_has_length;
    st->length = s->block_length;
    st->event_stream = s->block_event_stream;
    if (s->block_end_stream) {
        st->ended = true;
        if (st->method == 2 && st->has_length && st->length != 0 && status != 304)
            bad("END_STREAM on HEADERS with a non-zero content-length", sid, NULL, 0);
    }
}

static void on_frame(struct session *s, const uint8_t *f, size_t len, uint8_t type, uint8_t flags, int32_t sid)
{
    const uint8_t *p = f + 9;
    if (s->block_sid && type != NGHTTP2_CONTINUATION)
        bad("a frame inside a header block", sid, f, 9 + len);
    struct stream_info *st = stream(s, sid);
    switch (type) {
    case NGHTTP2_DATA: {
        if (sid <= 0 || !(sid & 1))
            bad("DATA on a stream we cannot have opened", sid, f, 9);
        size_t pad = 0, n = len;
        if (flags & NGHTTP2_FLAG_PADDED) {
            if (len < 1 || (size_t)p[0] >= len)
                bad("DATA with bad padding", sid, f, 9 + len);
            pad = p[0];
            p++;
            n = len - 1 - pad;
        }
        if (!st)
            return;
        if (!st->final || st->ended)
            bad("DATA before the response HEADERS or after END_STREAM", sid, f, 9);
        if (st->method == 1 || st->status == 204 || st->status == 304)
            bad("DATA on an answer to HEAD, or a 204 / 304", sid, f, 9);
        st->data += n;
        if (st->event_stream && st->events.len < EVENT_TEXT_MAX)
            bput(&st->events, p, n);
        if (flags & NGHTTP2_FLAG_END_STREAM) {
            st->ended = true;
            if (st->has_length && st->method == 2 && st->data != st->length) {
                fprintf(stderr, "fuzz_h2: content-length %lu, DATA %lu bytes\n", st->length, st->data);
                bad("a body of another length than its content-length", sid, f, 9);
            }
        }
        return;
    }
    case NGHTTP2_HEADERS: {
        if (sid <= 0 || !(sid & 1))
            bad("HEADERS on a stream we cannot have opened", sid, f, 9 + len);
        size_t n = len, pad = 0;
        if (flags & NGHTTP2_FLAG_PADDED) {
            if (len < 1)
                bad("HEADERS with bad padding", sid, f, 9 + len);
            pad = p[0];
            p++;
            n--;
        }
        if (flags & NGHTTP2_FLAG_PRIORITY) {
            if (n < 5)
                bad("HEADERS with a short priority", sid, f, 9 + len);
            p += 5;
            n -= 5;
        }
        if (pad > n)
            bad("HEADERS with bad padding", sid, f, 9 + len);
        n -= pad;
        if (st && st->ended)
            bad("HEADERS after END_STREAM", sid, f, 9 + len);
        s->block_sid = sid;
        s->block_end_stream = flags & NGHTTP2_FLAG_END_STREAM;
        s->block_regular = s->block_has_length = s->block_event_stream = false;
        s->block_status = 0;
        s->block_length = 0;
        inflate(s, p, n, flags & NGHTTP2_FLAG_END_HEADERS);
        if (flags & NGHTTP2_FLAG_END_HEADERS)
            end_block(s);
        return;
    }
    case NGHTTP2_CONTINUATION:
        if (!s->block_sid || sid != s->block_sid)
            bad("CONTINUATION outside its header block", sid, f, 9 + len);
        inflate(s, p, len, flags & NGHTTP2_FLAG_END_HEADERS);
        if (flags & NGHTTP2_FLAG_END_HEADERS)
            end_block(s);
        return;
    case NGHTTP2_RST_STREAM: {
        if (len != 4 || sid == 0)
            bad("a malformed RST_STREAM", sid, f, 9 + len);
        uint32_t code = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        resets[code < 15 ? code : 15]++;
        if (st) {
            no_longer_awaited(s, st);
            st->answered = st->ended = true;
        }
        return;
    }
    case NGHTTP2_SETTINGS:
        if (sid != 0 || len % 6 != 0 || ((flags & NGHTTP2_FLAG_ACK) && len != 0))
            bad("a malformed SETTINGS", sid, f, 9 + len);
        return;
    case NGHTTP2_PING:
        if (sid != 0 || len != 8)
            bad("a malformed PING", sid, f, 9 + len);
        return;
    case NGHTTP2_GOAWAY: {
        if (sid != 0 || len < 8)
            bad("a malformed GOAWAY", sid, f, 9 + len);
        uint32_t code = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        goaways[code < 15 ? code : 15]++;
        s->goaway = true;
        return;
    }
    case NGHTTP2_WINDOW_UPDATE:
        if (len != 4)
            bad("a malformed WINDOW_UPDATE", sid, f, 9 + len);
        return;
    default:
        bad("a frame type a server does not send here", sid, f, 9 + len);
    }
}

static void parse_input(struct session *s)
{
    size_t off = 0;
    parsing = s->input;
    while (s->in.len - off >= 9) {
        const uint8_t *f = s->in.p + off;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        if (len > MAX_FRAME)
            bad("a frame over 16384 bytes", 0, f, 9);
        if (s->in.len - off < 9 + len)
            break;
        int32_t sid = (int32_t)(((uint32_t)f[5] << 24 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 8 | f[8]) &
                                0x7fffffffu);
        on_frame(s, f, len, f[3], f[4], sid);
        off += 9 + len;
    }
    memmove(s->in.p, s->in.p + off, s->in.len - off);
    s->in.len -= off;
}

enum until { UNTIL_TIME, UNTIL_IDLE, UNTIL_SYNC_ANSWERED };

/* Reads and parses what the server sends, for up to ms or until the condition holds. */
static void pump(struct session *s, long ms, enum until until)
{
    long deadline = fuzz_now_ms() + ms;
    uint8_t buf[16384];
    while (!s->closed) {
        long now = fuzz_now_ms(), left = deadline - now;
        if (left <= 0)
            return;
        if (until == UNTIL_SYNC_ANSWERED && !awaiting_sync(s))
            return;
        long wait = left;
        if (until == UNTIL_IDLE && s->rx_total > 0 && !awaiting(s)) {
            long idle = READ_IDLE_MS - (now - s->last_rx);
            if (idle <= 0)
                return;
            if (idle < wait)
                wait = idle;
        }
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        int pr = poll(&p, 1, (int)wait);
        if (pr <= 0) {
            if (pr < 0 && errno != EINTR)
                return;
            continue;
        }
        ssize_t r = recv(s->fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (r <= 0) {
            s->closed = true;
            return;
        }
        s->rx_total += (size_t)r;
        s->last_rx = fuzz_now_ms();
        bput(&s->in, buf, (size_t)r);
        parse_input(s);
    }
}

/* ---- writing ---- */

static void frame(struct session *s, uint8_t type, uint8_t flags, int32_t sid, const void *p, size_t n)
{
    if (s->full || s->out.len + 9 + n > OUT_MAX) {
        s->full = true;
        return;
    }
    uint8_t h[9] = { (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, type, flags,
                     (uint8_t)((uint32_t)sid >> 24 & 0x7f), (uint8_t)((uint32_t)sid >> 16),
                     (uint8_t)((uint32_t)sid >> 8), (uint8_t)sid };
    bput(&s->out, h, 9);
    bput(&s->out, p, n);
    if (type == NGHTTP2_HEADERS && sid > s->max_opened)
        s->max_opened = sid;
}

/* Writes what is built and not written yet (in two pieces if split). */
static void flush(struct session *s, bool split)
{
    if (s->write_failed || s->sent == s->out.len)
        return;
    size_t n = s->out.len - s->sent;
    if (split && n > 1) {
        if (fuzz_send_all(s->fd, s->out.p + s->sent, n / 2, s->write_deadline) != 0) {
            s->write_failed = true;
            return;
        }
        s->sent += n / 2;
        n -= n / 2;
        usleep(1000);
    }
    if (fuzz_send_all(s->fd, s->out.p + s->sent, n, s->write_deadline) != 0)
        s->write_failed = true;
    s->sent = s->out.len;
}

/* Stream ids from a selector byte. A request prefers a new id, other stream frames the latest
 * stream, connection frames 0. */
static int32_t pick_sid(struct session *s, uint8_t sel, int prefer)
{
    int32_t older = s->last_id - 2 * ((sel >> 3) + 1);
    switch (sel & 7) {
    case 5:
        return prefer == 0 ? s->last_id : older < 1 ? 1 : older;
    case 6:
        return prefer == 2 ? 0 : s->next_id;
    case 7:
        return sel >> 3;
    default:
        if (prefer == 0) { /* a new stream */
            if (s->next_id <= s->max_opened)
                s->next_id = (s->max_opened + 1) | 1;
            int32_t id = s->next_id;
            if (s->next_id < 0x7ffffff0)
                s->next_id += 2;
            return id;
        }
        if (prefer == 1)
            return (sel & 7) == 4 ? 0 : s->last_id;
        return (sel & 7) == 4 ? s->last_id : 0;
    }
}
#define request_sid(s, sel) pick_sid(s, sel, 0)
#define other_sid(s, sel) pick_sid(s, sel, 1)
#define conn_sid(s, sel) pick_sid(s, sel, 2)

/* A list of header fields, their text in one buffer. */
struct fields {
    struct buf text;
    size_t at[MAX_FIELDS][4]; /* name offset, length, value offset, length */
    int n;
};

static void field(struct fields *h, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
    if (h->n == MAX_FIELDS)
        return;
    bput(&h->text, NULL, 0);
    size_t *a = h->at[h->n++];
    a[0] = h->text.len;
    put_expanded(&h->text, name, nl);
    a[1] = h->text.len - a[0];
    a[2] = h->text.len;
    put_expanded(&h->text, value, vl);
    a[3] = h->text.len - a[2];
}

static void field_s(struct fields *h, const char *name, const char *value)
{
    field(h, (const uint8_t *)name, strlen(name), (const uint8_t *)value, strlen(value));
}

/* Lines "name: value" (or "name:value", or a bare name), '\n'-separated; a name may start with ':'. */
static void field_lines(struct fields *h, const uint8_t *p, size_t n)
{
    while (n > 0) {
        const uint8_t *eol = memchr(p, '\n', n);
        size_t ll = eol ? (size_t)(eol - p) : n;
        const uint8_t *colon = ll > 1 ? memchr(p + 1, ':', ll - 1) : NULL;
        if (colon) {
            size_t nl = (size_t)(colon - p), vo = nl + 1;
            if (vo < ll && p[vo] == ' ')
                vo++;
            field(h, p, nl, p + vo, ll - vo);
        } else if (ll) {
            field(h, p, ll, NULL, 0);
        }
        p += ll + (eol ? 1 : 0);
        n -= ll + (eol ? 1 : 0);
    }
}

static void hpack_int(struct buf *b, uint8_t first, int bits, size_t v)
{
    size_t max = ((size_t)1 << bits) - 1;
    if (v < max) {
        bbyte(b, (uint8_t)(first | v));
        return;
    }
    bbyte(b, (uint8_t)(first | max));
    v -= max;
    while (v >= 128) {
        bbyte(b, (uint8_t)(v % 128 + 128));
        v /= 128;
    }
    bbyte(b, (uint8_t)v);
}

/* HPACK: rep 0 literal without indexing, 1 with incremental indexing, 2 never indexed (all with
 * a literal name, no Huffman), 3 nghttp2's deflater. */
static void encode(struct session *s, const struct fields *h, int rep, struct buf *block)
{
    bput(block, NULL, 0);
    if (rep == 3) {
        if (!s->deflater && nghttp2_hd_deflate_new(&s->deflater, 4096) != 0)
            abort();
        nghttp2_nv nva[MAX_FIELDS];
        for (int i = 0; i < h->n; i++)
            nva[i] = (nghttp2_nv){ h->text.p + h->at[i][0], h->text.p + h->at[i][2], h->at[i][1], h->at[i][3],
                                   NGHTTP2_NV_FLAG_NONE };
        size_t bound = nghttp2_hd_deflate_bound(s->deflater, nva, (size_t)h->n);
        uint8_t *tmp = malloc(bound ? bound : 1);
        if (!tmp)
            abort();
        ssize_t n = nghttp2_hd_deflate_hd(s->deflater, tmp, bound, nva, (size_t)h->n);
        if (n < 0)
            abort();
        bput(block, tmp, (size_t)n);
        free(tmp);
        return;
    }
    static const uint8_t first[3] = { 0x00, 0x40, 0x10 };
    static const int bits[3] = { 4, 6, 4 };
    for (int i = 0; i < h->n; i++) {
        hpack_int(block, first[rep], bits[rep], 0);
        hpack_int(block, 0, 7, h->at[i][1]);
        bput(block, h->text.p + h->at[i][0], h->at[i][1]);
        hpack_int(block, 0, 7, h->at[i][3]);
        bput(block, h->text.p + h->at[i][2], h->at[i][3]);
    }
    if (rep == 1)
        s->mixed_table = true; /* the server's table now holds entries the deflater does not know */
}

struct tmpl {
    const char *method, *path;
    char auth;          /* 'L', 'T', 'A' or 'E': an authorization field with that token */
    const char *extra;  /* more fields, as lines */
    bool sync;          /* the loop thread answers it at once */
};

static const struct tmpl templates[16] = {
    { "GET", "/healthz", 0, NULL, true },
    { "POST", "/users", 0, "content-type: application/json", false },
    { "POST", "/login", 0, "content-type: application/json", false },
    { "POST", "/insert", 'L', "content-type: application/json", false },
    { "GET", "/sse", 'L', "accept: text/event-stream", true },
    { "GET", "/sse?ticket=@T", 0, "accept: text/event-stream", true },
    { "GET", "/metrics", 0, NULL, true },
    { "GET", "/users/me", 'L', NULL, false },
    { "POST", "/sse/ticket", 'L', NULL, false },
    { "GET", "/admin/users", 'A', NULL, false },
    { "OPTIONS", "/insert", 0, "origin: http://example.com\naccess-control-request-method: POST", true },
    { "HEAD", "/healthz", 0, NULL, true },
    { NULL, NULL, 0, NULL, false }, /* every field from the payload */
    { "POST", "/insert", 0, "content-type: application/json", true }, /* 401 */
    { "GET", "/sse", 'E', "last-event-id: 0", true }, /* ended by the server within 2 s */
    { "PATCH", "/admin/users/0123456789abcdef0123456789abcdef", 'A', "content-type: application/json", false },
};

struct record {
    uint8_t kind, flags, sel;
    const uint8_t *p;
    size_t n;
};

static void request(struct session *s, const struct record *r, bool with_body)
{
    const struct tmpl *t = &templates[r->kind >> 4];
    uint8_t f = r->flags;
    int rep = (f >> 4) & 3;
    bool table_unsure = rep == 3 && s->mixed_table;
    const uint8_t *text = r->p;
    size_t n = r->n;
    struct fields *h = calloc(1, sizeof *h);
    struct buf body = { 0 }, block = { 0 };
    if (!h)
        abort();
    if (t->method) {
        struct buf path = { 0 };
        put_expanded(&path, (const uint8_t *)t->path, strlen(t->path));
        if (!with_body) {
            const uint8_t *eol = memchr(text, '\n', n);
            size_t ql = eol ? (size_t)(eol - text) : n;
            if (ql) {
                bstr(&path, strchr(t->path, '?') ? "&" : "?");
                bput(&path, text, ql);
            }
            text += ql + (eol ? 1 : 0);
            n -= ql + (eol ? 1 : 0);
        }
        field_s(h, ":method", t->method);
        field_s(h, ":scheme", "http");
        field_s(h, ":authority", "fuzz");
        field(h, (const uint8_t *)":path", 5, path.p, path.len);
        free(path.p);
        if (t->auth) {
            char v[10] = "Bearer @X";
            v[8] = t->auth;
            field_s(h, "authorization", v);
        }
        if (t->extra)
            field_lines(h, (const uint8_t *)t->extra, strlen(t->extra));
    }
    if (with_body) {
        bput(&body, NULL, 0);
        put_expanded(&body, text, n);
        if (!(f & 0x80)) {
            char len[24];
            snprintf(len, sizeof len, "%zu", body.len);
            field_s(h, "content-length", len);
        }
    } else {
        field_lines(h, text, n);
        if (f & 0x80)
            field_s(h, "content-length", "16");
    }
    encode(s, h, rep, &block);
    free(h->text.p);
    free(h);

    int32_t dep = s->last_id;
    int32_t sid = request_sid(s, r->sel);
    bool fresh = sid > s->max_opened && (sid & 1);
    s->last_id = sid;

    /* HEADERS [pad length] [priority] first part [padding], then CONTINUATION with the rest. */
    size_t first = (f & 0x02) ? block.len / 2 : block.len;
    struct buf hf = { 0 };
    uint8_t hflags = 0;
    if (!with_body && (f & 0x01))
        hflags |= NGHTTP2_FLAG_END_STREAM;
    if (!(f & 0x02) && !(f & 0x04))
        hflags |= NGHTTP2_FLAG_END_HEADERS;
    if (f & 0x40) {
        hflags |= NGHTTP2_FLAG_PADDED;
        bbyte(&hf, 7);
    }
    if (f & 0x08) {
        hflags |= NGHTTP2_FLAG_PRIORITY;
        uint8_t prio[5] = { (uint8_t)((uint32_t)dep >> 24 & 0x7f), (uint8_t)((uint32_t)dep >> 16),
                            (uint8_t)((uint32_t)dep >> 8), (uint8_t)dep, 15 };
        bput(&hf, prio, 5);
    }
    bput(&hf, block.p, first);
    if (f & 0x40)
        bput(&hf, "\0\0\0\0\0\0\0", 7);
    frame(s, NGHTTP2_HEADERS, hflags, sid, hf.p, hf.len);
    free(hf.p);
    if (f & 0x02)
        frame(s, NGHTTP2_CONTINUATION, (f & 0x04) ? 0 : NGHTTP2_FLAG_END_HEADERS, sid, block.p + first,
              block.len - first);
    free(block.p);
    if (with_body) {
        size_t half = (f & 0x01) && body.len > 1 ? body.len / 2 : 0;
        if (half)
            frame(s, NGHTTP2_DATA, 0, sid, body.p, half);
        frame(s, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, sid, body.p + half, body.len - half);
    }
    free(body.p);

    struct stream_info *st = fresh ? stream(s, sid) : NULL;
    if (st && !s->full) {
        st->method = !t->method || table_unsure ? 0 : strcmp(t->method, "HEAD") == 0 ? 1 : 2;
        bool complete = !(f & 0x04) && (with_body || (f & 0x01));
        if (complete && t->method && !st->awaited) {
            st->awaited = true;
            st->sync = t->sync && !table_unsure;
            s->awaiting++;
            if (st->sync)
                s->awaiting_sync++;
        }
    }
}

static void run_record(struct session *s, const struct record *r)
{
    int32_t sid;
    switch (r->kind & 15) {
    case 1:
        request(s, r, false);
        return;
    case 15:
        request(s, r, true);
        return;
    case 0:
        frame(s, NGHTTP2_DATA, r->flags, other_sid(s, r->sel), r->p, r->n);
        return;
    case 2:
        sid = request_sid(s, r->sel);
        s->last_id = sid;
        s->mixed_table = true;
        frame(s, NGHTTP2_HEADERS, r->flags, sid, r->p, r->n);
        return;
    case 3:
        frame(s, NGHTTP2_PRIORITY, r->flags, other_sid(s, r->sel), r->p, r->n);
        return;
    case 4: {
        sid = other_sid(s, r->sel);
        struct stream_info *st = stream(s, sid);
        if (st) {
            no_longer_awaited(s, st);
            st->cancelled = true;
        }
        frame(s, NGHTTP2_RST_STREAM, r->flags, sid, r->p, r->n);
        return;
    }
    case 5:
        frame(s, NGHTTP2_SETTINGS, r->flags, conn_sid(s, r->sel), r->p, r->n);
        return;
    case 6:
        s->mixed_table = true;
        frame(s, NGHTTP2_PUSH_PROMISE, r->flags, other_sid(s, r->sel), r->p, r->n);
        return;
    case 7:
        frame(s, NGHTTP2_PING, r->flags, conn_sid(s, r->sel), r->p, r->n);
        return;
    case 8:
        s->sent_goaway = true;
        frame(s, NGHTTP2_GOAWAY, r->flags, conn_sid(s, r->sel), r->p, r->n);
        return;
    case 9:
        frame(s, NGHTTP2_WINDOW_UPDATE, r->flags, other_sid(s, r->sel), r->p, r->n);
        return;
    case 10:
        s->mixed_table = true;
        frame(s, NGHTTP2_CONTINUATION, r->flags, other_sid(s, r->sel), r->p, r->n);
        return;
    case 11: {
        struct fields *h = calloc(1, sizeof *h);
        struct buf block = { 0 };
        if (!h)
            abort();
        field_lines(h, r->p, r->n);
        encode(s, h, 0, &block);
        frame(s, NGHTTP2_CONTINUATION, r->flags, other_sid(s, r->sel), block.p, block.len);
        free(h->text.p);
        free(h);
        free(block.p);
        return;
    }
    case 12:
        frame(s, (uint8_t)(0x0a + (r->kind >> 4)), r->flags, other_sid(s, r->sel), r->p, r->n);
        return;
    }
}

static void run_framed(struct session *s, const uint8_t *p, size_t n)
{
    struct record hist[4];
    int nhist = 0;
    long pause_left = PAUSE_BUDGET_MS;
    while (n >= 4 && !s->full && !s->closed) {
        struct record r = { p[0], p[1], p[2], p + 4, p[3] < n - 4 ? p[3] : n - 4 };
        p += 4 + r.n;
        n -= 4 + r.n;
        if ((r.kind & 15) == 13) {
            int k = (r.sel & 3) + 1;
            if (k > nhist)
                k = nhist;
            for (int c = 0; c <= r.flags && !s->full; c++)
                for (int j = nhist - k; j < nhist; j++)
                    run_record(s, &hist[j]);
            continue;
        }
        if ((r.kind & 15) == 14) {
            long ms = (r.flags & 31) + 1;
            if (ms > pause_left)
                ms = pause_left;
            if (ms > 0) {
                pause_left -= ms;
                flush(s, false);
                pump(s, ms, UNTIL_TIME);
            }
            continue;
        }
        run_record(s, &r);
        if (nhist == 4)
            memmove(hist, hist + 1, 3 * sizeof hist[0]);
        else
            nhist++;
        hist[nhist - 1] = r;
    }
}

/* ---- one input ---- */

static const uint8_t settings_frame[9] = { 0, 0, 0, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0 };

static void open_session(struct session *s)
{
    session_init(s);
    s->fd = fuzz_connect();
    if (s->fd < 0) {
        fprintf(stderr, "fuzz_h2: cannot connect to the server: %s\n", strerror(errno));
        abort();
    }
    s->write_deadline = fuzz_now_ms() + WRITE_MS;
    bput(&s->out, PREFACE, sizeof PREFACE - 1);
    bput(&s->out, settings_frame, sizeof settings_frame);
}

static void close_session(struct session *s)
{
    fuzz_close(s->fd, s->closed);
    session_free(s);
}

/* GET /healthz over HTTP/2 answers 200. */
static int h2_healthz_ok(void)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        struct session s;
        open_session(&s);
        struct record r = { 0x01, 0x01, 0, (const uint8_t *)"", 0 }; /* template 0, END_STREAM */
        request(&s, &r, false);
        flush(&s, false);
        pump(&s, 5000, UNTIL_SYNC_ANSWERED);
        struct stream_info *st = stream(&s, 1);
        int ok = st && st->status == 200;
        close_session(&s);
        if (ok)
            return 1;
        sleep(1);
    }
    return 0;
}

static void check_all(const char *when)
{
    fuzz_check_server(when, inputs);
    if (!h2_healthz_ok()) {
        fprintf(stderr, "fuzz_h2: GET /healthz over HTTP/2 does not answer 200 (%s, after %lu inputs)\n", when,
                inputs);
        abort();
    }
}

static void unpark_old(bool everything, bool wait);

static void at_exit(void)
{
    unpark_old(true, true);
    fprintf(stderr, "fuzz_h2: %lu inputs (%lu framed, %lu parked); statuses:", inputs, framed_inputs,
            parked_inputs);
    for (int i = 100; i < 600; i++)
        if (statuses[i])
            fprintf(stderr, " %d:%lu", i, statuses[i]);
    fprintf(stderr, "; GOAWAY codes:");
    for (int i = 0; i < 16; i++)
        if (goaways[i])
            fprintf(stderr, " %d:%lu", i, goaways[i]);
    fprintf(stderr, "; RST_STREAM codes:");
    for (int i = 0; i < 16; i++)
        if (resets[i])
            fprintf(stderr, " %d:%lu", i, resets[i]);
    fprintf(stderr, "; closed by the server: %lu; awaited answers not seen in time: %lu; abuse GOAWAYs: %lu\n",
            closes, no_answer,
            (unsigned long)atomic_load(&fuzz_app.metrics.h2_abuse_goaways));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char *const extra[] = { "--h2_max_streams", "8", "--max_backlog", "4096", "--max_header", "4096",
                                         "--max_body", "4096", "--log_level", "info", "--idle_timeout", "1",
                                         "--heartbeat", "1", NULL };
    const char *v = getenv("FUZZ_H2_VERBOSE");
    verbose = v && *v && *v != '0';
    fuzz_server_start("fuzz_h2", extra);
    if (!h2_healthz_ok()) {
        fprintf(stderr, "fuzz_h2: GET /healthz over HTTP/2 does not answer 200 at start\n");
        abort();
    }
    atexit(at_exit); /* so it runs before the server's stop, registered before it */
    return 0;
}

/* The end of a connection: what the server sent last is read and checked, then ours is closed. */
static void finish(struct session *s)
{
    if (s->parked_at)
        pump(s, 2, UNTIL_TIME); /* what a parked connection got meanwhile */
    if (s->framed && !s->half_closed && !s->write_failed && s->closed && !s->goaway && !s->sent_goaway) {
        fprintf(stderr, "fuzz_h2: the server closed the connection of input %lu without a GOAWAY%s\n", s->input,
                s->parked_at ? " (parked)" : "");
        abort();
    }
    if (s->closed)
        closes++;
    if (verbose) {
        fprintf(stderr, "fuzz_h2: input %lu%s: %zu bytes written%s, %zu read, %s%s\n", s->input,
                s->parked_at ? " (parked)" : "", s->out.len, s->write_failed ? " (write failed)" : "", s->rx_total,
                s->goaway ? "GOAWAY, " : "", s->closed ? "closed by the server" : "open");
        for (size_t i = 0; i < s->nstreams; i++) {
            const struct stream_info *st = &s->streams[i];
            if (st->awaited || st->answered)
                fprintf(stderr, "  stream %zu: status %d%s%s, %lu data bytes%s%s\n", 2 * i + 1, st->status,
                        st->event_stream ? " event stream" : "", st->ended ? " ended" : "", st->data,
                        st->cancelled ? ", cancelled by us" : "", st->awaited && !st->answered ? ", NOT ANSWERED" : "");
        }
    }
    for (size_t i = 0; i < s->nstreams; i++)
        if (s->streams[i].events.len)
            fuzz_check_event_text((const char *)s->streams[i].events.p, s->streams[i].events.len);
    close_session(s);
    free(s);
}

/* Parked connections (mode bit 3) stay open for PARK_MS, so that the server's deadlines (408 for a
 * request still arriving, GOAWAY when idle), heartbeats and credential expiry reach them. */
static struct session *parked[MAX_PARKED];

static void unpark(int i)
{
    struct session *s = parked[i];
    memmove(parked + i, parked + i + 1, (size_t)(MAX_PARKED - 1 - i) * sizeof parked[0]);
    parked[MAX_PARKED - 1] = NULL;
    finish(s);
}

/* Closes the parked connections older than PARK_MS (all with everything; waiting until each is
 * that old with wait, so that a replayed reproducer reaches the deadlines too). */
static void unpark_old(bool everything, bool wait)
{
    while (parked[0]) {
        long age = fuzz_now_ms() - parked[0]->parked_at;
        if (age < PARK_MS && !everything)
            return;
        if (age < PARK_MS && wait)
            usleep((useconds_t)(PARK_MS - age) * 1000);
        unpark(0);
    }
}

/* A crash of a server thread caused by a parked connection lands much later: with FUZZ_H2_LAST set
 * each parked input is kept there as parked-<slot> too. */
static void keep_parked(int slot, const uint8_t *data, size_t size)
{
    const char *dir = getenv("FUZZ_H2_LAST");
    if (!dir || !*dir)
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/parked-%d", dir, slot);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    fuzz_keep_last("FUZZ_H2_LAST", inputs, data, size);
    unpark_old(false, false);
    uint8_t mode = data[0];
    bool half_close = mode & 2, split = mode & 4, park = mode & 8;
    struct session *s = malloc(sizeof *s);
    if (!s)
        abort();
    open_session(s);
    s->input = inputs;
    s->framed = mode & 1;
    if (s->framed) {
        framed_inputs++;
        run_framed(s, data + 1, size - 1);
    } else {
        bput(&s->out, data + 1, size - 1);
    }
    flush(s, split);
    if (half_close && !s->write_failed) {
        shutdown(s->fd, SHUT_WR);
        s->half_closed = true;
    }
    pump(s, READ_TOTAL_MS, UNTIL_IDLE);
    if (awaiting_sync(s) && !s->half_closed)
        pump(s, SYNC_ANSWER_MS, UNTIL_SYNC_ANSWERED);
    if (awaiting(s) && !s->closed)
        no_answer++;
    if (s->framed && !s->half_closed && !s->write_failed && awaiting_sync(s) && !s->closed) {
        for (size_t i = 0; i < s->nstreams; i++)
            if (s->streams[i].awaited && s->streams[i].sync && !s->streams[i].answered && !s->streams[i].cancelled)
                fprintf(stderr, "fuzz_h2: stream %zu: a complete request answered by the loop thread has "
                                "neither HEADERS nor RST_STREAM after %d ms, and no GOAWAY came\n",
                        2 * i + 1, SYNC_ANSWER_MS);
        abort();
    }
    if (park && !s->closed && !s->half_closed && !parked[MAX_PARKED - 1]) {
        int slot = 0;
        while (parked[slot])
            slot++;
        s->parked_at = fuzz_now_ms();
        parked[slot] = s;
        parked_inputs++;
        keep_parked((int)(s->input % MAX_PARKED), data, size);
    } else {
        finish(s);
    }
    if (++inputs % CHECK_EVERY == 0) {
        unpark_old(true, false);
        check_all("periodic check");
    }
    return 0;
}
