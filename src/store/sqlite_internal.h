/* store/sqlite_internal: what the files of the SQLite store share (sqlite.c: events, keys and the
 * connection; sqlite_users.c: users). Nothing outside src/store/ includes it. */
#ifndef BROKER_STORE_SQLITE_INTERNAL_H
#define BROKER_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "store/store.h"

#define SCHEMA_VERSION 3

struct store {
    sqlite3 *db;
    enum store_mode mode;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *insert_event, *apply_event, *upsert_latest, *probe;
    sqlite3_stmt *each_latest, *each_after, *max_id, *ping;
    sqlite3_stmt *find_key, *put_key, *prune_keys;
    /* sqlite_users.c; the two writes are prepared on a writer handle only */
    sqlite3_stmt *insert_user, *update_user, *user_by_name, *user_by_id, *each_user, *each_version;
};

/* An errno-style code for an SQLite result code (0 for OK, DONE and ROW). */
int errno_from_sqlite(int rc);
/* Prepares a persistent statement; -EIO (logged) on failure. */
int prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql);
/* Runs a statement that returns no rows, then resets it and clears its bindings. */
int step_done(struct store *st, sqlite3_stmt *stmt);
/* Copies a text column, NUL-terminated; -EIO when it is NULL or does not fit. */
int copy_column(sqlite3_stmt *s, int col, char *dst, size_t cap);
int64_t now_ms(void);

int sqlite_users_prepare(struct store *st);
void sqlite_users_finalize(struct store *st);

#endif
