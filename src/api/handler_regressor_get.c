/*
 * handler_regressor_get.c -- GET /v1/models/{name}/regressors/{output}/{feature}
 * ?estimator=auto&num=100&max_order=20&epsilon=1e-4
 *
 * A cached regressor of a loaded model is answered right here, on the HTTP
 * thread; anything else (first query after a restart included) goes to a
 * worker, which loads the model and then answers from the cache or fits.
 * Identical requests in flight share one job.
 */
#include "config.h"

#include <string.h>

#include "api/api.h"

MHD_RESULT handler_regressor_get(struct request *rq)
{
  static const char *const allowed[] = {"estimator", "num", "max_order", "epsilon", NULL};
  const char *bad;
  if (request_query_check(rq, allowed, &bad) != 0)
    return reply_error(rq, ACED_E_BAD_PARAMETER, bad, "unknown query parameter '%s'", bad);
  struct query_params q;
  struct aced_error err;
  if (query_params_from_strings(rq->srv->svc, request_query(rq, "estimator"), request_query(rq, "num"),
                                request_query(rq, "max_order"), request_query(rq, "epsilon"), &q,
                                &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  MHD_RESULT ret;
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  const char *output = rq->arg[1], *feature = rq->arg[2];
  size_t len = 0;
  char *text = svc_cached_regressor(rq->srv->svc, row.digest, output, feature, &q, rq->start_us,
                                    &len, &err);
  if (text != NULL || err.code != ACED_OK) {
    store_model_row_clear(&row);
    return text ? reply_json_text(rq, 200, text, len) : reply_aced_error(rq, &err);
  }
  /* The job's params are the parsed request, whole: the single-flight key
   * is built from them, so requests share a job only when every name and
   * parameter is the same. */
  json_t *params = query_params_json(&q);
  if (params == NULL || json_object_set_new(params, "output", json_string_nocheck(output)) != 0 ||
      json_object_set_new(params, "feature", json_string_nocheck(feature)) != 0) {
    json_decref(params);
    store_model_row_clear(&row);
    return reply_error(rq, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_regressor, &row, params);
  req.single_flight = 1;
  ret = api_run_job(rq, &req, 0);
  json_decref(params);
  return ret;
}
