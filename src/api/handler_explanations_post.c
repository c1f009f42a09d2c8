/*
 * handler_explanations_post.c -- POST /v1/models/{name}/explanations: the
 * attributions users compare causal ones with (gradient, gradient x input,
 * integrated gradients, ablation, connection weights, ace), one method or several side by side.
 * Always computed by a worker (the svc kind "explanations").
 */
#include "config.h"

#include "aced/limits.h"
#include "api/api.h"

static const struct spec_field explanations_spec[] = {
    {"method", SPEC_STRING, 0, 0},
    {"methods", SPEC_STRINGS, 0, 6},
    {"output", SPEC_REF, 1, 0},
    /* required by every method but connection_weights (the kind checks) */
    {"inputs", SPEC_INPUTS, 0, ACED_ATTR_ROWS_MAX}, /* sequences: recurrent models */
    {"baseline", SPEC_STRING_OR_INPUT, 0, 0},
    {"output_timestep", SPEC_INTEGER, 0, 0}, /* recurrent models, output_at every */
    {"all_timesteps", SPEC_BOOL, 0, 0},      /* recurrent models, ace */
    {"steps", SPEC_INTEGER, 0, 0},
    {"rule", SPEC_STRING, 0, 0},
    SPEC_ESTIMATE_FIELDS, /* ace */
    SPEC_END};

MHD_RESULT handler_explanations_post(struct request *rq)
{
  MHD_RESULT ret;
  if (api_check_body(rq, explanations_spec, &ret) != 0)
    return ret;
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  api_job_for_row(&req, &svc_kind_explanations, &row, rq->body);
  req.single_flight = 1;
  return api_run_job(rq, &req, 0);
}
