/* auth: password hashing (Argon2id through libsodium) and HS256 tokens (libjwt). Pure functions:
 * the caller owns every buffer. Hashing is slow on purpose and must only run on a worker thread. */
#ifndef BROKER_AUTH_H
#define BROKER_AUTH_H

#include <stddef.h>

#define AUTH_HASH_MAX 128 /* >= crypto_pwhash_STRBYTES */
#define AUTH_ID_MAX 40
#define AUTH_SCOPE_SSE "sse"
/* A user's roles as one comma-separated list: at most 32 names of at most 64 bytes (SPEC §5). */
#define AUTH_ROLES_TEXT_MAX (32 * 65 + 1)

/* Call once before any other function (initialises libsodium). 0 or -1. */
int auth_init(void);

/* Argon2id hash of password into out (NUL-terminated). 0, or -ENOMEM. */
int auth_password_hash(const char *password, size_t len, char out[AUTH_HASH_MAX]);
/* 0 when password matches hash, -EACCES otherwise. hash NULL verifies against a dummy hash so
 * that an unknown user costs the same time as a wrong password. */
int auth_password_verify(const char *hash, const char *password, size_t len);

/* A random user id (32 lowercase hex characters) into out. */
void auth_new_user_id(char out[AUTH_ID_MAX]);

struct token_claims {
    char sub[AUTH_ID_MAX];
    char username[132];
    long iat;
    long exp;
    char scope[16]; /* "" for a login token, "sse" for a stream ticket */
    long ver;       /* the user's token version when issued (claim "ver"; 0 when absent) */
    char roles[AUTH_ROLES_TEXT_MAX]; /* claim "roles" (a JSON array), comma-separated; "" = none */
};

/* Issues an HS256 JWT; returns a malloc'd string (caller frees) or NULL. */
char *auth_token_issue(const unsigned char *secret, size_t secret_len, const struct token_claims *c);
/* Verifies signature (HS256 only), exp > now and the claim shapes. 0 and *out filled, or
 * -EACCES with *reason set to a static string fit for a 401 body. */
int auth_token_verify(const unsigned char *secret, size_t secret_len, const char *token, long now,
                      struct token_claims *out, const char **reason);

#endif
