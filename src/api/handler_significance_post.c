/*
 * handler_significance_post.c -- POST /v1/models/{name}/significance:
 * Olden and Jackson's randomization test (the svc kind "significance"):
 * retrain on permuted targets, p-values per feature and output.  Always a
 * background job: 202 with the job and its Location, as POST .../regressors.
 */
#include "config.h"

#include "api/api.h"

static const struct spec_field significance_spec[] = {
    {"permutations", SPEC_INTEGER, 0, 0},
    {"statistic", SPEC_STRING, 0, 0},
    {"seed", SPEC_INTEGER, 0, 0},
    SPEC_END};

MHD_RESULT handler_significance_post(struct request *rq)
{
  MHD_RESULT ret;
  struct aced_error err;
  /* ranges too, so that a bad body is answered now rather than by a
   * failed job */
  if (api_check_body(rq, significance_spec, &ret) != 0)
    return ret;
  if (significance_params_check(rq->body, &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  api_job_for_row(&req, &svc_kind_significance, &row, rq->body);
  return api_run_job(rq, &req, 1);
}
