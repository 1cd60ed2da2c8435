/* Unit tests of throttle: fixed windows, lock-out and release, clearing, the bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "throttle.h"

#define KEY(s) (s), strlen(s)

static void locks_out_after_limit_until_window_ends(void **state)
{
    (void)state;
    struct throttle *t = throttle_new(3, 60, 100);
    assert_non_null(t);
    for (int i = 0; i < 2; i++)
        throttle_fail(t, KEY("alice"), 1000);
    assert_int_equal(throttle_wait(t, KEY("alice"), 1000), 0);
    throttle_fail(t, KEY("alice"), 1010);
    assert_int_equal(throttle_wait(t, KEY("alice"), 1010), 50);
    assert_int_equal(throttle_wait(t, KEY("alice"), 1059), 1);
    assert_int_equal(throttle_wait(t, KEY("alice"), 1060), 0);
    throttle_free(t);
}

static void keys_are_independent_and_exact(void **state)
{
    (void)state;
    struct throttle *t = throttle_new(1, 60, 100);
    throttle_fail(t, KEY("alice"), 0);
    assert_true(throttle_wait(t, KEY("alice"), 0) > 0);
    assert_int_equal(throttle_wait(t, KEY("Alice"), 0), 0);
    assert_int_equal(throttle_wait(t, KEY("alic"), 0), 0);
    assert_int_equal(throttle_wait(t, "alice\0x", 7, 0), 0);
    throttle_free(t);
}

static void new_window_restarts_the_count(void **state)
{
    (void)state;
    struct throttle *t = throttle_new(2, 10, 100);
    throttle_fail(t, KEY("k"), 0);
    throttle_fail(t, KEY("k"), 11); /* the first failure's window is over */
    assert_int_equal(throttle_wait(t, KEY("k"), 11), 0);
    throttle_fail(t, KEY("k"), 12);
    assert_int_equal(throttle_wait(t, KEY("k"), 12), 9);
    throttle_free(t);
}

static void clear_forgets_failures(void **state)
{
    (void)state;
    struct throttle *t = throttle_new(2, 60, 100);
    throttle_fail(t, KEY("k"), 0);
    throttle_clear(t, KEY("k"));
    throttle_fail(t, KEY("k"), 1);
    assert_int_equal(throttle_wait(t, KEY("k"), 1), 0);
    assert_int_equal(throttle_size(t), 1);
    throttle_clear(t, KEY("absent"));
    assert_int_equal(throttle_size(t), 1);
    throttle_free(t);
}

static void table_is_bounded_and_reclaims_expired_keys(void **state)
{
    (void)state;
    struct throttle *t = throttle_new(1, 10, 4);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        throttle_fail(t, KEY(key), 0);
    }
    assert_int_equal(throttle_size(t), 4);
    assert_int_equal(throttle_wait(t, KEY("k9"), 0), 0); /* not tracked: table was full */
    assert_true(throttle_wait(t, KEY("k0"), 0) > 0);
    throttle_fail(t, KEY("late"), 20); /* everything expired: swept, then tracked */
    assert_true(throttle_wait(t, KEY("late"), 20) > 0);
    assert_int_equal(throttle_size(t), 1);
    throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(locks_out_after_limit_until_window_ends),
        cmocka_unit_test(keys_are_independent_and_exact),
        cmocka_unit_test(new_window_restarts_the_count),
        cmocka_unit_test(clear_forgets_failures),
        cmocka_unit_test(table_is_bounded_and_reclaims_expired_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
