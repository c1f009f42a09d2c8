/*
 * handler_attributions.c -- POST /v1/models/{name}/attributions: the
 * paper's local attribution ACE(y, do(x_i = input[i])) for every feature
 * (or a subset) of every input row.  Answered on the HTTP thread when the
 * model is loaded and every regressor needed is cached.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "aced/compute.h"
#include "aced/handlers.h"

MHD_RESULT handler_attributions_post(struct request *rq)
{
  MHD_RESULT ret;
  json_t *inputs = json_object_get(rq->body, "inputs");
  if (inputs == NULL)
    return reply_error(rq, ACED_E_MISSING_FIELD, "inputs", "'inputs' is required");
  if (!json_is_array(inputs) || json_array_size(inputs) == 0)
    return reply_error(rq, ACED_E_BAD_TYPE, "inputs",
                       "'inputs' must be a non-empty array of input rows");
  if (json_array_size(inputs) > ACED_ATTR_ROWS_MAX)
    return reply_error(rq, ACED_E_LIMIT, "inputs", "at most %d input rows per request",
                       ACED_ATTR_ROWS_MAX);
  for (size_t i = 0; i < json_array_size(inputs); i++) {
    char field[48];
    snprintf(field, sizeof field, "inputs[%zu]", i);
    if (handler_number_array(rq, json_array_get(inputs, i), field, ACED_MAX_INPUTS, &ret) != 0)
      return ret;
  }
  struct store_model_row row;
  if (handler_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  struct aced_error err;
  size_t len = 0;
  char *text = fast_attributions(rq->srv, row.digest, rq->body, rq->start_us, &len, &err);
  if (text != NULL || err.code != ACED_OK) {
    store_model_row_clear(&row);
    return text ? reply_json_text(rq, 200, text, len) : reply_aced_error(rq, &err);
  }
  struct job_request req;
  handler_job_for_row(&req, JOB_ATTRIBUTIONS, &row, rq->body);
  handler_dedupe_key(&req, "att", rq->body);
  return handler_run_job(rq, &req, 0);
}
