/* event_filter: a small array of names, matched by linear scan (a stream names a handful). */
#include "event_filter.h"

#include <stdlib.h>
#include <string.h>

#include "validate.h"

struct event_filter {
    size_t count;
    size_t len[EVENT_FILTER_MAX_NAMES];
    const char *name[EVENT_FILTER_MAX_NAMES];
    char storage[]; /* the names, NUL-separated */
};

int event_filter_parse(const char *list, struct event_filter **out, const char **reason)
{
    *out = NULL;
    size_t total = strlen(list);
    struct event_filter *f = malloc(sizeof *f + total + 1);
    if (!f) {
        *reason = "out of memory";
        return -1;
    }
    f->count = 0;
    memcpy(f->storage, list, total + 1);
    char *p = f->storage;
    for (;;) {
        char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (comma)
            *comma = '\0';
        if (len > 0) {
            const char *bad = validate_event_name(p, len);
            if (bad) {
                *reason = "events: every name must be 1 to 255 bytes of UTF-8 without control characters";
                free(f);
                return -1;
            }
            if (f->count == EVENT_FILTER_MAX_NAMES) {
                *reason = "events: at most 64 names";
                free(f);
                return -1;
            }
            f->name[f->count] = p;
            f->len[f->count] = len;
            f->count++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (f->count == 0) {
        *reason = "events: name at least one event";
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

void event_filter_free(struct event_filter *f) { free(f); }

bool event_filter_match(const struct event_filter *f, const char *name, size_t len)
{
    if (!f)
        return true;
    for (size_t i = 0; i < f->count; i++)
        if (f->len[i] == len && memcmp(f->name[i], name, len) == 0)
            return true;
    return false;
}

int event_filter_match_fn(const char *name, size_t len, void *arg)
{
    return event_filter_match(arg, name, len);
}
