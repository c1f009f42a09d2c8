/*
 * handler_models_get.c -- GET /v1/models (list) and GET /v1/models/{name}
 * (metadata of the latest version and the list of versions; never the
 * weights or samples).
 */
#include "config.h"

#include <string.h>

#include "aced/compute.h"
#include "aced/handlers.h"

static json_t *row_json(const struct store_model_row *r)
{
  return json_pack("{s:s,s:i,s:s,s:s?,s:s,s:i,s:i,s:i,s:I}", "name", r->name, "version",
                   r->version, "digest", r->digest, "description", r->description,
                   "created_at", r->created_at, "n_features", r->n_features, "n_outputs",
                   r->n_outputs, "n_samples", r->n_samples, "n_params", (json_int_t)r->n_params);
}

static int collect(void *cls, const struct store_model_row *r)
{
  json_array_append_new(cls, row_json(r));
  return 0;
}

MHD_RESULT handler_models_list(struct request *rq)
{
  json_t *arr = json_array();
  struct aced_error err;
  if (rq->srv->store->ops->model_list(rq->srv->store, collect, arr, &err) != ACED_OK) {
    json_decref(arr);
    return reply_aced_error(rq, &err);
  }
  return reply_json(rq, 200, json_pack("{s:o}", "models", arr));
}

MHD_RESULT handler_model_get(struct request *rq)
{
  struct store_model_row row;
  MHD_RESULT ret;
  if (handler_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  /* Metadata comes from the parsed model; when it is not loaded yet, a
   * worker loads it (parsing a large model is not HTTP-thread work). */
  json_t *md = fast_metadata(rq->srv, row.digest, row.name, row.version);
  if (md != NULL) {
    store_model_row_clear(&row);
    return reply_json(rq, 200, md);
  }
  struct job_request req;
  handler_job_for_row(&req, JOB_METADATA, &row, NULL);
  snprintf(req.dedupe, sizeof req.dedupe, "meta|%s|%s|%d", req.digest, req.model, req.version);
  return handler_run_job(rq, &req, 0);
}
