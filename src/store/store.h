/* store: the durable, insert-only log of events and the users table, behind one interface so the
 * rest of the program never knows which engine holds the data. A store handle is one connection
 * and belongs to one thread. Only the writer thread opens a STORE_WRITER handle; readers (workers,
 * start-up) open STORE_READER handles and never write.
 *
 * Every function returns 0 or a negative errno-style code: -ENOENT (no such row), -EEXIST
 * (unique key taken), -ENOSPC (disk full), -EIO (any other storage fault). */
#ifndef BROKER_STORE_H
#define BROKER_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct user_record;

enum store_mode { STORE_WRITER, STORE_READER };

/* Opens (and for a writer, creates or migrates) the database file at path. */
int store_open(const char *path, enum store_mode mode, struct store **out);
void store_close(struct store *st);

/* Writer only: a transaction around a group of appends, committed durably (fsync) by
 * store_commit. After a failed store_commit the transaction is rolled back. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* Appends one event inside the open transaction and returns its id in *id. The latest-event
 * table is not touched: store_set_latest, once per name per transaction. */
int store_append_event(struct store *st, const char *event, size_t event_len, const char *data,
                       size_t data_len, const char *user_id, int64_t *id);
/* Cluster mode's applier: appends an event under the id the stream gave it (ids ascend, and may
 * skip). -EEXIST when the id is taken. */
int store_apply_event(struct store *st, int64_t id, const char *event, size_t event_len,
                      const char *data, size_t data_len, const char *user_id);
/* Records id as the latest event of its name, inside the open transaction. */
int store_set_latest(struct store *st, const char *event, size_t event_len, int64_t id);
/* Writer only, inside the open transaction: adds a user (-EEXIST when the username is taken), or
 * writes every mutable field of an existing one (hash, roles, revoked, ver, TOTP; -ENOENT). */
int store_add_user(struct store *st, const struct user_record *u);
int store_update_user(struct store *st, const struct user_record *u);

/* Writer only, inside the open transaction: idempotency keys (SPEC §4). store_find_key gives the
 * event id recorded under key within the last window_ms (-ENOENT when none); store_put_key records
 * key -> id; store_prune_keys forgets keys older than window_ms. */
int store_find_key(struct store *st, const char *key, size_t key_len, int64_t window_ms, int64_t *id);
int store_put_key(struct store *st, const char *key, size_t key_len, int64_t id);
int store_prune_keys(struct store *st, int64_t window_ms);

/* Looks a user up by exact username, or by id. 0 and *out filled, or -ENOENT. */
int store_user_by_name(struct store *st, const char *username, size_t username_len,
                       struct user_record *out);
int store_user_by_id(struct store *st, const char *id, struct user_record *out);
/* Calls fn for up to limit users with an id above after (NULL = from the first), in id order;
 * stops early (returning fn's value) when fn returns non-zero. *rows: how many were read. */
typedef int (*store_user_fn)(void *arg, const struct user_record *u);
int store_each_user(struct store *st, const char *after, int limit, store_user_fn fn, void *arg,
                    int *rows);
/* Calls fn(arg, id, ver, revoked) for every user whose tokens are not all current: ver > 0 or
 * revoked (start-up: the token versions the loops check). */
typedef int (*store_version_fn)(void *arg, const char *id, int64_t ver, int revoked);
int store_each_user_version(struct store *st, store_version_fn fn, void *arg);

/* Calls fn for the latest event of every name, in ascending id order; stops early (returning
 * fn's value) when fn returns non-zero. */
typedef int (*store_event_fn)(void *arg, int64_t id, const char *event, size_t event_len,
                              const char *data, size_t data_len);
int store_each_latest(struct store *st, store_event_fn fn, void *arg);

/* Calls fn for up to limit events with id > after_id, in ascending id order; *rows receives how
 * many rows were read (fewer than limit means the end of the log was reached). */
int store_each_after(struct store *st, int64_t after_id, int limit, store_event_fn fn, void *arg,
                     int *rows);

/* The highest event id in the log (0 when empty). */
int store_max_id(struct store *st, int64_t *id);

/* Writer only: a tiny durable write, to learn whether the disk takes writes again. */
int store_probe_write(struct store *st);

/* A cheap round trip to the engine, for health checks. */
int store_ping(struct store *st);

#endif
