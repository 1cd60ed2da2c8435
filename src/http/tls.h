/* http/tls: the server's OpenSSL context (--secure=true). Each connection's session is made from it
 * in http/conn.c and driven by http/transport.c. */
#ifndef BROKER_HTTP_TLS_H
#define BROKER_HTTP_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

/* Loads key and certificate chain; NULL (reason logged) when either cannot be used. With h2, ALPN
 * picks "h2" when the client offers it (SPEC §6), else "http/1.1". */
SSL_CTX *tls_context_new(const char *key_path, const char *cert_path, bool h2);
void tls_context_free(SSL_CTX *ctx);

#endif
