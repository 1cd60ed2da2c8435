/* http/reply: what every route needs on top of http/request: CORS headers, JSON bodies, JSON
 * errors (logged), the body as a JSON object, the bearer token. Loop-thread only. */
#ifndef BROKER_HTTP_REPLY_H
#define BROKER_HTTP_REPLY_H

#include <jansson.h>

#include "http/request.h"

struct config;

/* Adds the CORS headers for this request's Origin to the response (SPEC §2 CORS). */
void http_add_cors(struct http_request *req, const struct config *cfg);
/* Answers status with body serialised compactly; takes the reference to body. */
void http_reply_json(struct http_request *req, int status, json_t *body);
/* Answers {"error": message} and logs it at info level (debug for 401, error for 5xx). */
void http_reply_error(struct http_request *req, int status, const char *message);
/* Parses the request body as a JSON object. NULL with *err set to a reason for a 400. */
json_t *http_read_json_object(struct http_request *req, const char **err);
/* The token of "Authorization: Bearer <token>", or NULL. Points into the request. */
const char *http_bearer_token(struct http_request *req);

#endif
