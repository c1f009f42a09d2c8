/*
 * explanations.c -- the "explanations" job kind (POST
 * .../explanations): the attributions users compare causal ones with,
 * computed exactly from the engine's gradients:
 *
 *   gradient              d y / d x at the input (saliency)
 *   gradient_x_input      x * d y / d x
 *   integrated_gradients  (x - b) * integral_0^1 d y / d x (b + t (x - b)) dt
 *                         by the quadrature rule asked for, with the
 *                         completeness gap sum(attr) - (f(x) - f(b)) per row
 *   ablation              f(x) - f(x with x_i set to b_i), per feature
 *   connection_weights    Olden's sum over paths of products of weights,
 *                         with Garson's relative importance beside it;
 *                         input-independent (one row, "inputs" optional)
 *   ace                   the paper's causal attribution, the numbers of
 *                         POST .../attributions (attributions_ace_rows:
 *                         the same regressors, cached or fitted here, with
 *                         the same estimator, num, max_order, epsilon)
 *
 * b is the baseline: the model's mean (default), zeros, each feature's
 * domain low, or a row given in the request.
 *
 * Recurrent models take sequences (rows x T x input_size, flattened to
 * the k = T * input_size inputs of engine.h) and answer rows x T x
 * input_size, for the head's output at output_timestep (output_at every;
 * else the last step).  The derivatives come from reverse mode through
 * the cells and head (recurrent_grad.c); with feedback, the attribution
 * of (t, i) is of the function the interventions use, the steps after t
 * re-simulated from the head.  connection_weights are defined for
 * feedforward layers only (422 naming the method); ace is the
 * attributions route's, over its window of the time lag (all_timesteps
 * for every step).  One task per method, so
 * several methods asked at once run on several workers; each polls the
 * job's stop check between chunks of rows.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/limits.h"
#include "svc/internal.h"

enum method {
  M_GRADIENT,
  M_GRADIENT_X_INPUT,
  M_INTEGRATED_GRADIENTS,
  M_ABLATION,
  M_CONNECTION_WEIGHTS,
  M_ACE,
  M__COUNT
};
static const char *const method_names[M__COUNT] = {"gradient", "gradient_x_input",
                                                   "integrated_gradients", "ablation",
                                                   "connection_weights", "ace"};
static const char *const rule_names[] = {"gauss_legendre", "riemann_left", "riemann_right",
                                         "riemann_middle", "trapezoid"};
#define N_RULES ((int)(sizeof rule_names / sizeof rule_names[0]))

struct explanations_work {
  const struct svc *svc;
  struct job *job;
  struct loaded *L;
  int multi;                 /* "methods" was given: answer a list */
  int n_methods;
  enum method methods[M__COUNT];
  json_t *blocks[M__COUNT];  /* per method, filled by its task */
  int output;                /* flattened column: recurrent, at output_timestep */
  int rnn, T, ni;            /* a recurrent model: k = T * ni */
  int rows, k;
  double *x;                 /* rows x k */
  double *base;              /* k */
  const char *baseline_name; /* "mean", "zeros", "domain_low", "given" */
  int steps;
  enum eng_rule rule;
  struct query_params q;     /* ace: its estimate's parameters */
  const char *ace_estimator; /* ace: the estimator its regressors used */
  json_t *ace_warnings;      /* ace: notes and the regressors' warnings */
  struct aced_error ace_err; /* ace: why it failed */
  int *ace_feats, ace_nf;    /* ace, recurrent: the window's (timestep, feature)s */
};

static void explanations_free(void *work)
{
  struct explanations_work *w = work;
  if (w == NULL)
    return;
  prepared_release(w->L);
  for (int i = 0; i < M__COUNT; i++)
    json_decref(w->blocks[i]);
  free(w->x);
  free(w->base);
  free(w->ace_feats);
  json_decref(w->ace_warnings);
  free(w);
}

static enum aced_err method_parse(const json_t *v, const char *field, enum method *m,
                                  struct aced_error *err)
{
  const char *s = json_string_value(v);
  for (int i = 0; s && i < M__COUNT; i++)
    if (strcmp(s, method_names[i]) == 0) {
      *m = (enum method)i;
      return ACED_OK;
    }
  return aced_error_set(err, ACED_E_INVALID, field,
                        "method must be gradient, gradient_x_input, integrated_gradients, "
                        "ablation, connection_weights or ace");
}

/* One input row into dst (k values): a row of k numbers for a
 * feedforward model, a sequence of T steps of ni numbers for a recurrent
 * one (the spec checked they are finite numbers). */
static enum aced_err read_row(const struct explanations_work *w, const json_t *row,
                              const char *field, double *dst, struct aced_error *err)
{
  if (!w->rnn) {
    if (json_is_array(json_array_get(row, 0)))
      return aced_error_set(err, ACED_E_SHAPE, field,
                            "the model is feedforward: a row of %d numbers, not a sequence",
                            w->k);
    if (json_array_size(row) != (size_t)w->k)
      return aced_error_set(err, ACED_E_SHAPE, field, "%s has %zu values; the model has %d "
                            "features", field, json_array_size(row), w->k);
    for (int i = 0; i < w->k; i++)
      dst[i] = json_number_value(json_array_get(row, (size_t)i));
    return ACED_OK;
  }
  int good = json_array_size(row) == (size_t)w->T;
  for (int t = 0; good && t < w->T; t++)
    good = json_array_size(json_array_get(row, (size_t)t)) == (size_t)w->ni;
  if (!good)
    return aced_error_set(err, ACED_E_SHAPE, field,
                          "expected a sequence of %d steps (sequence_length) of %d values "
                          "(input_size)", w->T, w->ni);
  for (int t = 0; t < w->T; t++)
    for (int i = 0; i < w->ni; i++)
      dst[t * w->ni + i] =
          json_number_value(json_array_get(json_array_get(row, (size_t)t), (size_t)i));
  return ACED_OK;
}

/* The request's methods, baseline, steps and rule (body types were checked
 * by the route's spec). */
static enum aced_err parse_options(struct explanations_work *w, const json_t *p,
                                   struct aced_error *err)
{
  const json_t *one = json_object_get(p, "method"), *many = json_object_get(p, "methods");
  if ((one == NULL) == (many == NULL))
    return aced_error_set(err, one ? ACED_E_INVALID : ACED_E_MISSING_FIELD, "method",
                          "give either 'method' or 'methods'");
  if (one != NULL) {
    w->n_methods = 1;
    if (method_parse(one, "method", &w->methods[0], err) != ACED_OK)
      return err->code;
  } else {
    w->multi = 1;
    if (json_array_size(many) > M__COUNT)
      return aced_error_set(err, ACED_E_INVALID, "methods", "at most %d methods", M__COUNT);
    for (size_t i = 0; i < json_array_size(many); i++) {
      char field[32];
      snprintf(field, sizeof field, "methods[%zu]", i);
      enum method m;
      if (method_parse(json_array_get(many, i), field, &m, err) != ACED_OK)
        return err->code;
      for (int j = 0; j < w->n_methods; j++)
        if (w->methods[j] == m)
          return aced_error_set(err, ACED_E_INVALID, field, "listed twice");
      w->methods[w->n_methods++] = m;
    }
  }
  const json_t *steps = json_object_get(p, "steps");
  w->steps = steps ? (int)(json_integer_value(steps) > ACED_IG_STEPS_MAX
                               ? ACED_IG_STEPS_MAX + 1
                               : json_integer_value(steps) < 0 ? 0 : json_integer_value(steps))
                   : ACED_IG_STEPS_DEFAULT;
  if (w->steps < 1 || w->steps > ACED_IG_STEPS_MAX)
    return aced_error_set(err, ACED_E_INVALID, "steps", "steps must be in [1, %d]",
                          ACED_IG_STEPS_MAX);
  w->rule = ENG_RULE_GAUSS_LEGENDRE;
  const char *rule = json_string_value(json_object_get(p, "rule"));
  if (rule != NULL) {
    int r = 0;
    while (r < N_RULES && strcmp(rule, rule_names[r]) != 0)
      r++;
    if (r == N_RULES)
      return aced_error_set(err, ACED_E_INVALID, "rule",
                            "rule must be gauss_legendre, riemann_left, riemann_right, "
                            "riemann_middle or trapezoid");
    w->rule = (enum eng_rule)r;
  }
  if (w->rule == ENG_RULE_TRAPEZOID && w->steps < 2)
    return aced_error_set(err, ACED_E_INVALID, "steps", "the trapezoid rule needs steps >= 2");

  const struct aced_model *m = w->L->m;
  w->base = malloc(sizeof(double) * (size_t)w->k);
  if (w->base == NULL)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  const json_t *b = json_object_get(p, "baseline");
  w->baseline_name = json_is_string(b) ? json_string_value(b) : b ? "given" : "mean";
  if (json_is_array(b)) {
    if (read_row(w, b, "baseline", w->base, err) != ACED_OK)
      return err->code;
  } else if (strcmp(w->baseline_name, "mean") == 0) {
    memcpy(w->base, m->mean, sizeof(double) * (size_t)w->k);
  } else if (strcmp(w->baseline_name, "zeros") == 0) {
    memset(w->base, 0, sizeof(double) * (size_t)w->k);
  } else if (strcmp(w->baseline_name, "domain_low") == 0) {
    for (int i = 0; i < w->k; i++)
      w->base[i] = m->features[i].low;
  } else {
    return aced_error_set(err, ACED_E_INVALID, "baseline",
                          w->rnn ? "baseline must be mean, zeros, domain_low or a sequence of %d "
                                   "steps of %d numbers"
                                 : "baseline must be mean, zeros, domain_low or a row of %d "
                                   "numbers",
                          w->rnn ? w->T : w->k, w->ni);
  }
  return ACED_OK;
}

static void *explanations_plan(void *ctx, struct job *job, const struct job_request *req,
                               int *n_tasks, long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 1;
  struct explanations_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  w->svc = ctx;
  w->job = job;
  const json_t *p = req->params;
  if ((w->L = prepared_acquire(ctx, req->model, req->version, req->digest, err)) == NULL ||
      resolve_index(w->L, json_object_get(p, "output"), "output", 1, &w->output, err) !=
          ACED_OK)
    goto fail;
  w->k = w->L->m->n_features;
  if ((w->rnn = w->L->m->rnn != NULL)) {
    w->T = w->L->m->seq_len;
    w->ni = w->L->m->step_features;
    if (resolve_output_step(w->L, p, &w->output, err) != ACED_OK)
      goto fail;
  } else if (json_object_get(p, "output_timestep") || json_object_get(p, "all_timesteps")) {
    aced_error_set(err, ACED_E_INVALID,
                   json_object_get(p, "output_timestep") ? "output_timestep" : "all_timesteps",
                   "the model is not recurrent: it has no timesteps");
    goto fail;
  }
  if (parse_options(w, p, err) != ACED_OK || query_params_parse(ctx, p, &w->q, err) != ACED_OK)
    goto fail;
  for (int i = 0; w->rnn && i < w->n_methods; i++)
    if (w->methods[i] == M_CONNECTION_WEIGHTS) {
      char field[32];
      snprintf(field, sizeof field, w->multi ? "methods[%d]" : "method", i);
      aced_error_set(err, ACED_E_INVALID, field,
                     "connection_weights are products of feedforward layers' weights along "
                     "paths; a recurrent model's paths go through its state at every step, "
                     "so it has none (ask gradient, integrated_gradients, ablation or ace)");
      goto fail;
    }
  if ((w->ace_warnings = json_array()) == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto fail;
  }
  const json_t *inputs = json_object_get(p, "inputs");
  int need_rows = 0;
  for (int i = 0; i < w->n_methods; i++)
    need_rows |= w->methods[i] != M_CONNECTION_WEIGHTS;
  if (inputs == NULL && need_rows) {
    aced_error_set(err, ACED_E_MISSING_FIELD, "inputs", "'inputs' is required by %s",
                   method_names[w->methods[0] == M_CONNECTION_WEIGHTS && w->n_methods > 1
                                    ? w->methods[1]
                                    : w->methods[0]]);
    goto fail;
  }
  w->rows = (int)json_array_size(inputs);
  w->x = malloc(sizeof(double) * (size_t)(w->rows ? w->rows : 1) * (size_t)w->k);
  if (w->x == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    goto fail;
  }
  for (int r = 0; r < w->rows; r++) {
    char field[32];
    snprintf(field, sizeof field, "inputs[%d]", r);
    if (read_row(w, json_array_get(inputs, (size_t)r), field, w->x + (size_t)r * w->k, err) !=
        ACED_OK)
      goto fail;
  }
  for (int i = 0; w->rnn && i < w->n_methods; i++)
    if (w->methods[i] == M_ACE) {
      /* the attributions route's window: the steps within the time lag */
      int *f1 = NULL, n1 = 0, *steps = NULL, ns = 0;
      if (resolve_index_list(w->L, NULL, "features", 0, &f1, &n1, w->ace_warnings, err) !=
              ACED_OK ||
          resolve_step_window(w->L, p, &steps, &ns, w->ace_warnings, err) != ACED_OK) {
        free(f1);
        goto fail;
      }
      w->ace_feats = malloc(sizeof(int) * (size_t)ns * (size_t)n1);
      for (int t = 0; w->ace_feats && t < ns; t++)
        for (int j = 0; j < n1; j++)
          w->ace_feats[t * n1 + j] = steps[t] * w->ni + f1[j];
      w->ace_nf = ns * n1;
      free(f1);
      free(steps);
      if (w->ace_feats == NULL) {
        aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
        goto fail;
      }
    }
  *n_tasks = w->n_methods;
  *units_total = w->n_methods;
  return w;
fail:
  explanations_free(w);
  return NULL;
}

/* Integrated gradients into attr (rows x k) and the completeness gap
 * sum(attr) - (f(x) - f(b)) per row into gap (f teacher forced for a
 * recurrent model). */
static int integrated(struct explanations_work *w, double *attr, double *gap)
{
  const struct eng_model *em = w->L->em;
  const struct eng_rnn *r = eng_model_rnn(em);
  int rows = w->rows, k = w->k, s = w->steps, no = eng_model_outputs(em), rc = -1;
  size_t rk = (size_t)rows * k;
  double *t = malloc(sizeof(double) * (size_t)s), *wt = malloc(sizeof(double) * (size_t)s);
  double *fx = malloc(sizeof(double) * (size_t)(rows + 1) * no);
  double *ends = malloc(sizeof(double) * (size_t)(rows + 1) * k);
  if (t && wt && fx && ends && eng_quadrature(w->rule, s, t, wt) == 0)
    rc = r ? eng_rnn_integrated_gradients(r, w->x, rows, w->base, t, wt, s, w->output, attr)
           : eng_integrated_gradients(em, w->x, rows, w->base, t, wt, s, w->output, attr);
  if (rc == 0) {
    memcpy(ends, w->x, sizeof(double) * rk);
    memcpy(ends + rk, w->base, sizeof(double) * (size_t)k);
    rc = r ? eng_rnn_forward(r, ends, rows + 1, fx) : eng_forward(em, ends, rows + 1, fx);
  }
  for (int q = 0; q < rows && rc == 0; q++) {
    double sum = 0.0;
    for (int i = 0; i < k; i++)
      sum += attr[(size_t)q * k + i];
    gap[q] = sum - (fx[(size_t)q * no + w->output] - fx[(size_t)rows * no + w->output]);
  }
  free(t);
  free(wt);
  free(fx);
  free(ends);
  return rc;
}

/* compute() for a recurrent model (connection_weights were refused when
 * planning): -5 when one sequence's tape is over the limit. */
static int compute_rnn(struct explanations_work *w, enum method m, double *attr, double *gap)
{
  const struct eng_rnn *r = eng_model_rnn(w->L->em);
  int rows = w->rows, k = w->k, rc = -1;
  switch (m) {
  case M_GRADIENT:
  case M_GRADIENT_X_INPUT:
    rc = eng_rnn_gradient(r, w->x, rows, w->output, attr, NULL);
    if (rc == 0 && m == M_GRADIENT_X_INPUT)
      for (size_t t = 0; t < (size_t)rows * k; t++)
        attr[t] *= w->x[t];
    break;
  case M_INTEGRATED_GRADIENTS:
    rc = integrated(w, attr, gap);
    break;
  case M_ABLATION:
    rc = eng_rnn_ablation(r, w->x, rows, w->base, w->output, attr);
    break;
  case M_ACE:
    return attributions_ace_features(w->svc, w->L, w->output, &w->q, w->x, rows, w->ace_feats,
                                     w->ace_nf, attr, w->ace_warnings, &w->ace_estimator,
                                     &w->ace_err) == ACED_OK
               ? 0
               : -4;
  default:
    return -1;
  }
  return rc == -3 ? -5 : rc;
}

/* attr (rows x k) for method m; gap (rows) for integrated gradients. */
static int compute(struct explanations_work *w, enum method m, double *attr, double *gap)
{
  int rows = w->rows, k = w->k, no = w->L->m->n_outputs, rc = 0;
  size_t rk = (size_t)rows * k;
  const struct eng_model *em = w->L->em;
  if (w->rnn)
    return compute_rnn(w, m, attr, gap);
  switch (m) {
  case M_GRADIENT:
  case M_GRADIENT_X_INPUT:
    rc = eng_gradient(em, w->x, rows, w->output, attr, NULL);
    if (rc == 0 && m == M_GRADIENT_X_INPUT)
      for (size_t t = 0; t < rk; t++)
        attr[t] *= w->x[t];
    return rc;
  case M_INTEGRATED_GRADIENTS:
    return integrated(w, attr, gap);
  case M_ABLATION: {
    /* per row: x and its k ablated copies in one forward batch */
    double *batch = malloc(sizeof(double) * (size_t)(k + 1) * k);
    double *y = malloc(sizeof(double) * (size_t)(k + 1) * no);
    rc = batch && y ? 0 : -1;
    for (int r = 0; r < rows && rc == 0; r++) {
      if (job_cancelled(w->job)) {
        rc = ENG_STOPPED;
        break;
      }
      const double *xr = w->x + (size_t)r * k;
      for (int c = 0; c <= k; c++) {
        memcpy(batch + (size_t)c * k, xr, sizeof(double) * (size_t)k);
        if (c > 0)
          batch[(size_t)c * k + (c - 1)] = w->base[c - 1];
      }
      rc = eng_forward(em, batch, k + 1, y);
      for (int i = 0; i < k && rc == 0; i++)
        attr[(size_t)r * k + i] = y[w->output] - y[(size_t)(i + 1) * no + w->output];
    }
    free(batch);
    free(y);
    return rc;
  }
  case M_CONNECTION_WEIGHTS:
    /* input-independent: attr holds Olden's row, gap Garson's */
    return eng_connection_weights(em, w->output, attr, gap);
  case M_ACE:
    /* the attributions service's own numbers (its errors come back as -4) */
    return attributions_ace_rows(w->svc, w->L, w->output, &w->q, w->x, rows, attr,
                                 w->ace_warnings, &w->ace_estimator, &w->ace_err) == ACED_OK
               ? 0
               : -4;
  default:
    return -1;
  }
}

/* rows x k, or for a recurrent model rows x T x input_size. */
static json_t *rows_json(const struct explanations_work *w, const double *a, int rows, int k)
{
  json_t *out = json_array();
  for (int r = 0; r < rows; r++) {
    if (!w->rnn) {
      json_array_append_new(out, dbl_array(a + (size_t)r * k, k, 1));
      continue;
    }
    json_t *seq = json_array();
    for (int t = 0; t < w->T; t++)
      json_array_append_new(seq, dbl_array(a + (size_t)r * k + (size_t)t * w->ni, w->ni, 1));
    json_array_append_new(out, seq);
  }
  return out;
}

static long explanations_task(void *work, int i, struct aced_error *err)
{
  struct explanations_work *w = work;
  enum method m = w->methods[i];
  int rows = m == M_CONNECTION_WEIGHTS ? 1 : w->rows, k = w->k;
  double *attr = malloc(sizeof(double) * (size_t)rows * k);
  double *gap = malloc(sizeof(double) * (size_t)(rows > k ? rows : k));
  if (attr == NULL || gap == NULL) {
    free(attr);
    free(gap);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return -1;
  }
  svc_stop_begin(w->job);
  int rc = compute(w, m, attr, gap);
  svc_stop_end();
  for (size_t t = 0; rc == 0 && t < (size_t)rows * k; t++)
    if (!isfinite(attr[t])) {
      char field[96];
      if (w->rnn)
        snprintf(field, sizeof field, "inputs[%zu][%zu][%zu]", t / (size_t)k,
                 t % (size_t)k / (size_t)w->ni, t % (size_t)w->ni);
      else
        snprintf(field, sizeof field, "inputs[%zu][%zu]", t / (size_t)k, t % (size_t)k);
      aced_error_set(err, ACED_E_NOT_FINITE, field, "the %s attribution overflows",
                     method_names[m]);
      rc = -3;
    }
  if (rc != 0) {
    free(attr);
    free(gap);
    if (rc == ENG_STOPPED)
      aced_error_set(err, ACED_E_UNAVAILABLE, "",
                     "job stopped (cancelled, timed out or shutting down)");
    else if (rc == -4)
      *err = w->ace_err;
    else if (rc == -5)
      aced_error_set(err, ACED_E_LIMIT, "inputs",
                     "one sequence's reverse pass would keep more than %ld doubles "
                     "(ACED_LAG_TAPE_MAX)", (long)ACED_LAG_TAPE_MAX);
    else if (rc != -3)
      aced_error_set(err, ACED_E_INTERNAL, "", "the engine could not compute %s",
                     method_names[m]);
    return -1;
  }
  const struct aced_model *md = w->L->m;
  json_t *feats = json_array();
  for (int f = 0; f < (w->rnn ? w->ni : k); f++)
    json_array_append_new(feats, json_string(md->features[f].name));
  json_t *block = json_pack(
      "{s:s,s:s,s:o,s:o}", "method", method_names[m], "output",
      md->outputs[w->rnn ? w->output % md->step_outputs : w->output], "features", feats,
      "attributions", rows_json(w, attr, rows, k));
  if (block != NULL && w->rnn)
    json_object_set_new(block, "output_timestep",
                        json_integer(md->rnn->every ? w->output / md->step_outputs : w->T - 1));
  if (block != NULL && w->rnn && md->rnn->feedback && m != M_ACE)
    json_object_set_new(
        block, "warnings",
        json_pack("[s]", m == M_INTEGRATED_GRADIENTS
                             ? "feedback: the attribution of each timestep is of the output "
                               "with the steps after it re-simulated from the head (as the "
                               "interventions run it), a function of its own per timestep; "
                               "completeness_gap is against the teacher-forced f(x) - f(b) "
                               "and need not vanish"
                             : "feedback: the attribution of each timestep is of the output "
                               "with the steps after it re-simulated from the head, as the "
                               "interventions run it"));
  if (block != NULL && (m == M_INTEGRATED_GRADIENTS || m == M_ABLATION)) {
    json_t *b1 = rows_json(w, w->base, 1, k); /* [the row or the sequence] */
    json_object_set(block, "baseline", json_array_get(b1, 0));
    json_decref(b1);
    json_object_set_new(block, "baseline_kind", json_string(w->baseline_name));
  }
  if (block != NULL && m == M_CONNECTION_WEIGHTS)
    json_object_set_new(block, "relative_importance", dbl_array(gap, k, 1));
  if (block != NULL && m == M_INTEGRATED_GRADIENTS) {
    json_object_set_new(block, "completeness_gap", dbl_array(gap, rows, 1));
    json_object_set_new(block, "steps", json_integer(w->steps));
    json_object_set_new(block, "rule", json_string(rule_names[w->rule]));
  }
  if (block != NULL && m == M_ACE) {
    json_object_set_new(block, "estimator", json_string(w->ace_estimator));
    json_object_set_new(block, "warnings", json_deep_copy(w->ace_warnings));
  }
  if (block != NULL && !w->multi)
    json_object_set_new(block, "meta",
                        m == M_ACE ? meta_json(w->ace_estimator, "none",
                                               json_deep_copy(w->ace_warnings))
                                   : meta_json("none", "none", NULL));
  free(attr);
  free(gap);
  if (block == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return -1;
  }
  w->blocks[i] = block;
  return 1;
}

static json_t *explanations_finish(void *work, struct aced_error *err)
{
  struct explanations_work *w = work;
  if (!w->multi)
    return json_incref(w->blocks[0]);
  json_t *list = json_array();
  for (int i = 0; i < w->n_methods; i++)
    json_array_append(list, w->blocks[i]);
  json_t *res = json_pack("{s:o,s:o}", "explanations", list, "meta",
                          meta_json("none", "none", NULL));
  if (res == NULL)
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  return res;
}

const struct job_ops svc_kind_explanations = {
    .name = "explanations",
    .plan = explanations_plan,
    .task = explanations_task,
    .finish = explanations_finish,
    .free = explanations_free,
};
