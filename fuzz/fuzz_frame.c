/* fuzz_frame: SSE frame building (src/frame.c) and event filters (src/event_filter.c) with fuzzed
 * ids, names and data. Input: 8 bytes id, 4 bytes retry hint, 2 bytes event length, the event
 * name, then the data; a second, third... frame follow the same way while input remains (each
 * taking its id from the first plus its index), all of them going into one batch.
 * Invariants: frame_formatted_size == frame_new()->len == frame_format()'s return; the text is
 * "id:<id>\nevent:<name>\ndata:<data>\n\n" NUL-terminated, with event_off/event_len and
 * data_off/data_len pointing at the name and the data; frame_format into too small a buffer
 * writes only a NUL; the retry hint sits between the event and data lines; frame_new_text copies;
 * batch_new keeps the frames in order; a filter made of the names matches each of them. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_filter.h"
#include "frame.h"
#include "validate.h"

#define MAX_FRAMES 16

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_frame: %s\n", what);
    abort();
}

static uint64_t take(const uint8_t **p, size_t *left, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && *left; i++, (*p)++, (*left)--)
        v |= (uint64_t)**p << (8 * i);
    return v;
}

static void check_frame(const struct frame *f, int64_t id, const char *event, size_t elen,
                        const char *data, size_t dlen, int retry_ms)
{
    if (frame_formatted_size(id, elen, dlen) != f->len)
        fail("frame_formatted_size differs from frame_new()->len");
    if (f->id != id || f->event_len != elen || f->data_len != dlen)
        fail("frame fields differ from the arguments");
    char head[40];
    int hn = snprintf(head, sizeof head, "id:%" PRId64 "\nevent:", id);
    if (f->len < (size_t)hn + 2 || memcmp(f->text, head, (size_t)hn) != 0)
        fail("frame does not start with id:<id>\\nevent:");
    if (memcmp(f->text + f->len - 2, "\n\n", 2) != 0 || f->text[f->len] != '\0')
        fail("frame does not end with \\n\\n and a NUL");
    if (f->event_off != (size_t)hn || (elen && memcmp(f->text + f->event_off, event, elen) != 0))
        fail("event_off/event_len do not point at the name");
    if ((size_t)f->data_off != (size_t)hn + elen + 6 ||
        memcmp(f->text + f->data_off - 6, "\ndata:", 6) != 0 ||
        (dlen && memcmp(f->text + f->data_off, data, dlen) != 0) ||
        (size_t)f->data_off + dlen + 2 != f->len)
        fail("data_off/data_len do not point at the data");

    /* frame_format agrees, into an exact buffer and into one that is too small. */
    size_t need = frame_format(NULL, 0, id, event, elen, data, dlen, 0);
    if (need != f->len)
        fail("frame_format's size differs from the frame's");
    char *buf = malloc(need + 1);
    if (!buf)
        abort();
    if (frame_format(buf, need + 1, id, event, elen, data, dlen, 0) != need ||
        memcmp(buf, f->text, need + 1) != 0)
        fail("frame_format's text differs from frame_new's");
    memset(buf, 'x', need + 1);
    frame_format(buf, need, id, event, elen, data, dlen, 0);
    if (buf[0] != '\0' || (need > 1 && buf[1] != 'x'))
        fail("frame_format into a small buffer wrote more than a NUL");
    free(buf);

    /* The first frame of a stream carries the retry hint between event: and data:. */
    if (retry_ms > 0) {
        char hint[32];
        int rn = snprintf(hint, sizeof hint, "retry:%d\n", retry_ms);
        size_t rneed = frame_format(NULL, 0, id, event, elen, data, dlen, retry_ms);
        if (rneed != need + (size_t)rn)
            fail("the retry hint changes the size by more than its line");
        char *r = malloc(rneed + 1);
        if (!r)
            abort();
        frame_format(r, rneed + 1, id, event, elen, data, dlen, retry_ms);
        size_t at = (size_t)hn + elen + 1;
        if (memcmp(r, f->text, at) != 0 || memcmp(r + at, hint, (size_t)rn) != 0 ||
            memcmp(r + at + rn, f->text + at, f->len - at + 1) != 0)
            fail("the retry hint is not a line between event: and data:");
        free(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    const uint8_t *p = data;
    size_t left = size;
    struct frame *frames[MAX_FRAMES];
    size_t n = 0;
    int64_t first_id = 0;
    char list[MAX_FRAMES * (EVENT_NAME_MAX + 1) + 1];
    size_t list_len = 0;
    int listed = 0;
    while (n < MAX_FRAMES && (n == 0 || left > 0)) {
        int64_t id = (int64_t)take(&p, &left, 8);
        if (n == 0)
            first_id = id;
        else
            id = (int64_t)((uint64_t)first_id + n);
        int retry_ms = (int)(uint32_t)take(&p, &left, 4);
        size_t elen = (size_t)take(&p, &left, 2) % 1024;
        if (elen > left)
            elen = left;
        const char *event = (const char *)p;
        p += elen;
        left -= elen;
        /* The data runs to the next 0xff 0xfe pair (or the end). */
        size_t dlen = left;
        for (size_t i = 0; i + 1 < left; i++)
            if (p[i] == 0xff && p[i + 1] == 0xfe) {
                dlen = i;
                break;
            }
        const char *d = (const char *)p;
        p += dlen;
        left -= dlen;
        if (left >= 2) {
            p += 2;
            left -= 2;
        }
        struct frame *f = frame_new(id, event, elen, d, dlen);
        if (!f)
            fail("frame_new failed on a small frame");
        check_frame(f, id, event, elen, d, dlen, retry_ms);
        frames[n++] = f;
        if (validate_event_name(event, elen) == NULL && !memchr(event, ',', elen)) {
            memcpy(list + list_len, event, elen);
            list_len += elen;
            list[list_len++] = ',';
            listed++;
        }

        struct frame *t = frame_new_text(d, dlen);
        if (!t || t->len != dlen || t->id != 0 || t->event_len != 0 || t->text[dlen] != '\0' ||
            (dlen && memcmp(t->text, d, dlen) != 0))
            fail("frame_new_text does not hold a copy of its text");
        frame_unref(t);
    }

    /* A filter of the valid names matches each frame carrying one of them. */
    list[list_len] = '\0';
    struct event_filter *filter = NULL;
    const char *reason = NULL;
    int frc = event_filter_parse(list, &filter, &reason);
    if (listed > 0 && listed <= EVENT_FILTER_MAX_NAMES && frc != 0)
        fail("event_filter_parse refused a list of valid names");
    if (listed == 0 && frc == 0)
        fail("event_filter_parse accepted a list without names");
    for (size_t i = 0; i < n && frc == 0; i++) {
        const struct frame *f = frames[i];
        const char *name = f->text + f->event_off;
        if (validate_event_name(name, f->event_len) == NULL && !memchr(name, ',', f->event_len) &&
            !event_filter_match(filter, name, f->event_len))
            fail("a filter of the names does not match one of them");
    }
    if (!event_filter_match(NULL, "x", 1))
        fail("the NULL filter does not match everything");
    event_filter_free(filter);

    /* The batch keeps the frames (and its references to them) in order. */
    for (size_t i = 0; i < n; i++)
        frame_ref(frames[i]);
    struct batch *b = batch_new(frames, n);
    if (!b || b->count != n)
        fail("batch_new lost frames");
    for (size_t i = 0; i < n; i++)
        if (b->frames[i] != frames[i])
            fail("batch_new reordered frames");
    batch_ref(b);
    batch_unref(b);
    batch_unref(b);
    for (size_t i = 0; i < n; i++)
        frame_unref(frames[i]);
    return 0;
}
