/*
 * test_engine_cases.c -- the engine against independent references: central
 * differences of the activations, a test-side forward pass and finite-
 * difference Hessians, closed forms for linear, ReLU and one-tanh-unit
 * networks, low-rank mode, montecarlo without samples, the diagnosis.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "aced/engine.h"
#include "engine/internal.h"
#include "tap.h"

static unsigned long rng = 88172645463325252UL;
static double urand(void) /* in [-1, 1) */
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* ---- a test-side network, written independently of the engine ---- */
static double t_act(enum eng_act a, double z)
{
  switch (a) {
  case ENG_ACT_IDENTITY: return z;
  case ENG_ACT_RELU: return z > 0 ? z : 0;
  case ENG_ACT_LEAKY_RELU: return z > 0 ? z : 0.01 * z;
  case ENG_ACT_ELU: return z > 0 ? z : exp(z) - 1;
  case ENG_ACT_SIGMOID: return 1 / (1 + exp(-z));
  case ENG_ACT_TANH: return tanh(z);
  case ENG_ACT_SOFTPLUS: return log(1 + exp(z));
  case ENG_ACT_GELU: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
  default: return NAN;
  }
}

static void t_forward(const struct eng_net *net, const double *x, double *y)
{
  double a[64], b[64];
  memcpy(a, x, (size_t)net->layers[0].n_in * sizeof *a);
  for (int l = 0; l < net->n_layers; l++) {
    const struct eng_layer *ly = &net->layers[l];
    double sum = 0, mx = -INFINITY;
    for (int j = 0; j < ly->n_out; j++) {
      b[j] = ly->b[j];
      for (int i = 0; i < ly->n_in; i++)
        b[j] += ly->W[j * ly->n_in + i] * a[i];
      if (b[j] > mx)
        mx = b[j];
    }
    for (int j = 0; j < ly->n_out; j++) {
      if (ly->act == ENG_ACT_SOFTMAX || ly->act == ENG_ACT_LOG_SOFTMAX) {
        a[j] = exp(b[j] - mx);
        sum += a[j];
      } else {
        a[j] = t_act(ly->act, b[j]);
      }
    }
    if (ly->act == ENG_ACT_SOFTMAX)
      for (int j = 0; j < ly->n_out; j++)
        a[j] /= sum;
    if (ly->act == ENG_ACT_LOG_SOFTMAX) /* a = exp(b - mx), sum its total */
      for (int j = 0; j < ly->n_out; j++)
        a[j] = b[j] - mx - log(sum);
  }
  memcpy(y, a, (size_t)net->layers[net->n_layers - 1].n_out * sizeof *y);
}

/* Second-order term 1/2 trace(H S_i) for output o by a four-point
 * finite-difference Hessian of t_forward at x (k <= 8). */
static double t_second(const struct eng_net *net, int k, const double *x,
                       const double *S, int feat, int o, double h)
{
  double tr = 0, xx[8], y[16];
  for (int p = 0; p < k; p++)
    for (int q = 0; q < k; q++) {
      if (p == feat || q == feat)
        continue;
      double f[4];
      for (int s = 0; s < 4; s++) {
        memcpy(xx, x, (size_t)k * sizeof *xx);
        xx[p] += (s & 1) ? -h : h;
        xx[q] += (s & 2) ? -h : h;
        t_forward(net, xx, y);
        f[s] = y[o];
      }
      double H = (f[0] - f[1] - f[2] + f[3]) / (4 * h * h);
      tr += H * S[p * k + q];
    }
  return 0.5 * tr;
}

static struct eng_net *make_net(int n_layers, const int *sizes, const enum eng_act *acts,
                                double wscale)
{
  struct eng_net *net = calloc(1, sizeof *net);
  net->n_layers = n_layers;
  net->layers = calloc((size_t)n_layers, sizeof *net->layers);
  for (int l = 0; l < n_layers; l++) {
    struct eng_layer *ly = &net->layers[l];
    ly->n_in = sizes[l];
    ly->n_out = sizes[l + 1];
    ly->act = acts[l];
    ly->W = malloc((size_t)ly->n_in * ly->n_out * sizeof *ly->W);
    ly->b = malloc((size_t)ly->n_out * sizeof *ly->b);
    for (int i = 0; i < ly->n_in * ly->n_out; i++)
      ly->W[i] = wscale * urand();
    for (int j = 0; j < ly->n_out; j++)
      ly->b[j] = 0.3 * urand();
  }
  return net;
}

static void free_net(struct eng_net *net)
{
  for (int l = 0; l < net->n_layers; l++) {
    free(net->layers[l].W);
    free(net->layers[l].b);
  }
  free(net->layers);
  free(net);
}

/* random covariance A A^T / k + small ridge, random mean */
static void make_data(int k, double *mu, double *S, double var)
{
  double A[64];
  for (int i = 0; i < k * k; i++)
    A[i] = urand();
  for (int i = 0; i < k; i++) {
    mu[i] = 0.5 * urand();
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int p = 0; p < k; p++)
        s += A[i * k + p] * A[j * k + p];
      S[i * k + j] = var * s / k + (i == j ? 0.01 * var : 0);
    }
  }
}

static struct eng_model *prep(const struct eng_net *net, int k, const double *mu,
                              const double *S, int ns, const double *xs, double share)
{
  struct eng_model *m = NULL;
  char eb[256] = "";
  struct eng_model_input in = {.net = net, .k = k, .mean = mu, .cov = S,
                               .n_samples = ns, .samples = xs, .lowrank_share = share};
  /* Only a failure prints a line; the caller then skips its checks. */
  if (eng_model_prepare(&in, &m, eb, sizeof eb) != 0 || m == NULL) {
    tap_ok(0, "eng_model_prepare: %s", eb);
    eng_model_free(m);
    return NULL;
  }
  return m;
}

static void test_activations(void)
{
  const double zs[] = {-2.3, -0.7, -0.2, 0.35, 1.1, 2.9};
  for (int a = 0; a < ENG_ACT__COUNT; a++) {
    enum eng_act e;
    tap_ok(eng_act_from_name(eng_act_name((enum eng_act)a), &e) == 0 && (int)e == a,
           "activation %s: name round trip", eng_act_name((enum eng_act)a));
    if (a == ENG_ACT_SOFTMAX || a == ENG_ACT_LOG_SOFTMAX)
      continue;
    const struct eng_act_info *ai = eng_act_info((enum eng_act)a);
    double w1 = 0, w2 = 0, wv = 0;
    for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
      double z = zs[i], h = 1e-4, f, d1, d2, fp, fm, dd;
      ai->eval(z, &f, &d1, &d2);
      wv = fmax(wv, fabs(f - t_act((enum eng_act)a, z)));
      ai->eval(z + h, &fp, &dd, &dd);
      ai->eval(z - h, &fm, &dd, &dd);
      w1 = fmax(w1, fabs(d1 - (fp - fm) / (2 * h)));
      w2 = fmax(w2, fabs(d2 - (fp + fm - 2 * f) / (h * h)));
    }
    tap_ok(wv < 1e-14 && w1 < 1e-8 && w2 < 1e-5,
           "activation %s: value, f', f'' vs central differences (%.2g %.2g %.2g)",
           ai->name, wv, w1, w2);
  }
  double f, d1, d2;
  eng_act_info(ENG_ACT_RELU)->eval(0.7, &f, &d1, &d2);
  tap_ok(d2 == 0.0 && d1 == 1.0, "relu'' = 0");
  tap_ok(eng_act_from_name("swish", &(enum eng_act){0}) == -1, "unknown name rejected");
}

/* Taylor through every activation vs the finite-difference Hessian of a
 * test-side forward pass: 3 -> 5 act -> 3 identity, and the softmax
 * Jacobian (linearised spread) and second derivative through
 * 3 -> 5 tanh -> 3 softmax. */
/* eng_taylor for feature feat at na alphas (na <= 16) of a network with 3
 * outputs, against the test side: the second term against t_second's FD
 * Hessian, the first against t_forward.  Widens *worst (second term),
 * *worst_f (first) and *maxsec (largest |reference term|); 0 when
 * eng_taylor fails. */
static int vs_fd_hessian(const struct eng_net *net, const struct eng_model *m, int k,
                         const double *mu, const double *S, int feat, const double *alpha,
                         int na, double *worst, double *worst_f, double *maxsec)
{
  double E[16 * 3], sec[16 * 3];
  if (na > 16 || eng_taylor(m, feat, alpha, na, E, sec) != 0)
    return 0;
  for (int i = 0; i < na; i++) {
    double x[8], y[3];
    memcpy(x, mu, (size_t)k * sizeof *x);
    x[feat] = alpha[i];
    t_forward(net, x, y);
    for (int o = 0; o < 3; o++) {
      double ref = t_second(net, k, x, S, feat, o, 2e-4);
      *worst = fmax(*worst, fabs(sec[i * 3 + o] - ref));
      *worst_f = fmax(*worst_f, fabs(E[i * 3 + o] - sec[i * 3 + o] - y[o]));
      *maxsec = fmax(*maxsec, fabs(ref));
    }
  }
  return 1;
}

static void test_taylor_vs_hessian(void)
{
  enum { K = 3 };
  double mu[K], S[K * K];
  make_data(K, mu, S, 0.2);
  for (int a = 0; a < ENG_ACT__COUNT; a++) {
    int sizes[] = {K, 5, 3};
    enum eng_act acts[2] = {(enum eng_act)a, ENG_ACT_IDENTITY};
    if (a == ENG_ACT_SOFTMAX || a == ENG_ACT_LOG_SOFTMAX) {
      acts[0] = ENG_ACT_TANH;
      acts[1] = (enum eng_act)a;
    }
    struct eng_net *net = make_net(2, sizes, acts, 1.5);
    struct eng_model *m = prep(net, K, mu, S, 0, NULL, 0);
    if (m == NULL) {
      free_net(net);
      continue;
    }
    double worst = 0, worst_f = 0, maxsec = 0, alpha[3] = {-0.8, 0.1, 0.9};
    int ran = 1;
    for (int feat = 0; feat < K; feat++)
      ran &= vs_fd_hessian(net, m, K, mu, S, feat, alpha, 3, &worst, &worst_f, &maxsec);
    /* FD Hessian with h = 2e-4: truncation ~ h^2 f'''', measured <= 6e-8 */
    tap_ok(ran && worst < 5e-7 && worst_f < 1e-13,
           "taylor through %s: second term vs FD Hessian %.2g, f(mu_a) %.2g (|term| up to %.2g)%s",
           eng_act_name((enum eng_act)a), worst, worst_f, maxsec, ran ? "" : "; eng_taylor failed");
    if (a == ENG_ACT_SOFTMAX || a == ENG_ACT_LOG_SOFTMAX) {
      /* linearised spread sqrt(diag(J S J^T)) vs a central-difference J */
      const double *sp = eng_output_spread(m);
      double J[3 * K], yp[3], ym[3], w = sp ? 0 : INFINITY;
      for (int p = 0; p < K; p++) {
        double x[K];
        memcpy(x, mu, sizeof x);
        x[p] += 1e-6;
        t_forward(net, x, yp);
        x[p] -= 2e-6;
        t_forward(net, x, ym);
        for (int o = 0; o < 3; o++)
          J[o * K + p] = (yp[o] - ym[o]) / 2e-6;
      }
      for (int o = 0; o < 3; o++) {
        double v = 0;
        for (int p = 0; p < K; p++)
          for (int q = 0; q < K; q++)
            v += J[o * K + p] * S[p * K + q] * J[o * K + q];
        if (sp)
          w = fmax(w, fabs(sp[o] - sqrt(v)));
      }
      tap_ok(w < 1e-8, "%s Jacobian: linearised spread vs FD Jacobian (%.2g)",
             eng_act_name((enum eng_act)a), w);
    }
    eng_model_free(m);
    free_net(net);
  }
}

static void test_linear_relu(void)
{
  enum { K = 4, NS = 300 };
  double mu[K], S[K * K], xs[NS * K];
  make_data(K, mu, S, 1.0);
  for (int i = 0; i < NS * K; i++)
    xs[i] = mu[i % K] + urand();
  int sizes[] = {K, 6, 2};
  enum eng_act lin[] = {ENG_ACT_IDENTITY, ENG_ACT_IDENTITY};
  struct eng_net *net = make_net(2, sizes, lin, 1.0);
  struct eng_model *m = prep(net, K, mu, S, NS, xs, 0);
  double alpha[5] = {-1, -0.3, 0, 0.4, 2}, E[10], sec[10], mc[10];
  if (m == NULL) {
    free_net(net);
    return;
  }
  int ok = eng_taylor(m, 1, alpha, 5, E, sec) == 0;
  double w = 0;
  for (int i = 0; i < 5; i++) {
    double x[K], y[2];
    memcpy(x, mu, sizeof x);
    x[1] = alpha[i];
    t_forward(net, x, y);
    for (int o = 0; o < 2; o++) {
      w = fmax(w, fabs(E[i * 2 + o] - y[o]) / (1 + fabs(y[o])));
      if (sec[i * 2 + o] != 0.0)
        ok = 0;
    }
  }
  tap_ok(ok && w < 1e-14, "linear network: second term exactly 0, taylor == f(mu_a) (%.2g)", w);
  eng_model_free(m);
  free_net(net);

  enum eng_act relu[] = {ENG_ACT_RELU, ENG_ACT_IDENTITY};
  net = make_net(2, sizes, relu, 1.0);
  m = prep(net, K, mu, S, NS, xs, 0);
  if (m == NULL) {
    free_net(net);
    return;
  }
  ok = eng_taylor(m, 2, alpha, 5, E, sec) == 0 && eng_montecarlo(m, 2, alpha, 5, mc, NULL) == 0;
  double wf = 0, gap = 0;
  for (int i = 0; i < 5; i++) {
    double x[K], y[2];
    memcpy(x, mu, sizeof x);
    x[2] = alpha[i];
    t_forward(net, x, y);
    for (int o = 0; o < 2; o++) {
      wf = fmax(wf, fabs(E[i * 2 + o] - y[o]));
      gap = fmax(gap, fabs(E[i * 2 + o] - mc[i * 2 + o]));
      if (sec[i * 2 + o] != 0.0)
        ok = 0;
    }
  }
  tap_ok(ok && wf < 1e-14, "relu network: taylor == f(mu_a) (%.2g)", wf);
  tap_ok(gap > 1e-2, "relu network: montecarlo differs from taylor (%.3g)", gap);

  /* forward pass vs the test-side forward */
  double xin[3 * K], y[6], yr[2];
  for (int i = 0; i < 3 * K; i++)
    xin[i] = urand();
  double wfw = eng_forward(m, xin, 3, y) == 0 ? 0 : INFINITY;
  for (int i = 0; i < 3; i++) {
    t_forward(net, xin + i * K, yr);
    for (int o = 0; o < 2 && wfw < INFINITY; o++)
      wfw = fmax(wfw, fabs(y[i * 2 + o] - yr[o]));
  }
  tap_ok(wfw < 1e-14, "forward pass vs hand computation (%.2g)", wfw);
  eng_model_free(m);
  free_net(net);

  /* montecarlo fails without samples */
  net = make_net(2, sizes, relu, 1.0);
  m = prep(net, K, mu, S, 0, NULL, 0);
  if (m == NULL) {
    free_net(net);
    return;
  }
  tap_ok(eng_montecarlo(m, 0, alpha, 5, mc, NULL) == -1, "montecarlo without samples fails");
  tap_ok(eng_taylor(m, K, alpha, 5, E, NULL) == -1, "taylor on a feature out of range fails");
  eng_model_free(m);
  free_net(net);
}

/* y = w2 tanh(w1 . x + b1) + b2: E = f(mu_a) + 1/2 w2 tanh''(z) w1^T S_i w1 */
static void test_one_tanh(void)
{
  enum { K = 3 };
  double mu[K], S[K * K];
  make_data(K, mu, S, 0.3);
  int sizes[] = {K, 1, 1};
  enum eng_act acts[] = {ENG_ACT_TANH, ENG_ACT_IDENTITY};
  struct eng_net *net = make_net(2, sizes, acts, 1.0);
  struct eng_model *m = prep(net, K, mu, S, 0, NULL, 0);
  if (m == NULL) {
    free_net(net);
    return;
  }
  const double *w1 = net->layers[0].W, b1 = net->layers[0].b[0];
  double w2 = net->layers[1].W[0], b2 = net->layers[1].b[0];
  double worst = 0;
  for (int feat = 0; feat < K; feat++) {
    double alpha[4] = {-1.5, -0.2, 0.6, 1.3}, E[4];
    if (eng_taylor(m, feat, alpha, 4, E, NULL) != 0) {
      worst = INFINITY;
      continue;
    }
    for (int i = 0; i < 4; i++) {
      double z = b1, quad = 0;
      for (int p = 0; p < K; p++)
        z += w1[p] * (p == feat ? alpha[i] : mu[p]);
      for (int p = 0; p < K; p++)
        for (int q = 0; q < K; q++)
          if (p != feat && q != feat)
            quad += w1[p] * S[p * K + q] * w1[q];
      double t = tanh(z);
      double want = w2 * t + b2 + 0.5 * w2 * (-2 * t * (1 - t * t)) * quad;
      worst = fmax(worst, fabs(E[i] - want));
    }
  }
  tap_ok(worst < 1e-14, "one tanh unit: closed form (%.2g)", worst);
  eng_model_free(m);
  free_net(net);
}

/* Low-rank mode: share 1 equals full; share s drops components whose
 * variance is at most (1 - s) of the total, so the second term moves by at
 * most 1/2 ||H||_F times the dropped variance. */
static void test_lowrank(void)
{
  enum { K = 6 };
  double mu[K], S[K * K];
  make_data(K, mu, S, 0.5);
  int sizes[] = {K, 8, 2};
  enum eng_act acts[] = {ENG_ACT_SIGMOID, ENG_ACT_IDENTITY};
  struct eng_net *net = make_net(2, sizes, acts, 1.5);
  struct eng_model *full = prep(net, K, mu, S, 0, NULL, 0);
  struct eng_model *one = prep(net, K, mu, S, 0, NULL, 1.0);
  struct eng_model *part = prep(net, K, mu, S, 0, NULL, 0.7);
  double alpha[3] = {-0.5, 0, 0.5}, E0[6], E1[6], E2[6];
  if (full == NULL || one == NULL || part == NULL) {
    eng_model_free(full);
    eng_model_free(one);
    eng_model_free(part);
    free_net(net);
    return;
  }
  int ran = eng_taylor(full, 2, alpha, 3, E0, NULL) == 0 &&
            eng_taylor(one, 2, alpha, 3, E1, NULL) == 0 &&
            eng_taylor(part, 2, alpha, 3, E2, NULL) == 0;
  tap_ok(ran && eng_model_rank(one) == K && memcmp(E0, E1, sizeof E0) == 0,
         "low rank share 1 equals full%s", ran ? "" : " (eng_taylor failed)");
  double tr = 0;
  for (int p = 0; p < K; p++)
    tr += S[p * K + p];
  double worst = 0, ratio = 0;
  for (int i = 0; i < 3; i++) {
    double x[K];
    memcpy(x, mu, sizeof x);
    x[2] = alpha[i];
    for (int o = 0; o < 2; o++) {
      /* ||H||_F by finite differences */
      double hf = 0, xx[K], y[2], f[4];
      for (int p = 0; p < K; p++)
        for (int q = 0; q < K; q++) {
          for (int s = 0; s < 4; s++) {
            memcpy(xx, x, sizeof xx);
            xx[p] += (s & 1) ? -1e-3 : 1e-3;
            xx[q] += (s & 2) ? -1e-3 : 1e-3;
            t_forward(net, xx, y);
            f[s] = y[o];
          }
          double H = (f[0] - f[1] - f[2] + f[3]) / 4e-6;
          hf += H * H;
        }
      double bound = 0.5 * sqrt(hf) * 0.3 * tr * 1.001 + 1e-9;
      double err = fabs(E2[i * 2 + o] - E0[i * 2 + o]);
      worst = fmax(worst, err);
      ratio = fmax(ratio, err / bound);
    }
  }
  tap_ok(ran && eng_model_rank(part) < K && ratio <= 1.0,
         "low rank share 0.7 (rank %d): error %.3g within the bound (ratio %.2f)",
         eng_model_rank(part), worst, ratio);
  eng_model_free(full);
  eng_model_free(one);
  eng_model_free(part);
  free_net(net);
}

/* sigmoid(10 x_1 + c) with x_1 of variance 1 near the bend: Eq. 4 gives
 * values above 1; the diagnosis must say so. */
static void test_diagnose(void)
{
  enum { K = 2, NS = 400 };
  double mu[K] = {0, 0}, S[K * K] = {1, 0, 0, 1}, xs[NS * K];
  for (int i = 0; i < NS * K; i++)
    xs[i] = urand() * sqrt(3.0);
  struct eng_layer ly = {.n_in = K, .n_out = 1, .act = ENG_ACT_SIGMOID,
                         .W = (double[]){0.5, 10.0}, .b = (double[]){-1.3}};
  struct eng_net net = {1, &ly};
  struct eng_model *m = prep(&net, K, mu, S, NS, xs, 0);
  double alpha[11], E[11], sec[11];
  struct eng_diag d = {0};
  if (m == NULL)
    return;
  eng_grid(-1, 1, 11, alpha);
  tap_ok(eng_taylor(m, 0, alpha, 11, E, sec) == 0 &&
             eng_taylor_diagnose(m, 0, alpha, 11, E, sec, &d) == 0,
         "taylor and diagnose run");
  tap_ok(d.out_of_range && !d.reliable && d.max_value > 1.0,
         "diagnose flags out of range (max %.3g, second_ratio %.3g, mc_gap %.3g)",
         d.max_value, d.second_ratio, d.mc_gap_ratio);
  tap_ok(d.mc_gap_ratio > 0.25 && d.second_ratio > 0.5, "and large ratios");
  eng_model_free(m);
  /* gentle: weights 0.1 -> reliable */
  ly.W[1] = 0.1;
  m = prep(&net, K, mu, S, NS, xs, 0);
  if (m == NULL)
    return;
  int ran = eng_taylor(m, 0, alpha, 11, E, sec) == 0 &&
            eng_taylor_diagnose(m, 0, alpha, 11, E, sec, &d) == 0;
  tap_ok(ran && !d.out_of_range && d.reliable && d.mc_gap_ratio >= 0,
         "gentle network is reliable (second_ratio %.3g, mc_gap %.3g)",
         d.second_ratio, d.mc_gap_ratio);
  tap_ok(d.mc_samples == NS && d.mc_gap_se > 0 && d.mc_gap_se < 0.25,
         "%d samples (<= %d): the check averages all of them (mc_samples %d, se %.3g x spread)",
         NS, ACED_MC_DIAG_SAMPLES, d.mc_samples, d.mc_gap_se);
  eng_model_free(m);
  m = prep(&net, K, mu, S, 0, NULL, 0);
  if (m == NULL)
    return;
  tap_ok(eng_taylor_diagnose(m, 0, alpha, 11, E, sec, &d) == 0 && d.mc_gap_ratio == -1.0,
         "no samples: diagnose runs, mc_gap_ratio -1");
  eng_model_free(m);
}

/* More samples than ACED_MC_DIAG_SAMPLES: the check's montecarlo side is
 * the plain eng_montecarlo of a model holding only the evenly strided
 * subsample (index floor(s n / 512)), gap and standard error alike, while
 * the spread it is divided by stays the whole sample's. */
static void test_diagnose_subsample(void)
{
  enum { K = 3, N1 = 5, NS = 1500, ND = ACED_MC_DIAG_SAMPLES, NA = 5 };
  double mu[K] = {0}, S[K * K] = {0}, *xs = malloc(sizeof(double) * NS * K),
         *sub = malloc(sizeof(double) * ND * K);
  struct eng_net *net = make_net(2, (int[]){K, N1, 2},
                                 (enum eng_act[]){ENG_ACT_TANH, ENG_ACT_SIGMOID}, 1.0);
  if (!xs || !sub || !net) {
    tap_ok(0, "subsample test: out of memory");
    free(xs);
    free(sub);
    return;
  }
  for (int i = 0; i < K; i++)
    S[i * K + i] = 1.0;
  for (int i = 0; i < NS * K; i++)
    xs[i] = urand() * 1.7 + (i % K) * 0.2;
  for (int s = 0; s < ND; s++)
    memcpy(sub + (size_t)s * K, xs + (size_t)((long long)s * NS / ND) * K, sizeof(double) * K);
  struct eng_model *m = prep(net, K, mu, S, NS, xs, 0);
  struct eng_model *ms = prep(net, K, mu, S, ND, sub, 0);
  double alpha[NA], E[NA * 2], sec[NA * 2], mc[NA * 2], se[NA * 2];
  struct eng_diag d[2];
  eng_grid(-1.5, 1.5, NA, alpha);
  if (m && ms && eng_taylor(m, 1, alpha, NA, E, sec) == 0 &&
      eng_taylor_diagnose(m, 1, alpha, NA, E, sec, d) == 0 &&
      eng_montecarlo(ms, 1, alpha, NA, mc, se) == 0) {
    const double *spread = eng_output_spread(m);
    double worst = 0;
    for (int o = 0; o < 2; o++) {
      double gap = -1, gse = 0;
      for (int a = 0; a < NA; a++)
        if (fabs(E[a * 2 + o] - mc[a * 2 + o]) > gap) {
          gap = fabs(E[a * 2 + o] - mc[a * 2 + o]);
          gse = se[a * 2 + o];
        }
      worst = fmax(worst, fabs(d[o].mc_gap_ratio * spread[o] - gap) / fmax(gap, 1e-300));
      worst = fmax(worst, fabs(d[o].mc_gap_se * spread[o] - gse) / gse);
    }
    tap_ok(d[0].mc_samples == ND && d[1].mc_samples == ND && worst < 1e-9,
           "%d samples: the check uses the strided subsample of %d (gap and se agree with "
           "plain montecarlo on it to %.2g relative)", NS, d[0].mc_samples, worst);
  } else {
    tap_ok(0, "subsample test: taylor, diagnose or montecarlo failed");
  }
  eng_model_free(m);
  eng_model_free(ms);
  free_net(net);
  free(xs);
  free(sub);
}

/* More factor columns than first-layer units (k = 8 > n1 + 1 = 4): taylor
 * uses the compressed first block U (U U^T = (W1 L_i)(W1 L_i)^T); check it
 * against the FD Hessian and against engine finite differences (which use
 * the plain factor columns). */
static void test_compressed(void)
{
  enum { K = 8 };
  double mu[K], S[K * K];
  make_data(K, mu, S, 0.1);
  int sizes[] = {K, 3, 4, 3};
  enum eng_act acts[] = {ENG_ACT_TANH, ENG_ACT_SIGMOID, ENG_ACT_SOFTMAX};
  struct eng_net *net = make_net(3, sizes, acts, 1.2);
  struct eng_model *m = prep(net, K, mu, S, 0, NULL, 0);
  if (m == NULL) {
    free_net(net);
    return;
  }
  double worst = 0, wfd = 0, maxsec = 0;
  for (int feat = 0; feat < K; feat++) {
    double alpha[3] = {-0.7, 0.05, 0.8}, E[9], sec[9], F[9];
    if (eng_taylor(m, feat, alpha, 3, E, sec) != 0 ||
        eng_finite_difference(m, feat, alpha, 3, 1e-3, F) != 0) {
      worst = INFINITY;
      continue;
    }
    for (int i = 0; i < 3; i++) {
      double x[K];
      memcpy(x, mu, sizeof x);
      x[feat] = alpha[i];
      for (int o = 0; o < 3; o++) {
        double ref = t_second(net, K, x, S, feat, o, 2e-4);
        worst = fmax(worst, fabs(sec[i * 3 + o] - ref));
        wfd = fmax(wfd, fabs(E[i * 3 + o] - F[i * 3 + o]));
        maxsec = fmax(maxsec, fabs(ref));
      }
    }
  }
  tap_ok(eng_model_rank(m) == K && worst < 5e-7 && wfd < 1e-7,
         "compressed first block (k %d > n1 + 1): vs FD Hessian %.2g, vs "
         "finite_difference %.2g (|term| up to %.2g)", K, worst, wfd, maxsec);
  eng_model_free(m);
  free_net(net);
}

/* Deeper networks and more alphas than one batch of the tangent pass
 * (taylor.c runs alphas in batches of 4 and the layers after the second
 * alpha by alpha): 9 alphas (4 + 4 + 1), five layers, against the
 * test-side FD Hessian.  Three shapes: the plain first block (k <= n1),
 * the compressed one (k > n1 + 1), and softmax as the first layer, whose
 * row sums of squares depend on alpha and are not shared. */
static void test_deep_batches(void)
{
  enum { K = 6, NA = 9 };
  double mu[K], S[K * K];
  make_data(K, mu, S, 0.15);
  static const struct {
    int sizes[6];
    enum eng_act acts[5];
    const char *what;
  } cases[] = {
      {{K, 7, 5, 6, 4, 3},
       {ENG_ACT_TANH, ENG_ACT_SIGMOID, ENG_ACT_ELU, ENG_ACT_SOFTPLUS, ENG_ACT_SOFTMAX},
       "plain first block"},
      {{K, 3, 5, 6, 4, 3},
       {ENG_ACT_SIGMOID, ENG_ACT_TANH, ENG_ACT_GELU, ENG_ACT_TANH, ENG_ACT_IDENTITY},
       "compressed first block"},
      {{K, 5, 4, 6, 4, 3},
       {ENG_ACT_SOFTMAX, ENG_ACT_TANH, ENG_ACT_SIGMOID, ENG_ACT_TANH, ENG_ACT_LOG_SOFTMAX},
       "softmax first layer"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct eng_net *net = make_net(5, cases[c].sizes, cases[c].acts, 1.3);
    struct eng_model *m = prep(net, K, mu, S, 0, NULL, 0);
    if (m == NULL) {
      free_net(net);
      continue;
    }
    double worst = 0, worst_f = 0, maxsec = 0, alpha[NA];
    int ran = 1;
    for (int i = 0; i < NA; i++)
      alpha[i] = -0.9 + 0.21 * i;
    for (int feat = 0; feat < K; feat += 2)
      ran &= vs_fd_hessian(net, m, K, mu, S, feat, alpha, NA, &worst, &worst_f, &maxsec);
    tap_ok(ran && worst < 5e-7 && worst_f < 1e-13 && maxsec > 1e-4,
           "taylor, five layers, %d alphas, %s: second term vs FD Hessian %.2g, "
           "f(mu_a) %.2g (|term| up to %.2g)",
           NA, cases[c].what, worst, worst_f, maxsec);
    eng_model_free(m);
    free_net(net);
  }
}

/* A first layer wider than one chunk of tangent columns (taylor.c's
 * TP_COLS, 1024): k = n1 = 1200 gives 1200 columns, taken as 1024 + 176.
 * The reference is eng_finite_difference (App. A.5: the eigenvectors of
 * S_i and forward passes, no tangents); dropping the second chunk moves
 * the second term by 7% here, seventy times the bound. */
static void test_wide_chunks(void)
{
  enum { K = 1200, N1 = 1200 };
  double *mu = malloc(K * sizeof *mu), *S = malloc((size_t)K * K * sizeof *S);
  double *u = malloc(K * sizeof *u), *v = malloc(K * sizeof *v);
  for (int i = 0; i < K; i++) {
    mu[i] = 0.3 * urand();
    u[i] = urand();
    v[i] = urand();
  }
  /* diagonal plus rank two: full rank, positive definite */
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++)
      S[(size_t)i * K + j] = (i == j ? 0.05 + 0.02 * fabs(u[i]) : 0) +
                             0.01 * u[i] * u[j] + 0.005 * v[i] * v[j];
  int sizes[] = {K, N1, 5, 3};
  enum eng_act acts[] = {ENG_ACT_TANH, ENG_ACT_SIGMOID, ENG_ACT_SOFTMAX};
  struct eng_net *net = make_net(3, sizes, acts, 0.1);
  struct eng_model *m = prep(net, K, mu, S, 0, NULL, 0);
  if (m != NULL) {
    double alpha[3] = {-0.6, 0.2, 0.7}, E[9], sec[9], F[9], worst = 0, maxsec = 0;
    int feat = 417, ok = eng_taylor(m, feat, alpha, 3, E, sec) == 0 &&
                         eng_finite_difference(m, feat, alpha, 3, 1e-3, F) == 0;
    for (int t = 0; ok && t < 9; t++) {
      worst = fmax(worst, fabs(E[t] - F[t]));
      maxsec = fmax(maxsec, fabs(sec[t]));
    }
    tap_ok(ok && eng_model_rank(m) == K && worst < 1e-3 * maxsec && maxsec > 1e-3,
           "taylor with %d tangent columns (two chunks) vs finite_difference: %.2g "
           "(|second term| up to %.2g)", K, worst, maxsec);
    eng_model_free(m);
  }
  free_net(net);
  free(mu);
  free(S);
  free(u);
  free(v);
}

/* A prepared model is shared read-only by worker threads: four threads
 * running taylor (compressed path), montecarlo and finite differences at
 * once must give what one thread gives. */
struct thr {
  const struct eng_model *m;
  int failed; /* calls that returned non-zero */
  double E[8 * 16 * 3], M[8 * 16 * 3];
};

static void *thr_run(void *p)
{
  struct thr *t = p;
  double alpha[16];
  eng_grid(-1, 1, 16, alpha);
  for (int f = 0; f < 8; f++) {
    t->failed += eng_taylor(t->m, f, alpha, 16, t->E + f * 48, NULL) != 0;
    t->failed += eng_montecarlo(t->m, f, alpha, 16, t->M + f * 48, NULL) != 0;
  }
  return NULL;
}

static void test_threads(void)
{
  enum { K = 8, NS = 100 };
  double mu[K], S[K * K], xs[NS * K];
  make_data(K, mu, S, 0.1);
  for (int i = 0; i < NS * K; i++)
    xs[i] = urand();
  int sizes[] = {K, 3, 5, 3};
  enum eng_act acts[] = {ENG_ACT_GELU, ENG_ACT_TANH, ENG_ACT_SOFTMAX};
  struct eng_net *net = make_net(3, sizes, acts, 1.2);
  struct eng_model *m = prep(net, K, mu, S, NS, xs, 0);
  if (m == NULL) {
    free_net(net);
    return;
  }
  static struct thr ref, th[4];
  ref.m = m;
  thr_run(&ref);
  pthread_t id[4];
  int started[4], same = ref.failed == 0;
  for (int i = 0; i < 4; i++) {
    th[i].m = m;
    started[i] = pthread_create(&id[i], NULL, thr_run, &th[i]) == 0;
    same &= started[i];
  }
  for (int i = 0; i < 4; i++) {
    if (!started[i])
      continue;
    same &= pthread_join(id[i], NULL) == 0 && th[i].failed == 0;
    same &= memcmp(th[i].E, ref.E, sizeof ref.E) == 0 &&
            memcmp(th[i].M, ref.M, sizeof ref.M) == 0;
  }
  tap_ok(same, "4 threads on one model give the single-thread results (and every call succeeds)");
  eng_model_free(m);
  free_net(net);
}

int main(void)
{
  eng_init();
  test_activations();
  test_taylor_vs_hessian();
  test_linear_relu();
  test_one_tanh();
  test_lowrank();
  test_compressed();
  test_deep_batches();
  test_wide_chunks();
  test_diagnose();
  test_diagnose_subsample();
  test_threads();
  return tap_done();
}
