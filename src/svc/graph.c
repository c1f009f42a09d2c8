/*
 * graph.c -- the "graph" job kind (POST /v1/models/{name}/graph): learn a
 * DAG among the model's inputs from its samples and store it as a new
 * version of the model (the graph is part of its content).
 *
 * DESIGN
 *
 * One task runs the learner (src/engine/learn.c: dagma or notears on a
 * linear SEM, OWL-QN for the L1 term) twice: on the samples as they are
 * (the answer) and on the standardised samples.  Continuous learners on
 * data whose variances grow along the causal order get their directions
 * from the variances rather than from the structure (Reisach et al.
 * 2021), so the result reports the data's varsortability under the
 * learned graph and whether standardising changes the graph, with a
 * warning when it does: the user should then give the graph (PUT).  The
 * finish step reads the version the job was started on, sets the learned
 * graph (with the learner's report: method, parameters, score,
 * varsortability, standardized, warnings) and stores it as a new version,
 * like PUT .../graph.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aced/limits.h"
#include "aced/log.h"
#include "svc/internal.h"

enum aced_err graph_learn_params_parse(const json_t *b, struct graph_learn_params *p,
                                       struct aced_error *err)
{
  json_t *v;
  memset(p, 0, sizeof *p);
  p->method = 0;
  if ((v = json_object_get(b, "method")) != NULL) {
    const char *s = json_string_value(v);
    if (s == NULL)
      return aced_error_set(err, ACED_E_BAD_TYPE, "method", "method must be a string");
    if (strcmp(s, "dagma") == 0)
      p->method = 0;
    else if (strcmp(s, "notears") == 0)
      p->method = 1;
    else
      return aced_error_set(err, ACED_E_INVALID, "method", "method must be dagma or notears");
  }
  /* the reference implementations' own defaults */
  p->lambda1 = p->method == 0 ? 0.02 : 0.1;
  p->threshold = 0.3;
  if ((v = json_object_get(b, "lambda1")) != NULL) {
    if (!json_is_number(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "lambda1", "lambda1 must be a number");
    p->lambda1 = json_number_value(v);
    if (!(p->lambda1 >= 0 && p->lambda1 <= 100))
      return aced_error_set(err, ACED_E_INVALID, "lambda1", "lambda1 must be in [0, 100]");
  }
  if ((v = json_object_get(b, "threshold")) != NULL) {
    if (!json_is_number(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "threshold", "threshold must be a number");
    p->threshold = json_number_value(v);
    if (!(p->threshold >= 0 && p->threshold <= 1e6))
      return aced_error_set(err, ACED_E_INVALID, "threshold", "threshold must be in [0, 1e6]");
  }
  if ((v = json_object_get(b, "max_parents")) != NULL) {
    if (!json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "max_parents", "max_parents must be an integer");
    json_int_t m = json_integer_value(v);
    if (m < 0 || m > ACED_GRAPH_LEARN_MAX_FEATURES)
      return aced_error_set(err, ACED_E_INVALID, "max_parents",
                            "max_parents must be in [0, %d] (0: no cap)",
                            ACED_GRAPH_LEARN_MAX_FEATURES);
    p->max_parents = (int)m;
  }
  return ACED_OK;
}

struct graph_work {
  const struct svc *svc;
  struct job *job;
  struct job_request req; /* model, version, who, client */
  struct loaded *L;
  struct graph_learn_params p;
  double *W, *Ws;         /* d x d: learned, and learned on standardised data */
  struct eng_learn_info info;
  double seconds;         /* CPU seconds of the learner, on its thread */
};

static void graph_free(void *work)
{
  struct graph_work *w = work;
  if (w == NULL)
    return;
  prepared_release(w->L);
  free(w->W);
  free(w->Ws);
  free(w);
}

static void *graph_plan(void *ctx, struct job *job, const struct job_request *req, int *n_tasks,
                        long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 2;
  struct graph_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  w->svc = ctx;
  w->job = job;
  w->req = *req;
  w->req.params = NULL;
  if (graph_learn_params_parse(req->params, &w->p, err) != ACED_OK ||
      (w->L = prepared_acquire(ctx, req->model, req->version, req->digest, err)) == NULL)
    goto fail;
  int d = w->L->m->n_features;
  if (w->L->m->n_samples < 2) {
    aced_error_set(err, ACED_E_NO_SAMPLES, "", "learning a graph needs the model's samples; "
                                              "this model was registered with mean and "
                                              "covariance only: give the graph instead (PUT)");
    goto fail;
  }
  if (d > ACED_GRAPH_LEARN_MAX_FEATURES) {
    aced_error_set(err, ACED_E_LIMIT, "", "the learner takes at most %d features, the model has %d",
                   ACED_GRAPH_LEARN_MAX_FEATURES, d);
    goto fail;
  }
  w->W = calloc((size_t)d * d, sizeof(double));
  w->Ws = calloc((size_t)d * d, sizeof(double));
  if (!w->W || !w->Ws) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto fail;
  }
  w->req.version = req->version ? req->version : w->L->m->version;
  *n_tasks = 2; /* as given, and standardised */
  return w;
fail:
  graph_free(w);
  return NULL;
}

static long graph_task(void *work, int i, struct aced_error *err)
{
  struct graph_work *w = work;
  const struct aced_model *m = w->L->m;
  struct eng_learn_params lp = {.method = w->p.method ? ENG_LEARN_NOTEARS : ENG_LEARN_DAGMA,
                                .lambda1 = w->p.lambda1, .threshold = w->p.threshold,
                                .max_parents = w->p.max_parents};
  struct eng_learn_info info;
  char ebuf[128];
  struct timespec t0, t1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  svc_stop_begin(w->job);
  int rc = eng_learn_dag(m->samples, m->n_samples, m->n_features, i == 1, &lp, i ? w->Ws : w->W,
                         &info, ebuf, sizeof ebuf);
  svc_stop_end();
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  if (rc == ENG_STOPPED) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "job stopped (cancelled, timed out or shutting down)");
    return -1;
  }
  if (rc != 0) {
    aced_error_set(err, ACED_E_INTERNAL, "", "the learner failed: %s", ebuf);
    return -1;
  }
  if (i == 0) {
    w->info = info;
    w->seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  }
  return 1;
}

/* The learner's report stored with the graph (canonical, so no timings). */
static json_t *learn_report(const struct graph_work *w, int n_edges)
{
  const struct aced_model *m = w->L->m;
  const int d = m->n_features;
  int differ = 0;
  for (int a = 0; a < d; a++)
    for (int b = 0; b < d; b++)
      differ += (w->W[(size_t)a * d + b] != 0) != (w->Ws[(size_t)a * d + b] != 0);
  double vs = eng_varsortability(m->samples, m->n_samples, d, w->W);
  json_t *warn = json_array();
  if (differ > 0) {
    char msg[512];
    snprintf(msg, sizeof msg,
             "the learned graph changes when the features are standardised (%d directed edges "
             "differ): its directions may follow the order of the variances (varsortability "
             "%.3f) rather than the causal order (Reisach et al. 2021); give the graph instead "
             "(PUT /v1/models/%s/graph)",
             differ, vs, w->req.model);
    json_array_append_new(warn, json_string(msg));
  }
  if (w->info.pruned > 0)
    json_array_append_new(warn, json_sprintf("%d edges were dropped to keep at most %d parents "
                                             "per feature", w->info.pruned, w->p.max_parents));
  if (w->info.cycles_broken > 0)
    json_array_append_new(warn, json_sprintf("%d cycles were left after thresholding; each lost "
                                             "its weakest edge", w->info.cycles_broken));
  if (n_edges == 0)
    json_array_append_new(warn, json_string("no edge survived the threshold: total effects "
                                            "equal direct effects"));
  int std_edges = 0;
  for (int a = 0; a < d * d; a++)
    std_edges += w->Ws[a] != 0;
  return json_pack("{s:s,s:{s:f,s:f,s:i},s:f,s:o,s:{s:i,s:i},s:o}", "method",
                   w->p.method ? "notears" : "dagma", "parameters", "lambda1", w->p.lambda1,
                   "threshold", w->p.threshold, "max_parents", w->p.max_parents, "score",
                   w->info.score, "varsortability", isfinite(vs) ? json_real(vs) : json_null(),
                   "standardized", "edges", std_edges, "differ", differ, "warnings", warn);
}

static json_t *graph_finish(void *work, struct aced_error *err)
{
  struct graph_work *w = work;
  const int d = w->L->m->n_features;
  int n = 0;
  for (int a = 0; a < d * d; a++)
    n += w->W[a] != 0;
  int(*edges)[2] = malloc(sizeof *edges * (size_t)(n ? n : 1));
  json_t *learned = json_array();
  if (edges == NULL || learned == NULL) {
    free(edges);
    json_decref(learned);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  n = 0;
  for (int a = 0; a < d; a++)
    for (int b = 0; b < d; b++)
      if (w->W[(size_t)a * d + b] != 0) {
        edges[n][0] = a;
        edges[n][1] = b;
        n++;
        json_array_append_new(learned, json_pack("{s:s,s:s,s:f}", "from",
                                                 w->L->m->features[a].name, "to",
                                                 w->L->m->features[b].name, "weight",
                                                 w->W[(size_t)a * d + b]));
      }
  json_t *report = learn_report(w, n);
  struct aced_model *m = graph_model_copy(w->svc, w->req.model, w->req.version, err);
  json_t *res = NULL;
  if (m != NULL && report != NULL) {
    json_t *shown = json_deep_copy(report);
    if (model_graph_set(m, (const int (*)[2])edges, n, 1, json_incref(report), err) == ACED_OK &&
        model_compute_digest(m) == 0) {
      res = register_store(w->svc, &w->req, m, err);
      m = NULL;
    }
    if (res != NULL && shown != NULL) {
      json_object_set_new(shown, "edges", json_incref(learned));
      json_object_set_new(shown, "source", json_string("learned"));
      json_object_set_new(shown, "cpu_seconds", json_real(w->seconds));
      json_object_set_new(shown, "evaluations", json_integer(w->info.evaluations));
      json_object_set_new(res, "learned_from", json_integer(w->req.version));
      json_object_set_new(res, "graph", shown);
      shown = NULL;
    }
    json_decref(shown);
  }
  model_free(m);
  json_decref(report);
  json_decref(learned);
  free(edges);
  if (res == NULL && err->code == ACED_OK)
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  return res;
}

const struct job_ops svc_kind_graph = {
    .name = "graph",
    .plan = graph_plan,
    .task = graph_task,
    .finish = graph_finish,
    .free = graph_free,
    .flags = JOB_KEEP_RESULT,
};
