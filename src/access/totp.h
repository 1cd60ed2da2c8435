/* access/totp: time-based one-time passwords for the second login factor (RFC 6238: HMAC-SHA-1,
 * 30-second steps, 6 digits), the base32 that carries the secret (RFC 4648) and the otpauth:// URI
 * that authenticator apps scan. Pure functions, no state and no logging: the caller owns every
 * buffer and stores the secret and the last accepted step. Thread-safe. totp_new_secret draws from
 * libsodium, so auth_init (sodium_init) must have run first. */
#ifndef BROKER_ACCESS_TOTP_H
#define BROKER_ACCESS_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define TOTP_SECRET_BYTES 20   /* 160 bits, the HMAC-SHA-1 output size RFC 4226 recommends */
#define TOTP_SECRET_B32_MAX 40 /* base32 of the secret (32 characters) + NUL, with room to spare */
#define TOTP_STEP_SECONDS 30
#define TOTP_DIGITS 6

/* A new random secret, base32 without padding (32 characters, NUL-terminated). 0 on success. */
int totp_new_secret(char out_b32[TOTP_SECRET_B32_MAX]);

/* RFC 4226 HOTP of counter under key, dynamic truncation, digits 6 to 8. The code as an int (print
 * it with leading zeros: "%0*d"), or -1 for an empty key or a digit count out of range. */
int totp_code(const unsigned char *key, size_t key_len, uint64_t counter, int digits);

/* Base32 (RFC 4648 alphabet, upper case) of in, no '=' padding, NUL-terminated into out.
 * 0, or -ENOSPC when out_cap cannot hold the text and its NUL. */
int base32_encode(const unsigned char *in, size_t len, char *out, size_t out_cap);
/* Decodes len characters of base32. Lower case is accepted; '=' padding is optional but, if
 * present, must be complete (a multiple of 8 characters). Rejected with -EINVAL: any other
 * character, a length no encoding produces, and leftover bits that are not zero (so each value has
 * exactly one accepted spelling, padding and case aside). -ENOSPC when the bytes exceed out_cap.
 * On success 0 and *out_len the number of bytes written; on error out's contents are unspecified. */
int base32_decode(const char *in, size_t len, unsigned char *out, size_t out_cap, size_t *out_len);

/* otpauth://totp/<issuer>:<username>?secret=<base32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30
 * with issuer and username percent-encoded as UTF-8 bytes (only RFC 3986 unreserved characters are
 * kept, so ':' '@' ' ' become %3A %40 %20). A NULL or empty issuer leaves out the prefix and the
 * issuer parameter. Returns a malloc'd string (caller frees), or NULL for a NULL secret_b32 (or
 * username with username_len > 0) or when out of memory. */
char *totp_uri(const char *issuer, const char *username, size_t username_len, const char *secret_b32);

/* Checks a 6-digit code typed by the user against secret_b32 at unix time now, allowing one step
 * before and after (±30 s). A code is accepted once: last_step is the step of the last code
 * accepted for this user (0 = none); only a step > last_step is accepted. On success returns 0
 * and *step the matched step (the caller stores it as the new last_step); -EACCES for a wrong,
 * replayed or malformed code (anything but exactly 6 ASCII digits); -EINVAL for a bad secret. */
int totp_verify(const char *secret_b32, const char *code, size_t code_len, int64_t now, int64_t last_step,
                int64_t *step);

#endif
