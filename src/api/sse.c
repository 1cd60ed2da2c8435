/* api/sse: GET /sse. Authenticates, then hands the request to the loop's hub, which owns it from
 * then on. */
#include <event2/http.h>

#include "api/api.h"
#include "http/reply.h"
#include "hub.h"
#include "loop.h"

void api_sse(struct loop *l, struct evhttp_request *req)
{
    struct token_claims claims;
    if (api_authenticate(l, req, 1, &claims) != 0)
        return;
    if (hub_subscribe(l->hub, req) != 0)
        http_reply_error(req, 500, "out of memory");
}
