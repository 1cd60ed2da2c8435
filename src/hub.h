/* hub: the subscribers of one loop thread and the fan-out to them. Owned by its loop and used only
 * on that loop's thread. A subscriber holds its evhttp request until the stream ends; frames are
 * appended to the connection's output by reference (never copied), all frames of a batch in one
 * chunk so they leave in one write. */
#ifndef BROKER_HUB_H
#define BROKER_HUB_H

#include <stddef.h>

struct loop;
struct batch;
struct evhttp_request;

struct hub;

struct hub *hub_new(struct loop *loop);
/* Ends every stream still open, then frees the hub. */
void hub_free(struct hub *h);

/* Starts the event stream on req (already authenticated; CORS headers already set): sends the
 * response head and the snapshot, then keeps the stream for live delivery. 0, or -ENOMEM (the
 * caller then answers 500). */
int hub_subscribe(struct hub *h, struct evhttp_request *req);
/* Delivers a committed batch to every subscriber of this loop. */
void hub_deliver(struct hub *h, const struct batch *b);
/* Ends every stream cleanly (shutdown). */
void hub_close_all(struct hub *h);
size_t hub_count(const struct hub *h);

#endif
