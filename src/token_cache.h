/* token_cache: recently verified tokens of one loop thread, so that a publisher sending many
 * requests with the same JWT pays for the base64, JSON and HMAC work once instead of on every
 * request. A hit returns the claims only while exp is still in the future, so expiry keeps its
 * meaning; tokens are stateless, so a token that verified once stays valid until then. Owned by
 * one loop; not thread-safe. Direct-mapped: a collision just evicts. */
#ifndef BROKER_TOKEN_CACHE_H
#define BROKER_TOKEN_CACHE_H

#include "auth.h"

struct token_cache;

struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *c);

/* Verifies token like auth_token_verify, answering from the cache when it can. */
int token_cache_verify(struct token_cache *c, const unsigned char *secret, size_t secret_len,
                       const char *token, long now, struct token_claims *out, const char **reason);

#endif
