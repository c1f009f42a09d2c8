/*
 * bench_rnn_step.c -- CPU time of the recurrent Monte Carlo per
 * sequence-step, on one thread, without the daemon (issue #12's speed
 * target; `make bench-recurrent` measures the same through the job API).
 *
 *   bench_rnn_step [--smoke] [--fused-only] [--seqs N] [--num N] [--steps A,B,...]
 *
 * An LSTM of issue #12's shape (input 8, hidden 64, T = 50, sigmoid head
 * 64 -> 1) with PyTorch's default initialisation (uniform in +-1/sqrt(64))
 * from a fixed seed, N stored sequences (default 2000) of standard normal
 * inputs.  For each intervened step t (default 19, 34, 49), eng_montecarlo
 * over num (default 100) alphas of feature 0 at step t; the figure is the
 * thread's CPU time divided by N * num * (T - t), the sequence-steps run.
 * Beside it the GEMM floor of one step: cblas_dgemm of 256 x 64 by
 * 64 x 256 (the hidden state times W_hh^T) per sequence.
 * Prints one line per figure; exits non-zero if an expectation is not
 * finite or leaves (0, 1).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>

#include "aced/engine.h"
#include "engine/internal.h"

static double cpu_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned long long rng = 0x9E3779B97F4A7C15ULL;
static double unif(void) /* [0, 1) */
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1.0p-53;
}
static double normal(void)
{
  double u = unif() + 0x1.0p-54, v = unif();
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
static double *uvec(size_t n, double a)
{
  double *p = malloc(n * sizeof *p);
  for (size_t i = 0; p && i < n; i++)
    p[i] = a * (2.0 * unif() - 1.0);
  return p;
}

int main(int argc, char **argv)
{
  int ns = 2000, num = 100, smoke = 0, fused_only = 0, steps[64], n_steps = 0;
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--smoke") == 0)
      smoke = 1;
    else if (strcmp(argv[a], "--fused-only") == 0) /* for perf */
      fused_only = 1;
    else if (strcmp(argv[a], "--seqs") == 0 && a + 1 < argc)
      ns = atoi(argv[++a]);
    else if (strcmp(argv[a], "--num") == 0 && a + 1 < argc)
      num = atoi(argv[++a]);
    else if (strcmp(argv[a], "--steps") == 0 && a + 1 < argc) {
      for (char *s = strtok(argv[++a], ","); s && n_steps < 64; s = strtok(NULL, ","))
        steps[n_steps++] = atoi(s);
    } else {
      fprintf(stderr, "usage: %s [--smoke] [--seqs N] [--num N] [--steps A,B,...]\n", argv[0]);
      return 2;
    }
  }
  if (smoke) {
    ns = 300;
    num = 4;
  }
  if (n_steps == 0) {
    steps[0] = 19;
    steps[1] = 34;
    steps[2] = 49;
    n_steps = 3;
  }
  if (ns < 2 || num < 1)
    return 2;
  eng_init();
  const int ni = 8, H = 64, T = 50, G = 4 * H, K = T * ni;
  const double w = 1.0 / sqrt((double)H);
  struct eng_rnn_layer L = {ni, uvec((size_t)G * ni, w), uvec((size_t)G * H, w), uvec(G, w),
                            uvec(G, w)};
  struct eng_layer hl = {H, 1, uvec(H, w), uvec(1, w), ENG_ACT_SIGMOID};
  struct eng_rnn net = {ENG_CELL_LSTM, ni, H, 1, T, &L, {1, &hl}, 0, 0};
  double *x = malloc((size_t)ns * K * sizeof *x);
  double *mean = calloc(K, sizeof *mean), *cov = calloc((size_t)K * K, sizeof *cov);
  for (size_t u = 0; u < (size_t)ns * K; u++)
    x[u] = normal();
  for (int c = 0; c < K; c++)
    cov[(size_t)c * K + c] = 1.0;
  struct eng_model_input in = {0};
  in.k = K;
  in.mean = mean;
  in.cov = cov;
  in.n_samples = ns;
  in.samples = x;
  in.rnn = &net;
  struct eng_model *m = NULL;
  char err[256];
  if (eng_model_prepare(&in, &m, err, sizeof err) != 0) {
    fprintf(stderr, "prepare: %s\n", err);
    return 1;
  }
  double *alpha = malloc((size_t)num * sizeof *alpha), *E = malloc((size_t)num * sizeof *E);
  double *se = malloc((size_t)num * sizeof *se);
  for (int a = 0; a < num; a++)
    alpha[a] = num > 1 ? -3.0 + 6.0 * a / (num - 1) : 0.0;
  double *E0 = malloc((size_t)num * sizeof *E0), *se0 = malloc((size_t)num * sizeof *se0);
  printf("LSTM input %d, hidden %d, T = %d, %d sequences, num %d, feature 0 at each step t; one thread\n",
         ni, H, T, ns, num);
  int bad = 0;
  double tot[2] = {0.0, 0.0}, tot_steps = 0.0, worst = 0.0;
  for (int q = 0; q < n_steps; q++) {
    int t = steps[q];
    if (t < 0 || t >= T)
      continue;
    double c0 = cpu_s();
    if (fused_only)
      memset(E0, 0, (size_t)num * sizeof *E0), memset(se0, 0, (size_t)num * sizeof *se0);
    else if (rnn_montecarlo_general(m, t * ni, alpha, num, E0, se0) != 0)
      bad = 1;
    double c1 = cpu_s();
    if (eng_montecarlo(m, t * ni, alpha, num, E, se) != 0)
      bad = 1;
    double c2 = cpu_s(), ss = (double)ns * num * (T - t);
    for (int a = 0; a < num; a++) {
      bad |= !(E[a] > 0.0 && E[a] < 1.0 && isfinite(se[a]));
      double d = fmax(fabs(E[a] - E0[a]), fabs(se[a] - se0[a]));
      worst = d > worst ? d : worst;
    }
    tot[0] += c1 - c0;
    tot[1] += c2 - c1;
    tot_steps += ss;
    printf("montecarlo t=%d (%d sequence-steps per alpha): general pass %.3f us, fused %.3f us per "
           "sequence-step\n", t, ns * (T - t), 1e6 * (c1 - c0) / ss, 1e6 * (c2 - c1) / ss);
  }
  printf("montecarlo all: general pass %.3f us, fused %.3f us per sequence-step (%.2fx); "
         "largest difference of E or se %.3g\n", 1e6 * tot[0] / tot_steps, 1e6 * tot[1] / tot_steps,
         tot[0] / tot[1], worst);
  bad |= !fused_only && !(worst <= 1e-13);
  free(E0);
  free(se0);
  /* the GEMM floor: the hidden state (256 x 64) times W_hh^T (64 x 256) */
  {
    int n = 256, reps = smoke ? 20 : 2000;
    double *A = uvec((size_t)n * H, 1.0), *C = calloc((size_t)n * G, sizeof *C);
    double c0 = cpu_s();
    for (int r = 0; r < reps; r++)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, G, H, 1.0, A, H, L.W_hh, H, 1.0,
                  C, G);
    double c1 = cpu_s();
    printf("gemm floor (256 x 64 x 256, W_hh^T): %.3f us per sequence-step, %.2f GFLOP/s\n",
           1e6 * (c1 - c0) / ((double)reps * n), 2.0 * n * G * H * reps / (c1 - c0) * 1e-9);
    free(A);
    free(C);
  }
  eng_model_free(m);
  free(x);
  free(mean);
  free(cov);
  free(alpha);
  free(E);
  free(se);
  free(L.W_ih);
  free(L.W_hh);
  free(L.b_ih);
  free(L.b_hh);
  free(hl.W);
  free(hl.b);
  return bad;
}
