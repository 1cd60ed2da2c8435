/* http/tls: modern defaults: TLS 1.2 minimum, OpenSSL's default cipher lists (which already leave
 * out the weak ones), no compression, no renegotiation, server cipher preference. */
#include "http/tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "log.h"

static void log_openssl(const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    log_error("tls: %s %s: %s", what, path, buf);
    ERR_clear_error();
}

SSL_CTX *tls_context_new(const char *key_path, const char *cert_path)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        log_openssl("cannot create context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle streams keep no TLS buffers */
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        log_openssl("cannot load certificate", cert_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        log_openssl("cannot load private key", key_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        log_openssl("private key does not match certificate", cert_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_context_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

/* evhttp treats a NULL from this callback as "no TLS" and would speak plain HTTP on the TLS port.
 * When TLS cannot be set up (out of memory), hand it one end of a pair whose other end is gone
 * instead: nothing is ever read, the request times out, and evhttp closes the socket. */
static struct bufferevent *dead_end(struct event_base *base)
{
    struct bufferevent *pair[2];
    log_error("tls: cannot set up a connection (out of memory); dropping it");
    if (bufferevent_pair_new(base, 0, pair) != 0)
        return NULL;
    bufferevent_free(pair[1]);
    return pair[0];
}

struct bufferevent *tls_bufferevent_new(struct event_base *base, void *arg)
{
    SSL *ssl = SSL_new(arg);
    if (!ssl)
        return dead_end(base);
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return dead_end(base);
    }
    return bev;
}
