/* Unit tests of access/user: applying changes to a user record (token version, TOTP life cycle)
 * and the canonical role list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "access/totp.h"
#include "access/user.h"

static struct user_record fresh(void)
{
    struct user_record u;
    memset(&u, 0, sizeof u);
    strcpy(u.id, "0123456789abcdef0123456789abcdef");
    strcpy(u.username, "alice");
    u.username_len = 5;
    strcpy(u.hash, "old-hash");
    return u;
}

static const struct user_change keep = { .revoked = -1 };

static void version_moves_on_password_roles_and_revocation(void **state)
{
    (void)state;
    struct user_record u = fresh();
    bool changed = true;
    assert_int_equal(user_apply(&u, &keep, &changed), 0);
    assert_false(changed);
    assert_int_equal(u.ver, 0);

    struct user_change c = keep;
    c.hash = "new-hash";
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_true(changed);
    assert_int_equal(u.ver, 1);
    assert_string_equal(u.hash, "new-hash");

    c = keep;
    c.roles = "admin,ops";
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_true(changed);
    assert_int_equal(u.ver, 2);
    assert_int_equal(user_apply(&u, &c, &changed), 0); /* the same roles again: no change */
    assert_false(changed);
    assert_int_equal(u.ver, 2);

    c = keep;
    c.revoked = 1;
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_true(changed && u.revoked);
    assert_int_equal(u.ver, 3);
    c.revoked = 0; /* un-revoking never revives older tokens */
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_true(changed && !u.revoked);
    assert_int_equal(u.ver, 4);
}

static void code_at(const char *secret, int64_t t, char out[8])
{
    unsigned char key[64];
    size_t n = 0;
    assert_int_equal(base32_decode(secret, strlen(secret), key, sizeof key, &n), 0);
    snprintf(out, 8, "%06d", totp_code(key, n, (uint64_t)(t / 30), 6));
}

static void totp_enrol_confirm_use_disable(void **state)
{
    (void)state;
    struct user_record u = fresh();
    bool changed;
    const char *secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    int64_t now = 1800000000;
    char code[8];

    struct user_change c = keep;
    c.totp = USER_TOTP_CONFIRM;
    c.totp_code = "123456";
    c.totp_code_len = 6;
    c.now = now;
    assert_int_equal(user_apply(&u, &c, &changed), -ENODATA); /* nothing to confirm */

    c = keep;
    c.totp = USER_TOTP_ENROL;
    c.totp_secret_new = secret;
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_string_equal(u.totp_pending, secret);
    assert_string_equal(u.totp_secret, "");

    code_at(secret, now, code);
    c = keep;
    c.totp = USER_TOTP_CONFIRM;
    c.totp_code = "000000";
    c.totp_code_len = 6;
    c.now = now;
    if (strcmp(code, "000000") == 0)
        c.totp_code = "111111";
    struct user_record before = u;
    assert_int_equal(user_apply(&u, &c, &changed), -EACCES);
    assert_memory_equal(&u, &before, sizeof u); /* unchanged on error */
    c.totp_code = code;
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_false(changed); /* TOTP does not end sessions */
    assert_string_equal(u.totp_secret, secret);
    assert_string_equal(u.totp_pending, "");
    assert_int_equal(u.totp_last_step, now / 30);

    /* The confirming code counts as used: a login with it is a replay. */
    c.totp = USER_TOTP_USE;
    assert_int_equal(user_apply(&u, &c, &changed), -EACCES);
    /* The next step's code works once. */
    code_at(secret, now + 30, code);
    c.now = now + 30;
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_int_equal(user_apply(&u, &c, &changed), -EACCES);

    /* Enrolling again while on is refused; disabling needs a current (unused) code. */
    struct user_change e = keep;
    e.totp = USER_TOTP_ENROL;
    e.totp_secret_new = secret;
    assert_int_equal(user_apply(&u, &e, &changed), -EALREADY);
    c.totp = USER_TOTP_DISABLE;
    assert_int_equal(user_apply(&u, &c, &changed), -EACCES); /* already used */
    code_at(secret, now + 60, code);
    c.now = now + 60;
    assert_int_equal(user_apply(&u, &c, &changed), 0);
    assert_string_equal(u.totp_secret, "");
    c.totp = USER_TOTP_USE;
    assert_int_equal(user_apply(&u, &c, &changed), -ENODATA);
}

static void roles_are_canonical(void **state)
{
    (void)state;
    char out[USER_ROLES_TEXT_MAX];
    const char *reason = NULL;
    const char *names[] = { "ops", "admin", "ops", "a.b-c_d" };
    size_t lens[] = { 3, 5, 3, 7 };
    assert_int_equal(roles_canonical(names, lens, 4, out, &reason), 0);
    assert_string_equal(out, "a.b-c_d,admin,ops");
    assert_int_equal(roles_canonical(names, lens, 0, out, &reason), 0);
    assert_string_equal(out, "");

    const char *bad[] = { "has,comma" };
    size_t bad_len[] = { 9 };
    assert_int_equal(roles_canonical(bad, bad_len, 1, out, &reason), -EINVAL);
    assert_non_null(reason);
    const char *empty[] = { "" };
    size_t zero[] = { 0 };
    assert_int_equal(roles_canonical(empty, zero, 1, out, &reason), -EINVAL);
    const char *nul[] = { "a\0b" };
    size_t three[] = { 3 };
    assert_int_equal(roles_canonical(nul, three, 1, out, &reason), -EINVAL);

    const char *many[33];
    size_t one[33];
    char names33[33][4];
    for (int i = 0; i < 33; i++) {
        snprintf(names33[i], sizeof names33[i], "r%d", i);
        many[i] = names33[i];
        one[i] = strlen(names33[i]);
    }
    assert_int_equal(roles_canonical(many, one, 33, out, &reason), -EINVAL);
    assert_int_equal(roles_canonical(many, one, 32, out, &reason), 0);

    char buf[USER_ROLES_TEXT_MAX];
    const char *split[USER_ROLES_MAX];
    assert_int_equal(roles_split("a.b-c_d,admin,ops", buf, split), 3);
    assert_string_equal(split[0], "a.b-c_d");
    assert_string_equal(split[2], "ops");
    assert_int_equal(roles_split("", buf, split), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_moves_on_password_roles_and_revocation),
        cmocka_unit_test(totp_enrol_confirm_use_disable),
        cmocka_unit_test(roles_are_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
