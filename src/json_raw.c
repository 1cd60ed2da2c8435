/* json_raw: a scanner that trusts its input to be valid JSON, so it only has to find boundaries:
 * strings (with escapes), nested containers, and scalars that end at a delimiter. */
#include "json_raw.h"

#include <stdint.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is the opening quote; returns the index just past the closing quote. */
static size_t skip_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

static size_t skip_value(const char *s, size_t i, size_t len)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, i, len);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < len) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, i, len);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return len;
    }
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
           s[i] != '\r' && s[i] != '\n')
        i++;
    return i;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Decodes the string literal s[i..j) (quotes included) into buf as UTF-8; -1 when it does not
 * fit (such a key cannot equal the short keys we look for). */
static long decode_key(const char *s, size_t i, size_t j, char *buf, size_t cap)
{
    size_t n = 0;
    for (i++; i + 1 < j; i++) {
        uint32_t cp = (unsigned char)s[i];
        if (s[i] == '\\') {
            char e = s[++i];
            switch (e) {
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (i + 4 >= j || hex4(s + i + 1, &cp) != 0)
                    return -1;
                i += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < j && s[i + 1] == '\\' && s[i + 2] == 'u') {
                    uint32_t lo;
                    if (hex4(s + i + 3, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                break;
            default: cp = (unsigned char)e; break; /* \" \\ \/ */
            }
            char tmp[4];
            size_t k = 0;
            if (cp < 0x80) {
                tmp[k++] = (char)cp;
            } else if (cp < 0x800) {
                tmp[k++] = (char)(0xC0 | (cp >> 6));
                tmp[k++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                tmp[k++] = (char)(0xE0 | (cp >> 12));
                tmp[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                tmp[k++] = (char)(0x80 | (cp & 0x3F));
            } else {
                tmp[k++] = (char)(0xF0 | (cp >> 18));
                tmp[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                tmp[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                tmp[k++] = (char)(0x80 | (cp & 0x3F));
            }
            if (n + k > cap)
                return -1;
            memcpy(buf + n, tmp, k);
            n += k;
            continue;
        }
        if (n + 1 > cap)
            return -1;
        buf[n++] = (char)cp;
    }
    return (long)n;
}

int json_raw_member(const char *doc, size_t len, const char *key, size_t keylen, size_t *start,
                    size_t *end)
{
    int found = -1;
    size_t i = skip_ws(doc, 0, len);
    if (i >= len || doc[i] != '{')
        return -1;
    i++;
    for (;;) {
        i = skip_ws(doc, i, len);
        if (i >= len || doc[i] != '"')
            return found; /* '}' of an empty object, or the end */
        size_t kend = skip_string(doc, i, len);
        char name[256];
        long nlen = decode_key(doc, i, kend, name, sizeof name);
        i = skip_ws(doc, kend, len);
        if (i >= len || doc[i] != ':')
            return found;
        i = skip_ws(doc, i + 1, len);
        size_t vstart = i;
        i = skip_value(doc, i, len);
        if (nlen >= 0 && (size_t)nlen == keylen && memcmp(name, key, keylen) == 0) {
            *start = vstart;
            *end = i;
            found = 0;
        }
        i = skip_ws(doc, i, len);
        if (i >= len || doc[i] != ',')
            return found;
        i++;
    }
}

size_t json_raw_compact(const char *src, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        char c = src[i];
        if (c == '"') {
            size_t j = skip_string(src, i, len);
            memcpy(out + n, src + i, j - i);
            n += j - i;
            i = j;
        } else {
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                out[n++] = c;
            i++;
        }
    }
    return n;
}
