/* http/peer_limit: a chained hash table of address blocks and their connection counts. A slot is
 * the table entry itself, so releasing needs no lookup; an entry is freed when its count drops to
 * zero, so the table holds only addresses that are connected now. */
#include "http/peer_limit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hash.h"

#define BUCKETS 4096

struct peer_slot {
    struct peer_slot *next;
    struct peer_limit *owner;
    unsigned char key[16]; /* an IPv4 address as ::ffff:a.b.c.d, an IPv6 one cut to /64 */
    int count;
};

struct peer_limit {
    pthread_mutex_t lock;
    int max;
    bool count_loopback;
    unsigned char salt[16]; /* keys are chosen by clients: chains must not be predictable */
    struct peer_slot *buckets[BUCKETS];
};

struct peer_limit *peer_limit_new(int max_per_address, bool count_loopback)
{
    struct peer_limit *pl = calloc(1, sizeof *pl);
    if (!pl)
        return NULL;
    if (pthread_mutex_init(&pl->lock, NULL) != 0) {
        free(pl);
        return NULL;
    }
    randombytes_buf(pl->salt, sizeof pl->salt);
    pl->max = max_per_address;
    pl->count_loopback = count_loopback;
    return pl;
}

void peer_limit_free(struct peer_limit *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < BUCKETS; i++) {
        for (struct peer_slot *s = pl->buckets[i], *next; s; s = next) {
            next = s->next;
            free(s);
        }
    }
    pthread_mutex_destroy(&pl->lock);
    free(pl);
}

/* The key of sa, and whether it is loopback. -1 for families that are not counted. */
static int key_of(const struct sockaddr *sa, unsigned char key[16], bool *loopback)
{
    static const unsigned char v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(key, v4_prefix, 12);
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(key, &in6->sin6_addr, 16);
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
            *loopback = true;
            return 0;
        }
        if (memcmp(key, v4_prefix, 12) != 0)
            memset(key + 8, 0, 8); /* a native IPv6 address counts by its /64 */
    } else {
        return -1;
    }
    *loopback = key[12] == 127 && memcmp(key, v4_prefix, 12) == 0;
    return 0;
}

static struct peer_slot **find(struct peer_limit *pl, const unsigned char key[16])
{
    unsigned char salted[32];
    memcpy(salted, pl->salt, 16);
    memcpy(salted + 16, key, 16);
    struct peer_slot **p = &pl->buckets[hash_bytes(salted, sizeof salted) % BUCKETS];
    while (*p && memcmp((*p)->key, key, 16) != 0)
        p = &(*p)->next;
    return p;
}

int peer_limit_acquire(struct peer_limit *pl, const struct sockaddr *sa, struct peer_slot **slot)
{
    *slot = NULL;
    unsigned char key[16];
    bool loopback = false;
    if (!pl || pl->max <= 0 || key_of(sa, key, &loopback) != 0 || (loopback && !pl->count_loopback))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&pl->lock);
    struct peer_slot **p = find(pl, key);
    if (!*p) {
        struct peer_slot *s = calloc(1, sizeof *s);
        if (!s) {
            rc = -ENOMEM;
            goto out;
        }
        s->owner = pl;
        memcpy(s->key, key, 16);
        *p = s;
    }
    if ((*p)->count >= pl->max) {
        rc = -1;
        goto out;
    }
    (*p)->count++;
    *slot = *p;
out:
    pthread_mutex_unlock(&pl->lock);
    return rc;
}

void peer_limit_release(struct peer_slot *slot)
{
    if (!slot)
        return;
    struct peer_limit *pl = slot->owner;
    pthread_mutex_lock(&pl->lock);
    if (--slot->count == 0) {
        struct peer_slot **p = find(pl, slot->key);
        *p = slot->next;
        free(slot);
    }
    pthread_mutex_unlock(&pl->lock);
}

int peer_limit_count(struct peer_limit *pl, const struct sockaddr *sa)
{
    unsigned char key[16];
    bool loopback;
    if (!pl || key_of(sa, key, &loopback) != 0)
        return 0;
    pthread_mutex_lock(&pl->lock);
    struct peer_slot *s = *find(pl, key);
    int n = s ? s->count : 0;
    pthread_mutex_unlock(&pl->lock);
    return n;
}
