/* Unit tests of src/api/admin_assets.c and of the table scripts/embed.py generated from admin/:
 * exact lookup, the If-None-Match rules (RFC 9110 §13.1.2, weak comparison), and that the
 * embedded console is whole (every file the page or a module refers to is in the binary, with a
 * Content-Type a browser will run under nosniff). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "api/admin_assets.h"

static const unsigned char some_bytes[] = { 'x' };
static const struct admin_asset fake[] = {
    { "/admin", "text/html; charset=utf-8", "\"aa\"", some_bytes, 1 },
    { "/admin/console/a.js", "text/javascript; charset=utf-8", "\"bb\"", some_bytes, 1 },
};

static void test_find_is_exact(void **state)
{
    (void)state;
    assert_ptr_equal(admin_asset_find(fake, 2, "/admin"), &fake[0]);
    assert_ptr_equal(admin_asset_find(fake, 2, "/admin/console/a.js"), &fake[1]);
    assert_null(admin_asset_find(fake, 2, "/admin/"));
    assert_null(admin_asset_find(fake, 2, "/admin/console/a.j"));
    assert_null(admin_asset_find(fake, 2, "/admin/console/a.js/"));
    assert_null(admin_asset_find(fake, 2, "/ADMIN"));
    assert_null(admin_asset_find(fake, 2, ""));
    assert_null(admin_asset_find(fake, 2, NULL));
    assert_null(admin_asset_find(fake, 0, "/admin"));
}

static void test_etag_matches(void **state)
{
    (void)state;
    const char *tag = "\"abc123\"";
    assert_true(admin_etag_matches("\"abc123\"", tag));
    assert_true(admin_etag_matches("W/\"abc123\"", tag)); /* weak comparison */
    assert_true(admin_etag_matches("*", tag));
    assert_true(admin_etag_matches("  *  ", tag));
    assert_true(admin_etag_matches("\"x\", \"abc123\"", tag));
    assert_true(admin_etag_matches("\"x\",W/\"abc123\"", tag));
    assert_true(admin_etag_matches(" , \"x\" ,, \"abc123\" ,", tag)); /* empty list elements */
    assert_true(admin_etag_matches("\"\", \"abc123\"", tag));

    assert_false(admin_etag_matches(NULL, tag));
    assert_false(admin_etag_matches("", tag));
    assert_false(admin_etag_matches("\"abc12\"", tag));
    assert_false(admin_etag_matches("\"abc1234\"", tag));
    assert_false(admin_etag_matches("abc123", tag));      /* not quoted */
    assert_false(admin_etag_matches("\"abc123", tag));    /* unterminated */
    assert_false(admin_etag_matches("w/\"abc123\"", tag)); /* W/ is case-sensitive */
    assert_false(admin_etag_matches("\"x\" junk \"abc123\"", tag)); /* malformed: stop there */
    assert_false(admin_etag_matches("*, \"abc123\"", tag));   /* "*" stands alone */
    assert_false(admin_etag_matches("\"ABC123\"", tag));     /* opaque tags compare exactly */
    assert_false(admin_etag_matches("\"abc123\"", NULL));
}

/* The embedded table: what the binary serves. */

static void test_table_shape(void **state)
{
    (void)state;
    assert_true(admin_assets_count >= 3);
    assert_non_null(admin_asset_find(admin_assets, admin_assets_count, "/admin"));
    for (size_t i = 0; i < admin_assets_count; i++) {
        const struct admin_asset *a = &admin_assets[i];
        assert_true(strcmp(a->path, "/admin") == 0 || strncmp(a->path, "/admin/console/", 15) == 0);
        assert_ptr_equal(admin_asset_find(admin_assets, admin_assets_count, a->path), a); /* unique */
        assert_true(a->len > 0);
        /* A strong tag: quotes around 32 hex digits of SHA-256. */
        assert_int_equal(strlen(a->etag), 34);
        assert_int_equal(a->etag[0], '"');
        assert_int_equal(a->etag[33], '"');
        assert_true(strspn(a->etag + 1, "0123456789abcdef") == 32);
        assert_true(admin_etag_matches(a->etag, a->etag));
        const char *t = a->content_type;
        size_t n = strlen(a->path);
        if (n > 3 && strcmp(a->path + n - 3, ".js") == 0)
            assert_string_equal(t, "text/javascript; charset=utf-8"); /* modules need a JS type */
        if (n > 4 && strcmp(a->path + n - 4, ".css") == 0)
            assert_string_equal(t, "text/css; charset=utf-8");
    }
    assert_string_equal(admin_asset_find(admin_assets, admin_assets_count, "/admin")->content_type,
                        "text/html; charset=utf-8");
}

/* Every value of `attr="..."` (or of `from './x'` for modules) in the asset, resolved the way the
 * browser does it for this page, must be an embedded asset. Returns how many it checked. */
static int check_references(const struct admin_asset *a, const char *opener, const char *base)
{
    const char *p = (const char *)a->bytes, *end = p + a->len;
    size_t olen = strlen(opener);
    int checked = 0;
    for (; p + olen <= end; p++) {
        if (memcmp(p, opener, olen) != 0)
            continue;
        const char *v = p + olen, *q = memchr(v, opener[olen - 1], (size_t)(end - v));
        assert_non_null(q);
        char url[256];
        int len = snprintf(url, sizeof url, "%s%.*s", base, (int)(q - v), v);
        assert_true(len > 0 && (size_t)len < sizeof url);
        if (strncmp(v, "./", 2) == 0) /* a module import: relative to the module's own URL */
            snprintf(url, sizeof url, "/admin/console/%.*s", (int)(q - v - 2), v + 2);
        if (!admin_asset_find(admin_assets, admin_assets_count, url))
            fail_msg("%s refers to %s, which is not embedded", a->path, url);
        checked++;
        p = q;
    }
    return checked;
}

static void test_references_resolve(void **state)
{
    (void)state;
    const struct admin_asset *index = admin_asset_find(admin_assets, admin_assets_count, "/admin");
    /* The page is /admin, so a relative "admin/console/x" is /admin/console/x. */
    int refs = check_references(index, "src=\"", "/") + check_references(index, "href=\"", "/");
    assert_true(refs >= 3); /* the module, the style sheet, the icon */
    int imports = 0;
    for (size_t i = 0; i < admin_assets_count; i++) {
        size_t n = strlen(admin_assets[i].path);
        if (n > 3 && strcmp(admin_assets[i].path + n - 3, ".js") == 0)
            imports += check_references(&admin_assets[i], "from '", "");
    }
    assert_true(imports >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_is_exact),
        cmocka_unit_test(test_etag_matches),
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_references_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
