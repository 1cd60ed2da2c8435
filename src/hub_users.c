/* hub_users: two chained hash tables over the same entries (by id, by username), grown by
 * doubling. */
#include "hub_users.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct hub_users {
    struct hub_user **by_id, **by_name;
    size_t nbuckets; /* a power of two, the same for both tables */
    size_t count;
};

struct hub_users *hub_users_new(void)
{
    struct hub_users *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->nbuckets = 64;
    u->by_id = calloc(u->nbuckets, sizeof *u->by_id);
    u->by_name = calloc(u->nbuckets, sizeof *u->by_name);
    if (!u->by_id || !u->by_name) {
        hub_users_free(u);
        return NULL;
    }
    return u;
}

void hub_users_free(struct hub_users *u)
{
    if (!u)
        return;
    free(u->by_id);
    free(u->by_name);
    free(u);
}

static size_t slot(const struct hub_users *u, const char *key, size_t len)
{
    return (size_t)hash_bytes(key, len) & (u->nbuckets - 1);
}

struct hub_user *hub_users_by_id(const struct hub_users *u, const char *id, size_t len)
{
    for (struct hub_user *e = u->by_id[slot(u, id, len)]; e; e = e->next_by_id)
        if (strlen(e->id) == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

struct hub_user *hub_users_by_name(const struct hub_users *u, const char *name, size_t len)
{
    for (struct hub_user *e = u->by_name[slot(u, name, len)]; e; e = e->next_by_name)
        if (e->username_len == len && memcmp(e->username, name, len) == 0)
            return e;
    return NULL;
}

static void link_entry(struct hub_users *u, struct hub_user *e)
{
    size_t i = slot(u, e->id, strlen(e->id)), n = slot(u, e->username, e->username_len);
    e->next_by_id = u->by_id[i];
    u->by_id[i] = e;
    e->next_by_name = u->by_name[n];
    u->by_name[n] = e;
}

/* Doubles both tables; when out of memory the chains just grow longer. */
static void grow(struct hub_users *u)
{
    size_t n = u->nbuckets * 2;
    struct hub_user **by_id = calloc(n, sizeof *by_id), **by_name = calloc(n, sizeof *by_name);
    if (!by_id || !by_name) {
        free(by_id);
        free(by_name);
        return;
    }
    struct hub_user **old = u->by_id;
    size_t old_n = u->nbuckets;
    free(u->by_name);
    u->by_id = by_id;
    u->by_name = by_name;
    u->nbuckets = n;
    for (size_t i = 0; i < old_n; i++) {
        for (struct hub_user *e = old[i], *next; e; e = next) {
            next = e->next_by_id;
            link_entry(u, e);
        }
    }
    free(old);
}

static int set_roles(struct hub_user *e, const char *roles)
{
    if (e->roles && strcmp(e->roles, roles) == 0)
        return 0;
    char *copy = strdup(roles);
    if (!copy)
        return -1;
    free(e->roles);
    e->roles = copy;
    e->mask_gen = 0; /* recompute the mask */
    return 0;
}

struct hub_user *hub_users_get(struct hub_users *u, const char *id, const char *username,
                               size_t username_len, const char *roles)
{
    struct hub_user *e = hub_users_by_id(u, id, strlen(id));
    if (e) {
        if (set_roles(e, roles) != 0)
            return NULL;
        e->refs++;
        return e;
    }
    if (strlen(id) >= AUTH_ID_MAX || !(e = calloc(1, sizeof *e + username_len + 1)))
        return NULL;
    if (set_roles(e, roles) != 0) {
        free(e);
        return NULL;
    }
    memcpy(e->id, id, strlen(id) + 1);
    memcpy(e->username, username, username_len);
    e->username_len = username_len;
    e->refs = 1;
    if (u->count >= u->nbuckets)
        grow(u);
    link_entry(u, e);
    u->count++;
    return e;
}

static void unlink_from(struct hub_user **head, struct hub_user *e, int by_id)
{
    for (struct hub_user **p = head; *p; p = by_id ? &(*p)->next_by_id : &(*p)->next_by_name) {
        if (*p == e) {
            *p = by_id ? e->next_by_id : e->next_by_name;
            return;
        }
    }
}

void hub_users_put(struct hub_users *u, struct hub_user *e)
{
    if (--e->refs > 0)
        return;
    unlink_from(&u->by_id[slot(u, e->id, strlen(e->id))], e, 1);
    unlink_from(&u->by_name[slot(u, e->username, e->username_len)], e, 0);
    u->count--;
    free(e->roles);
    free(e);
}
