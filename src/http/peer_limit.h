/* http/peer_limit: how many connections each client address holds, process-wide, so that one
 * address cannot take every descriptor (slowloris, a runaway client). IPv4 addresses count one by
 * one; IPv6 addresses by /64, the block one subscriber usually gets. Loopback is exempt unless
 * asked otherwise: a reverse proxy on the same host connects from there for everyone.
 * Thread-safe (one mutex; taken once per accept and once per close). */
#ifndef BROKER_HTTP_PEER_LIMIT_H
#define BROKER_HTTP_PEER_LIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

struct peer_limit;
struct peer_slot;

/* max_per_address 0: no cap (nothing is counted). NULL when out of memory. */
struct peer_limit *peer_limit_new(int max_per_address, bool count_loopback);
/* Every slot must have been released. */
void peer_limit_free(struct peer_limit *pl);
/* Takes one connection slot for sa. 0 with *slot set (NULL when sa is not counted), -1 when sa
 * already holds max_per_address connections, -ENOMEM. */
int peer_limit_acquire(struct peer_limit *pl, const struct sockaddr *sa, struct peer_slot **slot);
/* Gives the slot back (NULL is fine). */
void peer_limit_release(struct peer_slot *slot);
/* Connections counted for sa right now (tests and metrics). */
int peer_limit_count(struct peer_limit *pl, const struct sockaddr *sa);

#endif
