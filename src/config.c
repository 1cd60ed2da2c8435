/* config: flags, environment and defaults. One table describes every flag, so the parser, the
 * environment lookup and --help cannot drift apart. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum flag_kind { FLAG_STRING, FLAG_INT, FLAG_SIZE, FLAG_BOOL, FLAG_LEVEL, FLAG_POLICY };

struct flag {
    const char *name;
    enum flag_kind kind;
    size_t offset;
    long long min, max; /* for FLAG_INT and FLAG_SIZE */
    const char *help;
};

#define OFF(field) offsetof(struct config, field)

static const struct flag flags[] = {
    { "db", FLAG_STRING, OFF(db), 0, 0, "database directory (created if missing) [./broker-data]" },
    { "host", FLAG_STRING, OFF(host), 0, 0, "address to listen on [0.0.0.0]" },
    { "port", FLAG_INT, OFF(port), 1, 65535, "port to listen on [8080]" },
    { "secure", FLAG_BOOL, OFF(secure), 0, 0, "serve HTTPS with --key_path/--cert_path [false]" },
    { "origin", FLAG_STRING, OFF(origin), 0, 0, "CORS origin: * or comma-separated origins [*]" },
    { "jwt_expiry", FLAG_INT, OFF(jwt_expiry), 1, 315360000, "token lifetime in seconds [86400]" },
    { "jwt_secret", FLAG_STRING, OFF(jwt_secret), 0, 0,
      "HS256 secret [random, kept in the db directory]" },
    { "key_path", FLAG_STRING, OFF(key_path), 0, 0, "TLS private key (PEM)" },
    { "cert_path", FLAG_STRING, OFF(cert_path), 0, 0, "TLS certificate chain (PEM)" },
    { "threads", FLAG_INT, OFF(threads), 0, 256, "event loop threads, 0 = cores [0]" },
    { "workers", FLAG_INT, OFF(workers), 0, 256, "password hashing threads, 0 = cores [0]" },
    { "max_body", FLAG_SIZE, OFF(max_body), 64, 1LL << 30, "largest request body in bytes [1048576]" },
    { "max_header", FLAG_SIZE, OFF(max_header), 1024, 1 << 20,
      "largest request line + headers in bytes [16384]" },
    { "log_level", FLAG_LEVEL, OFF(log_level), 0, 0, "error, warn, info or debug [info]" },
    { "heartbeat", FLAG_INT, OFF(heartbeat), 0, 3600, "seconds of stream silence before a comment, 0 = off [15]" },
    { "max_backlog", FLAG_SIZE, OFF(max_backlog), 4096, 1LL << 30,
      "unsent bytes per subscriber before the slow-consumer policy applies [1048576]" },
    { "ticket_ttl", FLAG_INT, OFF(ticket_ttl), 1, 315360000, "SSE ticket lifetime in seconds [3600]" },
    { "slow_consumer", FLAG_POLICY, OFF(slow_consumer), 0, 0, "disconnect or conflate [disconnect]" },
    { "max_connections", FLAG_INT, OFF(max_connections), 0, 10000000,
      "connections per process (approximate), 0 = as many as descriptors allow [0]" },
    { "max_connections_per_address", FLAG_INT, OFF(max_connections_per_address), 0, 10000000,
      "connections per client address (IPv6: per /64), 0 = no cap [1024]" },
    { "cap_loopback", FLAG_BOOL, OFF(cap_loopback), 0, 0,
      "apply --max_connections_per_address to loopback clients too (a local proxy) [false]" },
    { "header_timeout", FLAG_INT, OFF(header_timeout), 1, 3600,
      "seconds allowed to send a request line and headers (and a TLS handshake) [10]" },
    { "request_timeout", FLAG_INT, OFF(request_timeout), 1, 3600,
      "seconds allowed to send a whole request, body included [30]" },
    { "h2_max_streams", FLAG_INT, OFF(h2_max_streams), 0, 10000,
      "concurrent HTTP/2 streams per connection, 0 = HTTP/2 off [100]" },
    { "idle_timeout", FLAG_INT, OFF(idle_timeout), 1, 86400,
      "seconds a connection may wait for its next request [60]" },
    { "login_max_failures", FLAG_INT, OFF(login_max_failures), 1, 1000000,
      "failed logins per username per window before 429 [10]" },
    { "login_address_max_failures", FLAG_INT, OFF(login_address_max_failures), 1, 1000000,
      "failed logins per client address per window before 429 [300]" },
    { "login_window", FLAG_INT, OFF(login_window), 1, 86400, "login throttling window in seconds [60]" },
    { "cluster", FLAG_STRING, OFF(cluster), 0, 0,
      "run as a cluster node on NATS JetStream 2.10+: nats:// or tls:// URLs, comma-separated [off]" },
    { "cluster_stream", FLAG_STRING, OFF(cluster_stream), 0, 0, "JetStream stream of the events [BROKER_EVENTS]" },
    { "cluster_users", FLAG_STRING, OFF(cluster_users), 0, 0, "JetStream key-value bucket of the users [BROKER_USERS]" },
    { "cluster_replicas", FLAG_INT, OFF(cluster_replicas), 1, 5,
      "replicas of the stream and the bucket [3 with several URLs, else 1]" },
    { "cluster_creds", FLAG_STRING, OFF(cluster_creds), 0, 0, "NATS credentials file for --cluster" },
    { "admin_token", FLAG_STRING, OFF(admin_token), 0, 0,
      "bearer token of the admin API (/admin/*) [off: every /admin route answers 404]" },
    { "registration", FLAG_STRING, OFF(registration), 0, 0,
      "open (anyone may POST /users) or admin (only the admin API creates users) [open]" },
    { "rules", FLAG_STRING, OFF(rules), 0, 0,
      "JSON file of access rules per event name; SIGHUP reloads it [off: everything allowed]" },
    { "totp_issuer", FLAG_STRING, OFF(totp_issuer), 0, 0,
      "issuer shown by authenticator apps for TOTP [broker]" },
};
#define NFLAGS (sizeof flags / sizeof flags[0])

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Error messages quote values; keep them on one line and short. */
static const char *printable(const char *value, char *buf, size_t cap)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 4 < cap; p++)
        buf[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    if (value[n] != '\0' && n + 4 >= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static const struct flag *flag_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NFLAGS; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

static int parse_integer(const char *s, long long *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int flag_apply(struct config *cfg, const struct flag *f, const char *value, const char *source,
                      char *err, size_t errlen)
{
    char *base = (char *)cfg + f->offset;
    char shown[64];
    long long v;
    switch (f->kind) {
    case FLAG_STRING: {
        if (*value == '\0') {
            set_err(err, errlen, "%s --%s: value must not be empty", source, f->name);
            return -1;
        }
        char *copy = strdup(value);
        if (!copy) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        char **slot = (char **)base;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case FLAG_INT:
    case FLAG_SIZE:
        if (parse_integer(value, &v) != 0 || v < f->min || v > f->max) {
            set_err(err, errlen, "%s --%s: '%s' is not an integer from %lld to %lld", source, f->name,
                    printable(value, shown, sizeof shown), f->min, f->max);
            return -1;
        }
        if (f->kind == FLAG_SIZE)
            *(size_t *)base = (size_t)v;
        else if (f->offset == OFF(jwt_expiry) || f->offset == OFF(ticket_ttl))
            *(long *)base = (long)v;
        else
            *(int *)base = (int)v;
        return 0;
    case FLAG_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(bool *)base = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(bool *)base = false;
        else {
            set_err(err, errlen, "%s --%s: '%s' is not true or false", source, f->name,
                    printable(value, shown, sizeof shown));
            return -1;
        }
        return 0;
    case FLAG_LEVEL:
        if (log_level_parse(value, (enum log_level *)base) != 0) {
            set_err(err, errlen, "%s --%s: '%s' is not error, warn, info or debug", source, f->name,
                    printable(value, shown, sizeof shown));
            return -1;
        }
        return 0;
    case FLAG_POLICY:
        if (strcmp(value, "disconnect") == 0)
            *(enum slow_consumer_policy *)base = SLOW_CONSUMER_DISCONNECT;
        else if (strcmp(value, "conflate") == 0)
            *(enum slow_consumer_policy *)base = SLOW_CONSUMER_CONFLATE;
        else {
            set_err(err, errlen, "%s --%s: '%s' is not disconnect or conflate", source, f->name,
                    printable(value, shown, sizeof shown));
            return -1;
        }
        return 0;
    }
    return -1;
}

static int set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->db = strdup("./broker-data");
    cfg->host = strdup("0.0.0.0");
    cfg->origin = strdup("*");
    cfg->port = 8080;
    cfg->jwt_expiry = 86400;
    cfg->max_body = 1 << 20;
    cfg->max_header = 16384;
    cfg->log_level = LOG_INFO;
    cfg->heartbeat = 15;
    cfg->max_backlog = 1 << 20;
    cfg->ticket_ttl = 3600;
    cfg->max_connections_per_address = 1024;
    cfg->header_timeout = 10;
    cfg->request_timeout = 30;
    cfg->idle_timeout = 60;
    cfg->h2_max_streams = 100;
    cfg->login_max_failures = 10;
    cfg->login_address_max_failures = 300;
    cfg->login_window = 60;
    cfg->cluster_stream = strdup("BROKER_EVENTS");
    cfg->cluster_users = strdup("BROKER_USERS");
    cfg->registration = strdup("open");
    cfg->totp_issuer = strdup("broker");
    return cfg->db && cfg->host && cfg->origin && cfg->cluster_stream && cfg->cluster_users &&
                   cfg->registration && cfg->totp_issuer
               ? 0
               : -1;
}

/* BROKER_JWT_SECRET=x names the flag jwt_secret. Flags given on the command line win, so their
 * variables are not even read; an empty variable counts as unset. */
static int apply_environment(struct config *cfg, char **envp, const bool *given, char *err,
                             size_t errlen)
{
    if (!envp)
        return 0;
    for (char **e = envp; *e; e++) {
        if (strncmp(*e, "BROKER_", 7) != 0)
            continue;
        const char *name = *e + 7;
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        char lower[64];
        size_t len = (size_t)(eq - name);
        if (len == 0 || len >= sizeof lower)
            continue;
        for (size_t i = 0; i < len; i++)
            lower[i] = (char)tolower((unsigned char)name[i]);
        const struct flag *f = flag_find(lower, len);
        if (!f || given[f - flags] || eq[1] == '\0')
            continue; /* other BROKER_* variables may belong to tooling, not to us */
        char source[80];
        snprintf(source, sizeof source, "environment BROKER_%.*s:", (int)len, name);
        if (flag_apply(cfg, f, eq + 1, source, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int apply_arguments(struct config *cfg, int argc, char **argv, enum config_result *special,
                           bool *given, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *special = CONFIG_HELP;
            return 0;
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-v") == 0) {
            *special = CONFIG_VERSION;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            char shown[64];
            set_err(err, errlen, "unexpected argument '%s' (flags look like --name=value)",
                    printable(arg, shown, sizeof shown));
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '='); /* first '=' only: secrets may contain '=' */
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = flag_find(name, len);
        if (!f) {
            /* Only the name: a mistyped --jwt_secre=... must not print the secret. */
            char shown[64], bare[64];
            snprintf(bare, sizeof bare, "%.*s", (int)(len < sizeof bare ? len : sizeof bare - 1), name);
            set_err(err, errlen, "unknown flag --%s (see --help)", printable(bare, shown, sizeof shown));
            return -1;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (f->kind == FLAG_BOOL) {
            /* "--secure" alone means true; "--secure false" is the two-word form. */
            if (i + 1 < argc && (strcmp(argv[i + 1], "true") == 0 || strcmp(argv[i + 1], "false") == 0 ||
                                 strcmp(argv[i + 1], "1") == 0 || strcmp(argv[i + 1], "0") == 0))
                value = argv[++i];
            else
                value = "true";
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            set_err(err, errlen, "flag --%s needs a value", f->name);
            return -1;
        }
        if (flag_apply(cfg, f, value, "flag", err, errlen) != 0)
            return -1;
        given[f - flags] = true;
    }
    return 0;
}

/* JetStream stream and bucket names: no spaces, dots, wildcards or path separators. */
static bool jetstream_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

static int validate_cluster(struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->cluster) {
        cfg->cluster_replicas = 0;
        return 0;
    }
    if (!cfg->jwt_secret) {
        set_err(err, errlen, "--cluster needs --jwt_secret: every node must sign and check tokens with the same secret");
        return -1;
    }
    if (!jetstream_name(cfg->cluster_stream) || !jetstream_name(cfg->cluster_users)) {
        set_err(err, errlen, "--cluster_stream and --cluster_users must be 1 to 64 letters, digits, '_' or '-'");
        return -1;
    }
    for (const char *url = cfg->cluster; url && *url;) {
        while (*url == ' ' || *url == ',')
            url++;
        if (!*url)
            break;
        if (strncmp(url, "nats://", 7) != 0 && strncmp(url, "tls://", 6) != 0) {
            set_err(err, errlen, "--cluster takes nats:// or tls:// URLs, comma-separated");
            return -1;
        }
        url = strchr(url, ',');
    }
    if (cfg->cluster_replicas == 0) /* SPEC §4: 3 when more than one URL is given, else 1 */
        cfg->cluster_replicas = strchr(cfg->cluster, ',') ? 3 : 1;
    return 0;
}

static int validate(struct config *cfg, char *err, size_t errlen)
{
    if (cfg->secure && (!cfg->key_path || !cfg->cert_path)) {
        set_err(err, errlen, "--secure=true needs --key_path and --cert_path");
        return -1;
    }
    if (cfg->jwt_secret && cfg->jwt_secret[0] == '\0') {
        set_err(err, errlen, "--jwt_secret must not be empty");
        return -1;
    }
    if (cfg->admin_token && cfg->admin_token[0] == '\0') {
        set_err(err, errlen, "--admin_token must not be empty (leave it out to turn the admin API off)");
        return -1;
    }
    if (strcmp(cfg->registration, "open") != 0 && strcmp(cfg->registration, "admin") != 0) {
        set_err(err, errlen, "--registration is open or admin");
        return -1;
    }
    cfg->registration_admin = strcmp(cfg->registration, "admin") == 0;
    if (cfg->rules && cfg->rules[0] == '\0') {
        set_err(err, errlen, "--rules must name a file");
        return -1;
    }
    if (cfg->totp_issuer[0] == '\0' || strlen(cfg->totp_issuer) > 64) {
        set_err(err, errlen, "--totp_issuer must be 1 to 64 bytes");
        return -1;
    }
    return validate_cluster(cfg, err, errlen);
}

enum config_result config_parse(struct config *cfg, int argc, char **argv, char **envp, char *err,
                                size_t errlen)
{
    enum config_result special = CONFIG_OK;
    if (set_defaults(cfg) != 0) {
        set_err(err, errlen, "out of memory");
        config_free(cfg);
        return CONFIG_ERROR;
    }
    /* --help and --version win even over a bad value elsewhere on the line or in the
     * environment. */
    bool given[NFLAGS] = { false };
    if (apply_arguments(cfg, argc, argv, &special, given, err, errlen) != 0 ||
        (special == CONFIG_OK && apply_environment(cfg, envp, given, err, errlen) != 0)) {
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                config_free(cfg);
                return CONFIG_HELP;
            }
            if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
                config_free(cfg);
                return CONFIG_VERSION;
            }
        }
        config_free(cfg);
        return CONFIG_ERROR;
    }
    if (special != CONFIG_OK) {
        config_free(cfg);
        return special;
    }
    if (validate(cfg, err, errlen) != 0) {
        config_free(cfg);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

void config_free(struct config *cfg)
{
    free(cfg->db);
    free(cfg->host);
    free(cfg->origin);
    if (cfg->jwt_secret) /* wipe: it signs every token */
        memset(cfg->jwt_secret, 0, strlen(cfg->jwt_secret));
    free(cfg->jwt_secret);
    free(cfg->key_path);
    free(cfg->cert_path);
    free(cfg->cluster);
    free(cfg->cluster_stream);
    free(cfg->cluster_users);
    free(cfg->cluster_creds);
    if (cfg->admin_token) /* wipe: it opens the admin API */
        memset(cfg->admin_token, 0, strlen(cfg->admin_token));
    free(cfg->admin_token);
    free(cfg->registration);
    free(cfg->rules);
    free(cfg->totp_issuer);
    memset(cfg, 0, sizeof *cfg);
}

const char *config_usage(void)
{
    static char text[8192];
    if (text[0])
        return text;
    size_t n = (size_t)snprintf(text, sizeof text,
        "usage: broker [--flag=value | --flag value]...\n"
        "Every flag can also be set as BROKER_<FLAG> in the environment; a flag beats the environment.\n\n");
    for (size_t i = 0; i < NFLAGS && n < sizeof text; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "  --%-16s %s\n", flags[i].name, flags[i].help);
    if (n < sizeof text)
        snprintf(text + n, sizeof text - n, "  --%-16s %s\n  --%-16s %s\n", "help", "show this help",
                 "version", "show the version");
    return text;
}
