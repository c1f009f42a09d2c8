/*
 * significance.c -- the "significance" job kind (POST .../significance):
 * Olden and Jackson's (2002) randomization test of feature importances.
 *
 * The registered architecture is retrained from fresh initialisations,
 * once on the registered targets (the observed statistic) and once per
 * permutation on the targets permuted across samples (the null
 * distribution), with the registration's training settings and the
 * engine's exact trainer (engine/train.c).  For each output and feature:
 * the observed value, quantiles of the null distribution and the p-value
 * (1 + #{|null| >= |observed|}) / (1 + permutations).
 *
 * Statistics:
 *   connection_weights  Olden's sum over paths of products of weights
 *   ace                 the range of the causal effect: max_a - min_a of
 *                       E[y | do(x_i = a)] (Monte Carlo over the samples)
 *                       on ACED_SIG_ACE_GRID values over the domain
 * The observed value comes from the retrained network, not the registered
 * one, so that it is drawn the same way as the null (a pipeline's own
 * training may scale weights differently); the registered network's value
 * is reported beside it.  Training works in the network's own input units
 * (the input transform applied to the samples).
 *
 * Reproducible: every run's randomness (initial weights, batches, the
 * permutation) comes from the engine's generator seeded by (seed, run,
 * stream) alone, whatever the worker that runs it.  One task per run;
 * progress counts runs; cancel stops the trainer between batches.  The
 * answer is cached in the store under the model's digest and the request's
 * parameters, so asking again is answered at once.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/limits.h"
#include "aced/store.h"
#include "svc/internal.h"

enum statistic { STAT_CONNECTION_WEIGHTS, STAT_ACE };
static const char *const stat_names[] = {"connection_weights", "ace"};
static const double quantile_levels[] = {0.025, 0.05, 0.5, 0.95, 0.975};
#define N_QUANTILES ((int)(sizeof quantile_levels / sizeof quantile_levels[0]))

struct sig_work;
static enum aced_err parse_request(struct sig_work *w, const json_t *p, struct aced_error *err);

struct sig_work {
  const struct svc *svc;
  struct job *job;
  struct loaded *L;
  enum statistic stat;
  int permutations;
  long long seed;
  int n, k, no;
  double *X;          /* n x k samples in the network's input units */
  double *lo, *hi;    /* k: the domain in those units */
  double *stats;      /* (permutations + 1) x no x k; run 0 is the observed */
  double *registered; /* no x k: the registered network's statistic */
  char params[128];   /* the cache key's parameters */
  json_t *cached;     /* a cache hit: the answer */
};

static void sig_free(void *work)
{
  struct sig_work *w = work;
  if (w == NULL)
    return;
  prepared_release(w->L);
  free(w->X);
  free(w->lo);
  free(w->hi);
  free(w->stats);
  free(w->registered);
  json_decref(w->cached);
  free(w);
}

/* The seed of stream `s` of run `r`. */
static uint64_t stream(long long seed, int r, int s)
{
  uint64_t st = (uint64_t)seed ^ ((uint64_t)r * 0xD1B54A32D192ED03ULL) ^
                ((uint64_t)s * 0x94D049BB133111EBULL);
  return eng_rng_next(&st);
}

static void cache_key(const struct sig_work *w, struct store_cache_key *k)
{
  k->digest = w->L->digest;
  k->output = -1;
  k->feature = -1;
  k->estimator = "significance";
  k->params = w->params;
}

enum aced_err significance_params_check(const json_t *body, struct aced_error *err)
{
  struct sig_work w;
  return parse_request(&w, body, err);
}

static enum aced_err parse_request(struct sig_work *w, const json_t *p, struct aced_error *err)
{
  const json_t *v = json_object_get(p, "permutations");
  json_int_t perm = v ? json_integer_value(v) : ACED_PERMUTATIONS_DEFAULT;
  if (perm < 1 || perm > ACED_PERMUTATIONS_MAX)
    return aced_error_set(err, ACED_E_INVALID, "permutations",
                          "permutations must be in [1, %d]", ACED_PERMUTATIONS_MAX);
  w->permutations = (int)perm;
  const char *s = json_string_value(json_object_get(p, "statistic"));
  w->stat = STAT_CONNECTION_WEIGHTS;
  if (s != NULL && strcmp(s, "ace") == 0)
    w->stat = STAT_ACE;
  else if (s != NULL && strcmp(s, "connection_weights") != 0)
    return aced_error_set(err, ACED_E_INVALID, "statistic",
                          "statistic must be connection_weights or ace");
  v = json_object_get(p, "seed");
  if (v != NULL && json_integer_value(v) < 0)
    return aced_error_set(err, ACED_E_INVALID, "seed", "seed must be a non-negative integer");
  return ACED_OK;
}

static void *sig_plan(void *ctx, struct job *job, const struct job_request *req, int *n_tasks,
                      long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 1;
  struct sig_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  w->svc = ctx;
  w->job = job;
  if (parse_request(w, req->params, err) != ACED_OK ||
      (w->L = prepared_acquire(ctx, req->model, req->version, req->digest, err)) == NULL)
    goto fail;
  const struct aced_model *m = w->L->m;
  if (!m->has_training) {
    aced_error_set(err, ACED_E_NO_TRAINING, "model",
                   "the randomization test retrains the network: register the model with "
                   "data.targets and training");
    goto fail;
  }
  const json_t *sv = json_object_get(req->params, "seed");
  w->seed = sv ? json_integer_value(sv) : m->training.seed;
  w->n = m->n_samples;
  w->k = m->n_features;
  w->no = m->n_outputs;
  if ((long)(w->permutations + 1) * w->no * w->k > ACED_SIG_CELLS_MAX) {
    aced_error_set(err, ACED_E_LIMIT, "permutations",
                   "(permutations + 1) x outputs x features is over %ld values",
                   (long)ACED_SIG_CELLS_MAX);
    goto fail;
  }
  snprintf(w->params, sizeof w->params, "statistic=%s;permutations=%d;seed=%lld",
           stat_names[w->stat], w->permutations, w->seed);
  struct store_cache_key key;
  cache_key(w, &key);
  char *hit = NULL;
  struct aced_error cerr;
  if (w->svc->store->ops->cache_get(w->svc->store, &key, &hit, &cerr) == ACED_OK && hit) {
    w->cached = json_loads(hit, 0, NULL);
    free(hit);
    if (w->cached != NULL) {
      json_object_set_new(json_object_get(w->cached, "meta"), "cache", json_string("hit"));
      return w; /* no tasks: finish answers from the cache */
    }
  }
  size_t cells = (size_t)(w->permutations + 1) * w->no * w->k;
  w->stats = calloc(cells, sizeof(double));
  w->registered = calloc((size_t)w->no * w->k, sizeof(double));
  w->X = malloc(sizeof(double) * (size_t)w->n * w->k);
  w->lo = malloc(sizeof(double) * (size_t)w->k);
  w->hi = malloc(sizeof(double) * (size_t)w->k);
  if (!w->stats || !w->registered || !w->X || !w->lo || !w->hi) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto fail;
  }
  for (int i = 0; i < w->k; i++) {
    double sc = m->has_transform ? m->tf_scale[i] : 1.0, sh = m->has_transform ? m->tf_shift[i] : 0.0;
    for (int r = 0; r < w->n; r++)
      w->X[(size_t)r * w->k + i] = (m->samples[(size_t)r * w->k + i] - sh) / sc;
    w->lo[i] = (m->features[i].low - sh) / sc;
    w->hi[i] = (m->features[i].high - sh) / sc;
  }
  *n_tasks = w->permutations + 1;
  *units_total = w->permutations + 1;
  return w;
fail:
  sig_free(w);
  return NULL;
}

/* The statistic of net (no x k into out); 0, or an engine error code. */
static int statistic(const struct sig_work *w, const struct eng_net *net, double *out)
{
  int k = w->k, no = w->no, rc = 0;
  if (w->stat == STAT_CONNECTION_WEIGHTS) {
    double *garson = malloc(sizeof(double) * (size_t)k);
    rc = garson ? 0 : -1;
    for (int o = 0; o < no && rc == 0; o++)
      rc = eng_net_connection_weights(net, o, out + (size_t)o * k, garson);
    free(garson);
    return rc;
  }
  /* ace: a model prepared on the network's own units */
  const struct aced_model *m = w->L->m;
  double *mean = malloc(sizeof(double) * (size_t)k), *cov = malloc(sizeof(double) * k * k);
  double grid[ACED_SIG_ACE_GRID], E[ACED_SIG_ACE_GRID * 8], *Eb = NULL;
  struct eng_model *em = NULL;
  char ebuf[128];
  rc = -1;
  if (!mean || !cov)
    goto done;
  for (int i = 0; i < k; i++) {
    double si = m->has_transform ? m->tf_scale[i] : 1.0;
    mean[i] = (m->mean[i] - (m->has_transform ? m->tf_shift[i] : 0.0)) / si;
    for (int j = 0; j < k; j++)
      cov[(size_t)i * k + j] =
          m->cov[(size_t)i * k + j] / (si * (m->has_transform ? m->tf_scale[j] : 1.0));
  }
  struct eng_model_input in = {.net = net, .k = k, .mean = mean, .cov = cov,
                               .n_samples = w->n, .samples = w->X};
  if (eng_model_prepare(&in, &em, ebuf, sizeof ebuf) != 0)
    goto done;
  double *Ev = no <= 8 ? E : (Eb = malloc(sizeof(double) * ACED_SIG_ACE_GRID * no));
  if (Ev == NULL)
    goto done;
  rc = 0;
  for (int i = 0; i < k && rc == 0; i++) {
    if (!(w->lo[i] != w->hi[i])) {
      for (int o = 0; o < no; o++)
        out[(size_t)o * k + i] = 0.0;
      continue;
    }
    eng_grid(w->lo[i] < w->hi[i] ? w->lo[i] : w->hi[i], w->lo[i] < w->hi[i] ? w->hi[i] : w->lo[i],
             ACED_SIG_ACE_GRID, grid);
    rc = eng_montecarlo(em, i, grid, ACED_SIG_ACE_GRID, Ev, NULL);
    for (int o = 0; o < no && rc == 0; o++) {
      double mn = INFINITY, mx = -INFINITY;
      for (int a = 0; a < ACED_SIG_ACE_GRID; a++) {
        mn = fmin(mn, Ev[(size_t)a * no + o]);
        mx = fmax(mx, Ev[(size_t)a * no + o]);
      }
      out[(size_t)o * k + i] = mx - mn;
    }
  }
done:
  eng_model_free(em);
  free(Eb);
  free(mean);
  free(cov);
  return rc;
}

static long sig_task(void *work, int run, struct aced_error *err)
{
  struct sig_work *w = work;
  const struct aced_model *m = w->L->m;
  const struct eng_net *reg = &m->net;
  int n = w->n, no = w->no, rc = 0;
  struct eng_net net = {.n_layers = reg->n_layers, .layers = calloc((size_t)reg->n_layers,
                                                                     sizeof *net.layers)};
  double *Y = malloc(sizeof(double) * (size_t)n * no);
  int *perm = malloc(sizeof(int) * (size_t)n);
  rc = net.layers && Y && perm ? 0 : -1;
  for (int l = 0; l < reg->n_layers && rc == 0; l++) {
    net.layers[l] = reg->layers[l];
    net.layers[l].W = malloc(sizeof(double) * (size_t)reg->layers[l].n_out * reg->layers[l].n_in);
    net.layers[l].b = malloc(sizeof(double) * (size_t)reg->layers[l].n_out);
    rc = net.layers[l].W && net.layers[l].b ? 0 : -1;
  }
  if (rc == 0) {
    /* run 0: the registered targets; run r: a permutation of the rows */
    uint64_t ps = stream(w->seed, run, 3);
    eng_rng_permutation(&ps, n, perm);
    for (int r = 0; r < n; r++)
      memcpy(Y + (size_t)r * no, m->targets + (size_t)(run == 0 ? r : perm[r]) * no,
             sizeof(double) * (size_t)no);
    eng_init_weights(&net, stream(w->seed, run, 1));
    struct eng_train_opts o = {.loss = (enum eng_loss)m->training.loss,
                               .epochs = m->training.epochs,
                               .batch_size = m->training.batch_size,
                               .learning_rate = m->training.learning_rate,
                               .weight_decay = m->training.weight_decay,
                               .seed = stream(w->seed, run, 2)};
    svc_stop_begin(w->job);
    rc = eng_train(&net, w->X, Y, n, &o);
    svc_stop_end();
  }
  if (rc == 0)
    rc = statistic(w, &net, w->stats + (size_t)run * no * w->k);
  if (rc == 0 && run == 0)
    rc = statistic(w, reg, w->registered);
  for (int l = 0; net.layers && l < net.n_layers; l++) {
    free(net.layers[l].W);
    free(net.layers[l].b);
  }
  free(net.layers);
  free(Y);
  free(perm);
  if (rc == ENG_STOPPED) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "",
                   "job stopped (cancelled, timed out or shutting down)");
    return -1;
  }
  if (rc != 0) {
    aced_error_set(err, ACED_E_INTERNAL, "",
                   "retraining run %d failed (out of memory, or the weights overflowed: try a "
                   "smaller learning_rate)",
                   run);
    return -1;
  }
  return 1;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v (n >= 1), linear between order statistics
 * (numpy's default). */
static double quantile(const double *v, int n, double q)
{
  double h = (n - 1) * q;
  int i = (int)floor(h);
  if (i >= n - 1)
    return v[n - 1];
  return v[i] + (h - i) * (v[i + 1] - v[i]);
}

static json_t *sig_finish(void *work, struct aced_error *err)
{
  struct sig_work *w = work;
  if (w->cached != NULL)
    return json_incref(w->cached);
  int P = w->permutations, k = w->k, no = w->no;
  const struct aced_model *m = w->L->m;
  double *null = malloc(sizeof(double) * (size_t)P);
  json_t *results = json_array(), *levels = json_array();
  if (null == NULL || results == NULL || levels == NULL) {
    free(null);
    json_decref(results);
    json_decref(levels);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  for (int q = 0; q < N_QUANTILES; q++)
    json_array_append_new(levels, json_real(quantile_levels[q]));
  for (int o = 0; o < no; o++)
    for (int i = 0; i < k; i++) {
      size_t c = (size_t)o * k + i;
      double obs = w->stats[c];
      int as_big = 0;
      for (int r = 0; r < P; r++) {
        null[r] = w->stats[(size_t)(r + 1) * no * k + c];
        as_big += fabs(null[r]) >= fabs(obs);
      }
      qsort(null, (size_t)P, sizeof *null, cmp_double);
      double qs[N_QUANTILES];
      for (int q = 0; q < N_QUANTILES; q++)
        qs[q] = quantile(null, P, quantile_levels[q]);
      json_array_append_new(
          results, json_pack("{s:s,s:s,s:f,s:f,s:o,s:f}", "output", m->outputs[o], "feature",
                             m->features[i].name, "observed", obs, "registered",
                             w->registered[c], "null_quantiles", dbl_array(qs, N_QUANTILES, 1),
                             "p_value", (1.0 + as_big) / (1.0 + P)));
    }
  free(null);
  json_t *res = json_pack("{s:s,s:i,s:I,s:o,s:o,s:o}", "statistic", stat_names[w->stat],
                          "permutations", P, "seed", (json_int_t)w->seed, "quantiles", levels,
                          "results", results, "meta", meta_json("none", "miss", NULL));
  if (res == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  /* cache it: the same request is then answered at once */
  char *text = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(17));
  struct store_cache_key key;
  struct aced_error cerr;
  cache_key(w, &key);
  if (text != NULL)
    w->svc->store->ops->cache_put(w->svc->store, &key, (const char *const *)&text, 1, &cerr);
  free(text);
  return res;
}

const struct job_ops svc_kind_significance = {
    .name = "significance",
    .plan = sig_plan,
    .task = sig_task,
    .finish = sig_finish,
    .free = sig_free,
};
