/* Unit tests of pool: objects are zeroed, distinct, aligned, recycled, and freed with the pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pool.h"

static void objects_are_zeroed_distinct_aligned_and_recycled(void **state)
{
    (void)state;
    struct pool *p = pool_new(100);
    assert_non_null(p);
    enum { N = 2000 }; /* several blocks */
    static unsigned char *objs[N];
    for (int i = 0; i < N; i++) {
        objs[i] = pool_get(p);
        assert_non_null(objs[i]);
        assert_int_equal((uintptr_t)objs[i] % _Alignof(max_align_t), 0);
        for (int k = 0; k < 100; k++)
            assert_int_equal(objs[i][k], 0);
        memset(objs[i], 0xAB, 100); /* ASan would catch an overlap or an overrun */
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N && j < i + 8; j++)
            assert_ptr_not_equal(objs[i], objs[j]);
    pool_put(p, objs[7]);
    unsigned char *again = pool_get(p);
    assert_ptr_equal(again, objs[7]);
    for (int k = 0; k < 100; k++)
        assert_int_equal(again[k], 0);
    pool_put(p, NULL);
    pool_free(p);
}

static void tiny_objects_still_hold_a_pointer(void **state)
{
    (void)state;
    struct pool *p = pool_new(1);
    void *a = pool_get(p), *b = pool_get(p);
    assert_non_null(a);
    assert_non_null(b);
    assert_true((char *)b - (char *)a >= (ptrdiff_t)sizeof(void *) ||
                (char *)a - (char *)b >= (ptrdiff_t)sizeof(void *));
    pool_put(p, a);
    pool_put(p, b);
    pool_free(p);
    pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(objects_are_zeroed_distinct_aligned_and_recycled),
        cmocka_unit_test(tiny_objects_still_hold_a_pointer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
