/* store/sqlite: the embedded store. SQLite in WAL mode, synchronous=FULL, so a COMMIT returns only
 * after the log is on disk; the writer groups many appends into one transaction, which makes that
 * one fsync per batch instead of one per event. Schema changes go through user_version. */
#include "store/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store/sqlite_internal.h"

int errno_from_sqlite(int rc)
{
    switch (rc & 0xFF) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    default:
        return -EIO;
    }
}

static const char *const schema_v1 =
    "CREATE TABLE IF NOT EXISTS events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  event TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS latest ("
    "  event TEXT PRIMARY KEY,"
    "  id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS users ("
    "  id TEXT PRIMARY KEY,"
    "  username TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY,"
    "  value) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

/* v2: the idempotency keys of recent inserts (SPEC §4 Idempotency-Key), forgotten after a window. */
static const char *const schema_v2 =
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  key TEXT PRIMARY KEY,"
    "  id INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);"
    "PRAGMA user_version = 2;";

/* v3: identity and access (SPEC §5): roles, revocation with a token version, TOTP. */
static const char *const schema_v3 =
    "ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE users ADD COLUMN ver INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN totp_pending TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 3;";

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return errno_from_sqlite(rc) ? errno_from_sqlite(rc) : -EIO;
    }
    return 0;
}

static int migrate(sqlite3 *db)
{
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0)
        return -EIO;
    if (version > SCHEMA_VERSION) {
        log_error("store: database schema version %d is newer than this broker (%d)", version,
                  SCHEMA_VERSION);
        return -EPROTO;
    }
    if (version == SCHEMA_VERSION)
        return 0;
    int rc = exec(db, "BEGIN IMMEDIATE");
    if (rc == 0 && version < 1)
        rc = exec(db, schema_v1);
    if (rc == 0 && version < 2)
        rc = exec(db, schema_v2);
    if (rc == 0 && version < 3)
        rc = exec(db, schema_v3);
    if (rc == 0)
        rc = exec(db, "COMMIT");
    else
        exec(db, "ROLLBACK");
    return rc;
}

int prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        log_error("store: prepare '%s': %s", sql, sqlite3_errmsg(db));
        return -EIO;
    }
    return 0;
}

int store_open(const char *path, enum store_mode mode, struct store **out)
{
    *out = NULL;
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->mode = mode;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (mode == STORE_WRITER ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        log_error("store: cannot open %s: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        store_close(st);
        return -EIO;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 5000);
    int err = 0;
    if (mode == STORE_WRITER) {
        /* WAL lets readers work while the writer commits; FULL syncs the WAL on every commit, which
         * is what makes a 200 from /insert mean "on disk". */
        err = exec(st->db, "PRAGMA journal_mode=WAL");
        if (!err)
            err = exec(st->db, "PRAGMA synchronous=FULL");
        if (!err)
            err = migrate(st->db);
        if (!err)
            err = prepare(st->db, &st->begin, "BEGIN IMMEDIATE");
        if (!err)
            err = prepare(st->db, &st->commit, "COMMIT");
        if (!err)
            err = prepare(st->db, &st->rollback, "ROLLBACK");
        if (!err)
            err = prepare(st->db, &st->insert_event,
                          "INSERT INTO events(event, data, user_id, created_at) VALUES (?, ?, ?, ?)");
        if (!err)
            err = prepare(st->db, &st->apply_event,
                          "INSERT INTO events(id, event, data, user_id, created_at) VALUES (?, ?, ?, ?, ?)");
        if (!err)
            err = prepare(st->db, &st->upsert_latest,
                          "INSERT INTO latest(event, id) VALUES (?, ?) "
                          "ON CONFLICT(event) DO UPDATE SET id = excluded.id");
        if (!err)
            err = prepare(st->db, &st->probe,
                          "INSERT INTO meta(key, value) VALUES ('probe', ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
        if (!err)
            err = prepare(st->db, &st->find_key,
                          "SELECT id FROM idempotency WHERE key = ? AND created_at >= ?");
        if (!err) /* a key seen again after its window names the new event from then on */
            err = prepare(st->db, &st->put_key,
                          "INSERT INTO idempotency(key, id, created_at) VALUES (?, ?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET id = excluded.id, created_at = excluded.created_at");
        if (!err)
            err = prepare(st->db, &st->prune_keys, "DELETE FROM idempotency WHERE created_at < ?");
    }
    if (!err)
        err = sqlite_users_prepare(st);
    if (!err)
        err = prepare(st->db, &st->each_latest,
                      "SELECT e.id, e.event, e.data FROM latest l JOIN events e ON e.id = l.id "
                      "ORDER BY e.id");
    if (!err)
        err = prepare(st->db, &st->each_after,
                      "SELECT id, event, data FROM events WHERE id > ? ORDER BY id LIMIT ?");
    if (!err)
        err = prepare(st->db, &st->max_id, "SELECT coalesce(max(id), 0) FROM events");
    if (!err)
        err = prepare(st->db, &st->ping, "SELECT 1 FROM sqlite_schema LIMIT 1");
    if (err) {
        store_close(st);
        return err;
    }
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    sqlite3_stmt *all[] = { st->begin, st->commit, st->rollback, st->insert_event, st->apply_event,
                            st->upsert_latest, st->probe, st->each_latest,
                            st->each_after, st->max_id, st->ping, st->find_key, st->put_key,
                            st->prune_keys };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite_users_finalize(st);
    if (st->db && sqlite3_close(st->db) != SQLITE_OK)
        log_error("store: close: %s", sqlite3_errmsg(st->db));
    free(st);
}

int step_done(struct store *st, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    int err = rc == SQLITE_DONE ? 0 : errno_from_sqlite(rc);
    if (rc != SQLITE_DONE && err == 0)
        err = -EIO;
    if (err && err != -EEXIST)
        log_error("store: %s: %s", sqlite3_sql(stmt), sqlite3_errmsg(st->db));
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return err;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_begin(struct store *st) { return step_done(st, st->begin); }

int store_commit(struct store *st)
{
    int err = step_done(st, st->commit);
    if (err)
        store_rollback(st);
    return err;
}

void store_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        (void)step_done(st, st->rollback);
}

int store_append_event(struct store *st, const char *event, size_t event_len, const char *data,
                       size_t data_len, const char *user_id, int64_t *id)
{
    sqlite3_stmt *s = st->insert_event;
    if (sqlite3_bind_text(s, 1, event, (int)event_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, data, (int)data_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, user_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 4, now_ms()) != SQLITE_OK) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    int err = step_done(st, s);
    if (err)
        return err == -EEXIST ? -EIO : err;
    *id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

int store_apply_event(struct store *st, int64_t id, const char *event, size_t event_len,
                      const char *data, size_t data_len, const char *user_id)
{
    sqlite3_stmt *s = st->apply_event;
    if (sqlite3_bind_int64(s, 1, id) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, event, (int)event_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, data, (int)data_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 4, user_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 5, now_ms()) != SQLITE_OK) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    return step_done(st, s); /* -EEXIST: the id is taken, the replica disagrees with the stream */
}

int store_set_latest(struct store *st, const char *event, size_t event_len, int64_t id)
{
    sqlite3_stmt *s = st->upsert_latest;
    if (sqlite3_bind_text(s, 1, event, (int)event_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 2, id) != SQLITE_OK) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    int err = step_done(st, s);
    return err == -EEXIST ? -EIO : err;
}

int store_find_key(struct store *st, const char *key, size_t key_len, int64_t window_ms, int64_t *id)
{
    sqlite3_stmt *s = st->find_key;
    int err;
    if (sqlite3_bind_text(s, 1, key, (int)key_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 2, now_ms() - window_ms) != SQLITE_OK) {
        err = -EIO;
    } else {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(s, 0);
            err = 0;
        } else if (rc == SQLITE_DONE) {
            err = -ENOENT;
        } else {
            err = errno_from_sqlite(rc) ? errno_from_sqlite(rc) : -EIO;
            log_error("store: find idempotency key: %s", sqlite3_errmsg(st->db));
        }
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return err;
}

int store_put_key(struct store *st, const char *key, size_t key_len, int64_t id)
{
    sqlite3_stmt *s = st->put_key;
    if (sqlite3_bind_text(s, 1, key, (int)key_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 2, id) != SQLITE_OK || sqlite3_bind_int64(s, 3, now_ms()) != SQLITE_OK) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    int err = step_done(st, s);
    return err == -EEXIST ? -EIO : err;
}

int store_prune_keys(struct store *st, int64_t window_ms)
{
    sqlite3_stmt *s = st->prune_keys;
    if (sqlite3_bind_int64(s, 1, now_ms() - window_ms) != SQLITE_OK) {
        sqlite3_reset(s);
        return -EIO;
    }
    return step_done(st, s);
}

int copy_column(sqlite3_stmt *s, int col, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (!v || n >= cap)
        return -EIO;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

/* Steps a statement whose rows are (id, event, data), calling fn for each; resets it. */
static int each_event_row(struct store *st, sqlite3_stmt *s, store_event_fn fn, void *arg, int *rows)
{
    int rc, ret = 0, n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        n++;
        ret = fn(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
                 (size_t)sqlite3_column_bytes(s, 1), (const char *)sqlite3_column_text(s, 2),
                 (size_t)sqlite3_column_bytes(s, 2));
        if (ret)
            break;
    }
    if (!ret && rc != SQLITE_DONE) {
        log_error("store: %s: %s", sqlite3_sql(s), sqlite3_errmsg(st->db));
        ret = -EIO;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rows)
        *rows = n;
    return ret;
}

int store_each_latest(struct store *st, store_event_fn fn, void *arg)
{
    return each_event_row(st, st->each_latest, fn, arg, NULL);
}

int store_each_after(struct store *st, int64_t after_id, int limit, store_event_fn fn, void *arg,
                     int *rows)
{
    *rows = 0;
    if (sqlite3_bind_int64(st->each_after, 1, after_id) != SQLITE_OK ||
        sqlite3_bind_int(st->each_after, 2, limit) != SQLITE_OK) {
        sqlite3_reset(st->each_after);
        return -EIO;
    }
    return each_event_row(st, st->each_after, fn, arg, rows);
}

int store_max_id(struct store *st, int64_t *id)
{
    int rc = sqlite3_step(st->max_id);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st->max_id, 0);
    sqlite3_reset(st->max_id);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

int store_probe_write(struct store *st)
{
    int err = store_begin(st);
    if (err)
        return err;
    if (sqlite3_bind_int64(st->probe, 1, now_ms()) != SQLITE_OK) {
        sqlite3_reset(st->probe);
        store_rollback(st);
        return -EIO;
    }
    err = step_done(st, st->probe);
    if (err) {
        store_rollback(st);
        return err;
    }
    return store_commit(st);
}

int store_ping(struct store *st)
{
    int rc = sqlite3_step(st->ping);
    sqlite3_reset(st->ping);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}
