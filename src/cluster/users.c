/* cluster/users: user records as compact JSON in the KV bucket. */
#include "cluster/users.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/jetstream.h"
#include "log.h"

int cluster_user_create(struct js_engine *e, const char *id, const char *username, size_t len,
                        const char *password_hash)
{
    json_t *rec = json_pack("{s:s, s:s, s:I}", "id", id, "hash", password_hash, "created_at",
                            (json_int_t)time(NULL));
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text)
        return -ENOMEM;
    int rc = js_user_create(e, username, len, text, strlen(text));
    free(text);
    return rc;
}

static int copy_member(json_t *rec, const char *name, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(rec, name));
    if (!v || strlen(v) >= cap)
        return -EIO;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int cluster_user_find(struct js_engine *e, const char *username, size_t len, char *id, size_t id_cap,
                      char *hash, size_t hash_cap)
{
    char *text = NULL;
    size_t text_len = 0;
    int rc = js_user_get(e, username, len, &text, &text_len);
    if (rc != 0)
        return rc;
    json_t *rec = json_loadb(text, text_len, 0, NULL);
    free(text);
    rc = rec ? copy_member(rec, "id", id, id_cap) : -EIO;
    if (rc == 0)
        rc = copy_member(rec, "hash", hash, hash_cap);
    json_decref(rec);
    if (rc != 0)
        log_error("cluster: the record of a user in the users bucket does not parse");
    return rc;
}
