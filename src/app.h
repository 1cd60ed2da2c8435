/* app: the process-wide context every module reaches through its loop. Built by main.c before any
 * thread starts and torn down after they all stop; its fields never change in between, except the
 * atomics. */
#ifndef BROKER_APP_H
#define BROKER_APP_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"

struct writer;
struct workers;
struct snapshot;
struct loop;
struct throttle;
struct peer_limit;
struct js_engine;
struct applier;
struct directory;
struct rules;
struct user_watch;
struct user_record;
typedef struct ssl_ctx_st SSL_CTX;

struct app {
    const struct config *cfg;
    const char *db_path; /* the database file (points at db_file) */
    char db_file[PATH_MAX];
    char secret_file[PATH_MAX];
    char *generated_secret; /* owned; NULL when --jwt_secret was given */
    int port;               /* the port actually bound (differs from cfg->port when that is 0) */
    int nworkers;
    const unsigned char *secret; /* HS256 key */
    size_t secret_len;
    struct writer *writer;
    struct workers *workers;
    struct snapshot *snapshot;
    struct loop **loops;
    int nloops;
    SSL_CTX *tls; /* NULL unless --secure=true */
    struct throttle *login_by_user;    /* failed logins per username */
    struct throttle *login_by_address; /* failed logins per client address */
    struct peer_limit *peers;          /* connections per client address */
    struct directory *directory;       /* token versions and revocations (SPEC §5) */
    /* --rules: the file as last loaded (NULL without --rules), and a generation that each reload
     * increments; the loops take both over through their mailboxes (access/notify.c). Main thread
     * only, after app_start. */
    struct rules *rules;
    unsigned rules_gen;
    atomic_bool draining;  /* shutdown began: refuse new work */
    atomic_bool store_ok;  /* last commit (or start-up check) succeeded */
    atomic_long subscribers;

    /* Cluster mode (SPEC §4); engine is NULL on one node. */
    struct js_engine *engine;
    struct applier *applier;
    struct user_watch *user_watch; /* the users of the cluster, as this node sees them */
    atomic_bool engine_ok;         /* JetStream takes writes (the applier's last check) */
    atomic_bool applier_ok;        /* false once the applier stopped at a gap */
    atomic_llong stream_last;      /* the stream's last sequence, as last seen */
    atomic_llong applied;          /* the last sequence applied to the local replica */
    atomic_long publishes_pending; /* inserts waiting for their PubAck */
    struct metrics metrics;
};

/* Builds and starts everything; 0, or -1 with the reason logged and nothing left running. */
int app_start(struct app *app, const struct config *cfg);
/* Ordered shutdown; frees everything app_start built. */
void app_stop(struct app *app);

/* SIGHUP (main thread): loads --rules again and hands the new rules to every loop; a file that
 * does not load keeps the old rules (logged). Without --rules it does nothing. */
void app_reload_rules(struct app *app);
/* A change of user u was committed (access/user.h): records its token version and revoked flag
 * (so older tokens are refused from now on) and, when ver_changed, closes the streams opened with
 * an older token on every loop, with reason. Any thread. */
void app_user_changed(struct app *app, const struct user_record *u, bool ver_changed, const char *reason);

#endif
