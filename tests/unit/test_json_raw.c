/* Unit tests of json_raw: finding a member's bytes and compacting valid JSON text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_raw.h"

/* The member's value as a NUL-terminated string (static buffer), or NULL. */
static const char *member(const char *doc, const char *key)
{
    static char out[256];
    size_t s, e;
    if (json_raw_member(doc, strlen(doc), key, strlen(key), &s, &e) != 0)
        return NULL;
    memcpy(out, doc + s, e - s);
    out[e - s] = '\0';
    return out;
}

static const char *compact(const char *src)
{
    static char out[256];
    size_t n = json_raw_compact(src, strlen(src), out);
    out[n] = '\0';
    return out;
}

static void finds_members_of_every_type(void **state)
{
    (void)state;
    const char *doc = " { \"event\" : \"a\", \"data\" : { \"x\" : [1, 2, {\"y\": \"}\"}] } , \"z\": 1}";
    assert_string_equal(member(doc, "event"), "\"a\"");
    assert_string_equal(member(doc, "data"), "{ \"x\" : [1, 2, {\"y\": \"}\"}] }");
    assert_string_equal(member(doc, "z"), "1");
    assert_null(member(doc, "missing"));
    assert_string_equal(member("{\"data\":null}", "data"), "null");
    assert_string_equal(member("{\"data\":-1.5e10}", "data"), "-1.5e10");
    assert_string_equal(member("{\"data\":true }", "data"), "true");
    assert_string_equal(member("{\"data\":\"q\\\"uote\"}", "data"), "\"q\\\"uote\"");
    assert_null(member("{}", "data"));
    assert_null(member("[1]", "data"));
}

static void keys_are_compared_decoded_and_last_wins(void **state)
{
    (void)state;
    assert_string_equal(member("{\"d\\u0061ta\":1}", "data"), "1");
    assert_string_equal(member("{\"data\":1,\"data\":2}", "data"), "2");
    assert_null(member("{\"Data\":1}", "data"));
    assert_null(member("{\"x\":{\"data\":1}}", "data")); /* only the top level counts */
    assert_string_equal(member("{\"\\u00e9\":7}", "\xc3\xa9"), "7");
    assert_string_equal(member("{\"\\ud83d\\ude00\":8}", "\xf0\x9f\x98\x80"), "8");
}

static void compacts_outside_strings_only(void **state)
{
    (void)state;
    assert_string_equal(compact(" { \"a b\" : [ 1 ,\n2\t] } "), "{\"a b\":[1,2]}");
    assert_string_equal(compact("\"  spaced \\\" \\\\\""), "\"  spaced \\\" \\\\\"");
    assert_string_equal(compact("12345678901234567890123"), "12345678901234567890123");
    assert_string_equal(compact("0.1"), "0.1");
    assert_string_equal(compact("\"\\n\\u0000\""), "\"\\n\\u0000\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_members_of_every_type),
        cmocka_unit_test(keys_are_compared_decoded_and_last_wins),
        cmocka_unit_test(compacts_outside_strings_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
