/* http/h2: HTTP/2 connections (SPEC §6) on libnghttp2, behind the same seams as HTTP/1.1: a
 * connection is handed over by conn.c (ALPN "h2", or the client preface on plain HTTP), each
 * request stream reaches the router as a struct http_request, answers go through http_reply, and
 * an event stream becomes one h2 stream whose bytes the hub offers through an h2_source.
 * Loop-thread only. */
#ifndef BROKER_HTTP_H2_H
#define BROKER_HTTP_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

struct http_server;
struct transport;
struct h2_conn;
struct h2_stream;

/* ALPN protocol list a TLS server offers when HTTP/2 is on (wire format). */
extern const unsigned char h2_alpn_protos[];
extern const unsigned h2_alpn_protos_len;

/* Does buf[0..len) start like the HTTP/2 client preface? 1: the whole preface is there, 0: it is
 * a prefix of it (wait for more), -1: it is not HTTP/2. */
int h2_preface_match(const char *buf, size_t len);

/* Takes over transport t (moved out: t->fd becomes -1) and runs HTTP/2 on it; in[0..in_len) are
 * bytes already read from the client (the preface, maybe more). 0, or -ENOMEM with t untouched. */
int h2_conn_new(struct http_server *s, struct transport *t, const char *peer, const char *address,
                const char *in, size_t in_len);
/* Shutdown: GOAWAY, then the connection closes once its streams have ended. May free c. */
void h2_conn_drain(struct h2_conn *c);
/* Closes the connection at once; its streams' owners are told. */
void h2_conn_free(struct h2_conn *c);
struct h2_conn *h2_conn_next(const struct h2_conn *c);
/* Writes what the connections queued for writing (the server's flush event). */
void h2_flush_all(struct http_server *s);

/* ---- for the request API (http/request.h on an HTTP/2 request) ---- */
const char *h2_header(const struct http_request *req, const char *name);
void h2_add_header(struct http_request *req, const char *name, const char *value);
void h2_reply(struct http_request *req, int status, const char *content_type, const char *body,
              size_t len);
/* Answers 200 with the headers and turns the stream into an event stream fed by a source (bound
 * with h2_stream_bind). 0, or -ENOMEM / -EINVAL with the request still to be answered. */
int h2_take_stream(struct http_request *req, const char *const headers[][2], size_t n,
                   struct h2_stream **out);

/* ---- an event stream (the hub's side) ---- */

/* Where an event stream's bytes come from: the hub's subscriber. */
struct h2_source {
    /* Copies up to cap bytes of what the stream has to send into buf; 0 when it has nothing now
     * (h2_stream_resume says when it has more). Called while the connection writes. */
    size_t (*read)(void *arg, uint8_t *buf, size_t cap);
    /* The stream is gone (the client reset it, or the connection closed): arg must forget it and
     * must not call h2_stream_* on it again. */
    void (*gone)(void *arg);
    /* After a resume, once the connection has written what the windows and the socket took: what
     * the source still holds is its backlog. It may reset the stream. */
    void (*sent)(void *arg);
};

void h2_stream_bind(struct h2_stream *st, const struct h2_source *src, void *arg);
/* The source has more to send: it goes with the connection's next write, which collects every
 * stream that has more (one write per connection per batch). */
void h2_stream_resume(struct h2_stream *st);
/* Ends the stream cleanly: tail[0..len) (copied) is sent, then END_STREAM. The stream is no longer
 * the caller's; the source is not called again. */
void h2_stream_finish(struct h2_stream *st, const void *tail, size_t len);
/* Ends the stream at once (RST_STREAM CANCEL). The stream is no longer the caller's. */
void h2_stream_reset(struct h2_stream *st);

#endif
