/*
 * handler_graph_get.c -- GET /v1/models/{name}/graph: the graph among the
 * latest version's inputs, with its fitted weights; 404 without one.
 */
#include "config.h"

#include "api/api.h"

MHD_RESULT handler_graph_get(struct request *rq)
{
  struct store_model_row row;
  MHD_RESULT ret;
  struct aced_error err;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  json_t *g = svc_cached_graph(rq->srv->svc, row.digest, row.name, row.version, &err);
  if (g != NULL || err.code != ACED_OK) {
    store_model_row_clear(&row);
    return g ? reply_json(rq, 200, g) : reply_aced_error(rq, &err);
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_graph_get, &row, NULL);
  req.single_flight = 1;
  return api_run_job(rq, &req, 0);
}
