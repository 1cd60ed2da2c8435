/* config: the command line, BROKER_* environment variables and defaults, validated into one
 * struct. The struct owns its strings (config_free releases them). Parsing is pure: it reads only
 * argv and the given environment, so it can be unit tested. */
#ifndef BROKER_CONFIG_H
#define BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

enum slow_consumer_policy { SLOW_CONSUMER_DISCONNECT = 0, SLOW_CONSUMER_CONFLATE = 1 };

struct config {
    char *db;              /* directory (or an existing database file) */
    char *host;
    int port;
    bool secure;
    char *origin;          /* "*" or a comma-separated list of exact origins */
    long jwt_expiry;       /* seconds */
    char *jwt_secret;      /* NULL: generated and kept in the db directory */
    char *key_path;
    char *cert_path;
    int threads;           /* loop threads; 0 = number of cores */
    int workers;           /* Argon2id worker threads; 0 = number of cores */
    size_t max_body;       /* bytes */
    size_t max_header;     /* bytes of request line + headers */
    enum log_level log_level;
    int heartbeat;         /* seconds, 0 = off */
    size_t max_backlog;    /* bytes of unsent frames per subscriber */
    long ticket_ttl;       /* seconds */
    enum slow_consumer_policy slow_consumer;
    int max_connections;   /* per process; 0 = derived from the descriptor limit */
    int max_connections_per_address; /* 0 = no cap */
    bool cap_loopback;     /* the cap applies to loopback clients too */
    int header_timeout;    /* seconds from the first byte of a request to the end of its head */
    int h2_max_streams;    /* concurrent streams per HTTP/2 connection, 0 = HTTP/2 off */
    int request_timeout;   /* seconds from the first byte of a request to the end of its body */
    int idle_timeout;      /* seconds a kept-alive connection may wait for its next request */
    int login_max_failures;         /* per username per window, then 429 */
    int login_address_max_failures; /* per client address per window, then 429 */
    int login_window;               /* seconds */
    char *cluster;         /* NULL: one node on the embedded store; else NATS URLs (SPEC §4) */
    char *cluster_stream;
    char *cluster_users;
    int cluster_replicas;  /* 1-5 in cluster mode (resolved from the URLs when not given), else 0 */
    char *cluster_creds;   /* NULL or a NATS credentials file */
    char *admin_token;     /* NULL: no admin API (SPEC §5) */
    char *registration;    /* "open" or "admin" */
    bool registration_admin; /* registration is "admin": POST /users answers 403 */
    char *rules;           /* NULL or the rules file */
    char *totp_issuer;
};

enum config_result {
    CONFIG_OK = 0,
    CONFIG_HELP = 1,    /* --help: print config_usage(), exit 0 */
    CONFIG_VERSION = 2, /* --version: print the version, exit 0 */
    CONFIG_ERROR = -1,  /* err holds a one-line reason; exit 2 */
};

/* Fills cfg from defaults, then envp (BROKER_<FLAG>=value), then argv (which wins). On
 * CONFIG_ERROR, err (of errlen bytes) holds the reason and cfg is left freed. */
enum config_result config_parse(struct config *cfg, int argc, char **argv, char **envp,
                                char *err, size_t errlen);
void config_free(struct config *cfg);
const char *config_usage(void);

#endif
