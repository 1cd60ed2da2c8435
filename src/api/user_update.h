/* api/user_update: one change of one user for the identity routes (SPEC §5: admin PATCH, password
 * change, TOTP): a new password hashed on a worker (after checking the old one, for a user
 * changing their own), the change applied by the writer, then, on the loop, the token version
 * recorded and the user's older streams closed (app_user_changed) before the answer, so that
 * when the client sees the answer its old tokens are already refused everywhere on this node. */
#ifndef BROKER_API_USER_UPDATE_H
#define BROKER_API_USER_UPDATE_H

#include <stddef.h>

#include "access/user.h"
#include "workers.h"
#include "writer.h"

struct loop;
struct http_request;

struct user_update {
    struct work work;       /* hashing, when a password is set */
    struct writer_job job;
    struct loop *loop;
    struct http_request *req;
    struct user_record user; /* user.id names the user (and, in a cluster, user.username: the
                              * record's key); after the change, the record as stored */
    struct user_change change;
    char *password;          /* the new password, or NULL */
    size_t password_len;
    char *old_password;      /* checked against the stored hash first, or NULL */
    size_t old_password_len;
    char hash[AUTH_HASH_MAX];
    char roles[USER_ROLES_TEXT_MAX];
    char code[16];
    char totp_secret[TOTP_SECRET_B32_MAX];
    const char *reason;      /* the event:revoked reason when older tokens end */
    /* On the loop, with the writer's result (0, -ENOENT, user_apply's refusals, storage errors,
     * or -EPERM when old_password was wrong); answers u->req. u is freed after it returns. */
    void (*answer)(struct user_update *u, int result);
};

/* A zeroed update for user id (username: its name, needed in cluster mode, NULL when unknown),
 * answered by answer. NULL when out of memory. */
struct user_update *user_update_new(struct loop *l, struct http_request *req, const char *id,
                                    const char *username, void (*answer)(struct user_update *u, int result));
/* Sets the new password (copied); -1 when out of memory. */
int user_update_set_password(struct user_update *u, const char *pw, size_t len, const char *old,
                             size_t old_len);
/* Frees an update that was never submitted (NULL is fine). */
void user_update_discard(struct user_update *u);
/* Runs it; u belongs to the update from here on (answered and freed in every case). */
void user_update_submit(struct user_update *u);
/* The answers every route gives the same way (404, 503, 500); 0 when rc is not one of them. */
int user_update_common_error(struct user_update *u, int rc);

#endif
