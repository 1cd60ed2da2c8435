/* metrics: process-wide counters for GET /metrics (Prometheus text format). Every field is an
 * atomic updated with relaxed ordering from any thread; rendering reads a consistent-enough view. */
#ifndef BROKER_METRICS_H
#define BROKER_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum metric_route {
    ROUTE_USERS,
    ROUTE_LOGIN,
    ROUTE_INSERT,
    ROUTE_SSE,
    ROUTE_SSE_TICKET,
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_USERS_ME, /* /users/me and below */
    ROUTE_ADMIN,    /* /admin/... */
    ROUTE_OTHER,
    ROUTE_COUNT
};

#define METRIC_STATUSES 15 /* 200 204 304 400 401 403 404 405 409 413 429 500 503, other 4xx, other 5xx */
#define METRIC_LATENCY_BUCKETS 12

/* A latency histogram; buckets are made cumulative at render time, not here. */
struct metrics_latency {
    atomic_ulong buckets[METRIC_LATENCY_BUCKETS];
    atomic_ulong micros_total;
};

struct metrics {
    atomic_ulong requests[ROUTE_COUNT][METRIC_STATUSES];
    atomic_ulong connections_accepted;
    atomic_ulong connections_refused;
    atomic_ulong h2_connections;    /* connections that spoke HTTP/2 (ALPN h2 or the preface) */
    atomic_ulong h2_streams;        /* HTTP/2 streams that carried a request */
    atomic_ulong h2_abuse_goaways;  /* HTTP/2 connections ended for a flood or an oversized head */
    atomic_ulong events_inserted;
    atomic_ulong events_delivered;
    atomic_ulong slow_consumer_disconnects;
    atomic_ulong slow_consumer_conflations;
    atomic_ulong heartbeats;
    atomic_ulong commit_failures;
    atomic_ulong admin_actions;     /* admin API changes (create, password, roles, revoke) */
    atomic_ulong streams_revoked;   /* streams closed because their user's tokens changed */
    atomic_ulong rules_denied;      /* inserts refused by the rules (403) */
    atomic_ulong rules_reloads;     /* rules files loaded by SIGHUP */
    atomic_ulong rules_reload_failures;
    atomic_ulong totp_failures;     /* logins refused for a missing, wrong or replayed code */
    struct metrics_latency commit;  /* group commit: write + fsync */
    struct metrics_latency publish; /* cluster mode: publish to PubAck */
};

enum metric_route metrics_route_of(const char *path);
void metrics_count_request(struct metrics *m, enum metric_route route, int status);
void metrics_observe_commit(struct metrics *m, unsigned long micros);
void metrics_observe_publish(struct metrics *m, unsigned long micros);

struct metrics_gauges {
    long subscribers;
    long open_fds;
    long rss_bytes;
    long snapshot_names;
    long long last_event_id;
    /* Cluster mode only (cluster false: not rendered). */
    bool cluster;
    bool engine_connected;
    bool engine_ok;
    long long stream_last;
    long long applied;
    unsigned long reconnects;
};

/* Renders everything as Prometheus text; malloc'd (caller frees), NULL when out of memory. */
char *metrics_render(struct metrics *m, const struct metrics_gauges *g);

#endif
