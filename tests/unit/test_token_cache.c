/* Unit tests of token_cache: hits equal fresh verification, expiry still applies, failures are
 * never cached, different tokens never share claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "token_cache.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
#define SECRET_LEN (sizeof secret - 1)

static char *issue(const char *sub, long exp)
{
    struct token_claims c = { .iat = 1000, .exp = exp };
    strcpy(c.sub, sub);
    strcpy(c.username, "name");
    return auth_token_issue(secret, SECRET_LEN, &c);
}

static void hit_returns_the_same_claims_until_expiry(void **state)
{
    (void)state;
    struct token_cache *c = token_cache_new();
    char *t = issue("alice", 2000);
    struct token_claims a, b;
    const char *reason = NULL;
    assert_int_equal(token_cache_verify(c, secret, SECRET_LEN, t, 1500, &a, &reason), 0);
    assert_int_equal(token_cache_verify(c, secret, SECRET_LEN, t, 1600, &b, &reason), 0);
    assert_string_equal(b.sub, "alice");
    assert_int_equal(b.exp, 2000);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_not_equal(token_cache_verify(c, secret, SECRET_LEN, t, 2000, &b, &reason), 0);
    assert_string_equal(reason, "token expired");
    free(t);
    token_cache_free(c);
}

static void failures_are_not_cached_and_tokens_do_not_mix(void **state)
{
    (void)state;
    struct token_cache *c = token_cache_new();
    char *t = issue("bob", 5000);
    char *bad = strdup(t);
    bad[strlen(bad) - 2] ^= 1; /* tamper with the signature */
    struct token_claims out;
    const char *reason;
    assert_int_not_equal(token_cache_verify(c, secret, SECRET_LEN, bad, 1500, &out, &reason), 0);
    assert_int_not_equal(token_cache_verify(c, secret, SECRET_LEN, bad, 1500, &out, &reason), 0);
    assert_int_equal(token_cache_verify(c, secret, SECRET_LEN, t, 1500, &out, &reason), 0);
    assert_int_not_equal(token_cache_verify(c, secret, SECRET_LEN, bad, 1500, &out, &reason), 0);
    char *other = issue("carol", 5000);
    for (int i = 0; i < 600; i++) { /* cycle many tokens through the slots */
        char sub[32];
        snprintf(sub, sizeof sub, "user%d", i);
        char *x = issue(sub, 5000);
        assert_int_equal(token_cache_verify(c, secret, SECRET_LEN, x, 1500, &out, &reason), 0);
        assert_string_equal(out.sub, sub);
        free(x);
    }
    assert_int_equal(token_cache_verify(c, secret, SECRET_LEN, other, 1500, &out, &reason), 0);
    assert_string_equal(out.sub, "carol");
    free(t);
    free(bad);
    free(other);
    token_cache_free(c);
}

static int setup(void **state)
{
    (void)state;
    return auth_init();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_returns_the_same_claims_until_expiry),
        cmocka_unit_test(failures_are_not_cached_and_tokens_do_not_mix),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
