/* main: start-up (configuration, store, snapshot, threads), the signal wait, and the ordered
 * shutdown: stop accepting and end streams, let workers and the writer finish what was accepted,
 * let the loops send the last replies, then close the store. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "config.h"
#include "frame.h"
#include "http/listener.h"
#include "http/tls.h"
#include "log.h"
#include "loop.h"
#include "secret_file.h"
#include "snapshot.h"
#include "store/store.h"
#include "throttle.h"
#include "workers.h"
#include "writer.h"

extern char **environ;

#define WEAK_SECRET_BYTES 32

struct paths {
    char db_file[PATH_MAX];
    char secret_file[PATH_MAX];
};

/* --db names a directory (created if missing) holding broker.db and jwt_secret, or an existing
 * database file, whose secret then sits beside it as <file>.jwt_secret. */
static int resolve_paths(const char *db, struct paths *p)
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

/* Streams hold a descriptor each: take all the descriptors the hard limit allows. */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (rl.rlim_cur != before && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the descriptor limit from %llu: %s", (unsigned long long)before,
                 strerror(errno));
}

static long open_descriptors(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

/* Once everything is open, the descriptors left are for connections. With --max_connections the
 * soft limit is lowered to allow just that many (plus a little slack for SQLite's occasional temp
 * file): the kernel then enforces the limit and the loops refuse the excess with a 503 (loop.c). */
static void apply_connection_limit(int max_connections)
{
    struct rlimit rl;
    long used = open_descriptors();
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

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 256 ? (int)n : 1;
}

static int run(struct config *cfg)
{
    struct app app = { .cfg = cfg };
    struct paths paths;
    char *generated_secret = NULL;
    struct store *store = NULL;
    int status = 1;
    sigset_t signals;

    /* Threads inherit this mask; only the main thread takes SIGINT/SIGTERM, with sigwait. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    raise_descriptor_limit();
    if (cfg->secure && !(app.tls = tls_context_new(cfg->key_path, cfg->cert_path)))
        return 1;
    if (resolve_paths(cfg->db, &paths) != 0)
        goto out;
    if (cfg->jwt_secret) {
        app.secret = (const unsigned char *)cfg->jwt_secret;
        app.secret_len = strlen(cfg->jwt_secret);
    } else {
        int rc = secret_load_or_create(paths.secret_file, &generated_secret, &app.secret_len);
        if (rc != 0) {
            log_error("cannot read or create the JWT secret %s: %s", paths.secret_file, strerror(-rc));
            goto out;
        }
        app.secret = (const unsigned char *)generated_secret;
    }
    if (app.secret_len < WEAK_SECRET_BYTES)
        log_warn("the JWT secret is shorter than %d bytes; tokens are easier to forge", WEAK_SECRET_BYTES);
    if (auth_init() != 0) {
        log_error("cannot initialise libsodium");
        goto out;
    }
    if (store_open(paths.db_file, STORE_WRITER, &store) != 0) {
        log_error("cannot open the database %s", paths.db_file);
        goto out;
    }
    if (!(app.snapshot = snapshot_new()) || store_each_latest(store, load_snapshot_row, app.snapshot) != 0) {
        log_error("cannot load the latest events from %s", paths.db_file);
        goto out;
    }
    atomic_store(&app.store_ok, true);
    app.db_path = paths.db_file;
    app.login_by_user = throttle_new(cfg->login_max_failures, cfg->login_window, 100000);
    app.login_by_address = throttle_new(cfg->login_address_max_failures, cfg->login_window, 100000);
    if (!app.login_by_user || !app.login_by_address)
        goto out;

    app.nloops = cfg->threads > 0 ? cfg->threads : online_cpus();
    int nworkers = cfg->workers > 0 ? cfg->workers : online_cpus();
    app.loops = calloc((size_t)app.nloops, sizeof *app.loops);
    if (!app.loops)
        goto out;
    for (int i = 0; i < app.nloops; i++) {
        int fd = listener_open(cfg->host, cfg->port);
        if (fd < 0 || loop_new(&app, i, fd, &app.loops[i]) != 0)
            goto out;
    }
    if (workers_start(paths.db_file, nworkers, (size_t)nworkers * 8 + 16, &app.workers) != 0) {
        log_error("cannot start the worker threads");
        goto out;
    }
    if (writer_start(&app, store, &app.writer) != 0) {
        log_error("cannot start the writer thread");
        goto out;
    }
    store = NULL; /* the writer owns it now */
    apply_connection_limit(cfg->max_connections);
    for (int i = 0; i < app.nloops; i++)
        if (loop_start(app.loops[i]) != 0) {
            log_error("cannot start loop thread %d", i);
            goto out;
        }
    log_info("broker %s listening on %s://%s:%d (loops=%d workers=%d db=%s events=%zu names, "
             "last id %lld, origin=%s, jwt_expiry=%lds, max_body=%zu)",
             BROKER_VERSION, cfg->secure ? "https" : "http", cfg->host, cfg->port, app.nloops,
             nworkers, paths.db_file, snapshot_size(app.snapshot),
             (long long)snapshot_watermark(app.snapshot), cfg->origin, cfg->jwt_expiry, cfg->max_body);

    int sig = 0;
    while (sigwait(&signals, &sig) != 0)
        ;
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;

out:
    atomic_store(&app.draining, true);
    for (int i = 0; app.loops && i < app.nloops; i++)
        if (app.loops[i] && app.loops[i]->started)
            loop_post_drain(app.loops[i]);
    workers_stop(app.workers); /* finishes queued hashes; they may still submit to the writer */
    writer_stop(app.writer);   /* commits everything accepted and posts every reply */
    for (int i = 0; app.loops && i < app.nloops; i++)
        if (app.loops[i] && app.loops[i]->started)
            loop_post_exit(app.loops[i]);
    for (int i = 0; app.loops && i < app.nloops; i++)
        if (app.loops[i])
            loop_join(app.loops[i]);
    for (int i = 0; app.loops && i < app.nloops; i++)
        loop_free(app.loops[i]);
    free(app.loops);
    writer_free(app.writer);
    workers_free(app.workers);
    store_close(store);
    snapshot_free(app.snapshot);
    throttle_free(app.login_by_user);
    throttle_free(app.login_by_address);
    tls_context_free(app.tls);
    if (generated_secret) {
        sodium_memzero(generated_secret, app.secret_len);
        free(generated_secret);
    }
    if (status == 0)
        log_info("stopped cleanly");
    return status;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    switch (config_parse(&cfg, argc, argv, environ, err, sizeof err)) {
    case CONFIG_HELP:
        fputs(config_usage(), stdout);
        return 0;
    case CONFIG_VERSION:
        printf("broker %s\n", BROKER_VERSION);
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "broker: %s\n", err);
        return 2;
    case CONFIG_OK:
        break;
    }
    log_set_level(cfg.log_level);
    int status = run(&cfg);
    config_free(&cfg);
    return status;
}
