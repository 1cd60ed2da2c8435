/* http/tls: modern defaults: TLS 1.2 minimum, OpenSSL's default cipher lists (which already leave
 * out the weak ones), no compression, no renegotiation, server cipher preference. */
#include "http/tls.h"

#include <openssl/err.h>

#include "http/h2.h"
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

/* ALPN: our preference ("h2", then "http/1.1") among what the client offers; a client that offers
 * neither goes on without ALPN (HTTP/1.1). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *selected;
    if (SSL_select_next_proto(&selected, outlen, h2_alpn_protos, h2_alpn_protos_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *tls_context_new(const char *key_path, const char *cert_path, bool h2)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        log_openssl("cannot create context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle streams keep no TLS buffers; writes may be partial and come back from another address
     * (transport.c rebuilds the same bytes elsewhere). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (h2)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
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
