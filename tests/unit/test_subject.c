/* Unit tests of cluster/subject: the prefix, RFC 4648 vectors, awkward names round-trip, the strict
 * decoder (only canonical spellings, only our prefix), and the buffer bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/subject.h"

static void prefix_is_the_lowercased_stream_plus_ev(void **state)
{
    (void)state;
    char p[SUBJECT_PREFIX_CAP];
    assert_int_equal(subject_prefix("BROKER_EVENTS", p, sizeof p), 0);
    assert_string_equal(p, "broker_events.ev");
    assert_int_equal(subject_prefix("a-B_9", p, sizeof p), 0);
    assert_string_equal(p, "a-b_9.ev");
    /* Characters that are not valid in a stream name or would split or widen the subject. */
    const char *bad[] = { "", "A.B", "A B", "A*", "A>", "A/B", "\xc3\xa9t\xc3\xa9", "A\tB" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(subject_prefix(bad[i], p, sizeof p), -EINVAL);
    char longest[SUBJECT_STREAM_MAX + 2];
    memset(longest, 'S', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_int_equal(subject_prefix(longest, p, sizeof p), -EINVAL);
    longest[SUBJECT_STREAM_MAX] = '\0';
    assert_int_equal(subject_prefix(longest, p, sizeof p), 0);
    assert_int_equal(strlen(p), SUBJECT_STREAM_MAX + 3);
    char small[8];
    assert_int_equal(subject_prefix("STREAM", small, sizeof small), -ENOSPC);
}

/* RFC 4648 §10 test vectors, in the URL alphabet without padding. */
static void token_matches_rfc4648_vectors(void **state)
{
    (void)state;
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *out[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        char tok[16], back[16];
        size_t tlen, blen;
        assert_int_equal(subject_token_encode(in[i], strlen(in[i]), tok, sizeof tok, &tlen), 0);
        assert_string_equal(tok, out[i]);
        assert_int_equal(tlen, strlen(out[i]));
        assert_int_equal(subject_token_decode(tok, tlen, back, sizeof back, &blen), 0);
        assert_int_equal(blen, strlen(in[i]));
        assert_memory_equal(back, in[i], blen);
    }
    /* The URL alphabet: 0xfb 0xff -> "-_8" (standard base64 would give "+/8="). */
    char tok[8];
    assert_int_equal(subject_token_encode("\xfb\xff", 2, tok, sizeof tok, NULL), 0);
    assert_string_equal(tok, "-_8");
}

static void round_trip(const char *name, size_t len)
{
    char subject[SUBJECT_CAP], back[SUBJECT_NAME_MAX];
    size_t slen, blen;
    assert_int_equal(subject_encode("s.ev", name, len, subject, sizeof subject, &slen), 0);
    assert_int_equal(slen, strlen(subject));
    assert_memory_equal(subject, "s.ev.", 5);
    /* A valid subject: no whitespace, no wildcard, exactly one token after the prefix. */
    for (size_t i = 5; i < slen; i++) {
        char c = subject[i];
        assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_');
    }
    assert_int_equal(subject_decode("s.ev", subject, slen, back, sizeof back, &blen), 0);
    assert_int_equal(blen, len);
    assert_memory_equal(back, name, len);
}

static void awkward_names_round_trip(void **state)
{
    (void)state;
    const char *names[] = { "a", "a.b.c", "*", ">", "a.*.>", " leading space", "crlf\r\nin name",
                            "tab\there", "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x9a\x80", "..", "a b",
                            "\x7f", "=", "%2e" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        round_trip(names[i], strlen(names[i]));
    char longest[SUBJECT_NAME_MAX];
    for (size_t i = 0; i < sizeof longest; i++)
        longest[i] = (char)(0x80 | (i * 7 % 64));
    round_trip(longest, sizeof longest);
    /* Every byte value, in every position of a 3-byte group. */
    for (int b = 0; b < 256; b++) {
        for (size_t len = 1; len <= 3; len++) {
            char n[3] = { 'x', 'y', 'z' };
            n[len - 1] = (char)b;
            round_trip(n, len);
        }
    }
}

static void encode_rejects_bad_names_and_small_buffers(void **state)
{
    (void)state;
    char out[SUBJECT_CAP];
    char big[SUBJECT_NAME_MAX + 1];
    memset(big, 'x', sizeof big);
    assert_int_equal(subject_encode("p", "", 0, out, sizeof out, NULL), -EINVAL);
    assert_int_equal(subject_encode("p", big, sizeof big, out, sizeof out, NULL), -EINVAL);
    assert_int_equal(subject_encode("p", "abc", 3, out, 6, NULL), -ENOSPC); /* "p.YWJj" + NUL */
    assert_int_equal(subject_encode("p", "abc", 3, out, 7, NULL), 0);
    assert_string_equal(out, "p.YWJj");
    char tok[4];
    assert_int_equal(subject_token_encode("abc", 3, tok, sizeof tok, NULL), -ENOSPC);
}

static void decode_accepts_only_canonical_tokens_under_our_prefix(void **state)
{
    (void)state;
    char name[SUBJECT_NAME_MAX];
    size_t len;
#define DEC(s) subject_decode("s.ev", (s), strlen(s), name, sizeof name, &len)
    assert_int_equal(DEC("s.ev.YWJj"), 0);
    assert_int_equal(len, 3);
    assert_int_equal(DEC("t.ev.YWJj"), -EINVAL);   /* another stream's prefix */
    assert_int_equal(DEC("s.evYWJj"), -EINVAL);    /* no dot after the prefix */
    assert_int_equal(DEC("s.ev."), -EINVAL);       /* empty name */
    assert_int_equal(DEC("s.ev"), -EINVAL);
    assert_int_equal(DEC("s.ev.YWJj.x"), -EINVAL); /* a second token */
    assert_int_equal(DEC("s.ev.YW=j"), -EINVAL);   /* padding or foreign characters */
    assert_int_equal(DEC("s.ev.YW+j"), -EINVAL);
    assert_int_equal(DEC("s.ev.YW/j"), -EINVAL);
    assert_int_equal(DEC("s.ev.Y"), -EINVAL);      /* impossible length */
    assert_int_equal(DEC("s.ev.YWJjZ"), -EINVAL);
    assert_int_equal(DEC("s.ev.Zg"), 0);           /* "f" */
    assert_int_equal(DEC("s.ev.Zh"), -EINVAL);     /* "f" with non-zero spare bits */
    assert_int_equal(DEC("s.ev.Zm8"), 0);          /* "fo" */
    assert_int_equal(DEC("s.ev.Zm9"), -EINVAL);
#undef DEC
    /* Longer than any name. */
    char subject[SUBJECT_CAP + 8];
    memcpy(subject, "s.ev.", 5);
    memset(subject + 5, 'A', 344);
    assert_int_equal(subject_decode("s.ev", subject, 5 + 344, name, sizeof name, &len), -EINVAL);
    /* A buffer too small for the name. */
    char tiny[2];
    assert_int_equal(subject_decode("s.ev", "s.ev.YWJj", 9, tiny, sizeof tiny, &len), -ENOSPC);
    /* The subject need not be NUL-terminated: only subject_len bytes are read. */
    assert_int_equal(subject_decode("s.ev", "s.ev.YWJjXXXX", 9, name, sizeof name, &len), 0);
    assert_int_equal(len, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefix_is_the_lowercased_stream_plus_ev),
        cmocka_unit_test(token_matches_rfc4648_vectors),
        cmocka_unit_test(awkward_names_round_trip),
        cmocka_unit_test(encode_rejects_bad_names_and_small_buffers),
        cmocka_unit_test(decode_accepts_only_canonical_tokens_under_our_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
