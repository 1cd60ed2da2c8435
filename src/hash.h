/* hash: FNV-1a over bytes, for the small in-memory tables (snapshot names, throttles, token cache,
 * conflation). Not for anything an attacker could aim at to do more than cause a miss or a longer
 * chain: every table compares the full key on a hit. */
#ifndef BROKER_HASH_H
#define BROKER_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#endif
