/* api/ops: GET /healthz for load balancers and orchestrators. */
#include <event2/http.h>

#include "api/api.h"
#include "app.h"
#include "http/reply.h"
#include "loop.h"

void api_healthz(struct loop *l, struct evhttp_request *req)
{
    if (atomic_load(&l->app->store_ok))
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    else
        http_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "unavailable", "error",
                                            "the store is failing"));
}
