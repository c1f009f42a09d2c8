/*
 * handler_common.c -- pieces every handler uses: model lookup and the
 * synchronous-or-202 job reply.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include "aced/handlers.h"
#include "aced/model.h"

int handler_model_row(struct request *rq, const char *name, struct store_model_row *row,
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

void handler_job_for_row(struct job_request *req, enum job_kind kind,
                         struct store_model_row *row, json_t *params)
{
  memset(req, 0, sizeof *req);
  req->kind = kind;
  snprintf(req->model, sizeof req->model, "%s", row->name);
  snprintf(req->digest, sizeof req->digest, "%s", row->digest);
  req->version = row->version;
  req->params = params;
  store_model_row_clear(row);
}

int handler_reply_fast(struct request *rq, json_t *reply, const struct aced_error *err,
                       MHD_RESULT *ret)
{
  if (reply != NULL) {
    handler_set_elapsed(rq, reply);
    *ret = reply_json(rq, 200, reply);
    return 1;
  }
  if (err->code != ACED_OK) {
    *ret = reply_aced_error(rq, err);
    return 1;
  }
  return 0;
}

void handler_set_elapsed(struct request *rq, json_t *reply)
{
  json_t *meta = json_object_get(reply, "meta");
  if (json_is_object(meta))
    json_object_set_new(meta, "elapsed_ms", json_real((http_now_us() - rq->start_us) / 1e3));
}

int handler_number_array(struct request *rq, const json_t *v, const char *field, size_t max,
                         MHD_RESULT *ret)
{
  if (v == NULL) {
    *ret = reply_error(rq, ACED_E_MISSING_FIELD, field, "'%s' is required", field);
    return -1;
  }
  if (!json_is_array(v)) {
    *ret = reply_error(rq, ACED_E_BAD_TYPE, field, "'%s' must be an array of numbers", field);
    return -1;
  }
  size_t n = json_array_size(v);
  if (n == 0 || n > max) {
    *ret = reply_error(rq, ACED_E_LIMIT, field, "'%s' must hold 1 to %zu numbers, not %zu",
                       field, max, n);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(v, i);
    if (!json_is_number(x) || !isfinite(json_number_value(x))) {
      char path[96];
      snprintf(path, sizeof path, "%s[%zu]", field, i);
      *ret = reply_error(rq, json_is_number(x) ? ACED_E_NOT_FINITE : ACED_E_BAD_TYPE, path,
                         "must be a finite number");
      return -1;
    }
  }
  return 0;
}

void handler_dedupe_key(struct job_request *req, const char *kind, const json_t *body)
{
  char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  if (text == NULL)
    return; /* no key: the request just gets a job of its own */
  struct sha256_ctx ctx;
  uint8_t h[SHA256_DIGEST_SIZE];
  sha256_init(&ctx);
  sha256_update(&ctx, strlen(text), (const uint8_t *)text);
  sha256_digest(&ctx, sizeof h, h);
  free(text);
  int n = snprintf(req->dedupe, sizeof req->dedupe, "%s|%s|", kind, req->digest);
  for (int i = 0; i < SHA256_DIGEST_SIZE && n + 2 < (int)sizeof req->dedupe; i++, n += 2)
    sprintf(req->dedupe + n, "%02x", h[i]);
}

struct job_wait {
  struct request *rq;
  struct job *job;
  int kind;
};

static void job_wait_free(void *p)
{
  struct job_wait *w = p;
  job_unref(w->job);
  free(w);
}

static json_t *accepted_body(struct job *j)
{
  char loc[96];
  snprintf(loc, sizeof loc, "/v1/jobs/%s", job_id(j));
  return json_pack("{s:o,s:s}", "job", job_to_json(j, 0), "location", loc);
}

/* Called once: job finished, or its wait timed out. */
static void on_job(void *cls, struct job *j, int timed_out)
{
  struct job_wait *w = cls;
  struct request *rq = w->rq;
  if (timed_out) {
    request_complete(rq, 202, accepted_body(j));
    return;
  }
  enum job_state s = job_state(j);
  if (s == JOB_DONE) {
    json_t *res = json_deep_copy(job_result(j));
    unsigned status = 200;
    if (w->kind == JOB_REGISTER && json_is_true(json_object_get(res, "created")))
      status = 201;
    handler_set_elapsed(rq, res);
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

MHD_RESULT handler_run_job(struct request *rq, struct job_request *req, int async)
{
  snprintf(req->who, sizeof req->who, "%s", rq->who);
  snprintf(req->client, sizeof req->client, "%s", request_client(rq));
  struct job *j = NULL;
  int shared = 0;
  struct aced_error err;
  if (jobs_submit(rq->srv->jobs, req, &j, &shared, &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  if (async) {
    MHD_RESULT r = reply_json(rq, 202, accepted_body(j));
    job_unref(j);
    return r;
  }
  struct job_wait *w = calloc(1, sizeof *w);
  if (w == NULL) {
    job_unref(j);
    return reply_error(rq, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  w->rq = rq;
  w->job = j;
  w->kind = req->kind;
  rq->hstate = w;
  rq->hstate_free = job_wait_free;
  request_suspend(rq);
  jobs_wait(rq->srv->jobs, j, http_now_us() + rq->srv->cfg.sync_wait_ms * 1000, on_job, w);
  return MHD_YES;
}
