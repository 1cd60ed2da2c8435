/* snapshot: a chained hash map from event name to its latest frame, threaded on a doubly linked
 * list kept in id order. Replacing a name's frame moves its entry to the tail, so the list is
 * always sorted by id without ever sorting. */
#include "snapshot.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct entry {
    struct entry *bucket_next;
    struct entry *prev, *next; /* id order */
    uint64_t hash;
    struct frame *frame;
};

struct snapshot {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    struct entry *head, *tail;
    int64_t watermark;
};


static const char *entry_name(const struct entry *e, size_t *len)
{
    *len = e->frame->event_len;
    return e->frame->text + e->frame->event_off;
}

struct snapshot *snapshot_new(void)
{
    struct snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->nbuckets = 64;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    if (!s->buckets || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->buckets);
        free(s);
        return NULL;
    }
    return s;
}

void snapshot_free(struct snapshot *s)
{
    if (!s)
        return;
    for (struct entry *e = s->head, *next; e; e = next) {
        next = e->next;
        frame_unref(e->frame);
        free(e);
    }
    free(s->buckets);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void list_unlink(struct snapshot *s, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_append(struct snapshot *s, struct entry *e)
{
    e->prev = s->tail;
    e->next = NULL;
    if (s->tail)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
}

static int grow(struct snapshot *s)
{
    size_t n = s->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e; e = next) {
            next = e->bucket_next;
            e->bucket_next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    return 0;
}

/* Called with the lock held. */
static int put_locked(struct snapshot *s, struct frame *f)
{
    const char *name = f->text + f->event_off;
    size_t len = f->event_len;
    uint64_t h = hash_bytes(name, len);
    struct entry *e = s->buckets[h & (s->nbuckets - 1)];
    for (; e; e = e->bucket_next) {
        size_t elen;
        const char *ename = entry_name(e, &elen);
        if (e->hash == h && elen == len && memcmp(ename, name, len) == 0)
            break;
    }
    if (e) {
        frame_unref(e->frame);
        list_unlink(s, e);
    } else {
        if (s->count >= s->nbuckets && grow(s) != 0)
            return -ENOMEM;
        e = calloc(1, sizeof *e);
        if (!e)
            return -ENOMEM;
        e->hash = h;
        e->bucket_next = s->buckets[h & (s->nbuckets - 1)];
        s->buckets[h & (s->nbuckets - 1)] = e;
        s->count++;
    }
    frame_ref(f);
    e->frame = f;
    list_append(s, e);
    if (f->id > s->watermark)
        s->watermark = f->id;
    return 0;
}

int snapshot_put(struct snapshot *s, struct frame *f)
{
    pthread_mutex_lock(&s->lock);
    int rc = put_locked(s, f);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int snapshot_apply(struct snapshot *s, const struct batch *b)
{
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < b->count && rc == 0; i++)
        rc = put_locked(s, b->frames[i]);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int snapshot_copy(struct snapshot *s, snapshot_filter_fn filter, void *arg, struct frame ***out,
                  size_t *count, int64_t *watermark)
{
    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&s->lock);
    *watermark = s->watermark;
    struct frame **frames = NULL;
    if (s->count > 0) {
        frames = malloc(s->count * sizeof *frames);
        if (!frames) {
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
    }
    size_t n = 0;
    for (struct entry *e = s->head; e; e = e->next) {
        size_t len;
        const char *name = entry_name(e, &len);
        if (filter && !filter(name, len, arg))
            continue;
        frame_ref(e->frame);
        frames[n++] = e->frame;
    }
    pthread_mutex_unlock(&s->lock);
    *out = frames;
    *count = n;
    return 0;
}

int64_t snapshot_watermark(struct snapshot *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t w = s->watermark;
    pthread_mutex_unlock(&s->lock);
    return w;
}

size_t snapshot_size(struct snapshot *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}
