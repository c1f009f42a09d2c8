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

#include "aced/compute.h"
#include "aced/handlers.h"

MHD_RESULT handler_regressor_get(struct request *rq)
{
  static const char *const allowed[] = {"estimator", "num", "max_order", "epsilon", NULL};
  const char *bad;
  if (request_query_check(rq, allowed, &bad) != 0)
    return reply_error(rq, ACED_E_BAD_PARAMETER, bad, "unknown query parameter '%s'", bad);
  struct query_params q;
  struct aced_error err;
  if (query_params_from_strings(rq->srv, request_query(rq, "estimator"), request_query(rq, "num"),
                                request_query(rq, "max_order"), request_query(rq, "epsilon"), &q,
                                &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  MHD_RESULT ret;
  struct store_model_row row;
  if (handler_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  const char *output = rq->arg[1], *feature = rq->arg[2];
  json_t *reply = fast_regressor(rq->srv, row.digest, output, feature, &q, &err);
  if (handler_reply_fast(rq, reply, &err, &ret)) {
    store_model_row_clear(&row);
    return ret;
  }
  char digest[sizeof row.digest];
  snprintf(digest, sizeof digest, "%s", row.digest);
  struct job_request req;
  handler_job_for_row(&req, JOB_REGRESSOR, &row, NULL);
  req.params = json_pack("{s:s,s:s,s:s,s:i,s:i,s:f}", "output", output, "feature", feature,
                         "estimator", estimator_name(q.estimator), "num", q.num, "max_order",
                         q.max_order, "epsilon", q.epsilon);
  snprintf(req.dedupe, sizeof req.dedupe, "reg|%s|%.60s|%.60s|%s|%d|%d|%.17g", digest,
           output, feature, estimator_name(q.estimator), q.num, q.max_order, q.epsilon);
  ret = handler_run_job(rq, &req, 0);
  json_decref(req.params);
  return ret;
}
