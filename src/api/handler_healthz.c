/*
 * handler_healthz.c -- GET /healthz: liveness, for load balancers and
 * systemd.  No authentication; it reveals nothing.
 */
#include "config.h"

#include "api/api.h"

MHD_RESULT handler_healthz(struct request *rq)
{
  return reply_json(rq, 200, json_pack("{s:s}", "status", "ok"));
}
