/* api: the routes. router.c dispatches every request of a loop's HTTP server to one handler
 * below; each handler answers on the loop thread, possibly later (after a worker or the writer
 * finished), but always exactly once. */
#ifndef BROKER_API_H
#define BROKER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "http/request.h"

struct loop;

/* http_server callbacks; arg is the struct loop. */
void api_dispatch(struct http_request *req, void *arg);
void api_refuse(struct http_request *req, int status, const char *message, void *arg);

void api_users(struct loop *l, struct http_request *req);
void api_login(struct loop *l, struct http_request *req);
void api_insert(struct loop *l, struct http_request *req);
void api_sse(struct loop *l, struct http_request *req);
void api_sse_ticket(struct loop *l, struct http_request *req);
void api_metrics(struct loop *l, struct http_request *req);
void api_healthz(struct loop *l, struct http_request *req);

/* Verifies the bearer token; on failure answers 401 and returns -1. A ticket (scope "sse") is
 * accepted only when allow_ticket is set. A token issued before its user was revoked or changed
 * (SPEC §5: claim ver) is refused too. */
int api_authenticate(struct loop *l, struct http_request *req, int allow_ticket,
                     struct token_claims *claims);
/* The revocation half of api_authenticate, for credentials verified another way (a ticket in the
 * URL): 0, or -1 after a 401. */
int api_token_current(struct loop *l, struct http_request *req, const struct token_claims *claims);

/* Identity and access (SPEC §5). */
void api_create_user(struct loop *l, struct http_request *req, int by_admin);
void api_admin(struct loop *l, struct http_request *req);
void api_me(struct loop *l, struct http_request *req);
/* The admin console (issue 13): /admin and /admin/console/..., static files in the binary. */
bool api_admin_console_path(const char *path);
void api_admin_console(struct loop *l, struct http_request *req);
struct user_record;
/* {"id", "username", "roles", "totp"} (+ "revoked", "created_at" when admin_view). */
json_t *api_user_json(const struct user_record *u, int admin_view);
/* The optional "roles" member of a body, an array of role names, as a canonical list into out
 * (USER_ROLES_TEXT_MAX bytes; "" when absent). 0 (*present says whether it was there; present may
 * be NULL), or -1 after a 400. */
int api_read_roles(struct http_request *req, json_t *root, char *out, int *present);

/* Reads the required string member name of object into *out and *len (may hold NULs: use len).
 * 0, or -1 with a reason for a 400 written into err. */
int api_string_member(json_t *object, const char *name, const char **out, size_t *len, char *err,
                      size_t errcap);

/* Reads {"username", "password"} for POST /users (check_rules: the password length rules) and
 * POST /login. 0 with *root holding the parsed body (caller decrefs), or -1 after a 400. */
int api_read_credentials(struct http_request *req, const char **username, size_t *ulen,
                         const char **password, size_t *plen, json_t **root, int check_rules);

struct work;
/* Queues password work (Argon2id) on the worker pool. 0, or -1 after answering 503 (with a
 * Retry-After from the pool's estimate when it is busy); the caller still owns w then. */
int api_submit_password_work(struct loop *l, struct http_request *req, struct work *w);

#endif
