/*
 * handler_readyz.c -- GET /readyz: ready when the database answers.  No
 * authentication; it reveals nothing.
 */
#include "config.h"

#include "api/api.h"

MHD_RESULT handler_readyz(struct request *rq)
{
  struct aced_error err;
  if (rq->srv->store->ops->ping(rq->srv->store, &err) != ACED_OK)
    return reply_error(rq, ACED_E_UNAVAILABLE, "database", "database not usable: %s",
                       err.message);
  return reply_json(rq, 200, json_pack("{s:s}", "status", "ready"));
}
