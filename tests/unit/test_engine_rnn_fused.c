/*
 * test_engine_rnn_fused.c -- the fused Monte Carlo pass of one LSTM layer
 * (src/engine/recurrent_mc.c) against the general pass of recurrent.c
 * (itself checked against PyTorch float64 by test_engine_recurrent):
 * the same expectations and standard errors to 1e-13, at the first, a
 * middle and the last step, with a partial last chunk of sequences, a
 * head of two layers and two outputs, gates driven into saturation; and
 * that the fused pass declines the networks it does not cover.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aced/engine.h"
#include "engine/internal.h"
#include "tap.h"

static unsigned long long rng = 0x2545F4914F6CDD1DULL;
static double unif(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1.0p-53;
}
static double *uvec(size_t n, double a)
{
  double *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++)
    p[i] = a * (2.0 * unif() - 1.0);
  return p;
}

struct fix {
  struct eng_rnn_layer L[2];
  struct eng_layer hd[2];
  struct eng_rnn net;
  struct eng_model *m;
  double *x, *mean, *cov;
};

/* A random network; scale sets the weights' spread (large: saturated
 * gates). */
static int fix_make(struct fix *f, enum eng_cell cell, int layers, int ni, int H, int T, int ns,
                    double scale, int every, int feedback)
{
  memset(f, 0, sizeof *f);
  const int G = eng_cell_gates(cell) * H, K = T * ni, no = feedback ? ni : 2;
  for (int l = 0; l < layers; l++) {
    int n_in = l ? H : ni;
    f->L[l] = (struct eng_rnn_layer){n_in, uvec((size_t)G * n_in, scale), uvec((size_t)G * H, scale),
                                     uvec(G, scale), uvec(G, scale)};
  }
  f->hd[0] = (struct eng_layer){H, 5, uvec((size_t)5 * H, 0.5), uvec(5, 0.5), ENG_ACT_TANH};
  f->hd[1] = (struct eng_layer){5, no, uvec((size_t)no * 5, 0.5), uvec(no, 0.5), ENG_ACT_SIGMOID};
  f->net = (struct eng_rnn){cell, ni, H, layers, T, f->L, {2, f->hd}, every, feedback};
  f->x = uvec((size_t)ns * K, 2.0);
  f->mean = calloc(K, sizeof *f->mean);
  f->cov = calloc((size_t)K * K, sizeof *f->cov);
  for (int c = 0; c < K; c++)
    f->cov[(size_t)c * K + c] = 1.0;
  struct eng_model_input in = {0};
  in.k = K;
  in.mean = f->mean;
  in.cov = f->cov;
  in.n_samples = ns;
  in.samples = f->x;
  in.rnn = &f->net;
  char err[200];
  return eng_model_prepare(&in, &f->m, err, sizeof err);
}

static void fix_free(struct fix *f)
{
  eng_model_free(f->m);
  for (int l = 0; l < 2; l++) {
    free(f->L[l].W_ih);
    free(f->L[l].W_hh);
    free(f->L[l].b_ih);
    free(f->L[l].b_hh);
    free(f->hd[l].W);
    free(f->hd[l].b);
  }
  free(f->x);
  free(f->mean);
  free(f->cov);
}

int main(void)
{
  eng_init();
  const double alpha[5] = {-4.0, -0.5, 0.0, 1.25, 30.0};
  const int na = 5;
  double E0[10], E1[10], s0[10], s1[10];
  struct {
    int H, T, ns;
    double scale;
  } cases[] = {{16, 9, 300, 0.4}, {64, 6, 257, 0.125}, {8, 5, 40, 6.0}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    struct fix f;
    const int ni = 3, T = cases[c].T;
    if (!tap_ok(fix_make(&f, ENG_CELL_LSTM, 1, ni, cases[c].H, T, cases[c].ns, cases[c].scale, 0, 0) == 0,
                "case %zu: the LSTM model prepares", c))
      continue;
    int steps[3] = {0, T / 2, T - 1};
    for (int q = 0; q < 3; q++)
      for (int i = 0; i < ni; i += 2) {
        int feat = steps[q] * ni + i;
        int rf = rnn_montecarlo_fast(f.m, feat, alpha, na, E1, s1);
        int rg = rnn_montecarlo_general(f.m, feat, alpha, na, E0, s0);
        double w = 0.0;
        int fin = 1;
        for (int u = 0; u < na * 2; u++) {
          w = fmax(w, fmax(fabs(E1[u] - E0[u]), fabs(s1[u] - s0[u])));
          fin &= isfinite(E1[u]) && isfinite(s1[u]);
        }
        tap_ok(rf == 0 && rg == 0 && fin && w <= 1e-13,
               "case %zu (hidden %d, %d sequences, weights +-%g): x%d at t=%d, fused = general "
               "(E and se to %.3g)", c, cases[c].H, cases[c].ns, cases[c].scale, i, steps[q], w);
      }
    /* eng_montecarlo takes the fused pass */
    int r1 = eng_montecarlo(f.m, ni, alpha, na, E1, s1);
    int r0 = rnn_montecarlo_fast(f.m, ni, alpha, na, E0, s0);
    tap_ok(r0 == 0 && r1 == 0 && memcmp(E0, E1, sizeof E0) == 0 && memcmp(s0, s1, sizeof s0) == 0,
           "case %zu: eng_montecarlo takes the fused pass", c);
    fix_free(&f);
  }
  /* what the fused pass does not cover: the general pass runs */
  struct {
    enum eng_cell cell;
    int layers, every, feedback;
    const char *what;
  } no[] = {{ENG_CELL_GRU, 1, 0, 0, "a GRU"},
            {ENG_CELL_RNN_TANH, 1, 0, 0, "an Elman network"},
            {ENG_CELL_LSTM, 2, 0, 0, "two LSTM layers"},
            {ENG_CELL_LSTM, 1, 1, 0, "outputs at every step"},
            {ENG_CELL_LSTM, 1, 0, 1, "feedback"}};
  for (size_t c = 0; c < sizeof no / sizeof *no; c++) {
    struct fix f;
    if (!tap_ok(fix_make(&f, no[c].cell, no[c].layers, 3, 8, 4, 20, 0.3, no[c].every, no[c].feedback) == 0,
                "%s prepares", no[c].what))
      continue;
    tap_ok(rnn_montecarlo_fast(f.m, 4, alpha, na, E1, s1) == 1, "the fused pass declines %s",
           no[c].what);
    fix_free(&f);
  }
  return tap_done();
}
