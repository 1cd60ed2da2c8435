/* api/ops: GET /healthz for load balancers and orchestrators, GET /metrics for Prometheus. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "http/reply.h"
#include "loop.h"
#include "metrics.h"
#include "proc_stats.h"
#include "snapshot.h"

void api_healthz(struct loop *l, struct evhttp_request *req)
{
    if (atomic_load(&l->app->store_ok))
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    else
        http_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "unavailable", "error",
                                            "the store is failing"));
}



static void free_text(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    free(arg);
}

void api_metrics(struct loop *l, struct evhttp_request *req)
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
    struct evbuffer *buf = evbuffer_new();
    if (!text || !buf || evbuffer_add_reference(buf, text, strlen(text), free_text, text) != 0) {
        if (buf)
            evbuffer_free(buf);
        free(text);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", buf);
    evbuffer_free(buf);
}
