/*
 * test_engine_learn.c -- the DAG learner (src/engine/learn.c) and the
 * structural equations (src/engine/scm.c) on data whose answer is known.
 *
 * Identifiable case: a linear SEM with equal noise variances over a random
 * DAG (Erdos-Renyi, d = 10, 15 edges, weights +-[0.5, 2]), n = 2000; both
 * learners must recover every true edge with its direction (structural
 * Hamming distance 0).  Unequal variances after min-max scaling are not
 * identifiable; there the test only checks that varsortability is
 * computed (1 on a chain whose variances grow, 0 reversed).  The SCM:
 * least squares recovers the weights, re-generation at the observed value
 * gives each sample back, and the total effect on a chain is the product
 * of its weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/engine.h"
#include "tap.h"

static unsigned long long rng = 88172645463325252ULL;
static double unif(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return ((rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
  return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif());
}

/* a random DAG over d nodes with e edges (upper triangular in a random
 * order) and its weights; X (n x d) sampled with unit noise */
static void simulate(int d, int e, int n, double *B, double *X)
{
  int *perm = malloc(sizeof(int) * d);
  for (int i = 0; i < d; i++)
    perm[i] = i;
  for (int i = d - 1; i > 0; i--) {
    int j = (int)(unif() * (i + 1));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  memset(B, 0, sizeof(double) * d * d);
  for (int k = 0; k < e;) {
    int a = (int)(unif() * d), b = (int)(unif() * d);
    if (a >= b)
      continue;
    int i = perm[a], j = perm[b];
    if (B[i * d + j] != 0)
      continue;
    B[i * d + j] = (unif() < 0.5 ? -1 : 1) * (0.5 + 1.5 * unif());
    k++;
  }
  for (int r = 0; r < n; r++) {
    double *x = X + (size_t)r * d;
    for (int a = 0; a < d; a++) {
      int j = perm[a];
      double v = gauss();
      for (int i = 0; i < d; i++)
        v += B[i * d + j] * x[i];
      x[j] = v;
    }
  }
  free(perm);
}

static int shd(int d, const double *T, const double *W)
{
  int s = 0;
  for (int i = 0; i < d; i++)
    for (int j = i + 1; j < d; j++) {
      int t = (T[i * d + j] != 0) - (T[j * d + i] != 0), w = (W[i * d + j] != 0) - (W[j * d + i] != 0);
      int tany = T[i * d + j] != 0 || T[j * d + i] != 0, wany = W[i * d + j] != 0 || W[j * d + i] != 0;
      if (tany != wany || (tany && t != w))
        s++;
    }
  return s;
}

int main(void)
{
  enum { D = 10, E = 15, N = 2000 };
  double *B = malloc(sizeof(double) * D * D), *X = malloc(sizeof(double) * N * D);
  double *W = malloc(sizeof(double) * D * D);
  simulate(D, E, N, B, X);
  struct eng_learn_info info;
  char ebuf[128];
  const char *names[] = {"dagma", "notears"};
  for (int m = 0; m < 2; m++) {
    struct eng_learn_params p = {.method = m, .lambda1 = m ? 0.1 : 0.02, .threshold = 0.3};
    int rc = eng_learn_dag(X, N, D, 0, &p, W, &info, ebuf, sizeof ebuf);
    int s = shd(D, B, W);
    /* notears is the less accurate of the two (the issue's own runs of
     * the reference: SHD 2 to 8 at d = 20): one edge of slack */
    tap_ok(rc == 0 && s <= m, "%s recovers an equal-variance linear SEM (d=10, 15 edges): SHD %d <= %d "
                              "(%ld evaluations)", names[m], s, m, info.evaluations);
    double vs = eng_varsortability(X, N, D, W);
    tap_ok(vs >= 0 && vs <= 1, "varsortability %.3f in [0, 1]", vs);
  }
  struct eng_learn_params p1 = {.method = ENG_LEARN_DAGMA, .lambda1 = 0.02, .threshold = 0.3,
                                .max_parents = 1};
  eng_learn_dag(X, N, D, 0, &p1, W, &info, ebuf, sizeof ebuf);
  int maxp = 0;
  for (int j = 0; j < D; j++) {
    int c = 0;
    for (int i = 0; i < D; i++)
      c += W[i * D + j] != 0;
    if (c > maxp)
      maxp = c;
  }
  tap_ok(maxp <= 1, "max_parents 1 keeps at most one parent per node (%d pruned)", info.pruned);

  /* a chain 0 -> 1 -> 2 with growing variance: varsortability 1 */
  enum { K = 3, M = 3000 };
  double *C = malloc(sizeof(double) * M * K), Wc[K * K] = {0};
  for (int r = 0; r < M; r++) {
    double a = gauss(), b = 1.5 * a + gauss(), c = -2.0 * b + gauss();
    C[r * K] = a;
    C[r * K + 1] = b;
    C[r * K + 2] = c;
  }
  Wc[0 * K + 1] = 1;
  Wc[1 * K + 2] = 1;
  tap_close(eng_varsortability(C, M, K, Wc), 1.0, 1e-12, "varsortability of a chain whose variances grow");
  double Wr[K * K] = {0};
  Wr[1 * K + 0] = 1;
  Wr[2 * K + 1] = 1;
  tap_close(eng_varsortability(C, M, K, Wr), 0.0, 1e-12, "and of the reversed chain");

  /* structural equations on the chain */
  int edges[2][2] = {{0, 1}, {1, 2}}, order[K] = {0, 1, 2};
  struct eng_scm *s = NULL;
  tap_ok(eng_scm_fit(K, (const int (*)[2])edges, 2, order, M, C, NULL, NULL, &s, ebuf, sizeof ebuf) == 0,
         "scm fits the chain");
  tap_close(eng_scm_weight(s, 0), 1.5, 0.05, "w(0->1) near 1.5");
  tap_close(eng_scm_weight(s, 1), -2.0, 0.05, "w(1->2) near -2");
  double t[K];
  eng_scm_total(s, 0, t);
  tap_close(t[2], eng_scm_weight(s, 0) * eng_scm_weight(s, 1), 1e-12, "total effect 0 -> 2 is the product of the weights");
  double *R = malloc(sizeof(double) * M * K), worst = 0;
  eng_scm_do(s, 0, 0.0, NULL, 0, R);
  for (int r = 0; r < M; r++) {
    double back = R[r * K + 2] + C[r * K] * t[2];
    worst = fmax(worst, fabs(back - C[r * K + 2]));
  }
  tap_ok(worst < 1e-9, "re-generation is affine in a with slope t, residuals kept (max err %.2g)", worst);
  eng_scm_do(s, 1, 0.0, C, 5, R);
  tap_ok(R[0] == C[0] && R[1] == 0.0, "do(x1) leaves the non-descendant x0 as observed");
  eng_scm_free(s);
  free(R);
  free(C);
  free(B);
  free(X);
  free(W);
  return tap_done();
}
