/* api/admin_console: the admin console (issue 13), a static page for the admin API, served from
 * the bytes compiled into the binary (api/admin_assets.h). Like the admin API it exists only with
 * --admin_token; unlike it, it needs no token itself: a browser navigating to a page cannot send
 * one, and the page holds nothing secret. Every call the page makes goes to the admin API (and
 * /metrics, /login, /sse) with the token the operator types in.
 *
 *   GET  /admin                    the page (admin/index.html)
 *   HEAD /admin
 *   GET  /admin/console/<asset>    its scripts, style sheet and icon
 *   HEAD /admin/console/<asset>
 *
 * The page lives at /admin itself so that /admin/users... stays the API's: the two can never
 * name the same path (the API has no /admin/console). */
#include <stdbool.h>
#include <string.h>

#include "api/admin_assets.h"
#include "api/api.h"
#include "app.h"
#include "config.h"
#include "http/reply.h"
#include "loop.h"

#define ASSET_PREFIX "/admin/console/"

bool api_admin_console_path(const char *path)
{
    return path && (strcmp(path, "/admin") == 0 || strncmp(path, ASSET_PREFIX, sizeof ASSET_PREFIX - 1) == 0);
}

/* On every console answer, errors included: the page must run only its own scripts and styles
 * (no inline script or style, nothing from another origin: default-src 'self'), never inside
 * someone else's frame (frame-ancestors, which default-src does not cover), never post a form
 * anywhere by itself (form-action 'none': without its script a form must not put the token in a
 * URL), and never leak the console's URL to another site. */
static void add_security_headers(struct http_request *req)
{
    http_add_header(req, "Content-Security-Policy",
                    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    http_add_header(req, "X-Content-Type-Options", "nosniff");
    http_add_header(req, "Referrer-Policy", "no-referrer");
    http_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
}

void api_admin_console(struct loop *l, struct http_request *req)
{
    /* The same rule as the admin API (api/admin.c): without the flag there is nothing at /admin. */
    if (!l->app->cfg->admin_token) {
        http_reply_error(req, 404, "not found");
        return;
    }
    add_security_headers(req);
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        http_add_header(req, "Allow", "GET, HEAD, OPTIONS");
        http_reply_error(req, 405, "method not allowed");
        return;
    }
    const struct admin_asset *a = admin_asset_find(admin_assets, admin_assets_count, req->path);
    if (!a) {
        http_reply_error(req, 404, "not found");
        return;
    }
    /* no-cache: a browser may keep a copy but asks every time, so a new binary's console is used
     * at once; the ETag makes asking cost a 304 without the body. */
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "ETag", a->etag);
    if (admin_etag_matches(http_header(req, "If-None-Match"), a->etag))
        http_reply(req, 304, a->content_type, "", 0);
    else
        http_reply(req, 200, a->content_type, (const char *)a->bytes, a->len);
}
