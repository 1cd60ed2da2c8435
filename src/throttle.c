/* throttle: a chained hash table of {key, window start, failures}, swept of expired entries when
 * it fills up (at most once per second, so a full table of live keys costs no repeated sweeps). */
#include "throttle.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct entry {
    struct entry *next;
    uint64_t hash;
    long window_start;
    int failures;
    size_t len;
    char key[];
};

struct throttle {
    pthread_mutex_t lock;
    int limit;
    long window;
    size_t max_keys, count, nbuckets;
    long last_sweep;
    struct entry **buckets;
};


struct throttle *throttle_new(int limit, long window_seconds, size_t max_keys)
{
    struct throttle *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->limit = limit;
    t->window = window_seconds;
    t->max_keys = max_keys;
    t->nbuckets = 1024;
    while (t->nbuckets < max_keys / 2)
        t->nbuckets *= 2;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->buckets || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        free(t);
        return NULL;
    }
    t->last_sweep = -1;
    return t;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct entry **find_slot(struct throttle *t, const char *key, size_t len, uint64_t h)
{
    struct entry **p = &t->buckets[h & (t->nbuckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->len == len && memcmp((*p)->key, key, len) == 0)
            break;
    return p;
}

static int expired(const struct throttle *t, const struct entry *e, long now)
{
    return now >= e->window_start + t->window;
}

static void sweep(struct throttle *t, long now)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry **p = &t->buckets[i];
        while (*p) {
            if (expired(t, *p, now)) {
                struct entry *dead = *p;
                *p = dead->next;
                free(dead);
                t->count--;
            } else {
                p = &(*p)->next;
            }
        }
    }
}

long throttle_wait(struct throttle *t, const char *key, size_t len, long now)
{
    long wait = 0;
    pthread_mutex_lock(&t->lock);
    struct entry *e = *find_slot(t, key, len, hash_bytes(key, len));
    if (e && !expired(t, e, now) && e->failures >= t->limit)
        wait = e->window_start + t->window - now;
    pthread_mutex_unlock(&t->lock);
    return wait;
}

void throttle_fail(struct throttle *t, const char *key, size_t len, long now)
{
    uint64_t h = hash_bytes(key, len);
    pthread_mutex_lock(&t->lock);
    struct entry **slot = find_slot(t, key, len, h);
    struct entry *e = *slot;
    if (e && expired(t, e, now)) {
        e->window_start = now;
        e->failures = 0;
    }
    if (!e) {
        if (t->count >= t->max_keys && now != t->last_sweep) {
            t->last_sweep = now;
            sweep(t, now);
            slot = find_slot(t, key, len, h);
        }
        if (t->count < t->max_keys && (e = malloc(sizeof *e + len)) != NULL) {
            e->next = NULL;
            e->hash = h;
            e->window_start = now;
            e->failures = 0;
            e->len = len;
            memcpy(e->key, key, len);
            *slot = e;
            t->count++;
        }
    }
    if (e)
        e->failures++;
    pthread_mutex_unlock(&t->lock);
}

void throttle_clear(struct throttle *t, const char *key, size_t len)
{
    pthread_mutex_lock(&t->lock);
    struct entry **slot = find_slot(t, key, len, hash_bytes(key, len));
    struct entry *e = *slot;
    if (e) {
        *slot = e->next;
        free(e);
        t->count--;
    }
    pthread_mutex_unlock(&t->lock);
}

size_t throttle_size(struct throttle *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
