/* cluster/users: the users of a cluster (SPEC §4, §5) as records in the engine's KV bucket, one
 * per username: {"id", "hash", "created_at", "roles", "ver", "revoked", "totp_secret",
 * "totp_pending", "totp_last_step"} (records written before identity and access hold the first
 * three; the others then read as their defaults). Creation is create-if-absent, which is what makes
 * a username unique across every node; a change is a compare-and-set on the record's revision,
 * retried from a fresh read when another node changed it first, so changes never interleave.
 * Blocking (bounded by the engine's timeout): worker threads only. */
#ifndef BROKER_CLUSTER_USERS_H
#define BROKER_CLUSTER_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct js_engine;
struct user_record;
struct user_change;

/* 0, -EEXIST (the name is taken), -EAGAIN (the bucket cannot take writes now), -ENOMEM, -EIO. */
int cluster_user_create(struct js_engine *e, const struct user_record *u);
/* The record of username into *out. 0, -ENOENT, -EAGAIN, -EIO (a record that does not parse or
 * does not fit). */
int cluster_user_find(struct js_engine *e, const char *username, size_t len, struct user_record *out);
/* Applies change to the record of username (user_apply) and stores it; *out is the record as
 * stored. 0, -ENOENT, user_apply's refusals, -EAGAIN, -EIO. */
int cluster_user_update(struct js_engine *e, const char *username, size_t len,
                        const struct user_change *change, struct user_record *out, bool *ver_changed);

/* The record's JSON text (malloc'd) and back; shared with the watch of the bucket. */
char *cluster_user_encode(const struct user_record *u);
int cluster_user_decode(const char *text, size_t len, const char *username, size_t username_len,
                        struct user_record *out);

#endif
