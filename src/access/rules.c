/* rules: loading a rules file into one immutable allocation (the rules, their compiled patterns,
 * the file's role table) and deciding who may publish or subscribe to a name.
 *
 * Matching. A pattern compiles to tokens: a literal byte, ANY (exactly one UTF-8 character) and
 * STAR (any run of characters); `{user_id}` / `{username}` become ANY STAR, both tagged with the
 * placeholder, so a placeholder is "one or more characters". Matching is the classic greedy
 * wildcard algorithm: a star first matches nothing, and on a mismatch only the most recent star
 * grows by one character; earlier stars are then final. It needs no memo: the run of a star only
 * ever grows and a star never shrinks, so one match takes at most (name length + 1) x (tokens + 1)
 * steps — about 65 000 for a 255-byte pattern on a 255-byte name, whatever the pattern
 * (`*a*a*a*a*b` included). It also gives the captures we want: each star stops at the earliest
 * place where the fixed segment after it occurs, which is the shortest run for every wildcard in
 * turn, leftmost first (a later segment only needs room after it, and the next star absorbs any
 * gap). Runs move in whole characters, so a capture of a UTF-8 name is UTF-8. */
#include "access/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "validate.h"

enum tok_kind { TOK_BYTE, TOK_ANY, TOK_STAR };
enum cap_kind { CAP_NONE, CAP_USER_ID, CAP_USERNAME, CAP_KINDS };

struct token {
    uint8_t kind; /* enum tok_kind */
    uint8_t byte; /* TOK_BYTE */
    uint8_t cap;  /* enum cap_kind: set on both tokens of a placeholder */
};

struct who {
    enum rules_audience_kind kind;
    uint64_t mask; /* RULES_AUD_ROLES */
};

struct rule {
    const struct token *tok;
    size_t n_tok;
    struct who who[2]; /* indexed by enum rules_action */
};

struct rules {
    size_t n_rules;
    size_t n_roles;
    char roles[RULES_MAX_ROLES][RULES_ROLE_NAME_MAX + 1]; /* bit i of a mask is roles[i] */
    struct rule rule[];
    /* followed by the tokens of every rule */
};

/* ---- errors ---------------------------------------------------------------------------------- */

/* The reason ends up in one log line: printable ASCII only, whatever the file or jansson said. */
static void keep_printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

static int fail(char *err, size_t cap, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t cap, int line, const char *fmt, ...)
{
    if (!err || cap == 0)
        return -EINVAL;
    int n = snprintf(err, cap, "line %d: ", line > 0 ? line : 1);
    if (n >= 0 && (size_t)n < cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    keep_printable(err);
    return -EINVAL;
}

/* A value from the file, quoted in a reason: short, and never more than one line. */
static const char *shown(const char *s, size_t len, char buf[40])
{
    size_t n = 0;
    for (; n < len && n < 32; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e ? '?' : s[n];
    if (n < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- where things are in the text -----------------------------------------------------------
 * jansson gives no positions for the values it parsed, so a validation error finds its line with
 * this scanner. It only runs on text jansson accepted, but stays in bounds on anything. */

struct scan {
    const char *s;
    size_t len, i;
    int line;
};

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void scan_ws(struct scan *sc)
{
    for (; sc->i < sc->len && is_ws(sc->s[sc->i]); sc->i++)
        if (sc->s[sc->i] == '\n')
            sc->line++;
}

/* At a '"': past the closing quote. */
static void scan_string(struct scan *sc)
{
    sc->i++;
    while (sc->i < sc->len) {
        char c = sc->s[sc->i++];
        if (c == '"')
            return;
        if (c == '\\' && sc->i < sc->len)
            c = sc->s[sc->i++];
        if (c == '\n')
            sc->line++;
    }
}

static void scan_value(struct scan *sc)
{
    if (sc->i >= sc->len)
        return;
    char c = sc->s[sc->i];
    if (c == '"') {
        scan_string(sc);
    } else if (c == '{' || c == '[') {
        int depth = 0;
        while (sc->i < sc->len) {
            c = sc->s[sc->i];
            if (c == '"') {
                scan_string(sc);
                continue;
            }
            sc->i++;
            if (c == '\n')
                sc->line++;
            else if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return;
        }
    } else {
        while (sc->i < sc->len && !is_ws(sc->s[sc->i]) && !strchr(",]}", sc->s[sc->i]))
            sc->i++;
    }
}

/* Line of the first byte that is not white space. */
static int first_line(const char *text, size_t len)
{
    struct scan sc = { text, len, 0, 1 };
    scan_ws(&sc);
    return sc.line;
}

/* Moves sc to the value of the top-level key spelled exactly `key` in the text (a key written
 * with escapes is not found) and returns the key's line, or 0. */
static int scan_to_key(struct scan *sc, const char *key, size_t klen)
{
    scan_ws(sc);
    if (sc->i >= sc->len || sc->s[sc->i] != '{')
        return 0;
    sc->i++;
    for (;;) {
        scan_ws(sc);
        if (sc->i >= sc->len || sc->s[sc->i] != '"')
            return 0;
        int line = sc->line;
        size_t start = sc->i + 1;
        scan_string(sc);
        bool same = sc->i > start && sc->i - 1 - start == klen && memcmp(sc->s + start, key, klen) == 0;
        scan_ws(sc);
        if (sc->i >= sc->len || sc->s[sc->i] != ':')
            return 0;
        sc->i++;
        scan_ws(sc);
        if (same)
            return line;
        scan_value(sc);
        scan_ws(sc);
        if (sc->i >= sc->len || sc->s[sc->i] != ',')
            return 0;
        sc->i++;
    }
}

static int key_line(const char *text, size_t len, const char *key)
{
    struct scan sc = { text, len, 0, 1 };
    int line = scan_to_key(&sc, key, strlen(key));
    return line ? line : first_line(text, len);
}

/* Line where element idx of the "rules" array starts; else the line of "rules"; else of the top. */
static int rule_line(const char *text, size_t len, size_t idx)
{
    struct scan sc = { text, len, 0, 1 };
    int kl = scan_to_key(&sc, "rules", 5);
    if (!kl)
        return first_line(text, len);
    if (sc.i >= sc.len || sc.s[sc.i] != '[')
        return kl;
    sc.i++;
    for (size_t k = 0;; k++) {
        scan_ws(&sc);
        if (k == idx)
            return sc.i < sc.len ? sc.line : kl;
        scan_value(&sc);
        scan_ws(&sc);
        if (sc.i >= sc.len || sc.s[sc.i] != ',')
            return kl;
        sc.i++;
    }
}

/* ---- loading --------------------------------------------------------------------------------- */

struct loader {
    const char *text;
    size_t len;
    char *err;
    size_t err_cap;
    struct rules *r;
    struct token *next_tok; /* where the next rule's tokens go */
};

static int rule_fail(struct loader *ld, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rule_fail(struct loader *ld, size_t idx, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return fail(ld->err, ld->err_cap, rule_line(ld->text, ld->len, idx), "rule %zu: %s", idx + 1, why);
}

bool rules_role_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > RULES_ROLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

static int role_index(const struct rules *r, const char *s, size_t len)
{
    for (size_t i = 0; i < r->n_roles; i++)
        if (strlen(r->roles[i]) == len && memcmp(r->roles[i], s, len) == 0)
            return (int)i;
    return -1;
}

/* Index of the role, added to the table if new; -1 when the table is full. */
static int intern_role(struct rules *r, const char *s, size_t len)
{
    int i = role_index(r, s, len);
    if (i >= 0 || r->n_roles == RULES_MAX_ROLES)
        return i;
    memcpy(r->roles[r->n_roles], s, len);
    r->roles[r->n_roles][len] = '\0';
    return (int)r->n_roles++;
}

/* Tokens of a validated pattern into out (at most len of them); returns their number. */
static size_t compile(const char *pat, size_t len, struct token *out, bool *has_placeholder)
{
    static const struct {
        const char *text;
        size_t len;
        uint8_t cap;
    } placeholders[] = { { "{user_id}", 9, CAP_USER_ID }, { "{username}", 10, CAP_USERNAME } };
    size_t n = 0;
    *has_placeholder = false;
    for (size_t i = 0; i < len;) {
        if (pat[i] == '*') {
            out[n++] = (struct token){ TOK_STAR, 0, CAP_NONE };
            i++;
            continue;
        }
        bool placed = false;
        for (size_t k = 0; k < 2 && !placed; k++) {
            if (len - i >= placeholders[k].len &&
                memcmp(pat + i, placeholders[k].text, placeholders[k].len) == 0) {
                out[n++] = (struct token){ TOK_ANY, 0, placeholders[k].cap };
                out[n++] = (struct token){ TOK_STAR, 0, placeholders[k].cap };
                i += placeholders[k].len;
                placed = true;
            }
        }
        if (placed) {
            *has_placeholder = true;
            continue;
        }
        out[n++] = (struct token){ TOK_BYTE, (uint8_t)pat[i], CAP_NONE };
        i++;
    }
    return n;
}

static int parse_who(struct loader *ld, size_t idx, const char *key, json_t *v, bool has_placeholder,
                     struct who *w)
{
    char buf[40];
    w->kind = RULES_AUD_NONE;
    w->mask = 0;
    if (!v)
        return rule_fail(ld, idx, "\"%s\" is missing", key);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 3 && memcmp(s, "any", 3) == 0) {
            w->kind = RULES_AUD_ANY;
        } else if (len == 4 && memcmp(s, "none", 4) == 0) {
            w->kind = RULES_AUD_NONE;
        } else if (len == 4 && memcmp(s, "self", 4) == 0) {
            /* "self" compares captures with the caller: without one it would admit everybody. */
            if (!has_placeholder)
                return rule_fail(ld, idx, "\"self\" needs {user_id} or {username} in the pattern");
            w->kind = RULES_AUD_SELF;
        } else {
            return rule_fail(ld, idx,
                             "\"%s\": \"%s\" is not \"any\", \"none\", \"self\" or a list of roles", key,
                             shown(s, len, buf));
        }
        return 0;
    }
    if (!json_is_array(v))
        return rule_fail(ld, idx, "\"%s\" must be \"any\", \"none\", \"self\" or a list of roles", key);
    if (json_array_size(v) == 0)
        return rule_fail(ld, idx, "\"%s\" must not be an empty list (write \"none\")", key);
    for (size_t k = 0; k < json_array_size(v); k++) {
        json_t *item = json_array_get(v, k);
        if (!json_is_string(item))
            return rule_fail(ld, idx, "\"%s\": item %zu is not a role name", key, k + 1);
        const char *s = json_string_value(item);
        size_t len = json_string_length(item);
        if (!rules_role_name_valid(s, len))
            return rule_fail(ld, idx, "\"%s\": role \"%s\" must match [A-Za-z0-9_.-]{1,64}", key,
                             shown(s, len, buf));
        int bit = intern_role(ld->r, s, len);
        if (bit < 0)
            return rule_fail(ld, idx, "\"%s\": role \"%s\" is one too many: a file names at most %d roles",
                             key, shown(s, len, buf), RULES_MAX_ROLES);
        w->mask |= UINT64_C(1) << bit;
    }
    w->kind = RULES_AUD_ROLES;
    return 0;
}

static int parse_rule(struct loader *ld, size_t idx, json_t *obj)
{
    char buf[40];
    if (!json_is_object(obj))
        return rule_fail(ld, idx, "must be an object {\"events\", \"publish\", \"subscribe\"}");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "events") != 0 && strcmp(key, "publish") != 0 && strcmp(key, "subscribe") != 0)
            return rule_fail(ld, idx,
                             "unknown key \"%s\" (a rule has \"events\", \"publish\", \"subscribe\")",
                             shown(key, strlen(key), buf));
    }
    json_t *events = json_object_get(obj, "events");
    if (!events)
        return rule_fail(ld, idx, "\"events\" is missing");
    if (!json_is_string(events))
        return rule_fail(ld, idx, "\"events\" must be a string");
    const char *pat = json_string_value(events);
    size_t len = json_string_length(events);
    if (len == 0 || len > RULES_PATTERN_MAX || !text_without_controls(pat, len))
        return rule_fail(ld, idx, "\"events\" must be 1 to %d bytes of UTF-8 without control characters",
                         RULES_PATTERN_MAX);
    struct rule *ru = &ld->r->rule[idx];
    bool has_placeholder;
    ru->tok = ld->next_tok;
    ru->n_tok = compile(pat, len, ld->next_tok, &has_placeholder);
    ld->next_tok += ru->n_tok;
    int rc = parse_who(ld, idx, "publish", json_object_get(obj, "publish"), has_placeholder,
                       &ru->who[RULES_PUBLISH]);
    if (rc == 0)
        rc = parse_who(ld, idx, "subscribe", json_object_get(obj, "subscribe"), has_placeholder,
                       &ru->who[RULES_SUBSCRIBE]);
    return rc;
}

static int build(struct loader *ld, json_t *root, struct rules **out)
{
    char buf[40];
    if (!json_is_object(root))
        return fail(ld->err, ld->err_cap, first_line(ld->text, ld->len),
                    "the file must be a JSON object {\"rules\": [...]}");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "rules") != 0)
            return fail(ld->err, ld->err_cap, key_line(ld->text, ld->len, key),
                        "unknown key \"%s\" (the file has only \"rules\")", shown(key, strlen(key), buf));
    }
    json_t *list = json_object_get(root, "rules");
    if (!list)
        return fail(ld->err, ld->err_cap, first_line(ld->text, ld->len), "\"rules\" is missing");
    if (!json_is_array(list))
        return fail(ld->err, ld->err_cap, key_line(ld->text, ld->len, "rules"),
                    "\"rules\" must be an array");
    size_t n = json_array_size(list);
    if (n > RULES_MAX)
        return fail(ld->err, ld->err_cap, rule_line(ld->text, ld->len, RULES_MAX),
                    "rule %d: a file holds at most %d rules", RULES_MAX + 1, RULES_MAX);

    /* One allocation: a pattern of len bytes compiles to at most len tokens. */
    size_t n_tok = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *events = json_object_get(json_array_get(list, i), "events");
        size_t plen = json_is_string(events) ? json_string_length(events) : 0;
        n_tok += plen < RULES_PATTERN_MAX ? plen : RULES_PATTERN_MAX;
    }
    struct rules *r = calloc(1, sizeof *r + n * sizeof r->rule[0] + n_tok * sizeof(struct token));
    if (!r)
        return -ENOMEM;
    r->n_rules = n;
    ld->r = r;
    ld->next_tok = (struct token *)(r->rule + n);
    for (size_t i = 0; i < n; i++) {
        int rc = parse_rule(ld, i, json_array_get(list, i));
        if (rc) {
            free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

int rules_parse(const char *text, size_t len, struct rules **out, char *err, size_t err_cap)
{
    *out = NULL;
    if (err && err_cap)
        err[0] = '\0';
    json_error_t jerr;
    /* A key written twice would otherwise silently keep one of the two. */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        return fail(err, err_cap, jerr.line, "%s", jerr.text[0] ? jerr.text : "not JSON");
    }
    struct loader ld = { text, len, err, err_cap, NULL, NULL };
    int rc = build(&ld, root, out);
    json_decref(root);
    return rc;
}

static int file_fail(char *err, size_t cap, const char *path, int rc)
{
    if (err && cap) {
        if (rc == -EFBIG)
            snprintf(err, cap, "cannot read %s: larger than %u bytes", path, RULES_FILE_MAX);
        else
            snprintf(err, cap, "cannot read %s: %s", path, strerror(-rc));
        keep_printable(err);
    }
    return rc;
}

int rules_load_file(const char *path, struct rules **out, char *err, size_t err_cap)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_fail(err, err_cap, path, -errno);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            /* One byte more than the limit tells a file of exactly RULES_FILE_MAX from a larger one. */
            if (cap > RULES_FILE_MAX) {
                rc = -EFBIG;
                break;
            }
            size_t ncap = cap * 2 > RULES_FILE_MAX ? RULES_FILE_MAX + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                rc = -ENOMEM;
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = -errno;
        else if (got == 0)
            break;
        else
            len += (size_t)got;
    }
    close(fd);
    if (rc == 0)
        rc = rules_parse(buf, len, out, err, err_cap);
    else if (rc != -ENOMEM)
        rc = file_fail(err, err_cap, path, rc);
    free(buf);
    return rc;
}

void rules_free(struct rules *r) { free(r); }

size_t rules_count(const struct rules *r) { return r ? r->n_rules : 0; }

uint64_t rules_role_mask(const struct rules *r, const char *const *roles, size_t n_roles)
{
    uint64_t mask = 0;
    if (!r)
        return 0;
    for (size_t i = 0; i < n_roles; i++) {
        if (!roles[i])
            continue;
        int bit = role_index(r, roles[i], strlen(roles[i]));
        if (bit >= 0)
            mask |= UINT64_C(1) << bit;
    }
    return mask;
}

/* ---- matching -------------------------------------------------------------------------------- */

struct captures {
    bool have[CAP_KINDS];
    bool conflict; /* a placeholder captured twice with different values */
    size_t start[CAP_KINDS], len[CAP_KINDS];
};

/* Index after the UTF-8 character at i (a lead byte and its continuation bytes). */
static size_t next_char(const char *s, size_t len, size_t i)
{
    for (i++; i < len && ((unsigned char)s[i] & 0xC0) == 0x80; i++)
        ;
    return i;
}

static void capture(struct captures *c, const char *name, unsigned cap, size_t start, size_t end)
{
    if (cap == CAP_NONE)
        return;
    size_t n = end - start;
    if (!c->have[cap]) {
        c->have[cap] = true;
        c->start[cap] = start;
        c->len[cap] = n;
    } else if (c->len[cap] != n || memcmp(name + c->start[cap], name + start, n) != 0) {
        c->conflict = true;
    }
}

/* The algorithm and its bound are described at the top of the file. A star is recorded as final
 * (captured) when the next star is reached, or at the end. */
static bool match(const struct rule *ru, const char *name, size_t len, struct captures *c)
{
    const struct token *t = ru->tok;
    size_t nt = ru->n_tok, p = 0, n = 0;
    size_t star = SIZE_MAX; /* token index of the most recent star */
    size_t mark = 0;        /* where the text after that star starts: the star covers [run, mark) */
    size_t run = 0;         /* where that star's run (its placeholder's, for a placeholder) starts */
    size_t any_at = 0;      /* where the last ANY matched: a placeholder's first character */
    memset(c, 0, sizeof *c);
    while (n < len) {
        if (p < nt) {
            if (t[p].kind == TOK_BYTE && t[p].byte == (unsigned char)name[n]) {
                p++;
                n++;
                continue;
            }
            if (t[p].kind == TOK_ANY) {
                any_at = n;
                n = next_char(name, len, n);
                p++;
                continue;
            }
            if (t[p].kind == TOK_STAR) {
                if (star != SIZE_MAX)
                    capture(c, name, t[star].cap, run, mark);
                star = p;
                mark = n;
                run = t[p].cap != CAP_NONE ? any_at : n;
                p++;
                continue;
            }
        }
        /* A mismatch, or pattern left over text: the most recent star takes one more character. */
        if (star == SIZE_MAX)
            return false;
        p = star + 1;
        mark = next_char(name, len, mark);
        n = mark;
    }
    if (star != SIZE_MAX)
        capture(c, name, t[star].cap, run, mark);
    /* Only stars may be left, and they match nothing at the end. */
    for (; p < nt; p++) {
        if (t[p].kind != TOK_STAR)
            return false;
        capture(c, name, t[p].cap, t[p].cap != CAP_NONE ? any_at : len, len);
    }
    return true;
}

void rules_audience(const struct rules *r, enum rules_action a, const char *name, size_t len,
                    struct rules_audience *out)
{
    memset(out, 0, sizeof *out);
    out->kind = RULES_AUD_NONE;
    if (!r) {
        out->kind = RULES_AUD_ANY;
        return;
    }
    if (a != RULES_PUBLISH && a != RULES_SUBSCRIBE)
        return;
    for (size_t i = 0; i < r->n_rules; i++) {
        struct captures c;
        if (!match(&r->rule[i], name, len, &c))
            continue;
        const struct who *w = &r->rule[i].who[a];
        switch (w->kind) {
        case RULES_AUD_ANY:
        case RULES_AUD_NONE:
            out->kind = w->kind;
            break;
        case RULES_AUD_ROLES:
            out->kind = RULES_AUD_ROLES;
            out->role_mask = w->mask;
            break;
        case RULES_AUD_SELF:
            /* Two different values for one placeholder: nobody's own id is both. */
            if (c.conflict)
                break;
            out->kind = RULES_AUD_SELF;
            if (c.have[CAP_USER_ID]) {
                out->user_id = name + c.start[CAP_USER_ID];
                out->user_id_len = c.len[CAP_USER_ID];
            }
            if (c.have[CAP_USERNAME]) {
                out->username = name + c.start[CAP_USERNAME];
                out->username_len = c.len[CAP_USERNAME];
            }
            break;
        }
        return; /* the first matching rule decides */
    }
}

static bool same(const char *mine, const char *captured, size_t len)
{
    return mine && strlen(mine) == len && memcmp(mine, captured, len) == 0;
}

bool rules_audience_admits(const struct rules_audience *aud, const struct rules_caller *c)
{
    switch (aud->kind) {
    case RULES_AUD_ANY:
        return true;
    case RULES_AUD_ROLES:
        return (aud->role_mask & c->role_mask) != 0;
    case RULES_AUD_SELF:
        if (!aud->user_id && !aud->username)
            return false;
        if (aud->user_id && !same(c->user_id, aud->user_id, aud->user_id_len))
            return false;
        if (aud->username && !same(c->username, aud->username, aud->username_len))
            return false;
        return true;
    case RULES_AUD_NONE:
    default:
        return false;
    }
}

bool rules_allows(const struct rules *r, enum rules_action a, const char *name, size_t len,
                  const struct rules_caller *c)
{
    struct rules_audience aud;
    rules_audience(r, a, name, len, &aud);
    return rules_audience_admits(&aud, c);
}
