/* feed: the per-loop messages of a batch, and the latest-per-name writes of a group. */
#include "feed.h"

#include <errno.h>
#include <stdlib.h>

#include "app.h"
#include "frame.h"
#include "hub.h"
#include "log.h"
#include "loop.h"
#include "mailbox.h"
#include "snapshot.h"
#include "store/store.h"

/* A batch on its way to one loop. */
struct feed_msg {
    struct task task;
    struct loop *loop;
    struct batch *batch;
};

struct feed_msgs {
    int n; /* app->nloops */
    struct feed_msg *msg[];
};

static void feed_deliver(struct task *t)
{
    struct feed_msg *m = (struct feed_msg *)t;
    hub_deliver(m->loop->hub, m->batch);
    batch_unref(m->batch);
    free(m);
}

struct feed_msgs *feed_prepare(struct app *app)
{
    struct feed_msgs *m = calloc(1, sizeof *m + (size_t)app->nloops * sizeof m->msg[0]);
    if (!m)
        return NULL;
    m->n = app->nloops;
    for (int i = 0; i < m->n; i++) {
        if (!(m->msg[i] = calloc(1, sizeof *m->msg[i]))) {
            feed_discard(m);
            return NULL;
        }
    }
    return m;
}

void feed_post(struct app *app, struct feed_msgs *m, struct batch *b)
{
    if (snapshot_apply(app->snapshot, b) != 0)
        log_error("feed: out of memory updating the snapshot");
    for (int i = 0; i < m->n; i++) {
        struct feed_msg *msg = m->msg[i];
        msg->task.run = feed_deliver;
        msg->loop = app->loops[i];
        msg->batch = b;
        batch_ref(b);
        mailbox_post(app->loops[i]->mailbox, &msg->task);
    }
    free(m);
}

void feed_discard(struct feed_msgs *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free(m->msg[i]);
    free(m);
}

/* Walking the group from its newest frame, a name already seen (an open-addressing set of cap
 * slots, a power of two) is skipped. */
int feed_record_latest(struct store *st, struct frame *const *frames, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    const struct frame **seen = calloc(cap, sizeof *seen);
    if (!seen)
        return -ENOMEM;
    int err = 0;
    for (size_t i = n; i-- > 0 && !err;) {
        const struct frame *f = frames[i];
        size_t h = (size_t)frame_hash_name(f) & (cap - 1);
        while (seen[h] && !frame_same_name(seen[h], f))
            h = (h + 1) & (cap - 1);
        if (seen[h])
            continue;
        seen[h] = f;
        err = store_set_latest(st, f->text + f->event_off, f->event_len, f->id);
    }
    free(seen);
    return err;
}
