/* fuzz_rules: rules_parse (src/access/rules.c) on a rules file, and the matcher against a judge.
 * The input is "<rules text>\0<event name>\0<user_id>\0<username>\0<roles, comma-separated>\0
 * <pattern>"; missing parts are absent (a missing user_id or username is NULL), a missing pattern
 * is the rules text. rules_free always runs.
 * Invariants: parsing gives 0, -EINVAL or -ENOMEM and is deterministic; a failure leaves *out NULL
 * and a reason that is one printable line "line N: ..." with N within the text (also into a tiny
 * buffer); a success has at most RULES_MAX rules, and for both actions rules_allows equals
 * rules_audience + rules_audience_admits, an audience is well-formed (SELF captures are non-empty
 * runs inside the name, ROLES a non-empty mask), adding roles never takes a right away and SELF
 * admits the caller made of its own captures. With `*` alone for both actions every name is
 * allowed. The pattern, when valid, loads as a one-rule file, and its verdict and captures equal
 * those of an exhaustive backtracking judge written here from SPEC §5 (each wildcard takes the
 * shortest run that lets the rest match, leftmost first, in whole UTF-8 characters). */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/rules.h"
#include "validate.h"

#define MAX_ROLES 40
#define MAX_CAPS 32

static void fail(const char *what, const char *detail, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_rules: %s\n%s\ninput (%zu bytes):", what, detail ? detail : "", size);
    for (size_t i = 0; i < size && i < 512; i++)
        fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "\n");
    abort();
}

/* ---- the judge: exhaustive backtracking in the order the spec gives ---- */

struct judge {
    const char *pat, *name;
    size_t plen, nlen;
    long budget; /* calls left; the judge is exponential, so it may give up */
    size_t start[MAX_CAPS], len[MAX_CAPS];
    int kind[MAX_CAPS]; /* 1 user_id, 2 username */
    int n;              /* captures on the successful path */
};

static size_t judge_next(const char *s, size_t len, size_t i)
{
    i++;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

static int placeholder_at(const char *p, size_t len, size_t *plen)
{
    if (len >= 9 && memcmp(p, "{user_id}", 9) == 0) {
        *plen = 9;
        return 1;
    }
    if (len >= 10 && memcmp(p, "{username}", 10) == 0) {
        *plen = 10;
        return 2;
    }
    return 0;
}

/* 1 match, 0 none, -1 gave up. k: captures so far on this path. */
static int judge(struct judge *j, size_t pi, size_t ni, int k)
{
    if (--j->budget < 0)
        return -1;
    if (pi == j->plen) {
        j->n = k;
        return ni == j->nlen;
    }
    if (j->pat[pi] == '*') {
        for (size_t q = ni;; q = judge_next(j->name, j->nlen, q)) {
            int r = judge(j, pi + 1, q, k);
            if (r != 0)
                return r;
            if (q >= j->nlen)
                return 0;
        }
    }
    size_t phl;
    int kind = placeholder_at(j->pat + pi, j->plen - pi, &phl);
    if (kind) {
        if (ni >= j->nlen || k >= MAX_CAPS)
            return k >= MAX_CAPS ? -1 : 0;
        for (size_t q = judge_next(j->name, j->nlen, ni);; q = judge_next(j->name, j->nlen, q)) {
            j->start[k] = ni;
            j->len[k] = q - ni;
            j->kind[k] = kind;
            int r = judge(j, pi + phl, q, k + 1);
            if (r != 0)
                return r;
            if (q >= j->nlen)
                return 0;
        }
    }
    if (ni < j->nlen && j->name[ni] == j->pat[pi])
        return judge(j, pi + 1, ni + 1, k);
    return 0;
}

/* ---- checks ---- */

static void check_audience(const struct rules_audience *aud, const char *name, size_t len,
                           const uint8_t *data, size_t size)
{
    switch (aud->kind) {
    case RULES_AUD_NONE:
    case RULES_AUD_ANY:
        break;
    case RULES_AUD_ROLES:
        if (aud->role_mask == 0)
            fail("a ROLES audience with no role", NULL, data, size);
        break;
    case RULES_AUD_SELF: {
        if (!aud->user_id && !aud->username)
            fail("a SELF audience without a capture", NULL, data, size);
        const char *caps[2] = { aud->user_id, aud->username };
        size_t lens[2] = { aud->user_id_len, aud->username_len };
        char copy[2][256];
        for (int i = 0; i < 2; i++) {
            if (!caps[i])
                continue;
            if (lens[i] == 0 || caps[i] < name || caps[i] + lens[i] > name + len || lens[i] >= sizeof copy[i])
                fail("a SELF capture is empty or outside the name", NULL, data, size);
            memcpy(copy[i], caps[i], lens[i]);
            copy[i][lens[i]] = '\0';
        }
        /* The owner of the captures is admitted (names hold no NUL here). */
        struct rules_caller owner = { aud->user_id ? copy[0] : NULL, aud->username ? copy[1] : NULL, 0 };
        if (!rules_audience_admits(aud, &owner))
            fail("SELF does not admit the caller made of its captures", NULL, data, size);
        break;
    }
    default:
        fail("an audience of no known kind", NULL, data, size);
    }
}

static void check_loaded(const struct rules *r, const char *name, size_t len, const struct rules_caller *c,
                         const uint8_t *data, size_t size)
{
    if (rules_count(r) > RULES_MAX)
        fail("more rules than RULES_MAX", NULL, data, size);
    for (int a = RULES_PUBLISH; a <= RULES_SUBSCRIBE; a++) {
        struct rules_audience aud;
        rules_audience(r, (enum rules_action)a, name, len, &aud);
        check_audience(&aud, name, len, data, size);
        bool admitted = rules_audience_admits(&aud, c);
        if (rules_allows(r, (enum rules_action)a, name, len, c) != admitted)
            fail("rules_allows differs from rules_audience + rules_audience_admits", NULL, data, size);
        struct rules_caller more = *c;
        more.role_mask = UINT64_MAX;
        if (admitted && !rules_audience_admits(&aud, &more))
            fail("more roles took a right away", NULL, data, size);
    }
}

static void check_reason(int rc, const struct rules *r, const char *err, const char *text, size_t len,
                         const uint8_t *data, size_t size)
{
    if (rc != -EINVAL && rc != -ENOMEM)
        fail("rules_parse returned an unexpected code", err, data, size);
    if (r)
        fail("a failed parse left *out set", err, data, size);
    if (rc == -ENOMEM)
        return;
    if (strncmp(err, "line ", 5) != 0)
        fail("the reason does not start with \"line \"", err, data, size);
    for (const char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            fail("the reason is not one printable line", err, data, size);
    char *end;
    long line = strtol(err + 5, &end, 10);
    long lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (end == err + 5 || strncmp(end, ": ", 2) != 0 || end[2] == '\0' || line < 1 || line > lines)
        fail("the reason's line number is missing or outside the text", err, data, size);
}

/* The pattern alone as a one-rule file, against the judge. */
static void check_pattern(const char *pat, size_t plen, const char *name, size_t nlen, const uint8_t *data,
                          size_t size)
{
    if (plen == 0 || plen > RULES_PATTERN_MAX || !text_without_controls(pat, plen))
        return;
    bool has_ph = false;
    for (size_t i = 0, l; i < plen; i++)
        has_ph = has_ph || placeholder_at(pat + i, plen - i, &l);
    json_t *doc = json_pack("{s:[{s:s%,s:s,s:s}]}", "rules", "events", pat, plen, "publish", "any",
                            "subscribe", has_ph ? "self" : "any");
    char *text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    if (!text)
        return; /* out of memory */
    struct rules *r;
    char err[256] = "";
    int rc = rules_parse(text, strlen(text), &r, err, sizeof err);
    free(text);
    if (rc == -ENOMEM)
        return;
    if (rc != 0)
        fail("a valid pattern does not load", err, data, size);

    /* The judge's meaning is only promised for valid names. */
    if (utf8_valid(name, nlen)) {
        struct judge j = { pat, name, plen, nlen, 200000, { 0 }, { 0 }, { 0 }, 0 };
        int m = judge(&j, 0, 0, 0);
        if (m >= 0) {
            if (rules_allows(r, RULES_PUBLISH, name, nlen, &(struct rules_caller){ "u", "n", 0 }) != (m == 1))
                fail(m ? "the matcher misses a match" : "the matcher matches what the judge does not", NULL,
                     data, size);
            struct rules_audience aud;
            rules_audience(r, RULES_SUBSCRIBE, name, nlen, &aud);
            if (has_ph && m == 1) {
                int first[3] = { -1, -1, -1 };
                bool conflict = false;
                for (int i = 0; i < j.n; i++) {
                    int f = first[j.kind[i]];
                    if (f < 0)
                        first[j.kind[i]] = i;
                    else if (j.len[f] != j.len[i] || memcmp(name + j.start[f], name + j.start[i], j.len[i]))
                        conflict = true;
                }
                if (conflict) {
                    if (aud.kind != RULES_AUD_NONE)
                        fail("a placeholder with two values is not NONE", NULL, data, size);
                } else {
                    if (aud.kind != RULES_AUD_SELF)
                        fail("a match with placeholders is not SELF", NULL, data, size);
                    const char *got[3] = { NULL, aud.user_id, aud.username };
                    size_t got_len[3] = { 0, aud.user_id_len, aud.username_len };
                    for (int k = 1; k <= 2; k++) {
                        bool want = first[k] >= 0;
                        if (want != (got[k] != NULL) ||
                            (want && (got[k] != name + j.start[first[k]] || got_len[k] != j.len[first[k]])))
                            fail("a capture differs from the leftmost-shortest one", NULL, data, size);
                    }
                }
            } else if (aud.kind != (m == 1 ? RULES_AUD_ANY : RULES_AUD_NONE)) {
                fail("the audience does not follow the verdict", NULL, data, size);
            }
        }
    }
    rules_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 32768)
        return 0;
    char *copy = malloc(size + 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* Up to six NUL-separated parts. */
    const char *part[6] = { NULL };
    size_t part_len[6] = { 0 };
    size_t n_parts = 0;
    for (size_t start = 0; n_parts < 6 && start <= size;) {
        size_t end = start;
        while (end < size && (n_parts == 5 || copy[end] != '\0'))
            end++;
        part[n_parts] = copy + start;
        part_len[n_parts++] = end - start;
        start = end + 1;
    }
    const char *text = part[0];
    size_t text_len = part_len[0];
    const char *name = part[1] ? part[1] : "";
    size_t name_len = part[1] ? part_len[1] : 0;

    /* Roles: the comma-separated items of part 4 (copy is writable). */
    const char *roles[MAX_ROLES];
    size_t n_roles = 0;
    if (part[4]) {
        char *p = (char *)part[4];
        p[part_len[4]] = '\0';
        for (char *tok = p; tok && n_roles < MAX_ROLES;) {
            char *comma = strchr(tok, ',');
            if (comma)
                *comma = '\0';
            roles[n_roles++] = tok;
            tok = comma ? comma + 1 : NULL;
        }
    }

    struct rules *r = (void *)1;
    char err[512];
    memset(err, 0, sizeof err);
    int rc = rules_parse(text, text_len, &r, err, sizeof err);
    struct rules *r2 = (void *)1;
    char err2[512], tiny[6];
    memset(err2, 0, sizeof err2);
    int rc2 = rules_parse(text, text_len, &r2, err2, sizeof err2);
    if (rc != rc2 || (rc == -EINVAL && strcmp(err, err2) != 0))
        fail("two parses of the same text disagree", err, data, size);
    rules_free(r2);
    if (rc != 0) {
        check_reason(rc, r, err, text, text_len, data, size);
        struct rules *r3 = (void *)1;
        if (rules_parse(text, text_len, &r3, tiny, sizeof tiny) != rc || r3 ||
            (rc == -EINVAL && strncmp(tiny, err, sizeof tiny - 1) != 0))
            fail("a tiny reason buffer changed the outcome", err, data, size);
    } else {
        if (!r)
            fail("rules_parse succeeded without rules", NULL, data, size);
        struct rules_caller c = { part[2], part[3], rules_role_mask(r, roles, n_roles) };
        check_loaded(r, name, name_len, &c, data, size);
        rules_free(r);
    }

    /* No rules at all, and a lone "*", allow everything. */
    struct rules_caller anyone = { part[2], part[3], 0 };
    if (!rules_allows(NULL, RULES_PUBLISH, name, name_len, &anyone) ||
        !rules_allows(NULL, RULES_SUBSCRIBE, name, name_len, &anyone))
        fail("NULL rules refuse a name", NULL, data, size);
    static const char star[] = "{\"rules\": [{\"events\": \"*\", \"publish\": \"any\", "
                               "\"subscribe\": \"any\"}]}";
    struct rules *all;
    if (rules_parse(star, sizeof star - 1, &all, err, sizeof err) == 0) {
        if (!rules_allows(all, RULES_PUBLISH, name, name_len, &anyone) ||
            !rules_allows(all, RULES_SUBSCRIBE, name, name_len, &anyone))
            fail("\"*\" refuses a name", NULL, data, size);
        rules_free(all);
    }

    if (part[5])
        check_pattern(part[5], part_len[5], name, name_len, data, size);
    else
        check_pattern(text, text_len, name, name_len, data, size);
    free(copy);
    return 0;
}
