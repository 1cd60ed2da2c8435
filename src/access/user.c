/* access/user: applying a change to a user record, and the canonical role list. */
#include "access/user.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "access/rules.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int roles_canonical(const char *const *names, const size_t *lens, size_t n, char *out,
                    const char **reason)
{
    if (n > USER_ROLES_MAX) {
        *reason = "at most 32 roles";
        return -EINVAL;
    }
    const char *sorted[USER_ROLES_MAX];
    for (size_t i = 0; i < n; i++) {
        if (!rules_role_name_valid(names[i], lens[i]) || strlen(names[i]) != lens[i]) {
            *reason = "a role is 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'";
            return -EINVAL;
        }
        sorted[i] = names[i];
    }
    qsort(sorted, n, sizeof sorted[0], by_name);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
            continue;
        size_t len = strlen(sorted[i]);
        if (at > 0)
            out[at++] = ',';
        memcpy(out + at, sorted[i], len);
        at += len;
    }
    out[at] = '\0';
    return 0;
}

size_t roles_split(const char *roles, char *buf, const char *names[USER_ROLES_MAX])
{
    size_t len = strnlen(roles, USER_ROLES_TEXT_MAX - 1), n = 0;
    memcpy(buf, roles, len);
    buf[len] = '\0';
    if (len == 0)
        return 0;
    char *p = buf;
    while (n < USER_ROLES_MAX) {
        names[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

int user_apply(struct user_record *u, const struct user_change *c, bool *ver_changed)
{
    struct user_record next = *u;
    bool bump = false;
    if (c->hash) {
        memcpy(next.hash, c->hash, strlen(c->hash) + 1);
        bump = true;
    }
    if (c->roles && strcmp(c->roles, next.roles) != 0) {
        memcpy(next.roles, c->roles, strlen(c->roles) + 1);
        bump = true;
    }
    if (c->revoked >= 0 && (bool)c->revoked != next.revoked) {
        next.revoked = c->revoked;
        bump = true; /* un-revoking never revives a token issued before the revocation */
    }
    int64_t step = 0;
    int rc = 0;
    switch (c->totp) {
    case USER_TOTP_KEEP:
        break;
    case USER_TOTP_ENROL:
        if (next.totp_secret[0])
            return -EALREADY; /* disable it first, with a current code */
        memcpy(next.totp_pending, c->totp_secret_new, strlen(c->totp_secret_new) + 1);
        break;
    case USER_TOTP_CONFIRM:
        if (!next.totp_pending[0])
            return -ENODATA;
        /* A new secret has no used steps: last_step starts over. */
        rc = totp_verify(next.totp_pending, c->totp_code, c->totp_code_len, c->now, 0, &step);
        if (rc != 0)
            return rc;
        memcpy(next.totp_secret, next.totp_pending, sizeof next.totp_secret);
        next.totp_pending[0] = '\0';
        next.totp_last_step = step; /* the confirming code counts as used */
        break;
    case USER_TOTP_DISABLE:
    case USER_TOTP_USE:
        if (!next.totp_secret[0])
            return -ENODATA;
        rc = totp_verify(next.totp_secret, c->totp_code, c->totp_code_len, c->now, next.totp_last_step,
                         &step);
        if (rc != 0)
            return rc;
        next.totp_last_step = step;
        if (c->totp == USER_TOTP_DISABLE) {
            next.totp_secret[0] = '\0';
            next.totp_pending[0] = '\0';
        }
        break;
    }
    if (bump)
        next.ver++;
    *u = next;
    *ver_changed = bump;
    return 0;
}
