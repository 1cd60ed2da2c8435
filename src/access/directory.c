/* access/directory: a chained hash table of user id -> (ver, revoked) under a read-write lock
 * (reads are the hot path: one per authenticated request; writes are admin actions). */
#include "access/directory.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "hash.h"

struct entry {
    struct entry *next;
    int64_t ver;
    bool revoked;
    char id[AUTH_ID_MAX];
};

struct directory {
    pthread_rwlock_t lock;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

struct directory *directory_new(void)
{
    struct directory *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->nbuckets = 64;
    d->buckets = calloc(d->nbuckets, sizeof *d->buckets);
    if (!d->buckets || pthread_rwlock_init(&d->lock, NULL) != 0) {
        free(d->buckets);
        free(d);
        return NULL;
    }
    return d;
}

void directory_free(struct directory *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nbuckets; i++) {
        for (struct entry *e = d->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(d->buckets);
    pthread_rwlock_destroy(&d->lock);
    free(d);
}

static struct entry *find(const struct directory *d, const char *id, size_t len)
{
    for (struct entry *e = d->buckets[hash_bytes(id, len) & (d->nbuckets - 1)]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* Doubles the table once it holds more entries than buckets; a failed growth only lengthens
 * chains. */
static void grow(struct directory *d)
{
    size_t n = d->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < d->nbuckets; i++) {
        for (struct entry *e = d->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash_bytes(e->id, strlen(e->id)) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = n;
}

int directory_set(struct directory *d, const char *id, int64_t ver, bool revoked)
{
    size_t len = strlen(id);
    if (len >= AUTH_ID_MAX)
        return -EINVAL;
    int rc = 0;
    pthread_rwlock_wrlock(&d->lock);
    struct entry *e = find(d, id, len);
    if (e) {
        if (ver >= e->ver) {
            e->ver = ver;
            e->revoked = revoked;
        }
    } else if ((e = calloc(1, sizeof *e))) {
        memcpy(e->id, id, len + 1);
        e->ver = ver;
        e->revoked = revoked;
        if (d->count >= d->nbuckets)
            grow(d);
        size_t k = hash_bytes(id, len) & (d->nbuckets - 1);
        e->next = d->buckets[k];
        d->buckets[k] = e;
        d->count++;
    } else {
        rc = -ENOMEM;
    }
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

int directory_check(struct directory *d, const char *id, int64_t ver, const char **reason)
{
    pthread_rwlock_rdlock(&d->lock);
    const struct entry *e = d->count ? find(d, id, strlen(id)) : NULL;
    int rc = 0;
    if (e && e->revoked) {
        *reason = "user revoked";
        rc = -EACCES;
    } else if (ver < (e ? e->ver : 0)) { /* (a newer one comes from a node that saw the change first) */
        *reason = "token revoked: log in again";
        rc = -EACCES;
    }
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

int64_t directory_version(struct directory *d, const char *id)
{
    pthread_rwlock_rdlock(&d->lock);
    const struct entry *e = find(d, id, strlen(id));
    int64_t ver = e ? e->ver : 0;
    pthread_rwlock_unlock(&d->lock);
    return ver;
}
