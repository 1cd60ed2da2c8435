/* validate: UTF-8 and the length/character rules for event names, usernames and passwords. */
#include "validate.h"

#include <stdint.h>

bool utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead (C0, C1) or beyond F4 */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

bool text_without_controls(const char *str, size_t len)
{
    if (!utf8_valid(str, len))
        return false;
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7F)
            return false;
        /* C1 controls are encoded as C2 80..C2 9F. */
        if (s[i] == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F)
            return false;
    }
    return true;
}

const char *validate_event_name(const char *s, size_t len)
{
    if (len == 0)
        return "event must not be empty";
    if (len > EVENT_NAME_MAX)
        return "event must be at most 255 bytes";
    if (!text_without_controls(s, len))
        return "event must be valid UTF-8 without control characters";
    /* An SSE parser strips one space after "event:", so such a name would never arrive intact. */
    if (s[0] == ' ')
        return "event must not start with a space";
    return NULL;
}

const char *validate_username(const char *s, size_t len)
{
    if (len == 0)
        return "username must not be empty";
    if (len > USERNAME_MAX)
        return "username must be at most 128 bytes";
    if (!text_without_controls(s, len))
        return "username must be valid UTF-8 without control characters";
    return NULL;
}

const char *validate_password(const char *s, size_t len)
{
    (void)s;
    if (len < PASSWORD_MIN)
        return "password must be at least 8 bytes";
    if (len > PASSWORD_MAX)
        return "password must be at most 1024 bytes";
    return NULL;
}

const char *validate_idempotency_key(const char *s, size_t len)
{
    if (len == 0 || len > IDEMPOTENCY_KEY_MAX)
        return "Idempotency-Key must be 1 to 128 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return "Idempotency-Key must be printable ASCII";
    return NULL;
}
