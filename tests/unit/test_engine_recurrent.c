/*
 * test_engine_recurrent.c -- the recurrent engine against PyTorch float64
 * (tests/data/recurrent_ref.json, written by tools/gen_recurrent_ref.py):
 * teacher-forced forward passes, Monte Carlo expectations and standard
 * errors (with feedback: Algorithm 2's re-simulation), and Eq. 4 with the
 * Hessian from torch.autograd.functional.hessian, for every cell type,
 * stacked layers, output_at last and every.  Agreement 1e-10.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "aced/engine.h"
#include "tap.h"

#define TOL 1e-10

static double *vec(json_t *a, int n)
{
  double *v = calloc((size_t)(n ? n : 1), sizeof *v);
  for (int i = 0; i < n; i++)
    v[i] = json_number_value(json_array_get(a, (size_t)i));
  return v;
}

static double *mat(json_t *a, int rows, int cols)
{
  double *v = calloc((size_t)rows * cols + 1, sizeof *v);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++)
      v[(size_t)i * cols + j] = json_number_value(json_array_get(json_array_get(a, (size_t)i), (size_t)j));
  return v;
}

static void layer_load(json_t *o, int G, int n_in, int H, struct eng_rnn_layer *L)
{
  L->n_in = n_in;
  L->W_ih = mat(json_object_get(o, "weight_ih"), G, n_in);
  L->W_hh = mat(json_object_get(o, "weight_hh"), G, H);
  L->b_ih = vec(json_object_get(o, "bias_ih"), G);
  L->b_hh = vec(json_object_get(o, "bias_hh"), G);
}

static void rnn_load(json_t *model, struct eng_rnn *r)
{
  json_t *nj = json_object_get(model, "network");
  memset(r, 0, sizeof *r);
  eng_cell_from_name(json_string_value(json_object_get(nj, "cell")), &r->cell);
  r->input_size = (int)json_integer_value(json_object_get(nj, "input_size"));
  r->hidden_size = (int)json_integer_value(json_object_get(nj, "hidden_size"));
  r->T = (int)json_integer_value(json_object_get(model, "sequence_length"));
  r->every = strcmp(json_string_value(json_object_get(nj, "output_at")), "every") == 0;
  r->feedback = json_is_true(json_object_get(nj, "feedback"));
  int H = r->hidden_size, G = eng_cell_gates(r->cell) * H;
  json_t *layers = json_object_get(nj, "layers");
  r->n_layers = layers ? (int)json_array_size(layers) : 1;
  r->layers = calloc((size_t)r->n_layers, sizeof *r->layers);
  for (int l = 0; l < r->n_layers; l++)
    layer_load(layers ? json_array_get(layers, (size_t)l) : nj, G, l ? H : r->input_size, H,
               &r->layers[l]);
  json_t *head = json_object_get(nj, "head");
  r->head.n_layers = (int)json_array_size(head);
  r->head.layers = calloc((size_t)r->head.n_layers, sizeof *r->head.layers);
  int n_in = H;
  for (int l = 0; l < r->head.n_layers; l++) {
    json_t *ly = json_array_get(head, (size_t)l);
    struct eng_layer *e = &r->head.layers[l];
    json_t *w = json_object_get(ly, "weights");
    e->n_in = n_in;
    e->n_out = (int)json_array_size(w);
    e->W = mat(w, e->n_out, n_in);
    e->b = vec(json_object_get(ly, "bias"), e->n_out);
    eng_act_from_name(json_string_value(json_object_get(ly, "activation")), &e->act);
    n_in = e->n_out;
  }
}

static void rnn_unload(struct eng_rnn *r)
{
  for (int l = 0; l < r->n_layers; l++) {
    free(r->layers[l].W_ih);
    free(r->layers[l].W_hh);
    free(r->layers[l].b_ih);
    free(r->layers[l].b_hh);
  }
  free(r->layers);
  for (int l = 0; l < r->head.n_layers; l++) {
    free(r->head.layers[l].W);
    free(r->head.layers[l].b);
  }
  free(r->head.layers);
}

/* Reverse mode (recurrent_grad.c) against tests/data/rexplain_ref.json's
 * PyTorch references for the same model: the gradient of its output and
 * the ablation against the zeros baseline, with the models' own inputs. */
static void run_reverse(const struct eng_rnn *r, const char *name, json_t *ref)
{
  json_t *c = NULL, *it;
  size_t k;
  json_array_foreach(json_object_get(ref, "cases"), k, it)
    if (strcmp(json_string_value(json_object_get(it, "name")), name) == 0)
      c = it;
  if (!tap_ok(c != NULL, "%s: in rexplain_ref.json", name))
    return;
  const int T = r->T, ni = r->input_size, K = T * ni;
  const int O = r->every ? eng_rnn_outputs(r) / T : eng_rnn_outputs(r);
  json_t *in = json_object_get(c, "inputs"), *ts = json_object_get(c, "output_timestep");
  int n = (int)json_array_size(in), o = O - 1, col = json_is_integer(ts)
                                                      ? (int)json_integer_value(ts) * O + o
                                                      : o;
  double *x = malloc(sizeof(double) * (size_t)n * K), *g = malloc(sizeof(double) * (size_t)n * K);
  double *a = malloc(sizeof(double) * (size_t)n * K), *zero = calloc((size_t)K, sizeof *zero);
  for (int q = 0; q < n * K; q++)
    x[q] = json_number_value(json_array_get(
        json_array_get(json_array_get(in, (size_t)(q / K)), (size_t)(q % K / ni)), (size_t)(q % ni)));
  json_t *abl = NULL;
  json_array_foreach(json_object_get(c, "requests"), k, it)
    if (json_is_string(json_object_get(it, "baseline")) &&
        strcmp(json_string_value(json_object_get(it, "baseline")), "zeros") == 0)
      abl = json_object_get(it, "ablation");
  int rc = eng_rnn_gradient(r, x, n, col, g, NULL) | eng_rnn_ablation(r, x, n, zero, col, a);
  double wg = 0.0, wa = 0.0;
  for (int q = 0; q < n * K; q++) {
    json_t *row = json_array_get(json_object_get(c, "gradient"), (size_t)(q / K));
    double dg = fabs(g[q] - json_number_value(json_array_get(
                                json_array_get(row, (size_t)(q % K / ni)), (size_t)(q % ni))));
    row = json_array_get(abl, (size_t)(q / K));
    double da = fabs(a[q] - json_number_value(json_array_get(
                                json_array_get(row, (size_t)(q % K / ni)), (size_t)(q % ni))));
    wg = dg > wg ? dg : wg;
    wa = da > wa ? da : wa;
  }
  tap_ok(rc == 0 && wg <= TOL && wa <= TOL,
         "%s: reverse-mode gradient and ablation vs torch autograd (max diff %.3g, %.3g)", name, wg,
         wa);
  free(x);
  free(g);
  free(a);
  free(zero);
}

static json_t *rexplain_ref;

static void run_case(json_t *c)
{
  json_t *model = json_object_get(c, "model");
  const char *name = json_string_value(json_object_get(model, "name"));
  struct eng_rnn r;
  rnn_load(model, &r);
  int K = r.T * r.input_size, no = eng_rnn_outputs(&r);
  json_t *seqs = json_object_get(json_object_get(model, "data"), "sequences");
  int n = (int)json_array_size(seqs);
  double *X = calloc((size_t)n * K, sizeof *X);
  for (int s = 0; s < n; s++)
    for (int t = 0; t < r.T; t++)
      for (int i = 0; i < r.input_size; i++)
        X[(size_t)s * K + t * r.input_size + i] = json_number_value(
            json_array_get(json_array_get(json_array_get(seqs, (size_t)s), (size_t)t), (size_t)i));
  /* mean and covariance (divisor n - 1), plainly */
  double *mu = calloc((size_t)K, sizeof *mu), *S = calloc((size_t)K * K, sizeof *S);
  for (int s = 0; s < n; s++)
    for (int a = 0; a < K; a++)
      mu[a] += X[(size_t)s * K + a] / n;
  for (int s = 0; s < n; s++)
    for (int a = 0; a < K; a++)
      for (int b = 0; b < K; b++)
        S[(size_t)a * K + b] +=
            (X[(size_t)s * K + a] - mu[a]) * (X[(size_t)s * K + b] - mu[b]) / (n - 1);

  double *y = calloc((size_t)n * no, sizeof *y);
  tap_ok(eng_rnn_forward(&r, X, n, y) == 0, "%s: forward runs", name);
  json_t *fw = json_object_get(c, "forward");
  double worst = 0.0;
  for (int s = 0; s < n; s++)
    for (int o = 0; o < no; o++) {
      double d = fabs(y[(size_t)s * no + o] -
                      json_number_value(json_array_get(json_array_get(fw, (size_t)s), (size_t)o)));
      worst = d > worst ? d : worst;
    }
  run_reverse(&r, name, rexplain_ref);
  tap_ok(worst <= TOL, "%s: forward of %d sequences x %d outputs vs torch (max diff %.3g)", name, n,
         no, worst);

  struct eng_model_input in = {.k = K, .mean = mu, .cov = S, .n_samples = n, .samples = X,
                               .rnn = &r};
  struct eng_model *m = NULL;
  char ebuf[128] = "";
  if (!tap_ok(eng_model_prepare(&in, &m, ebuf, sizeof ebuf) == 0, "%s: prepare (%s)", name, ebuf))
    goto out;
  tap_ok(eng_model_inputs(m) == K && eng_model_outputs(m) == no, "%s: %d inputs, %d outputs", name,
         K, no);
  const double *per;
  double tau, thr;
  int nlag;
  json_t *lag = json_object_get(c, "lag");
  if (tap_ok(eng_rnn_lag(m, &per, &tau, &thr, &nlag) == 0 && nlag == n, "%s: lag computed", name)) {
    double wl = 0.0;
    for (int k = 0; k < r.T; k++) {
      double d = fabs(per[k] - json_number_value(json_array_get(json_object_get(lag, "per_timestep"), (size_t)k)));
      wl = d > wl ? d : wl;
    }
    tap_ok(wl <= TOL, "%s: lag per_timestep vs torch jacobian (max diff %.3g)", name, wl);
    tap_close(tau, json_number_value(json_object_get(lag, "tau")), 1e-12, "%s: lag tau %g", name, tau);
  }
  size_t qi;
  json_t *q;
  json_array_foreach(json_object_get(c, "queries"), qi, q) {
    int f = (int)json_integer_value(json_object_get(q, "feature"));
    int t = (int)json_integer_value(json_object_get(q, "timestep"));
    int j = t * r.input_size + f;
    json_t *aj = json_object_get(q, "alphas");
    int na = (int)json_array_size(aj);
    double *alpha = vec(aj, na);
    double *E = calloc((size_t)na * no, sizeof *E), *se = calloc((size_t)na * no, sizeof *se);
    double *E2 = calloc((size_t)na * no, sizeof *E2), *sec = calloc((size_t)na * no, sizeof *sec);
    double *Ef = calloc((size_t)na * no, sizeof *Ef);
    int rc1 = eng_montecarlo(m, j, alpha, na, E, se);
    int rc2 = eng_taylor(m, j, alpha, na, E2, sec);
    int rc3 = eng_finite_difference(m, j, alpha, na, 1e-4, Ef);
    tap_ok(rc1 == 0 && rc2 == 0 && rc3 == 0, "%s: estimators run at (x%d, t=%d)", name, f, t);
    double wm = 0, ws = 0, wt = 0, wf = 0;
    for (int a = 0; a < na; a++)
      for (int o = 0; o < no; o++) {
#define REF(key) json_number_value(json_array_get(json_array_get(json_object_get(q, key), (size_t)a), (size_t)o))
        double d = fabs(E[a * no + o] - REF("montecarlo"));
        wm = d > wm ? d : wm;
        d = fabs(se[a * no + o] - REF("stderr"));
        ws = d > ws ? d : ws;
        d = fabs(E2[a * no + o] - REF("taylor"));
        wt = d > wt ? d : wt;
        d = fabs(Ef[a * no + o] - REF("taylor"));
        wf = d > wf ? d : wf;
      }
    tap_ok(wm <= TOL, "%s: montecarlo at (x%d, t=%d) vs torch (max diff %.3g)", name, f, t, wm);
    tap_ok(ws <= TOL, "%s: montecarlo stderr (max diff %.3g)", name, ws);
    tap_ok(wt <= TOL, "%s: taylor (Eq. 4, exact Hessian trace) vs torch hessian (max diff %.3g)",
           name, wt);
    /* central differences with eps 1e-4: O(eps^2) truncation, O(ulp/eps^2) rounding */
    tap_ok(wf <= 1e-5, "%s: finite_difference near taylor (max diff %.3g)", name, wf);
    free(alpha);
    free(E);
    free(se);
    free(E2);
    free(sec);
    free(Ef);
  }
  eng_model_free(m);
out:
  free(X);
  free(mu);
  free(S);
  free(y);
  rnn_unload(&r);
}

int main(void)
{
  eng_init();
  const char *src = getenv("ACED_SRCDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/data/recurrent_ref.json", src ? src : ".");
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!tap_ok(root != NULL, "load %s", path))
    return tap_done();
  snprintf(path, sizeof path, "%s/tests/data/rexplain_ref.json", src ? src : ".");
  rexplain_ref = json_load_file(path, 0, &jerr);
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(root, "cases"), i, c)
    run_case(c);
  json_decref(root);
  json_decref(rexplain_ref);
  return tap_done();
}
