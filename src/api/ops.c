/* api/ops: GET /healthz for load balancers and orchestrators, GET /metrics for Prometheus. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "cluster/jetstream.h"
#include "http/reply.h"
#include "loop.h"
#include "metrics.h"
#include "proc_stats.h"
#include "snapshot.h"

/* NULL when healthy, else why not. In cluster mode the node is unhealthy while JetStream cannot
 * take writes (the applier checks it every second) or once its applier stopped at a gap. */
static const char *unhealthy(const struct app *app)
{
    if (!atomic_load(&app->store_ok))
        return app->engine ? "the local replica is failing" : "the store is failing";
    if (!app->engine)
        return NULL;
    if (!atomic_load(&app->applier_ok))
        return "this node stopped applying the stream (a gap or a re-delivery): rebuild its --db";
    if (js_state(app->engine) != JS_CONNECTED)
        return "not connected to NATS";
    if (!atomic_load(&app->engine_ok))
        return "JetStream cannot take writes (no quorum)";
    return NULL;
}

void api_healthz(struct loop *l, struct http_request *req)
{
    const char *why = unhealthy(l->app);
    if (!why)
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    else
        http_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "unavailable", "error", why));
}


void api_metrics(struct loop *l, struct http_request *req)
{
    struct app *app = l->app;
    struct metrics_gauges g = {
        .subscribers = atomic_load(&app->subscribers),
        .open_fds = proc_open_fds(),
        .rss_bytes = proc_resident_bytes(),
        .snapshot_names = (long)snapshot_size(app->snapshot),
        .last_event_id = (long long)snapshot_watermark(app->snapshot),
    };
    if (app->engine) {
        g.cluster = true;
        g.engine_connected = js_state(app->engine) == JS_CONNECTED;
        g.engine_ok = atomic_load(&app->engine_ok);
        g.stream_last = atomic_load(&app->stream_last);
        g.applied = atomic_load(&app->applied);
        g.reconnects = (unsigned long)js_reconnects(app->engine);
    }
    char *text = metrics_render(&app->metrics, &g);
    if (!text) {
        http_reply_error(req, 500, "out of memory");
        return;
    }
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}
