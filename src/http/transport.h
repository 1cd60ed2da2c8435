/* http/transport: the bytes of one client connection, plain or TLS, behind one interface, so that
 * the HTTP layer (conn.c) and the stream writer (hub.c) never care which. A transport owns its
 * socket, its TLS session and its slot in the per-address connection count (peer_limit), and
 * gives all three back in transport_close. */
#ifndef BROKER_HTTP_TRANSPORT_H
#define BROKER_HTTP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct ssl_st SSL;
struct peer_slot;

struct transport {
    int fd;
    SSL *ssl;                /* NULL: plain HTTP */
    struct peer_slot *slot;  /* NULL: this address is not counted */
    unsigned tls_retry;      /* TLS: bytes of the write that must be repeated (OpenSSL's rule) */
    bool want_write;         /* the last call stopped until the socket is writable */
};

/* TLS only: advances the handshake. 1 when it is done, 0 when it waits for the socket (see
 * want_write), -1 when it failed. */
int transport_handshake(struct transport *t);
/* Reads up to cap bytes: > 0 bytes read, 0 at the end of the stream, -1 with errno (EAGAIN when
 * nothing is available yet). */
ssize_t transport_read(struct transport *t, void *buf, size_t cap);
/* Writes from iov (n entries): bytes written (maybe fewer than offered), or -1 with errno
 * (EAGAIN when the socket is full; want_write tells whether to wait for writability). */
ssize_t transport_writev(struct transport *t, const struct iovec *iov, int n);
/* TLS: whether ALPN chose HTTP/2. */
bool transport_alpn_h2(const struct transport *t);
/* TLS: bytes already decrypted and waiting (the socket will not signal them). */
bool transport_has_pending(const struct transport *t);
/* Shuts the write side down cleanly (close_notify for TLS), best effort, never blocks. */
void transport_shutdown(struct transport *t);
/* Frees the TLS session, closes the socket, releases the address slot. */
void transport_close(struct transport *t);

#endif
