/* fuzz_config: config_parse (src/config.c) on an argv and an environment taken from the input.
 * The input is "<argv part>\0\0<environment part>"; each part is split on single NUL bytes into
 * strings (argv[0] = "broker" is added). config_free always runs.
 * Invariants: the result is one of the four codes; parsing is deterministic; CONFIG_ERROR leaves a
 * non-empty, single-line, printable reason and a cleared struct; CONFIG_OK leaves every string
 * set and every number in its documented range; --help/--version come back only when asked for;
 * the reason never quotes a JWT secret given as --jwt_secret=<secret> (its first 16 bytes, for a
 * secret that starts with 16 base64 characters, is not a word of the help text and that no other
 * argument or variable holds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define MAX_STRINGS 64

static void fail(const char *what, char **argv, int argc, char **envp, const char *err)
{
    fprintf(stderr, "fuzz_config: %s\nerr: %s\n", what, err);
    for (int i = 0; i < argc; i++)
        fprintf(stderr, "argv[%d] = \"%s\"\n", i, argv[i]);
    for (int i = 0; envp[i]; i++)
        fprintf(stderr, "envp[%d] = \"%s\"\n", i, envp[i]);
    abort();
}

/* Splits [p, end) on NUL into list (NULL-terminated); returns the count. The strings point into
 * the copy, which holds a NUL after the last one. */
static int split(char *p, char *end, char **list, int max)
{
    int n = 0;
    while (p < end && n < max) {
        list[n++] = p;
        p += strlen(p) + 1;
    }
    list[n] = NULL;
    return n;
}

static int asked(char **argv, int argc, const char *a, const char *b)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], a) == 0 || strcmp(argv[i], b) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *copy = malloc(size + 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *sep = NULL;
    for (size_t i = 0; i + 1 < size; i++)
        if (copy[i] == '\0' && copy[i + 1] == '\0') {
            sep = copy + i;
            break;
        }
    char *argv[MAX_STRINGS + 2], *envp[MAX_STRINGS + 1];
    argv[0] = "broker";
    int argc = 1 + split(copy, sep ? sep : copy + size, argv + 1, MAX_STRINGS);
    if (sep)
        split(sep + 2, copy + size, envp, MAX_STRINGS);
    else
        envp[0] = NULL;

    struct config cfg, cfg2;
    char err[512], err2[512];
    memset(err, 0, sizeof err);
    memset(err2, 0, sizeof err2);
    enum config_result rc = config_parse(&cfg, argc, argv, envp, err, sizeof err);
    enum config_result rc2 = config_parse(&cfg2, argc, argv, envp, err2, sizeof err2);
    if (rc != rc2 || (rc == CONFIG_ERROR && strcmp(err, err2) != 0))
        fail("two parses of the same input disagree", argv, argc, envp, err);
    config_free(&cfg2);

    static const struct config zero;
    switch (rc) {
    case CONFIG_ERROR:
        if (err[0] == '\0')
            fail("CONFIG_ERROR without a reason", argv, argc, envp, err);
        for (const char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                fail("the reason is not one printable line", argv, argc, envp, err);
        if (memcmp(&cfg, &zero, sizeof cfg) != 0)
            fail("CONFIG_ERROR left the struct set", argv, argc, envp, err);
        for (int i = 1; i < argc; i++) {
            const char *secret = strncmp(argv[i], "--jwt_secret=", 13) == 0 ? argv[i] + 13 : NULL;
            /* Only secrets whose first 16 bytes look like one (base64 / hex characters), so
             * that they cannot coincide with the fixed text of a message. */
            if (!secret || strlen(secret) < 16 ||
                strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-") < 16)
                continue;
            char head[17];
            memcpy(head, secret, 16);
            head[16] = '\0';
            if (!strstr(err, head) || strstr(config_usage(), head))
                continue;
            /* Quoting another argument or variable that happens to hold the same bytes is fine. */
            int elsewhere = 0;
            for (int j = 1; j < argc && !elsewhere; j++)
                elsewhere = j != i && strstr(argv[j], head) != NULL;
            for (int j = 0; envp[j] && !elsewhere; j++)
                elsewhere = strstr(envp[j], head) != NULL;
            if (!elsewhere)
                fail("the reason quotes a JWT secret", argv, argc, envp, err);
        }
        break;
    case CONFIG_HELP:
        if (!asked(argv, argc, "--help", "-h"))
            fail("CONFIG_HELP without --help", argv, argc, envp, err);
        break;
    case CONFIG_VERSION:
        if (!asked(argv, argc, "--version", "-v"))
            fail("CONFIG_VERSION without --version", argv, argc, envp, err);
        break;
    case CONFIG_OK:
        if (!cfg.db || !*cfg.db || !cfg.host || !*cfg.host || !cfg.origin || !*cfg.origin)
            fail("CONFIG_OK with an empty or missing string", argv, argc, envp, err);
        if ((cfg.jwt_secret && !*cfg.jwt_secret) || (cfg.key_path && !*cfg.key_path) ||
            (cfg.cert_path && !*cfg.cert_path))
            fail("CONFIG_OK with an empty optional string", argv, argc, envp, err);
        if (cfg.secure && (!cfg.key_path || !cfg.cert_path))
            fail("CONFIG_OK with --secure but no key or certificate", argv, argc, envp, err);
        if (cfg.port < 1 || cfg.port > 65535 || cfg.jwt_expiry < 1 || cfg.jwt_expiry > 315360000 ||
            cfg.threads < 0 || cfg.threads > 256 || cfg.workers < 0 || cfg.workers > 256 ||
            cfg.max_body < 64 || cfg.max_body > (1u << 30) || cfg.max_header < 1024 ||
            cfg.max_header > (1u << 20) || (int)cfg.log_level < LOG_ERROR ||
            cfg.log_level > LOG_DEBUG || cfg.heartbeat < 0 || cfg.heartbeat > 3600 ||
            cfg.max_backlog < 4096 || cfg.max_backlog > (1u << 30) || cfg.ticket_ttl < 1 ||
            cfg.ticket_ttl > 315360000 || cfg.max_connections < 0 ||
            cfg.max_connections > 10000000 || cfg.request_timeout < 1 ||
            cfg.request_timeout > 3600 || cfg.login_max_failures < 1 ||
            cfg.login_address_max_failures < 1 || cfg.login_window < 1 ||
            cfg.login_window > 86400 ||
            (cfg.slow_consumer != SLOW_CONSUMER_DISCONNECT &&
             cfg.slow_consumer != SLOW_CONSUMER_CONFLATE))
            fail("CONFIG_OK with a value out of its range", argv, argc, envp, err);
        break;
    default:
        fail("config_parse returned an unknown code", argv, argc, envp, err);
    }
    config_free(&cfg);
    if (memcmp(&cfg, &zero, sizeof cfg) != 0)
        fail("config_free left the struct set", argv, argc, envp, err);
    free(copy);
    return 0;
}
