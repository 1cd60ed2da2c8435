/* applier: cluster mode's writer (DESIGN §4). One thread reads the event stream in order through
 * the engine's ordered feed, starting after the local replica's last id, commits what arrives to
 * the local store in groups (the stream is the record; the replica serves snapshot and resume),
 * and feeds the loops exactly as the one-node writer does. It refuses to apply anything but the
 * next sequence: a gap or a re-delivery stops it, logged, with /healthz at 503, rather than serve
 * a log that differs from its peers'. Between groups it checks the engine's health once a second
 * for /healthz and /metrics (app->engine_ok, app->stream_last). */
#ifndef BROKER_CLUSTER_APPLIER_H
#define BROKER_CLUSTER_APPLIER_H

struct app;
struct store;
struct js_engine;
struct applier;

/* Takes ownership of store (a STORE_WRITER handle) on success; the engine stays the caller's and
 * must outlive the applier. */
int applier_start(struct app *app, struct store *store, struct js_engine *engine, struct applier **out);
/* Commits what it holds, closes the feed and joins the thread. */
void applier_stop(struct applier *a);
void applier_free(struct applier *a);

#endif
