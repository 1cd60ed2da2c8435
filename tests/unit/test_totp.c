/* Unit tests of access/totp: RFC 4226 and RFC 6238 test vectors, base32 (RFC 4648 vectors, round
 * trips, what decoding refuses), the ±1-step window and replay refusal of totp_verify, the exact
 * otpauth URI, and (when built with libqrencode) the QR code's SVG envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <sodium.h>

#include "access/totp.h"
#ifdef BROKER_HAVE_QRENCODE
#include "access/qr_svg.h"
#endif

static const unsigned char rfc_key[] = "12345678901234567890"; /* 20 bytes + NUL */
#define RFC_KEY_LEN 20
/* base32 of rfc_key */
static const char rfc_key_b32[] = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

static void hotp_matches_rfc4226_appendix_d(void **state)
{
    (void)state;
    static const int expected[10] = { 755224, 287082, 359152, 969429, 338314,
                                      254676, 287922, 162583, 399871, 520489 };
    for (uint64_t c = 0; c < 10; c++)
        assert_int_equal(totp_code(rfc_key, RFC_KEY_LEN, c, 6), expected[c]);
}

static void totp_matches_rfc6238_appendix_b_sha1(void **state)
{
    (void)state;
    static const struct {
        int64_t t;
        int code;
    } v[] = {
        { 59, 94287082 },         { 1111111109, 7081804 },  { 1111111111, 14050471 },
        { 1234567890, 89005924 }, { 2000000000, 69279037 }, { 20000000000, 65353130 },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int code = totp_code(rfc_key, RFC_KEY_LEN, (uint64_t)(v[i].t / 30), 8);
        assert_int_equal(code, v[i].code);
    }
    /* The leading zero of 07081804 is the caller's to print. */
    char text[16];
    snprintf(text, sizeof text, "%0*d", 8, totp_code(rfc_key, RFC_KEY_LEN, 1111111109 / 30, 8));
    assert_string_equal(text, "07081804");
}

static void totp_code_rejects_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(totp_code(rfc_key, 0, 1, 6), -1);
    assert_int_equal(totp_code(NULL, 20, 1, 6), -1);
    assert_int_equal(totp_code(rfc_key, RFC_KEY_LEN, 1, 5), -1);
    assert_int_equal(totp_code(rfc_key, RFC_KEY_LEN, 1, 9), -1);
    /* RFC 4226 Appendix D: counter 1 truncates to 1094287082 before the modulo. */
    assert_int_equal(totp_code(rfc_key, RFC_KEY_LEN, 1, 7), 4287082);
    assert_int_equal(totp_code(rfc_key, RFC_KEY_LEN, 1, 8), 94287082);
    /* Large counters use all 8 bytes, big-endian. */
    assert_true(totp_code(rfc_key, RFC_KEY_LEN, UINT64_MAX, 6) >= 0);
}

static void base32_matches_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *b32, *padded;
    } v[] = {
        { "", "", "" },
        { "f", "MY", "MY======" },
        { "fo", "MZXQ", "MZXQ====" },
        { "foo", "MZXW6", "MZXW6===" },
        { "foob", "MZXW6YQ", "MZXW6YQ=" },
        { "fooba", "MZXW6YTB", "MZXW6YTB" },
        { "foobar", "MZXW6YTBOI", "MZXW6YTBOI======" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[32];
        size_t rawlen = strlen(v[i].raw);
        assert_int_equal(base32_encode((const unsigned char *)v[i].raw, rawlen, out, sizeof out), 0);
        assert_string_equal(out, v[i].b32);

        unsigned char dec[16];
        size_t n = 99;
        assert_int_equal(base32_decode(v[i].b32, strlen(v[i].b32), dec, sizeof dec, &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v[i].raw, rawlen);

        /* Padding and lower case are accepted on input. */
        n = 99;
        assert_int_equal(base32_decode(v[i].padded, strlen(v[i].padded), dec, sizeof dec, &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v[i].raw, rawlen);
        char lower[32];
        size_t l = strlen(v[i].padded);
        for (size_t k = 0; k <= l; k++)
            lower[k] = (char)((v[i].padded[k] >= 'A' && v[i].padded[k] <= 'Z') ? v[i].padded[k] + 32
                                                                               : v[i].padded[k]);
        n = 99;
        assert_int_equal(base32_decode(lower, l, dec, sizeof dec, &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v[i].raw, rawlen);
    }
    char out[40];
    assert_int_equal(base32_encode(rfc_key, RFC_KEY_LEN, out, sizeof out), 0);
    assert_string_equal(out, rfc_key_b32);
}

static void base32_round_trips_every_length(void **state)
{
    (void)state;
    unsigned char raw[64], dec[64];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (unsigned char)(i * 37 + 11);
    raw[0] = 0xff;
    raw[1] = 0x00;
    for (size_t len = 0; len <= sizeof raw; len++) {
        char b32[128];
        assert_int_equal(base32_encode(raw, len, b32, sizeof b32), 0);
        assert_int_equal(strlen(b32), (len * 8 + 4) / 5);
        size_t n = 0;
        assert_int_equal(base32_decode(b32, strlen(b32), dec, sizeof dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);
    }
}

static void base32_refuses_bad_input_and_small_buffers(void **state)
{
    (void)state;
    unsigned char dec[16];
    size_t n;
    static const char *bad[] = {
        "M",          /* 1 leftover character carries no byte */
        "MZX",        /* 3 */
        "MZXW6Y",     /* 6 */
        "MZ",         /* leftover bits not zero: a second spelling of "f" */
        "MY0",        /* '0' is not in the alphabet */
        "MY1=====",   /* nor '1' */
        "MZXW 6",     /* nor a space */
        "MY=",        /* incomplete padding */
        "MY=======",  /* too much padding */
        "MY==MZXQ",   /* padding in the middle */
        "========",   /* padding alone */
        "MZXW6YTB=",  /* padding after a complete group */
        "MZ+W6YTB",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(base32_decode(bad[i], strlen(bad[i]), dec, sizeof dec, &n), -EINVAL);
    /* An embedded NUL is just an invalid character. */
    assert_int_equal(base32_decode("MZ\0W6YTB", 8, dec, sizeof dec, &n), -EINVAL);
    /* Only len characters are read. */
    assert_int_equal(base32_decode("MZXW6YTBOI", 5, dec, sizeof dec, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, "foo", 3);

    assert_int_equal(base32_decode("MZXW6YTBOI", 10, dec, 5, &n), -ENOSPC);
    assert_int_equal(base32_decode("MZXW6YTBOI", 10, dec, 6, &n), 0);
    char out[11];
    assert_int_equal(base32_encode((const unsigned char *)"foobar", 6, out, 10), -ENOSPC);
    assert_int_equal(base32_encode((const unsigned char *)"foobar", 6, out, 11), 0);
    assert_string_equal(out, "MZXW6YTBOI");
}

static void new_secrets_are_random_base32_of_20_bytes(void **state)
{
    (void)state;
    char a[TOTP_SECRET_B32_MAX], b[TOTP_SECRET_B32_MAX];
    assert_int_equal(totp_new_secret(a), 0);
    assert_int_equal(totp_new_secret(b), 0);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    unsigned char raw[TOTP_SECRET_BYTES + 4];
    size_t n = 0;
    assert_int_equal(base32_decode(a, strlen(a), raw, sizeof raw, &n), 0);
    assert_int_equal(n, TOTP_SECRET_BYTES);
    /* A fresh secret verifies its own current code. */
    int64_t now = 1700000000, step = 0;
    char code[8];
    snprintf(code, sizeof code, "%06d", totp_code(raw, n, (uint64_t)(now / 30), 6));
    assert_int_equal(totp_verify(a, code, 6, now, 0, &step), 0);
    assert_int_equal(step, now / 30);
}

/* The 6-digit code of rfc_key at step s, as typed. */
static void code_at(int64_t s, char out[8])
{
    snprintf(out, 8, "%06d", totp_code(rfc_key, RFC_KEY_LEN, (uint64_t)s, 6));
}

static void verify_accepts_the_window_and_refuses_beyond(void **state)
{
    (void)state;
    const int64_t now = 1111111111; /* step 37037037, 1 s into it */
    const int64_t t = now / 30;
    char c[5][8]; /* steps t-2 .. t+2 */
    for (int i = 0; i < 5; i++)
        code_at(t - 2 + i, c[i]);
    /* The refusals below only mean something if the outer codes differ from the window's. */
    for (int i = 1; i <= 3; i++) {
        assert_string_not_equal(c[0], c[i]);
        assert_string_not_equal(c[4], c[i]);
    }
    int64_t step = -7;
    assert_int_equal(totp_verify(rfc_key_b32, c[2], 6, now, 0, &step), 0);
    assert_int_equal(step, t);
    assert_int_equal(totp_verify(rfc_key_b32, c[1], 6, now, 0, &step), 0);
    assert_int_equal(step, t - 1);
    assert_int_equal(totp_verify(rfc_key_b32, c[3], 6, now, 0, &step), 0);
    assert_int_equal(step, t + 1);
    step = -7;
    assert_int_equal(totp_verify(rfc_key_b32, c[0], 6, now, 0, &step), -EACCES);
    assert_int_equal(totp_verify(rfc_key_b32, c[4], 6, now, 0, &step), -EACCES);
    assert_int_equal(step, -7); /* untouched on refusal */

    /* The window is in steps, not seconds: at the last second of step t, t+1 is still in. */
    assert_int_equal(totp_verify(rfc_key_b32, c[3], 6, t * 30 + 29, 0, &step), 0);
    assert_int_equal(totp_verify(rfc_key_b32, c[1], 6, t * 30, 0, &step), 0);
    /* ... and 30 s later the old step has left it. */
    assert_int_equal(totp_verify(rfc_key_b32, c[1], 6, now + 30, 0, &step), -EACCES);

    /* A wrong code of the right shape. */
    char wrong[8];
    int guess = atoi(c[2]);
    do {
        guess = (guess + 1) % 1000000;
        snprintf(wrong, sizeof wrong, "%06d", guess);
    } while (!strcmp(wrong, c[1]) || !strcmp(wrong, c[2]) || !strcmp(wrong, c[3]));
    assert_int_equal(totp_verify(rfc_key_b32, wrong, 6, now, 0, &step), -EACCES);

    /* The RFC's own vector through verify (its last 6 digits): T=1111111111 -> 14050471. */
    assert_int_equal(totp_verify(rfc_key_b32, "050471", 6, 1111111111, 0, &step), 0);
    assert_int_equal(step, 1111111111 / 30);
    /* A lower-case or padded secret is the same secret. */
    assert_int_equal(totp_verify("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", "050471", 6, now, 0, &step), 0);
}

static void verify_accepts_each_step_once(void **state)
{
    (void)state;
    const int64_t now = 1234567890;
    const int64_t t = now / 30;
    char prev[8], cur[8], next[8];
    code_at(t - 1, prev);
    code_at(t, cur);
    code_at(t + 1, next);
    int64_t step = 0, last = 0;
    /* Confirmation: the code is accepted and its step becomes last_step. */
    assert_int_equal(totp_verify(rfc_key_b32, cur, 6, now, last, &step), 0);
    last = step;
    /* Replay of the same code, even seconds later in the same step or the next. */
    assert_int_equal(totp_verify(rfc_key_b32, cur, 6, now, last, &step), -EACCES);
    assert_int_equal(totp_verify(rfc_key_b32, cur, 6, now + 25, last, &step), -EACCES);
    /* An older code still inside the window. */
    assert_int_equal(totp_verify(rfc_key_b32, prev, 6, now, last, &step), -EACCES);
    /* A newer code is fine, and then it is used up too. */
    assert_int_equal(totp_verify(rfc_key_b32, next, 6, now, last, &step), 0);
    assert_int_equal(step, t + 1);
    last = step;
    assert_int_equal(totp_verify(rfc_key_b32, next, 6, now + 30, last, &step), -EACCES);
    /* Having accepted t+1 early, the code of t is now an older step. */
    assert_int_equal(totp_verify(rfc_key_b32, cur, 6, now, last, &step), -EACCES);
    /* last_step in the future (clock went back) refuses everything up to it. */
    assert_int_equal(totp_verify(rfc_key_b32, cur, 6, now, t + 5, &step), -EACCES);
}

static void verify_refuses_malformed_codes_and_bad_secrets(void **state)
{
    (void)state;
    const int64_t now = 1111111111;
    int64_t step = -7;
    static const char *malformed[] = { "12345", "1234567", "12a456", "", " 05047", "05047 ",
                                       "-50471", "+50471", "０50471" };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        assert_int_equal(totp_verify(rfc_key_b32, malformed[i], strlen(malformed[i]), now, 0, &step),
                         -EACCES);
    assert_int_equal(totp_verify(rfc_key_b32, NULL, 0, now, 0, &step), -EACCES);
    /* Length counts, not the NUL: the right digits with a wrong length are refused. */
    assert_int_equal(totp_verify(rfc_key_b32, "050471", 5, now, 0, &step), -EACCES);
    assert_int_equal(totp_verify(rfc_key_b32, "0504710", 7, now, 0, &step), -EACCES);
    assert_int_equal(totp_verify(rfc_key_b32, "05\0471", 6, now, 0, &step), -EACCES);
    assert_int_equal(step, -7);

    /* A secret that does not decode, or decodes to nothing, is the server's error. */
    assert_int_equal(totp_verify("", "050471", 6, now, 0, &step), -EINVAL);
    assert_int_equal(totp_verify("not base32!", "050471", 6, now, 0, &step), -EINVAL);
    assert_int_equal(totp_verify("MZ", "050471", 6, now, 0, &step), -EINVAL);
    assert_int_equal(totp_verify(NULL, "050471", 6, now, 0, &step), -EINVAL);
    /* ... even when the code is malformed as well. */
    assert_int_equal(totp_verify("", "x", 1, now, 0, &step), -EINVAL);
    /* Longer than 64 bytes is refused rather than truncated. */
    char big[128];
    memset(big, 'A', 112); /* 112 characters = 70 bytes */
    big[112] = '\0';
    assert_int_equal(totp_verify(big, "050471", 6, now, 0, &step), -EINVAL);
    assert_int_equal(step, -7);
}

static void uri_percent_encodes_label_and_issuer(void **state)
{
    (void)state;
    /* Space, '@', ':' and a two-byte UTF-8 'ü' in the username, then bytes beyond username_len. */
    const char user[] = "jane doe@example.com:\xc3\xbc~_-.XYZ";
    char *uri = totp_uri("Acme Broker", user, strlen(user) - 3, "JBSWY3DPEHPK3PXP");
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/Acme%20Broker:jane%20doe%40example.com%3A%C3%BC~_-."
                             "?secret=JBSWY3DPEHPK3PXP&issuer=Acme%20Broker&algorithm=SHA1&digits=6&period=30");
    free(uri);

    uri = totp_uri("a:b&c=d/e?", "u", 1, "MZXW6");
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/a%3Ab%26c%3Dd%2Fe%3F:u?secret=MZXW6&issuer=a%3Ab%26c%3Dd%2Fe%3F"
                             "&algorithm=SHA1&digits=6&period=30");
    free(uri);

    /* No issuer: no prefix and no parameter. */
    uri = totp_uri(NULL, "bob", 3, "MZXW6");
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/bob?secret=MZXW6&algorithm=SHA1&digits=6&period=30");
    free(uri);
    uri = totp_uri("", "bob", 3, "MZXW6");
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/bob?secret=MZXW6&algorithm=SHA1&digits=6&period=30");
    free(uri);

    assert_null(totp_uri("x", "bob", 3, NULL));
    assert_null(totp_uri("x", NULL, 3, "MZXW6"));
}

#ifdef BROKER_HAVE_QRENCODE
static void qr_svg_is_a_standalone_document(void **state)
{
    (void)state;
    char *uri = totp_uri("Acme Broker", "jane doe", 8, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_non_null(uri);
    char *svg = qr_svg(uri);
    free(uri);
    assert_non_null(svg);
    size_t len = strlen(svg);
    assert_true(len > 200);
    assert_int_equal(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39), 0);
    assert_string_equal(svg + len - 7, "</svg>\n");
    assert_non_null(strstr(svg, "viewBox=\"0 0 "));
    assert_non_null(strstr(svg, "fill=\"#fff\""));
    /* Exactly one path, whose first run is the finder pattern's top edge at the quiet zone. */
    const char *path = strstr(svg, "<path");
    assert_non_null(path);
    assert_null(strstr(path + 1, "<path"));
    assert_non_null(strstr(path, "d=\"M4 4h7v1h-7z"));
    free(svg);

    assert_null(qr_svg(NULL));
    /* Beyond a version-40 symbol's capacity. */
    char *huge = malloc(8000);
    assert_non_null(huge);
    memset(huge, 'x', 7999);
    huge[7999] = '\0';
    assert_null(qr_svg(huge));
    free(huge);
}
#endif

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hotp_matches_rfc4226_appendix_d),
        cmocka_unit_test(totp_matches_rfc6238_appendix_b_sha1),
        cmocka_unit_test(totp_code_rejects_bad_arguments),
        cmocka_unit_test(base32_matches_rfc4648_vectors),
        cmocka_unit_test(base32_round_trips_every_length),
        cmocka_unit_test(base32_refuses_bad_input_and_small_buffers),
        cmocka_unit_test(new_secrets_are_random_base32_of_20_bytes),
        cmocka_unit_test(verify_accepts_the_window_and_refuses_beyond),
        cmocka_unit_test(verify_accepts_each_step_once),
        cmocka_unit_test(verify_refuses_malformed_codes_and_bad_secrets),
        cmocka_unit_test(uri_percent_encodes_label_and_issuer),
#ifdef BROKER_HAVE_QRENCODE
        cmocka_unit_test(qr_svg_is_a_standalone_document),
#endif
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
