/*
 * compute.c -- job kinds: plan, tasks and replies (see compute.h).
 *
 * DESIGN
 * Prepared models (parsed, validated, covariance factored) are kept in a
 * small in-memory LRU keyed by content digest, so a model is factored
 * once and shared by every worker; HTTP threads only ever *peek* into it
 * (never load), which keeps all O(k^3) work on the workers.
 *
 * A regressor task computes one feature's Phase I grid for every output at
 * once (the engine propagates all outputs together), fits one regressor
 * per output and caches all of them: asking for the next output of the
 * same feature is then a cache hit.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aced/compute.h"
#include "aced/engine.h"
#include "aced/http.h"
#include "aced/jsonw.h"
#include "aced/jobs.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "aced/model.h"
#include "aced/store.h"

/* ------------------------------------------------------------------ */
/* prepared models                                                     */

struct loaded {
  char digest[72];
  struct aced_model *m;
  struct eng_model *em;
  atomic_int refs;     /* users + 1 while in the list */
  atomic_ulong tick;   /* last use, for LRU */
  struct loaded *next;
};

/* Every cached query looks a model up here, from every HTTP thread: the
 * list is read under a read lock (readers never wait for each other, and
 * a reader descheduled while holding it stalls nobody), and references
 * and use ticks are atomic.  Only loading and eviction take it for
 * writing. */
static pthread_rwlock_t loaded_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct loaded *loaded_list;
static atomic_ulong loaded_tick;
static long loaded_n;

static void loaded_destroy(struct loaded *l)
{
  eng_model_free(l->em);
  model_free(l->m);
  free(l);
}

static void loaded_release(struct loaded *l)
{
  if (l == NULL)
    return;
  /* the list's own reference is dropped only under the write lock, so a
   * count reaching 0 here means nobody can find it any more */
  if (atomic_fetch_sub(&l->refs, 1) == 1)
    loaded_destroy(l);
}

/* Find by digest (lock held, for reading at least); takes a reference. */
static struct loaded *loaded_find_locked(const char *digest)
{
  for (struct loaded *l = loaded_list; l; l = l->next)
    if (strcmp(l->digest, digest) == 0) {
      atomic_fetch_add(&l->refs, 1);
      atomic_store_explicit(&l->tick, atomic_fetch_add(&loaded_tick, 1) + 1,
                            memory_order_relaxed);
      return l;
    }
  return NULL;
}

static struct loaded *loaded_peek(const char *digest)
{
  pthread_rwlock_rdlock(&loaded_lock);
  struct loaded *l = loaded_find_locked(digest);
  pthread_rwlock_unlock(&loaded_lock);
  return l;
}

long loaded_count(void)
{
  pthread_rwlock_rdlock(&loaded_lock);
  long n = loaded_n;
  pthread_rwlock_unlock(&loaded_lock);
  return n;
}

static void unlink_locked(struct loaded **pp, struct loaded **drop)
{
  struct loaded *l = *pp;
  *pp = l->next;
  loaded_n--;
  if (atomic_fetch_sub(&l->refs, 1) == 1) {
    l->next = *drop;
    *drop = l;
  }
}

static void hot_purge(const char *digest);
static void hot_clear(void);

void loaded_evict(const char *digest)
{
  hot_purge(digest);
  struct loaded *drop = NULL;
  pthread_rwlock_wrlock(&loaded_lock);
  for (struct loaded **pp = &loaded_list; *pp;) {
    if (strcmp((*pp)->digest, digest) == 0)
      unlink_locked(pp, &drop);
    else
      pp = &(*pp)->next;
  }
  pthread_rwlock_unlock(&loaded_lock);
  while (drop) {
    struct loaded *n = drop->next;
    loaded_destroy(drop);
    drop = n;
  }
}

void loaded_clear(void)
{
  hot_clear();
  struct loaded *drop = NULL;
  pthread_rwlock_wrlock(&loaded_lock);
  while (loaded_list)
    unlink_locked(&loaded_list, &drop);
  pthread_rwlock_unlock(&loaded_lock);
  while (drop) {
    struct loaded *n = drop->next;
    loaded_destroy(drop);
    drop = n;
  }
}

/* Load name/version from the store, validate, prepare (worker threads
 * only).  `digest` (may be empty) is what the HTTP thread saw; the row
 * read here is authoritative. */
static struct loaded *loaded_acquire(struct server *srv, const char *name,
                                     int version, const char *digest,
                                     struct aced_error *err)
{
  if (digest[0] != '\0') {
    struct loaded *l = loaded_peek(digest);
    if (l)
      return l;
  }
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  enum aced_err rc = srv->store->ops->model_get(srv->store, name, version, 1, &row, err);
  if (rc != ACED_OK)
    return NULL;
  struct loaded *l = loaded_peek(row.digest);
  if (l) {
    store_model_row_clear(&row);
    return l;
  }
  json_error_t jerr;
  json_t *j = row.body ? json_loads(row.body, 0, &jerr) : NULL;
  if (j == NULL) {
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d is unreadable", name,
                   row.version);
    store_model_row_clear(&row);
    return NULL;
  }
  struct aced_model *m = NULL;
  struct aced_error perr;
  if (model_parse(j, 0, &m, &perr) != ACED_OK) {
    json_decref(j);
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d fails validation: %s",
                   name, row.version, perr.message);
    store_model_row_clear(&row);
    return NULL;
  }
  json_decref(j);
  if (strcmp(m->digest, row.digest) != 0) {
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d does not match its digest",
                   name, row.version);
    model_free(m);
    store_model_row_clear(&row);
    return NULL;
  }
  snprintf(m->name, sizeof m->name, "%s", row.name);
  m->version = row.version;
  store_model_row_clear(&row);

  struct eng_model_input in = {
      .net = &m->net, .k = m->n_features, .mean = m->mean, .cov = m->cov,
      .n_samples = m->n_samples, .samples = m->samples, .lowrank_share = 0};
  struct eng_model *em = NULL;
  char ebuf[256];
  int64_t t0 = http_now_us();
  if (eng_model_prepare(&in, &em, ebuf, sizeof ebuf) != 0) {
    aced_error_set(err, ACED_E_INTERNAL, "", "cannot prepare model: %s", ebuf);
    model_free(m);
    return NULL;
  }
  log_info("model", "prepared %s v%d (%d inputs, rank %d) in %.1f ms", m->name,
           m->version, m->n_features, eng_model_rank(em), (http_now_us() - t0) / 1e3);
  l = calloc(1, sizeof *l);
  if (l == NULL) {
    eng_model_free(em);
    model_free(m);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  snprintf(l->digest, sizeof l->digest, "%s", m->digest);
  l->m = m;
  l->em = em;
  struct loaded *drop = NULL;
  pthread_rwlock_wrlock(&loaded_lock);
  struct loaded *other = loaded_find_locked(l->digest);
  if (other) {
    /* another worker won the race: use its copy */
    pthread_rwlock_unlock(&loaded_lock);
    loaded_destroy(l);
    return other;
  }
  atomic_init(&l->refs, 2);
  atomic_init(&l->tick, atomic_fetch_add(&loaded_tick, 1) + 1);
  l->next = loaded_list;
  loaded_list = l;
  loaded_n++;
  while (loaded_n > srv->cfg.model_cache) {
    struct loaded **oldest = NULL;
    for (struct loaded **pp = &loaded_list; *pp; pp = &(*pp)->next)
      if (*pp != l && (oldest == NULL || atomic_load(&(*pp)->tick) < atomic_load(&(*oldest)->tick)))
        oldest = pp;
    if (oldest == NULL)
      break;
    unlink_locked(oldest, &drop);
  }
  pthread_rwlock_unlock(&loaded_lock);
  while (drop) {
    struct loaded *n = drop->next;
    loaded_destroy(drop);
    drop = n;
  }
  return l;
}

/* ------------------------------------------------------------------ */
/* parameters                                                          */

const char *estimator_name(enum estimator e)
{
  static const char *const n[] = {"auto", "taylor", "finite_difference", "montecarlo"};
  return n[e];
}

static int estimator_parse(const char *s, enum estimator *e)
{
  for (int i = 0; i <= EST_MC; i++)
    if (strcmp(s, estimator_name((enum estimator)i)) == 0) {
      *e = (enum estimator)i;
      return 0;
    }
  return -1;
}

static void params_defaults(struct server *srv, struct query_params *q)
{
  q->estimator = EST_AUTO;
  q->num = ACED_GRID_DEFAULT;
  q->max_order = (int)srv->cfg.max_order;
  q->epsilon = 1e-4;
}

static enum aced_err check_params(const struct query_params *q, struct aced_error *err)
{
  if (q->num < ACED_GRID_MIN || q->num > ACED_GRID_MAX)
    return aced_error_set(err, ACED_E_INVALID, "num", "num must be in [%d, %d]",
                          ACED_GRID_MIN, ACED_GRID_MAX);
  if (q->max_order < 0 || q->max_order >= ACED_ORDER_MAX_HARD)
    return aced_error_set(err, ACED_E_INVALID, "max_order", "max_order must be in [0, %d]",
                          ACED_ORDER_MAX_HARD - 1);
  if (!(q->epsilon > 0) || !(q->epsilon <= 1) || !isfinite(q->epsilon))
    return aced_error_set(err, ACED_E_INVALID, "epsilon", "epsilon must be in (0, 1]");
  return ACED_OK;
}

enum aced_err query_params_parse(struct server *srv, const json_t *obj,
                                 struct query_params *q, struct aced_error *err)
{
  params_defaults(srv, q);
  json_t *v;
  if ((v = json_object_get(obj, "estimator")) != NULL) {
    if (!json_is_string(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "estimator", "estimator must be a string");
    if (estimator_parse(json_string_value(v), &q->estimator) != 0)
      return aced_error_set(err, ACED_E_INVALID, "estimator",
                            "estimator must be auto, taylor, finite_difference or montecarlo");
  }
  if ((v = json_object_get(obj, "num")) != NULL) {
    if (!json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "num", "num must be an integer");
    json_int_t n = json_integer_value(v);
    q->num = n > ACED_GRID_MAX ? ACED_GRID_MAX + 1 : n < 0 ? -1 : (int)n;
  }
  if ((v = json_object_get(obj, "max_order")) != NULL) {
    if (!json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "max_order", "max_order must be an integer");
    json_int_t n = json_integer_value(v);
    q->max_order = n > 1000 ? 1000 : n < 0 ? -1 : (int)n;
  }
  if ((v = json_object_get(obj, "epsilon")) != NULL) {
    if (!json_is_number(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "epsilon", "epsilon must be a number");
    q->epsilon = json_number_value(v);
  }
  return check_params(q, err);
}

static int parse_int(const char *s, int *out)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < -1000000 || v > 1000000)
    return -1;
  *out = (int)v;
  return 0;
}

enum aced_err query_params_from_strings(struct server *srv, const char *estimator,
                                        const char *num, const char *max_order,
                                        const char *epsilon, struct query_params *q,
                                        struct aced_error *err)
{
  params_defaults(srv, q);
  if (estimator && estimator_parse(estimator, &q->estimator) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "estimator",
                          "estimator must be auto, taylor, finite_difference or montecarlo");
  if (num && parse_int(num, &q->num) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "num", "num must be an integer");
  if (max_order && parse_int(max_order, &q->max_order) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "max_order",
                          "max_order must be an integer");
  if (epsilon) {
    char *end;
    q->epsilon = strtod(epsilon, &end);
    if (end == epsilon || *end != '\0')
      return aced_error_set(err, ACED_E_BAD_PARAMETER, "epsilon", "epsilon must be a number");
  }
  enum aced_err rc = check_params(q, err);
  if (rc != ACED_OK)
    err->code = rc = ACED_E_BAD_PARAMETER;
  return rc;
}

/* The cache key's parameter string: everything that changes the result. */
static void params_key(const struct query_params *q, char *buf, size_t n)
{
  if (q->estimator == EST_FD || q->estimator == EST_AUTO)
    snprintf(buf, n, "num=%d;max_order=%d;epsilon=%.17g", q->num, q->max_order,
             q->estimator == EST_FD ? q->epsilon : 0.0);
  else
    snprintf(buf, n, "num=%d;max_order=%d", q->num, q->max_order);
}

/* ------------------------------------------------------------------ */
/* Phase I with estimator resolution and diagnostics                   */

struct phase1 {
  int n, n_out;
  double *E;              /* n x n_out, the values served */
  double *se;             /* n x n_out standard errors (montecarlo), or NULL */
  enum estimator *used;   /* per output */
  const char **reason;    /* per output */
  struct eng_diag *diag;  /* per output, or NULL (montecarlo requested) */
  json_t *warnings;
};

static void phase1_free(struct phase1 *p)
{
  free(p->E);
  free(p->se);
  free(p->used);
  free(p->reason);
  free(p->diag);
  json_decref(p->warnings);
  memset(p, 0, sizeof *p);
}

static json_t *diag_json(const struct loaded *L, const struct eng_diag *d)
{
  if (d == NULL)
    return json_null();
  double lo, hi;
  eng_output_range(L->em, &lo, &hi);
  json_t *range = json_pack("[oo]", isfinite(lo) ? json_real(lo) : json_null(),
                            isfinite(hi) ? json_real(hi) : json_null());
  return json_pack("{s:b,s:b,s:f,s:f,s:o,s:f,s:o}", "reliable", d->reliable,
                   "out_of_range", d->out_of_range, "min", d->min_value, "max",
                   d->max_value, "range", range, "second_order_ratio",
                   d->second_ratio, "montecarlo_gap_ratio",
                   d->mc_gap_ratio < 0 ? json_null() : json_real(d->mc_gap_ratio));
}

static void warn_unreliable(struct phase1 *p, const struct loaded *L, int o,
                            int feature, const char *consequence)
{
  const struct eng_diag *d = &p->diag[o];
  double lo, hi;
  eng_output_range(L->em, &lo, &hi);
  char why[256] = "";
  size_t n = 0;
  if (d->out_of_range)
    n += (size_t)snprintf(why + n, sizeof why - n, "values reach [%.4g, %.4g] outside [%g, %g]; ",
                          d->min_value, d->max_value, lo, hi);
  if (n < sizeof why)
    n += (size_t)snprintf(why + n, sizeof why - n, "second-order term %.3g x the output's spread",
                          d->second_ratio);
  if (d->mc_gap_ratio >= 0 && n < sizeof why)
    snprintf(why + n, sizeof why - n, "; gap to montecarlo %.3g x spread", d->mc_gap_ratio);
  char msg[512];
  snprintf(msg, sizeof msg,
           "taylor (Eq. 4) is unreliable for output '%s' under do(%s): %s; %s",
           L->m->outputs[o], L->m->features[feature].name, why, consequence);
  json_array_append_new(p->warnings, json_string(msg));
}

/* Compute E[y | do(x_feature = alpha)] for the n alphas and every output.
 * `focus` is the output the caller cares about (-1: all) for the auto
 * decision. */
static enum aced_err phase1_run(const struct loaded *L, int feature,
                                const double *alpha, int n, enum estimator est,
                                double epsilon, int focus, struct phase1 *p,
                                struct aced_error *err)
{
  int m = L->m->n_outputs;
  memset(p, 0, sizeof *p);
  p->n = n;
  p->n_out = m;
  p->E = calloc((size_t)n * m, sizeof(double));
  p->used = calloc((size_t)m, sizeof *p->used);
  p->reason = calloc((size_t)m, sizeof *p->reason);
  p->warnings = json_array();
  double *second = NULL, *T = NULL;
  if (!p->E || !p->used || !p->reason || !p->warnings)
    goto oom;
  int has_samples = eng_model_samples(L->em) > 0;

  if (est == EST_MC) {
    if (!has_samples) {
      phase1_free(p);
      return aced_error_set(err, ACED_E_NO_SAMPLES, "estimator",
                            "montecarlo needs data samples; this model was registered "
                            "with mean and covariance only");
    }
    p->se = calloc((size_t)n * m, sizeof(double));
    if (!p->se || eng_montecarlo(L->em, feature, alpha, n, p->E, p->se) != 0)
      goto oom;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_MC;
      p->reason[o] = "requested";
    }
    return ACED_OK;
  }

  /* taylor, finite_difference and auto all get the taylor diagnostic */
  second = calloc((size_t)n * m, sizeof(double));
  T = calloc((size_t)n * m, sizeof(double));
  p->diag = calloc((size_t)m, sizeof *p->diag);
  if (!second || !T || !p->diag)
    goto oom;
  if (eng_taylor(L->em, feature, alpha, n, T, second) != 0 ||
      eng_taylor_diagnose(L->em, feature, alpha, n, T, second, p->diag) != 0)
    goto oom;

  if (est == EST_FD) {
    if (eng_finite_difference(L->em, feature, alpha, n, epsilon, p->E) != 0)
      goto oom;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_FD;
      p->reason[o] = "requested";
      if (!p->diag[o].reliable && (focus < 0 || focus == o))
        warn_unreliable(p, L, o, feature,
                        "finite_difference approximates the same Eq. 4; consider montecarlo");
    }
  } else {
    memcpy(p->E, T, sizeof(double) * (size_t)n * m);
    int need_mc = 0;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_TAYLOR;
      p->reason[o] = est == EST_TAYLOR ? "requested" : "taylor diagnostic passed";
      if (!p->diag[o].reliable && est == EST_AUTO && has_samples)
        need_mc = 1;
    }
    if (need_mc) {
      double *mc = calloc((size_t)n * m, sizeof(double));
      double *se = calloc((size_t)n * m, sizeof(double));
      if (!mc || !se || eng_montecarlo(L->em, feature, alpha, n, mc, se) != 0) {
        free(mc);
        free(se);
        goto oom;
      }
      p->se = se;
      for (int o = 0; o < m; o++) {
        if (p->diag[o].reliable) {
          for (int a = 0; a < n; a++)
            se[(size_t)a * m + o] = 0;
          continue;
        }
        for (int a = 0; a < n; a++)
          p->E[(size_t)a * m + o] = mc[(size_t)a * m + o];
        p->used[o] = EST_MC;
        p->reason[o] = "taylor diagnostic failed; model has samples";
        if (focus < 0 || focus == o)
          warn_unreliable(p, L, o, feature, "auto answered with montecarlo instead");
      }
      free(mc);
    }
    for (int o = 0; o < m; o++)
      if (!p->diag[o].reliable && p->used[o] == EST_TAYLOR && (focus < 0 || focus == o)) {
        if (est == EST_AUTO)
          p->reason[o] = "taylor diagnostic failed; no samples for montecarlo";
        warn_unreliable(p, L, o, feature,
                        est == EST_AUTO ? "no samples were registered, so auto kept taylor"
                                        : "use estimator montecarlo or auto");
      }
  }
  free(second);
  free(T);
  return ACED_OK;
oom:
  free(second);
  free(T);
  phase1_free(p);
  return aced_error_set(err, ACED_E_INTERNAL, "", "numerical engine failed (out of memory?)");
}

/* ------------------------------------------------------------------ */
/* regressors: build, encode, decode                                   */

/* A JSON array of n numbers; JSON has no NaN or infinity, so a
 * non-finite value becomes null (callers that can produce one check for
 * it first and answer 422 instead). */
static json_t *dbl_array(const double *a, int n, int stride)
{
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) {
    double v = a[(size_t)i * stride];
    json_array_append_new(arr, isfinite(v) ? json_real(v) : json_null());
  }
  return arr;
}

/* The cached (and served) form of one regressor. */
static json_t *regressor_json(const struct loaded *L, int o, int feature,
                              const struct query_params *q, const struct phase1 *p,
                              const double *grid, const struct eng_regressor *r)
{
  int m = L->m->n_outputs, nb = r->order + 1;
  json_t *points = json_array();
  for (int a = 0; a < p->n; a++) {
    json_t *pt = json_pack("{s:f,s:f}", "x", grid[a], "expectation",
                           p->E[(size_t)a * m + o]);
    if (p->se && p->used[o] == EST_MC)
      json_object_set_new(pt, "stderr", json_real(p->se[(size_t)a * m + o]));
    json_array_append_new(points, pt);
  }
  json_t *curve = json_array();
  for (int c = 0; c < ACED_CURVE_POINTS; c++) {
    double x = r->low + (r->high - r->low) * c / (ACED_CURVE_POINTS - 1);
    json_array_append_new(curve, json_pack("{s:f,s:f,s:f}", "x", x, "mean",
                                           eng_regressor_mean(r, x), "std",
                                           eng_regressor_std(r, x)));
  }
  json_t *ev = json_array();
  for (int k = 0; k <= r->max_order; k++)
    json_array_append_new(ev, json_real(r->log_evidence[k]));
  json_t *cov = json_array();
  for (int i = 0; i < nb; i++)
    json_array_append_new(cov, dbl_array(r->cov + (size_t)i * nb, nb, 1));
  json_t *warn = json_array();
  for (size_t i = 0; i < json_array_size(p->warnings); i++) {
    /* warnings name their output as "output '<name>' under" */
    char tag[ACED_LABEL_MAX + 32];
    snprintf(tag, sizeof tag, "output '%s' under", L->m->outputs[o]);
    const char *w = json_string_value(json_array_get(p->warnings, i));
    if (w && strstr(w, tag) != NULL)
      json_array_append_new(warn, json_string(w));
  }
  return json_pack(
      "{s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:i,s:i,s:i,s:s,s:o,s:f,s:[f,f],s:f,s:f,s:o,s:o,s:o,s:o,s:o,s:o}",
      "output", L->m->outputs[o], "output_index", o, "feature",
      L->m->features[feature].name, "feature_index", feature, "estimator",
      estimator_name(p->used[o]), "estimator_requested", estimator_name(q->estimator),
      "estimator_reason", p->reason[o], "order", r->order, "num", q->num,
      "max_order", r->max_order, "basis", "legendre", "coefficients",
      dbl_array(r->coef, nb, 1), "baseline", eng_regressor_baseline(r), "domain",
      r->low, r->high, "alpha", r->alpha, "beta", r->beta, "evidence", ev,
      "posterior_covariance", cov, "points", points, "curve", curve, "diagnostic",
      p->diag ? diag_json(L, &p->diag[o]) : json_null(), "warnings", warn);
}

/* Decode the parts of a cached regressor the attributions need.  Every
 * field is checked: a damaged cache row is an error, not a crash. */
int compute_regressor_decode(const json_t *v, struct eng_regressor *r)
{
  /* Only what the predictive mean needs is set; the posterior covariance
   * (r->cov, 13 KB) is left alone, and zeroing it was most of the time of
   * a cached attribution. */
  r->alpha = 0;
  json_t *coef = json_object_get(v, "coefficients");
  json_t *dom = json_object_get(v, "domain");
  json_t *order = json_object_get(v, "order");
  if (!json_is_array(coef) || !json_is_array(dom) || json_array_size(dom) != 2 ||
      !json_is_integer(order))
    return -1;
  json_int_t k = json_integer_value(order);
  if (k < 0 || k > ENG_ORDER_CAP || json_array_size(coef) != (size_t)k + 1)
    return -1;
  r->order = (int)k;
  r->max_order = (int)k;
  for (int i = 0; i <= r->order; i++) {
    json_t *c = json_array_get(coef, (size_t)i);
    if (!json_is_number(c) || !isfinite(json_number_value(c)))
      return -1;
    r->coef[i] = json_number_value(c);
  }
  if (!json_is_number(json_array_get(dom, 0)) || !json_is_number(json_array_get(dom, 1)))
    return -1;
  r->low = json_number_value(json_array_get(dom, 0));
  r->high = json_number_value(json_array_get(dom, 1));
  if (!(r->low < r->high) || !isfinite(r->low) || !isfinite(r->high))
    return -1;
  r->beta = 1;
  return 0;
}

static void cache_key(const struct loaded *L, int o, int f, const struct query_params *q,
                      char *pbuf, size_t pn, struct store_cache_key *k)
{
  params_key(q, pbuf, pn);
  k->digest = L->digest;
  k->output = o;
  k->feature = f;
  k->estimator = estimator_name(q->estimator);
  k->params = pbuf;
}

/* Cached regressor (parsed) or NULL on a miss. */
static json_t *cache_lookup(struct server *srv, const struct loaded *L, int o, int f,
                            const struct query_params *q)
{
  char pbuf[128];
  struct store_cache_key k;
  cache_key(L, o, f, q, pbuf, sizeof pbuf, &k);
  char *val = NULL;
  struct aced_error err;
  if (srv->store->ops->cache_get(srv->store, &k, &val, &err) != ACED_OK || val == NULL) {
    metrics_cache(0);
    return NULL;
  }
  json_t *j = json_loads(val, 0, NULL);
  free(val);
  struct eng_regressor r;
  if (j == NULL || compute_regressor_decode(j, &r) != 0) {
    /* a damaged entry is treated as a miss and overwritten later */
    log_warn("cache", "discarding unreadable cache entry %s/%d/%d", L->digest, o, f);
    json_decref(j);
    metrics_cache(0);
    return NULL;
  }
  metrics_cache(1);
  return j;
}

/* ------------------------------------------------------------------ */
/* hot summaries: what attributions need, kept decoded in memory        */

/* A cached regressor is a few tens of kilobytes of JSON (grid points,
 * curve, posterior covariance); an attribution needs only its order,
 * coefficients, domain, estimator, baseline and warnings.  Those are kept
 * here per cache key, decoded, with the parts of the reply that never
 * change (baseline, warnings) already rendered as JSON text: a cached
 * attribution then parses nothing and formats only its own values.
 * Summaries are immutable once made and shared by reference count.
 * Entries are dropped with their model (hot_purge) and otherwise replaced
 * oldest first within a small probe window. */
struct reg_summary {
  atomic_int refs;
  int order;
  double coef[ENG_ORDER_CAP + 1];
  double low, high;
  char estimator[24];  /* the estimator that produced it */
  char baseline[40];   /* coef[0] as a JSON real */
  double base;         /* the ACE baseline: the curve's mean over the domain */
  char *warnings;      /* its warnings as JSON strings joined by ',', or "" */
  size_t warnings_len;
};

static void summary_unref(struct reg_summary *s)
{
  if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
    free(s->warnings);
    free(s);
  }
}

/* The summary of a full regressor (cached or just fitted); NULL if it is
 * unreadable or memory ran out. */
static struct reg_summary *summary_of(const json_t *full)
{
  /* per thread: struct eng_regressor carries a 13 KB covariance */
  static _Thread_local struct eng_regressor r;
  if (compute_regressor_decode(full, &r) != 0)
    return NULL;
  struct reg_summary *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  atomic_init(&s->refs, 1);
  s->order = r.order;
  memcpy(s->coef, r.coef, sizeof(double) * (size_t)(r.order + 1));
  s->low = r.low;
  s->high = r.high;
  const char *e = json_string_value(json_object_get(full, "estimator"));
  snprintf(s->estimator, sizeof s->estimator, "%s", e ? e : "?");
  s->base = eng_regressor_baseline(&r);
  jw_format_real(s->baseline, s->base);
  struct jw w;
  jw_init(&w, 256);
  json_t *warn = json_object_get(full, "warnings");
  for (size_t i = 0; i < json_array_size(warn); i++) {
    const char *t = json_string_value(json_array_get(warn, i));
    if (t == NULL)
      continue;
    if (w.len > 0)
      jw_raw(&w, ",", 1);
    jw_str(&w, t);
  }
  s->warnings = jw_finish(&w, &s->warnings_len);
  if (s->warnings == NULL) {
    free(s);
    return NULL;
  }
  return s;
}

/* Everything that selects a cached regressor, as plain data: zeroed
 * first, so that padding compares equal too. */
struct hot_key {
  char digest[72];
  int output, feature, estimator, num, max_order;
  double epsilon; /* as in the store's key: 0 unless it changes the result */
};

static void hot_key_make(const struct loaded *L, int o, int f, const struct query_params *q,
                         struct hot_key *k)
{
  memset(k, 0, sizeof *k);
  memcpy(k->digest, L->digest, sizeof k->digest);
  k->output = o;
  k->feature = f;
  k->estimator = (int)q->estimator;
  k->num = q->num;
  k->max_order = q->max_order;
  k->epsilon = q->estimator == EST_FD ? q->epsilon : 0.0;
}

#define HOT_SLOTS 8192 /* a power of two */
#define HOT_PROBE 8
struct hot_entry {
  int used;
  struct hot_key key;
  struct reg_summary *summary;
  atomic_ulong tick;
};
/* Read under a read lock (see loaded_lock for why); replacing and
 * purging entries take it for writing. */
static struct hot_entry hot_tab[HOT_SLOTS];
static pthread_rwlock_t hot_lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_ulong hot_clock;

static unsigned long hot_hash(const struct hot_key *k)
{
  /* FNV-1a over the digest's first 16 hex digits (64 bits of SHA-256)
   * and the integers; the full key is compared on a match */
  unsigned long h = 1469598103934665603UL;
  for (int i = 0; i < 16 && k->digest[i]; i++)
    h = (h ^ (unsigned char)k->digest[i]) * 1099511628211UL;
  const int v[] = {k->output, k->feature, k->estimator, k->num, k->max_order};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    h = (h ^ (unsigned long)(unsigned)v[i]) * 1099511628211UL;
  return h;
}

/* The summaries of output o for features feats[0..n), from memory, under
 * one acquisition of the lock (a cached attribution needs one per
 * feature): out[i] is a new reference, or NULL on a miss.  Hits are
 * counted in the metrics. */
static void hot_get_many(const struct loaded *L, int o, const int *feats, int n,
                         const struct query_params *q, struct reg_summary **out)
{
  pthread_rwlock_rdlock(&hot_lock);
  for (int k = 0; k < n; k++) {
    struct hot_key key;
    hot_key_make(L, o, feats[k], q, &key);
    unsigned long h = hot_hash(&key);
    out[k] = NULL;
    for (int i = 0; i < HOT_PROBE; i++) {
      struct hot_entry *e = &hot_tab[(h + (unsigned long)i) & (HOT_SLOTS - 1)];
      if (e->used && memcmp(&e->key, &key, sizeof key) == 0) {
        atomic_store_explicit(&e->tick, atomic_fetch_add(&hot_clock, 1) + 1, memory_order_relaxed);
        out[k] = e->summary;
        atomic_fetch_add(&out[k]->refs, 1);
        break;
      }
    }
  }
  pthread_rwlock_unlock(&hot_lock);
  for (int k = 0; k < n; k++)
    if (out[k] != NULL)
      metrics_cache(1);
}

static void hot_put(const struct hot_key *key, struct reg_summary *summary)
{
  unsigned long h = hot_hash(key);
  struct reg_summary *old = NULL;
  atomic_fetch_add(&summary->refs, 1);
  pthread_rwlock_wrlock(&hot_lock);
  struct hot_entry *victim = NULL;
  for (int i = 0; i < HOT_PROBE; i++) {
    struct hot_entry *e = &hot_tab[(h + (unsigned long)i) & (HOT_SLOTS - 1)];
    if (!e->used || memcmp(&e->key, key, sizeof *key) == 0) {
      victim = e;
      break;
    }
    if (victim == NULL || atomic_load(&e->tick) < atomic_load(&victim->tick))
      victim = e;
  }
  old = victim->used ? victim->summary : NULL;
  victim->used = 1;
  victim->key = *key;
  victim->summary = summary;
  atomic_store(&victim->tick, atomic_fetch_add(&hot_clock, 1) + 1);
  pthread_rwlock_unlock(&hot_lock);
  summary_unref(old);
}

/* Drop every entry of a digest (its model was deleted).  One write
 * acquisition for the whole table (a few microseconds): taken per entry,
 * a writer could wait behind a stream of readers thousands of times. */
static void hot_purge(const char *digest)
{
  pthread_rwlock_wrlock(&hot_lock);
  for (int i = 0; i < HOT_SLOTS; i++) {
    struct hot_entry *e = &hot_tab[i];
    if (e->used && strcmp(e->key.digest, digest) == 0) {
      summary_unref(e->summary);
      e->used = 0;
      e->summary = NULL;
    }
  }
  pthread_rwlock_unlock(&hot_lock);
}

static void hot_clear(void)
{
  pthread_rwlock_wrlock(&hot_lock);
  for (int i = 0; i < HOT_SLOTS; i++) {
    summary_unref(hot_tab[i].summary);
    hot_tab[i].used = 0;
    hot_tab[i].summary = NULL;
  }
  pthread_rwlock_unlock(&hot_lock);
}

/* The summary of regressor (o, f) read from the cache and then kept in
 * memory; NULL if it is not cached.  A new reference. */
static struct reg_summary *summary_load(struct server *srv, const struct loaded *L, int o,
                                        int f, const struct query_params *q)
{
  json_t *full = cache_lookup(srv, L, o, f, q);
  if (full == NULL)
    return NULL;
  struct reg_summary *s = summary_of(full);
  json_decref(full);
  if (s != NULL) {
    struct hot_key key;
    hot_key_make(L, o, f, q, &key);
    hot_put(&key, s);
  }
  return s;
}

/* The summaries of output o for features feats[0..n): from memory, the
 * rest from the cache.  regs[i] is a new reference or NULL when (o,
 * feats[i]) is not cached; returns 0 when none is, else (without
 * stop_at_miss) how many are not.  With stop_at_miss the cache is not read
 * past the first one missing: the HTTP thread then hands the whole request
 * to a worker, which looks again. */
static int summaries_lookup(struct server *srv, const struct loaded *L, int o, const int *feats,
                            int n, const struct query_params *q, int stop_at_miss,
                            struct reg_summary **regs)
{
  hot_get_many(L, o, feats, n, q, regs);
  int missing = 0;
  for (int i = 0; i < n; i++)
    if (regs[i] == NULL && (missing == 0 || !stop_at_miss) &&
        (regs[i] = summary_load(srv, L, o, feats[i], q)) == NULL)
      missing++;
  return missing;
}

/* Compute one feature's grid and fit + cache every output's regressor.
 * If want >= 0, returns that output's regressor JSON (new reference). */
static enum aced_err fit_feature(struct server *srv, const struct loaded *L, int f,
                                 const struct query_params *q, int want, json_t **out,
                                 struct aced_error *err)
{
  int m = L->m->n_outputs;
  double low = L->m->features[f].low, high = L->m->features[f].high;
  double *grid = malloc(sizeof(double) * (size_t)q->num);
  double *col = malloc(sizeof(double) * (size_t)q->num);
  struct eng_regressor *r = malloc(sizeof *r);
  if (!grid || !col || !r) {
    free(grid);
    free(col);
    free(r);
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  eng_grid(low, high, q->num, grid);
  struct phase1 p;
  enum aced_err rc = phase1_run(L, f, grid, q->num, q->estimator, q->epsilon, -1, &p, err);
  if (rc != ACED_OK) {
    free(grid);
    free(col);
    free(r);
    return rc;
  }
  /* Fit every output, then store them all in one transaction. */
  char **texts = calloc((size_t)m, sizeof *texts);
  struct store_cache_key *keys = calloc((size_t)m, sizeof *keys);
  char pbuf[128];
  if (texts == NULL || keys == NULL)
    rc = aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  for (int o = 0; o < m && rc == ACED_OK; o++) {
    for (int a = 0; a < q->num; a++)
      col[a] = p.E[(size_t)a * m + o];
    if (eng_regressor_fit(grid, col, q->num, low, high, q->max_order, r) != 0) {
      rc = aced_error_set(err, ACED_E_INTERNAL, "", "regressor fit failed for output %d", o);
      break;
    }
    json_t *v = regressor_json(L, o, f, q, &p, grid, r);
    texts[o] = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    if (texts[o] == NULL) {
      json_decref(v);
      rc = aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
      break;
    }
    cache_key(L, o, f, q, pbuf, sizeof pbuf, &keys[o]);
    if (o == want && out)
      *out = v;
    else
      json_decref(v);
  }
  if (rc == ACED_OK)
    rc = srv->store->ops->cache_put(srv->store, keys, (const char *const *)texts, m, err);
  for (int o = 0; texts && o < m; o++)
    free(texts[o]);
  free(texts);
  free(keys);
  if (rc != ACED_OK && out && *out) {
    json_decref(*out);
    *out = NULL;
  }
  phase1_free(&p);
  free(grid);
  free(col);
  free(r);
  return rc;
}

/* ------------------------------------------------------------------ */
/* request bodies                                                      */

static enum aced_err check_fields(const json_t *body, const char *const *allowed,
                                  struct aced_error *err)
{
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      if (strcmp(*a, key) == 0)
        ok = 1;
    if (!ok)
      return aced_error_set(err, ACED_E_UNKNOWN_FIELD, key, "unknown field '%s'", key);
  }
  return ACED_OK;
}

/* Resolve an output (outputs = 1) or a feature given as a name or an
 * index into *idx; the error names `field`. */
static enum aced_err need_index(const struct loaded *L, const json_t *v, const char *field,
                                int outputs, int *idx, struct aced_error *err)
{
  const char *what = outputs ? "output" : "feature";
  if (v == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, field, "'%s' is required", field);
  if (!json_is_string(v) && !json_is_integer(v))
    return aced_error_set(err, ACED_E_BAD_TYPE, field, "'%s' must be an %s name or index",
                          field, what);
  *idx = outputs ? model_output_index(L->m, v) : model_feature_index(L->m, v);
  if (*idx < 0)
    return aced_error_set(err, outputs ? ACED_E_UNKNOWN_OUTPUT : ACED_E_UNKNOWN_FEATURE, field,
                          "the model has no %s %s%s%s", what, json_is_string(v) ? "'" : "",
                          json_is_string(v) ? json_string_value(v) : "with that index",
                          json_is_string(v) ? "'" : "");
  return ACED_OK;
}

static enum aced_err need_output(const struct loaded *L, const json_t *v, const char *field,
                                 int *o, struct aced_error *err)
{
  return need_index(L, v, field, 1, o, err);
}

static enum aced_err need_feature(const struct loaded *L, const json_t *v,
                                  const char *field, int *f, struct aced_error *err)
{
  return need_index(L, v, field, 0, f, err);
}

/* A JSON array of indices from an optional list of names/indices. */
static enum aced_err index_list(const struct loaded *L, const json_t *v, const char *field,
                                int outputs, int **idx, int *n, struct aced_error *err)
{
  int total = outputs ? L->m->n_outputs : L->m->n_features;
  if (v == NULL) {
    *idx = malloc(sizeof(int) * (size_t)total);
    if (*idx == NULL)
      return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    for (int i = 0; i < total; i++)
      (*idx)[i] = i;
    *n = total;
    return ACED_OK;
  }
  if (!json_is_array(v) || json_array_size(v) == 0)
    return aced_error_set(err, ACED_E_BAD_TYPE, field, "'%s' must be a non-empty array", field);
  if (json_array_size(v) > (size_t)total)
    return aced_error_set(err, ACED_E_INVALID, field, "'%s' lists more entries than the model has",
                          field);
  *n = (int)json_array_size(v);
  *idx = malloc(sizeof(int) * (size_t)*n);
  if (*idx == NULL)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  for (int i = 0; i < *n; i++) {
    char path[64];
    snprintf(path, sizeof path, "%s[%d]", field, i);
    enum aced_err rc = need_index(L, json_array_get(v, (size_t)i), path, outputs, &(*idx)[i], err);
    if (rc != ACED_OK) {
      free(*idx);
      *idx = NULL;
      return rc;
    }
    for (int k = 0; k < i; k++)
      if ((*idx)[k] == (*idx)[i]) {
        free(*idx);
        *idx = NULL;
        return aced_error_set(err, ACED_E_INVALID, path, "listed twice");
      }
  }
  return ACED_OK;
}

static json_t *meta_json(const char *estimator, const char *cache, json_t *warnings)
{
  return json_pack("{s:s,s:s,s:f,s:o}", "estimator", estimator, "cache", cache,
                   "elapsed_ms", 0.0, "warnings", warnings ? warnings : json_array());
}

/* ------------------------------------------------------------------ */
/* work                                                                */

struct work {
  struct server *srv;
  struct job *job;
  enum job_kind kind;
  json_t *params;
  struct loaded *L;
  char name[ACED_NAME_MAX + 1]; /* the model as asked for */
  int version;
  struct query_params q;
  int output;            /* JOB_REGRESSOR, JOB_ATTRIBUTIONS */
  int feature;           /* JOB_REGRESSOR */
  int *outs, n_outs;     /* JOB_REGRESSORS */
  int *feats, n_feats;   /* JOB_ATTRIBUTIONS, JOB_REGRESSORS */
  struct reg_summary **regs; /* per feats entry: regressor of `output` */
  int computed, cached;
  pthread_mutex_t lock;
  json_t *result;        /* kinds that finish in the plan step */
  const char *cache_state;
};

void work_free(struct work *w)
{
  if (w == NULL)
    return;
  loaded_release(w->L);
  json_decref(w->params);
  json_decref(w->result);
  if (w->regs)
    for (int i = 0; i < w->n_feats; i++)
      summary_unref(w->regs[i]);
  free(w->regs);
  free(w->outs);
  free(w->feats);
  pthread_mutex_destroy(&w->lock);
  free(w);
}

static json_t *do_register(struct work *w, const struct job_request *req,
                           struct aced_error *err)
{
  struct aced_model *m = NULL;
  if (model_parse(req->params, 1, &m, err) != ACED_OK)
    return NULL;
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
  row.n_features = m->n_features;
  row.n_outputs = m->n_outputs;
  row.n_samples = m->n_samples;
  row.n_params = m->n_params;
  int created = 0;
  enum aced_err rc = w->srv->store->ops->model_put(w->srv->store, &row, canon, &created, err);
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

static int collect_version(void *cls, const struct store_model_row *r)
{
  json_array_append_new(cls, json_pack("{s:i,s:s,s:s}", "version", r->version, "digest",
                                       r->digest, "created_at", r->created_at));
  return 0;
}

/* Metadata of the loaded model under the name and version asked for (a
 * loaded model is shared by every name registered with the same content),
 * plus the name's versions from the store. */
static json_t *metadata_of(struct server *srv, const struct loaded *L, const char *name,
                           int version)
{
  json_t *md = model_metadata_json(L->m);
  if (md == NULL)
    return NULL;
  json_object_set_new(md, "name", json_string(name));
  json_object_set_new(md, "version", json_integer(version));
  json_t *versions = json_array();
  struct aced_error err;
  srv->store->ops->model_versions(srv->store, name, collect_version, versions, &err);
  json_object_set_new(md, "versions", versions);
  json_t *prep = json_pack("{s:i,s:I}", "factor_rank", eng_model_rank(L->em), "memory_bytes",
                           (json_int_t)eng_model_bytes(L->em));
  json_object_set_new(md, "prepared", prep);
  return md;
}

static json_t *do_interventions(struct work *w, struct aced_error *err)
{
  const json_t *b = w->params;
  static const char *const allowed[] = {"output", "feature", "values", "estimator",
                                        "epsilon", NULL};
  int o, f;
  if (check_fields(b, allowed, err) != ACED_OK ||
      need_output(w->L, json_object_get(b, "output"), "output", &o, err) != ACED_OK ||
      need_feature(w->L, json_object_get(b, "feature"), "feature", &f, err) != ACED_OK ||
      query_params_parse(w->srv, b, &w->q, err) != ACED_OK)
    return NULL;
  json_t *vals = json_object_get(b, "values");
  size_t n = json_array_size(vals);
  double *alpha = malloc(sizeof(double) * (n ? n : 1));
  if (alpha == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    alpha[i] = json_number_value(json_array_get(vals, i));
  struct phase1 p;
  if (phase1_run(w->L, f, alpha, (int)n, w->q.estimator, w->q.epsilon, o, &p, err) != ACED_OK) {
    free(alpha);
    return NULL;
  }
  int m = w->L->m->n_outputs;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(p.E[i * (size_t)m + (size_t)o])) {
      char field[48];
      snprintf(field, sizeof field, "values[%zu]", i);
      aced_error_set(err, ACED_E_NOT_FINITE, field,
                     "the expectation at %g overflows (not a finite number); use values "
                     "nearer the feature's domain [%g, %g]",
                     alpha[i], w->L->m->features[f].low, w->L->m->features[f].high);
      phase1_free(&p);
      free(alpha);
      return NULL;
    }
  json_t *res = json_pack("{s:s,s:s,s:o,s:o,s:s,s:s,s:o}", "output", w->L->m->outputs[o],
                          "feature", w->L->m->features[f].name, "values",
                          dbl_array(alpha, (int)n, 1), "expectations",
                          dbl_array(p.E + o, (int)n, m), "estimator",
                          estimator_name(p.used[o]), "estimator_reason", p.reason[o],
                          "diagnostic", p.diag ? diag_json(w->L, &p.diag[o]) : json_null());
  if (p.se && p.used[o] == EST_MC)
    json_object_set_new(res, "stderr", dbl_array(p.se + o, (int)n, m));
  json_object_set_new(res, "meta", meta_json(estimator_name(p.used[o]), "none",
                                             json_incref(p.warnings)));
  phase1_free(&p);
  free(alpha);
  return res;
}

/* Turn a cached/fresh regressor into a reply. */
static json_t *regressor_reply(json_t *v, const char *cache)
{
  json_t *reply = json_deep_copy(v);
  json_t *warn = json_object_get(reply, "warnings");
  json_object_set_new(reply, "meta",
                      meta_json(json_string_value(json_object_get(reply, "estimator")),
                                cache, json_incref(warn)));
  return reply;
}

/* The attributions reply as JSON text (written directly: see jsonw.h):
 * regressor regs[i] (for feats[i]) evaluated at every input row, less its
 * baseline.  start_us is the request's arrival (http_now_us) for
 * meta.elapsed_ms, or negative to write 0 (a job's reply gets its figure
 * when it is served). */
static char *attributions_text(const struct loaded *L, int o, const int *feats, int nf,
                               struct reg_summary *const *regs, const json_t *inputs,
                               const char *cache, int64_t start_us, size_t *len,
                               struct aced_error *err)
{
  size_t nrows = json_array_size(inputs), nv = nrows * (size_t)nf;
  double small[256];
  double *ace = nv <= sizeof small / sizeof small[0] ? small : malloc(sizeof(double) * nv);
  if (ace == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  for (size_t row = 0; row < nrows; row++) {
    const json_t *in = json_array_get(inputs, row);
    for (int i = 0; i < nf; i++) {
      const struct reg_summary *s = regs[i];
      double a = json_number_value(json_array_get(in, (size_t)feats[i]));
      double v = eng_legendre_series(s->coef, s->order, s->low, s->high, a) - s->base;
      if (!isfinite(v)) {
        char field[64];
        snprintf(field, sizeof field, "inputs[%zu][%d]", row, feats[i]);
        aced_error_set(err, ACED_E_NOT_FINITE, field,
                       "the regressor overflows at %g (far outside the domain [%g, %g])", a,
                       s->low, s->high);
        if (ace != small)
          free(ace);
        return NULL;
      }
      ace[row * (size_t)nf + (size_t)i] = v;
    }
  }

  size_t hint = 320 + 26 * nv;
  for (int i = 0; i < nf; i++)
    hint += 96 + regs[i]->warnings_len + strlen(L->m->features[feats[i]].name);
  struct jw w;
  jw_init(&w, hint); /* one allocation: a realloc cost more than the rest */
  jw_lit(&w, "{\"output\":");
  jw_str(&w, L->m->outputs[o]);
  jw_lit(&w, ",\"features\":[");
  for (int i = 0; i < nf; i++) {
    if (i)
      jw_raw(&w, ",", 1);
    jw_str(&w, L->m->features[feats[i]].name);
  }
  jw_lit(&w, "],\"attributions\":[");
  for (size_t row = 0; row < nrows; row++) {
    jw_raw(&w, row ? ",[" : "[", row ? 2 : 1);
    for (int i = 0; i < nf; i++) {
      if (i)
        jw_raw(&w, ",", 1);
      jw_real(&w, ace[row * (size_t)nf + (size_t)i]);
    }
    jw_raw(&w, "]", 1);
  }
  if (ace != small)
    free(ace);
  jw_lit(&w, "],\"baselines\":[");
  for (int i = 0; i < nf; i++) {
    if (i)
      jw_raw(&w, ",", 1);
    jw_lit(&w, regs[i]->baseline);
  }
  jw_lit(&w, "],\"estimators\":[");
  int mixed = 0;
  for (int i = 0; i < nf; i++) {
    if (i)
      jw_raw(&w, ",", 1);
    jw_str(&w, regs[i]->estimator);
    mixed |= strcmp(regs[i]->estimator, regs[0]->estimator) != 0;
  }
  jw_lit(&w, "],\"meta\":{\"estimator\":");
  jw_str(&w, mixed ? "mixed" : nf > 0 ? regs[0]->estimator : "none");
  jw_lit(&w, ",\"cache\":");
  jw_str(&w, cache);
  /* milliseconds to the microsecond, written without printf ("0.072") */
  int64_t us = start_us >= 0 ? http_now_us() - start_us : 0;
  us = us < 0 ? 0 : us;
  char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                  (char)('0' + us % 10)};
  jw_lit(&w, ",\"elapsed_ms\":");
  jw_int(&w, us / 1000);
  jw_raw(&w, frac, sizeof frac);
  jw_lit(&w, ",\"warnings\":[");
  int first = 1;
  for (int i = 0; i < nf; i++) {
    if (regs[i]->warnings_len == 0)
      continue;
    if (!first)
      jw_raw(&w, ",", 1);
    jw_raw(&w, regs[i]->warnings, regs[i]->warnings_len);
    first = 0;
  }
  jw_lit(&w, "]}}");
  char *text = jw_finish(&w, len);
  if (text == NULL)
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  return text;
}

/* Checks of an attributions body that need the model. */
static enum aced_err attributions_resolve(struct server *srv, const struct loaded *L,
                                          const json_t *b, int *o, int **feats, int *nf,
                                          struct query_params *q, struct aced_error *err)
{
  static const char *const allowed[] = {"output", "inputs", "features", "estimator",
                                        "num", "max_order", "epsilon", NULL};
  if (check_fields(b, allowed, err) != ACED_OK ||
      need_output(L, json_object_get(b, "output"), "output", o, err) != ACED_OK ||
      query_params_parse(srv, b, q, err) != ACED_OK)
    return err->code;
  json_t *inputs = json_object_get(b, "inputs");
  for (size_t i = 0; i < json_array_size(inputs); i++)
    if (json_array_size(json_array_get(inputs, i)) != (size_t)L->m->n_features)
      return aced_error_set(err, ACED_E_SHAPE, "inputs",
                            "inputs[%zu] has %zu values; the model has %d features", i,
                            json_array_size(json_array_get(inputs, i)), L->m->n_features);
  return index_list(L, json_object_get(b, "features"), "features", 0, feats, nf, err);
}

enum aced_err compute_check_regressors_body(struct server *srv, const json_t *body,
                                            struct aced_error *err)
{
  static const char *const allowed[] = {"outputs", "features", "estimator", "num",
                                        "max_order", "epsilon", NULL};
  struct query_params q;
  if (check_fields(body, allowed, err) != ACED_OK ||
      query_params_parse(srv, body, &q, err) != ACED_OK)
    return err->code;
  static const char *const lists[] = {"outputs", "features"};
  for (int l = 0; l < 2; l++) {
    json_t *v = json_object_get(body, lists[l]);
    if (v == NULL)
      continue;
    if (!json_is_array(v) || json_array_size(v) == 0)
      return aced_error_set(err, ACED_E_BAD_TYPE, lists[l], "'%s' must be a non-empty array",
                            lists[l]);
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *x = json_array_get(v, i);
      if (!json_is_string(x) && !(json_is_integer(x) && json_integer_value(x) >= 0)) {
        char path[48];
        snprintf(path, sizeof path, "%s[%zu]", lists[l], i);
        return aced_error_set(err, ACED_E_BAD_TYPE, path, "must be a name or an index");
      }
    }
  }
  return ACED_OK;
}

struct work *work_plan(struct server *srv, struct job *job, const struct job_request *req,
                       int *n_tasks, long *units_total, struct aced_error *err)
{
  struct work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  pthread_mutex_init(&w->lock, NULL);
  w->srv = srv;
  w->job = job;
  w->kind = req->kind;
  w->params = json_incref(req->params);
  *n_tasks = 0;
  *units_total = 1;

  if (req->kind == JOB_REGISTER) {
    w->result = do_register(w, req, err);
    goto single;
  }
  w->L = loaded_acquire(srv, req->model, req->version, req->digest, err);
  if (w->L == NULL)
    goto fail;
  snprintf(w->name, sizeof w->name, "%s", req->model);
  w->version = req->version ? req->version : w->L->m->version;

  switch (req->kind) {
  case JOB_METADATA:
    w->result = metadata_of(srv, w->L, req->model, w->version);
    if (w->result == NULL)
      aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto single;
  case JOB_INTERVENTIONS:
    w->result = do_interventions(w, err);
    goto single;
  case JOB_REGRESSOR: {
    json_t *p = w->params;
    if (query_params_parse(srv, p, &w->q, err) != ACED_OK)
      goto fail;
    w->output = model_output_lookup(w->L->m, json_string_value(json_object_get(p, "output")));
    w->feature = model_feature_lookup(w->L->m, json_string_value(json_object_get(p, "feature")));
    if (w->output < 0) {
      aced_error_set(err, ACED_E_UNKNOWN_OUTPUT, "output", "model '%s' has no output '%s'",
                     w->name, json_string_value(json_object_get(p, "output")));
      goto fail;
    }
    if (w->feature < 0) {
      aced_error_set(err, ACED_E_UNKNOWN_FEATURE, "feature", "model '%s' has no feature '%s'",
                     w->name, json_string_value(json_object_get(p, "feature")));
      goto fail;
    }
    json_t *hit = cache_lookup(srv, w->L, w->output, w->feature, &w->q);
    if (hit) {
      w->result = regressor_reply(hit, "hit");
      json_decref(hit);
      goto single;
    }
    *n_tasks = 1;
    return w;
  }
  case JOB_ATTRIBUTIONS: {
    if (attributions_resolve(srv, w->L, w->params, &w->output, &w->feats, &w->n_feats, &w->q,
                             err) != ACED_OK)
      goto fail;
    w->regs = calloc((size_t)w->n_feats, sizeof *w->regs);
    if (w->regs == NULL) {
      aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
      goto fail;
    }
    w->cached = w->n_feats - summaries_lookup(srv, w->L, w->output, w->feats, w->n_feats, &w->q,
                                              0, w->regs);
    *n_tasks = w->n_feats; /* tasks with a cached regressor return at once */
    *units_total = w->n_feats;
    w->cache_state = w->cached == w->n_feats ? "hit" : w->cached ? "partial" : "miss";
    return w;
  }
  case JOB_REGRESSORS: {
    static const char *const allowed[] = {"outputs", "features", "estimator", "num",
                                          "max_order", "epsilon", NULL};
    if (check_fields(w->params, allowed, err) != ACED_OK ||
        query_params_parse(srv, w->params, &w->q, err) != ACED_OK ||
        index_list(w->L, json_object_get(w->params, "outputs"), "outputs", 1, &w->outs,
                   &w->n_outs, err) != ACED_OK ||
        index_list(w->L, json_object_get(w->params, "features"), "features", 0, &w->feats,
                   &w->n_feats, err) != ACED_OK)
      goto fail;
    *n_tasks = w->n_feats;
    *units_total = (long)w->n_feats * w->n_outs;
    return w;
  }
  default:
    aced_error_set(err, ACED_E_INTERNAL, "", "unknown job kind");
    goto fail;
  }
single:
  if (w->result == NULL) {
    if (err->code == ACED_OK)
      aced_error_set(err, ACED_E_INTERNAL, "", "could not build the reply");
    goto fail;
  }
  *n_tasks = 0;
  return w;
fail:
  work_free(w);
  return NULL;
}

long work_task(struct work *w, int i, struct aced_error *err)
{
  switch (w->kind) {
  case JOB_REGRESSOR: {
    json_t *v = NULL;
    if (fit_feature(w->srv, w->L, w->feature, &w->q, w->output, &v, err) != ACED_OK)
      return -1;
    w->result = regressor_reply(v, "miss");
    json_decref(v);
    return 1;
  }
  case JOB_ATTRIBUTIONS: {
    if (w->regs[i] != NULL)
      return 1;
    json_t *v = NULL;
    if (fit_feature(w->srv, w->L, w->feats[i], &w->q, w->output, &v, err) != ACED_OK)
      return -1;
    w->regs[i] = summary_of(v);
    json_decref(v);
    if (w->regs[i] == NULL) {
      aced_error_set(err, ACED_E_INTERNAL, "", "fitted regressor unreadable");
      return -1;
    }
    return 1;
  }
  case JOB_REGRESSORS: {
    int f = w->feats[i], all = 1;
    for (int k = 0; k < w->n_outs && all; k++) {
      json_t *hit = cache_lookup(w->srv, w->L, w->outs[k], f, &w->q);
      all = hit != NULL;
      json_decref(hit);
    }
    pthread_mutex_lock(&w->lock);
    if (all)
      w->cached += w->n_outs;
    pthread_mutex_unlock(&w->lock);
    if (!all) {
      if (fit_feature(w->srv, w->L, f, &w->q, -1, NULL, err) != ACED_OK)
        return -1;
      pthread_mutex_lock(&w->lock);
      w->computed += w->n_outs;
      pthread_mutex_unlock(&w->lock);
    }
    return w->n_outs;
  }
  default:
    aced_error_set(err, ACED_E_INTERNAL, "", "job kind has no tasks");
    return -1;
  }
}

json_t *work_finish(struct work *w, struct aced_error *err)
{
  switch (w->kind) {
  case JOB_ATTRIBUTIONS: {
    /* the same text as the fast path's, parsed: a job's result is a tree */
    char *text = attributions_text(w->L, w->output, w->feats, w->n_feats, w->regs,
                                   json_object_get(w->params, "inputs"), w->cache_state, -1,
                                   NULL, err);
    if (text == NULL)
      return NULL;
    json_t *res = json_loads(text, 0, NULL);
    free(text);
    if (res == NULL)
      aced_error_set(err, ACED_E_INTERNAL, "", "could not build the reply");
    return res;
  }
  case JOB_REGRESSORS: {
    json_t *outs = json_array(), *feats = json_array();
    for (int k = 0; k < w->n_outs; k++)
      json_array_append_new(outs, json_string(w->L->m->outputs[w->outs[k]]));
    for (int k = 0; k < w->n_feats; k++)
      json_array_append_new(feats, json_string(w->L->m->features[w->feats[k]].name));
    return json_pack("{s:s,s:i,s:o,s:o,s:s,s:i,s:i,s:i}", "model", w->name, "version",
                     w->version, "outputs", outs, "features", feats, "estimator",
                     estimator_name(w->q.estimator), "regressors", w->n_outs * w->n_feats,
                     "computed", w->computed, "cached", w->cached);
  }
  default:
    if (w->result == NULL) {
      aced_error_set(err, ACED_E_INTERNAL, "", "job produced no result");
      return NULL;
    }
    return json_incref(w->result);
  }
}

/* ------------------------------------------------------------------ */
/* HTTP fast paths                                                     */

json_t *fast_metadata(struct server *srv, const char *digest, const char *name, int version)
{
  struct loaded *L = loaded_peek(digest);
  if (L == NULL)
    return NULL;
  json_t *md = metadata_of(srv, L, name, version);
  loaded_release(L);
  return md;
}

json_t *fast_regressor(struct server *srv, const char *digest, const char *output,
                       const char *feature, const struct query_params *q,
                       struct aced_error *err)
{
  err->code = ACED_OK;
  struct loaded *L = loaded_peek(digest);
  if (L == NULL)
    return NULL;
  json_t *reply = NULL;
  int o = model_output_lookup(L->m, output), f = model_feature_lookup(L->m, feature);
  if (o < 0)
    aced_error_set(err, ACED_E_UNKNOWN_OUTPUT, "output", "the model has no output '%s'",
                   output);
  else if (f < 0)
    aced_error_set(err, ACED_E_UNKNOWN_FEATURE, "feature", "the model has no feature '%s'",
                   feature);
  else {
    json_t *hit = cache_lookup(srv, L, o, f, q);
    if (hit) {
      reply = regressor_reply(hit, "hit");
      json_decref(hit);
    }
  }
  loaded_release(L);
  return reply;
}

char *fast_attributions(struct server *srv, const char *digest, const json_t *body,
                        int64_t start_us, size_t *len, struct aced_error *err)
{
  err->code = ACED_OK;
  struct loaded *L = loaded_peek(digest);
  if (L == NULL)
    return NULL;
  int o, nf = 0, *feats = NULL;
  struct query_params q;
  char *reply = NULL;
  if (attributions_resolve(srv, L, body, &o, &feats, &nf, &q, err) == ACED_OK) {
    struct reg_summary *small[64];
    struct reg_summary **regs =
        (size_t)nf <= sizeof small / sizeof small[0] ? small : calloc((size_t)nf, sizeof *regs);
    if (regs == NULL) {
      aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    } else {
      /* any regressor missing: a worker fits it (NULL, no error) */
      if (summaries_lookup(srv, L, o, feats, nf, &q, 1, regs) == 0)
        reply = attributions_text(L, o, feats, nf, regs, json_object_get(body, "inputs"), "hit",
                                  start_us, len, err);
      for (int i = 0; i < nf; i++)
        summary_unref(regs[i]);
      if (regs != small)
        free(regs);
    }
  }
  free(feats);
  loaded_release(L);
  return reply;
}
