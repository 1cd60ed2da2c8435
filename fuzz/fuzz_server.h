/* fuzz_server: the whole server started in-process for the fuzzers that talk to it over loopback
 * TCP (fuzz_request, fuzz_h2): app_start with a temporary --db and a --rules file, port 0 on
 * 127.0.0.1, tokens minted with the server's secret; the client side of a connection (connect,
 * write, bounded read, close); the invariants every such fuzzer checks (GET /healthz answers,
 * subscribers back to 0, descriptors back near the start); the SPEC §2 check of event data; and
 * the stop at exit (app_stop, so LeakSanitizer sees a full shutdown, then the database removed). */
#ifndef BROKER_FUZZ_SERVER_H
#define BROKER_FUZZ_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"

#define FUZZ_SECRET "fuzz-request-secret-0123456789abcdef-0123"
#define FUZZ_ADMIN_TOKEN "fuzz-admin-token-0123456789abcdef"

extern struct app fuzz_app;
/* A valid login token and a valid stream ticket (scope "sse") of the same user, minted at start. */
extern char *fuzz_login_token, *fuzz_ticket;

/* Starts the server (aborts on failure) with the common flags plus extra (NULL-terminated, may be
 * NULL), checks it once and arranges the stop at exit. name prefixes every message. */
void fuzz_server_start(const char *name, const char *const *extra);

long fuzz_now_ms(void);
/* A fresh non-blocking connection to the server, or -1 (errno set). */
int fuzz_connect(void);
/* Writes as much as the server takes before deadline (fuzz_now_ms); 0, or -1 once it stops
 * reading or closed. */
int fuzz_send_all(int fd, const void *buf, size_t len, long deadline);
/* Reads until EOF, total_ms or idle_ms of silence after the first bytes. Keeps the first cap - 1
 * bytes in buf (NUL-terminated), their count in *kept. Returns 1 when the server closed. */
int fuzz_read_response(int fd, char *buf, size_t cap, size_t *kept, long total_ms, int idle_ms);
/* Closes fd; with a reset (no TIME_WAIT, an abrupt peer) unless the server closed first. */
void fuzz_close(int fd, int server_closed);
/* The status of an HTTP/1.x status line, or 0. */
int fuzz_http_status(const char *head);

/* SPEC §2: in text[0..len) of an event stream, every complete frame's data: lines must be one
 * JSON value with no raw control byte; otherwise abort(). A cut last frame is skipped. */
void fuzz_check_event_text(const char *text, size_t len);

/* Aborts unless GET /healthz (HTTP/1.1) answers 200 and, with every client connection closed, the
 * subscribers drop to 0 and the descriptors back near the start within 10 s. */
void fuzz_check_server(const char *when, unsigned long inputs);

/* A crash on a server thread can land while the next input already runs: with the environment
 * variable env naming a directory, the last 8 inputs are kept there too (last-input-<n % 8>). */
void fuzz_keep_last(const char *env, unsigned long n, const uint8_t *data, size_t size);

#endif
