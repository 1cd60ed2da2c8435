/* api/ops: GET /healthz for load balancers and orchestrators, GET /metrics for Prometheus. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "http/reply.h"
#include "loop.h"
#include "metrics.h"
#include "proc_stats.h"
#include "snapshot.h"

void api_healthz(struct loop *l, struct http_request *req)
{
    if (atomic_load(&l->app->store_ok))
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    else
        http_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "unavailable", "error",
                                            "the store is failing"));
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
    char *text = metrics_render(&app->metrics, &g);
    if (!text) {
        http_reply_error(req, 500, "out of memory");
        return;
    }
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}
