/* validate: the input rules of SPEC §2 and §4 for names, passwords and idempotency keys, as pure
 * functions over bytes. */
#ifndef BROKER_VALIDATE_H
#define BROKER_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define EVENT_NAME_MAX 255
#define USERNAME_MAX 128
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define IDEMPOTENCY_KEY_MAX 128

/* Well-formed UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
bool utf8_valid(const char *s, size_t len);
/* UTF-8 with no C0 controls, no DEL and no C1 controls (U+0080..U+009F). */
bool text_without_controls(const char *s, size_t len);

/* Each returns NULL when the value is acceptable, else a reason fit for a 400 error body. */
const char *validate_event_name(const char *s, size_t len);
const char *validate_username(const char *s, size_t len);
const char *validate_password(const char *s, size_t len);
/* The Idempotency-Key header of /insert: 1 to 128 bytes of printable ASCII (SPEC §4). */
const char *validate_idempotency_key(const char *s, size_t len);

#endif
