/* token_cache: 256 slots keyed by a hash of the token, each holding a copy of the token and its
 * claims. The full token is compared on a hit, so a hash collision can only cause a miss. */
#include "token_cache.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define TOKEN_CACHE_SLOTS 256
#define TOKEN_CACHE_MAX_LEN 2048 /* longer tokens are verified every time */

struct slot {
    char *token;
    size_t len;
    struct token_claims claims;
};

struct token_cache {
    struct slot slots[TOKEN_CACHE_SLOTS];
};


struct token_cache *token_cache_new(void) { return calloc(1, sizeof(struct token_cache)); }

void token_cache_free(struct token_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++)
        free(c->slots[i].token);
    free(c);
}

int token_cache_verify(struct token_cache *c, const unsigned char *secret, size_t secret_len,
                       const char *token, long now, struct token_claims *out, const char **reason)
{
    size_t len = token ? strlen(token) : 0;
    if (!c || len == 0 || len > TOKEN_CACHE_MAX_LEN)
        return auth_token_verify(secret, secret_len, token, now, out, reason);
    struct slot *s = &c->slots[hash_bytes(token, len) % TOKEN_CACHE_SLOTS];
    if (s->token && s->len == len && memcmp(s->token, token, len) == 0) {
        if (s->claims.exp > now) {
            *out = s->claims;
            return 0;
        }
        *reason = "token expired";
        return -EACCES;
    }
    int rc = auth_token_verify(secret, secret_len, token, now, out, reason);
    if (rc != 0)
        return rc; /* failures are not cached: they are cheap to repeat and must not evict */
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, token, len + 1);
        free(s->token);
        s->token = copy;
        s->len = len;
        s->claims = *out;
    }
    return 0;
}
