/*
 * handler_graph_put.c -- PUT /v1/models/{name}/graph with {"edges":
 * [["w", "z"], ...]}: a new version of the model with this graph (201),
 * or 200 when the latest version has it already.  The body's edges are
 * checked against the model's features on the worker (src/svc/graph_put.c).
 */
#include "config.h"

#include "api/api.h"

MHD_RESULT handler_graph_put(struct request *rq)
{
  MHD_RESULT ret;
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  api_job_for_row(&req, &svc_kind_graph_put, &row, rq->body);
  return api_run_job(rq, &req, 0);
}
