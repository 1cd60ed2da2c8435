/* fuzz_jwt: auth_token_verify (src/auth.c: header pin + libjwt + claim checks) with a fixed secret
 * and a fixed clock. The first input byte picks how the rest becomes a token:
 *   0: the bytes are the token, as an Authorization header or ?ticket= would carry it;
 *   1: "<header JSON>\0<payload JSON>", base64url-encoded and signed here with the right secret,
 *      so the claim checks behind the signature get fuzzed too;
 *   2: the same, signed with a wrong secret;
 *   3: the same, with an empty signature ("alg":"none" style).
 * Invariants: never crash; a token is accepted only when its signature is exactly the canonical
 * base64url HMAC-SHA256 of "header.payload" under our secret (so 2 and 3 are always refused and
 * no re-encoding of a signature is accepted); an accepted token's header is a JSON object with
 * alg "HS256" and its payload holds the claims that came out; re-issuing those claims with
 * auth_token_issue gives a token that verifies to the same claims; token_cache_verify (the
 * per-loop cache in front of it) answers as auth_token_verify does, also after expiry. */
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "token_cache.h"

#define NOW 1700000000L
static const char secret[] = "fuzz-secret-0123456789abcdef-0123456789";
static const char wrong_secret[] = "fuzz-secret-0123456789abcdef-012345678X";

static void fail(const char *what, const char *token)
{
    fprintf(stderr, "fuzz_jwt: %s\ntoken: %.3000s\n", what, token);
    abort();
}

static char *b64url(const unsigned char *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    if (!out)
        abort();
    sodium_bin2base64(out, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

static void hmac(const char *key, const char *msg, size_t len, unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, len);
    crypto_auth_hmacsha256_final(&st, out);
}

/* Strictly decodes one base64url segment and parses it as JSON the way libjwt reads a segment
 * (a C string: it ends at the first NUL); NULL when either fails. */
static json_t *segment_json(const char *seg, size_t len)
{
    unsigned char *raw = malloc(len + 1);
    size_t rawlen = 0;
    json_t *v = NULL;
    if (!raw)
        abort();
    if (sodium_base642bin(raw, len, seg, len, NULL, &rawlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) {
        raw[rawlen] = '\0';
        v = json_loads((const char *)raw, JSON_DECODE_ANY, NULL);
    }
    free(raw);
    return v;
}

static void check_claim_string(json_t *payload, const char *name, const char *got, const char *token)
{
    json_t *v = json_object_get(payload, name);
    if (!v) {
        if (got[0] != '\0')
            fail("a claim absent from the payload came out non-empty", token);
        return;
    }
    if (!json_is_string(v) || strcmp(json_string_value(v), got) != 0)
        fail("a string claim came out different from the payload", token);
}

static void check_accepted(const char *token, const struct token_claims *c)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
        fail("accepted a token that is not header.payload.signature", token);
    unsigned char mac[32];
    hmac(secret, token, (size_t)(dot2 - token), mac);
    char *want = b64url(mac, sizeof mac);
    if (strcmp(dot2 + 1, want) != 0)
        fail("accepted a signature that is not the canonical HMAC of header.payload", token);
    free(want);

    json_t *hdr = segment_json(token, (size_t)(dot1 - token));
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_object(hdr) || !json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
        fail("accepted a token whose header is not {\"alg\":\"HS256\"}", token);
    json_decref(hdr);

    json_t *payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!json_is_object(payload))
        fail("accepted a token whose payload is not a JSON object", token);
    json_t *exp = json_object_get(payload, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) != c->exp || c->exp <= NOW)
        fail("exp came out different from the payload, or expired", token);
    json_t *iat = json_object_get(payload, "iat");
    if (iat ? !json_is_integer(iat) || json_integer_value(iat) != c->iat : c->iat != 0)
        fail("iat came out different from the payload", token);
    if (!json_is_string(json_object_get(payload, "sub")))
        fail("accepted a token without a string sub", token);
    check_claim_string(payload, "sub", c->sub, token);
    check_claim_string(payload, "username", c->username, token);
    check_claim_string(payload, "scope", c->scope, token);
    json_decref(payload);

    /* Round trip through the issuer. */
    char *again = auth_token_issue((const unsigned char *)secret, strlen(secret), c);
    if (!again)
        fail("cannot re-issue the claims of an accepted token", token);
    struct token_claims c2;
    const char *reason;
    memset(&c2, 0x55, sizeof c2);
    if (auth_token_verify((const unsigned char *)secret, strlen(secret), again, NOW, &c2, &reason) != 0)
        fail("a re-issued token does not verify", token);
    if (strcmp(c->sub, c2.sub) != 0 || strcmp(c->username, c2.username) != 0 ||
        strcmp(c->scope, c2.scope) != 0 || c->exp != c2.exp || c->iat != c2.iat)
        fail("a re-issued token verifies to other claims", token);
    free(again);
}

/* token_cache_verify (the per-loop cache in front of auth_token_verify, src/token_cache.c) must
 * answer exactly as auth_token_verify does: on the miss that fills it, on the hit after, and at a
 * later time (derived from the last input byte, up to beyond the seed tokens' exp) when expiry
 * must still apply. The cache lives across inputs, as it does across requests on a loop. */
static void check_cache(const char *token, int rc, const struct token_claims *c, uint8_t later)
{
    static struct token_cache *cache;
    if (!cache && !(cache = token_cache_new()))
        abort();
    long whens[3] = { NOW, NOW, NOW + (long)later * 20000000L };
    for (int k = 0; k < 3; k++) {
        struct token_claims a, b;
        const char *ra = NULL, *rb = NULL;
        memset(&a, 0x11, sizeof a);
        memset(&b, 0x22, sizeof b);
        int want = k == 0 ? rc : auth_token_verify((const unsigned char *)secret, strlen(secret),
                                                   token, whens[k], &a, &ra);
        if (k == 0)
            a = *c;
        int got = token_cache_verify(cache, (const unsigned char *)secret, strlen(secret), token,
                                     whens[k], &b, &rb);
        if (got != want)
            fail(want == 0 ? "the token cache refused a token that verifies"
                           : "the token cache accepted a token that does not verify (or expired)",
                 token);
        if (got == 0 && (strcmp(a.sub, b.sub) != 0 || strcmp(a.username, b.username) != 0 ||
                         strcmp(a.scope, b.scope) != 0 || a.exp != b.exp || a.iat != b.iat))
            fail("the token cache answered other claims", token);
        if (got != 0 && (!rb || !*rb))
            fail("the token cache refused without a reason", token);
    }
}

/* Builds the token of modes 1-3 from "<header>\0<payload>". */
static char *signed_token(const uint8_t *data, size_t size, int mode)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *payload = nul ? nul + 1 : data + size;
    size_t plen = nul ? size - hlen - 1 : 0;
    char *h = b64url(data, hlen), *p = b64url(payload, plen);
    size_t cap = strlen(h) + strlen(p) + 64;
    char *token = malloc(cap);
    if (!token)
        abort();
    int n = snprintf(token, cap, "%s.%s.", h, p);
    if (mode != 3) {
        unsigned char mac[32];
        hmac(mode == 1 ? secret : wrong_secret, token, (size_t)n - 1, mac);
        char *s = b64url(mac, sizeof mac);
        snprintf(token + n, cap - (size_t)n, "%s", s);
        free(s);
    }
    free(h);
    free(p);
    return token;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8000)
        return 0;
    int mode = data[0] % 4;
    data++;
    size--;
    char *token;
    if (mode == 0) {
        token = malloc(size + 1);
        if (!token)
            abort();
        memcpy(token, data, size);
        token[size] = '\0';
    } else {
        token = signed_token(data, size, mode);
    }
    struct token_claims c;
    const char *reason = NULL;
    memset(&c, 0xAA, sizeof c);
    int rc = auth_token_verify((const unsigned char *)secret, strlen(secret), token, NOW, &c, &reason);
    if (rc == 0) {
        if (mode >= 2)
            fail("accepted a token signed with another secret, or not signed", token);
        if (!memchr(c.sub, 0, sizeof c.sub) || !memchr(c.username, 0, sizeof c.username) ||
            !memchr(c.scope, 0, sizeof c.scope))
            fail("a claim came out without its terminating NUL", token);
        check_accepted(token, &c);
    } else if (!reason || !*reason || rc >= 0) {
        fail("refused without a reason or with a non-negative code", token);
    }
    check_cache(token, rc, &c, size ? data[size - 1] : 0);
    free(token);
    return 0;
}
