/* fuzz_validate: the byte rules of src/validate.c against independent judges. utf8_valid must
 * agree with jansson's UTF-8 check (json_stringn accepts exactly the well-formed strings, NULs
 * included) and with a decoder written here from the Unicode standard's table of well-formed
 * byte sequences (Table 3-7). text_without_controls must equal "well-formed and no C0, DEL or
 * C1 code point"; validate_event_name / validate_username / validate_password must follow their
 * length rules (SPEC §2), and an event name must not start with a space. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

static void fail(const char *what, const uint8_t *s, size_t len)
{
    fprintf(stderr, "fuzz_validate: %s\ninput (%zu bytes):", what, len);
    for (size_t i = 0; i < len && i < 256; i++)
        fprintf(stderr, " %02x", s[i]);
    fprintf(stderr, "\n");
    abort();
}

/* Table 3-7: the well-formed UTF-8 byte sequences. Also reports whether a control code point
 * (C0, DEL, C1) occurs. */
static bool reference_utf8(const uint8_t *s, size_t len, bool *has_control)
{
    *has_control = false;
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        uint32_t cp;
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (b <= 0x7F) {
            cp = b;
            n = 0;
        } else if (b >= 0xC2 && b <= 0xDF) {
            cp = b & 0x1F;
            n = 1;
        } else if (b == 0xE0) {
            cp = b & 0x0F;
            n = 2;
            lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            cp = b & 0x0F;
            n = 2;
        } else if (b == 0xED) {
            cp = b & 0x0F;
            n = 2;
            hi = 0x9F;
        } else if (b == 0xF0) {
            cp = b & 0x07;
            n = 3;
            lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            cp = b & 0x07;
            n = 3;
        } else if (b == 0xF4) {
            cp = b & 0x07;
            n = 3;
            hi = 0x8F;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            uint8_t c = s[i + k];
            uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (c < l || c > h)
                return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
            *has_control = true;
        i += n + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    bool control;
    bool ref = reference_utf8(data, size, &control);
    bool mine = utf8_valid(s, size);
    json_t *j = json_stringn(s, size);
    bool jans = j != NULL;
    json_decref(j);
    if (mine != ref)
        fail(mine ? "utf8_valid accepts an ill-formed sequence" : "utf8_valid refuses well-formed UTF-8",
             data, size);
    if (jans != ref)
        fail("jansson and the reference decoder disagree (harness bug)", data, size);

    bool text = text_without_controls(s, size);
    if (text != (ref && !control))
        fail(text ? "text_without_controls accepts a control character or ill-formed UTF-8"
                  : "text_without_controls refuses clean text",
             data, size);

    bool event_ok = validate_event_name(s, size) == NULL;
    /* SPEC §2: no leading space (an SSE parser strips one after "event:"). */
    if (event_ok != (size >= 1 && size <= EVENT_NAME_MAX && text && data[0] != ' '))
        fail("validate_event_name does not follow its rules", data, size);
    bool user_ok = validate_username(s, size) == NULL;
    if (user_ok != (size >= 1 && size <= USERNAME_MAX && text))
        fail("validate_username does not follow its rules", data, size);
    bool pass_ok = validate_password(s, size) == NULL;
    if (pass_ok != (size >= PASSWORD_MIN && size <= PASSWORD_MAX))
        fail("validate_password does not follow its rules", data, size);
    const char *reasons[] = { validate_event_name(s, size), validate_username(s, size),
                              validate_password(s, size) };
    for (int i = 0; i < 3; i++)
        if (reasons[i] && (!*reasons[i] || strchr(reasons[i], '\n')))
            fail("a reason is empty or not one line", data, size);

    /* Every prefix agrees too (catches reads past len that happen to be harmless at the end). */
    if (size > 0 && size <= 64) {
        for (size_t cut = 0; cut < size; cut++) {
            bool c2;
            if (utf8_valid(s, cut) != reference_utf8(data, cut, &c2))
                fail("utf8_valid disagrees with the reference on a prefix", data, cut);
        }
    }
    return 0;
}
