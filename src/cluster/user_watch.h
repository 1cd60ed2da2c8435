/* cluster/user_watch: every node's view of the cluster's users (SPEC §4, §5), kept by one thread
 * that watches the users bucket: the records that exist when the node starts, then every change
 * stored on any node. For each it records the user's token version and revoked flag in the app's
 * directory and, when they moved, closes the user's older streams on this node
 * (app_user_changed), so a revocation on one node reaches every node's streams within a second. It
 * also keeps an index of the users by id (username, roles, flags; no hashes or secrets) for the
 * admin API's lookups and pages. */
#ifndef BROKER_CLUSTER_USER_WATCH_H
#define BROKER_CLUSTER_USER_WATCH_H

#include <stddef.h>

#include "store/store.h"

struct app;
struct js_engine;
struct user_watch;

/* Starts the thread and waits (up to timeout_ms) until the existing records are read. 0, or -1
 * with the reason logged. */
int user_watch_start(struct app *app, struct js_engine *e, int timeout_ms, struct user_watch **out);
/* Stops and joins the thread, frees everything. NULL is fine. */
void user_watch_stop(struct user_watch *w);

struct user_record;
/* User id as the index knows it: a record without hash or secrets (totp_secret is "on" when TOTP is
 * on). 0, or -ENOENT. Any thread; never blocks on the network. */
int user_watch_get(struct user_watch *w, const char *id, struct user_record *out);
/* Calls fn for up to limit users with an id above after (NULL: from the first), in id order, each
 * as user_watch_get gives it. *rows: how many. Any thread. */
int user_watch_each(struct user_watch *w, const char *after, int limit, store_user_fn fn, void *arg,
                    int *rows);

#endif
