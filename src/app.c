/* app: building the whole server from a configuration (store, snapshot, loops, workers, writer)
 * and tearing it down in order: stop accepting and end streams, let workers and the writer finish
 * what was accepted, let the loops send the last replies, then close the store. main.c runs it
 * between two signals; the request fuzzer runs it in-process. */
#include "app.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "access/directory.h"
#include "access/rules.h"
#include "auth.h"
#include "cluster/applier.h"
#include "cluster/jetstream.h"
#include "cluster/user_watch.h"
#include "frame.h"
#include "http/listener.h"
#include "http/peer_limit.h"
#include "http/tls.h"
#include "log.h"
#include "proc_stats.h"
#include "loop.h"
#include "secret_file.h"
#include "snapshot.h"
#include "store/store.h"
#include "throttle.h"
#include "workers.h"
#include "writer.h"

#define WEAK_SECRET_BYTES 32

/* --db names a directory (created if missing) holding broker.db and jwt_secret, or an existing
 * database file, whose secret then sits beside it as <file>.jwt_secret. */
static int resolve_paths(const char *db, struct app *p)
{
    struct stat st;
    int n1, n2;
    if (stat(db, &st) == 0 && S_ISREG(st.st_mode)) {
        n1 = snprintf(p->db_file, sizeof p->db_file, "%s", db);
        n2 = snprintf(p->secret_file, sizeof p->secret_file, "%s.jwt_secret", db);
    } else {
        if (mkdir(db, 0700) != 0 && errno != EEXIST) {
            log_error("cannot create the database directory %s: %s", db, strerror(errno));
            return -1;
        }
        if (stat(db, &st) != 0 || !S_ISDIR(st.st_mode)) {
            log_error("--db=%s is neither a directory nor a database file", db);
            return -1;
        }
        n1 = snprintf(p->db_file, sizeof p->db_file, "%s/broker.db", db);
        n2 = snprintf(p->secret_file, sizeof p->secret_file, "%s/jwt_secret", db);
    }
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof p->db_file || (size_t)n2 >= sizeof p->secret_file) {
        log_error("--db path is too long");
        return -1;
    }
    return 0;
}


/* Once everything is open, the descriptors left are for connections. With --max_connections the
 * soft limit is lowered to allow just that many (plus a little slack for SQLite's occasional temp
 * file): the kernel then enforces the limit and the loops refuse the excess with a 503 (loop.c). */
static void apply_connection_limit(int max_connections)
{
    struct rlimit rl;
    long used = proc_open_fds();
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || used < 0)
        return;
    if (max_connections > 0 && (rlim_t)(used + max_connections + 8) < rl.rlim_cur) {
        rl.rlim_cur = (rlim_t)(used + max_connections + 8);
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot apply --max_connections: %s", strerror(errno));
    }
    log_info("descriptor limit %llu (hard %llu): room for about %llu connections",
             (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
             (unsigned long long)(rl.rlim_cur > (rlim_t)used + 8 ? rl.rlim_cur - (rlim_t)used - 8 : 0));
}

static int load_snapshot_row(void *arg, int64_t id, const char *event, size_t event_len,
                             const char *data, size_t data_len)
{
    struct frame *f = frame_new(id, event, event_len, data, data_len);
    if (!f)
        return -ENOMEM;
    int rc = snapshot_put(arg, f);
    frame_unref(f);
    return rc;
}

static long monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The --cluster URLs for the log, without credentials (user:password@ or token@). */
static void redact_urls(const char *urls, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = urls; *p && n + 1 < cap;) {
        const char *scheme = strstr(p, "://");
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *host = scheme && scheme < end ? scheme + 3 : p;
        const char *at = memchr(host, '@', (size_t)(end - host));
        size_t head = (size_t)(host - p);
        int w = snprintf(out + n, cap - n, "%.*s%s%.*s", (int)head, p, at ? "***@" : "",
                         (int)(end - (at ? at + 1 : host)), at ? at + 1 : host);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
        p = end;
        if (*p == ',' && n + 2 < cap) {
            out[n++] = ',';
            p++;
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* Cluster mode: connects to JetStream (refusing servers older than 2.10, creating or checking the
 * stream and the users bucket). 0, or -1 with the reason logged. */
static int open_engine(struct app *app, const struct config *cfg)
{
    char shown[512], err[512];
    redact_urls(cfg->cluster, shown, sizeof shown);
    /* A publish ends within --request_timeout, answer included (SPEC §4). */
    int timeout_ms = cfg->request_timeout > 2 ? (cfg->request_timeout - 1) * 1000 : 1000;
    struct js_config jc = {
        .urls = cfg->cluster,
        .creds = cfg->cluster_creds,
        .stream = cfg->cluster_stream,
        .users_bucket = cfg->cluster_users,
        .replicas = cfg->cluster_replicas,
        .timeout_ms = timeout_ms,
    };
    log_info("cluster: connecting to %s (stream %s, users bucket %s, %d replicas)", shown, cfg->cluster_stream,
             cfg->cluster_users, cfg->cluster_replicas);
    if (js_open(&jc, &app->engine, err, sizeof err) != 0) {
        log_error("cluster: %s", err);
        return -1;
    }
    return 0;
}

static int load_version(void *arg, const char *id, int64_t ver, int revoked)
{
    return directory_set(arg, id, ver, revoked != 0);
}

/* Identity and access (SPEC §5): the rules file, and the token versions the loops check. */
static int open_access(struct app *app, const struct config *cfg, struct store *store)
{
    app->rules_gen = 1;
    if (cfg->rules) {
        char err[512];
        if (rules_load_file(cfg->rules, &app->rules, err, sizeof err) != 0) {
            log_error("--rules %s: %s", cfg->rules, err);
            return -1;
        }
        log_info("rules: %zu rules from %s", rules_count(app->rules), cfg->rules);
    }
    /* In a cluster the versions come from the users bucket (user_watch_start, once the loops
     * exist); the local replica holds no users. */
    if (!(app->directory = directory_new()) ||
        (!app->engine && store_each_user_version(store, load_version, app->directory) != 0)) {
        log_error("cannot load the users' token versions from %s", app->db_file);
        return -1;
    }
    if (cfg->admin_token && strlen(cfg->admin_token) < WEAK_SECRET_BYTES)
        log_warn("the admin token is shorter than %d bytes; it is easier to guess", WEAK_SECRET_BYTES);
    return 0;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 256 ? (int)n : 1;
}

/* The port the kernel gave a socket bound to port 0, so every loop listens on the same one. */
static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int app_start(struct app *app, const struct config *cfg)
{
    struct store *store = NULL;
    memset(app, 0, sizeof *app);
    app->cfg = cfg;
    if (cfg->secure && !(app->tls = tls_context_new(cfg->key_path, cfg->cert_path, cfg->h2_max_streams > 0)))
        return -1;
    if (resolve_paths(cfg->db, app) != 0)
        goto fail;
    if (cfg->jwt_secret) {
        app->secret = (const unsigned char *)cfg->jwt_secret;
        app->secret_len = strlen(cfg->jwt_secret);
    } else {
        int rc = secret_load_or_create(app->secret_file, &app->generated_secret, &app->secret_len);
        if (rc != 0) {
            log_error("cannot read or create the JWT secret %s: %s", app->secret_file, strerror(-rc));
            goto fail;
        }
        app->secret = (const unsigned char *)app->generated_secret;
    }
    if (app->secret_len < WEAK_SECRET_BYTES)
        log_warn("the JWT secret is shorter than %d bytes; tokens are easier to forge", WEAK_SECRET_BYTES);
    /* auth_init hashes once at the real cost: the worker pool's first estimate of a job. */
    long hash_start = monotonic_us();
    if (auth_init() != 0) {
        log_error("cannot initialise libsodium");
        goto fail;
    }
    long hash_cost_us = monotonic_us() - hash_start;
    if (cfg->cluster && open_engine(app, cfg) != 0)
        goto fail;
    if (store_open(app->db_file, STORE_WRITER, &store) != 0) {
        log_error("cannot open the database %s", app->db_file);
        goto fail;
    }
    if (!(app->snapshot = snapshot_new()) ||
        store_each_latest(store, load_snapshot_row, app->snapshot) != 0) {
        log_error("cannot load the latest events from %s", app->db_file);
        goto fail;
    }
    atomic_store(&app->store_ok, true);
    app->db_path = app->db_file;
    if (open_access(app, cfg, store) != 0)
        goto fail;
    app->login_by_user = throttle_new(cfg->login_max_failures, cfg->login_window, 100000);
    app->login_by_address = throttle_new(cfg->login_address_max_failures, cfg->login_window, 100000);
    app->peers = peer_limit_new(cfg->max_connections_per_address, cfg->cap_loopback);
    if (!app->login_by_user || !app->login_by_address || !app->peers)
        goto fail;

    app->nloops = cfg->threads > 0 ? cfg->threads : online_cpus();
    app->nworkers = cfg->workers > 0 ? cfg->workers : online_cpus();
    app->loops = calloc((size_t)app->nloops, sizeof *app->loops);
    if (!app->loops)
        goto fail;
    app->port = cfg->port;
    for (int i = 0; i < app->nloops; i++) {
        int fd = listener_open(cfg->host, app->port);
        if (fd >= 0 && app->port == 0)
            app->port = bound_port(fd);
        if (fd < 0 || loop_new(app, i, fd, &app->loops[i]) != 0)
            goto fail;
    }
    /* Cluster mode: every user record, and from then on every change on any node (revocations
     * reach this node's streams through it). */
    if (app->engine && user_watch_start(app, app->engine, 30000, &app->user_watch) != 0)
        goto fail;
    /* Three quarters of --request_timeout: a client (or its proxy) timing out at about that time
     * still gets its answer, with a quarter left for a cost estimate that was low. On 2 cores at
     * ~150 ms a hash that admits a burst of ~300 logins by default. */
    long max_wait_ms = (long)cfg->request_timeout * 750;
    log_debug("one password hash took %ld ms; password work waits at most %ld ms", hash_cost_us / 1000,
              max_wait_ms);
    if (workers_start(app->db_file, app->nworkers, max_wait_ms, hash_cost_us, &app->workers) != 0) {
        log_error("cannot start the worker threads");
        goto fail;
    }
    /* One node: the writer owns the store. Cluster: the applier keeps it as the stream's replica. */
    if (app->engine ? applier_start(app, store, app->engine, &app->applier) != 0
                    : writer_start(app, store, &app->writer) != 0) {
        log_error("cannot start the %s thread", app->engine ? "applier" : "writer");
        goto fail;
    }
    store = NULL;
    apply_connection_limit(cfg->max_connections);
    for (int i = 0; i < app->nloops; i++)
        if (loop_start(app->loops[i]) != 0) {
            log_error("cannot start loop thread %d", i);
            goto fail;
        }
    return 0;
fail:
    store_close(store);
    app_stop(app);
    return -1;
}

void app_stop(struct app *app)
{
    atomic_store(&app->draining, true);
    for (int i = 0; app->loops && i < app->nloops; i++)
        if (app->loops[i] && app->loops[i]->started)
            loop_post_drain(app->loops[i]);
    workers_stop(app->workers); /* finishes queued hashes; they may still submit to the writer */
    writer_stop(app->writer);   /* commits everything accepted and posts every reply */
    user_watch_stop(app->user_watch); /* before the loops go: it posts to them */
    app->user_watch = NULL;
    if (app->engine) {
        /* Publishes in flight get their acknowledgement (or their deadline) while the loops still
         * run to answer them; whatever is left after that is answered 503 by js_close. */
        for (int i = 0; i < 100 * app->cfg->request_timeout && atomic_load(&app->publishes_pending) > 0; i++)
            usleep(10 * 1000);
        applier_free(app->applier); /* applies what it read, closes the feed and the replica */
        app->applier = NULL;
        js_close(app->engine);
        js_library_close();
        app->engine = NULL;
    }
    for (int i = 0; app->loops && i < app->nloops; i++)
        if (app->loops[i] && app->loops[i]->started)
            loop_post_exit(app->loops[i]);
    for (int i = 0; app->loops && i < app->nloops; i++)
        if (app->loops[i])
            loop_join(app->loops[i]);
    for (int i = 0; app->loops && i < app->nloops; i++)
        loop_free(app->loops[i]);
    free(app->loops);
    app->loops = NULL;
    writer_free(app->writer);
    app->writer = NULL;
    workers_free(app->workers);
    app->workers = NULL;
    snapshot_free(app->snapshot);
    app->snapshot = NULL;
    throttle_free(app->login_by_user);
    throttle_free(app->login_by_address);
    app->login_by_user = app->login_by_address = NULL;
    peer_limit_free(app->peers); /* every connection is closed by now */
    app->peers = NULL;
    directory_free(app->directory);
    app->directory = NULL;
    rules_free(app->rules);
    app->rules = NULL;
    tls_context_free(app->tls);
    app->tls = NULL;
    if (app->generated_secret) {
        sodium_memzero(app->generated_secret, app->secret_len);
        free(app->generated_secret);
        app->generated_secret = NULL;
    }
}
