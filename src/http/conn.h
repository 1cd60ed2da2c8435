/* http/conn: one client connection of an http_server (see server.h for what the layer does; how
 * is in conn.c, conn_parse.c and conn_answer.c). Used by server.c only; route handlers see
 * struct http_request. */
#ifndef BROKER_HTTP_CONN_H
#define BROKER_HTTP_CONN_H

#include <sys/socket.h>

#include "http/server.h"

typedef struct ssl_st SSL;
struct peer_slot;

/* Runs a new connection on fd (TLS when ssl is set). 0, or -ENOMEM with fd, ssl and slot still
 * the caller's. */
int conn_new(struct http_server *s, int fd, SSL *ssl, struct peer_slot *slot, const struct sockaddr *sa);
/* Shutdown: an idle connection closes now, a busy one after the answers it owes. May free c. */
void conn_drain(struct conn *c);
/* Closes the connection at once. */
void conn_free(struct conn *c);
/* The next connection of the server's list. */
struct conn *conn_next(const struct conn *c);
/* Writes the answers that became ready (the server's flush event). */
void conn_flush_all(struct http_server *s);

#endif
