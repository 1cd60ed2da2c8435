/* access/user: the record of one user as every store keeps it (SQLite on one node, the KV bucket in
 * a cluster), and the changes the API makes to it (SPEC §5). user_apply is pure: the store that
 * owns the record runs it where it serialises writes (the writer thread, or a compare-and-set
 * loop on the bucket), so two changes of one user can never interleave.
 *
 * The token version (ver) is what makes revocation exact: every login token and ticket carries
 * the version its user had when it was issued, and a change that must end old sessions (revoke,
 * un-revoke, password, roles) increments it. */
#ifndef BROKER_ACCESS_USER_H
#define BROKER_ACCESS_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/totp.h"
#include "auth.h"
#include "validate.h"

#define USER_ROLES_MAX 32   /* roles per user (SPEC §5) */
#define ROLE_NAME_MAX 64    /* bytes of one role name */
/* Roles are kept as one comma-separated list ("admin,editor"; "" = none): a role name cannot
 * hold a comma ([A-Za-z0-9_.-]), so the list needs no escaping. */
#define USER_ROLES_TEXT_MAX AUTH_ROLES_TEXT_MAX

struct user_record {
    char id[AUTH_ID_MAX];
    char username[USERNAME_MAX + 1];
    size_t username_len;
    char hash[AUTH_HASH_MAX];          /* Argon2id */
    char roles[USER_ROLES_TEXT_MAX];   /* comma-separated, "" = none */
    int64_t created_at;                /* unix seconds */
    int64_t ver;                       /* token version */
    bool revoked;
    char totp_secret[TOTP_SECRET_B32_MAX];  /* base32; "" = TOTP is off */
    char totp_pending[TOTP_SECRET_B32_MAX]; /* an enrolment awaiting its first code; "" = none */
    int64_t totp_last_step;                 /* the step of the last code accepted (replays) */
};

enum user_totp_op {
    USER_TOTP_KEEP = 0,
    USER_TOTP_ENROL,   /* totp_secret_new becomes the pending secret */
    USER_TOTP_CONFIRM, /* the code must match the pending secret; then TOTP is on */
    USER_TOTP_DISABLE, /* the code must match the active secret; then TOTP is off */
    USER_TOTP_USE,     /* a login: the code must match the active secret (replays refused) */
};

/* One change to apply to a user record. NULL / -1 / KEEP fields leave the record as it is. */
struct user_change {
    const char *hash;        /* a new password hash */
    const char *roles;       /* a new canonical role list (roles_canonical) */
    int revoked;             /* 0 or 1, -1 = unchanged */
    enum user_totp_op totp;
    const char *totp_secret_new; /* USER_TOTP_ENROL */
    const char *totp_code;       /* CONFIRM, DISABLE, USE */
    size_t totp_code_len;
    int64_t now;                 /* unix seconds, for the TOTP step */
};

/* Applies c to u. 0 (and *ver_changed whether old tokens were invalidated), -EACCES for a TOTP
 * code that is wrong or replayed, -ENODATA when CONFIRM has no pending secret or DISABLE / USE
 * find TOTP off, -EALREADY when ENROL finds TOTP on, -EINVAL for a stored secret that does not
 * decode. u is left unchanged on error. */
int user_apply(struct user_record *u, const struct user_change *c, bool *ver_changed);

/* The canonical list of n role names (lens[i] bytes each): sorted, duplicates dropped,
 * comma-separated, into out (USER_ROLES_TEXT_MAX bytes), so that equal sets compare equal. 0, or
 * -EINVAL with *reason (for a 400) when a name is invalid or there are more than USER_ROLES_MAX. */
int roles_canonical(const char *const *names, const size_t *lens, size_t n, char *out,
                    const char **reason);
/* Copies a canonical list into buf (USER_ROLES_TEXT_MAX bytes) with NULs for its commas and points
 * names[i] at each role. Returns the count (0 for ""). */
size_t roles_split(const char *roles, char *buf, const char *names[USER_ROLES_MAX]);

#endif
