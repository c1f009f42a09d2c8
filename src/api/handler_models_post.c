/*
 * handler_models_post.c -- POST /v1/models: register a model.
 *
 * Validation (shapes, finiteness, a PSD covariance checked with LAPACK)
 * can cost O(k^3) for a large model, so it runs on a worker like every
 * other heavy step; the reply (201 new version, 200 identical content
 * already registered) is only sent once the model is durably stored.
 */
#include "config.h"

#include <string.h>

#include "api/api.h"

MHD_RESULT handler_models_post(struct request *rq)
{
  struct job_request req;
  memset(&req, 0, sizeof req);
  req.ops = &svc_kind_register;
  json_t *name = json_object_get(rq->body, "name");
  if (json_is_string(name))
    snprintf(req.model, sizeof req.model, "%.*s", (int)(sizeof req.model - 1),
             json_string_value(name));
  req.params = rq->body;
  return api_run_job(rq, &req, 0);
}
