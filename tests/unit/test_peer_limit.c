/* Unit tests of peer_limit: the cap per address, IPv6 by /64, IPv4-mapped IPv6 counted as IPv4,
 * the loopback exemption and its opt-in, release freeing the slot, no cap at 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/peer_limit.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void caps_each_address(void **state)
{
    (void)state;
    struct peer_limit *pl = peer_limit_new(2, false);
    assert_non_null(pl);
    struct sockaddr_storage a = addr("203.0.113.7"), b = addr("203.0.113.8");
    struct peer_slot *s1, *s2, *s3, *s4;
    assert_int_equal(peer_limit_acquire(pl, SA(a), &s1), 0);
    assert_int_equal(peer_limit_acquire(pl, SA(a), &s2), 0);
    assert_non_null(s1);
    assert_ptr_equal(s1, s2);
    assert_int_equal(peer_limit_acquire(pl, SA(a), &s3), -1);
    assert_null(s3);
    assert_int_equal(peer_limit_acquire(pl, SA(b), &s4), 0); /* another address is not affected */
    assert_int_equal(peer_limit_count(pl, SA(a)), 2);
    peer_limit_release(s1);
    assert_int_equal(peer_limit_count(pl, SA(a)), 1);
    assert_int_equal(peer_limit_acquire(pl, SA(a), &s3), 0); /* the freed slot is usable again */
    peer_limit_release(s2);
    peer_limit_release(s3);
    peer_limit_release(s4);
    assert_int_equal(peer_limit_count(pl, SA(a)), 0);
    peer_limit_free(pl);
}

static void ipv6_counts_by_slash_64(void **state)
{
    (void)state;
    struct peer_limit *pl = peer_limit_new(1, false);
    struct sockaddr_storage a = addr("2001:db8:1:2::1"), same64 = addr("2001:db8:1:2:ffff::9"),
                            other64 = addr("2001:db8:1:3::1");
    struct peer_slot *s1, *s2, *s3;
    assert_int_equal(peer_limit_acquire(pl, SA(a), &s1), 0);
    assert_int_equal(peer_limit_acquire(pl, SA(same64), &s2), -1);
    assert_int_equal(peer_limit_acquire(pl, SA(other64), &s3), 0);
    peer_limit_release(s1);
    peer_limit_release(s3);
    peer_limit_free(pl);
}

static void mapped_ipv4_is_the_same_address(void **state)
{
    (void)state;
    struct peer_limit *pl = peer_limit_new(1, false);
    struct sockaddr_storage v4 = addr("198.51.100.1"), mapped = addr("::ffff:198.51.100.1");
    struct peer_slot *s1, *s2;
    assert_int_equal(peer_limit_acquire(pl, SA(v4), &s1), 0);
    assert_int_equal(peer_limit_acquire(pl, SA(mapped), &s2), -1);
    peer_limit_release(s1);
    peer_limit_free(pl);
}

static void loopback_exempt_unless_asked(void **state)
{
    (void)state;
    const char *loopbacks[] = { "127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1" };
    for (int counted = 0; counted < 2; counted++) {
        struct peer_limit *pl = peer_limit_new(1, counted);
        for (size_t i = 0; i < sizeof loopbacks / sizeof loopbacks[0]; i++) {
            struct sockaddr_storage a = addr(loopbacks[i]);
            struct peer_slot *s1, *s2;
            assert_int_equal(peer_limit_acquire(pl, SA(a), &s1), 0);
            assert_int_equal(peer_limit_acquire(pl, SA(a), &s2), counted ? -1 : 0);
            if (!counted) {
                assert_null(s1); /* not counted at all */
                assert_null(s2);
            }
            peer_limit_release(s1);
        }
        peer_limit_free(pl);
    }
}

static void zero_means_no_cap(void **state)
{
    (void)state;
    struct peer_limit *pl = peer_limit_new(0, true);
    struct sockaddr_storage a = addr("192.0.2.1");
    for (int i = 0; i < 1000; i++) {
        struct peer_slot *s;
        assert_int_equal(peer_limit_acquire(pl, SA(a), &s), 0);
        assert_null(s);
    }
    peer_limit_free(pl);
    peer_limit_release(NULL);
}

static void many_addresses(void **state)
{
    (void)state;
    struct peer_limit *pl = peer_limit_new(3, false);
    static struct peer_slot *slots[20000];
    char text[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(text, sizeof text, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        struct sockaddr_storage a = addr(text);
        assert_int_equal(peer_limit_acquire(pl, SA(a), &slots[i]), 0);
    }
    for (int i = 0; i < 20000; i++)
        peer_limit_release(slots[i]);
    struct sockaddr_storage a = addr("10.0.0.1");
    assert_int_equal(peer_limit_count(pl, SA(a)), 0);
    peer_limit_free(pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(caps_each_address),
        cmocka_unit_test(ipv6_counts_by_slash_64),
        cmocka_unit_test(mapped_ipv4_is_the_same_address),
        cmocka_unit_test(loopback_exempt_unless_asked),
        cmocka_unit_test(zero_means_no_cap),
        cmocka_unit_test(many_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
