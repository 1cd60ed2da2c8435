/* api/admin_assets: finding an embedded console asset and matching If-None-Match (see
 * admin_assets.h). Pure functions over the generated table, so tests/unit can check them. */
#include "api/admin_assets.h"

#include <string.h>

const struct admin_asset *admin_asset_find(const struct admin_asset *table, size_t n, const char *path)
{
    /* A handful of files: a linear scan beats any index at this size. */
    for (size_t i = 0; path && i < n; i++)
        if (strcmp(table[i].path, path) == 0)
            return &table[i];
    return NULL;
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

bool admin_etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match || !etag)
        return false;
    size_t elen = strlen(etag);
    const char *p = if_none_match;
    for (;;) {
        /* Empty list elements are allowed ("a, , b"), as everywhere in HTTP lists. */
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return false;
        if (*p == '*') {
            p = skip_ows(p + 1);
            return *p == '\0'; /* "*" stands alone; "*, x" is malformed */
        }
        if (p[0] == 'W' && p[1] == '/')
            p += 2; /* weak comparison: W/"x" matches "x" */
        if (*p != '"')
            return false;
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        size_t len = (size_t)(end - p) + 1;
        if (len == elen && memcmp(p, etag, elen) == 0)
            return true;
        p = skip_ows(end + 1);
        if (*p && *p != ',')
            return false;
    }
}
