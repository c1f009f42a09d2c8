/*
 * graph_get.c -- the "graph_get" job kind (GET /v1/models/{name}/graph):
 * the graph among the model's inputs with the weights of its structural
 * equations as fitted on the model's data (src/svc/effect.c), how it was
 * obtained (given, or learned: method, parameters, score, warnings), or a
 * 404 when the model has none.  Loading the model fits the equations, so
 * this runs on a worker unless the model is loaded already.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/internal.h"

static json_t *graph_of(const struct loaded *L, const char *name, int version,
                        struct aced_error *err)
{
  if (L->m->graph == NULL) {
    aced_error_set(err, ACED_E_NOT_FOUND, "name",
                   "model '%s' has no graph among its inputs: give one with PUT or learn one "
                   "with POST /v1/models/%s/graph",
                   name, name);
    return NULL;
  }
  json_t *g = effect_graph_json(L);
  if (g != NULL) {
    json_object_set_new(g, "model", json_string(name));
    json_object_set_new(g, "version", json_integer(version));
    json_object_set_new(g, "digest", json_string(L->digest));
  } else {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  return g;
}

static void *graph_get_plan(void *ctx, struct job *job, const struct job_request *req,
                            int *n_tasks, long *units_total, struct aced_error *err)
{
  (void)job;
  *n_tasks = 0;
  *units_total = 1;
  struct loaded *L = prepared_acquire(ctx, req->model, req->version, req->digest, err);
  if (L == NULL)
    return NULL;
  json_t *g = graph_of(L, req->model, req->version ? req->version : L->m->version, err);
  prepared_release(L);
  return g ? done_work_new(g, err) : NULL;
}

const struct job_ops svc_kind_graph_get = {
    .name = "graph_get",
    .plan = graph_get_plan,
    .task = done_work_task,
    .finish = done_work_finish,
    .free = done_work_free,
};

json_t *svc_cached_graph(const struct svc *svc, const char *digest, const char *name,
                         int version, struct aced_error *err)
{
  (void)svc;
  err->code = ACED_OK;
  struct loaded *L = prepared_peek(digest);
  if (L == NULL)
    return NULL;
  json_t *g = graph_of(L, name, version, err);
  prepared_release(L);
  return g;
}
