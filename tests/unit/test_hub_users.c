/* Unit tests of hub_users: a loop's users by id and by username, references, growth, roles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hub_users.h"

static void found_by_id_and_name_while_referenced(void **state)
{
    (void)state;
    struct hub_users *u = hub_users_new();
    struct hub_user *a = hub_users_get(u, "id-a", "alice", 5, "");
    assert_non_null(a);
    assert_ptr_equal(hub_users_get(u, "id-a", "alice", 5, ""), a); /* a second stream */
    assert_int_equal(a->refs, 2);
    assert_ptr_equal(hub_users_by_id(u, "id-a", 4), a);
    assert_ptr_equal(hub_users_by_name(u, "alice", 5), a);
    assert_null(hub_users_by_name(u, "alic", 4));
    assert_null(hub_users_by_id(u, "id-b", 4));
    hub_users_put(u, a);
    assert_ptr_equal(hub_users_by_id(u, "id-a", 4), a);
    hub_users_put(u, a); /* the last stream left */
    assert_null(hub_users_by_id(u, "id-a", 4));
    assert_null(hub_users_by_name(u, "alice", 5));
    hub_users_free(u);
}

static void a_newer_token_brings_new_roles(void **state)
{
    (void)state;
    struct hub_users *u = hub_users_new();
    struct hub_user *a = hub_users_get(u, "id-a", "a.b é", strlen("a.b é"), "staff");
    a->mask_gen = 7;
    assert_ptr_equal(hub_users_get(u, "id-a", "a.b é", strlen("a.b é"), "staff"), a);
    assert_int_equal(a->mask_gen, 7); /* same roles: the mask stays */
    assert_ptr_equal(hub_users_get(u, "id-a", "a.b é", strlen("a.b é"), "admin,staff"), a);
    assert_string_equal(a->roles, "admin,staff");
    assert_int_equal(a->mask_gen, 0); /* recomputed on next use */
    for (int i = 0; i < 3; i++)
        hub_users_put(u, a);
    hub_users_free(u);
}

static void many_users_grow_both_tables(void **state)
{
    (void)state;
    struct hub_users *u = hub_users_new();
    enum { N = 3000 };
    static struct hub_user *all[N];
    char id[32], name[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        snprintf(name, sizeof name, "user-%d", i);
        all[i] = hub_users_get(u, id, name, strlen(name), "");
        assert_non_null(all[i]);
    }
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        snprintf(name, sizeof name, "user-%d", i);
        assert_ptr_equal(hub_users_by_id(u, id, strlen(id)), all[i]);
        assert_ptr_equal(hub_users_by_name(u, name, strlen(name)), all[i]);
    }
    for (int i = 0; i < N; i += 2)
        hub_users_put(u, all[i]);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        assert_true((hub_users_by_id(u, id, strlen(id)) != NULL) == (i % 2 == 1));
    }
    for (int i = 1; i < N; i += 2)
        hub_users_put(u, all[i]);
    hub_users_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(found_by_id_and_name_while_referenced),
        cmocka_unit_test(a_newer_token_brings_new_roles),
        cmocka_unit_test(many_users_grow_both_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
