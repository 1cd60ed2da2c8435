/* Unit tests of src/validate.c: UTF-8 well-formedness, control characters and the length rules of
 * SPEC §2 for event names, usernames and passwords. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "validate.h"

/* Byte strings with their exact length (they may contain NUL). */
#define B(lit) (lit), (sizeof(lit) - 1)

static bool valid(const char *s, size_t len) { return utf8_valid(s, len); }

/* A heap copy of exactly len bytes, so ASan catches any read past the end. */
static bool valid_exact(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    bool r = utf8_valid(copy, len);
    free(copy);
    return r;
}

static bool clean_exact(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    bool r = text_without_controls(copy, len);
    free(copy);
    return r;
}

/* ---- utf8_valid ---- */

static void test_utf8_accepts_ascii_and_empty(void **state)
{
    (void)state;
    assert_true(valid(B("")));
    assert_true(valid(NULL, 0));
    assert_true(valid(B("hello world")));
    assert_true(valid(B("\x7f")));
    assert_true(valid(B("a\0b"))); /* NUL is a valid code point; controls are another rule */
}

static void test_utf8_accepts_two_three_four_byte_chars(void **state)
{
    (void)state;
    assert_true(valid_exact(B("\xC3\xA9")));             /* é U+00E9 */
    assert_true(valid_exact(B("\xE2\x82\xAC")));         /* € U+20AC */
    assert_true(valid_exact(B("\xF0\x9F\x98\x80")));     /* 😀 U+1F600 */
    assert_true(valid_exact(B("caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80!")));
}

static void test_utf8_accepts_boundaries_of_each_length(void **state)
{
    (void)state;
    assert_true(valid_exact(B("\xC2\x80")));             /* U+0080, smallest 2-byte */
    assert_true(valid_exact(B("\xDF\xBF")));             /* U+07FF, largest 2-byte */
    assert_true(valid_exact(B("\xE0\xA0\x80")));         /* U+0800, smallest 3-byte */
    assert_true(valid_exact(B("\xED\x9F\xBF")));         /* U+D7FF, just below surrogates */
    assert_true(valid_exact(B("\xEE\x80\x80")));         /* U+E000, just above surrogates */
    assert_true(valid_exact(B("\xEF\xBF\xBF")));         /* U+FFFF */
    assert_true(valid_exact(B("\xF0\x90\x80\x80")));     /* U+10000, smallest 4-byte */
    assert_true(valid_exact(B("\xF4\x8F\xBF\xBF")));     /* U+10FFFF, largest code point */
}

static void test_utf8_rejects_overlongs(void **state)
{
    (void)state;
    assert_false(valid_exact(B("\xC0\x80")));            /* U+0000 in 2 bytes */
    assert_false(valid_exact(B("\xC0\xAF")));            /* '/' in 2 bytes */
    assert_false(valid_exact(B("\xC1\xBF")));            /* U+007F in 2 bytes */
    assert_false(valid_exact(B("\xE0\x80\x80")));        /* U+0000 in 3 bytes */
    assert_false(valid_exact(B("\xE0\x80\xAF")));        /* '/' in 3 bytes */
    assert_false(valid_exact(B("\xE0\x9F\xBF")));        /* U+07FF in 3 bytes */
    assert_false(valid_exact(B("\xF0\x80\x80\x80")));    /* U+0000 in 4 bytes */
    assert_false(valid_exact(B("\xF0\x8F\xBF\xBF")));    /* U+FFFF in 4 bytes */
    assert_false(valid_exact(B("a\xC0\x80" "b")));
}

static void test_utf8_rejects_surrogates(void **state)
{
    (void)state;
    assert_false(valid_exact(B("\xED\xA0\x80")));        /* U+D800 */
    assert_false(valid_exact(B("\xED\xAF\xBF")));        /* U+DBFF */
    assert_false(valid_exact(B("\xED\xB0\x80")));        /* U+DC00 */
    assert_false(valid_exact(B("\xED\xBF\xBF")));        /* U+DFFF */
    /* a CESU-8 surrogate pair for U+1F600 is not UTF-8 */
    assert_false(valid_exact(B("\xED\xA0\xBD\xED\xB8\x80")));
}

static void test_utf8_rejects_above_max_code_point(void **state)
{
    (void)state;
    assert_false(valid_exact(B("\xF4\x90\x80\x80")));    /* U+110000 */
    assert_false(valid_exact(B("\xF4\xBF\xBF\xBF")));
    assert_false(valid_exact(B("\xF5\x80\x80\x80")));
    assert_false(valid_exact(B("\xF7\xBF\xBF\xBF")));
    assert_false(valid_exact(B("\xF8\x88\x80\x80\x80")));
    assert_false(valid_exact(B("\xFC\x84\x80\x80\x80\x80")));
    assert_false(valid_exact(B("\xFE")));
    assert_false(valid_exact(B("\xFF")));
}

static void test_utf8_rejects_truncated_sequences(void **state)
{
    (void)state;
    assert_false(valid_exact(B("\xC3")));
    assert_false(valid_exact(B("\xE2\x82")));
    assert_false(valid_exact(B("\xE2")));
    assert_false(valid_exact(B("\xF0\x9F\x98")));
    assert_false(valid_exact(B("\xF0\x9F")));
    assert_false(valid_exact(B("\xF0")));
    assert_false(valid_exact(B("ok\xC3")));
    /* a truncated sequence followed by something that is not a continuation byte */
    assert_false(valid_exact(B("\xE2\x82" "a")));
    assert_false(valid_exact(B("\xC3 ")));
    assert_false(valid_exact(B("\xF0\x9F\x98" "\xC3\xA9")));
    assert_false(valid_exact(B("\xC3\0")));
}

static void test_utf8_respects_length_not_terminator(void **state)
{
    (void)state;
    /* The bytes after len are a valid continuation, but they are not part of the input. */
    const char *s = "\xC3\xA9";
    assert_false(utf8_valid(s, 1));
    const char *euro = "\xE2\x82\xAC";
    assert_false(utf8_valid(euro, 2));
    const char *smile = "\xF0\x9F\x98\x80";
    assert_false(utf8_valid(smile, 3));
    assert_true(utf8_valid(smile, 4));
    /* and an invalid byte just past len is not looked at */
    assert_true(utf8_valid("ab\xFF", 2));
}

static void test_utf8_rejects_lone_continuation_bytes(void **state)
{
    (void)state;
    assert_false(valid_exact(B("\x80")));
    assert_false(valid_exact(B("\xBF")));
    assert_false(valid_exact(B("a\x80" "b")));
    assert_false(valid_exact(B("\xC3\xA9\xA9")));        /* one continuation too many */
    assert_false(valid_exact(B("\xE2\x82\xAC\x80")));
}

/* Every single byte: exactly 00..7F are valid on their own. */
static void test_utf8_single_bytes(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        assert_int_equal(valid_exact(&c, 1), b < 0x80);
    }
}

/* Every 2-byte pair: valid exactly when lead is C2..DF and the second is a continuation. */
static void test_utf8_all_two_byte_pairs(void **state)
{
    (void)state;
    for (int a = 0x80; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            char s[2] = { (char)a, (char)b };
            bool want = a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF;
            if (valid_exact(s, 2) != want)
                print_error("bytes %02X %02X: expected %d\n", a, b, want);
            assert_int_equal(valid_exact(s, 2), want);
        }
    }
}

/* Table 3-7 of the Unicode standard (well-formed byte sequences), as a reference predicate. */
static bool second_byte_ok(int lead, int b)
{
    if (lead == 0xE0)
        return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED)
        return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0)
        return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4)
        return b >= 0x80 && b <= 0x8F;
    return b >= 0x80 && b <= 0xBF;
}

static bool is_cont(int b) { return b >= 0x80 && b <= 0xBF; }

/* Every 3-byte sequence with a 3-byte lead. */
static void test_utf8_all_three_byte_sequences(void **state)
{
    (void)state;
    for (int a = 0xE0; a <= 0xEF; a++) {
        for (int b = 0; b < 256; b++) {
            for (int c = 0; c < 256; c++) {
                char s[3] = { (char)a, (char)b, (char)c };
                bool want = second_byte_ok(a, b) && is_cont(c);
                if (utf8_valid(s, 3) != want) {
                    print_error("bytes %02X %02X %02X: expected %d\n", a, b, c, want);
                    fail();
                }
            }
        }
    }
}

/* Every 4-byte lead with every second byte, and representative third and fourth bytes. */
static void test_utf8_four_byte_sequences(void **state)
{
    (void)state;
    const int tails[] = { 0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC3, 0xFF };
    const size_t nt = sizeof tails / sizeof tails[0];
    for (int a = 0xF0; a <= 0xFF; a++) {
        for (int b = 0; b < 256; b++) {
            for (size_t i = 0; i < nt; i++) {
                for (size_t j = 0; j < nt; j++) {
                    int c = tails[i], d = tails[j];
                    char s[4] = { (char)a, (char)b, (char)c, (char)d };
                    bool want = a <= 0xF4 && second_byte_ok(a, b) && is_cont(c) && is_cont(d);
                    if (utf8_valid(s, 4) != want) {
                        print_error("bytes %02X %02X %02X %02X: expected %d\n", a, b, c, d, want);
                        fail();
                    }
                }
            }
        }
    }
}

/* Every scalar value, encoded by a straightforward encoder, is valid; every surrogate is not. */
static void test_utf8_every_code_point(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        char s[4];
        size_t n;
        if (cp < 0x80) {
            s[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            s[0] = (char)(0xE0 | (cp >> 12));
            s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[2] = (char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            s[0] = (char)(0xF0 | (cp >> 18));
            s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[3] = (char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        bool want = cp < 0xD800 || cp > 0xDFFF;
        if (utf8_valid(s, n) != want) {
            print_error("U+%04X: expected %d\n", (unsigned)cp, want);
            fail();
        }
        /* and text_without_controls agrees with the control-character rule */
        bool control = cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
        if (text_without_controls(s, n) != (want && !control)) {
            print_error("text_without_controls U+%04X: expected %d\n", (unsigned)cp, want && !control);
            fail();
        }
    }
}

/* ---- text_without_controls ---- */

static void test_text_accepts_printable_and_non_ascii(void **state)
{
    (void)state;
    assert_true(clean_exact(B("hello world")));
    assert_true(clean_exact(B(" ~!")));
    assert_true(clean_exact(B("caf\xC3\xA9")));
    assert_true(clean_exact(B("\xC2\xA0")));             /* U+00A0 NBSP, first after C1 */
    assert_true(clean_exact(B("\xC2\xBF")));
    assert_true(clean_exact(B("\xC3\x80")));             /* C3 80 is U+00C0, not a control */
    assert_true(clean_exact(B("\xE2\x82\xAC\xF0\x9F\x98\x80")));
    assert_true(clean_exact(B("")));
}

static void test_text_rejects_c0_controls(void **state)
{
    (void)state;
    assert_false(clean_exact(B("a\0b")));
    assert_false(clean_exact(B("\0")));
    assert_false(clean_exact(B("line\n")));
    assert_false(clean_exact(B("a\rb")));
    assert_false(clean_exact(B("tab\there")));
    assert_false(clean_exact(B("\x1b[31m")));
    assert_false(clean_exact(B("\x1f")));
    for (int c = 0; c < 0x20; c++) {
        char s[3] = { 'x', (char)c, 'y' };
        assert_false(clean_exact(s, 3));
    }
}

static void test_text_rejects_del(void **state)
{
    (void)state;
    assert_false(clean_exact(B("\x7f")));
    assert_false(clean_exact(B("abc\x7f")));
}

static void test_text_rejects_c1_controls(void **state)
{
    (void)state;
    assert_false(clean_exact(B("\xC2\x80")));            /* U+0080 */
    assert_false(clean_exact(B("\xC2\x85")));            /* U+0085 NEL */
    assert_false(clean_exact(B("\xC2\x9F")));            /* U+009F */
    assert_false(clean_exact(B("ok\xC2\x9B" "x")));      /* U+009B CSI */
    for (int b = 0x80; b <= 0x9F; b++) {
        char s[2] = { (char)0xC2, (char)b };
        assert_false(clean_exact(s, 2));
    }
}

static void test_text_rejects_invalid_utf8(void **state)
{
    (void)state;
    assert_false(clean_exact(B("\xC0\x80")));
    assert_false(clean_exact(B("\xED\xA0\x80")));
    assert_false(clean_exact(B("\xF4\x90\x80\x80")));
    assert_false(clean_exact(B("abc\xC3")));
    assert_false(clean_exact(B("\x80")));
}

/* ---- event names ---- */

static char *repeat(const char *unit, size_t unit_len, size_t times)
{
    char *s = malloc(unit_len * times + 1);
    assert_non_null(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * unit_len, unit, unit_len);
    s[unit_len * times] = '\0';
    return s;
}

static void test_event_name_lengths(void **state)
{
    (void)state;
    assert_non_null(validate_event_name("", 0));
    assert_null(validate_event_name("a", 1));
    char *s255 = repeat("e", 1, 255);
    assert_null(validate_event_name(s255, 255));
    free(s255);
    char *s256 = repeat("e", 1, 256);
    const char *why = validate_event_name(s256, 256);
    assert_non_null(why);
    assert_non_null(strstr(why, "255"));
    free(s256);
}

static void test_event_name_length_counts_bytes_not_chars(void **state)
{
    (void)state;
    /* 85 euro signs are 255 bytes; 86 are 258 bytes. */
    char *ok = repeat("\xE2\x82\xAC", 3, 85);
    assert_null(validate_event_name(ok, 255));
    free(ok);
    char *too_long = repeat("\xE2\x82\xAC", 3, 86);
    assert_non_null(validate_event_name(too_long, 258));
    free(too_long);
    /* 64 four-byte chars are 256 bytes */
    char *smiles = repeat("\xF0\x9F\x98\x80", 4, 64);
    assert_non_null(validate_event_name(smiles, 256));
    assert_null(validate_event_name(smiles, 252));
    free(smiles);
}

static void test_event_name_rejects_controls_and_bad_utf8(void **state)
{
    (void)state;
    assert_non_null(validate_event_name(B("a\nb")));
    assert_non_null(validate_event_name(B("a\0")));
    assert_non_null(validate_event_name(B("\x7f")));
    assert_non_null(validate_event_name(B("\xC2\x85")));
    assert_non_null(validate_event_name(B("\xC3")));
    assert_non_null(validate_event_name(B("\xED\xA0\x80")));
    /* an event name with a newline would break the frame: event:a\nb */
    const char *why = validate_event_name(B("a\r"));
    assert_non_null(why);
    assert_true(strlen(why) > 0);
}

static void test_event_name_accepts_spaces_punctuation_unicode(void **state)
{
    (void)state;
    assert_null(validate_event_name(B("user.created")));
    assert_null(validate_event_name(B("a b:c/d,e")));
    assert_null(validate_event_name(B("caf\xC3\xA9")));
    assert_null(validate_event_name(B("\xF0\x9F\x98\x80")));
    assert_null(validate_event_name(B("trailing ")));
}

static void test_idempotency_key(void **state)
{
    (void)state;
    assert_null(validate_idempotency_key(B("a")));
    assert_null(validate_idempotency_key(B("order-42 / retry #3 ~")));
    char *k128 = repeat("k", 1, 128);
    assert_null(validate_idempotency_key(k128, 128));
    assert_non_null(validate_idempotency_key(k128, 0)); /* empty */
    free(k128);
    char *k129 = repeat("k", 1, 129);
    assert_non_null(strstr(validate_idempotency_key(k129, 129), "128"));
    free(k129);
    assert_non_null(validate_idempotency_key(B("tab\there")));
    assert_non_null(validate_idempotency_key(B("del\x7f")));
    assert_non_null(strstr(validate_idempotency_key(B("cl\xC3\xA9")), "ASCII"));
}

/* "event: x" reaches an SSE client as "x": a name that starts with a space is refused. */
static void test_event_name_refuses_a_leading_space(void **state)
{
    (void)state;
    assert_non_null(validate_event_name(B(" x")));
    assert_non_null(validate_event_name(B(" ")));
    assert_non_null(strstr(validate_event_name(B("  two")), "space"));
}

/* ---- usernames ---- */

static void test_username_lengths(void **state)
{
    (void)state;
    assert_non_null(validate_username("", 0));
    assert_null(validate_username("a", 1));
    char *s128 = repeat("u", 1, 128);
    assert_null(validate_username(s128, 128));
    free(s128);
    char *s129 = repeat("u", 1, 129);
    const char *why = validate_username(s129, 129);
    assert_non_null(why);
    assert_non_null(strstr(why, "128"));
    free(s129);
    /* 64 two-byte chars = 128 bytes; 65 = 130 bytes */
    char *e64 = repeat("\xC3\xA9", 2, 65);
    assert_null(validate_username(e64, 128));
    assert_non_null(validate_username(e64, 130));
    free(e64);
}

static void test_username_rejects_controls_and_bad_utf8(void **state)
{
    (void)state;
    assert_non_null(validate_username(B("bob\n")));
    assert_non_null(validate_username(B("bo\0b")));
    assert_non_null(validate_username(B("bob\t")));
    assert_non_null(validate_username(B("bob\x7f")));
    assert_non_null(validate_username(B("bob\xC2\x80")));
    assert_non_null(validate_username(B("bob\xFF")));
    assert_non_null(validate_username(B("\xC0\xAF")));
    assert_null(validate_username(B("Bob Smith")));
    assert_null(validate_username(B("b\xC3\xB6rk")));
}

/* ---- passwords ---- */

static void test_password_lengths(void **state)
{
    (void)state;
    char *p = repeat("p", 1, 1025);
    const char *why7 = validate_password(p, 7);
    assert_non_null(why7);
    assert_non_null(strstr(why7, "8"));
    assert_non_null(validate_password(p, 0));
    assert_null(validate_password(p, 8));
    assert_null(validate_password(p, 1024));
    const char *why1025 = validate_password(p, 1025);
    assert_non_null(why1025);
    assert_non_null(strstr(why1025, "1024"));
    free(p);
}

static void test_password_length_counts_bytes(void **state)
{
    (void)state;
    /* four 2-byte chars are 8 bytes: long enough */
    assert_null(validate_password(B("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9")));
    /* three 2-byte chars are 6 bytes: too short */
    assert_non_null(validate_password(B("\xC3\xA9\xC3\xA9\xC3\xA9")));
}

static void test_password_content_is_not_restricted(void **state)
{
    (void)state;
    /* Passwords are opaque bytes to the hash: spaces, tabs and non-ASCII are all allowed. */
    assert_null(validate_password(B("correct horse battery staple")));
    assert_null(validate_password(B("tab\tin\tpass")));
    assert_null(validate_password(B("p\xC3\xA4ssw\xC3\xB6rd")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_accepts_ascii_and_empty),
        cmocka_unit_test(test_utf8_accepts_two_three_four_byte_chars),
        cmocka_unit_test(test_utf8_accepts_boundaries_of_each_length),
        cmocka_unit_test(test_utf8_rejects_overlongs),
        cmocka_unit_test(test_utf8_rejects_surrogates),
        cmocka_unit_test(test_utf8_rejects_above_max_code_point),
        cmocka_unit_test(test_utf8_rejects_truncated_sequences),
        cmocka_unit_test(test_utf8_respects_length_not_terminator),
        cmocka_unit_test(test_utf8_rejects_lone_continuation_bytes),
        cmocka_unit_test(test_utf8_single_bytes),
        cmocka_unit_test(test_utf8_all_two_byte_pairs),
        cmocka_unit_test(test_utf8_all_three_byte_sequences),
        cmocka_unit_test(test_utf8_four_byte_sequences),
        cmocka_unit_test(test_utf8_every_code_point),
        cmocka_unit_test(test_text_accepts_printable_and_non_ascii),
        cmocka_unit_test(test_text_rejects_c0_controls),
        cmocka_unit_test(test_text_rejects_del),
        cmocka_unit_test(test_text_rejects_c1_controls),
        cmocka_unit_test(test_text_rejects_invalid_utf8),
        cmocka_unit_test(test_event_name_lengths),
        cmocka_unit_test(test_event_name_length_counts_bytes_not_chars),
        cmocka_unit_test(test_event_name_rejects_controls_and_bad_utf8),
        cmocka_unit_test(test_event_name_accepts_spaces_punctuation_unicode),
        cmocka_unit_test(test_event_name_refuses_a_leading_space),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_username_lengths),
        cmocka_unit_test(test_username_rejects_controls_and_bad_utf8),
        cmocka_unit_test(test_password_lengths),
        cmocka_unit_test(test_password_length_counts_bytes),
        cmocka_unit_test(test_password_content_is_not_restricted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
