/* api/admin_assets: the files of the admin console (admin/ at the repository root), compiled into
 * the binary by scripts/embed.py (admin_assets_data.c, generated at build time), and the two pure
 * pieces of serving them: finding an asset by its URL path and matching If-None-Match. The table
 * and every byte it points to are static and read-only: nothing here is ever freed. */
#ifndef BROKER_API_ADMIN_ASSETS_H
#define BROKER_API_ADMIN_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

struct admin_asset {
    const char *path;         /* the URL path it is served at, e.g. "/admin/console/admin.js" */
    const char *content_type; /* e.g. "text/javascript; charset=utf-8" */
    const char *etag;         /* a strong entity tag, quotes included: "\"<hex>\"" */
    const unsigned char *bytes;
    size_t len;
};

/* The generated table (admin_assets_data.c). */
extern const struct admin_asset admin_assets[];
extern const size_t admin_assets_count;

/* The asset of table[0..n) served at path (compared exactly), or NULL. */
const struct admin_asset *admin_asset_find(const struct admin_asset *table, size_t n, const char *path);

/* Whether an If-None-Match header value (NULL: absent) matches etag, by the weak comparison RFC
 * 9110 §13.1.2 prescribes for it: "*", or a list of entity tags of which one has the same opaque
 * tag, W/ or not. A value that does not parse matches nothing, so the full answer is sent. */
bool admin_etag_matches(const char *if_none_match, const char *etag);

#endif
