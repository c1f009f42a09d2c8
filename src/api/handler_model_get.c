/*
 * handler_model_get.c -- GET /v1/models/{name}: metadata of the latest
 * version and the list of versions (never the weights or samples).
 */
#include "config.h"

#include "api/api.h"

MHD_RESULT handler_model_get(struct request *rq)
{
  struct store_model_row row;
  MHD_RESULT ret;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  /* Metadata comes from the parsed model; when it is not loaded yet, a
   * worker loads it (parsing a large model is not HTTP-thread work). */
  json_t *md = svc_cached_metadata(rq->srv->svc, row.digest, row.name, row.version);
  if (md != NULL) {
    store_model_row_clear(&row);
    return reply_json(rq, 200, md);
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_metadata, &row, NULL);
  req.single_flight = 1;
  return api_run_job(rq, &req, 0);
}
