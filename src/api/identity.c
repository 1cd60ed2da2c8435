/* api/identity: what the identity routes share (SPEC §5): a user as JSON, and reading roles. */
#include <string.h>

#include "access/user.h"
#include "api/api.h"
#include "http/reply.h"

json_t *api_user_json(const struct user_record *u, int admin_view)
{
    json_t *roles = json_array();
    char buf[USER_ROLES_TEXT_MAX];
    const char *names[USER_ROLES_MAX];
    size_t n = roles_split(u->roles, buf, names);
    for (size_t i = 0; roles && i < n; i++)
        json_array_append_new(roles, json_string(names[i]));
    json_t *o = json_pack("{s:s, s:s%, s:o*, s:b}", "id", u->id, "username", u->username, u->username_len,
                          "roles", roles, "totp", u->totp_secret[0] != '\0');
    if (o && admin_view) {
        json_object_set_new(o, "revoked", json_boolean(u->revoked));
        json_object_set_new(o, "created_at", json_integer((json_int_t)u->created_at));
    }
    return o;
}

int api_read_roles(struct http_request *req, json_t *root, char *out, int *present)
{
    json_t *list = json_object_get(root, "roles");
    out[0] = '\0';
    if (present)
        *present = list != NULL;
    if (!list)
        return 0;
    if (!json_is_array(list) || json_array_size(list) > USER_ROLES_MAX) {
        http_reply_error(req, 400, "roles must be an array of at most 32 role names");
        return -1;
    }
    const char *names[USER_ROLES_MAX];
    size_t lens[USER_ROLES_MAX], i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) {
            http_reply_error(req, 400, "roles must be an array of strings");
            return -1;
        }
        names[i] = json_string_value(v);
        lens[i] = json_string_length(v);
    }
    const char *reason;
    if (roles_canonical(names, lens, json_array_size(list), out, &reason) != 0) {
        http_reply_error(req, 400, reason);
        return -1;
    }
    return 0;
}
