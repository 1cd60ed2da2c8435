/* frame: formatting and reference counting of SSE frames and batches. */
#include "frame.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t decimal_len(int64_t v)
{
    char tmp[24];
    return (size_t)snprintf(tmp, sizeof tmp, "%" PRId64, v);
}

size_t frame_formatted_size(int64_t id, size_t event_len, size_t data_len)
{
    return 3 + decimal_len(id) + 1 + 6 + event_len + 1 + 5 + data_len + 2;
}

size_t frame_format(char *buf, size_t cap, int64_t id, const char *event, size_t event_len,
                    const char *data, size_t data_len, int retry_ms)
{
    char head[64];
    int hn = snprintf(head, sizeof head, "id:%" PRId64 "\nevent:", id);
    char retry[32] = "";
    int rn = retry_ms > 0 ? snprintf(retry, sizeof retry, "retry:%d\n", retry_ms) : 0;
    size_t need = (size_t)hn + event_len + 1 + (size_t)rn + 5 + data_len + 2;
    if (cap > need) {
        char *p = buf;
        memcpy(p, head, (size_t)hn);
        p += hn;
        if (event_len)
            memcpy(p, event, event_len);
        p += event_len;
        *p++ = '\n';
        memcpy(p, retry, (size_t)rn);
        p += rn;
        memcpy(p, "data:", 5);
        p += 5;
        if (data_len)
            memcpy(p, data, data_len);
        p += data_len;
        memcpy(p, "\n\n", 3);
    } else if (cap > 0) {
        buf[0] = '\0';
    }
    return need;
}

struct frame *frame_new(int64_t id, const char *event, size_t event_len, const char *data,
                        size_t data_len)
{
    if (event_len > UINT16_MAX)
        return NULL;
    size_t size = frame_formatted_size(id, event_len, data_len);
    if (size > UINT32_MAX)
        return NULL;
    struct frame *f = malloc(sizeof *f + size + 1);
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    f->id = id;
    f->len = (uint32_t)frame_format(f->text, size + 1, id, event, event_len, data, data_len, 0);
    f->event_off = (uint16_t)(3 + decimal_len(id) + 1 + 6);
    f->event_len = (uint16_t)event_len;
    f->data_off = (uint32_t)(f->event_off + event_len + 1 + 5);
    f->data_len = (uint32_t)data_len;
    return f;
}

struct frame *frame_new_text(const char *text, size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    struct frame *f = malloc(sizeof *f + len + 1);
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    f->id = 0;
    f->len = (uint32_t)len;
    f->event_off = f->event_len = 0;
    f->data_off = f->data_len = 0;
    if (len)
        memcpy(f->text, text, len);
    f->text[len] = '\0';
    return f;
}

void frame_ref(struct frame *f) { atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); }

void frame_unref(struct frame *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

struct batch *batch_new(struct frame **frames, size_t count)
{
    struct batch *b = malloc(sizeof *b + count * sizeof b->frames[0]);
    if (!b) {
        for (size_t i = 0; i < count; i++)
            frame_unref(frames[i]);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    b->count = count;
    if (count)
        memcpy(b->frames, frames, count * sizeof b->frames[0]);
    return b;
}

void batch_ref(struct batch *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void batch_unref(struct batch *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < b->count; i++)
        frame_unref(b->frames[i]);
    free(b);
}
