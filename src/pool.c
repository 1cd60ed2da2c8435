/* pool: a singly linked free list threaded through the free objects themselves. */
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POOL_BLOCK_BYTES (64 * 1024)

struct block {
    struct block *next;
    max_align_t objects[];
};

struct pool {
    size_t size; /* object size, rounded up to the alignment of anything */
    size_t per_block;
    struct block *blocks;
    void *free_list;
};

struct pool *pool_new(size_t object_size)
{
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t align = _Alignof(max_align_t);
    size_t size = object_size < sizeof(void *) ? sizeof(void *) : object_size;
    p->size = (size + align - 1) / align * align;
    p->per_block = (POOL_BLOCK_BYTES - sizeof(struct block)) / p->size;
    if (p->per_block == 0)
        p->per_block = 1;
    return p;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    for (struct block *b = p->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(p);
}

void *pool_get(struct pool *p)
{
    if (!p->free_list) {
        struct block *b = malloc(sizeof *b + p->per_block * p->size);
        if (!b)
            return NULL;
        b->next = p->blocks;
        p->blocks = b;
        char *base = (char *)b->objects;
        for (size_t i = p->per_block; i-- > 0;) {
            void *obj = base + i * p->size;
            *(void **)obj = p->free_list;
            p->free_list = obj;
        }
    }
    void *obj = p->free_list;
    p->free_list = *(void **)obj;
    memset(obj, 0, p->size);
    return obj;
}

void pool_put(struct pool *p, void *object)
{
    if (!object)
        return;
    *(void **)object = p->free_list;
    p->free_list = object;
}
