/* metrics: counters and the Prometheus text rendering. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const route_names[ROUTE_COUNT] = {
    "/users", "/login", "/insert", "/sse", "/sse/ticket", "/healthz", "/metrics", "/users/me", "/admin",
    "other",
};
/* 304: the admin console's revalidations (If-None-Match), which are no client error. */
static const int status_codes[METRIC_STATUSES] = { 200, 204, 304, 400, 401, 403, 404, 405, 409,
                                                   413, 429, 500, 503, 499, 599 };
static const char *const status_labels[METRIC_STATUSES] = { "200", "204", "304", "400", "401", "403",
                                                            "404", "405", "409", "413", "429",
                                                            "500", "503", "4xx", "5xx" };
/* Upper bounds in microseconds. */
static const unsigned long latency_bounds[METRIC_LATENCY_BUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

enum metric_route metrics_route_of(const char *path)
{
    if (!path)
        return ROUTE_OTHER;
    for (int i = 0; i < ROUTE_USERS_ME; i++)
        if (strcmp(path, route_names[i]) == 0)
            return (enum metric_route)i;
    /* The identity routes are families: /users/me/totp counts as /users/me, /admin/users/x as /admin. */
    if (strncmp(path, "/users/me", 9) == 0 && (path[9] == '\0' || path[9] == '/'))
        return ROUTE_USERS_ME;
    if (strncmp(path, "/admin/", 7) == 0 || strcmp(path, "/admin") == 0)
        return ROUTE_ADMIN;
    return ROUTE_OTHER;
}

void metrics_count_request(struct metrics *m, enum metric_route route, int status)
{
    int slot = status >= 500 ? METRIC_STATUSES - 1 : METRIC_STATUSES - 2;
    for (int i = 0; i < METRIC_STATUSES - 2; i++)
        if (status_codes[i] == status) {
            slot = i;
            break;
        }
    atomic_fetch_add_explicit(&m->requests[route][slot], 1, memory_order_relaxed);
}

static void observe(struct metrics_latency *h, unsigned long micros)
{
    int b = METRIC_LATENCY_BUCKETS - 1;
    for (int i = 0; i < METRIC_LATENCY_BUCKETS - 1; i++)
        if (micros <= latency_bounds[i]) {
            b = i;
            break;
        }
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->micros_total, micros, memory_order_relaxed);
}

void metrics_observe_commit(struct metrics *m, unsigned long micros) { observe(&m->commit, micros); }
void metrics_observe_publish(struct metrics *m, unsigned long micros) { observe(&m->publish, micros); }

struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static unsigned long get(atomic_ulong *v) { return atomic_load_explicit(v, memory_order_relaxed); }

static void counter(struct text *t, const char *name, const char *help, unsigned long v)
{
    put(t, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name, v);
}

static void gauge(struct text *t, const char *name, const char *help, long long v)
{
    put(t, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

static void histogram(struct text *t, const char *name, const char *help, struct metrics_latency *h)
{
    put(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long cumulative = 0;
    for (int b = 0; b < METRIC_LATENCY_BUCKETS - 1; b++) {
        cumulative += get(&h->buckets[b]);
        put(t, "%s_bucket{le=\"%g\"} %lu\n", name, latency_bounds[b] / 1e6, cumulative);
    }
    cumulative += get(&h->buckets[METRIC_LATENCY_BUCKETS - 1]);
    put(t, "%s_bucket{le=\"+Inf\"} %lu\n", name, cumulative);
    put(t, "%s_sum %.6f\n", name, get(&h->micros_total) / 1e6);
    put(t, "%s_count %lu\n", name, cumulative);
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g)
{
    struct text t = { .cap = 8192 };
    t.buf = malloc(t.cap);
    if (!t.buf)
        return NULL;
    t.buf[0] = '\0';
    gauge(&t, "broker_subscribers", "Open event streams.", g->subscribers);
    gauge(&t, "broker_open_fds", "Open file descriptors (connections, listeners, database).",
          g->open_fds);
    gauge(&t, "broker_resident_memory_bytes", "Resident set size of the process.", g->rss_bytes);
    gauge(&t, "broker_event_names", "Distinct event names in the snapshot.", g->snapshot_names);
    gauge(&t, "broker_last_event_id", "Highest committed event id.", g->last_event_id);
    counter(&t, "broker_connections_accepted_total", "Connections accepted.",
            get(&m->connections_accepted));
    counter(&t, "broker_connections_refused_total", "Connections refused at the connection limit.",
            get(&m->connections_refused));
    counter(&t, "broker_h2_connections_total", "Connections that spoke HTTP/2.", get(&m->h2_connections));
    counter(&t, "broker_h2_streams_total", "HTTP/2 streams that carried a request.", get(&m->h2_streams));
    counter(&t, "broker_h2_abuse_goaways_total",
            "HTTP/2 connections ended with GOAWAY for a flood or an oversized header block.",
            get(&m->h2_abuse_goaways));
    counter(&t, "broker_events_inserted_total", "Events committed to the store.",
            get(&m->events_inserted));
    counter(&t, "broker_events_delivered_total", "Event frames handed to subscriber connections.",
            get(&m->events_delivered));
    counter(&t, "broker_slow_consumer_disconnects_total",
            "Subscribers disconnected for exceeding --max_backlog.",
            get(&m->slow_consumer_disconnects));
    counter(&t, "broker_slow_consumer_conflations_total",
            "Backlogs collapsed to the latest event per name (--slow_consumer=conflate).",
            get(&m->slow_consumer_conflations));
    counter(&t, "broker_heartbeats_total", "Heartbeat comments sent.", get(&m->heartbeats));
    counter(&t, "broker_store_commit_failures_total", "Group commits that failed.",
            get(&m->commit_failures));
    counter(&t, "broker_admin_actions_total", "Changes made through the admin API.",
            get(&m->admin_actions));
    counter(&t, "broker_streams_revoked_total",
            "Streams closed because their user was revoked or its password or roles changed.",
            get(&m->streams_revoked));
    counter(&t, "broker_rules_denied_total", "Inserts refused by the access rules.",
            get(&m->rules_denied));
    counter(&t, "broker_rules_reloads_total", "Rules files reloaded on SIGHUP.", get(&m->rules_reloads));
    counter(&t, "broker_rules_reload_failures_total", "Rules files refused on SIGHUP (the old rules stay).",
            get(&m->rules_reload_failures));
    counter(&t, "broker_totp_failures_total", "Logins refused for a missing, wrong or replayed TOTP code.",
            get(&m->totp_failures));

    put(&t, "# HELP broker_http_requests_total Requests answered, by route and status.\n"
            "# TYPE broker_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < METRIC_STATUSES; s++) {
            unsigned long v = get(&m->requests[r][s]);
            if (v)
                put(&t, "broker_http_requests_total{route=\"%s\",status=\"%s\"} %lu\n",
                    route_names[r], status_labels[s], v);
        }

    histogram(&t, "broker_store_commit_seconds", "Duration of a group commit (write + fsync).", &m->commit);
    if (g->cluster) {
        gauge(&t, "broker_cluster_connected", "1 while connected to NATS, else 0.", g->engine_connected);
        gauge(&t, "broker_cluster_writable", "1 while JetStream takes writes (quorum), else 0.", g->engine_ok);
        counter(&t, "broker_cluster_reconnects_total", "Reconnections to NATS since the start.",
                g->reconnects);
        gauge(&t, "broker_cluster_stream_last_seq", "The event stream's last sequence, as last seen.",
              g->stream_last);
        gauge(&t, "broker_cluster_applied_seq", "The last stream sequence applied to the local replica.",
              g->applied);
        gauge(&t, "broker_cluster_replication_lag", "Events in the stream not yet applied locally.",
              g->stream_last > g->applied ? g->stream_last - g->applied : 0);
        histogram(&t, "broker_cluster_publish_seconds", "From publish to JetStream's acknowledgement.",
                  &m->publish);
    }
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
