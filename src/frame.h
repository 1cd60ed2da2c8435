/* frame: one event's Server-Sent-Events frame, built once by the writer and shared read-only by
 * every subscriber on every loop thread. A frame is reference counted; whoever holds a pointer
 * holds a reference. A batch is the committed group of frames handed to the loops together.
 *
 * Wire format (broker-client depends on the field order and on no space after the colon):
 *     id:<id>\nevent:<name>\ndata:<compact JSON>\n\n
 */
#ifndef BROKER_FRAME_H
#define BROKER_FRAME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hash.h"

struct frame {
    atomic_uint refs;
    int64_t id;
    uint32_t len;        /* bytes in text, not counting the trailing NUL */
    uint16_t event_off;  /* where the event name starts inside text */
    uint16_t event_len;
    uint32_t data_off;   /* where the JSON data starts inside text */
    uint32_t data_len;
    char text[];
};

/* Bytes needed by frame_format for these fields (without a NUL). */
size_t frame_formatted_size(int64_t id, size_t event_len, size_t data_len);
/* Writes the frame text into buf (cap bytes, NUL-terminated if room); returns the length it
 * needs, like snprintf. retry_ms > 0 inserts "retry:<ms>\n" between event and data. */
size_t frame_format(char *buf, size_t cap, int64_t id, const char *event, size_t event_len,
                    const char *data, size_t data_len, int retry_ms);

/* Returns a frame with one reference, or NULL when out of memory. event_len must be at most 255. */
struct frame *frame_new(int64_t id, const char *event, size_t event_len, const char *data,
                        size_t data_len);
/* A frame holding arbitrary bytes (a response head, a control frame): id 0, no event name. */
struct frame *frame_new_text(const char *text, size_t len);
void frame_ref(struct frame *f);
void frame_unref(struct frame *f);

/* Do two frames carry the same event name? (Conflation, and the latest-event writes per group.) */
static inline bool frame_same_name(const struct frame *a, const struct frame *b)
{
    return a->event_len == b->event_len &&
           memcmp(a->text + a->event_off, b->text + b->event_off, a->event_len) == 0;
}

static inline uint64_t frame_hash_name(const struct frame *f)
{
    return hash_bytes(f->text + f->event_off, f->event_len);
}

struct batch {
    atomic_uint refs;
    size_t count;
    struct frame *frames[]; /* ascending ids; the batch holds one reference to each */
};

/* Takes ownership of the count references in frames. NULL when out of memory (the frames are
 * then released). */
struct batch *batch_new(struct frame **frames, size_t count);
void batch_ref(struct batch *b);
void batch_unref(struct batch *b);

#endif
