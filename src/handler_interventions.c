/*
 * handler_interventions.c -- POST /v1/models/{name}/interventions:
 * raw Phase I values E[y | do(x_feature = a)] for the given values (not
 * cached).  Shape checks that need no model happen here; the rest on the
 * worker that has the model loaded.
 */
#include "config.h"

#include <string.h>

#include "aced/handlers.h"

MHD_RESULT handler_interventions_post(struct request *rq)
{
  MHD_RESULT ret;
  if (handler_number_array(rq, json_object_get(rq->body, "values"), "values", ACED_VALUES_MAX,
                           &ret) != 0)
    return ret;
  struct store_model_row row;
  if (handler_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct job_request req;
  handler_job_for_row(&req, JOB_INTERVENTIONS, &row, rq->body);
  handler_dedupe_key(&req, "int", rq->body);
  return handler_run_job(rq, &req, 0);
}
