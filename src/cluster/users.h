/* cluster/users: the users of a cluster (SPEC §4) as records in the engine's KV bucket, one per
 * username: {"id", "hash", "created_at"}. Creation is create-if-absent, which is what makes a
 * username unique across every node. Blocking (bounded by the engine's timeout): worker threads
 * only. */
#ifndef BROKER_CLUSTER_USERS_H
#define BROKER_CLUSTER_USERS_H

#include <stddef.h>

struct js_engine;

/* 0, -EEXIST (the name is taken), -EAGAIN (the bucket cannot take writes now), -ENOMEM, -EIO. */
int cluster_user_create(struct js_engine *e, const char *id, const char *username, size_t len,
                        const char *password_hash);
/* Copies the user's id and password hash (NUL-terminated) into id and hash. 0, -ENOENT, -EAGAIN,
 * -EIO (a record that does not parse or does not fit). */
int cluster_user_find(struct js_engine *e, const char *username, size_t len, char *id, size_t id_cap,
                      char *hash, size_t hash_cap);

#endif
