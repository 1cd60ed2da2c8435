/* event_filter: the names, matched by linear scan (a stream names a handful). One allocation sized
 * to the names given: every subscriber that filters carries one for its whole life. */
#include "event_filter.h"

#include <stdlib.h>
#include <string.h>

#include "validate.h"

struct filter_name {
    const char *name;
    size_t len;
};

struct event_filter {
    size_t count;
    struct filter_name names[];
    /* followed by the names, NUL-separated */
};

/* Calls fn for each non-empty item of the comma-separated list; stops at the first non-zero. */
static int each_item(const char *list, int (*fn)(const char *item, size_t len, void *arg), void *arg)
{
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int rc = len > 0 ? fn(p, len, arg) : 0;
        if (rc || !comma)
            return rc;
        p = comma + 1;
    }
}

struct counting {
    size_t count;
    const char *reason;
};

static int count_item(const char *item, size_t len, void *arg)
{
    struct counting *c = arg;
    if (validate_event_name(item, len)) {
        c->reason = "events: every name must be 1 to 255 bytes of UTF-8 without control characters";
        return -1;
    }
    if (++c->count > EVENT_FILTER_MAX_NAMES) {
        c->reason = "events: at most 64 names";
        return -1;
    }
    return 0;
}

struct placing {
    struct event_filter *f;
    char *next; /* where the next name's bytes go */
};

static int place_item(const char *item, size_t len, void *arg)
{
    struct placing *pl = arg;
    memcpy(pl->next, item, len);
    pl->next[len] = '\0';
    pl->f->names[pl->f->count].name = pl->next;
    pl->f->names[pl->f->count].len = len;
    pl->f->count++;
    pl->next += len + 1;
    return 0;
}

int event_filter_parse(const char *list, struct event_filter **out, const char **reason)
{
    *out = NULL;
    struct counting c = { 0 };
    if (each_item(list, count_item, &c) != 0) {
        *reason = c.reason;
        return -1;
    }
    if (c.count == 0) {
        *reason = "events: name at least one event";
        return -1;
    }
    struct event_filter *f = malloc(sizeof *f + c.count * sizeof f->names[0] + strlen(list) + 1);
    if (!f) {
        *reason = "out of memory";
        return -1;
    }
    f->count = 0;
    struct placing pl = { f, (char *)(f->names + c.count) };
    each_item(list, place_item, &pl);
    *out = f;
    return 0;
}

void event_filter_free(struct event_filter *f) { free(f); }

bool event_filter_match(const struct event_filter *f, const char *name, size_t len)
{
    if (!f)
        return true;
    for (size_t i = 0; i < f->count; i++)
        if (f->names[i].len == len && memcmp(f->names[i].name, name, len) == 0)
            return true;
    return false;
}

int event_filter_match_fn(const char *name, size_t len, void *arg)
{
    return event_filter_match(arg, name, len);
}
