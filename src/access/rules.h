/* rules: the --rules=FILE access rules of SPEC §5 — who may publish and who may subscribe to each
 * event name. Owns the file format (JSON, parsed with jansson), its validation with one-line
 * "line N: ..." reasons, the role table of a file (at most 64 distinct roles, so a set of roles is
 * a uint64_t mask), and the pattern matcher.
 *
 *     {"rules": [{"events": "user.{user_id}.*", "publish": "self", "subscribe": "self"},
 *                {"events": "admin.*", "publish": ["admin"], "subscribe": ["admin", "ops"]},
 *                {"events": "*", "publish": "none", "subscribe": "any"}]}
 *
 * The first rule whose pattern matches a name decides; a name no rule matches is forbidden. In a
 * pattern `*` matches any run of characters (empty or not, dots included); `{user_id}` and
 * `{username}` each match one non-empty run and capture it; any other `{` is a literal. Wildcards
 * take the shortest run that still lets the rest match, leftmost first ("user.{user_id}.*" on
 * "user.a.b.c" captures "a"), and never split a UTF-8 character.
 *
 * A loaded struct rules is immutable: share it read-only between threads, swap the pointer on a
 * reload. A NULL struct rules means "no rules file": everything is allowed. Names are expected to
 * be valid event names (validate_event_name); any bytes are safe, only the meaning is unspecified. */
#ifndef BROKER_ACCESS_RULES_H
#define BROKER_ACCESS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RULES_MAX 1024            /* rules in one file */
#define RULES_MAX_ROLES 64        /* distinct role names in one file: a role set is a uint64_t */
#define RULES_ROLE_NAME_MAX 64    /* bytes in a role name, [A-Za-z0-9_.-]{1,64} */
#define RULES_PATTERN_MAX 255     /* bytes in a pattern, like an event name */
#define RULES_FILE_MAX (1u << 20) /* rules_load_file refuses larger files */

struct rules;

/* Parses and validates a rules file held in text[0..len). 0 and *out (free with rules_free), or
 * -EINVAL with a one-line reason in err starting "line N: " (the JSON error's line, or the line
 * where the offending rule starts), or -ENOMEM. *out is NULL on failure. err may be NULL. */
int rules_parse(const char *text, size_t len, struct rules **out, char *err, size_t err_cap);
/* rules_parse of a file. Also -errno (e.g. -ENOENT, -EACCES) when it cannot be read, or -EFBIG
 * beyond RULES_FILE_MAX, with err "cannot read PATH: reason". */
int rules_load_file(const char *path, struct rules **out, char *err, size_t err_cap);
void rules_free(struct rules *r);
/* Number of rules (0 for NULL). */
size_t rules_count(const struct rules *r);

/* True when s[0..len) is a role name: [A-Za-z0-9_.-]{1,64}. */
bool rules_role_name_valid(const char *s, size_t len);

/* The caller, from a verified token. Fields may be NULL (then "self" never admits it). */
struct rules_caller {
    const char *user_id;  /* NUL-terminated */
    const char *username; /* NUL-terminated */
    uint64_t role_mask;   /* from rules_role_mask with the same struct rules */
};

/* Mask of the caller's roles (NUL-terminated strings) among the roles this file names; roles the
 * file does not mention are ignored. 0 for a NULL r. A mask is only meaningful with the struct
 * rules that made it: recompute it after a reload. */
uint64_t rules_role_mask(const struct rules *r, const char *const *roles, size_t n_roles);

enum rules_action { RULES_PUBLISH, RULES_SUBSCRIBE };

/* Who may do action a on events named name[0..len): decided once per event, so that the fan-out
 * then tests each subscriber cheaply with rules_audience_admits. */
enum rules_audience_kind { RULES_AUD_NONE, RULES_AUD_ANY, RULES_AUD_ROLES, RULES_AUD_SELF };
struct rules_audience {
    enum rules_audience_kind kind;
    uint64_t role_mask; /* RULES_AUD_ROLES: any of these roles */
    /* RULES_AUD_SELF: the captured id (a pointer into name, not NUL-terminated) or NULL when the
     * pattern has no {user_id}; likewise for {username}. At least one is set. */
    const char *user_id;
    size_t user_id_len;
    const char *username;
    size_t username_len;
};

/* Fills *out. No matching rule, or "self" with a placeholder captured twice with different
 * values, gives RULES_AUD_NONE. A NULL r gives RULES_AUD_ANY. The audience points into name: it
 * lives as long as name does. */
void rules_audience(const struct rules *r, enum rules_action a, const char *name, size_t len,
                    struct rules_audience *out);
/* Whether caller c belongs to the audience (c is a logged-in user, never NULL). */
bool rules_audience_admits(const struct rules_audience *aud, const struct rules_caller *c);
/* Exactly rules_audience followed by rules_audience_admits. */
bool rules_allows(const struct rules *r, enum rules_action a, const char *name, size_t len,
                  const struct rules_caller *c);

#endif
