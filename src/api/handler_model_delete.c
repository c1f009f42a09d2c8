/*
 * handler_model_delete.c -- DELETE /v1/models/{name}: every version, the
 * regressors cached for it (unless another name shares the content), and
 * its running jobs.
 */
#include "config.h"

#include "aced/log.h"
#include "aced/model.h"
#include "api/api.h"

static int collect_digest(void *cls, const struct store_model_row *r)
{
  json_array_append_new(cls, json_string(r->digest));
  return 0;
}

MHD_RESULT handler_model_delete(struct request *rq)
{
  const char *name = rq->arg[0];
  if (!model_name_valid(name))
    return reply_error(rq, ACED_E_BAD_NAME, "name",
                       "model names are 1 to %d characters of [A-Za-z0-9._-]", ACED_NAME_MAX);
  struct store *st = rq->srv->store;
  struct aced_error err;
  json_t *digests = json_array();
  st->ops->model_versions(st, name, collect_digest, digests, &err);
  jobs_cancel_model(rq->srv->jobs, name);
  int deleted = 0;
  if (st->ops->model_delete(st, name, &deleted, &err) != ACED_OK) {
    json_decref(digests);
    return reply_aced_error(rq, &err);
  }
  size_t i;
  json_t *d;
  json_array_foreach(digests, i, d) svc_evict(json_string_value(d));
  json_decref(digests);
  if (deleted == 0)
    return reply_error(rq, ACED_E_MODEL_NOT_FOUND, "name", "no model named '%s'", name);
  log_info("audit", "model deleted name=%s versions=%d by=%s from=%s", name, deleted, rq->who,
           request_client(rq));
  return reply_json(rq, 200, json_pack("{s:s,s:i}", "name", name, "deleted_versions", deleted));
}
