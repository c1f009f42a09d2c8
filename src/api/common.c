/*
 * common.c -- pieces every handler uses: model lookup, body specs and the
 * synchronous-or-202 job reply.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aced/log.h"
#include "aced/model.h"
#include "api/api.h"

int api_model_row(struct request *rq, const char *name, struct store_model_row *row,
                  MHD_RESULT *ret)
{
  memset(row, 0, sizeof *row);
  if (!model_name_valid(name)) {
    *ret = reply_error(rq, ACED_E_BAD_NAME, "name",
                       "model names are 1 to %d characters of [A-Za-z0-9._-]", ACED_NAME_MAX);
    return -1;
  }
  struct aced_error err;
  enum aced_err rc = rq->srv->store->ops->model_get(rq->srv->store, name, 0, 0, row, &err);
  if (rc == ACED_E_MODEL_NOT_FOUND) {
    *ret = reply_error(rq, ACED_E_MODEL_NOT_FOUND, "name", "no model named '%s'", name);
    return -1;
  }
  if (rc != ACED_OK) {
    *ret = reply_aced_error(rq, &err);
    return -1;
  }
  return 0;
}

void api_job_for_row(struct job_request *req, const struct job_ops *ops,
                     struct store_model_row *row, json_t *params)
{
  memset(req, 0, sizeof *req);
  req->ops = ops;
  snprintf(req->model, sizeof req->model, "%s", row->name);
  snprintf(req->digest, sizeof req->digest, "%s", row->digest);
  req->version = row->version;
  req->params = params;
  store_model_row_clear(row);
}

int api_reply_cached(struct request *rq, json_t *reply, const struct aced_error *err,
                     MHD_RESULT *ret)
{
  if (reply != NULL) {
    api_set_elapsed(rq, reply);
    *ret = reply_json(rq, 200, reply);
    return 1;
  }
  if (err->code != ACED_OK) {
    *ret = reply_aced_error(rq, err);
    return 1;
  }
  return 0;
}

void api_set_elapsed(struct request *rq, json_t *reply)
{
  json_t *meta = json_object_get(reply, "meta");
  if (json_is_object(meta))
    json_object_set_new(meta, "elapsed_ms", json_real((aced_now_us() - rq->start_us) / 1e3));
}

int api_check_body(struct request *rq, const struct spec_field *spec, MHD_RESULT *ret)
{
  struct aced_error err;
  if (spec_check(rq->body, spec, &err) == ACED_OK)
    return 0;
  *ret = reply_aced_error(rq, &err);
  return -1;
}

/* A request waiting for its job (rq->hstate while suspended). */
struct waiting {
  struct request *rq;
};

static void waiting_free(void *p)
{
  free(p);
}

/* The 202 body: the job and where to poll it, under the prefix aced is
 * mounted at (reply_json copies `location` into the Location header). */
static json_t *accepted_body(struct request *rq, struct job *j)
{
  char loc[ACED_BASE_PATH_MAX + 64];
  snprintf(loc, sizeof loc, "%s/v1/jobs/%s", request_base_path(rq), job_id(j));
  return json_pack("{s:o,s:s}", "job", job_to_json(j, 0), "location", loc);
}

/* Called once: job finished, or its wait timed out. */
static void on_job(void *cls, struct job *j, int timed_out)
{
  struct waiting *w = cls;
  struct request *rq = w->rq;
  if (timed_out) {
    request_complete(rq, 202, accepted_body(rq, j));
    return;
  }
  enum job_state s = job_state(j);
  if (s == JOB_DONE) {
    json_t *res = job_result(j) ? json_deep_copy(job_result(j)) : NULL;
    if (res == NULL) {
      /* a finished job must hand every waiter its result: this is a bug */
      struct aced_error err;
      aced_error_set(&err, ACED_E_INTERNAL, "", "job %s finished without a result to serve",
                     job_id(j));
      request_complete(rq, 500, error_json(&err));
      return;
    }
    /* a result that says it created something (a registration, PUT of a
     * graph: a new model version) is a 201; the kind is not named here */
    unsigned status = json_is_true(json_object_get(res, "created")) ? 201 : 200;
    api_set_elapsed(rq, res);
    request_complete(rq, status, res);
    return;
  }
  struct aced_error err;
  job_error(j, &err);
  if (s == JOB_CANCELLED)
    aced_error_set(&err, ACED_E_CONFLICT, "",
                   "job %s was cancelled (by DELETE of the job or of its model)", job_id(j));
  request_complete(rq, aced_err_status(err.code), error_json(&err));
}

MHD_RESULT api_run_job(struct request *rq, struct job_request *req, int async)
{
  snprintf(req->who, sizeof req->who, "%s", rq->who);
  snprintf(req->client, sizeof req->client, "%s", request_client(rq));
  struct job *j = NULL;
  int shared = 0;
  struct aced_error err;
  if (async) {
    if (jobs_submit(rq->srv->jobs, req, NULL, &j, &shared, &err) != ACED_OK)
      return reply_aced_error(rq, &err);
    MHD_RESULT r = reply_json(rq, 202, accepted_body(rq, j));
    job_unref(j);
    return r;
  }
  struct waiting *w = calloc(1, sizeof *w);
  if (w == NULL)
    return reply_error(rq, ACED_E_UNAVAILABLE, "", "out of memory");
  w->rq = rq;
  /* Suspended before submitting: the waiter may be called by a worker the
   * moment the job is in the pool, and it resumes the connection. */
  rq->hstate = w;
  rq->hstate_free = waiting_free;
  request_suspend(rq);
  struct job_wait wait = {.fn = on_job,
                          .cls = w,
                          .deadline_us = aced_now_us() + rq->srv->cfg.sync_wait_ms * 1000};
  if (jobs_submit(rq->srv->jobs, req, &wait, &j, &shared, &err) != ACED_OK) {
    request_complete(rq, aced_err_status(err.code), error_json(&err));
    return MHD_YES;
  }
  /* The waiter holds its own reference, and w may already be freed: the
   * job can have finished and the reply gone out by now. */
  job_unref(j);
  return MHD_YES;
}

int api_in_build_tree(void)
{
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return 0;
  self[n] = '\0';
  char built[PATH_MAX];
  snprintf(built, sizeof built, "%s/aced", ACED_ABS_BUILDDIR);
  char *real = realpath(built, NULL);
  int in_tree = real != NULL && strcmp(real, self) == 0;
  free(real);
  return in_tree;
}
