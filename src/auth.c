/* auth: Argon2id password hashes and HS256 JWTs. The JWT algorithm is pinned twice: the header must
 * say HS256 before libjwt sees the token (libjwt skips verification for "none"), and libjwt must
 * agree after decoding. libjwt compares signatures in constant time (Debian's CVE-2024-25189 fix). */
#include "auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/rules.h"

static char dummy_hash[AUTH_HASH_MAX];

int auth_init(void)
{
    if (sodium_init() < 0)
        return -1;
    /* The dummy hash uses the real cost parameters so that verifying an unknown user takes as
     * long as verifying a known one. */
    char pw[32];
    randombytes_buf(pw, sizeof pw);
    int rc = auth_password_hash(pw, sizeof pw, dummy_hash);
    sodium_memzero(pw, sizeof pw);
    return rc == 0 ? 0 : -1;
}

int auth_password_hash(const char *password, size_t len, char out[AUTH_HASH_MAX])
{
    if (crypto_pwhash_str_alg(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -ENOMEM;
    return 0;
}

int auth_password_verify(const char *hash, const char *password, size_t len)
{
    if (!hash) {
        /* The result is irrelevant: only the time spent matters. */
        if (crypto_pwhash_str_verify(dummy_hash, password, len) == 0)
            return -EACCES;
        return -EACCES;
    }
    return crypto_pwhash_str_verify(hash, password, len) == 0 ? 0 : -EACCES;
}

void auth_new_user_id(char out[AUTH_ID_MAX])
{
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, AUTH_ID_MAX, raw, sizeof raw);
}

/* {"roles": [...]} from a comma-separated list, for jwt_add_grants_json. */
static char *roles_grant(const char *roles)
{
    json_t *list = json_array();
    for (const char *p = roles; list && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (json_array_append_new(list, json_stringn(p, len)) != 0) {
            json_decref(list);
            list = NULL;
        }
        p += len + (comma ? 1 : 0);
    }
    json_t *obj = list ? json_pack("{s:o}", "roles", list) : NULL;
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return text;
}

char *auth_token_issue(const unsigned char *secret, size_t secret_len, const struct token_claims *c)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    char *roles = roles_grant(c->roles);
    if (!roles || secret_len > INT32_MAX || jwt_new(&jwt) != 0) {
        free(roles);
        return NULL;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len) == 0 &&
        jwt_add_grant(jwt, "sub", c->sub) == 0 && jwt_add_grant(jwt, "username", c->username) == 0 &&
        jwt_add_grant_int(jwt, "iat", c->iat) == 0 && jwt_add_grant_int(jwt, "exp", c->exp) == 0 &&
        jwt_add_grant_int(jwt, "ver", c->ver) == 0 && jwt_add_grants_json(jwt, roles) == 0 &&
        (c->scope[0] == '\0' || jwt_add_grant(jwt, "scope", c->scope) == 0))
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    free(roles);
    return token;
}

/* Decodes the base64url JOSE header and checks that alg is exactly HS256. */
static int header_is_hs256(const char *token)
{
    const char *dot = strchr(token, '.');
    if (!dot || dot == token)
        return 0;
    size_t b64len = (size_t)(dot - token);
    if (b64len > 1024)
        return 0;
    unsigned char raw[800];
    size_t rawlen = 0;
    if (sodium_base642bin(raw, sizeof raw - 1, token, b64len, NULL, &rawlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return 0;
    json_t *hdr = json_loadb((const char *)raw, rawlen, 0, NULL);
    if (!hdr)
        return 0;
    json_t *alg = json_object_get(hdr, "alg");
    int ok = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0;
    json_decref(hdr);
    return ok;
}

/* Copies a string claim; absent is fine unless required, any other type is not. */
static int string_claim(json_t *claims, const char *name, char *dst, size_t cap, int required)
{
    json_t *v = json_object_get(claims, name);
    dst[0] = '\0';
    if (!v)
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* The roles claim: absent, or an array of at most 32 role names ([A-Za-z0-9_.-]{1,64}, so never a
 * comma), joined with commas into dst. */
static int roles_claim(json_t *claims, char *dst)
{
    json_t *list = json_object_get(claims, "roles");
    dst[0] = '\0';
    if (!list)
        return 0;
    if (!json_is_array(list) || json_array_size(list) > 32)
        return -1;
    size_t at = 0, i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *name = json_string_value(v);
        size_t len = json_is_string(v) ? json_string_length(v) : 0;
        if (!name || !rules_role_name_valid(name, len) || strlen(name) != len)
            return -1;
        if (at > 0)
            dst[at++] = ',';
        memcpy(dst + at, name, len);
        at += len;
    }
    dst[at] = '\0';
    return 0;
}

/* libjwt's jwt_get_grant_int answers 0 for a claim of the wrong type, so types are checked here. */
static int read_claims(jwt_t *jwt, struct token_claims *out)
{
    char *text = jwt_get_grants_json(jwt, NULL);
    if (!text)
        return -1;
    json_t *claims = json_loads(text, 0, NULL);
    free(text);
    if (!claims)
        return -1;
    json_t *exp = json_object_get(claims, "exp");
    json_t *iat = json_object_get(claims, "iat");
    json_t *ver = json_object_get(claims, "ver");
    int rc = -1;
    if (json_is_object(claims) && json_is_integer(exp) && (!iat || json_is_integer(iat)) &&
        (!ver || (json_is_integer(ver) && json_integer_value(ver) >= 0)) &&
        roles_claim(claims, out->roles) == 0 &&
        string_claim(claims, "sub", out->sub, sizeof out->sub, 1) == 0 &&
        string_claim(claims, "username", out->username, sizeof out->username, 0) == 0 &&
        string_claim(claims, "scope", out->scope, sizeof out->scope, 0) == 0) {
        out->exp = (long)json_integer_value(exp);
        out->iat = iat ? (long)json_integer_value(iat) : 0;
        out->ver = ver ? (long)json_integer_value(ver) : 0;
        rc = 0;
    }
    json_decref(claims);
    return rc;
}

int auth_token_verify(const unsigned char *secret, size_t secret_len, const char *token, long now,
                      struct token_claims *out, const char **reason)
{
    *reason = "invalid token";
    if (!token || !*token || strlen(token) > 8192 || secret_len > INT32_MAX)
        return -EACCES;
    if (!header_is_hs256(token))
        return -EACCES;
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, secret, (int)secret_len) != 0 || !jwt) {
        jwt_free(jwt);
        return -EACCES;
    }
    int rc = -EACCES;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out;
    if (read_claims(jwt, out) != 0)
        goto out;
    if (out->exp <= now) {
        *reason = "token expired";
        goto out;
    }
    rc = 0;
out:
    jwt_free(jwt);
    return rc;
}
