/* snapshot: the latest frame of every event name, kept in ascending id order, plus the watermark
 * (the highest id applied). The writer updates it after each commit and before the batch reaches
 * any loop; a loop copies it when a subscriber arrives. Reading the copy and the watermark under
 * one lock is what makes the snapshot/live seam exact (DESIGN §2). Thread-safe. */
#ifndef BROKER_SNAPSHOT_H
#define BROKER_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct snapshot;

struct snapshot *snapshot_new(void);
void snapshot_free(struct snapshot *s);

/* Records f (taking a new reference) as the latest of its name; ids must ascend. 0 or -ENOMEM. */
int snapshot_put(struct snapshot *s, struct frame *f);
/* snapshot_put for every frame of a committed batch. */
int snapshot_apply(struct snapshot *s, const struct batch *b);

/* Copies the frames (each with a new reference, ascending ids) into a malloc'd array. When
 * filter is non-NULL, only names for which filter(name, len, arg) returns non-zero are copied.
 * The caller unrefs each frame and frees *out. 0 or -ENOMEM. */
typedef int (*snapshot_filter_fn)(const char *name, size_t len, void *arg);
int snapshot_copy(struct snapshot *s, snapshot_filter_fn filter, void *arg, struct frame ***out,
                  size_t *count, int64_t *watermark);

int64_t snapshot_watermark(struct snapshot *s);
size_t snapshot_size(struct snapshot *s);

#endif
