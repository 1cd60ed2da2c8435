/* api/insert: POST /insert. Validates on the loop, serialises data to compact JSON once, and hands
 * the event to the writer; the answer (with the event id) goes out only after the commit. In
 * cluster mode the event is published to JetStream instead, under a message id (the client's
 * Idempotency-Key, or a random one) that makes the engine's retries safe, and the answer goes out
 * when JetStream acknowledged it: the id is the stream sequence. */
#include <errno.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/rules.h"
#include "access/user.h"
#include "api/api.h"
#include "app.h"
#include "cluster/jetstream.h"
#include "http/reply.h"
#include "json_raw.h"
#include "loop.h"
#include "validate.h"
#include "writer.h"

struct insert_request {
    struct writer_job job;
    struct http_request *req;
    char *event;
    char *data;
    char user_id[AUTH_ID_MAX];
    char key[IDEMPOTENCY_KEY_MAX + 1];

    /* Cluster mode: the PubAck, handed from the engine's thread to the loop. */
    struct task acked;
    struct loop *loop;
    int publish_rc;
    uint64_t seq;
    bool duplicate;
    struct timespec sent;
};

static void insert_request_free(struct insert_request *r)
{
    free(r->event);
    free(r->data);
    free(r);
}

static void insert_done(struct task *t)
{
    struct insert_request *r = (struct insert_request *)((char *)t - offsetof(struct insert_request, job.done));
    switch (r->job.result) {
    case 0:
        /* A retry with a key already stored gets the first insert's id, and says so. */
        if (r->job.replayed)
            http_add_header(r->req, "Idempotent-Replayed", "true");
        http_reply_json(r->req, 200, json_pack("{s:I, s:s%}", "id", (json_int_t)r->job.id, "event",
                                               r->event, r->job.event_len));
        break;
    case -ENOSPC:
        /* The writer probes the disk every second; a client need not try much sooner than that. */
        http_add_header(r->req, "Retry-After", "5");
        http_reply_error(r->req, 503, "storage is full; nothing was stored");
        break;
    case -ESHUTDOWN:
        http_reply_error(r->req, 503, "server is shutting down; nothing was stored");
        break;
    default:
        http_reply_error(r->req, 500, "storage fault; nothing was stored");
        break;
    }
    insert_request_free(r);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Loop thread: the engine's answer to a publish. */
static void insert_acked(struct task *t)
{
    struct insert_request *r = (struct insert_request *)((char *)t - offsetof(struct insert_request, acked));
    struct app *app = r->loop->app;
    atomic_fetch_sub(&app->publishes_pending, 1);
    switch (r->publish_rc) {
    case 0:
        metrics_observe_publish(&app->metrics, (unsigned long)(seconds_since(&r->sent) * 1e6));
        if (r->duplicate)
            http_add_header(r->req, "Idempotent-Replayed", "true");
        http_reply_json(r->req, 200, json_pack("{s:I, s:s%}", "id", (json_int_t)r->seq, "event", r->event,
                                               r->job.event_len));
        break;
    case -ENOSPC:
        http_add_header(r->req, "Retry-After", "5");
        http_reply_error(r->req, 503, "the cluster's storage is full; nothing was stored");
        break;
    case -EAGAIN:
    case -ESHUTDOWN:
        /* Not known to be stored: a retry with the same Idempotency-Key is stored at most once. */
        http_add_header(r->req, "Retry-After", "1");
        http_reply_error(r->req, 503, "the cluster did not acknowledge the event in time; it may or may "
                                      "not be stored: retry with the same Idempotency-Key");
        break;
    default:
        http_reply_error(r->req, 500, "the cluster refused the event; nothing was stored");
        break;
    }
    insert_request_free(r);
}

/* Engine thread: hand the answer to the loop, nothing more. */
static void on_publish_ack(void *arg, int rc, uint64_t seq, bool duplicate)
{
    struct insert_request *r = arg;
    r->publish_rc = rc;
    r->seq = seq;
    r->duplicate = duplicate;
    mailbox_post(r->loop->mailbox, &r->acked);
}

static void insert_publish(struct loop *l, struct insert_request *r)
{
    char random_id[33];
    const char *msg_id = r->job.key;
    if (!msg_id) {
        unsigned char raw[16];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(random_id, sizeof random_id, raw, sizeof raw);
        msg_id = random_id;
    }
    r->loop = l;
    r->acked.run = insert_acked;
    clock_gettime(CLOCK_MONOTONIC, &r->sent);
    atomic_fetch_add(&l->app->publishes_pending, 1);
    int rc = js_publish(l->app->engine, r->event, r->job.event_len, r->data, r->job.data_len, r->user_id,
                        msg_id, on_publish_ack, r);
    if (rc == 0)
        return;
    atomic_fetch_sub(&l->app->publishes_pending, 1);
    if (rc == -EMSGSIZE)
        http_reply_error(r->req, 413, "the event is larger than the cluster accepts");
    else
        http_reply_error(r->req, 503, rc == -ESHUTDOWN ? "server is shutting down; nothing was stored"
                                                       : "the cluster cannot take events now; nothing was stored");
    insert_request_free(r);
}

/* SPEC §5 rules: whether the token's user may publish events of this name. */
static bool may_publish(struct loop *l, const struct token_claims *c, const char *event, size_t len)
{
    char buf[USER_ROLES_TEXT_MAX];
    const char *names[USER_ROLES_MAX];
    size_t n = roles_split(c->roles, buf, names);
    struct rules_caller who = { .user_id = c->sub, .username = c->username,
                                .role_mask = rules_role_mask(l->rules, names, n) };
    return rules_allows(l->rules, RULES_PUBLISH, event, len, &who);
}

void api_insert(struct loop *l, struct http_request *req)
{
    struct token_claims claims;
    if (api_authenticate(l, req, 0, &claims) != 0)
        return;
    const char *err;
    char reason[96];
    const char *key = http_header(req, "Idempotency-Key");
    size_t key_len = key ? strlen(key) : 0;
    if (key && (err = validate_idempotency_key(key, key_len)) != NULL) {
        http_reply_error(req, 400, err);
        return;
    }
    json_t *root = http_read_json_object(req, &err);
    if (!root) {
        http_reply_error(req, 400, err);
        return;
    }
    const char *event;
    size_t event_len;
    if (api_string_member(root, "event", &event, &event_len, reason, sizeof reason) != 0) {
        json_decref(root);
        http_reply_error(req, 400, reason);
        return;
    }
    if ((err = validate_event_name(event, event_len)) != NULL) {
        json_decref(root);
        http_reply_error(req, 400, err);
        return;
    }
    if (l->rules && !may_publish(l, &claims, event, event_len)) {
        log_info("insert: the rules do not let user %s publish this event name", claims.sub);
        atomic_fetch_add_explicit(&l->app->metrics.rules_denied, 1, memory_order_relaxed);
        json_decref(root);
        http_reply_error(req, 403, "you may not publish this event");
        return;
    }
    /* The data goes out as the client wrote it, minus whitespace: jansson has validated the body,
     * json_raw finds and compacts the member's bytes (numbers keep every digit). */
    const char *body = req->body;
    size_t body_len = req->body_len, data_start, data_end;
    if (json_raw_member(body, body_len, "data", 4, &data_start, &data_end) != 0) {
        json_decref(root);
        http_reply_error(req, 400, "data is required");
        return;
    }
    struct insert_request *r = calloc(1, sizeof *r);
    if (r) {
        r->event = malloc(event_len + 1);
        r->data = malloc(data_end - data_start + 1);
    }
    if (!r || !r->event || !r->data) {
        if (r)
            insert_request_free(r);
        json_decref(root);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    memcpy(r->event, event, event_len + 1);
    json_decref(root);
    size_t data_len = json_raw_compact(body + data_start, data_end - data_start, r->data);
    r->data[data_len] = '\0';
    memcpy(r->user_id, claims.sub, sizeof r->user_id);
    r->req = req;
    r->job.kind = WRITER_APPEND_EVENT;
    r->job.reply_to = l->mailbox;
    r->job.done.run = insert_done;
    r->job.event = r->event;
    r->job.event_len = event_len;
    r->job.data = r->data;
    r->job.data_len = data_len;
    r->job.user_id = r->user_id;
    if (key) {
        memcpy(r->key, key, key_len + 1);
        r->job.key = r->key;
        r->job.key_len = key_len;
    }
    if (l->app->engine)
        insert_publish(l, r);
    else
        writer_submit(l->app->writer, &r->job);
}
