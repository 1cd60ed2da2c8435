/* cluster/users: user records as compact JSON in the KV bucket. */
#include "cluster/users.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "access/user.h"
#include "cluster/jetstream.h"
#include "log.h"

/* Changes of one user racing on several nodes: each lost race costs a read and a write. */
#define UPDATE_ATTEMPTS 16

char *cluster_user_encode(const struct user_record *u)
{
    json_t *rec = json_pack("{s:s, s:s, s:I, s:s, s:I, s:b, s:s, s:s, s:I}", "id", u->id, "hash", u->hash,
                            "created_at", (json_int_t)u->created_at, "roles", u->roles, "ver",
                            (json_int_t)u->ver, "revoked", u->revoked, "totp_secret", u->totp_secret,
                            "totp_pending", u->totp_pending, "totp_last_step",
                            (json_int_t)u->totp_last_step);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return text;
}

/* A string member into dst (cap bytes); absent reads as "" unless required. */
static int copy_member(json_t *rec, const char *name, char *dst, size_t cap, int required)
{
    json_t *m = json_object_get(rec, name);
    if (!m && !required) {
        dst[0] = '\0';
        return 0;
    }
    const char *v = json_string_value(m);
    if (!v || strlen(v) >= cap)
        return -EIO;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int64_t int_member(json_t *rec, const char *name)
{
    return (int64_t)json_integer_value(json_object_get(rec, name));
}

int cluster_user_decode(const char *text, size_t len, const char *username, size_t username_len,
                        struct user_record *out)
{
    memset(out, 0, sizeof *out);
    if (username_len > USERNAME_MAX)
        return -EIO;
    json_t *rec = json_loadb(text, len, 0, NULL);
    int rc = rec && copy_member(rec, "id", out->id, sizeof out->id, 1) == 0 &&
                     copy_member(rec, "hash", out->hash, sizeof out->hash, 1) == 0 &&
                     copy_member(rec, "roles", out->roles, sizeof out->roles, 0) == 0 &&
                     copy_member(rec, "totp_secret", out->totp_secret, sizeof out->totp_secret, 0) == 0 &&
                     copy_member(rec, "totp_pending", out->totp_pending, sizeof out->totp_pending, 0) == 0
                 ? 0
                 : -EIO;
    if (rc == 0) {
        memcpy(out->username, username, username_len);
        out->username[username_len] = '\0';
        out->username_len = username_len;
        out->created_at = int_member(rec, "created_at");
        out->ver = int_member(rec, "ver");
        out->revoked = json_is_true(json_object_get(rec, "revoked"));
        out->totp_last_step = int_member(rec, "totp_last_step");
    }
    json_decref(rec);
    if (rc != 0)
        log_error("cluster: the record of a user in the users bucket does not parse");
    return rc;
}

int cluster_user_create(struct js_engine *e, const struct user_record *u)
{
    char *text = cluster_user_encode(u);
    if (!text)
        return -ENOMEM;
    int rc = js_user_create(e, u->username, u->username_len, text, strlen(text));
    sodium_memzero(text, strlen(text));
    free(text);
    return rc;
}

/* The record of username and its revision. */
static int read_record(struct js_engine *e, const char *username, size_t len, struct user_record *out,
                       uint64_t *revision)
{
    char *text = NULL;
    size_t text_len = 0;
    if (len > USERNAME_MAX)
        return -ENOENT;
    int rc = js_user_get(e, username, len, &text, &text_len, revision);
    if (rc != 0)
        return rc;
    rc = cluster_user_decode(text, text_len, username, len, out);
    sodium_memzero(text, text_len);
    free(text);
    return rc;
}

int cluster_user_find(struct js_engine *e, const char *username, size_t len, struct user_record *out)
{
    return read_record(e, username, len, out, NULL);
}

int cluster_user_update(struct js_engine *e, const char *username, size_t len,
                        const struct user_change *change, struct user_record *out, bool *ver_changed)
{
    for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
        uint64_t revision = 0;
        struct user_record u;
        int rc = read_record(e, username, len, &u, &revision);
        if (rc == 0)
            rc = user_apply(&u, change, ver_changed);
        char *text = rc == 0 ? cluster_user_encode(&u) : NULL;
        if (rc == 0 && !text)
            rc = -ENOMEM;
        if (rc == 0) {
            rc = js_user_update(e, username, len, text, strlen(text), revision);
            sodium_memzero(text, strlen(text));
        }
        free(text);
        if (rc == 0)
            *out = u;
        sodium_memzero(&u, sizeof u);
        if (rc != -ESTALE)
            return rc;
    }
    log_warn("cluster: a user record kept changing under %d attempts to change it", UPDATE_ATTEMPTS);
    return -EAGAIN;
}
