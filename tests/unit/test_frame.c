/* Unit tests of src/frame.c: the exact SSE wire format broker-client depends on, the size
 * arithmetic, truncation, and the reference counting of frames and batches. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* Formats into an exactly sized heap buffer (len + 1) so ASan catches any overrun. */
static char *format_exact(int64_t id, const char *event, size_t event_len, const char *data,
                          size_t data_len, int retry_ms, size_t *len_out)
{
    size_t need = frame_format(NULL, 0, id, event, event_len, data, data_len, retry_ms);
    char *buf = malloc(need + 1);
    assert_non_null(buf);
    assert_int_equal(frame_format(buf, need + 1, id, event, event_len, data, data_len, retry_ms),
                     need);
    *len_out = need;
    return buf;
}

/* ---- frame_format ---- */

static void test_format_exact_bytes(void **state)
{
    (void)state;
    char buf[128];
    memset(buf, 'Z', sizeof buf);
    const char want[] = "id:42\nevent:a\ndata:{\"x\":1}\n\n";
    size_t n = frame_format(buf, sizeof buf, 42, S("a"), S("{\"x\":1}"), 0);
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(buf, want, sizeof want); /* including the NUL */
    assert_int_equal(buf[sizeof want], 'Z');     /* nothing written past the NUL */
}

static void test_format_size_matches_length(void **state)
{
    (void)state;
    const int64_t ids[] = { 0, 1, 9, 10, 42, 99, 100, 999999, 1000000, INT32_MAX, (int64_t)UINT32_MAX + 1,
                            INT64_MAX };
    const size_t event_lens[] = { 1, 5, 255 };
    const size_t data_lens[] = { 0, 1, 4, 1000 };
    char event[256], data[1000];
    memset(event, 'e', sizeof event);
    memset(data, '7', sizeof data);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        for (size_t j = 0; j < sizeof event_lens / sizeof event_lens[0]; j++)
            for (size_t k = 0; k < sizeof data_lens / sizeof data_lens[0]; k++) {
                size_t len;
                char *f = format_exact(ids[i], event, event_lens[j], data, data_lens[k], 0, &len);
                assert_int_equal(strlen(f), len);
                assert_int_equal(frame_formatted_size(ids[i], event_lens[j], data_lens[k]), len);
                free(f);
            }
}

static void test_format_size_by_hand(void **state)
{
    (void)state;
    /* "id:" 3 + "42" 2 + "\n" 1 + "event:" 6 + 1 + "\n" 1 + "data:" 5 + 7 + "\n\n" 2 = 28 */
    assert_int_equal(frame_formatted_size(42, 1, 7), 28);
    /* INT64_MAX has 19 digits */
    assert_int_equal(frame_formatted_size(INT64_MAX, 1, 1), 3 + 19 + 1 + 6 + 1 + 1 + 5 + 1 + 2);
    assert_int_equal(frame_formatted_size(0, 0, 0), 3 + 1 + 1 + 6 + 1 + 5 + 2);
}

static void test_format_large_id(void **state)
{
    (void)state;
    size_t len;
    char *f = format_exact(INT64_MAX, S("big"), S("null"), 0, &len);
    assert_string_equal(f, "id:9223372036854775807\nevent:big\ndata:null\n\n");
    free(f);
    f = format_exact((int64_t)1 << 53, S("e"), S("1"), 0, &len);
    assert_string_equal(f, "id:9007199254740992\nevent:e\ndata:1\n\n");
    free(f);
    f = format_exact(0, S("e"), S("1"), 0, &len);
    assert_string_equal(f, "id:0\nevent:e\ndata:1\n\n");
    free(f);
}

static void test_format_retry_between_event_and_data(void **state)
{
    (void)state;
    size_t len;
    char *f = format_exact(42, S("a"), S("{\"x\":1}"), 3000, &len);
    assert_string_equal(f, "id:42\nevent:a\nretry:3000\ndata:{\"x\":1}\n\n");
    assert_int_equal(len, strlen(f));
    assert_int_equal(len, frame_formatted_size(42, 1, 7) + strlen("retry:3000\n"));
    free(f);
    f = format_exact(1, S("e"), S("2"), 1, &len);
    assert_string_equal(f, "id:1\nevent:e\nretry:1\ndata:2\n\n");
    free(f);
    f = format_exact(1, S("e"), S("2"), INT32_MAX, &len);
    assert_string_equal(f, "id:1\nevent:e\nretry:2147483647\ndata:2\n\n");
    free(f);
}

static void test_format_no_retry_when_zero_or_negative(void **state)
{
    (void)state;
    size_t len;
    char *f = format_exact(7, S("e"), S("[]"), 0, &len);
    assert_null(strstr(f, "retry"));
    free(f);
    f = format_exact(7, S("e"), S("[]"), -5, &len);
    assert_string_equal(f, "id:7\nevent:e\ndata:[]\n\n");
    free(f);
}

static void test_format_copies_bytes_verbatim(void **state)
{
    (void)state;
    /* UTF-8 names and data are copied byte for byte; the lengths, not NULs, delimit them. */
    size_t len;
    char *f = format_exact(5, "caf\xC3\xA9XX", 5, "\"\xF0\x9F\x98\x80\"YY", 6, 0, &len);
    assert_string_equal(f, "id:5\nevent:caf\xC3\xA9\ndata:\"\xF0\x9F\x98\x80\"\n\n");
    free(f);
}

static void test_format_returns_needed_size_when_cap_is_zero(void **state)
{
    (void)state;
    /* Like snprintf(NULL, 0, ...): a size query that writes nothing. */
    size_t need = frame_format(NULL, 0, 42, S("a"), S("{\"x\":1}"), 0);
    assert_int_equal(need, strlen("id:42\nevent:a\ndata:{\"x\":1}\n\n"));
    assert_int_equal(frame_format(NULL, 0, 42, S("a"), S("{\"x\":1}"), 3000),
                     need + strlen("retry:3000\n"));
}

static void test_format_truncation_never_overflows(void **state)
{
    (void)state;
    const char full[] = "id:42\nevent:a\ndata:{\"x\":1}\n\n";
    const size_t need = sizeof full - 1;
    for (size_t cap = 1; cap <= need; cap++) {
        /* exactly cap bytes on the heap: ASan reports any write past them */
        char *buf = malloc(cap);
        assert_non_null(buf);
        memset(buf, 'Z', cap);
        assert_int_equal(frame_format(buf, cap, 42, S("a"), S("{\"x\":1}"), 0), need);
        /* NUL-terminated inside cap, and whatever was written is a prefix of the frame
         * (a half frame must never look like a complete one) */
        size_t got = strnlen(buf, cap);
        assert_true(got < cap);
        assert_memory_equal(buf, full, got);
        free(buf);
    }
    /* one byte more than the text fits the NUL as well */
    char buf[sizeof full];
    assert_int_equal(frame_format(buf, sizeof buf, 42, S("a"), S("{\"x\":1}"), 0), need);
    assert_string_equal(buf, full);
}

/* ---- frame_new ---- */

static void check_frame(const struct frame *f, int64_t id, const char *event, size_t event_len,
                        const char *data, size_t data_len)
{
    assert_non_null(f);
    assert_int_equal(f->id, id);
    assert_int_equal(atomic_load(&f->refs), 1);
    assert_int_equal(f->len, frame_formatted_size(id, event_len, data_len));
    assert_int_equal(f->text[f->len], '\0');
    assert_int_equal(f->event_len, event_len);
    assert_memory_equal(f->text + f->event_off, event, event_len);
    assert_int_equal(f->data_len, data_len);
    if (data_len)
        assert_memory_equal(f->text + f->data_off, data, data_len);
    /* the fields sit where the wire format says */
    assert_memory_equal(f->text + f->event_off - 6, "event:", 6);
    assert_int_equal(f->text[f->event_off + f->event_len], '\n');
    assert_memory_equal(f->text + f->data_off - 5, "data:", 5);
    assert_memory_equal(f->text + f->data_off + f->data_len, "\n\n", 2);
    assert_int_equal(f->data_off + f->data_len + 2, f->len);
    /* and the whole text is what frame_format produces */
    size_t len;
    char *want = format_exact(id, event, event_len, data, data_len, 0, &len);
    assert_int_equal(len, f->len);
    assert_memory_equal(f->text, want, len);
    free(want);
}

static void test_frame_new_fields(void **state)
{
    (void)state;
    struct frame *f = frame_new(42, S("a"), S("{\"x\":1}"));
    check_frame(f, 42, S("a"), S("{\"x\":1}"));
    assert_string_equal(f->text, "id:42\nevent:a\ndata:{\"x\":1}\n\n");
    assert_int_equal(f->event_off, strlen("id:42\nevent:"));
    assert_int_equal(f->data_off, strlen("id:42\nevent:a\ndata:"));
    frame_unref(f);
}

static void test_frame_new_large_id_and_long_name(void **state)
{
    (void)state;
    char name[255];
    memset(name, 'n', sizeof name);
    struct frame *f = frame_new(INT64_MAX, name, sizeof name, S("\"v\""));
    check_frame(f, INT64_MAX, name, sizeof name, S("\"v\""));
    assert_memory_equal(f->text, "id:9223372036854775807\nevent:nnn", 32);
    frame_unref(f);
}

static void test_frame_new_ids_of_every_width(void **state)
{
    (void)state;
    int64_t id = 1;
    for (int digits = 1; digits <= 19; digits++) {
        struct frame *f = frame_new(id, S("e"), S("0"));
        check_frame(f, id, S("e"), S("0"));
        assert_int_equal(f->event_off, 3 + digits + 1 + 6);
        frame_unref(f);
        if (digits < 19)
            id *= 10;
    }
}

static void test_frame_new_large_data(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *data = malloc(n);
    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'd', n - 2);
    data[n - 1] = '"';
    struct frame *f = frame_new(3, S("blob"), data, n);
    check_frame(f, 3, S("blob"), data, n);
    frame_unref(f);
    free(data);
}

static void test_frame_new_empty_data(void **state)
{
    (void)state;
    struct frame *f = frame_new(1, S("e"), "", 0);
    check_frame(f, 1, S("e"), "", 0);
    assert_string_equal(f->text, "id:1\nevent:e\ndata:\n\n");
    frame_unref(f);
}

static void test_frame_new_refuses_name_too_long_for_offsets(void **state)
{
    (void)state;
    /* event_len is stored in 16 bits; a longer name must not be silently truncated */
    size_t n = 65536;
    char *name = malloc(n);
    assert_non_null(name);
    memset(name, 'n', n);
    assert_null(frame_new(1, name, n, S("1")));
    free(name);
}

/* ---- reference counting ---- */

static void test_frame_ref_unref(void **state)
{
    (void)state;
    struct frame *f = frame_new(1, S("e"), S("1"));
    assert_int_equal(atomic_load(&f->refs), 1);
    frame_ref(f);
    frame_ref(f);
    assert_int_equal(atomic_load(&f->refs), 3);
    frame_unref(f);
    frame_unref(f);
    assert_int_equal(atomic_load(&f->refs), 1);
    assert_string_equal(f->text, "id:1\nevent:e\ndata:1\n\n"); /* still alive */
    frame_unref(f); /* freed: ASan reports a leak otherwise */
    frame_unref(NULL);
}

static void *ref_unref_many(void *arg)
{
    struct frame *f = arg;
    for (int i = 0; i < 100000; i++) {
        frame_ref(f);
        frame_unref(f);
    }
    return NULL;
}

static void test_frame_refcount_is_atomic_across_threads(void **state)
{
    (void)state;
    struct frame *f = frame_new(9, S("e"), S("1"));
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ref_unref_many, f), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(atomic_load(&f->refs), 1);
    frame_unref(f);
}

static void test_batch_takes_ownership_of_frames(void **state)
{
    (void)state;
    struct frame *frames[3];
    for (int i = 0; i < 3; i++) {
        char data[8];
        int n = snprintf(data, sizeof data, "%d", i);
        frames[i] = frame_new(10 + i, S("e"), data, (size_t)n);
    }
    struct batch *b = batch_new(frames, 3);
    assert_non_null(b);
    assert_int_equal(b->count, 3);
    assert_int_equal(atomic_load(&b->refs), 1);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(b->frames[i], frames[i]);
        assert_int_equal(b->frames[i]->id, 10 + i);
        /* ownership moved: no extra reference was taken */
        assert_int_equal(atomic_load(&b->frames[i]->refs), 1);
    }
    /* the batch copied the array: the caller may reuse it */
    frames[0] = frames[1] = frames[2] = NULL;
    assert_non_null(b->frames[0]);
    batch_unref(b); /* frees the batch and the three frames; ASan reports leaks otherwise */
}

static void test_batch_ref_unref_and_frame_outliving_batch(void **state)
{
    (void)state;
    struct frame *frames[2] = { frame_new(1, S("a"), S("1")), frame_new(2, S("b"), S("2")) };
    struct batch *b = batch_new(frames, 2);
    assert_non_null(b);
    batch_ref(b);
    assert_int_equal(atomic_load(&b->refs), 2);
    /* a subscriber keeps one frame past the batch */
    struct frame *kept = b->frames[1];
    frame_ref(kept);
    batch_unref(b);
    assert_int_equal(atomic_load(&b->refs), 1);
    assert_int_equal(atomic_load(&kept->refs), 2);
    batch_unref(b); /* batch and frame 1 freed; frame 2 still held */
    assert_int_equal(atomic_load(&kept->refs), 1);
    assert_string_equal(kept->text, "id:2\nevent:b\ndata:2\n\n");
    frame_unref(kept);
    batch_unref(NULL);
}

static void test_batch_of_one_and_of_many(void **state)
{
    (void)state;
    struct frame *one = frame_new(1, S("e"), S("1"));
    struct batch *b = batch_new(&one, 1);
    assert_non_null(b);
    assert_int_equal(b->count, 1);
    batch_unref(b);

    enum { N = 1000 };
    struct frame **many = malloc(N * sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < N; i++)
        many[i] = frame_new(i + 1, S("e"), S("1"));
    b = batch_new(many, N);
    free(many);
    assert_non_null(b);
    assert_int_equal(b->count, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(b->frames[i]->id, i + 1);
    batch_unref(b);
}

static void test_batch_empty(void **state)
{
    (void)state;
    struct frame *none[1] = { NULL };
    struct batch *b = batch_new(none, 0);
    assert_non_null(b);
    assert_int_equal(b->count, 0);
    batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_exact_bytes),
        cmocka_unit_test(test_format_size_matches_length),
        cmocka_unit_test(test_format_size_by_hand),
        cmocka_unit_test(test_format_large_id),
        cmocka_unit_test(test_format_retry_between_event_and_data),
        cmocka_unit_test(test_format_no_retry_when_zero_or_negative),
        cmocka_unit_test(test_format_copies_bytes_verbatim),
        cmocka_unit_test(test_format_returns_needed_size_when_cap_is_zero),
        cmocka_unit_test(test_format_truncation_never_overflows),
        cmocka_unit_test(test_frame_new_fields),
        cmocka_unit_test(test_frame_new_large_id_and_long_name),
        cmocka_unit_test(test_frame_new_ids_of_every_width),
        cmocka_unit_test(test_frame_new_large_data),
        cmocka_unit_test(test_frame_new_empty_data),
        cmocka_unit_test(test_frame_new_refuses_name_too_long_for_offsets),
        cmocka_unit_test(test_frame_ref_unref),
        cmocka_unit_test(test_frame_refcount_is_atomic_across_threads),
        cmocka_unit_test(test_batch_takes_ownership_of_frames),
        cmocka_unit_test(test_batch_ref_unref_and_frame_outliving_batch),
        cmocka_unit_test(test_batch_of_one_and_of_many),
        cmocka_unit_test(test_batch_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
