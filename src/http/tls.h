/* http/tls: the server's OpenSSL context (--secure=true). Each connection's session is made from it
 * in http/conn.c and driven by http/transport.c. */
#ifndef BROKER_HTTP_TLS_H
#define BROKER_HTTP_TLS_H

#include <openssl/ssl.h>

/* Loads key and certificate chain; NULL (reason logged) when either cannot be used. */
SSL_CTX *tls_context_new(const char *key_path, const char *cert_path);
void tls_context_free(SSL_CTX *ctx);

#endif
