/* http/tls: the server's OpenSSL context (--secure=true) and the bufferevent factory evhttp uses
 * to wrap each accepted connection in TLS. */
#ifndef BROKER_HTTP_TLS_H
#define BROKER_HTTP_TLS_H

#include <openssl/ssl.h>

struct bufferevent;
struct event_base;

/* Loads key and certificate chain; NULL (reason logged) when either cannot be used. */
SSL_CTX *tls_context_new(const char *key_path, const char *cert_path);
void tls_context_free(SSL_CTX *ctx);
/* evhttp_set_bevcb callback; arg is the SSL_CTX. */
struct bufferevent *tls_bufferevent_new(struct event_base *base, void *arg);

#endif
