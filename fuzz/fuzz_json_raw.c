/* fuzz_json_raw: feeds bytes that jansson accepts as a JSON object (parsed with the flags of
 * http_read_json_object in src/http/reply.c, i.e. exactly the bodies POST /insert lets through) to
 * json_raw_member and json_raw_compact (src/json_raw.c), and checks them against jansson:
 * - compact output is never longer than the input, holds no raw newline or other control byte,
 *   and re-parses to a value equal (json_equal) to the input's;
 * - for "data", "event" and every key of the object (up to the 256 bytes json_raw looks at):
 *   json_raw_member finds the member exactly when jansson has it, and the span it returns
 *   re-parses to the value jansson holds (last duplicate wins in both);
 * - the compacted member span (what /insert stores) re-parses to the same value too. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_raw.h"

#define LOAD_FLAGS (JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

static void fail(const char *what, const char *doc, size_t len)
{
    fprintf(stderr, "fuzz_json_raw: %s\ninput (%zu bytes): %.*s\n", what, len,
            (int)(len > 2000 ? 2000 : len), doc);
    abort();
}

/* The member key in the object per jansson vs json_raw_member. */
static void check_member(const char *doc, size_t len, json_t *root, const char *key, size_t keylen)
{
    size_t start = 0, end = 0;
    int rc = json_raw_member(doc, len, key, keylen, &start, &end);
    json_t *want = json_object_getn(root, key, keylen);
    if (rc != 0) {
        if (want)
            fail("json_raw_member missed a member jansson has", doc, len);
        return;
    }
    if (!want)
        fail("json_raw_member found a member jansson does not have", doc, len);
    if (start > end || end > len)
        fail("json_raw_member span out of bounds", doc, len);
    json_t *got = json_loadb(doc + start, end - start, LOAD_FLAGS | JSON_DECODE_ANY, NULL);
    if (!got)
        fail("json_raw_member span does not parse", doc, len);
    if (!json_equal(got, want))
        fail("json_raw_member span parses to another value", doc, len);
    json_decref(got);

    char *out = malloc(end - start + 1);
    if (!out)
        abort();
    size_t n = json_raw_compact(doc + start, end - start, out);
    if (n > end - start)
        fail("compacted member longer than its span", doc, len);
    got = json_loadb(out, n, LOAD_FLAGS | JSON_DECODE_ANY, NULL);
    if (!got || !json_equal(got, want))
        fail("compacted member does not re-parse to the same value", doc, len);
    json_decref(got);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc = (const char *)data;
    /* jansson 2.14 accepts a raw NUL right after a number or literal ({"a":1\0,"b":2}); the server
     * refuses such bodies before json_raw sees them (http/reply.c), so the harness does too. */
    if (memchr(doc, '\0', size))
        return 0;
    json_t *root = json_loadb(doc, size, LOAD_FLAGS, NULL);
    if (!root)
        return 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }

    char *out = malloc(size + 1);
    if (!out)
        abort();
    size_t n = json_raw_compact(doc, size, out);
    if (n > size)
        fail("compact output longer than the input", doc, size);
    if (memchr(out, '\n', n))
        fail("compact output holds a raw newline (would split an SSE data: line)", doc, size);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20)
            fail("compact output holds a raw control byte (not JSON)", doc, size);
    json_t *again = json_loadb(out, n, LOAD_FLAGS, NULL);
    if (!again)
        fail("compact output does not parse", doc, size);
    if (!json_equal(root, again))
        fail("compact output parses to another value", doc, size);
    json_decref(again);
    /* Compacting is idempotent. */
    char *out2 = malloc(n + 1);
    if (!out2)
        abort();
    if (json_raw_compact(out, n, out2) != n || memcmp(out, out2, n) != 0)
        fail("compacting twice changes the text", doc, size);
    free(out2);
    free(out);

    check_member(doc, size, root, "data", 4);
    check_member(doc, size, root, "event", 5);
    const char *key;
    size_t keylen;
    json_t *value;
    int budget = 64;
    json_object_keylen_foreach(root, key, keylen, value) {
        (void)value;
        if (budget-- == 0)
            break;
        /* json_raw.h: a key that decodes to more than 256 bytes is never looked for. */
        if (keylen <= 256)
            check_member(doc, size, root, key, keylen);
    }
    json_decref(root);
    return 0;
}
