/* throttle: counts failures per key (a username, an address) in fixed windows and says how long
 * a key must wait once it reached its limit. Used by /login against password guessing. Thread-safe;
 * time is passed in, so the logic is testable. Memory is bounded by max_keys: when the table is
 * full of live entries, new keys are not tracked (the per-address limit still applies). */
#ifndef BROKER_THROTTLE_H
#define BROKER_THROTTLE_H

#include <stddef.h>

struct throttle;

struct throttle *throttle_new(int limit, long window_seconds, size_t max_keys);
void throttle_free(struct throttle *t);

/* 0 when key may try now, else the seconds until it may (for Retry-After). */
long throttle_wait(struct throttle *t, const char *key, size_t len, long now);
void throttle_fail(struct throttle *t, const char *key, size_t len, long now);
/* Forgets key's failures (after a success). */
void throttle_clear(struct throttle *t, const char *key, size_t len);
size_t throttle_size(struct throttle *t);

#endif
