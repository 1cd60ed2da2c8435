/* subject: base64url (RFC 4648 §5, no padding) of event names into one NATS subject token behind a
 * per-stream prefix, and back. The decoder is strict so that the mapping is a bijection. */
#include "cluster/subject.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of c, or -1 outside the alphabet. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int subject_prefix(const char *stream, char *out, size_t cap)
{
    size_t len = stream ? strlen(stream) : 0;
    if (len == 0 || len > SUBJECT_STREAM_MAX)
        return -EINVAL;
    if (cap < len + sizeof ".ev")
        return -ENOSPC;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)stream[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return -EINVAL;
        out[i] = (char)c;
    }
    memcpy(out + len, ".ev", sizeof ".ev");
    return 0;
}

int subject_token_encode(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (cap < need + 1)
        return -ENOSPC;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
}

int subject_token_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    /* A lone trailing character would carry 6 bits: no byte string encodes to that. */
    if (len % 4 == 1)
        return -EINVAL;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (cap < need)
        return -ENOSPC;
    size_t o = 0, i = 0;
    for (; i + 4 <= len; i += 4) {
        int a = sextet((unsigned char)in[i]), b = sextet((unsigned char)in[i + 1]);
        int c = sextet((unsigned char)in[i + 2]), d = sextet((unsigned char)in[i + 3]);
        if ((a | b | c | d) < 0)
            return -EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (char)(v >> 16);
        out[o++] = (char)(v >> 8 & 0xff);
        out[o++] = (char)(v & 0xff);
    }
    size_t rest = len - i;
    if (rest >= 2) {
        int a = sextet((unsigned char)in[i]), b = sextet((unsigned char)in[i + 1]);
        int c = rest == 3 ? sextet((unsigned char)in[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* The bits past the last whole byte must be zero, or two spellings would decode alike. */
        if (rest == 2 ? (v & 0xffff) != 0 : (v & 0xff) != 0)
            return -EINVAL;
        out[o++] = (char)(v >> 16);
        if (rest == 3)
            out[o++] = (char)(v >> 8 & 0xff);
    }
    if (out_len)
        *out_len = o;
    return 0;
}

int subject_encode(const char *prefix, const char *name, size_t name_len, char *out, size_t cap,
                   size_t *out_len)
{
    if (!prefix || !name || name_len == 0 || name_len > SUBJECT_NAME_MAX)
        return -EINVAL;
    size_t plen = strlen(prefix);
    if (cap < plen + 1)
        return -ENOSPC;
    memcpy(out, prefix, plen);
    out[plen] = '.';
    size_t tlen;
    int rc = subject_token_encode(name, name_len, out + plen + 1, cap - plen - 1, &tlen);
    if (rc != 0)
        return rc;
    if (out_len)
        *out_len = plen + 1 + tlen;
    return 0;
}

int subject_decode(const char *prefix, const char *subject, size_t subject_len, char *name,
                   size_t cap, size_t *name_len)
{
    if (!prefix || !subject)
        return -EINVAL;
    size_t plen = strlen(prefix);
    if (subject_len < plen + 2 || memcmp(subject, prefix, plen) != 0 || subject[plen] != '.')
        return -EINVAL;
    const char *token = subject + plen + 1;
    size_t tlen = subject_len - plen - 1;
    if (tlen > SUBJECT_TOKEN_CAP - 1)
        return -EINVAL;
    size_t len;
    int rc = subject_token_decode(token, tlen, name, cap, &len);
    if (rc != 0)
        return rc;
    if (len == 0 || len > SUBJECT_NAME_MAX)
        return -EINVAL;
    if (name_len)
        *name_len = len;
    return 0;
}
