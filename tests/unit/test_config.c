/* Unit tests of src/config.c (flags, BROKER_* environment, defaults, validation) and of the pure
 * parts of src/log.c (level parsing and filtering, line shape). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* argv/envp literals: (char *[]){ ..., NULL } so the count is computed, never hand-written. */
#define ARGS(...) ((char *[]){ "broker", __VA_ARGS__, NULL })
#define NOARGS ((char *[]){ "broker", NULL })
#define ENV(...) ((char *[]){ __VA_ARGS__, NULL })

static int count_args(char **argv)
{
    int n = 0;
    while (argv[n])
        n++;
    return n;
}

static enum config_result parse(struct config *cfg, char **argv, char **envp, char *err, size_t errlen)
{
    memset(err, 0, errlen);
    return config_parse(cfg, count_args(argv), argv, envp, err, errlen);
}

/* An error must come with a reason a human can read on one line, and leave nothing allocated. */
static void assert_error(char **argv, char **envp, const char *must_mention)
{
    struct config cfg;
    char err[256];
    enum config_result r = parse(&cfg, argv, envp, err, sizeof err);
    if (r != CONFIG_ERROR)
        print_error("expected CONFIG_ERROR for argv[1]='%s', got %d\n", argv[1] ? argv[1] : "(none)",
                    (int)r);
    assert_int_equal(r, CONFIG_ERROR);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
    if (must_mention)
        assert_non_null(strstr(err, must_mention));
    /* cfg was freed by config_parse; freeing again must be harmless. */
    assert_null(cfg.db);
    assert_null(cfg.host);
    assert_null(cfg.origin);
    assert_null(cfg.jwt_secret);
    config_free(&cfg);
}

static void parse_ok(struct config *cfg, char **argv, char **envp)
{
    char err[256];
    enum config_result r = parse(cfg, argv, envp, err, sizeof err);
    if (r != CONFIG_OK)
        print_error("unexpected result %d: %s\n", (int)r, err);
    assert_int_equal(r, CONFIG_OK);
}

/* ---- defaults ---- */

static void test_defaults_without_flags_or_environment(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, NOARGS, ENV("PATH=/usr/bin", "HOME=/root"));
    assert_string_equal(cfg.db, "./broker-data");
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 8080);
    assert_false(cfg.secure);
    assert_string_equal(cfg.origin, "*");
    assert_int_equal(cfg.jwt_expiry, 86400);
    assert_null(cfg.jwt_secret);
    assert_null(cfg.key_path);
    assert_null(cfg.cert_path);
    assert_int_equal(cfg.threads, 0);
    assert_int_equal(cfg.workers, 0);
    assert_int_equal(cfg.max_body, 1048576);
    assert_int_equal(cfg.max_header, 16384);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.heartbeat, 15);
    assert_int_equal(cfg.max_backlog, 1048576);
    assert_int_equal(cfg.ticket_ttl, 3600);
    assert_int_equal(cfg.slow_consumer, SLOW_CONSUMER_DISCONNECT);
    assert_int_equal(cfg.max_connections, 0);
    assert_int_equal(cfg.request_timeout, 30);
    assert_int_equal(cfg.login_max_failures, 10);
    assert_int_equal(cfg.login_address_max_failures, 300);
    assert_int_equal(cfg.login_window, 60);
    config_free(&cfg);
}

static void test_defaults_with_null_environment(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, NOARGS, NULL);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.db, "./broker-data");
    config_free(&cfg);
}

/* ---- the two flag forms ---- */

static void test_equals_form_sets_every_kind_of_flag(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg,
             ARGS("--db=/var/lib/broker", "--host=127.0.0.1", "--port=9000", "--origin=https://a.example",
                  "--jwt_expiry=60", "--jwt_secret=s3cret", "--threads=4", "--workers=2",
                  "--max_body=2048", "--max_header=4096", "--log_level=debug", "--heartbeat=0",
                  "--max_backlog=65536", "--ticket_ttl=120", "--slow_consumer=conflate",
                  "--max_connections=1000", "--request_timeout=5", "--login_max_failures=3",
                  "--login_address_max_failures=50", "--login_window=10"),
             NULL);
    assert_string_equal(cfg.db, "/var/lib/broker");
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 9000);
    assert_string_equal(cfg.origin, "https://a.example");
    assert_int_equal(cfg.jwt_expiry, 60);
    assert_string_equal(cfg.jwt_secret, "s3cret");
    assert_int_equal(cfg.threads, 4);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.max_body, 2048);
    assert_int_equal(cfg.max_header, 4096);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.heartbeat, 0);
    assert_int_equal(cfg.max_backlog, 65536);
    assert_int_equal(cfg.ticket_ttl, 120);
    assert_int_equal(cfg.slow_consumer, SLOW_CONSUMER_CONFLATE);
    assert_int_equal(cfg.max_connections, 1000);
    assert_int_equal(cfg.request_timeout, 5);
    assert_int_equal(cfg.login_max_failures, 3);
    assert_int_equal(cfg.login_address_max_failures, 50);
    assert_int_equal(cfg.login_window, 10);
    config_free(&cfg);
}

static void test_space_form_sets_values(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg,
             ARGS("--db", "/tmp/b", "--port", "9001", "--origin", "https://x.example,https://y.example",
                  "--jwt_expiry", "7", "--log_level", "error"),
             NULL);
    assert_string_equal(cfg.db, "/tmp/b");
    assert_int_equal(cfg.port, 9001);
    assert_string_equal(cfg.origin, "https://x.example,https://y.example");
    assert_int_equal(cfg.jwt_expiry, 7);
    assert_int_equal(cfg.log_level, LOG_ERROR);
    config_free(&cfg);
}

static void test_mixed_forms_on_one_line(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--port=9002", "--db", "d", "--host=::1", "--jwt_secret", "k"), NULL);
    assert_int_equal(cfg.port, 9002);
    assert_string_equal(cfg.db, "d");
    assert_string_equal(cfg.host, "::1");
    assert_string_equal(cfg.jwt_secret, "k");
    config_free(&cfg);
}

static void test_value_is_split_at_first_equals_only(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--jwt_secret=a=b=="), NULL);
    assert_string_equal(cfg.jwt_secret, "a=b==");
    config_free(&cfg);

    parse_ok(&cfg, ARGS("--jwt_secret", "=x="), NULL);
    assert_string_equal(cfg.jwt_secret, "=x=");
    config_free(&cfg);

    parse_ok(&cfg, NOARGS, ENV("BROKER_JWT_SECRET=c2VjcmV0==="));
    assert_string_equal(cfg.jwt_secret, "c2VjcmV0===");
    config_free(&cfg);
}

static void test_space_form_never_swallows_the_next_flag(void **state)
{
    (void)state;
    /* "--port --jwt_secret=s" is a missing port, not a port named after the secret (which the
     * error would then quote). A value that starts with dashes needs the = form. */
    assert_error(ARGS("--port", "--jwt_secret=hunter2-secret"), NULL, "--port needs a value");
    char err[256];
    struct config cfg;
    assert_int_equal(parse(&cfg, ARGS("--port", "--jwt_secret=hunter2-secret"), NULL, err, sizeof err),
                     CONFIG_ERROR);
    assert_null(strstr(err, "hunter2"));
    parse_ok(&cfg, ARGS("--jwt_secret=--not-a-flag"), NULL);
    assert_string_equal(cfg.jwt_secret, "--not-a-flag");
    config_free(&cfg);
}

static void test_repeated_flag_last_one_wins_without_leaking(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--db=first", "--db=second", "--port=1", "--port", "2", "--jwt_secret=a",
                        "--jwt_secret=b"),
             NULL);
    assert_string_equal(cfg.db, "second");
    assert_int_equal(cfg.port, 2);
    assert_string_equal(cfg.jwt_secret, "b");
    config_free(&cfg);
}

/* ---- environment ---- */

static void test_environment_sets_flags(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, NOARGS,
             ENV("PATH=/bin", "BROKER_PORT=9100", "BROKER_DB=/env/db", "BROKER_JWT_SECRET=env-secret",
                 "BROKER_JWT_EXPIRY=120", "BROKER_LOG_LEVEL=warn", "BROKER_SLOW_CONSUMER=conflate",
                 "BROKER_MAX_BODY=4096"));
    assert_int_equal(cfg.port, 9100);
    assert_string_equal(cfg.db, "/env/db");
    assert_string_equal(cfg.jwt_secret, "env-secret");
    assert_int_equal(cfg.jwt_expiry, 120);
    assert_int_equal(cfg.log_level, LOG_WARN);
    assert_int_equal(cfg.slow_consumer, SLOW_CONSUMER_CONFLATE);
    assert_int_equal(cfg.max_body, 4096);
    config_free(&cfg);
}

static void test_flag_beats_environment(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--port=9300", "--db", "/flag/db", "--jwt_secret=flag-secret"),
             ENV("BROKER_PORT=9200", "BROKER_DB=/env/db", "BROKER_JWT_SECRET=env-secret"));
    assert_int_equal(cfg.port, 9300);
    assert_string_equal(cfg.db, "/flag/db");
    assert_string_equal(cfg.jwt_secret, "flag-secret");
    config_free(&cfg);
}

static void test_environment_flag_overridden_only_where_given(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--port=9400"), ENV("BROKER_PORT=9200", "BROKER_HOST=127.0.0.1"));
    assert_int_equal(cfg.port, 9400);
    assert_string_equal(cfg.host, "127.0.0.1");
    config_free(&cfg);
}

static void test_environment_ignores_unrelated_variables(void **state)
{
    (void)state;
    /* The end-to-end runner exports BROKER_BIN and BROKER_SANITIZED; they are not flags. */
    struct config cfg;
    parse_ok(&cfg, NOARGS,
             ENV("BROKER_BIN=/work/build/broker", "BROKER_SANITIZED=1", "BROKER_=x", "BROKER_PORT",
                 "BROKER_THIS_NAME_IS_MUCH_LONGER_THAN_ANY_FLAG_NAME_COULD_EVER_BE_0123456789=1",
                 "XBROKER_PORT=1", "BROKERXPORT=1", "broker_port=1", "PORT=1"));
    assert_int_equal(cfg.port, 8080);
    config_free(&cfg);
}

static void test_environment_invalid_value_is_error_naming_variable(void **state)
{
    (void)state;
    assert_error(NOARGS, ENV("BROKER_PORT=abc"), "BROKER_PORT");
    assert_error(NOARGS, ENV("BROKER_SECURE=maybe"), "BROKER_SECURE");
    assert_error(NOARGS, ENV("BROKER_JWT_EXPIRY=-1"), "BROKER_JWT_EXPIRY");
    assert_error(NOARGS, ENV("BROKER_LOG_LEVEL=loud"), "BROKER_LOG_LEVEL");
}

/* ---- errors ---- */

/* SPEC §4: cluster flags, their defaults, and the refusals. */
static void test_cluster_flags(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, NOARGS, NULL);
    assert_null(cfg.cluster);
    assert_int_equal(cfg.cluster_replicas, 0);
    assert_string_equal(cfg.cluster_stream, "BROKER_EVENTS");
    assert_string_equal(cfg.cluster_users, "BROKER_USERS");
    config_free(&cfg);

    parse_ok(&cfg, ARGS("--cluster=nats://127.0.0.1:4222", "--jwt_secret=s"), NULL);
    assert_string_equal(cfg.cluster, "nats://127.0.0.1:4222");
    assert_int_equal(cfg.cluster_replicas, 1); /* one URL: one replica */
    config_free(&cfg);

    parse_ok(&cfg, ARGS("--cluster", "nats://a:1,tls://u:p@b:2", "--jwt_secret=s", "--cluster_stream=EV-2",
                        "--cluster_users=U_2", "--cluster_creds=/x.creds"), NULL);
    assert_int_equal(cfg.cluster_replicas, 3); /* several URLs: three */
    assert_string_equal(cfg.cluster_stream, "EV-2");
    assert_string_equal(cfg.cluster_users, "U_2");
    assert_string_equal(cfg.cluster_creds, "/x.creds");
    config_free(&cfg);

    parse_ok(&cfg, ARGS("--cluster_replicas=5"), ENV("BROKER_CLUSTER=nats://a:1,nats://b:2", "BROKER_JWT_SECRET=s"));
    assert_int_equal(cfg.cluster_replicas, 5);
    config_free(&cfg);

    assert_error(ARGS("--cluster=nats://127.0.0.1:4222"), NULL, "--jwt_secret");
    assert_error(ARGS("--cluster=http://127.0.0.1:4222", "--jwt_secret=s"), NULL, "nats://");
    assert_error(ARGS("--cluster=nats://a:1", "--jwt_secret=s", "--cluster_stream=a.b"), NULL, "--cluster_stream");
    assert_error(ARGS("--cluster=nats://a:1", "--jwt_secret=s", "--cluster_users=a b"), NULL, "--cluster_users");
    assert_error(ARGS("--cluster=nats://a:1", "--jwt_secret=s", "--cluster_replicas=6"), NULL, "cluster_replicas");
    assert_error(ARGS("--cluster=nats://a:1", "--jwt_secret=s", "--cluster_replicas=0"), NULL, "cluster_replicas");
}

static void test_identity_flags(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, NOARGS, NULL); /* SPEC §5: every default keeps the seed's behaviour */
    assert_null(cfg.admin_token);
    assert_null(cfg.rules);
    assert_string_equal(cfg.registration, "open");
    assert_false(cfg.registration_admin);
    assert_string_equal(cfg.totp_issuer, "broker");
    config_free(&cfg);

    parse_ok(&cfg, ARGS("--registration=admin", "--rules", "/etc/broker/rules.json", "--totp_issuer=My App"),
             ENV("BROKER_ADMIN_TOKEN=t0ken"));
    assert_true(cfg.registration_admin);
    assert_string_equal(cfg.admin_token, "t0ken");
    assert_string_equal(cfg.rules, "/etc/broker/rules.json");
    assert_string_equal(cfg.totp_issuer, "My App");
    config_free(&cfg);

    assert_error(ARGS("--registration=closed"), NULL, "--registration");
    assert_error(ARGS("--admin_token="), NULL, "--admin_token");
    assert_error(ARGS("--rules="), NULL, "--rules");
    assert_error(ARGS("--totp_issuer="), NULL, "--totp_issuer");
}

static void test_unknown_flag_is_error(void **state)
{
    (void)state;
    assert_error(ARGS("--nope=1"), NULL, "nope");
    assert_error(ARGS("--nope"), NULL, "nope");
    assert_error(ARGS("--port=8081", "--Port=8082"), NULL, "Port");
    assert_error(ARGS("--"), NULL, NULL);
    assert_error(ARGS("--=x"), NULL, NULL);
    /* A prefix of a flag name is not that flag. */
    assert_error(ARGS("--po=80"), NULL, "po");
    assert_error(ARGS("--portx=80"), NULL, "portx");
}

static void test_positional_argument_is_error(void **state)
{
    (void)state;
    assert_error(ARGS("8080"), NULL, "8080");
    assert_error(ARGS("-p", "8080"), NULL, NULL);
    assert_error(ARGS("-port=8080"), NULL, NULL);
}

static void test_missing_value_is_error(void **state)
{
    (void)state;
    assert_error(ARGS("--port"), NULL, "port");
    assert_error(ARGS("--db"), NULL, "db");
    assert_error(ARGS("--port=8081", "--jwt_secret"), NULL, "jwt_secret");
}

static void test_empty_value_is_error(void **state)
{
    (void)state;
    assert_error(ARGS("--db="), NULL, "db");
    assert_error(ARGS("--jwt_secret="), NULL, "jwt_secret");
    assert_error(ARGS("--port="), NULL, "port");
    assert_error(ARGS("--secure="), NULL, "secure");
}

static void test_port_rejects_out_of_range_and_junk(void **state)
{
    (void)state;
    const char *bad[] = { "0",   "65536", "abc", "8080x", " 80", "80 ", "-1",
                          "0x50", "1e3", "99999999999999999999", "\t80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char arg[64];
        snprintf(arg, sizeof arg, "--port=%s", bad[i]);
        assert_error(ARGS(arg), NULL, "port");
        /* and in the two-word form */
        assert_error(ARGS("--port", (char *)bad[i]), NULL, "port");
    }
}

static void test_port_accepts_range_ends(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--port=1"), NULL);
    assert_int_equal(cfg.port, 1);
    config_free(&cfg);
    parse_ok(&cfg, ARGS("--port=65535"), NULL);
    assert_int_equal(cfg.port, 65535);
    config_free(&cfg);
}

static void test_jwt_expiry_range(void **state)
{
    (void)state;
    assert_error(ARGS("--jwt_expiry=-1"), NULL, "jwt_expiry");
    assert_error(ARGS("--jwt_expiry=0"), NULL, "jwt_expiry");
    assert_error(ARGS("--jwt_expiry=315360001"), NULL, "jwt_expiry");
    assert_error(ARGS("--jwt_expiry=1.5"), NULL, "jwt_expiry");
    struct config cfg;
    parse_ok(&cfg, ARGS("--jwt_expiry=1"), NULL);
    assert_int_equal(cfg.jwt_expiry, 1);
    config_free(&cfg);
    parse_ok(&cfg, ARGS("--jwt_expiry=315360000"), NULL);
    assert_int_equal(cfg.jwt_expiry, 315360000L);
    config_free(&cfg);
}

static void test_size_flags_range(void **state)
{
    (void)state;
    assert_error(ARGS("--max_body=63"), NULL, "max_body");
    assert_error(ARGS("--max_body=1073741825"), NULL, "max_body");
    assert_error(ARGS("--max_backlog=4095"), NULL, "max_backlog");
    assert_error(ARGS("--max_header=1023"), NULL, "max_header");
    struct config cfg;
    parse_ok(&cfg, ARGS("--max_body=64", "--max_backlog=1073741824"), NULL);
    assert_int_equal(cfg.max_body, 64);
    assert_int_equal(cfg.max_backlog, (size_t)1 << 30);
    config_free(&cfg);
}

static void test_other_int_flags_range(void **state)
{
    (void)state;
    assert_error(ARGS("--threads=-1"), NULL, "threads");
    assert_error(ARGS("--threads=257"), NULL, "threads");
    assert_error(ARGS("--workers=257"), NULL, "workers");
    assert_error(ARGS("--heartbeat=-1"), NULL, "heartbeat");
    assert_error(ARGS("--heartbeat=3601"), NULL, "heartbeat");
    assert_error(ARGS("--ticket_ttl=0"), NULL, "ticket_ttl");
    assert_error(ARGS("--request_timeout=0"), NULL, "request_timeout");
    assert_error(ARGS("--max_connections=-5"), NULL, "max_connections");
    assert_error(ARGS("--login_max_failures=0"), NULL, "login_max_failures");
    assert_error(ARGS("--login_address_max_failures=0"), NULL, "login_address_max_failures");
    assert_error(ARGS("--login_window=0"), NULL, "login_window");
    assert_error(ARGS("--login_window=86401"), NULL, "login_window");
}

static void test_enum_flags_reject_unknown_words(void **state)
{
    (void)state;
    assert_error(ARGS("--log_level=verbose"), NULL, "log_level");
    assert_error(ARGS("--log_level=INFO"), NULL, "log_level");
    assert_error(ARGS("--slow_consumer=drop"), NULL, "slow_consumer");
}

/* ---- --secure ---- */

static void test_secure_rejects_non_boolean(void **state)
{
    (void)state;
    assert_error(ARGS("--secure=maybe"), NULL, "secure");
    assert_error(ARGS("--secure=yes"), NULL, "secure");
    assert_error(ARGS("--secure=TRUE"), NULL, "secure");
}

static void test_secure_alone_means_true(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--secure", "--key_path=k.pem", "--cert_path=c.pem"), NULL);
    assert_true(cfg.secure);
    assert_string_equal(cfg.key_path, "k.pem");
    assert_string_equal(cfg.cert_path, "c.pem");
    config_free(&cfg);
    /* last on the line too */
    parse_ok(&cfg, ARGS("--key_path=k.pem", "--cert_path=c.pem", "--secure"), NULL);
    assert_true(cfg.secure);
    config_free(&cfg);
}

static void test_secure_two_word_form(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--secure", "false", "--port=8443"), NULL);
    assert_false(cfg.secure);
    assert_int_equal(cfg.port, 8443);
    config_free(&cfg);
    parse_ok(&cfg, ARGS("--secure", "true", "--key_path", "k", "--cert_path", "c"), NULL);
    assert_true(cfg.secure);
    config_free(&cfg);
    /* and the equals form accepts 1/0 */
    parse_ok(&cfg, ARGS("--secure=0"), NULL);
    assert_false(cfg.secure);
    config_free(&cfg);
    /* an environment "true" can be switched off by a flag */
    parse_ok(&cfg, ARGS("--secure=false"), ENV("BROKER_SECURE=true"));
    assert_false(cfg.secure);
    config_free(&cfg);
}

static void test_secure_without_key_or_cert_is_error(void **state)
{
    (void)state;
    assert_error(ARGS("--secure=true"), NULL, "key_path");
    assert_error(ARGS("--secure"), NULL, "key_path");
    assert_error(ARGS("--secure=true", "--key_path=k.pem"), NULL, "cert_path");
    assert_error(ARGS("--secure=true", "--cert_path=c.pem"), NULL, "key_path");
    assert_error(NOARGS, ENV("BROKER_SECURE=true"), "key_path");
    /* key and cert without --secure are fine (unused) */
    struct config cfg;
    parse_ok(&cfg, ARGS("--key_path=k.pem", "--cert_path=c.pem"), NULL);
    assert_false(cfg.secure);
    config_free(&cfg);
}

/* ---- --help / --version ---- */

static void expect_special(char **argv, char **envp, enum config_result want)
{
    struct config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, argv, envp, err, sizeof err), want);
    /* nothing left allocated */
    assert_null(cfg.db);
    assert_null(cfg.host);
    assert_null(cfg.origin);
    config_free(&cfg);
}

static void test_help_and_version(void **state)
{
    (void)state;
    expect_special(ARGS("--help"), NULL, CONFIG_HELP);
    expect_special(ARGS("-h"), NULL, CONFIG_HELP);
    expect_special(ARGS("--version"), NULL, CONFIG_VERSION);
    expect_special(ARGS("-v"), NULL, CONFIG_VERSION);
    expect_special(ARGS("--port=9000", "--jwt_secret=x", "--help"), NULL, CONFIG_HELP);
}

static void test_help_and_version_win_over_bad_arguments(void **state)
{
    (void)state;
    expect_special(ARGS("--port=abc", "--help"), NULL, CONFIG_HELP);
    expect_special(ARGS("--help", "--port=abc"), NULL, CONFIG_HELP);
    expect_special(ARGS("--nope", "--version"), NULL, CONFIG_VERSION);
    expect_special(ARGS("--version", "--nope"), NULL, CONFIG_VERSION);
    expect_special(ARGS("stray", "--help"), NULL, CONFIG_HELP);
    expect_special(ARGS("--help"), ENV("BROKER_PORT=abc"), CONFIG_HELP);
    expect_special(ARGS("--version"), ENV("BROKER_SECURE=maybe"), CONFIG_VERSION);
    /* --help also wins over the cross-flag validation */
    expect_special(ARGS("--secure=true", "--help"), NULL, CONFIG_HELP);
}

static void test_usage_lists_every_flag(void **state)
{
    (void)state;
    const char *u = config_usage();
    assert_non_null(u);
    const char *names[] = { "--db ",          "--host ",          "--port ",        "--secure ",
                            "--origin ",      "--jwt_expiry ",    "--jwt_secret ",  "--key_path ",
                            "--cert_path ",   "--threads ",       "--workers ",     "--max_body ",
                            "--max_header ",  "--log_level ",     "--heartbeat ",   "--max_backlog ",
                            "--ticket_ttl ",  "--slow_consumer ", "--max_connections ",
                            "--request_timeout ", "--login_max_failures ", "--login_address_max_failures ",
                            "--login_window ", "--help ", "--version " };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strstr(u, names[i]))
            print_error("usage lacks %s\n", names[i]);
        assert_non_null(strstr(u, names[i]));
    }
    assert_non_null(strstr(u, "BROKER_"));
    assert_int_equal(u[strlen(u) - 1], '\n');
    /* stable across calls */
    assert_ptr_equal(config_usage(), u);
}

static void test_config_free_twice_is_harmless(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, ARGS("--jwt_secret=wipe-me", "--key_path=k", "--cert_path=c"), NULL);
    config_free(&cfg);
    assert_null(cfg.db);
    assert_null(cfg.jwt_secret);
    assert_null(cfg.key_path);
    assert_null(cfg.cert_path);
    config_free(&cfg);
}

static void test_error_with_null_error_buffer_does_not_crash(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(config_parse(&cfg, 2, ARGS("--port=abc"), NULL, NULL, 0), CONFIG_ERROR);
    config_free(&cfg);
}

static void test_error_reason_is_truncated_to_buffer(void **state)
{
    (void)state;
    struct config cfg;
    char err[16];
    memset(err, 'X', sizeof err);
    assert_int_equal(config_parse(&cfg, 2, ARGS("--port=abcdefghijklmnopqrstuvwxyz"), NULL, err, 8),
                     CONFIG_ERROR);
    assert_int_equal(strlen(err), 7);
    assert_int_equal(err[8], 'X'); /* nothing past errlen */
    config_free(&cfg);
}

/* ---- log ---- */

static void test_log_level_parse(void **state)
{
    (void)state;
    enum log_level l = LOG_DEBUG;
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("info", &l), 0);
    assert_int_equal(l, LOG_INFO);
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    const char *bad[] = { "", "ERROR", "Info", "warning", "trace", "debug ", " info", "inf" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = LOG_WARN;
        assert_int_equal(log_level_parse(bad[i], &l), -1);
        assert_int_equal(l, LOG_WARN); /* untouched on failure */
    }
}

static void test_log_enabled_follows_level(void **state)
{
    (void)state;
    log_set_level(LOG_WARN);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_WARN));
    assert_false(log_enabled(LOG_INFO));
    assert_false(log_enabled(LOG_DEBUG));
    log_set_level(LOG_DEBUG);
    assert_true(log_enabled(LOG_DEBUG));
    log_set_level(LOG_ERROR);
    assert_true(log_enabled(LOG_ERROR));
    assert_false(log_enabled(LOG_WARN));
    log_set_level(LOG_INFO);
}

/* Runs fn with stderr redirected to a temporary file and returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/broker-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    fn();
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *buf = calloc(1, (size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    close(fd);
    return buf;
}

static void write_two_lines(void)
{
    log_set_level(LOG_INFO);
    log_info("listening on %s:%d", "0.0.0.0", 8080);
    log_debug("hidden %d", 1);
    log_warn("weak secret");
}

static void test_log_write_one_line_per_call_filtered_by_level(void **state)
{
    (void)state;
    char *out = capture_stderr(write_two_lines);
    /* two lines, each ending in \n; the debug line is filtered out */
    char *nl1 = strchr(out, '\n');
    assert_non_null(nl1);
    char *nl2 = strchr(nl1 + 1, '\n');
    assert_non_null(nl2);
    assert_int_equal(nl2[1], '\0');
    assert_null(strstr(out, "hidden"));
    /* 2024-01-02T03:04:05.678Z info  listening on 0.0.0.0:8080 */
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    assert_non_null(strstr(out, " info  listening on 0.0.0.0:8080\n"));
    assert_non_null(strstr(nl1 + 1, " warn  weak secret\n"));
    free(out);
}

static void write_huge_line(void)
{
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_error("%s", big);
}

static void test_log_write_truncates_long_line_and_still_ends_it(void **state)
{
    (void)state;
    char *out = capture_stderr(write_huge_line);
    size_t n = strlen(out);
    assert_true(n <= 2048);
    assert_true(n > 1000);
    assert_int_equal(out[n - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_flags_or_environment),
        cmocka_unit_test(test_defaults_with_null_environment),
        cmocka_unit_test(test_equals_form_sets_every_kind_of_flag),
        cmocka_unit_test(test_space_form_sets_values),
        cmocka_unit_test(test_mixed_forms_on_one_line),
        cmocka_unit_test(test_value_is_split_at_first_equals_only),
        cmocka_unit_test(test_space_form_never_swallows_the_next_flag),
        cmocka_unit_test(test_repeated_flag_last_one_wins_without_leaking),
        cmocka_unit_test(test_environment_sets_flags),
        cmocka_unit_test(test_flag_beats_environment),
        cmocka_unit_test(test_environment_flag_overridden_only_where_given),
        cmocka_unit_test(test_environment_ignores_unrelated_variables),
        cmocka_unit_test(test_environment_invalid_value_is_error_naming_variable),
        cmocka_unit_test(test_cluster_flags),
        cmocka_unit_test(test_identity_flags),
        cmocka_unit_test(test_unknown_flag_is_error),
        cmocka_unit_test(test_positional_argument_is_error),
        cmocka_unit_test(test_missing_value_is_error),
        cmocka_unit_test(test_empty_value_is_error),
        cmocka_unit_test(test_port_rejects_out_of_range_and_junk),
        cmocka_unit_test(test_port_accepts_range_ends),
        cmocka_unit_test(test_jwt_expiry_range),
        cmocka_unit_test(test_size_flags_range),
        cmocka_unit_test(test_other_int_flags_range),
        cmocka_unit_test(test_enum_flags_reject_unknown_words),
        cmocka_unit_test(test_secure_rejects_non_boolean),
        cmocka_unit_test(test_secure_alone_means_true),
        cmocka_unit_test(test_secure_two_word_form),
        cmocka_unit_test(test_secure_without_key_or_cert_is_error),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_help_and_version_win_over_bad_arguments),
        cmocka_unit_test(test_usage_lists_every_flag),
        cmocka_unit_test(test_config_free_twice_is_harmless),
        cmocka_unit_test(test_error_with_null_error_buffer_does_not_crash),
        cmocka_unit_test(test_error_reason_is_truncated_to_buffer),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_enabled_follows_level),
        cmocka_unit_test(test_log_write_one_line_per_call_filtered_by_level),
        cmocka_unit_test(test_log_write_truncates_long_line_and_still_ends_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
