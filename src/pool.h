/* pool: fixed-size objects carved from 64 KiB blocks and recycled through a free list, for objects
 * that live long and come and go in large numbers (subscribers). Kept together, they do not pin the
 * heap pages of the short-lived allocations around them (request parsing), so an idle stream costs
 * its own size. Single-threaded: one pool per loop. Blocks go back to the system in pool_free. */
#ifndef BROKER_POOL_H
#define BROKER_POOL_H

#include <stddef.h>

struct pool;

struct pool *pool_new(size_t object_size);
void pool_free(struct pool *p);
/* A zeroed object, or NULL when out of memory. */
void *pool_get(struct pool *p);
void pool_put(struct pool *p, void *object);

#endif
