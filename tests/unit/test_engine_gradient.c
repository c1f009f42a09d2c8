/*
 * test_engine_gradient.c -- eng_quadrature and eng_gradient on cases with
 * known answers: Gauss-Legendre nodes integrate polynomials of degree
 * 2n - 1 exactly (and not degree 2n), every rule's weights sum to 1, the
 * gradient of a linear network is its weight product, of a tanh layer
 * W2 diag(1 - tanh^2) W1, of a softmax output s_o (W_o - s^T W); and the
 * stop check stops it.  (tests/e2e/test_explanations.py checks the same
 * code against PyTorch.)
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aced/engine.h"
#include "tap.h"

static struct eng_model *model(int act1, int act2, double *W1, double *b1, double *W2,
                               double *b2)
{
  static struct eng_layer ly[2];
  ly[0] = (struct eng_layer){.n_in = 3, .n_out = 4, .W = W1, .b = b1, .act = act1};
  ly[1] = (struct eng_layer){.n_in = 4, .n_out = 2, .W = W2, .b = b2, .act = act2};
  struct eng_net net = {.n_layers = 2, .layers = ly};
  double mean[3] = {0, 0, 0}, cov[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  struct eng_model_input in = {.net = &net, .k = 3, .mean = mean, .cov = cov};
  struct eng_model *m = NULL;
  char ebuf[128];
  return eng_model_prepare(&in, &m, ebuf, sizeof ebuf) == 0 ? m : NULL;
}

static int stop_now(void *cls)
{
  (void)cls;
  return 1;
}

int main(void)
{
  eng_init();
  double t[64], w[64];
  int exact = 1, beyond = 1;
  for (int n = 1; n <= 40; n++) {
    eng_quadrature(ENG_RULE_GAUSS_LEGENDRE, n, t, w);
    for (int p = 0; p <= 2 * n; p++) {
      double s = 0;
      for (int j = 0; j < n; j++)
        s += w[j] * pow(t[j], p);
      double want = 1.0 / (p + 1);
      if (p < 2 * n)
        exact &= fabs(s - want) < 1e-14;
      else if (n <= 8) {
        /* degree 2n is not exact: the quadrature error of t^(2n) on [0,1]
         * is (n!)^4 / ((2n + 1) ((2n)!)^2) */
        double e = exp(4 * lgamma(n + 1.0) - 2 * lgamma(2 * n + 1.0)) / (2 * n + 1);
        beyond &= fabs((want - s) / e - 1) < 1e-6;
      }
    }
  }
  tap_ok(exact, "Gauss-Legendre with n nodes integrates t^p on [0,1] exactly for p < 2n, n <= 40");
  tap_ok(beyond, "and misses t^(2n) by exactly (n!)^4 / ((2n+1) ((2n)!)^2), n <= 8");
  static const enum eng_rule rules[] = {ENG_RULE_GAUSS_LEGENDRE, ENG_RULE_RIEMANN_LEFT,
                                        ENG_RULE_RIEMANN_RIGHT, ENG_RULE_RIEMANN_MIDDLE,
                                        ENG_RULE_TRAPEZOID};
  int sums = 1, order = 1;
  for (int r = 0; r < 5; r++) {
    tap_ok(eng_quadrature(rules[r], 17, t, w) == 0, "rule %d with 17 nodes", r);
    double s = 0;
    for (int j = 0; j < 17; j++) {
      s += w[j];
      order &= j == 0 || t[j] > t[j - 1];
      order &= t[j] >= 0 && t[j] <= 1;
    }
    sums &= fabs(s - 1) < 1e-14;
  }
  tap_ok(sums && order, "every rule: weights sum to 1, nodes ascending in [0, 1]");
  eng_quadrature(ENG_RULE_RIEMANN_LEFT, 4, t, w);
  tap_ok(t[0] == 0 && t[3] == 0.75, "riemann_left starts at 0 and stops short of 1");
  eng_quadrature(ENG_RULE_TRAPEZOID, 5, t, w);
  tap_ok(t[4] == 1 && w[0] == 0.125 && w[1] == 0.25, "trapezoid: ends at 1, half weights at the ends");
  tap_ok(eng_quadrature(ENG_RULE_TRAPEZOID, 1, t, w) == -1 &&
             eng_quadrature(ENG_RULE_GAUSS_LEGENDRE, 0, t, w) == -1,
         "a one-node trapezoid and zero nodes are refused");

  double W1[12], b1[4], W2[8], b2[2] = {0.1, -0.2};
  for (int i = 0; i < 12; i++)
    W1[i] = sin(1.0 + i);
  for (int i = 0; i < 4; i++)
    b1[i] = 0.1 * i - 0.2;
  for (int i = 0; i < 8; i++)
    W2[i] = cos(2.0 + i);
  double x[6] = {0.3, -0.7, 1.1, -0.2, 0.4, 0.05}, G[6], y[4];

  struct eng_model *lin = model(ENG_ACT_IDENTITY, ENG_ACT_IDENTITY, W1, b1, W2, b2);
  int ok = lin && eng_gradient(lin, x, 2, 1, G, y) == 0;
  for (int r = 0; r < 2 && ok; r++)
    for (int i = 0; i < 3; i++) {
      double want = 0;
      for (int j = 0; j < 4; j++)
        want += W2[4 + j] * W1[j * 3 + i];
      ok &= fabs(G[r * 3 + i] - want) < 1e-15;
    }
  tap_ok(ok, "linear network: the gradient is W2 W1 at every row");

  struct eng_model *th = model(ENG_ACT_TANH, ENG_ACT_IDENTITY, W1, b1, W2, b2);
  ok = th && eng_gradient(th, x, 2, 0, G, y) == 0;
  for (int r = 0; r < 2 && ok; r++)
    for (int i = 0; i < 3; i++) {
      double want = 0;
      for (int j = 0; j < 4; j++) {
        double z = b1[j];
        for (int q = 0; q < 3; q++)
          z += W1[j * 3 + q] * x[r * 3 + q];
        want += W2[j] * (1 - tanh(z) * tanh(z)) * W1[j * 3 + i];
      }
      ok &= fabs(G[r * 3 + i] - want) < 1e-14;
    }
  tap_ok(ok, "tanh layer: W2 diag(1 - tanh(z)^2) W1");

  struct eng_model *sm = model(ENG_ACT_IDENTITY, ENG_ACT_SOFTMAX, W1, b1, W2, b2);
  ok = sm && eng_gradient(sm, x, 2, 1, G, y) == 0;
  for (int r = 0; r < 2 && ok; r++) {
    double h[4], z[2];
    for (int j = 0; j < 4; j++) {
      h[j] = b1[j];
      for (int q = 0; q < 3; q++)
        h[j] += W1[j * 3 + q] * x[r * 3 + q];
    }
    for (int o = 0; o < 2; o++) {
      z[o] = b2[o];
      for (int j = 0; j < 4; j++)
        z[o] += W2[o * 4 + j] * h[j];
    }
    double s1 = 1 / (1 + exp(z[0] - z[1]));
    /* d s1 / d z = s1 (e_1 - s): two outputs, so s1 (1 - s1) (dz1 - dz0) */
    for (int i = 0; i < 3; i++) {
      double d = 0;
      for (int j = 0; j < 4; j++)
        d += (W2[4 + j] - W2[j]) * W1[j * 3 + i];
      ok &= fabs(G[r * 3 + i] - s1 * (1 - s1) * d) < 1e-14;
    }
    ok &= fabs(y[r * 2 + 1] - s1) < 1e-14;
  }
  tap_ok(ok, "softmax output: s1 (1 - s1) (W2[1] - W2[0]) W1, and the outputs");
  /* log_softmax (issue 10): d log s1 / d z = e_1 - s, so (1 - s1) (W2[1] - W2[0]) W1 */
  struct eng_model *lsm = model(ENG_ACT_IDENTITY, ENG_ACT_LOG_SOFTMAX, W1, b1, W2, b2);
  ok = lsm && eng_gradient(lsm, x, 2, 1, G, y) == 0;
  for (int r = 0; r < 2 && ok; r++) {
    double h[4], z[2];
    for (int j = 0; j < 4; j++) {
      h[j] = b1[j];
      for (int q = 0; q < 3; q++)
        h[j] += W1[j * 3 + q] * x[r * 3 + q];
    }
    for (int o = 0; o < 2; o++) {
      z[o] = b2[o];
      for (int j = 0; j < 4; j++)
        z[o] += W2[o * 4 + j] * h[j];
    }
    double s1 = 1 / (1 + exp(z[0] - z[1]));
    for (int i = 0; i < 3; i++) {
      double d = 0;
      for (int j = 0; j < 4; j++)
        d += (W2[4 + j] - W2[j]) * W1[j * 3 + i];
      ok &= fabs(G[r * 3 + i] - (1 - s1) * d) < 1e-14;
    }
    ok &= fabs(y[r * 2 + 1] - log(s1)) < 1e-14;
  }
  tap_ok(ok, "log_softmax output: (1 - s1) (W2[1] - W2[0]) W1, and the outputs log s1");
  eng_model_free(lsm);
  tap_ok(eng_gradient(sm, x, 2, 2, G, y) == -1, "an output out of range is refused");

  /* integrated gradients (first-layer shortcut) against the plain
   * gradients summed along the path, over more (row, step) pairs than one
   * chunk holds */
  enum { ROWS = 7, STEPS = 50 };
  double X[ROWS * 3], B[3] = {0.2, -0.1, 0.3}, A[ROWS * 3], T[STEPS], Wq[STEPS];
  for (int i = 0; i < ROWS * 3; i++)
    X[i] = sin(0.7 * i + 0.3);
  eng_quadrature(ENG_RULE_GAUSS_LEGENDRE, STEPS, T, Wq);
  struct eng_model *models[2] = {th, sm};
  for (int mi = 0; mi < 2; mi++) {
    int o = mi;
    ok = eng_integrated_gradients(models[mi], X, ROWS, B, T, Wq, STEPS, o, A) == 0;
    double worst = 0;
    for (int r = 0; r < ROWS && ok; r++) {
      double P[STEPS * 3], GP[STEPS * 3];
      for (int j = 0; j < STEPS; j++)
        for (int i = 0; i < 3; i++)
          P[j * 3 + i] = B[i] + T[j] * (X[r * 3 + i] - B[i]);
      ok &= eng_gradient(models[mi], P, STEPS, o, GP, NULL) == 0;
      for (int i = 0; i < 3; i++) {
        double acc = 0;
        for (int j = 0; j < STEPS; j++)
          acc += Wq[j] * GP[j * 3 + i];
        double want = (X[r * 3 + i] - B[i]) * acc;
        worst = fmax(worst, fabs(A[r * 3 + i] - want));
      }
    }
    tap_ok(ok && worst < 1e-14, "%s: integrated gradients = sum of path gradients (%.1e)",
           mi ? "softmax" : "tanh", worst);
  }
  eng_set_stop(stop_now, NULL);
  tap_ok(eng_gradient(sm, x, 2, 0, G, y) == ENG_STOPPED, "the stop check stops it");
  eng_set_stop(NULL, NULL);
  eng_model_free(lin);
  eng_model_free(th);
  eng_model_free(sm);
  return tap_done();
}
