/* access/totp: HOTP/TOTP over OpenSSL's one-shot HMAC, base32 and the otpauth URI. A well-formed
 * typed code is compared with each of the three window steps' codes in constant time, all three
 * always computed, so timing tells nothing about how close a guess was (only the shape check, on
 * public facts, returns early). Key material and the expected codes are wiped before returning. */
#include "access/totp.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The longest secret totp_verify accepts; beyond one SHA-1 block HMAC only hashes the key down. */
#define TOTP_KEY_MAX 64

static_assert((TOTP_SECRET_BYTES * 8 + 4) / 5 + 1 <= TOTP_SECRET_B32_MAX,
              "TOTP_SECRET_B32_MAX must hold the base32 secret and its NUL");
static_assert(TOTP_SECRET_BYTES <= TOTP_KEY_MAX, "totp_verify must accept our own secrets");

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Characters produced by the last 0..4 input bytes of a group of 5. */
static const size_t b32_tail_chars[5] = { 0, 2, 4, 5, 7 };

int totp_new_secret(char out_b32[TOTP_SECRET_B32_MAX])
{
    unsigned char raw[TOTP_SECRET_BYTES];
    randombytes_buf(raw, sizeof raw);
    int rc = base32_encode(raw, sizeof raw, out_b32, TOTP_SECRET_B32_MAX);
    sodium_memzero(raw, sizeof raw);
    return rc;
}

int totp_code(const unsigned char *key, size_t key_len, uint64_t counter, int digits)
{
    static const int pow10[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000 };
    if (!key || key_len == 0 || key_len > INT_MAX || digits < 6 || digits > 8)
        return -1;
    unsigned char msg[8];
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!HMAC(EVP_sha1(), key, (int)key_len, msg, sizeof msg, md, &md_len) || md_len != 20) {
        sodium_memzero(md, sizeof md);
        return -1;
    }
    /* RFC 4226 5.3: the low nibble of the last byte picks 4 bytes; the top bit is dropped so the
     * value reads the same signed or unsigned. */
    unsigned off = md[19] & 0x0f;
    uint32_t bin = ((uint32_t)(md[off] & 0x7f) << 24) | ((uint32_t)md[off + 1] << 16) |
                   ((uint32_t)md[off + 2] << 8) | (uint32_t)md[off + 3];
    sodium_memzero(md, sizeof md);
    return (int)(bin % (uint32_t)pow10[digits]);
}

int base32_encode(const unsigned char *in, size_t len, char *out, size_t out_cap)
{
    /* Computed group by group so that no len can overflow the product len * 8. */
    size_t groups = len / 5;
    if (groups > (SIZE_MAX - 8) / 8)
        return -ENOSPC;
    size_t need = groups * 8 + b32_tail_chars[len % 5];
    if (!out || out_cap < need + 1)
        return -ENOSPC;
    uint32_t acc = 0; /* never holds more than 12 pending bits */
    int bits = 0;
    char *o = out;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            *o++ = b32_alphabet[(acc >> bits) & 0x1f];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        *o++ = b32_alphabet[(acc << (5 - bits)) & 0x1f];
    *o = '\0';
    return 0;
}

/* The 5-bit value of a base32 character in either case, or -1. */
static int b32_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

int base32_decode(const char *in, size_t len, unsigned char *out, size_t out_cap, size_t *out_len)
{
    if (!in && len > 0)
        return -EINVAL;
    size_t data = len;
    while (data > 0 && in[data - 1] == '=')
        data--;
    size_t tail = data % 8;
    /* 1, 3 and 6 leftover characters carry no whole byte: no encoder produces them. */
    if (tail == 1 || tail == 3 || tail == 6)
        return -EINVAL;
    if (data != len) {
        /* Padding, when given, completes the last group of 8 exactly. */
        if (tail == 0 || len - data != 8 - tail)
            return -EINVAL;
    }
    size_t need = data / 8 * 5 + (tail * 5) / 8;
    if (need > out_cap || (need > 0 && !out))
        return -ENOSPC;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < data; i++) {
        int v = b32_value((unsigned char)in[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    /* Non-zero leftover bits mean a second spelling of the same bytes (RFC 4648 3.5). */
    if (acc != 0)
        return -EINVAL;
    if (out_len)
        *out_len = n;
    return 0;
}

static bool uri_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Bytes that s takes once percent-encoded; SIZE_MAX when that overflows. */
static size_t pct_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        size_t add = uri_unreserved((unsigned char)s[i]) ? 1 : 3;
        if (n > SIZE_MAX - add)
            return SIZE_MAX;
        n += add;
    }
    return n;
}

static char *pct_put(char *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (uri_unreserved(c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0x0f];
        }
    }
    return o;
}

static char *str_put(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

char *totp_uri(const char *issuer, const char *username, size_t username_len, const char *secret_b32)
{
    static const char scheme[] = "otpauth://totp/";
    static const char p_secret[] = "?secret=";
    static const char p_issuer[] = "&issuer=";
    static const char p_rest[] = "&algorithm=SHA1&digits=6&period=30";
    if ((!username && username_len > 0) || !secret_b32)
        return NULL;
    size_t issuer_len = issuer ? strlen(issuer) : 0;
    size_t parts[] = {
        sizeof scheme - 1,
        pct_len(issuer, issuer_len),
        issuer_len ? 1 : 0, /* ':' */
        pct_len(username, username_len),
        sizeof p_secret - 1,
        /* The secret is base32 already; encoding it anyway keeps a stray '&' or '=' harmless. */
        pct_len(secret_b32, strlen(secret_b32)),
        issuer_len ? sizeof p_issuer - 1 : 0,
        pct_len(issuer, issuer_len),
        sizeof p_rest - 1,
        1, /* NUL */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i] == SIZE_MAX || total > SIZE_MAX - parts[i])
            return NULL;
        total += parts[i];
    }
    char *uri = malloc(total);
    if (!uri)
        return NULL;
    char *o = str_put(uri, scheme);
    if (issuer_len) {
        o = pct_put(o, issuer, issuer_len);
        *o++ = ':';
    }
    o = pct_put(o, username, username_len);
    o = str_put(o, p_secret);
    o = pct_put(o, secret_b32, strlen(secret_b32));
    if (issuer_len) {
        o = str_put(o, p_issuer);
        o = pct_put(o, issuer, issuer_len);
    }
    o = str_put(o, p_rest);
    *o = '\0';
    return uri;
}

int totp_verify(const char *secret_b32, const char *code, size_t code_len, int64_t now, int64_t last_step,
                int64_t *step)
{
    if (!secret_b32)
        return -EINVAL;
    unsigned char key[TOTP_KEY_MAX];
    size_t key_len = 0;
    /* A secret that does not decode is the server's fault, whatever the user typed. */
    if (base32_decode(secret_b32, strlen(secret_b32), key, sizeof key, &key_len) != 0 || key_len == 0) {
        sodium_memzero(key, sizeof key);
        return -EINVAL;
    }
    bool well_formed = code && code_len == TOTP_DIGITS;
    for (size_t i = 0; well_formed && i < code_len; i++)
        well_formed = code[i] >= '0' && code[i] <= '9';
    if (!well_formed) {
        sodium_memzero(key, sizeof key);
        return -EACCES;
    }

    /* Floor division: the step that contains now, even for (theoretical) times before 1970. */
    int64_t current = now / TOTP_STEP_SECONDS - (now % TOTP_STEP_SECONDS < 0 ? 1 : 0);
    int64_t matched = -1;
    int rc = 0;
    for (int64_t s = current - 1; s <= current + 1; s++) {
        /* Every candidate is computed, eligible or not, so that the work never depends on the
         * input; the latest matching step wins so that a code equal to two steps' codes cannot
         * be accepted twice. */
        int value = totp_code(key, key_len, (uint64_t)(s < 0 ? 0 : s), TOTP_DIGITS);
        if (value < 0) {
            rc = -EINVAL;
            continue;
        }
        char expected[TOTP_DIGITS];
        for (int i = TOTP_DIGITS - 1; i >= 0; i--) {
            expected[i] = (char)('0' + value % 10);
            value /= 10;
        }
        bool equal = sodium_memcmp(expected, code, TOTP_DIGITS) == 0;
        sodium_memzero(expected, sizeof expected);
        if (equal && s >= 0 && s > last_step)
            matched = s;
    }
    sodium_memzero(key, sizeof key);
    if (rc)
        return rc;
    if (matched < 0)
        return -EACCES;
    if (step)
        *step = matched;
    return 0;
}
