/* hub: the subscribers of one loop thread and the fan-out to them. Owned by its loop and used only
 * on that loop's thread.
 *
 * A stream starts in one of three ways (SPEC §2 GET /sse): the snapshot (latest event per name),
 * a resume (every event after Last-Event-ID, paged from the store as the socket drains), or a
 * reset frame followed by the snapshot. Then it is live. Frames are queued on the connection by
 * reference, never copied; all frames of a batch go out in one write. */
#ifndef BROKER_HUB_H
#define BROKER_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct batch;
struct http_request;
struct event_filter;
struct token_claims;

struct hub;

struct stream_request {
    bool resume;              /* replay events with id > resume_after, then live */
    int64_t resume_after;
    const char *reset_reason; /* non-NULL: open with event:reset, then the snapshot */
    struct event_filter *filter; /* NULL = every name; the hub takes ownership */
    long exp;                 /* unix seconds when the credential expires (0 = never) */
    long iat;
    const struct token_claims *who; /* the credential's user: id, username, roles, version */
};

struct hub *hub_new(struct loop *loop);
/* Ends every stream still open, then frees the hub. */
void hub_free(struct hub *h);

/* Starts the event stream on req (already authenticated; CORS headers added): takes the
 * connection over (http_take_stream). Always takes the filter. 0, or -ENOMEM with req still to be
 * answered (500). */
int hub_subscribe(struct hub *h, struct http_request *req, struct stream_request *sr);
/* Queues a committed batch for every subscriber of this loop; hub_flush_pending writes it. */
void hub_deliver(struct hub *h, const struct batch *b);
/* Writes what hub_deliver queued: one write per subscriber for all batches since the last call.
 * arg is the hub (a mailbox after-hook). */
void hub_flush_pending(void *arg);
/* Ends the streams of user id opened with a token version below ver (SPEC §5 revocation) with an
 * event:revoked frame carrying reason; what they had not been sent yet is dropped. */
void hub_revoke_user(struct hub *h, const char *id, int64_t ver, const char *reason);
/* Ends every stream cleanly (shutdown). */
void hub_close_all(struct hub *h);
size_t hub_count(const struct hub *h);

#endif
