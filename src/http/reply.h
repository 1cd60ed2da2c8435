/* http/reply: everything a route needs to read a request and answer it: CORS headers, JSON bodies,
 * JSON errors, the bearer token. Loop-thread only. */
#ifndef BROKER_HTTP_REPLY_H
#define BROKER_HTTP_REPLY_H

#include <jansson.h>

struct evhttp_request;
struct config;

/* Adds the CORS headers for this request's Origin to the response (SPEC §2 CORS). */
void http_add_cors(struct evhttp_request *req, const struct config *cfg);
/* Answers status with body serialised compactly; takes the reference to body. */
void http_reply_json(struct evhttp_request *req, int status, json_t *body);
/* Answers {"error": message} and logs it at info level (debug for 401). */
void http_reply_error(struct evhttp_request *req, int status, const char *message);
/* Parses the request body as a JSON object. NULL with *err set to a reason for a 400. */
json_t *http_read_json_object(struct evhttp_request *req, const char **err);
/* The token of "Authorization: Bearer <token>", or NULL. Points into the request headers. */
const char *http_bearer_token(struct evhttp_request *req);
/* "ip:port" of the peer into buf, for logs. */
const char *http_peer(struct evhttp_request *req, char *buf, size_t cap);

#endif
