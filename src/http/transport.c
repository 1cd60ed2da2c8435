/* http/transport: plain sockets with recv/writev, TLS with OpenSSL on the same non-blocking socket
 * (no BIO pairs, no extra copies on the way in). */
#include "http/transport.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/peer_limit.h"

/* TLS writes gather small frames into one record of at most this size: one SSL_write per record
 * instead of one per frame. */
#define TLS_GATHER 16384

/* Maps the outcome of an SSL call to our convention; ret is what the call returned. */
static ssize_t tls_result(struct transport *t, int ret)
{
    int err = SSL_get_error(t->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        t->want_write = false;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        t->want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0)
            errno = ECONNRESET; /* EOF in the middle of the protocol */
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

int transport_handshake(struct transport *t)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->want_write = false;
        return 1;
    }
    return tls_result(t, ret) < 0 && errno == EAGAIN ? 0 : -1;
}

ssize_t transport_read(struct transport *t, void *buf, size_t cap)
{
    if (!t->ssl) {
        ssize_t n;
        do
            n = recv(t->fd, buf, cap, 0);
        while (n < 0 && errno == EINTR);
        return n;
    }
    ERR_clear_error();
    int ret = SSL_read(t->ssl, buf, cap > (size_t)1 << 30 ? 1 << 30 : (int)cap);
    return ret > 0 ? ret : tls_result(t, ret);
}

ssize_t transport_writev(struct transport *t, const struct iovec *iov, int n)
{
    if (!t->ssl) {
        ssize_t w;
        do
            w = writev(t->fd, iov, n);
        while (w < 0 && errno == EINTR);
        t->want_write = w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        return w;
    }
    /* OpenSSL: a write that stopped on WANT_* must be repeated with the same bytes. The caller's
     * queue only grows at its end until something is written, so the same prefix is rebuilt. */
    static _Thread_local unsigned char gather[TLS_GATHER];
    size_t want = t->tls_retry ? t->tls_retry : TLS_GATHER, len = 0;
    for (int i = 0; i < n && len < want; i++) {
        size_t take = iov[i].iov_len < want - len ? iov[i].iov_len : want - len;
        memcpy(gather + len, iov[i].iov_base, take);
        len += take;
    }
    if (len == 0)
        return 0;
    ERR_clear_error();
    int ret = SSL_write(t->ssl, gather, (int)len);
    if (ret > 0) {
        t->tls_retry = 0;
        t->want_write = false;
        return ret;
    }
    if (tls_result(t, ret) == 0)
        errno = EPIPE; /* the peer closed the session */
    else if (errno == EAGAIN)
        t->tls_retry = (unsigned)len;
    return -1;
}

bool transport_alpn_h2(const struct transport *t)
{
    const unsigned char *proto = NULL;
    unsigned len = 0;
    if (t->ssl)
        SSL_get0_alpn_selected(t->ssl, &proto, &len);
    return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

bool transport_has_pending(const struct transport *t) { return t->ssl && SSL_has_pending(t->ssl); }

void transport_shutdown(struct transport *t)
{
    if (t->fd < 0)
        return;
    if (t->ssl) {
        ERR_clear_error();
        if (SSL_is_init_finished(t->ssl))
            (void)SSL_shutdown(t->ssl); /* one close_notify; the peer's answer is not awaited */
        ERR_clear_error();
    }
    shutdown(t->fd, SHUT_WR);
}

void transport_close(struct transport *t)
{
    if (t->ssl) {
        SSL_free(t->ssl);
        t->ssl = NULL;
    }
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    peer_limit_release(t->slot);
    t->slot = NULL;
}
