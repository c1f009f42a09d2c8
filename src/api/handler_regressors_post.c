/*
 * handler_regressors_post.c -- POST /v1/models/{name}/regressors: fit a
 * set of regressors (outputs x features, default all) as a background job.
 * Always answers 202 with the job; poll GET /v1/jobs/{id}.
 */
#include "config.h"

#include "api/api.h"

static const struct spec_field regressors_spec[] = {
    {"outputs", SPEC_REFS, 0, 0},
    {"features", SPEC_REFS, 0, 0},
    {"output_timestep", SPEC_INTEGER, 0, 0}, /* recurrent models */
    {"all_timesteps", SPEC_BOOL, 0, 0},
    SPEC_ESTIMATE_FIELDS,
    SPEC_END};

MHD_RESULT handler_regressors_post(struct request *rq)
{
  MHD_RESULT ret;
  struct aced_error err;
  struct query_params q;
  /* parameter ranges too, so that a bad body is a 400 rather than a
   * failed job */
  if (api_check_body(rq, regressors_spec, &ret) != 0)
    return ret;
  if (query_params_parse(rq->srv->svc, rq->body, &q, &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  api_job_for_row(&req, &svc_kind_regressors, &row, rq->body);
  return api_run_job(rq, &req, 1);
}
