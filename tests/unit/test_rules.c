/* Unit tests of access/rules: the file format and its one-line "line N: ..." reasons, the role
 * table, first-match-wins, the pattern language (*, {user_id}, {username}, lazy captures, UTF-8),
 * the audiences and their per-caller test, NULL rules, the matcher's bound, and loading files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "access/rules.h"

static struct rules *load(const char *text)
{
    struct rules *r = NULL;
    char err[256] = "";
    int rc = rules_parse(text, strlen(text), &r, err, sizeof err);
    if (rc != 0)
        fail_msg("rules_parse failed (%d): %s\n%s", rc, err, text);
    assert_non_null(r);
    return r;
}

/* The reason a bad file gets, checked to be one line. */
static const char *reason(const char *text)
{
    static char err[256];
    struct rules *r = (void *)1;
    memset(err, 0, sizeof err);
    assert_int_equal(rules_parse(text, strlen(text), &r, err, sizeof err), -EINVAL);
    assert_null(r);
    if (strncmp(err, "line ", 5) != 0 || strchr(err, '\n'))
        fail_msg("not one \"line N: \" line: %s", err);
    return err;
}

#define assert_reason(text, expected) assert_string_equal(reason(text), expected)
#define assert_reason_starts(text, prefix)                                                              \
    do {                                                                                               \
        const char *got_ = reason(text);                                                               \
        if (strncmp(got_, prefix, strlen(prefix)) != 0)                                                \
            fail_msg("reason \"%s\" does not start with \"%s\"", got_, prefix);                        \
    } while (0)

static const struct rules_caller alice = { "id-alice", "alice", 0 };

static bool may(const struct rules *r, enum rules_action a, const char *name, const struct rules_caller *c)
{
    /* rules_allows must be exactly audience + admits. */
    struct rules_audience aud;
    rules_audience(r, a, name, strlen(name), &aud);
    bool allowed = rules_allows(r, a, name, strlen(name), c);
    assert_int_equal(allowed, rules_audience_admits(&aud, c));
    return allowed;
}

static void audience(const struct rules *r, enum rules_action a, const char *name, struct rules_audience *out)
{
    rules_audience(r, a, name, strlen(name), out);
}

static void assert_capture(const char *got, size_t len, const char *want)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
}

static void parses_a_good_file(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           "  {\"events\": \"user.{user_id}.*\", \"publish\": \"self\", \"subscribe\": \"self\"},\n"
                           "  {\"events\": \"admin.*\", \"publish\": [\"admin\"],\n"
                           "   \"subscribe\": [\"admin\", \"ops\"]},\n"
                           "  {\"subscribe\": \"any\", \"publish\": \"none\", \"events\": \"*\"}\n"
                           "]}\n");
    assert_int_equal(rules_count(r), 3);
    const char *roles[] = { "ops", "unknown", NULL, "admin" };
    uint64_t both = rules_role_mask(r, roles, 4);
    const char *only_ops[] = { "ops" };
    uint64_t ops = rules_role_mask(r, only_ops, 1);
    assert_int_not_equal(ops, 0);
    assert_int_equal(__builtin_popcountll(both), 2);
    assert_int_equal(both & ops, ops);
    const char *none[] = { "Admin", "adm" };
    assert_int_equal(rules_role_mask(r, none, 2), 0);
    assert_int_equal(rules_role_mask(r, NULL, 0), 0);

    struct rules_caller admin = { "id-root", "root", both & ~ops };
    struct rules_caller op = { "id-op", "op", ops };
    assert_true(may(r, RULES_PUBLISH, "user.id-alice.x", &alice));
    assert_false(may(r, RULES_PUBLISH, "user.id-root.x", &alice));
    assert_true(may(r, RULES_PUBLISH, "admin.reboot", &admin));
    assert_false(may(r, RULES_PUBLISH, "admin.reboot", &op));
    assert_true(may(r, RULES_SUBSCRIBE, "admin.reboot", &op));
    assert_false(may(r, RULES_SUBSCRIBE, "admin.reboot", &alice));
    assert_true(may(r, RULES_SUBSCRIBE, "news", &alice));
    assert_false(may(r, RULES_PUBLISH, "news", &admin));
    rules_free(r);

    /* Whitespace, an empty list and a lone rule are all fine. */
    r = load(" \n\t{ \"rules\" : [ ] } ");
    assert_int_equal(rules_count(r), 0);
    rules_free(r);
    r = load("{\"rules\":[{\"events\":\"a\",\"publish\":\"any\",\"subscribe\":\"none\"}]}");
    assert_int_equal(rules_count(r), 1);
    rules_free(r);
    rules_free(NULL);
}

static void empty_rules_forbid_everything(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": []}");
    struct rules_audience aud;
    audience(r, RULES_SUBSCRIBE, "anything", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    assert_false(may(r, RULES_PUBLISH, "anything", &alice));
    assert_false(may(r, RULES_SUBSCRIBE, "x", &alice));
    rules_free(r);
}

static void json_syntax_errors_give_jansson_line(void **state)
{
    (void)state;
    assert_reason_starts("{\n\"rules\": [\n  {\"events\": \"a\",, }\n]}", "line 3: ");
    assert_reason_starts("", "line 1: ");
    assert_reason_starts("{\"rules\": [\n\n\n", "line 4: ");
    assert_reason_starts("{\"rules\": []} trailing", "line 1: ");
    /* A key written twice is an error, not "the last one wins". */
    assert_reason_starts("{\"rules\": [],\n \"rules\": []}", "line 2: ");
    /* Invalid UTF-8 never gets as far as validation, and the reason stays printable ASCII. */
    const char *bad = reason("{\"rules\": [{\"events\": \"\xff\xfe\", \"publish\": \"any\", \"subscribe\": \"any\"}]}");
    for (const char *p = bad; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    /* A NUL in the text. */
    struct rules *r;
    char err[128];
    assert_int_equal(rules_parse("{\"rules\": []}\0", 14, &r, err, sizeof err), -EINVAL);
    assert_true(strncmp(err, "line 1: ", 8) == 0);
    /* err may be NULL or tiny. */
    assert_int_equal(rules_parse("[", 1, &r, NULL, 0), -EINVAL);
    char tiny[4];
    assert_int_equal(rules_parse("[", 1, &r, tiny, sizeof tiny), -EINVAL);
    assert_string_equal(tiny, "lin");
}

static void top_level_errors(void **state)
{
    (void)state;
    assert_reason("\n[1, 2]", "line 2: the file must be a JSON object {\"rules\": [...]}");
    assert_reason("{}", "line 1: \"rules\" is missing");
    assert_reason("{\n  \"rules\": {}\n}", "line 2: \"rules\" must be an array");
    assert_reason("{\"rules\": [],\n\n  \"rulez\": 1}", "line 3: unknown key \"rulez\" (the file has only \"rules\")");
    /* Escaped or control characters in a quoted key: found on the top line, shown as '?'. */
    assert_reason("{\"rules\": [], \"a\\nb\": 1}", "line 1: unknown key \"a?b\" (the file has only \"rules\")");
}

static const char *multi_line_file_with(const char *third_rule)
{
    static char text[1024];
    snprintf(text, sizeof text,
             "{\n"
             "  \"rules\": [\n"
             "    {\"events\": \"a\", \"publish\": \"any\", \"subscribe\": \"any\"},\n"
             "    {\n"
             "      \"events\": \"b\", \"publish\": \"any\", \"subscribe\": \"any\"\n"
             "    },\n"
             "    %s\n"
             "  ]\n"
             "}\n",
             third_rule);
    return text;
}

static void rule_errors_name_their_line_and_rule(void **state)
{
    (void)state;
    static const struct {
        const char *rule, *reason;
    } cases[] = {
        { "{\"events\": \"user.*\", \"publish\": \"self\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"self\" needs {user_id} or {username} in the pattern" },
        { "{\"events\": \"user.{userid}\", \"publish\": \"any\", \"subscribe\": \"self\"}",
          "line 7: rule 3: \"self\" needs {user_id} or {username} in the pattern" },
        { "17", "line 7: rule 3: must be an object {\"events\", \"publish\", \"subscribe\"}" },
        { "{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": \"any\", \"subscibe\": \"any\"}",
          "line 7: rule 3: unknown key \"subscibe\" (a rule has \"events\", \"publish\", \"subscribe\")" },
        { "{\"publish\": \"any\", \"subscribe\": \"any\"}", "line 7: rule 3: \"events\" is missing" },
        { "{\"events\": [\"a\"], \"publish\": \"any\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"events\" must be a string" },
        { "{\"events\": \"\", \"publish\": \"any\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"events\" must be 1 to 255 bytes of UTF-8 without control characters" },
        { "{\"events\": \"a\\tb\", \"publish\": \"any\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"events\" must be 1 to 255 bytes of UTF-8 without control characters" },
        { "{\"events\": \"a\\u0085b\", \"publish\": \"any\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"events\" must be 1 to 255 bytes of UTF-8 without control characters" },
        { "{\"events\": \"a\", \"subscribe\": \"any\"}", "line 7: rule 3: \"publish\" is missing" },
        { "{\"events\": \"a\", \"publish\": \"any\"}", "line 7: rule 3: \"subscribe\" is missing" },
        { "{\"events\": \"a\", \"publish\": \"all\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"publish\": \"all\" is not \"any\", \"none\", \"self\" or a list of roles" },
        { "{\"events\": \"a\", \"publish\": \"Any\", \"subscribe\": \"any\"}",
          "line 7: rule 3: \"publish\": \"Any\" is not \"any\", \"none\", \"self\" or a list of roles" },
        { "{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": null}",
          "line 7: rule 3: \"subscribe\" must be \"any\", \"none\", \"self\" or a list of roles" },
        { "{\"events\": \"a\", \"publish\": true, \"subscribe\": \"any\"}",
          "line 7: rule 3: \"publish\" must be \"any\", \"none\", \"self\" or a list of roles" },
        { "{\"events\": \"a\", \"publish\": [], \"subscribe\": \"any\"}",
          "line 7: rule 3: \"publish\" must not be an empty list (write \"none\")" },
        { "{\"events\": \"a\", \"publish\": [\"ok\", 3], \"subscribe\": \"any\"}",
          "line 7: rule 3: \"publish\": item 2 is not a role name" },
        { "{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": [\"ad min\"]}",
          "line 7: rule 3: \"subscribe\": role \"ad min\" must match [A-Za-z0-9_.-]{1,64}" },
        { "{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": [\"\"]}",
          "line 7: rule 3: \"subscribe\": role \"\" must match [A-Za-z0-9_.-]{1,64}" },
        { "{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": [\"r\\u00e9le\"]}",
          "line 7: rule 3: \"subscribe\": role \"r??le\" must match [A-Za-z0-9_.-]{1,64}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_reason(multi_line_file_with(cases[i].rule), cases[i].reason);

    /* The second rule starts on line 4 even though its fields are on line 5. */
    assert_reason("{\"rules\": [\n{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": \"any\"},\n\n"
                  "  {\n   \"events\": \"b\", \"publish\": \"self\", \"subscribe\": \"any\"}]}",
                  "line 4: rule 2: \"self\" needs {user_id} or {username} in the pattern");
    /* Strings holding brackets, commas and escaped quotes do not confuse the scanner. */
    assert_reason("{\"rules\": [\n{\"events\": \"[{,\\\"}]\", \"publish\": \"any\", \"subscribe\": \"any\"},\n"
                  "{\"events\": \"x\", \"publish\": [\"a\"], \"subscribe\": \"bad\"}]}",
                  "line 3: rule 2: \"subscribe\": \"bad\" is not \"any\", \"none\", \"self\" or a list of roles");
    /* "rules" after another key (that is then reported first: unknown keys go before the list). */
    assert_reason("{\n\"x\": {\"rules\": [1]},\n\"rules\": [\n 1]}",
                  "line 2: unknown key \"x\" (the file has only \"rules\")");
    /* A value that is long is cut short in the reason. */
    const char *r = reason(multi_line_file_with(
        "{\"events\": \"a\", \"publish\": \"any\", \"subscribe\": \"0123456789012345678901234567890123456789\"}"));
    assert_non_null(strstr(r, "\"01234567890123456789012345678901...\""));
}

static void limits_rules_and_roles(void **state)
{
    (void)state;
    size_t cap = 128 * 1024;
    char *text = malloc(cap);
    assert_non_null(text);

    /* 64 distinct roles are fine, the 65th is refused on the line of its rule. */
    for (int total = 64; total <= 65; total++) {
        size_t n = (size_t)snprintf(text, cap, "{\"rules\": [\n");
        for (int i = 0; i < total; i++)
            n += (size_t)snprintf(text + n, cap - n, "%s{\"events\": \"e%d\", \"publish\": [\"r%d\", \"r0\"], "
                                  "\"subscribe\": [\"r%d\"]}\n", i ? "," : "", i, i, i);
        snprintf(text + n, cap - n, "]}");
        if (total == 64) {
            struct rules *r = load(text);
            const char *mine[] = { "r63", "r0" };
            uint64_t m = rules_role_mask(r, mine, 2);
            assert_int_equal(__builtin_popcountll(m), 2);
            struct rules_caller c = { "u", "u", m };
            assert_true(may(r, RULES_SUBSCRIBE, "e63", &c));
            assert_true(may(r, RULES_PUBLISH, "e5", &c));
            assert_false(may(r, RULES_SUBSCRIBE, "e5", &c));
            rules_free(r);
        } else {
            assert_reason(text, "line 66: rule 65: \"publish\": role \"r64\" is one too many: a file names at "
                                "most 64 roles");
        }
    }

    /* 1024 rules are fine, 1025 are not. */
    for (int total = 1024; total <= 1025; total++) {
        size_t n = (size_t)snprintf(text, cap, "{\"rules\": [\n");
        for (int i = 0; i < total; i++)
            n += (size_t)snprintf(text + n, cap - n, "%s{\"events\": \"e%d\", \"publish\": \"any\", "
                                  "\"subscribe\": \"any\"}\n", i ? "," : "", i);
        snprintf(text + n, cap - n, "]}");
        if (total == 1024) {
            struct rules *r = load(text);
            assert_int_equal(rules_count(r), 1024);
            assert_true(may(r, RULES_PUBLISH, "e1023", &alice));
            assert_false(may(r, RULES_PUBLISH, "e1024", &alice));
            rules_free(r);
        } else {
            assert_reason(text, "line 1026: rule 1025: a file holds at most 1024 rules");
        }
    }

    /* A 255-byte pattern is fine, 256 bytes is not. */
    char pat[300];
    memset(pat, 'p', 256);
    pat[256] = '\0';
    snprintf(text, cap, "{\"rules\": [{\"events\": \"%s\", \"publish\": \"any\", \"subscribe\": \"any\"}]}", pat);
    assert_reason(text, "line 1: rule 1: \"events\" must be 1 to 255 bytes of UTF-8 without control characters");
    pat[255] = '\0';
    snprintf(text, cap, "{\"rules\": [{\"events\": \"%s\", \"publish\": \"any\", \"subscribe\": \"any\"}]}", pat);
    struct rules *r = load(text);
    assert_true(may(r, RULES_PUBLISH, pat, &alice));
    rules_free(r);
    free(text);
}

static void role_names(void **state)
{
    (void)state;
    assert_true(rules_role_name_valid("admin", 5));
    assert_true(rules_role_name_valid("A-z_0.9", 7));
    char longest[65];
    memset(longest, 'r', sizeof longest);
    assert_true(rules_role_name_valid(longest, 64));
    assert_false(rules_role_name_valid(longest, 65));
    assert_false(rules_role_name_valid("", 0));
    assert_false(rules_role_name_valid("a b", 3));
    assert_false(rules_role_name_valid("a\0b", 3));
    assert_false(rules_role_name_valid("r\xc3\xb4le", 5));
    assert_false(rules_role_name_valid("a/b", 3));
    assert_false(rules_role_name_valid("a*", 2));
}

static void first_match_wins(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"a.secret\", \"publish\": \"none\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"a.*\", \"publish\": \"any\", \"subscribe\": \"any\"},\n"
                           " {\"events\": \"a.secret\", \"publish\": \"any\", \"subscribe\": \"any\"}\n"
                           "]}");
    assert_false(may(r, RULES_PUBLISH, "a.secret", &alice));
    assert_false(may(r, RULES_SUBSCRIBE, "a.secret", &alice));
    assert_true(may(r, RULES_PUBLISH, "a.public", &alice));
    assert_true(may(r, RULES_PUBLISH, "a.secret.not", &alice));
    assert_false(may(r, RULES_PUBLISH, "b", &alice));
    rules_free(r);
}

static void star_matches_any_run(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"a.*\", \"publish\": \"any\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"*.z\", \"publish\": \"any\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"m*n*o\", \"publish\": \"any\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"exact\", \"publish\": \"any\", \"subscribe\": \"none\"}\n"
                           "]}");
    const char *yes[] = { "a.", "a.b", "a.b.c.d", "a.*", ".z", "x.y.z", "mno", "mxnyo", "m.n.o.n.o", "mnnoo",
                          "exact", "a.\xc3\xa9" };
    const char *no[] = { "a", "ab", "b.a.", "z", "x.z.", "mn", "mo", "mnox", "exac", "exactly", "Exact", "" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!may(r, RULES_PUBLISH, yes[i], &alice))
            fail_msg("should match: %s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (may(r, RULES_PUBLISH, no[i], &alice))
            fail_msg("should not match: %s", no[i]);
    rules_free(r);

    r = load("{\"rules\": [{\"events\": \"*\", \"publish\": \"any\", \"subscribe\": \"any\"}]}");
    assert_true(may(r, RULES_PUBLISH, "", &alice));
    assert_true(may(r, RULES_PUBLISH, "anything.at.all", &alice));
    assert_true(rules_allows(r, RULES_SUBSCRIBE, "with\0nul", 8, &alice));
    rules_free(r);

    /* "**" is "*"; a literal star in a name is matched by "*" too. */
    r = load("{\"rules\": [{\"events\": \"x**y\", \"publish\": \"any\", \"subscribe\": \"any\"}]}");
    assert_true(may(r, RULES_PUBLISH, "xy", &alice));
    assert_true(may(r, RULES_PUBLISH, "x*y", &alice));
    assert_true(may(r, RULES_PUBLISH, "x.y.y", &alice));
    assert_false(may(r, RULES_PUBLISH, "xyz", &alice));
    rules_free(r);
}

static void braces_other_than_placeholders_are_literal(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"{user}\", \"publish\": \"any\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"{user_id\", \"publish\": \"any\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"a{{user_id}}\", \"publish\": \"self\", \"subscribe\": \"none\"}\n"
                           "]}");
    assert_true(may(r, RULES_PUBLISH, "{user}", &alice));
    assert_false(may(r, RULES_PUBLISH, "bob", &alice));
    assert_true(may(r, RULES_PUBLISH, "{user_id", &alice));
    assert_true(may(r, RULES_PUBLISH, "a{id-alice}", &alice));
    assert_false(may(r, RULES_PUBLISH, "a{id-bob}", &alice));
    assert_false(may(r, RULES_PUBLISH, "aid-alice", &alice));
    struct rules_audience aud;
    audience(r, RULES_PUBLISH, "a{x}}", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.user_id, aud.user_id_len, "x}");
    rules_free(r);
}

static void placeholders_capture_dots_and_utf8(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"chat.\xc3\xa9.{username}\", \"publish\": \"self\", \"subscribe\": \"any\"},\n"
                           " {\"events\": \"inbox.{user_id}\", \"publish\": \"any\", \"subscribe\": \"self\"},\n"
                           " {\"events\": \"{username}@{user_id}\", \"publish\": \"self\", \"subscribe\": \"self\"}\n"
                           "]}");
    struct rules_caller zoe = { "42", "zo\xc3\xa9", 0 };
    struct rules_caller dotted = { "a.b", "j.doe", 0 };
    assert_true(may(r, RULES_PUBLISH, "chat.\xc3\xa9.zo\xc3\xa9", &zoe));
    assert_false(may(r, RULES_PUBLISH, "chat.\xc3\xa9.zo", &zoe));
    assert_false(may(r, RULES_PUBLISH, "chat.e.zo\xc3\xa9", &zoe));
    assert_true(may(r, RULES_PUBLISH, "chat.\xc3\xa9.j.doe", &dotted));
    assert_false(may(r, RULES_PUBLISH, "chat.\xc3\xa9.", &dotted)); /* empty capture: no rule matches */
    assert_true(may(r, RULES_SUBSCRIBE, "chat.\xc3\xa9.anyone", &dotted));
    assert_true(may(r, RULES_SUBSCRIBE, "inbox.a.b", &dotted));
    assert_false(may(r, RULES_SUBSCRIBE, "inbox.a.b", &zoe));
    assert_false(may(r, RULES_SUBSCRIBE, "inbox.a", &dotted));
    assert_true(may(r, RULES_PUBLISH, "inbox.whatever", &zoe));

    struct rules_audience aud;
    audience(r, RULES_SUBSCRIBE, "zo\xc3\xa9@42", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.username, aud.username_len, "zo\xc3\xa9");
    assert_capture(aud.user_id, aud.user_id_len, "42");
    assert_true(rules_audience_admits(&aud, &zoe));
    struct rules_caller zoe_other_id = { "43", "zo\xc3\xa9", 0 };
    assert_false(rules_audience_admits(&aud, &zoe_other_id));
    struct rules_caller no_name = { "42", NULL, 0 };
    assert_false(rules_audience_admits(&aud, &no_name));
    rules_free(r);
}

static void captures_are_lazy(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"user.{user_id}.*\", \"publish\": \"any\", \"subscribe\": \"self\"},\n"
                           " {\"events\": \"*.{username}\", \"publish\": \"any\", \"subscribe\": \"self\"},\n"
                           " {\"events\": \"{user_id}{username}\", \"publish\": \"any\", \"subscribe\": \"self\"}\n"
                           "]}");
    struct rules_audience aud;
    audience(r, RULES_SUBSCRIBE, "user.a.b.c", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.user_id, aud.user_id_len, "a");
    assert_capture(aud.username, aud.username_len, NULL);
    audience(r, RULES_SUBSCRIBE, "user.a..", &aud);
    assert_capture(aud.user_id, aud.user_id_len, "a");
    /* "user..x" cannot give an empty id, so the id runs to the next possible dot. */
    audience(r, RULES_SUBSCRIBE, "user..x.y", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.user_id, aud.user_id_len, ".x");
    /* The star before the placeholder is lazy too: the earliest dot. */
    audience(r, RULES_SUBSCRIBE, "a.b.c", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.username, aud.username_len, "b.c");
    /* Adjacent placeholders: the first takes one character (a whole UTF-8 one). */
    audience(r, RULES_SUBSCRIBE, "abc", &aud);
    assert_capture(aud.user_id, aud.user_id_len, "a");
    assert_capture(aud.username, aud.username_len, "bc");
    audience(r, RULES_SUBSCRIBE, "\xc3\xa9" "a", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.user_id, aud.user_id_len, "\xc3\xa9");
    assert_capture(aud.username, aud.username_len, "a");
    /* One character cannot fill two placeholders, even when it is two bytes. */
    audience(r, RULES_SUBSCRIBE, "\xc3\xa9", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    audience(r, RULES_SUBSCRIBE, "x", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    rules_free(r);

    /* The placeholder at the end takes the rest; one before a literal stops at its first fit. */
    r = load("{\"rules\": [{\"events\": \"a*{user_id}b\", \"publish\": \"any\", \"subscribe\": \"self\"}]}");
    audience(r, RULES_SUBSCRIBE, "a12b3b", &aud);
    assert_capture(aud.user_id, aud.user_id_len, "12b3");
    audience(r, RULES_SUBSCRIBE, "ab", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    rules_free(r);
    r = load("{\"rules\": [{\"events\": \"{user_id}.{username}.*\", \"publish\": \"any\", \"subscribe\": \"self\"}]}");
    audience(r, RULES_SUBSCRIBE, "a.b.c.d", &aud);
    assert_capture(aud.user_id, aud.user_id_len, "a");
    assert_capture(aud.username, aud.username_len, "b");
    rules_free(r);
}

static void same_placeholder_twice(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"{user_id}.to.{user_id}\", \"publish\": \"self\", \"subscribe\": \"self\"},\n"
                           " {\"events\": \"*\", \"publish\": \"any\", \"subscribe\": \"any\"}\n"
                           "]}");
    struct rules_caller a = { "a", "alice", 0 };
    struct rules_audience aud;
    audience(r, RULES_SUBSCRIBE, "a.to.a", &aud);
    assert_int_equal(aud.kind, RULES_AUD_SELF);
    assert_capture(aud.user_id, aud.user_id_len, "a");
    assert_true(may(r, RULES_SUBSCRIBE, "a.to.a", &a));
    /* Different values: the rule still decides (first match), and admits nobody. */
    audience(r, RULES_SUBSCRIBE, "a.to.b", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    assert_false(may(r, RULES_SUBSCRIBE, "a.to.b", &a));
    assert_false(may(r, RULES_PUBLISH, "a.to.b", &a));
    /* The first capture is lazy ("a"), so the second is "a.to.a": different, so nobody. */
    audience(r, RULES_SUBSCRIBE, "a.to.a.to.a", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    rules_free(r);
}

static void roles_none_and_any(void **state)
{
    (void)state;
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"ops.*\", \"publish\": [\"ops\", \"admin\", \"ops\"],\n"
                           "  \"subscribe\": [\"viewer\"]},\n"
                           " {\"events\": \"closed\", \"publish\": \"none\", \"subscribe\": \"none\"},\n"
                           " {\"events\": \"open\", \"publish\": \"any\", \"subscribe\": \"any\"}\n"
                           "]}");
    const char *ops_roles[] = { "ops" }, *viewer_roles[] = { "viewer", "x" }, *both_roles[] = { "admin", "viewer" };
    struct rules_caller ops = { "1", "o", rules_role_mask(r, ops_roles, 1) };
    struct rules_caller viewer = { "2", "v", rules_role_mask(r, viewer_roles, 2) };
    struct rules_caller both = { "3", "b", rules_role_mask(r, both_roles, 2) };
    struct rules_caller nobody = { "4", "n", 0 };

    struct rules_audience aud;
    audience(r, RULES_PUBLISH, "ops.deploy", &aud);
    assert_int_equal(aud.kind, RULES_AUD_ROLES);
    assert_int_equal(aud.role_mask, ops.role_mask | (both.role_mask & ~viewer.role_mask));
    assert_true(may(r, RULES_PUBLISH, "ops.deploy", &ops));
    assert_true(may(r, RULES_PUBLISH, "ops.deploy", &both));
    assert_false(may(r, RULES_PUBLISH, "ops.deploy", &viewer));
    assert_false(may(r, RULES_PUBLISH, "ops.deploy", &nobody));
    assert_true(may(r, RULES_SUBSCRIBE, "ops.deploy", &viewer));
    assert_false(may(r, RULES_SUBSCRIBE, "ops.deploy", &ops));

    audience(r, RULES_PUBLISH, "closed", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    assert_false(may(r, RULES_SUBSCRIBE, "closed", &both));
    audience(r, RULES_SUBSCRIBE, "open", &aud);
    assert_int_equal(aud.kind, RULES_AUD_ANY);
    assert_true(may(r, RULES_SUBSCRIBE, "open", &nobody));
    audience(r, RULES_SUBSCRIBE, "unmatched", &aud);
    assert_int_equal(aud.kind, RULES_AUD_NONE);
    rules_free(r);
}

static void null_rules_allow_everything(void **state)
{
    (void)state;
    struct rules_audience aud;
    rules_audience(NULL, RULES_SUBSCRIBE, "x", 1, &aud);
    assert_int_equal(aud.kind, RULES_AUD_ANY);
    assert_true(rules_audience_admits(&aud, &alice));
    assert_true(rules_allows(NULL, RULES_PUBLISH, "anything", 8, &alice));
    assert_true(rules_allows(NULL, RULES_SUBSCRIBE, "", 0, &alice));
    assert_int_equal(rules_count(NULL), 0);
    const char *roles[] = { "admin" };
    assert_int_equal(rules_role_mask(NULL, roles, 1), 0);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void pathological_patterns_are_fast(void **state)
{
    (void)state;
    char name[256];
    memset(name, 'a', 255);
    name[255] = '\0';
    struct rules *r = load("{\"rules\": [\n"
                           " {\"events\": \"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b\", \"publish\": \"any\", "
                           "\"subscribe\": \"any\"},\n"
                           " {\"events\": \"{user_id}a{username}a*a*a{user_id}a*a*a*a{username}a*a*a*a*a*a*b\", "
                           "\"publish\": \"any\", \"subscribe\": \"self\"},\n"
                           " {\"events\": \"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*\", \"publish\": \"none\", "
                           "\"subscribe\": \"none\"}\n"
                           "]}");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200; i++) {
        struct rules_audience aud;
        rules_audience(r, RULES_SUBSCRIBE, name, 255, &aud);
        assert_int_equal(aud.kind, RULES_AUD_NONE); /* only the third rule matches */
    }
    name[254] = 'b';
    struct rules_audience aud;
    rules_audience(r, RULES_SUBSCRIBE, name, 255, &aud);
    assert_int_equal(aud.kind, RULES_AUD_ANY);
    /* 200 x 3 worst cases of at most 65 536 steps each; exponential backtracking would never end. */
    assert_true(seconds_since(&t0) < 2.0);
    rules_free(r);
}

static void loads_files(void **state)
{
    (void)state;
    struct rules *r = (void *)1;
    char err[256];
    assert_int_equal(rules_load_file("/nonexistent/rules.json", &r, err, sizeof err), -ENOENT);
    assert_null(r);
    assert_string_equal(err, "cannot read /nonexistent/rules.json: No such file or directory");
    assert_int_equal(rules_load_file("/", &r, err, sizeof err), -EISDIR);
    assert_non_null(strstr(err, "cannot read /: "));

    char path[] = "/tmp/test_rules_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *good = "{\"rules\": [\n{\"events\": \"*\", \"publish\": \"any\", \"subscribe\": \"any\"}\n]}\n";
    assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
    assert_int_equal(rules_load_file(path, &r, err, sizeof err), 0);
    assert_int_equal(rules_count(r), 1);
    rules_free(r);

    /* A bad file: the reason is the parser's, without the path. */
    assert_int_equal(ftruncate(fd, 0), 0);
    const char *bad = "{\"rules\": [\n{\"events\": \"*\", \"publish\": \"self\", \"subscribe\": \"any\"}\n]}\n";
    assert_int_equal(pwrite(fd, bad, strlen(bad), 0), (ssize_t)strlen(bad));
    assert_int_equal(rules_load_file(path, &r, err, sizeof err), -EINVAL);
    assert_null(r);
    assert_string_equal(err, "line 2: rule 1: \"self\" needs {user_id} or {username} in the pattern");

    /* Larger than RULES_FILE_MAX. */
    assert_int_equal(ftruncate(fd, (off_t)RULES_FILE_MAX + 1), 0);
    assert_int_equal(rules_load_file(path, &r, err, sizeof err), -EFBIG);
    assert_non_null(strstr(err, "larger than"));
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_good_file),
        cmocka_unit_test(empty_rules_forbid_everything),
        cmocka_unit_test(json_syntax_errors_give_jansson_line),
        cmocka_unit_test(top_level_errors),
        cmocka_unit_test(rule_errors_name_their_line_and_rule),
        cmocka_unit_test(limits_rules_and_roles),
        cmocka_unit_test(role_names),
        cmocka_unit_test(first_match_wins),
        cmocka_unit_test(star_matches_any_run),
        cmocka_unit_test(braces_other_than_placeholders_are_literal),
        cmocka_unit_test(placeholders_capture_dots_and_utf8),
        cmocka_unit_test(captures_are_lazy),
        cmocka_unit_test(same_placeholder_twice),
        cmocka_unit_test(roles_none_and_any),
        cmocka_unit_test(null_rules_allow_everything),
        cmocka_unit_test(pathological_patterns_are_fast),
        cmocka_unit_test(loads_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
