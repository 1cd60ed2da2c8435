/* http/request: what a route handler sees of one HTTP request, and how it answers. A handler
 * answers exactly once, now or later on the loop thread (after a worker or the writer finished):
 * with http_reply, or by taking the connection over as an event stream (http_take_stream). The
 * request stays valid until then, even if the client went away meanwhile. */
#ifndef BROKER_HTTP_REQUEST_H
#define BROKER_HTTP_REQUEST_H

#include <http_parser.h>
#include <stddef.h>

struct conn;
struct h2_stream;
struct transport;

struct http_request {
    struct conn *conn;       /* HTTP/1.1: the connection (NULL on HTTP/2) */
    struct h2_stream *h2;    /* HTTP/2: the stream (NULL on HTTP/1.1) */
    int method;           /* enum http_method (HTTP_GET, HTTP_POST, ...); -1 if never parsed */
    const char *target;   /* the request target as sent, for logs ("?" if never parsed) */
    const char *path;     /* NULL when the request head could not be parsed */
    const char *query;    /* after '?', NULL when there is none */
    const char *body;     /* the body (chunked bodies already joined); never NULL */
    size_t body_len;
    const char *peer;     /* "address:port" for logs */
    const char *address;  /* the client address alone, e.g. for throttling */
    int route;            /* enum metric_route: requests are counted by route and status */
};

/* The value of the first header called name (case-insensitive), or NULL. */
const char *http_header(const struct http_request *req, const char *name);
/* Adds a response header (copied). Names and values are ours, never raw client bytes with CR/LF. */
void http_add_header(struct http_request *req, const char *name, const char *value);
/* Answers: status, Content-Type and body (copied), plus the headers added so far. */
void http_reply(struct http_request *req, int status, const char *content_type, const char *body,
                size_t len);
/* The standard phrase of an HTTP status code. */
const char *http_status_phrase(int status);

/* Ends the request by taking it over for a response that runs until the stream ends (an event
 * stream): status 200, the n given headers, then the added ones.
 * - HTTP/1.1: the connection becomes the stream's. The socket moves into *out, and *head
 *   (malloc'd, *head_len bytes) is the response head to send first; *h2 is NULL.
 * - HTTP/2: the request's h2 stream becomes the event stream, in *h2 (see http/h2.h: the caller
 *   binds a source to it); the head is already submitted, *head is NULL and out->fd is -1.
 * 0, or -ENOMEM with the request still to be answered. */
int http_take_stream(struct http_request *req, const char *const headers[][2], size_t n,
                     struct transport *out, struct h2_stream **h2, char **head, size_t *head_len);

#endif
