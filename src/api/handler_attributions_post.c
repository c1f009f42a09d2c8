/*
 * handler_attributions_post.c -- POST /v1/models/{name}/attributions: the
 * paper's local attribution ACE(y, do(x_i = input[i])) for every feature
 * (or a subset) of every input row.  Answered on the HTTP thread when the
 * model is loaded and every regressor needed is cached.
 */
#include "config.h"

#include "aced/limits.h"
#include "api/api.h"

static const struct spec_field attributions_spec[] = {
    {"inputs", SPEC_INPUTS, 1, ACED_ATTR_ROWS_MAX}, /* sequences: recurrent models */
    {"output", SPEC_REF, 0, 0},  /* one of output, outputs: the service checks */
    {"outputs", SPEC_REFS, 0, 0},
    {"features", SPEC_REFS, 0, 0},
    {"output_timestep", SPEC_INTEGER, 0, 0}, /* recurrent models */
    {"all_timesteps", SPEC_BOOL, 0, 0},
    SPEC_ESTIMATE_FIELDS,
    SPEC_END};

MHD_RESULT handler_attributions_post(struct request *rq)
{
  MHD_RESULT ret;
  if (api_check_body(rq, attributions_spec, &ret) != 0)
    return ret;
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct aced_error err;
  size_t len = 0;
  char *text = svc_cached_attributions(rq->srv->svc, row.digest, rq->body, rq->start_us, &len,
                                       &err);
  if (text != NULL || err.code != ACED_OK) {
    store_model_row_clear(&row);
    return text ? reply_json_text(rq, 200, text, len) : reply_aced_error(rq, &err);
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_attributions, &row, rq->body);
  req.single_flight = 1;
  return api_run_job(rq, &req, 0);
}
