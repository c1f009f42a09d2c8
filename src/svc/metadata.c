/*
 * metadata.c -- the "metadata" job kind (GET /v1/models/{name}): what a
 * model is (shapes, names, domains, how it was prepared), never its
 * weights or samples.  Answered on the HTTP thread when the model is
 * already loaded (svc_cached_metadata).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/log.h"
#include "aced/store.h"
#include "svc/internal.h"

struct versions {
  json_t *list;
  int version;                      /* the one asked for */
  char source[ACED_SOURCE_MAX + 1]; /* its row's source */
};

static int collect_version(void *cls, const struct store_model_row *r)
{
  struct versions *v = cls;
  json_array_append_new(v->list, json_pack("{s:i,s:s,s:s}", "version", r->version, "digest",
                                           r->digest, "created_at", r->created_at));
  if (r->version == v->version)
    memcpy(v->source, r->source, sizeof v->source);
  return 0;
}

/* "source": "onnx" with "onnx": {"opset", "producer"} from the row of an
 * ONNX import; "source": "json" otherwise. */
static void set_source(json_t *md, const char *source)
{
  json_t *onnx = source[0] != '\0' ? json_loads(source, 0, NULL) : NULL;
  json_object_set_new(md, "source", json_string(json_is_object(onnx) ? "onnx" : "json"));
  if (json_is_object(onnx))
    json_object_set_new(md, "onnx", onnx);
  else
    json_decref(onnx);
}

/* Metadata of the loaded model under the name and version asked for (a
 * loaded model is shared by every name registered with the same content),
 * plus the name's versions from the store. */
static json_t *metadata_of(const struct svc *svc, const struct loaded *L, const char *name,
                           int version)
{
  json_t *md = model_metadata_json(L->m);
  if (md == NULL)
    return NULL;
  json_object_set_new(md, "name", json_string(name));
  json_object_set_new(md, "version", json_integer(version));
  struct versions v = {json_array(), version, ""};
  struct aced_error err;
  svc->store->ops->model_versions(svc->store, name, collect_version, &v, &err);
  json_object_set_new(md, "versions", v.list);
  set_source(md, v.source);
  json_t *prep = json_pack("{s:i,s:I}", "factor_rank", eng_model_rank(L->em), "memory_bytes",
                           (json_int_t)eng_model_bytes(L->em));
  json_object_set_new(md, "prepared", prep);
  json_object_set_new(md, "graph", effect_graph_json(L)); /* null without one */
  const double *per;
  double tau, thr;
  int n;
  if (eng_rnn_lag(L->em, &per, &tau, &thr, &n) == 0)
    json_object_set_new(md, "lag",
                        json_pack("{s:i,s:f,s:f,s:o,s:i}", "tau", (int)ceil(tau), "tau_mean", tau,
                                  "threshold", thr, "per_timestep",
                                  dbl_array(per, L->m->seq_len, 1), "sequences", n));
  return md;
}

static void *metadata_plan(void *ctx, struct job *job, const struct job_request *req,
                           int *n_tasks, long *units_total, struct aced_error *err)
{
  (void)job;
  *n_tasks = 0;
  *units_total = 1;
  struct loaded *L = prepared_acquire(ctx, req->model, req->version, req->digest, err);
  if (L == NULL)
    return NULL;
  json_t *md = metadata_of(ctx, L, req->model, req->version ? req->version : L->m->version);
  prepared_release(L);
  if (md == NULL)
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  return done_work_new(md, err);
}

const struct job_ops svc_kind_metadata = {
    .name = "metadata",
    .plan = metadata_plan,
    .task = done_work_task,
    .finish = done_work_finish,
    .free = done_work_free,
};

json_t *svc_cached_metadata(const struct svc *svc, const char *digest, const char *name,
                            int version)
{
  struct loaded *L = prepared_peek(digest);
  if (L == NULL)
    return NULL;
  json_t *md = metadata_of(svc, L, name, version);
  prepared_release(L);
  return md;
}
