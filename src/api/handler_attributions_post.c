/*
 * handler_attributions_post.c -- POST /v1/models/{name}/attributions: the
 * paper's local attribution ACE(y, do(x_i = input[i])) for every feature
 * (or a subset) of every input row.  Answered on the HTTP thread when the
 * model is loaded and every regressor needed is cached.
 */
#include "config.h"

#include "aced/limits.h"
#include "aced/model.h"
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
  size_t raw_len;
  const char *raw = request_raw_body(rq, &raw_len);
  char *text = svc_cached_attributions(rq->srv->svc, row.digest, rq->body, raw, raw_len,
                                       rq->start_us, &len, &err);
  if (text != NULL || err.code != ACED_OK) {
    store_model_row_clear(&row);
    return text ? reply_json_text(rq, 200, text, len) : reply_aced_error(rq, &err);
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_attributions, &row, rq->body);
  req.single_flight = 1;
  return api_run_job(rq, &req, 0);
}

/* The quick path (route table): the same query as one this thread
 * answered from the cache before, with other rows, is answered from the
 * body's bytes (svc_quick_attributions); anything else, including every
 * error, takes the handler above. */
int handler_attributions_quick(struct request *rq, MHD_RESULT *ret)
{
  char digest[72];
  size_t raw_len, len = 0;
  const char *raw = request_raw_body(rq, &raw_len);
  const struct store_ops *ops = rq->srv->store->ops;
  if (raw == NULL || !model_name_valid(rq->arg[0]) || ops->model_digest == NULL ||
      !ops->model_digest(rq->srv->store, rq->arg[0], digest))
    return 0;
  char *text = svc_quick_attributions(rq->srv->svc, digest, raw, raw_len, rq->start_us, &len);
  if (text == NULL)
    return 0;
  *ret = reply_json_text(rq, 200, text, len);
  return 1;
}
