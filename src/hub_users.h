/* hub_users: the users that have streams open on one loop, found by id or by username (SPEC §5).
 * Revocation closes a user's streams through it, and an event only its owner may read (a rule
 * with "self") goes to that user's streams alone instead of being offered to every subscriber
 * (DESIGN §5): O(that user's streams), not O(all). One per hub, used on its loop thread only.
 *
 * A hub_user exists while at least one stream of it is open; the hub links its subscribers into
 * `streams` and drops the entry with hub_users_put when the last one leaves. It also keeps the
 * user's role mask for the rules the loop has now (mask_gen says which), so a role test in the
 * fan-out is one AND. */
#ifndef BROKER_HUB_USERS_H
#define BROKER_HUB_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

struct subscriber;

struct hub_user {
    struct hub_user *next_by_id, *next_by_name;
    struct subscriber *streams; /* the hub's list of this user's subscribers */
    size_t refs;                /* subscribers holding this entry */
    uint64_t role_mask;         /* the roles among those the loop's rules name */
    unsigned mask_gen;          /* the rules generation role_mask was computed for */
    char *roles;                /* comma-separated ("" = none), from the newest token seen */
    char id[AUTH_ID_MAX];
    size_t username_len;
    char username[];
};

struct hub_users;

struct hub_users *hub_users_new(void);
/* Every entry must have been put back. */
void hub_users_free(struct hub_users *u);

/* The entry of user id (creating it, with these username and roles), with one more reference; an
 * existing entry takes the roles given when they differ (a newer token). NULL when out of memory. */
struct hub_user *hub_users_get(struct hub_users *u, const char *id, const char *username,
                               size_t username_len, const char *roles);
/* Drops a reference; the entry is freed with the last one. */
void hub_users_put(struct hub_users *u, struct hub_user *e);

struct hub_user *hub_users_by_id(const struct hub_users *u, const char *id, size_t len);
struct hub_user *hub_users_by_name(const struct hub_users *u, const char *name, size_t len);

#endif
