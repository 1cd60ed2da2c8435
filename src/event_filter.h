/* event_filter: the set of event names a stream asked for with ?events=a,b. Pure and immutable
 * once parsed; one allocation. */
#ifndef BROKER_EVENT_FILTER_H
#define BROKER_EVENT_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#define EVENT_FILTER_MAX_NAMES 64

struct event_filter;

/* Parses a comma-separated list of event names (already URL-decoded). Empty items are ignored.
 * On success returns 0 and *out (free with event_filter_free); else -1 with a reason for a 400. */
int event_filter_parse(const char *list, struct event_filter **out, const char **reason);
void event_filter_free(struct event_filter *f);
/* A NULL filter matches everything. */
bool event_filter_match(const struct event_filter *f, const char *name, size_t len);
/* snapshot_filter_fn adapter: arg is the filter. */
int event_filter_match_fn(const char *name, size_t len, void *arg);

#endif
