/*
 * register.c -- the "register" job kind (POST /v1/models): parse and
 * validate a registration (O(k^3) for the covariance check, hence a
 * worker), and store it durably in its canonical form.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/log.h"
#include "aced/store.h"
#include "svc/internal.h"

/* Store m (digest computed) as the next version of its name unless that
 * content is there already; the registration reply.  Frees m. */
json_t *register_store(const struct svc *svc, const struct job_request *req,
                       struct aced_model *m, struct aced_error *err)
{
  char *canon = model_canonical_json(m);
  if (canon == NULL) {
    model_free(m);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "%s", m->name);
  snprintf(row.digest, sizeof row.digest, "%s", m->digest);
  row.description = m->description;
  /* a recurrent model's features and outputs are per step (model.h) */
  row.n_features = m->rnn ? m->step_features : m->n_features;
  row.n_outputs = m->rnn ? m->step_outputs : m->n_outputs;
  row.n_samples = m->n_samples;
  row.n_params = m->n_params;
  snprintf(row.source, sizeof row.source, "%s", m->source);
  int created = 0;
  enum aced_err rc = svc->store->ops->model_put(svc->store, &row, canon, &created, err);
  row.description = NULL; /* owned by m */
  free(canon);
  if (rc != ACED_OK) {
    model_free(m);
    return NULL;
  }
  if (created)
    log_info("audit", "model registered name=%s version=%d digest=%s by=%s from=%s",
             row.name, row.version, row.digest, req->who, req->client);
  json_t *res = json_pack("{s:s,s:i,s:s,s:s,s:b}", "name", row.name, "version", row.version,
                          "digest", row.digest, "created_at", row.created_at, "created",
                          created);
  model_free(m);
  return res;
}

static json_t *do_register(const struct svc *svc, const struct job_request *req,
                           struct aced_error *err)
{
  struct aced_model *m = NULL;
  if (model_parse(req->params, 1, &m, err) != ACED_OK)
    return NULL;
  return register_store(svc, req, m, err);
}

static void *register_plan(void *ctx, struct job *job, const struct job_request *req,
                           int *n_tasks, long *units_total, struct aced_error *err)
{
  (void)job;
  *n_tasks = 0;
  *units_total = 1;
  return done_work_new(do_register(ctx, req, err), err);
}

const struct job_ops svc_kind_register = {
    .name = "register",
    .plan = register_plan,
    .task = done_work_task,
    .finish = done_work_finish,
    .free = done_work_free,
    .flags = JOB_OUTLIVES_SUBJECT,
};
