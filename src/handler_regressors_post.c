/*
 * handler_regressors_post.c -- POST /v1/models/{name}/regressors: fit a set
 * of regressors (outputs x features, default all) as a background job.
 * Always answers 202 with the job; poll GET /v1/jobs/{id}.
 */
#include "config.h"

#include <string.h>

#include "aced/compute.h"
#include "aced/handlers.h"

MHD_RESULT handler_regressors_post(struct request *rq)
{
  MHD_RESULT ret;
  struct aced_error err;
  if (compute_check_regressors_body(rq->srv, rq->body, &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  struct store_model_row row;
  if (handler_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  memset(&req, 0, sizeof req);
  req.kind = JOB_REGRESSORS;
  snprintf(req.model, sizeof req.model, "%s", row.name);
  snprintf(req.digest, sizeof req.digest, "%s", row.digest);
  req.version = row.version;
  req.params = rq->body;
  store_model_row_clear(&row);
  return handler_run_job(rq, &req, 1);
}
