/*
 * handler_models_list.c -- GET /v1/models: the latest version of every
 * model, by name (never weights or samples).
 */
#include "config.h"

#include "api/api.h"

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
