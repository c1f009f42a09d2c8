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
  handler_job_for_row(&req, JOB_REGRESSORS, &row, rq->body);
  return handler_run_job(rq, &req, 1);
}
