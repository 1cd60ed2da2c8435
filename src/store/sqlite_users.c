/* store/sqlite_users: the users table (SPEC §2 /users, §5 identity and access). created_at is kept
 * in milliseconds, as since schema v1, and given out in seconds. */
#include <errno.h>
#include <string.h>

#include "access/user.h"
#include "log.h"
#include "store/sqlite_internal.h"

#define USER_COLUMNS \
    "id, username, password_hash, created_at, roles, revoked, ver, totp_secret, totp_pending, totp_last_step"

int sqlite_users_prepare(struct store *st)
{
    int err = 0;
    if (st->mode == STORE_WRITER) {
        err = prepare(st->db, &st->insert_user,
                      "INSERT INTO users(" USER_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        if (!err)
            err = prepare(st->db, &st->update_user,
                          "UPDATE users SET password_hash = ?3, roles = ?5, revoked = ?6, ver = ?7, "
                          "totp_secret = ?8, totp_pending = ?9, totp_last_step = ?10 WHERE id = ?1");
    }
    if (!err)
        err = prepare(st->db, &st->user_by_name, "SELECT " USER_COLUMNS " FROM users WHERE username = ?");
    if (!err)
        err = prepare(st->db, &st->user_by_id, "SELECT " USER_COLUMNS " FROM users WHERE id = ?");
    if (!err)
        err = prepare(st->db, &st->each_user,
                      "SELECT " USER_COLUMNS " FROM users WHERE id > ? ORDER BY id LIMIT ?");
    if (!err)
        err = prepare(st->db, &st->each_version,
                      "SELECT id, ver, revoked FROM users WHERE ver > 0 OR revoked != 0");
    return err;
}

void sqlite_users_finalize(struct store *st)
{
    sqlite3_stmt *all[] = { st->insert_user, st->update_user, st->user_by_name, st->user_by_id,
                            st->each_user, st->each_version };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
}

/* Binds the ten USER_COLUMNS of u (created_at only matters to an INSERT). */
static int bind_user(sqlite3_stmt *s, const struct user_record *u)
{
    return sqlite3_bind_text(s, 1, u->id, -1, SQLITE_STATIC) != SQLITE_OK ||
                   sqlite3_bind_text(s, 2, u->username, (int)u->username_len, SQLITE_STATIC) != SQLITE_OK ||
                   sqlite3_bind_text(s, 3, u->hash, -1, SQLITE_STATIC) != SQLITE_OK ||
                   sqlite3_bind_int64(s, 4, u->created_at * 1000) != SQLITE_OK ||
                   sqlite3_bind_text(s, 5, u->roles, -1, SQLITE_STATIC) != SQLITE_OK ||
                   sqlite3_bind_int(s, 6, u->revoked) != SQLITE_OK ||
                   sqlite3_bind_int64(s, 7, u->ver) != SQLITE_OK ||
                   sqlite3_bind_text(s, 8, u->totp_secret, -1, SQLITE_STATIC) != SQLITE_OK ||
                   sqlite3_bind_text(s, 9, u->totp_pending, -1, SQLITE_STATIC) != SQLITE_OK ||
                   sqlite3_bind_int64(s, 10, u->totp_last_step) != SQLITE_OK
               ? -EIO
               : 0;
}

int store_add_user(struct store *st, const struct user_record *u)
{
    sqlite3_stmt *s = st->insert_user;
    if (bind_user(s, u) != 0) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    return step_done(st, s);
}

int store_update_user(struct store *st, const struct user_record *u)
{
    sqlite3_stmt *s = st->update_user;
    if (bind_user(s, u) != 0) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    int err = step_done(st, s);
    if (err == 0 && sqlite3_changes(st->db) == 0)
        err = -ENOENT;
    return err == -EEXIST ? -EIO : err;
}

/* A row of USER_COLUMNS into *u. */
static int read_user(sqlite3_stmt *s, struct user_record *u)
{
    memset(u, 0, sizeof *u);
    if (copy_column(s, 0, u->id, sizeof u->id) != 0 ||
        copy_column(s, 1, u->username, sizeof u->username) != 0 ||
        copy_column(s, 2, u->hash, sizeof u->hash) != 0 ||
        copy_column(s, 4, u->roles, sizeof u->roles) != 0 ||
        copy_column(s, 7, u->totp_secret, sizeof u->totp_secret) != 0 ||
        copy_column(s, 8, u->totp_pending, sizeof u->totp_pending) != 0)
        return -EIO;
    u->username_len = (size_t)sqlite3_column_bytes(s, 1);
    u->created_at = sqlite3_column_int64(s, 3) / 1000;
    u->revoked = sqlite3_column_int(s, 5) != 0;
    u->ver = sqlite3_column_int64(s, 6);
    u->totp_last_step = sqlite3_column_int64(s, 9);
    return 0;
}

/* Steps a bound single-row lookup into *out; resets it. */
static int lookup(struct store *st, sqlite3_stmt *s, struct user_record *out)
{
    int err, rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        err = read_user(s, out);
        if (err)
            log_error("store: a row of the users table does not fit a user record");
    } else if (rc == SQLITE_DONE) {
        err = -ENOENT;
    } else {
        err = errno_from_sqlite(rc) ? errno_from_sqlite(rc) : -EIO;
        log_error("store: find user: %s", sqlite3_errmsg(st->db));
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return err;
}

int store_user_by_name(struct store *st, const char *username, size_t username_len,
                       struct user_record *out)
{
    if (sqlite3_bind_text(st->user_by_name, 1, username, (int)username_len, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_reset(st->user_by_name);
        return -EIO;
    }
    return lookup(st, st->user_by_name, out);
}

int store_user_by_id(struct store *st, const char *id, struct user_record *out)
{
    if (sqlite3_bind_text(st->user_by_id, 1, id, -1, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_reset(st->user_by_id);
        return -EIO;
    }
    return lookup(st, st->user_by_id, out);
}

int store_each_user(struct store *st, const char *after, int limit, store_user_fn fn, void *arg,
                    int *rows)
{
    sqlite3_stmt *s = st->each_user;
    *rows = 0;
    if (sqlite3_bind_text(s, 1, after ? after : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(s, 2, limit) != SQLITE_OK) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    int rc, ret = 0;
    struct user_record u;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        (*rows)++;
        ret = read_user(s, &u);
        if (ret == 0)
            ret = fn(arg, &u);
        if (ret)
            break;
    }
    if (!ret && rc != SQLITE_DONE) {
        log_error("store: list users: %s", sqlite3_errmsg(st->db));
        ret = -EIO;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

int store_each_user_version(struct store *st, store_version_fn fn, void *arg)
{
    sqlite3_stmt *s = st->each_version;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        ret = id ? fn(arg, id, sqlite3_column_int64(s, 1), sqlite3_column_int(s, 2)) : -EIO;
        if (ret)
            break;
    }
    if (!ret && rc != SQLITE_DONE) {
        log_error("store: read token versions: %s", sqlite3_errmsg(st->db));
        ret = -EIO;
    }
    sqlite3_reset(s);
    return ret;
}
