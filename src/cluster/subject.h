/* subject: the reversible mapping between event names and NATS subjects used by cluster mode.
 *
 * An event name may hold anything NATS forbids or gives a meaning to in a subject (`.`, `*`, `>`,
 * spaces, CR/LF, any UTF-8), so a name travels as one subject token in base64url without padding
 * (RFC 4648 §5: only `A-Z a-z 0-9 - _`), after a prefix derived from the stream name:
 *
 *     stream BROKER_EVENTS, event "a.b c"  ->  "broker_events.ev.YS5iIGM"
 *
 * The prefix differs per stream, so several streams (several brokers) share one NATS account. The
 * decoder accepts only what the encoder produces (canonical base64url, the exact prefix), so one
 * name has exactly one subject: JetStream's last-message-per-subject is the last event per name.
 *
 * Pure functions on caller-owned buffers: no allocation, no state, any thread. Each returns 0 or a
 * negative errno-style code: -EINVAL (malformed input), -ENOSPC (the output buffer is too small). */
#ifndef BROKER_CLUSTER_SUBJECT_H
#define BROKER_CLUSTER_SUBJECT_H

#include <stddef.h>

/* Longest event name in bytes (SPEC §2). */
#define SUBJECT_NAME_MAX 255
/* Longest stream name accepted (NATS allows more; 64 keeps subjects short). */
#define SUBJECT_STREAM_MAX 64
/* Longest prefix: lowercased stream name plus ".ev", and its NUL. */
#define SUBJECT_PREFIX_CAP (SUBJECT_STREAM_MAX + 4)
/* Longest token: base64url of SUBJECT_NAME_MAX bytes (340 characters), and a NUL. */
#define SUBJECT_TOKEN_CAP (((SUBJECT_NAME_MAX + 2) / 3) * 4 + 1)
/* Longest subject: prefix, '.', token, NUL. */
#define SUBJECT_CAP (SUBJECT_PREFIX_CAP + SUBJECT_TOKEN_CAP)

/* The subject prefix of a stream: its name in lowercase plus ".ev". The stream name must be 1 to
 * SUBJECT_STREAM_MAX bytes of [A-Za-z0-9_-] (a valid name for a stream and for a subject token). */
int subject_prefix(const char *stream, char *out, size_t cap);

/* base64url without padding of in[0..len) into out, NUL-terminated; *out_len (may be NULL)
 * receives its length. An empty input gives an empty token. Also used for KV keys. */
int subject_token_encode(const char *in, size_t len, char *out, size_t cap, size_t *out_len);
/* The inverse: -EINVAL for a character outside the alphabet, an impossible length (len % 4 == 1),
 * or unused low bits that are not zero (a non-canonical spelling of the same bytes). The output is
 * a byte string with a length, not NUL-terminated. */
int subject_token_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len);

/* "<prefix>.<token(name)>", NUL-terminated. The name must be 1 to SUBJECT_NAME_MAX bytes. */
int subject_encode(const char *prefix, const char *name, size_t name_len, char *out, size_t cap,
                   size_t *out_len);
/* The inverse: -EINVAL unless subject is exactly "<prefix>." plus a canonical token of a 1 to
 * SUBJECT_NAME_MAX byte name. */
int subject_decode(const char *prefix, const char *subject, size_t subject_len, char *name,
                   size_t cap, size_t *name_len);

#endif
