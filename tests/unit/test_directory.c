/* Unit tests of access/directory: token versions and revocations. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "access/directory.h"

static void unknown_users_are_at_version_zero(void **state)
{
    (void)state;
    struct directory *d = directory_new();
    const char *reason = NULL;
    assert_int_equal(directory_check(d, "u1", 0, &reason), 0);
    assert_int_equal(directory_version(d, "u1"), 0);
    directory_free(d);
}

static void older_tokens_and_revoked_users_are_refused(void **state)
{
    (void)state;
    struct directory *d = directory_new();
    const char *reason = NULL;
    assert_int_equal(directory_set(d, "u1", 2, false), 0);
    assert_int_equal(directory_check(d, "u1", 1, &reason), -EACCES);
    assert_non_null(reason);
    assert_int_equal(directory_check(d, "u1", 2, &reason), 0);
    assert_int_equal(directory_check(d, "u1", 3, &reason), 0); /* a node ahead of this one issued it */
    assert_int_equal(directory_set(d, "u1", 3, true), 0);
    assert_int_equal(directory_check(d, "u1", 3, &reason), -EACCES);
    assert_string_equal(reason, "user revoked");
    /* An older change seen late is ignored. */
    assert_int_equal(directory_set(d, "u1", 2, false), 0);
    assert_int_equal(directory_check(d, "u1", 3, &reason), -EACCES);
    assert_int_equal(directory_version(d, "u1"), 3);
    directory_free(d);
}

static void many_users_grow_the_table(void **state)
{
    (void)state;
    struct directory *d = directory_new();
    char id[40];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        assert_int_equal(directory_set(d, id, i % 7, i % 3 == 0), 0);
    }
    const char *reason;
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        assert_int_equal(directory_version(d, id), i % 7);
        assert_int_equal(directory_check(d, id, i % 7, &reason), i % 3 == 0 ? -EACCES : 0);
    }
    directory_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_users_are_at_version_zero),
        cmocka_unit_test(older_tokens_and_revoked_users_are_refused),
        cmocka_unit_test(many_users_grow_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
