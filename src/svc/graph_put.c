/*
 * graph_put.c -- the "graph_put" job kind (PUT /v1/models/{name}/graph):
 * a new version of the model with the given graph among its inputs.
 *
 * The graph is part of a model's content (src/model/graph.c), so
 * replacing it is a registration: the latest version is read back from
 * the store, its graph replaced by the one in the body (validated: known
 * feature names, no duplicates, no cycle), and the result stored under a
 * new digest.  Regressors cached for the old digest are never served for
 * the new one; the old version keeps its graph and its cache.  Putting
 * the graph the latest version has already is answered 200 with
 * "created": false, like an identical registration.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/store.h"
#include "svc/internal.h"

struct aced_model *graph_model_copy(const struct svc *svc, const char *name, int version,
                                    struct aced_error *err)
{
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  if (svc->store->ops->model_get(svc->store, name, version, 1, &row, err) != ACED_OK)
    return NULL;
  json_t *j = row.body ? json_loads(row.body, 0, NULL) : NULL;
  struct aced_model *m = NULL;
  struct aced_error perr;
  if (j == NULL || model_parse(j, 0, &m, &perr) != ACED_OK) {
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d is unreadable", name,
                   row.version);
    json_decref(j);
    store_model_row_clear(&row);
    return NULL;
  }
  json_decref(j);
  snprintf(m->name, sizeof m->name, "%s", row.name);
  m->version = row.version;
  store_model_row_clear(&row);
  return m;
}

static json_t *do_graph_put(const struct svc *svc, const struct job_request *req,
                            struct aced_error *err)
{
  struct aced_model *m = graph_model_copy(svc, req->model, 0, err);
  if (m == NULL)
    return NULL;
  if (model_graph_parse(req->params, 1, "", m, err) != ACED_OK ||
      model_compute_digest(m) != 0) {
    if (err->code == ACED_OK)
      aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    model_free(m);
    return NULL;
  }
  json_t *graph = model_graph_json(m);
  json_t *res = register_store(svc, req, m, err);
  if (res != NULL && graph != NULL)
    json_object_set_new(res, "graph", graph);
  else
    json_decref(graph);
  return res;
}

static void *graph_put_plan(void *ctx, struct job *job, const struct job_request *req,
                            int *n_tasks, long *units_total, struct aced_error *err)
{
  (void)job;
  *n_tasks = 0;
  *units_total = 1;
  return done_work_new(do_graph_put(ctx, req, err), err);
}

const struct job_ops svc_kind_graph_put = {
    .name = "graph_put",
    .plan = graph_put_plan,
    .task = done_work_task,
    .finish = done_work_finish,
    .free = done_work_free,
    .flags = JOB_OUTLIVES_SUBJECT,
};
