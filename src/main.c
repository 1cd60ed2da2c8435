/* main: parse the configuration, run the server until SIGINT or SIGTERM (SIGHUP reloads --rules),
 * shut it down in order (app.c), exit 0. The only exit statuses: 0 (clean), 1 (could not start), 2 (bad configuration). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "snapshot.h"

extern char **environ;

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

static int run(const struct config *cfg)
{
    /* Threads inherit this mask; only the main thread takes SIGINT/SIGTERM/SIGHUP, with sigwait. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_descriptor_limit();

    struct app app;
    if (app_start(&app, cfg) != 0)
        return 1;
    log_info("broker %s listening on %s://%s:%d (loops=%d workers=%d db=%s events=%zu names, "
             "last id %lld, origin=%s, jwt_expiry=%lds, max_body=%zu)",
             BROKER_VERSION, cfg->secure ? "https" : "http", cfg->host, app.port, app.nloops,
             app.nworkers, app.db_file, snapshot_size(app.snapshot),
             (long long)snapshot_watermark(app.snapshot), cfg->origin, cfg->jwt_expiry, cfg->max_body);
    int sig = 0;
    for (;;) {
        if (sigwait(&signals, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        app_reload_rules(&app);
    }
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    app_stop(&app);
    log_info("stopped cleanly");
    return 0;
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
