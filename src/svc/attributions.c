/*
 * attributions.c -- the "attributions" job kind (POST .../attributions):
 * the paper's local attribution ACE(y, do(x_i = input[i])) for every
 * feature (or a subset) of every input row, from each feature's causal
 * regressor less its baseline.  One task per feature whose regressor is
 * not cached yet.  When the model is loaded and every regressor needed is
 * cached, the HTTP thread answers at once (svc_cached_attributions), from
 * the decoded summaries and with the reply written as text.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/clock.h"
#include "aced/jsonr.h"
#include "aced/jsonw.h"
#include "svc/internal.h"

/* The value of flattened feature f in an input row: row[f] for a
 * feedforward model, row[t][i] (f = t * step_features + i) for a
 * recurrent one. */
static double input_value(const struct loaded *L, const json_t *row, int f)
{
  if (L->m->rnn == NULL)
    return json_number_value(json_array_get(row, (size_t)f));
  const int ni = L->m->step_features;
  return json_number_value(json_array_get(json_array_get(row, (size_t)(f / ni)), (size_t)(f % ni)));
}

static void write_names(struct jw *w, const struct loaded *L, const int *feats, int nf)
{
  jw_lit(w, ",\"features\":[");
  for (int i = 0; i < nf; i++) {
    if (i)
      jw_raw(w, ",", 1);
    jw_str(w, L->m->features[feats[i]].name);
  }
  jw_raw(w, "]", 1);
}

void attributions_write_values(struct jw *w, const double *ace, size_t nrows, int nf)
{
  for (size_t row = 0; row < nrows; row++) {
    jw_raw(w, row ? ",[" : "[", row ? 2 : 1);
    for (int i = 0; i < nf; i++) {
      if (i)
        jw_raw(w, ",", 1);
      jw_real(w, ace[row * (size_t)nf + (size_t)i]);
    }
    jw_raw(w, "]", 1);
  }
}

int attributions_ace_row(struct reg_summary *const *regs, int nf, const double *xs, double *out)
{
  int i = 0;
  /* four features' series at a time: their divisions overlap */
  for (; i + 4 <= nf; i += 4) {
    const double *cf[4];
    int ord[4];
    double lo[4], hi[4];
    for (int l = 0; l < 4; l++) {
      const struct reg_summary *s = regs[i + l];
      cf[l] = s->coef;
      ord[l] = s->order;
      lo[l] = s->low;
      hi[l] = s->high;
    }
    eng_legendre_series4(cf, ord, lo, hi, xs + i, out + i);
  }
  for (; i < nf; i++)
    out[i] = eng_legendre_series(regs[i]->coef, regs[i]->order, regs[i]->low, regs[i]->high,
                                 xs[i]);
  for (i = 0; i < nf; i++) {
    out[i] -= regs[i]->base;
    if (!isfinite(out[i]))
      return i;
  }
  return -1;
}

/* features, attributions (rows x features), baselines, estimators (up to
 * the estimators' closing bracket, which the caller writes). */
static void write_rows(struct jw *w, const struct loaded *L, const int *feats, int nf,
                       struct reg_summary *const *regs, const double *ace, size_t nrows,
                       struct reply_marks *marks)
{
  write_names(w, L, feats, nf);
  jw_lit(w, ",\"attributions\":[");
  if (marks)
    marks->values = w->len;
  attributions_write_values(w, ace, nrows, nf);
  if (marks)
    marks->values_end = w->len;
  jw_lit(w, "],\"baselines\":[");
  for (int i = 0; i < nf; i++) {
    if (i)
      jw_raw(w, ",", 1);
    jw_lit(w, regs[i]->baseline);
  }
  jw_lit(w, "],\"estimators\":[");
  for (int i = 0; i < nf; i++) {
    if (i)
      jw_raw(w, ",", 1);
    jw_str(w, regs[i]->estimator);
  }
}

/* A recurrent model: feats are the window's steps x the per-step features
 * (step-major, resolve_step_window); attributions are rows x T x those
 * features, zero at the steps beyond the time lag; "timesteps" names the
 * window, baselines and estimators are window steps x features. */
static void write_sequences(struct jw *w, const struct loaded *L, int o, const int *feats,
                            int nf, struct reg_summary *const *regs, const double *ace,
                            size_t nrows)
{
  const int ni = L->m->step_features, T = L->m->seq_len, lo = feats[0] / ni;
  int nfs = 0;
  while (nfs < nf && feats[nfs] / ni == lo)
    nfs++;
  const int ns = nf / nfs;
  write_names(w, L, feats, nfs);
  jw_lit(w, ",\"output_timestep\":");
  jw_int(w, L->m->rnn->every ? o / L->m->step_outputs : T - 1);
  jw_lit(w, ",\"timesteps\":[");
  for (int t = 0; t < ns; t++) {
    if (t)
      jw_raw(w, ",", 1);
    jw_int(w, lo + t);
  }
  jw_lit(w, "],\"attributions\":[");
  for (size_t row = 0; row < nrows; row++) {
    jw_raw(w, row ? ",[" : "[", row ? 2 : 1);
    for (int t = 0; t < T; t++) {
      jw_raw(w, t ? ",[" : "[", t ? 2 : 1);
      for (int i = 0; i < nfs; i++) {
        if (i)
          jw_raw(w, ",", 1);
        if (t < lo || t >= lo + ns)
          jw_raw(w, "0", 1);
        else
          jw_real(w, ace[row * (size_t)nf + (size_t)(t - lo) * nfs + (size_t)i]);
      }
      jw_raw(w, "]", 1);
    }
    jw_raw(w, "]", 1);
  }
  for (int part = 0; part < 2; part++) {
    jw_lit(w, part ? "],\"estimators\":[" : "],\"baselines\":[");
    for (int t = 0; t < ns; t++) {
      jw_raw(w, t ? ",[" : "[", t ? 2 : 1);
      for (int i = 0; i < nfs; i++) {
        if (i)
          jw_raw(w, ",", 1);
        if (part)
          jw_str(w, regs[t * nfs + i]->estimator);
        else
          jw_lit(w, regs[t * nfs + i]->baseline);
      }
      jw_raw(w, "]", 1);
    }
  }
}

/* The attributions reply as JSON text (written directly: see jsonw.h):
 * regressor regs[i] (for feats[i]) evaluated at every input row, less its
 * baseline.  start_us is the request's arrival (aced_now_us) for
 * meta.elapsed_ms, or negative to write 0 (a job's reply gets its figure
 * when it is served). */
static char *attributions_text(const struct loaded *L, int o, const int *feats, int nf,
                               struct reg_summary *const *regs, const json_t *inputs,
                               const json_t *notes, const char *cache, int64_t start_us,
                               const struct query_params *q, size_t *len,
                               struct reply_marks *marks, struct aced_error *err)
{
  size_t nrows = json_array_size(inputs), nv = nrows * (size_t)nf;
  double small[256], xsmall[64];
  double *ace = nv <= sizeof small / sizeof small[0] ? small : malloc(sizeof(double) * nv);
  double *xs = nf <= 64 ? xsmall : malloc(sizeof(double) * (size_t)nf);
  if (ace == NULL || xs == NULL) {
    if (ace != small)
      free(ace);
    if (xs != xsmall)
      free(xs);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  for (size_t row = 0; row < nrows; row++) {
    const json_t *in = json_array_get(inputs, row);
    for (int i = 0; i < nf; i++)
      xs[i] = input_value(L, in, feats[i]);
    int i = attributions_ace_row(regs, nf, xs, ace + row * (size_t)nf);
    if (i >= 0) {
      char field[64];
      if (L->m->rnn)
        snprintf(field, sizeof field, "inputs[%zu][%d][%d]", row,
                 feats[i] / L->m->step_features, feats[i] % L->m->step_features);
      else
        snprintf(field, sizeof field, "inputs[%zu][%d]", row, feats[i]);
      aced_error_set(err, ACED_E_NOT_FINITE, field,
                     "the regressor overflows at %g (far outside the domain [%g, %g])", xs[i],
                     regs[i]->low, regs[i]->high);
      if (ace != small)
        free(ace);
      if (xs != xsmall)
        free(xs);
      return NULL;
    }
  }
  if (xs != xsmall)
    free(xs);

  size_t hint = 480 + 26 * nv + 160 * json_array_size(notes);
  for (int i = 0; i < nf; i++)
    hint += 96 + regs[i]->warnings_len + strlen(L->m->features[feats[i]].name);
  struct jw w;
  jw_init(&w, hint); /* one allocation: a realloc cost more than the rest */
  jw_lit(&w, "{\"output\":");
  jw_str(&w, L->m->outputs[o]);
  if (L->m->rnn)
    write_sequences(&w, L, o, feats, nf, regs, ace, nrows);
  else
    write_rows(&w, L, feats, nf, regs, ace, nrows, marks);
  if (ace != small)
    free(ace);
  int mixed = 0;
  for (int i = 0; i < nf; i++)
    mixed |= strcmp(regs[i]->estimator, regs[0]->estimator) != 0;
  jw_lit(&w, "],\"meta\":{\"estimator\":");
  jw_str(&w, mixed ? "mixed" : nf > 0 ? regs[0]->estimator : "none");
  jw_lit(&w, ",\"effect\":");
  jw_str(&w, effect_name(effect_of(L, q)));
  jw_lit(&w, ",\"effect_reason\":");
  jw_str(&w, effect_reason(L, q));
  jw_lit(&w, ",\"cache\":");
  jw_str(&w, cache);
  /* milliseconds to the microsecond, written without printf ("0.072") */
  int64_t us = start_us >= 0 ? aced_now_us() - start_us : 0;
  us = us < 0 ? 0 : us;
  jw_lit(&w, ",\"elapsed_ms\":");
  if (marks)
    marks->ms = w.len;
  jw_ms(&w, us);
  if (marks)
    marks->ms_end = w.len;
  jw_lit(&w, ",\"warnings\":[");
  int first = 1;
  for (size_t i = 0; i < json_array_size(notes); i++) {
    if (!first)
      jw_raw(&w, ",", 1);
    jw_str(&w, json_string_value(json_array_get(notes, i)));
    first = 0;
  }
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

/* A recurrent model: inputs are sequences (rows x T x input_size), the
 * outputs at output_timestep, the features at every step of the window
 * (the lag, or all with all_timesteps), step-major. */
static enum aced_err recurrent_resolve(const struct loaded *L, const json_t *b, int *outs, int no,
                                       int **feats, int *nf, json_t *notes,
                                       struct aced_error *err)
{
  const int T = L->m->seq_len, ni = L->m->step_features;
  const json_t *inputs = jsonr_get(b, "inputs");
  enum aced_err rc;
  for (size_t r = 0; r < json_array_size(inputs); r++) {
    const json_t *row = json_array_get(inputs, r);
    int good = json_array_size(row) == (size_t)T;
    for (int t = 0; good && t < T; t++)
      good = json_array_size(json_array_get(row, (size_t)t)) == (size_t)ni;
    if (!good) {
      char field[48];
      snprintf(field, sizeof field, "inputs[%zu]", r);
      return aced_error_set(err, ACED_E_SHAPE, field,
                            "expected a sequence of %d steps (sequence_length) of %d values "
                            "(input_size)",
                            T, ni);
    }
  }
  for (int k = 0; k < no; k++)
    if ((rc = resolve_output_step(L, b, &outs[k], err)) != ACED_OK)
      return rc;
  int *f1, n1, *steps, ns;
  if ((rc = resolve_index_list(L, jsonr_get(b, "features"), "features", 0, &f1, &n1, notes,
                               err)) != ACED_OK)
    return rc;
  if ((rc = resolve_step_window(L, b, &steps, &ns, notes, err)) != ACED_OK) {
    free(f1);
    return rc;
  }
  *feats = malloc(sizeof(int) * (size_t)ns * (size_t)n1);
  if (*feats != NULL)
    for (int t = 0; t < ns; t++)
      for (int i = 0; i < n1; i++)
        (*feats)[t * n1 + i] = steps[t] * ni + f1[i];
  *nf = ns * n1;
  free(f1);
  free(steps);
  return *feats ? ACED_OK : aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
}

/* Checks of an attributions body that need the model: its outputs
 * ("output", one, or "outputs", several: exactly one of the two), its
 * features (constant ones left out of "all" with a note) and the row
 * lengths. */
static enum aced_err attributions_resolve(const struct svc *svc, const struct loaded *L,
                                          const json_t *b, int **outs, int *no, int **feats,
                                          int *nf, json_t *notes, struct query_params *q,
                                          struct aced_error *err)
{
  const json_t *one = jsonr_get(b, "output"), *many = jsonr_get(b, "outputs");
  *outs = NULL;
  *feats = NULL;
  if (one != NULL && many != NULL)
    return aced_error_set(err, ACED_E_INVALID, "outputs",
                          "give 'output' (one) or 'outputs' (several), not both");
  if (one == NULL && many == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "output",
                          "'output' (or 'outputs') is required");
  if (one != NULL) {
    if ((*outs = malloc(sizeof **outs)) == NULL)
      return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    *no = 1;
    if (resolve_index(L, one, "output", 1, *outs, err) != ACED_OK)
      goto fail;
  } else if (resolve_index_list(L, many, "outputs", 1, outs, no, NULL, err) != ACED_OK)
    goto fail;
  if (query_params_parse(svc, b, q, err) != ACED_OK || effect_check(L, q, err) != ACED_OK)
    goto fail;
  json_t *inputs = jsonr_get(b, "inputs");
  if (L->m->rnn != NULL) {
    if (recurrent_resolve(L, b, *outs, *no, feats, nf, notes, err) != ACED_OK)
      goto fail;
    return ACED_OK;
  }
  for (size_t i = 0; i < json_array_size(inputs); i++)
    if (json_is_array(json_array_get(json_array_get(inputs, i), 0))) {
      char field[48];
      snprintf(field, sizeof field, "inputs[%zu]", i);
      aced_error_set(err, ACED_E_SHAPE, field,
                     "the model is feedforward: each input is a row of %d numbers, not a sequence",
                     L->m->n_features);
      goto fail;
    } else if (json_array_size(json_array_get(inputs, i)) != (size_t)L->m->n_features) {
      aced_error_set(err, ACED_E_SHAPE, "inputs",
                     "inputs[%zu] has %zu values; the model has %d features", i,
                     json_array_size(json_array_get(inputs, i)), L->m->n_features);
      goto fail;
    }
  if (resolve_index_list(L, jsonr_get(b, "features"), "features", 0, feats, nf, notes,
                         err) != ACED_OK)
    goto fail;
  return ACED_OK;
fail:
  free(*outs);
  *outs = NULL;
  return err->code;
}

/* The reply: the single-output text when the body said "output", else
 * {"results":[<one such text per output>]}.  regs is n_outs x nf. */
static char *attributions_reply(const struct loaded *L, const json_t *body, const int *outs,
                                int no, const int *feats, int nf,
                                struct reg_summary *const *regs, const json_t *notes,
                                const char *cache, int64_t start_us,
                                const struct query_params *q, size_t *len,
                                struct reply_marks *marks, struct aced_error *err)
{
  const json_t *inputs = jsonr_get(body, "inputs");
  if (jsonr_get(body, "outputs") == NULL)
    return attributions_text(L, outs[0], feats, nf, regs, inputs, notes, cache, start_us, q,
                             len, marks, err);
  struct jw w;
  jw_init(&w, 4096);
  jw_lit(&w, "{\"results\":[");
  for (int k = 0; k < no; k++) {
    size_t n = 0;
    char *t = attributions_text(L, outs[k], feats, nf, regs + (size_t)k * nf, inputs, notes,
                                cache, start_us, q, &n, NULL, err);
    if (t == NULL) {
      jw_free(&w);
      return NULL;
    }
    if (k)
      jw_raw(&w, ",", 1);
    jw_raw(&w, t, n);
    free(t);
  }
  jw_lit(&w, "]}");
  char *text = jw_finish(&w, len);
  if (text == NULL)
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  return text;
}

struct attributions_work {
  const struct svc *svc;
  struct job *job;
  struct loaded *L;
  json_t *params;
  struct query_params q;
  int *outs, n_outs;
  int *feats, n_feats;
  struct reg_summary **regs; /* n_outs x n_feats: regressor of (outs[k], feats[i]) */
  json_t *notes;             /* constant features left out */
  const char *cache_state;
};

static void attributions_free(void *work)
{
  struct attributions_work *w = work;
  if (w == NULL)
    return;
  prepared_release(w->L);
  json_decref(w->params);
  if (w->regs)
    for (int i = 0; i < w->n_outs * w->n_feats; i++)
      regcache_summary_unref(w->regs[i]);
  free(w->regs);
  free(w->feats);
  free(w->outs);
  json_decref(w->notes);
  free(w);
}

static void *attributions_plan(void *ctx, struct job *job, const struct job_request *req,
                               int *n_tasks, long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 1;
  struct attributions_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  w->svc = ctx;
  w->job = job;
  w->params = json_incref(req->params);
  if ((w->notes = json_array()) == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto fail;
  }
  if ((w->L = prepared_acquire(ctx, req->model, req->version, req->digest, err)) == NULL ||
      attributions_resolve(ctx, w->L, w->params, &w->outs, &w->n_outs, &w->feats, &w->n_feats,
                           w->notes, &w->q, err) != ACED_OK)
    goto fail;
  w->regs = calloc((size_t)w->n_outs * (size_t)w->n_feats, sizeof *w->regs);
  if (w->regs == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto fail;
  }
  int missing = 0;
  for (int k = 0; k < w->n_outs; k++)
    missing += regcache_summaries(ctx, w->L, w->outs[k], w->feats, w->n_feats, &w->q, 0,
                                  w->regs + (size_t)k * w->n_feats);
  *n_tasks = w->n_feats; /* tasks with every regressor cached return at once */
  *units_total = w->n_feats;
  w->cache_state =
      missing == 0 ? "hit" : missing < w->n_outs * w->n_feats ? "partial" : "miss";
  return w;
fail:
  attributions_free(w);
  return NULL;
}

static long attributions_task(void *work, int i, struct aced_error *err)
{
  struct attributions_work *w = work;
  const int nf = w->n_feats;
  int k0 = -1; /* the first output whose regressor is missing */
  for (int k = 0; k < w->n_outs && k0 < 0; k++)
    if (w->regs[(size_t)k * nf + i] == NULL)
      k0 = k;
  if (k0 < 0)
    return 1;
  /* one grid fits every output of the feature: the first missing one
   * comes back from the fit, the others from the cache it filled */
  json_t *v = NULL;
  int waited = 0; /* fitted by another replica meanwhile (split.c) */
  svc_stop_begin(w->job);
  enum aced_err rc = fit_feature_shared(w->svc, w->L, w->feats[i], &w->q, w->outs[k0], &v,
                                        w->job, &waited, err);
  svc_stop_end();
  if (rc != ACED_OK)
    return -1;
  w->regs[(size_t)k0 * nf + i] = regcache_summary_of(v);
  json_decref(v);
  for (int k = k0 + 1; k < w->n_outs; k++)
    if (w->regs[(size_t)k * nf + i] == NULL)
      regcache_summaries(w->svc, w->L, w->outs[k], &w->feats[i], 1, &w->q, 0,
                         &w->regs[(size_t)k * nf + i]);
  for (int k = k0; k < w->n_outs; k++)
    if (w->regs[(size_t)k * nf + i] == NULL) {
      aced_error_set(err, ACED_E_INTERNAL, "", "fitted regressor unreadable");
      return -1;
    }
  return 1;
}

/* ACE of output o for every feature and every row of x (rows x k), as
 * the attributions job computes them: each feature's regressor from the
 * cache, the missing ones fitted here (on the calling worker, under its
 * stop check); a constant feature's ACE is 0 (its one-point domain is its
 * own baseline) with a note in `warnings`, which also gets the
 * regressors' warnings.  *estimator is the estimator every regressor
 * used, or "mixed". */
enum aced_err attributions_ace_rows(const struct svc *svc, const struct loaded *L, int o,
                                    const struct query_params *q, const double *x, int rows,
                                    double *ace, json_t *warnings, const char **estimator,
                                    struct aced_error *err)
{
  int *feats = NULL, nf = 0;
  if (resolve_index_list(L, NULL, "features", 0, &feats, &nf, warnings, err) != ACED_OK)
    return err->code;
  enum aced_err rc = attributions_ace_features(svc, L, o, q, x, rows, feats, nf, ace, warnings,
                                               estimator, err);
  free(feats);
  return rc;
}

enum aced_err attributions_ace_features(const struct svc *svc, const struct loaded *L, int o,
                                        const struct query_params *q, const double *x, int rows,
                                        const int *feats, int nf, double *ace, json_t *warnings,
                                        const char **estimator, struct aced_error *err)
{
  int k = L->m->n_features;
  memset(ace, 0, sizeof(double) * (size_t)rows * (size_t)k);
  *estimator = "none";
  enum aced_err rc = ACED_OK;
  for (int i = 0; i < nf && rc == ACED_OK; i++) {
    struct reg_summary *s = NULL;
    regcache_summaries(svc, L, o, &feats[i], 1, q, 0, &s);
    if (s == NULL) {
      json_t *v = NULL;
      if ((rc = fit_feature(svc, L, feats[i], q, o, &v, err)) != ACED_OK)
        break;
      s = regcache_summary_of(v);
      json_decref(v);
      if (s == NULL) {
        rc = aced_error_set(err, ACED_E_INTERNAL, "", "fitted regressor unreadable");
        break;
      }
    }
    /* the name must outlive the summary: one of estimator_name()'s */
    const char *name = "mixed";
    for (int e = 0; e < EST__COUNT; e++)
      if (strcmp(s->estimator, estimator_name((enum estimator)e)) == 0)
        name = estimator_name((enum estimator)e);
    *estimator = i == 0 || strcmp(*estimator, name) == 0 ? name : "mixed";
    if (s->warnings_len > 0) {
      /* the summary keeps its warnings as JSON strings joined by ',' */
      char *text = malloc(s->warnings_len + 3);
      if (text != NULL) {
        text[0] = '[';
        memcpy(text + 1, s->warnings, s->warnings_len);
        memcpy(text + 1 + s->warnings_len, "]", 2);
        json_t *list = json_loads(text, 0, NULL);
        json_array_extend(warnings, list);
        json_decref(list);
        free(text);
      }
    }
    for (int r = 0; r < rows && rc == ACED_OK; r++) {
      double a = x[(size_t)r * k + feats[i]];
      double v = eng_legendre_series(s->coef, s->order, s->low, s->high, a) - s->base;
      if (!isfinite(v)) {
        char field[64];
        if (L->m->rnn)
          snprintf(field, sizeof field, "inputs[%d][%d][%d]", r, feats[i] / L->m->step_features,
                   feats[i] % L->m->step_features);
        else
          snprintf(field, sizeof field, "inputs[%d][%d]", r, feats[i]);
        rc = aced_error_set(err, ACED_E_NOT_FINITE, field,
                            "the regressor overflows at %g (far outside the domain [%g, %g])",
                            a, s->low, s->high);
      }
      ace[(size_t)r * k + feats[i]] = v;
    }
    regcache_summary_unref(s);
  }
  return rc;
}

static json_t *attributions_finish(void *work, struct aced_error *err)
{
  struct attributions_work *w = work;
  /* the same text as the cached path's, parsed: a job's result is a tree */
  char *text = attributions_reply(w->L, w->params, w->outs, w->n_outs, w->feats, w->n_feats,
                                  w->regs, w->notes, w->cache_state, -1, &w->q, NULL, NULL, err);
  if (text == NULL)
    return NULL;
  json_t *res = json_loads(text, 0, NULL);
  free(text);
  if (res == NULL)
    aced_error_set(err, ACED_E_INTERNAL, "", "could not build the reply");
  return res;
}

const struct job_ops svc_kind_attributions = {
    .name = "attributions",
    .plan = attributions_plan,
    .task = attributions_task,
    .finish = attributions_finish,
    .free = attributions_free,
};

char *svc_cached_attributions(const struct svc *svc, const char *digest, const json_t *body,
                              const char *raw, size_t raw_len, int64_t start_us, size_t *len,
                              struct aced_error *err)
{
  err->code = ACED_OK;
  struct loaded *L = prepared_peek(digest);
  if (L == NULL)
    return NULL;
  int no = 0, nf = 0, *outs = NULL, *feats = NULL;
  struct query_params q;
  char *reply = NULL;
  json_t *notes = L->m->rnn ? json_array() : NULL; /* the lag's note */
  /* the notes array only when some feature is constant: the hot path
   * allocates nothing more than before */
  for (int f = 0; f < L->m->n_features && notes == NULL; f++)
    if (!(L->m->features[f].low < L->m->features[f].high))
      notes = json_array();
  if (attributions_resolve(svc, L, body, &outs, &no, &feats, &nf, notes, &q, err) == ACED_OK) {
    struct reg_summary *small[64];
    size_t nr = (size_t)no * (size_t)nf;
    struct reg_summary **regs =
        nr <= sizeof small / sizeof small[0] ? small : calloc(nr, sizeof *regs);
    if (regs == NULL) {
      aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    } else {
      /* any regressor missing: a worker fits it (NULL, no error) */
      int missing = 0;
      memset(regs, 0, nr * sizeof *regs);
      for (int k = 0; k < no && missing == 0; k++)
        missing = regcache_summaries(svc, L, outs[k], feats, nf, &q, 1, regs + (size_t)k * nf);
      struct reply_marks marks = {0, 0, 0, 0};
      if (missing == 0)
        reply = attributions_reply(L, body, outs, no, feats, nf, regs, notes, "hit", start_us,
                                   &q, len, &marks, err);
      /* one output ("output", not "outputs"), no notes: the reply is a
       * template for the same query with other rows */
      if (reply != NULL && raw != NULL && notes == NULL && marks.ms_end > 0)
        quick_learn(svc, digest, raw, raw_len, L, outs[0], feats, nf, regs, &q, reply, *len,
                    &marks);
      for (size_t i = 0; i < nr; i++)
        regcache_summary_unref(regs[i]);
      if (regs != small)
        free(regs);
    }
  }
  json_decref(notes);
  free(outs);
  free(feats);
  prepared_release(L);
  return reply;
}
