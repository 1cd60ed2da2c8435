/* Unit tests of src/auth.c: Argon2id password hashes, user ids, and HS256 tokens, including the
 * classic JWT attacks (alg none, algorithm substitution, tampering) and malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes */
#define SECRET_LEN (sizeof SECRET - 1)
static const unsigned char OTHER_SECRET[] = "0123456789abcdef0123456789abcdeX";

static long NOW; /* fixed "now" for every token test */

static int group_setup(void **state)
{
    (void)state;
    if (auth_init() != 0)
        return -1;
    NOW = (long)time(NULL);
    return 0;
}

/* ---- helpers to forge tokens by hand ---- */

static char *b64url(const void *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    assert_non_null(out);
    sodium_bin2base64(out, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

static char *b64url_str(const char *s) { return b64url(s, strlen(s)); }

/* base64url(HMAC-SHA256(key, msg)) */
static char *hs256_sig(const unsigned char *key, size_t keylen, const char *msg)
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
    crypto_auth_hmacsha256_final(&st, mac);
    return b64url(mac, sizeof mac);
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s.%s.%s", a, b, c);
    return s;
}

/* header.payload signed with HS256 and key, whatever the header claims. */
static char *forge(const char *header_json, const char *payload_json, const unsigned char *key,
                   size_t keylen)
{
    char *h = b64url_str(header_json);
    char *p = b64url_str(payload_json);
    size_t n = strlen(h) + strlen(p) + 2;
    char *signing_input = malloc(n);
    assert_non_null(signing_input);
    snprintf(signing_input, n, "%s.%s", h, p);
    char *sig = key ? hs256_sig(key, keylen, signing_input) : strdup("");
    assert_non_null(sig);
    char *tok = join3(h, p, sig);
    free(h);
    free(p);
    free(signing_input);
    free(sig);
    return tok;
}

/* A token signed by libjwt itself with the given algorithm and claims (a JSON object). */
static char *libjwt_token(jwt_alg_t alg, const unsigned char *key, size_t keylen, const char *claims)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)keylen), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    char *tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    return tok;
}

static struct token_claims sample_claims(long iat, long exp, const char *scope)
{
    struct token_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", "0123456789abcdef0123456789abcdef");
    snprintf(c.username, sizeof c.username, "%s", "alice");
    c.iat = iat;
    c.exp = exp;
    snprintf(c.scope, sizeof c.scope, "%s", scope);
    return c;
}

static char *issue(long iat, long exp, const char *scope)
{
    struct token_claims c = sample_claims(iat, exp, scope);
    char *tok = auth_token_issue(SECRET, SECRET_LEN, &c);
    assert_non_null(tok);
    return tok;
}

/* Asserts rejection with exactly this reason (NULL: any non-empty reason). */
static void assert_rejected(const char *token, const char *want_reason)
{
    struct token_claims out;
    const char *reason = NULL;
    int rc = auth_token_verify(SECRET, SECRET_LEN, token, NOW, &out, &reason);
    if (rc != -EACCES)
        print_error("token accepted: %.200s\n", token ? token : "(null)");
    assert_int_equal(rc, -EACCES);
    assert_non_null(reason);
    assert_true(strlen(reason) > 0);
    if (want_reason)
        assert_string_equal(reason, want_reason);
}

static void assert_accepted(const char *token, struct token_claims *out)
{
    const char *reason = NULL;
    int rc = auth_token_verify(SECRET, SECRET_LEN, token, NOW, out, &reason);
    if (rc != 0)
        print_error("token rejected (%s): %.200s\n", reason ? reason : "?", token);
    assert_int_equal(rc, 0);
}

/* Splits a token into its three parts (caller frees the returned copies). */
static void split(const char *tok, char **h, char **p, char **s)
{
    const char *d1 = strchr(tok, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    *h = strndup(tok, (size_t)(d1 - tok));
    *p = strndup(d1 + 1, (size_t)(d2 - d1 - 1));
    *s = strdup(d2 + 1);
    assert_true(*h && *p && *s);
}

static json_t *decode_part(const char *b64)
{
    unsigned char raw[4096];
    size_t rawlen = 0;
    assert_int_equal(sodium_base642bin(raw, sizeof raw, b64, strlen(b64), NULL, &rawlen, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    json_t *j = json_loadb((const char *)raw, rawlen, 0, NULL);
    assert_non_null(j);
    return j;
}

/* ---- passwords ---- */

static void test_password_hash_round_trip(void **state)
{
    (void)state;
    const char *pw = "correct horse battery staple";
    char hash[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash(pw, strlen(pw), hash), 0);
    assert_true(strlen(hash) < AUTH_HASH_MAX);
    assert_int_equal(strncmp(hash, "$argon2id$", 10), 0);
    assert_null(strstr(hash, pw)); /* obviously, but cheap to check */
    assert_int_equal(auth_password_verify(hash, pw, strlen(pw)), 0);
    assert_int_equal(auth_password_verify(hash, "correct horse battery stapla", strlen(pw)), -EACCES);
    assert_int_equal(auth_password_verify(hash, pw, strlen(pw) - 1), -EACCES);
    assert_int_equal(auth_password_verify(hash, "correct horse battery staple!", strlen(pw) + 1),
                     -EACCES);
    assert_int_equal(auth_password_verify(hash, "Correct horse battery staple", strlen(pw)), -EACCES);
    assert_int_equal(auth_password_verify(hash, "", 0), -EACCES);
}

static void test_password_hash_is_salted(void **state)
{
    (void)state;
    const char *pw = "same password";
    char h1[AUTH_HASH_MAX], h2[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash(pw, strlen(pw), h1), 0);
    assert_int_equal(auth_password_hash(pw, strlen(pw), h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(auth_password_verify(h1, pw, strlen(pw)), 0);
    assert_int_equal(auth_password_verify(h2, pw, strlen(pw)), 0);
}

static void test_password_uses_length_not_terminator(void **state)
{
    (void)state;
    /* Passwords are byte strings: an embedded NUL must not cut them short. */
    const char pw[] = "abc\0defgh";
    char hash[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash(pw, sizeof pw - 1, hash), 0);
    assert_int_equal(auth_password_verify(hash, pw, sizeof pw - 1), 0);
    assert_int_equal(auth_password_verify(hash, "abc\0XXXXX", sizeof pw - 1), -EACCES);
    assert_int_equal(auth_password_verify(hash, "abc", 3), -EACCES);
}

static void test_password_verify_null_hash_is_denied(void **state)
{
    (void)state;
    /* Unknown user: always denied, whatever the password (it is checked against a dummy). */
    assert_int_equal(auth_password_verify(NULL, "whatever1", 9), -EACCES);
    assert_int_equal(auth_password_verify(NULL, "", 0), -EACCES);
}

static void test_password_verify_garbage_hash_is_denied(void **state)
{
    (void)state;
    const char *pw = "hunter22";
    assert_int_equal(auth_password_verify("", pw, strlen(pw)), -EACCES);
    assert_int_equal(auth_password_verify("not a hash", pw, strlen(pw)), -EACCES);
    assert_int_equal(auth_password_verify("$argon2id$v=19$m=65536,t=2,p=1$", pw, strlen(pw)), -EACCES);
    assert_int_equal(auth_password_verify(pw, pw, strlen(pw)), -EACCES); /* plaintext stored */
}

static void test_password_verify_rejects_altered_hash(void **state)
{
    (void)state;
    const char *pw = "hunter2hunter2";
    char hash[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash(pw, strlen(pw), hash), 0);
    size_t n = strlen(hash);
    hash[n - 1] = hash[n - 1] == 'A' ? 'B' : 'A'; /* last character of the digest */
    assert_int_equal(auth_password_verify(hash, pw, strlen(pw)), -EACCES);
}

/* ---- user ids ---- */

static void assert_user_id_shape(const char *id)
{
    assert_int_equal(strlen(id), 32);
    for (size_t i = 0; i < 32; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            print_error("bad character '%c' in user id %s\n", c, id);
        assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
}

static void test_user_id_is_32_lowercase_hex(void **state)
{
    (void)state;
    char id[AUTH_ID_MAX];
    memset(id, 'Z', sizeof id);
    auth_new_user_id(id);
    assert_user_id_shape(id);
    assert_int_equal(id[32], '\0');
}

static void test_user_ids_differ(void **state)
{
    (void)state;
    enum { N = 64 };
    char ids[N][AUTH_ID_MAX];
    for (int i = 0; i < N; i++) {
        auth_new_user_id(ids[i]);
        assert_user_id_shape(ids[i]);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
}

/* ---- tokens: the good path ---- */

static void test_token_round_trip_login(void **state)
{
    (void)state;
    char *tok = issue(NOW, NOW + 3600, "");
    struct token_claims out;
    memset(&out, 'Z', sizeof out);
    assert_accepted(tok, &out);
    assert_string_equal(out.sub, "0123456789abcdef0123456789abcdef");
    assert_string_equal(out.username, "alice");
    assert_int_equal(out.iat, NOW);
    assert_int_equal(out.exp, NOW + 3600);
    assert_string_equal(out.scope, "");
    free(tok);
}

static void test_token_round_trip_sse_ticket(void **state)
{
    (void)state;
    char *tok = issue(NOW - 10, NOW + 60, AUTH_SCOPE_SSE);
    struct token_claims out;
    assert_accepted(tok, &out);
    assert_string_equal(out.scope, "sse");
    assert_int_equal(out.iat, NOW - 10);
    assert_int_equal(out.exp, NOW + 60);
    free(tok);
}

static void test_token_round_trip_unicode_username(void **state)
{
    (void)state;
    struct token_claims c = sample_claims(NOW, NOW + 60, "");
    /* 128 bytes, the longest username, of 2-byte characters and a quote and backslash */
    memset(c.username, 0, sizeof c.username);
    for (int i = 0; i < 63; i++)
        memcpy(c.username + 2 * i, "\xC3\xA9", 2);
    memcpy(c.username + 126, "\"\\", 2);
    assert_int_equal(strlen(c.username), 128);
    char *tok = auth_token_issue(SECRET, SECRET_LEN, &c);
    assert_non_null(tok);
    struct token_claims out;
    assert_accepted(tok, &out);
    assert_string_equal(out.username, c.username);
    free(tok);
}

static void test_token_is_hs256_jwt_with_expected_claims(void **state)
{
    (void)state;
    char *tok = issue(NOW, NOW + 5, "");
    char *h, *p, *s;
    split(tok, &h, &p, &s);
    json_t *hdr = decode_part(h);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "HS256");
    json_t *claims = decode_part(p);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")),
                        "0123456789abcdef0123456789abcdef");
    assert_string_equal(json_string_value(json_object_get(claims, "username")), "alice");
    assert_true(json_is_integer(json_object_get(claims, "iat")));
    assert_true(json_is_integer(json_object_get(claims, "exp")));
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), NOW + 5);
    /* a login token has no scope claim at all */
    assert_null(json_object_get(claims, "scope"));
    /* the signature is HMAC-SHA256 over header.payload with the secret */
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = malloc(n);
    assert_non_null(input);
    snprintf(input, n, "%s.%s", h, p);
    char *want = hs256_sig(SECRET, SECRET_LEN, input);
    assert_string_equal(s, want);
    free(want);
    free(input);
    json_decref(hdr);
    json_decref(claims);
    free(h);
    free(p);
    free(s);
    free(tok);
}

static void test_forged_hs256_token_is_accepted(void **state)
{
    (void)state;
    /* Checks the forging helper itself, so that the rejections below are due to what they
     * change and not to a broken helper. */
    char payload[256];
    snprintf(payload, sizeof payload, "{\"sub\":\"u1\",\"username\":\"bob\",\"iat\":%ld,\"exp\":%ld}", NOW,
             NOW + 100);
    char *tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET, SECRET_LEN);
    struct token_claims out;
    assert_accepted(tok, &out);
    assert_string_equal(out.sub, "u1");
    assert_string_equal(out.username, "bob");
    free(tok);
    tok = forge("{\"alg\":\"HS256\"}", payload, SECRET, SECRET_LEN);
    assert_accepted(tok, &out);
    free(tok);
}

/* ---- tokens: expiry ---- */

static void test_token_expired_at_exp(void **state)
{
    (void)state;
    char *tok = issue(NOW - 100, NOW, ""); /* exp == now: expired */
    assert_rejected(tok, "token expired");
    free(tok);
    tok = issue(NOW - 100, NOW - 1, "");
    assert_rejected(tok, "token expired");
    free(tok);
    tok = issue(NOW - 100, NOW + 1, "");
    struct token_claims out;
    assert_accepted(tok, &out);
    free(tok);
}

static void test_token_expiry_uses_given_now(void **state)
{
    (void)state;
    char *tok = issue(NOW, NOW + 60, "");
    struct token_claims out;
    const char *reason = NULL;
    assert_int_equal(auth_token_verify(SECRET, SECRET_LEN, tok, NOW + 59, &out, &reason), 0);
    assert_int_equal(auth_token_verify(SECRET, SECRET_LEN, tok, NOW + 60, &out, &reason), -EACCES);
    assert_string_equal(reason, "token expired");
    free(tok);
}

static void test_expired_token_with_wrong_secret_is_invalid_not_expired(void **state)
{
    (void)state;
    /* Only a genuine token may learn that it expired. */
    struct token_claims c = sample_claims(NOW - 100, NOW - 50, "");
    char *tok = auth_token_issue(OTHER_SECRET, SECRET_LEN, &c);
    assert_non_null(tok);
    assert_rejected(tok, "invalid token");
    free(tok);
}

/* ---- tokens: signature and algorithm ---- */

static void test_token_wrong_secret_rejected(void **state)
{
    (void)state;
    struct token_claims c = sample_claims(NOW, NOW + 60, "");
    char *tok = auth_token_issue(OTHER_SECRET, SECRET_LEN, &c);
    assert_non_null(tok);
    assert_rejected(tok, "invalid token");
    free(tok);
    /* a prefix of the right secret is a different secret */
    tok = auth_token_issue(SECRET, SECRET_LEN - 1, &c);
    assert_non_null(tok);
    assert_rejected(tok, "invalid token");
    free(tok);
}

static void test_token_alg_none_rejected(void **state)
{
    (void)state;
    char payload[256];
    snprintf(payload, sizeof payload,
             "{\"sub\":\"0123456789abcdef0123456789abcdef\",\"username\":\"alice\",\"iat\":%ld,\"exp\":%ld}",
             NOW, NOW + 3600);
    /* header.payload. (empty signature) */
    char *tok = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL, 0);
    assert_int_equal(tok[strlen(tok) - 1], '.');
    assert_rejected(tok, "invalid token");
    free(tok);
    /* header.payload (no third part at all) */
    char *h = b64url_str("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *p = b64url_str(payload);
    char two[1024];
    snprintf(two, sizeof two, "%s.%s", h, p);
    assert_rejected(two, "invalid token");
    free(h);
    free(p);
    /* with a valid HS256 signature of these very bytes appended */
    tok = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, SECRET, SECRET_LEN);
    assert_rejected(tok, "invalid token");
    free(tok);
    /* spelling variants */
    const char *headers[] = { "{\"alg\":\"None\",\"typ\":\"JWT\"}", "{\"alg\":\"NONE\",\"typ\":\"JWT\"}",
                              "{\"alg\":\"nOnE\"}", "{\"alg\":\"\"}", "{\"typ\":\"JWT\"}", "{\"alg\":null}",
                              "{\"alg\":256}", "{\"alg\":[\"HS256\"]}", "{\"alg\":\"hs256\"}",
                              "{\"alg\":\"HS256 \"}" };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        tok = forge(headers[i], payload, NULL, 0);
        assert_rejected(tok, "invalid token");
        free(tok);
        tok = forge(headers[i], payload, SECRET, SECRET_LEN);
        assert_rejected(tok, "invalid token");
        free(tok);
    }
}

static void test_token_alg_none_with_signature_of_real_token_rejected(void **state)
{
    (void)state;
    /* Take a genuine token and swap its header for alg none, keeping payload and signature. */
    char *real = issue(NOW, NOW + 3600, "");
    char *h, *p, *s;
    split(real, &h, &p, &s);
    char *none = b64url_str("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *tok = join3(none, p, s);
    assert_rejected(tok, "invalid token");
    free(tok);
    free(none);
    free(h);
    free(p);
    free(s);
    free(real);
}

static void test_token_other_hmac_algorithms_rejected(void **state)
{
    (void)state;
    char claims[256];
    snprintf(claims, sizeof claims,
             "{\"sub\":\"0123456789abcdef0123456789abcdef\",\"username\":\"alice\",\"iat\":%ld,\"exp\":%ld}",
             NOW, NOW + 3600);
    /* Sanity: the same claims with HS256 through libjwt are accepted. */
    char *tok = libjwt_token(JWT_ALG_HS256, SECRET, SECRET_LEN, claims);
    struct token_claims out;
    assert_accepted(tok, &out);
    free(tok);
    tok = libjwt_token(JWT_ALG_HS384, SECRET, SECRET_LEN, claims);
    assert_rejected(tok, "invalid token");
    free(tok);
    tok = libjwt_token(JWT_ALG_HS512, SECRET, SECRET_LEN, claims);
    assert_rejected(tok, "invalid token");
    free(tok);
}

static void test_token_header_saying_hs256_over_hs512_signature_rejected(void **state)
{
    (void)state;
    /* An HS512 token whose header was rewritten to HS256: the signature no longer matches. */
    char claims[256];
    snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"iat\":%ld,\"exp\":%ld}", NOW, NOW + 3600);
    char *t512 = libjwt_token(JWT_ALG_HS512, SECRET, SECRET_LEN, claims);
    char *h, *p, *s;
    split(t512, &h, &p, &s);
    char *h256 = b64url_str("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    char *tok = join3(h256, p, s);
    assert_rejected(tok, "invalid token");
    free(tok);
    free(h256);
    free(h);
    free(p);
    free(s);
    free(t512);
}

static void test_token_tampered_payload_rejected(void **state)
{
    (void)state;
    char *real = issue(NOW, NOW + 60, "");
    char *h, *p, *s;
    split(real, &h, &p, &s);
    /* same header and signature, a payload with another user and a far expiry */
    char evil[256];
    snprintf(evil, sizeof evil,
             "{\"sub\":\"ffffffffffffffffffffffffffffffff\",\"username\":\"admin\",\"iat\":%ld,\"exp\":%ld}",
             NOW, NOW + 999999);
    char *ep = b64url_str(evil);
    char *tok = join3(h, ep, s);
    assert_rejected(tok, "invalid token");
    free(tok);
    free(ep);
    /* and a payload that only gains a scope */
    char scoped[256];
    snprintf(scoped, sizeof scoped,
             "{\"sub\":\"0123456789abcdef0123456789abcdef\",\"username\":\"alice\",\"iat\":%ld,\"exp\":%ld,"
             "\"scope\":\"sse\"}",
             NOW, NOW + 60);
    ep = b64url_str(scoped);
    tok = join3(h, ep, s);
    assert_rejected(tok, "invalid token");
    free(tok);
    free(ep);
    free(h);
    free(p);
    free(s);
    free(real);
}

static void test_token_tampered_signature_rejected(void **state)
{
    (void)state;
    char *real = issue(NOW, NOW + 60, "");
    size_t n = strlen(real);
    char *tok = strdup(real);
    assert_non_null(tok);
    /* flip a character in the middle of the signature */
    char *sig = strrchr(tok, '.') + 1;
    size_t mid = strlen(sig) / 2;
    sig[mid] = sig[mid] == 'A' ? 'B' : 'A';
    assert_rejected(tok, "invalid token");
    /* truncated signature */
    strcpy(tok, real);
    tok[n - 1] = '\0';
    assert_rejected(tok, "invalid token");
    /* no signature */
    strcpy(tok, real);
    strrchr(tok, '.')[1] = '\0';
    assert_rejected(tok, "invalid token");
    free(tok);
    /* an extra part or trailing bytes */
    size_t cap = n + 16;
    tok = malloc(cap);
    assert_non_null(tok);
    snprintf(tok, cap, "%s.AAAA", real);
    assert_rejected(tok, "invalid token");
    snprintf(tok, cap, "%sAA", real);
    assert_rejected(tok, "invalid token");
    snprintf(tok, cap, " %s", real);
    assert_rejected(tok, "invalid token");
    snprintf(tok, cap, "%s ", real);
    assert_rejected(tok, "invalid token");
    free(tok);
    free(real);
}

/* ---- tokens: malformed input ---- */

static void test_token_garbage_rejected(void **state)
{
    (void)state;
    const char *garbage[] = { "", ".", "..", "...", "a.b.c", "a.b", "abc", "Bearer x.y.z", "%%%.%%%.%%%",
                              "eyJhbGciOiJIUzI1NiJ9..", "eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9.e30.",
                              /* {"alg":"HS256"} then a payload that is not JSON */
                              "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA" };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        assert_rejected(garbage[i], "invalid token");
    assert_rejected(NULL, "invalid token");
}

static void test_token_huge_input_rejected(void **state)
{
    (void)state;
    size_t n = 10 * 1024;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'a', n);
    s[n] = '\0';
    assert_rejected(s, "invalid token");
    /* 10 KB of header part before a dot */
    s[n - 10] = '.';
    s[n - 5] = '.';
    assert_rejected(s, "invalid token");
    free(s);
}

static void test_token_header_not_json_object_rejected(void **state)
{
    (void)state;
    char payload[128];
    snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"exp\":%ld}", NOW + 60);
    const char *headers[] = { "not json", "[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"", "" };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *tok = forge(headers[i], payload, SECRET, SECRET_LEN);
        assert_rejected(tok, "invalid token");
        free(tok);
    }
}

static void test_token_oversized_but_validly_signed_rejected(void **state)
{
    (void)state;
    /* A genuine signature does not make an 8 KiB+ token acceptable. */
    size_t pad = 9000;
    char *claims = malloc(pad + 256);
    assert_non_null(claims);
    int n = snprintf(claims, 256, "{\"sub\":\"u\",\"iat\":%ld,\"exp\":%ld,\"pad\":\"", NOW, NOW + 60);
    memset(claims + n, 'p', pad);
    strcpy(claims + n + pad, "\"}");
    char *tok = libjwt_token(JWT_ALG_HS256, SECRET, SECRET_LEN, claims);
    assert_true(strlen(tok) > 8192);
    assert_rejected(tok, "invalid token");
    free(tok);
    free(claims);
}

/* ---- tokens: claim shapes (validly signed, wrong content) ---- */

static void assert_claims_rejected_because(const char *want_reason, const char *claims_fmt, long a, long b)
{
    char claims[512];
    snprintf(claims, sizeof claims, claims_fmt, a, b);
    char *tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, SECRET, SECRET_LEN);
    struct token_claims out;
    const char *reason = NULL;
    int rc = auth_token_verify(SECRET, SECRET_LEN, tok, NOW, &out, &reason);
    free(tok); /* before asserting, so a failure does not also report a leak */
    if (rc != -EACCES)
        print_error("claims accepted: %s\n", claims);
    assert_int_equal(rc, -EACCES);
    assert_non_null(reason);
    assert_true(strlen(reason) > 0);
    if (want_reason) {
        if (strcmp(reason, want_reason) != 0)
            print_error("claims %s\n", claims);
        assert_string_equal(reason, want_reason);
    }
}

static void assert_claims_rejected(const char *claims_fmt, long a, long b)
{
    assert_claims_rejected_because("invalid token", claims_fmt, a, b);
}

static void test_token_missing_sub_rejected(void **state)
{
    (void)state;
    assert_claims_rejected("{\"username\":\"alice\",\"iat\":%ld,\"exp\":%ld}", NOW, NOW + 60);
}

static void test_token_sub_of_wrong_type_rejected(void **state)
{
    (void)state;
    assert_claims_rejected("{\"sub\":42,\"iat\":%ld,\"exp\":%ld}", NOW, NOW + 60);
    assert_claims_rejected("{\"sub\":null,\"iat\":%ld,\"exp\":%ld}", NOW, NOW + 60);
    assert_claims_rejected("{\"sub\":[\"u\"],\"iat\":%ld,\"exp\":%ld}", NOW, NOW + 60);
}

static void test_token_sub_too_long_rejected(void **state)
{
    (void)state;
    /* 40 characters do not fit AUTH_ID_MAX with the NUL; 39 do */
    assert_claims_rejected("{\"sub\":\"0123456789012345678901234567890123456789\",\"iat\":%ld,\"exp\":%ld}",
                           NOW, NOW + 60);
    char claims[256];
    snprintf(claims, sizeof claims,
             "{\"sub\":\"012345678901234567890123456789012345678\",\"iat\":%ld,\"exp\":%ld}", NOW, NOW + 60);
    char *tok = forge("{\"alg\":\"HS256\"}", claims, SECRET, SECRET_LEN);
    struct token_claims out;
    assert_accepted(tok, &out);
    assert_int_equal(strlen(out.sub), 39);
    free(tok);
}

static void test_token_missing_exp_rejected(void **state)
{
    (void)state;
    assert_claims_rejected("{\"sub\":\"u\",\"iat\":%ld,\"x\":%ld}", NOW, NOW);
}

static const char *const EXP_WRONG_TYPE[] = {
    /* the string holds a far-future time: only the type is wrong */
    "{\"sub\":\"u\",\"iat\":%ld,\"exp\":\"%ld\"}",
    "{\"sub\":\"u\",\"iat\":%ld,\"exp\":%ld.5}",
    "{\"sub\":\"u\",\"iat\":%ld,\"exp\":null,\"x\":%ld}",
    "{\"sub\":\"u\",\"iat\":%ld,\"exp\":true,\"x\":%ld}",
    "{\"sub\":\"u\",\"iat\":%ld,\"exp\":[%ld]}",
    "{\"sub\":\"u\",\"iat\":%ld,\"exp\":{\"t\":%ld}}",
};

static void test_token_exp_of_wrong_type_rejected(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof EXP_WRONG_TYPE / sizeof EXP_WRONG_TYPE[0]; i++)
        assert_claims_rejected_because(NULL, EXP_WRONG_TYPE[i], NOW, NOW + 999999);
}

/* A malformed exp is an invalid token, not an expired one: "token expired" tells a client to log
 * in again, which cannot help a token the server could never have issued. */
static void test_token_exp_of_wrong_type_reason_is_invalid_token(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof EXP_WRONG_TYPE / sizeof EXP_WRONG_TYPE[0]; i++)
        assert_claims_rejected_because("invalid token", EXP_WRONG_TYPE[i], NOW, NOW + 999999);
}

static void test_token_username_or_scope_too_long_rejected(void **state)
{
    (void)state;
    char claims[1024];
    char name[200];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"username\":\"%s\",\"iat\":%ld,\"exp\":%ld}", name, NOW,
             NOW + 60);
    char *tok = forge("{\"alg\":\"HS256\"}", claims, SECRET, SECRET_LEN);
    assert_rejected(tok, "invalid token");
    free(tok);
    snprintf(claims, sizeof claims,
             "{\"sub\":\"u\",\"scope\":\"sse-but-much-longer-than-sixteen\",\"iat\":%ld,\"exp\":%ld}", NOW,
             NOW + 60);
    tok = forge("{\"alg\":\"HS256\"}", claims, SECRET, SECRET_LEN);
    assert_rejected(tok, "invalid token");
    free(tok);
}

static void test_token_optional_claims_default(void **state)
{
    (void)state;
    /* username, iat and scope are optional: they come back empty / zero */
    char claims[128];
    snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"exp\":%ld}", NOW + 60);
    char *tok = forge("{\"alg\":\"HS256\"}", claims, SECRET, SECRET_LEN);
    struct token_claims out;
    memset(&out, 'Z', sizeof out);
    assert_accepted(tok, &out);
    assert_string_equal(out.sub, "u");
    assert_string_equal(out.username, "");
    assert_string_equal(out.scope, "");
    assert_int_equal(out.iat, 0);
    assert_int_equal(out.exp, NOW + 60);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_hash_round_trip),
        cmocka_unit_test(test_password_hash_is_salted),
        cmocka_unit_test(test_password_uses_length_not_terminator),
        cmocka_unit_test(test_password_verify_null_hash_is_denied),
        cmocka_unit_test(test_password_verify_garbage_hash_is_denied),
        cmocka_unit_test(test_password_verify_rejects_altered_hash),
        cmocka_unit_test(test_user_id_is_32_lowercase_hex),
        cmocka_unit_test(test_user_ids_differ),
        cmocka_unit_test(test_token_round_trip_login),
        cmocka_unit_test(test_token_round_trip_sse_ticket),
        cmocka_unit_test(test_token_round_trip_unicode_username),
        cmocka_unit_test(test_token_is_hs256_jwt_with_expected_claims),
        cmocka_unit_test(test_forged_hs256_token_is_accepted),
        cmocka_unit_test(test_token_expired_at_exp),
        cmocka_unit_test(test_token_expiry_uses_given_now),
        cmocka_unit_test(test_expired_token_with_wrong_secret_is_invalid_not_expired),
        cmocka_unit_test(test_token_wrong_secret_rejected),
        cmocka_unit_test(test_token_alg_none_rejected),
        cmocka_unit_test(test_token_alg_none_with_signature_of_real_token_rejected),
        cmocka_unit_test(test_token_other_hmac_algorithms_rejected),
        cmocka_unit_test(test_token_header_saying_hs256_over_hs512_signature_rejected),
        cmocka_unit_test(test_token_tampered_payload_rejected),
        cmocka_unit_test(test_token_tampered_signature_rejected),
        cmocka_unit_test(test_token_garbage_rejected),
        cmocka_unit_test(test_token_huge_input_rejected),
        cmocka_unit_test(test_token_header_not_json_object_rejected),
        cmocka_unit_test(test_token_oversized_but_validly_signed_rejected),
        cmocka_unit_test(test_token_missing_sub_rejected),
        cmocka_unit_test(test_token_sub_of_wrong_type_rejected),
        cmocka_unit_test(test_token_sub_too_long_rejected),
        cmocka_unit_test(test_token_missing_exp_rejected),
        cmocka_unit_test(test_token_exp_of_wrong_type_rejected),
        cmocka_unit_test(test_token_exp_of_wrong_type_reason_is_invalid_token),
        cmocka_unit_test(test_token_username_or_scope_too_long_rejected),
        cmocka_unit_test(test_token_optional_claims_default),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
