/* feed: how a durable batch of events reaches the loops (DESIGN §1). The snapshot is updated
 * first, then every loop gets a message holding a reference to the batch, so a subscriber that
 * copies the snapshot after this point sees the batch in it, and one that copied it before gets
 * the batch from its loop. Used by the writer (one node) and the applier (cluster mode), each
 * from its own single thread.
 *
 * Everything that can fail is allocated by feed_prepare, before the data is made durable: once it
 * is, feeding it cannot fail. The latest-event table is written here too, once per name per
 * batch, since both writers of the store need it the same way. */
#ifndef BROKER_FEED_H
#define BROKER_FEED_H

#include <stddef.h>

struct app;
struct batch;
struct frame;
struct store;
struct feed_msgs;

/* One message per loop, or NULL when out of memory. */
struct feed_msgs *feed_prepare(struct app *app);
/* Applies b to the snapshot and posts it to every loop (each message takes a reference; the
 * caller keeps its own). Frees m. */
void feed_post(struct app *app, struct feed_msgs *m, struct batch *b);
/* Frees m unused (the group failed, or held no event). NULL is a no-op. */
void feed_discard(struct feed_msgs *m);

/* Inside the store's open transaction: records the newest of frames[0..n) (ascending ids) as the
 * latest event of each name, one row write per name. 0 or a store error, -ENOMEM. */
int feed_record_latest(struct store *st, struct frame *const *frames, size_t n);

#endif
