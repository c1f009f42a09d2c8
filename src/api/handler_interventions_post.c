/*
 * handler_interventions_post.c -- POST /v1/models/{name}/interventions:
 * raw Phase I values E[y | do(x_feature = a)] for the given values (not
 * cached).  The body is checked here; names are resolved on the worker
 * that has the model loaded.
 */
#include "config.h"

#include "aced/limits.h"
#include "api/api.h"

static const struct spec_field interventions_spec[] = {
    {"output", SPEC_REF, 1, 0},
    {"feature", SPEC_REF, 1, 0},
    {"values", SPEC_NUMBERS, 1, ACED_VALUES_MAX},
    {"estimator", SPEC_STRING, 0, 0},
    {"epsilon", SPEC_NUMBER, 0, 0},
    {"effect", SPEC_STRING, 0, 0},
    {"timestep", SPEC_INTEGER, 0, 0},        /* recurrent models */
    {"output_timestep", SPEC_INTEGER, 0, 0}, /* recurrent, output_at every */
    SPEC_END};

MHD_RESULT handler_interventions_post(struct request *rq)
{
  MHD_RESULT ret;
  if (api_check_body(rq, interventions_spec, &ret) != 0)
    return ret;
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  api_job_for_row(&req, &svc_kind_interventions, &row, rq->body);
  req.single_flight = 1;
  return api_run_job(rq, &req, 0);
}
