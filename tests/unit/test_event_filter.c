/* Unit tests of event_filter: parsing ?events=a,b and matching names exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "event_filter.h"

static void parses_and_matches_exact_names(void **state)
{
    (void)state;
    struct event_filter *f;
    const char *reason = NULL;
    assert_int_equal(event_filter_parse("a,bb,,c d", &f, &reason), 0);
    assert_true(event_filter_match(f, "a", 1));
    assert_true(event_filter_match(f, "bb", 2));
    assert_true(event_filter_match(f, "c d", 3));
    assert_false(event_filter_match(f, "b", 1));
    assert_false(event_filter_match(f, "bbb", 3));
    assert_false(event_filter_match(f, "", 0));
    assert_true(event_filter_match_fn("a", 1, f));
    event_filter_free(f);
}

static void null_filter_matches_everything(void **state)
{
    (void)state;
    assert_true(event_filter_match(NULL, "anything", 8));
}

static void rejects_empty_and_invalid_lists(void **state)
{
    (void)state;
    struct event_filter *f = (void *)1;
    const char *reason = NULL;
    assert_int_equal(event_filter_parse("", &f, &reason), -1);
    assert_null(f);
    assert_non_null(reason);
    assert_int_equal(event_filter_parse(",,,", &f, &reason), -1);
    assert_int_equal(event_filter_parse("ok,bad\nname", &f, &reason), -1);
    char longname[300];
    memset(longname, 'x', 256);
    longname[256] = '\0';
    assert_int_equal(event_filter_parse(longname, &f, &reason), -1);
    longname[255] = '\0';
    assert_int_equal(event_filter_parse(longname, &f, &reason), 0);
    event_filter_free(f);
}

static void limits_the_number_of_names(void **state)
{
    (void)state;
    char list[1024] = "";
    for (int i = 0; i < EVENT_FILTER_MAX_NAMES; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%sn%d", i ? "," : "", i);
    struct event_filter *f;
    const char *reason;
    assert_int_equal(event_filter_parse(list, &f, &reason), 0);
    assert_true(event_filter_match(f, "n63", 3));
    event_filter_free(f);
    strcat(list, ",one-too-many");
    assert_int_equal(event_filter_parse(list, &f, &reason), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_and_matches_exact_names),
        cmocka_unit_test(null_filter_matches_everything),
        cmocka_unit_test(rejects_empty_and_invalid_lists),
        cmocka_unit_test(limits_the_number_of_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
