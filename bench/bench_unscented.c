/*
 * bench_unscented.c -- how far the unscented transform and Eq. 4 (taylor)
 * are from Monte Carlo (Eq. 2, the unbiased estimate over the model's
 * samples), per model, on a grid over every feature's domain.
 *
 *   bench_unscented [--num N] FIXTURE.json ...
 *
 * For each fixture: every feature, N grid values (default 50), every
 * output.  Prints one markdown table row per fixture: the largest gap to
 * Monte Carlo in units of the output's spread (eng_output_spread: its
 * standard deviation over the samples), for taylor and for unscented; how
 * many values leave the output's range; the largest Monte Carlo standard
 * error in the same unit (the gap cannot be told from zero below about
 * twice it); and CPU time per (feature, grid value), all outputs.
 * CPU time is the process's (CLOCK_PROCESS_CPUTIME_ID): the machine may be
 * shared.  Exits non-zero if an unscented value leaves the output's range.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aced/engine.h"
#include "engine/test_load.h"

static double cpu_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
  int num = 50, bad = 0;
  eng_init();
  printf("| model | features x grid x outputs | taylor: max gap / spread | unscented: max gap / spread "
         "| taylor values out of range | unscented values out of range | max MC stderr / spread "
         "| CPU us per value: taylor / unscented / montecarlo |\n");
  printf("|---|---|---|---|---|---|---|---|\n");
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--num") == 0 && a + 1 < argc) {
      num = atoi(argv[++a]);
      if (num < 2)
        num = 2;
      continue;
    }
    struct tl_model t;
    memset(&t, 0, sizeof t);
    struct eng_model *m = NULL;
    if (tl_load(argv[a], &t) != 0 || t.n_samples < 2 || tl_prepare(&t, 1, 0.0, &m) != 0) {
      fprintf(stderr, "%s: cannot load, or no samples\n", argv[a]);
      return 2;
    }
    int no = t.n_out;
    size_t cells = (size_t)num * no;
    double *grid = malloc(sizeof(double) * (size_t)num);
    double *T = malloc(sizeof(double) * cells), *U = malloc(sizeof(double) * cells);
    double *M = malloc(sizeof(double) * cells), *S = malloc(sizeof(double) * cells);
    double lo, hi, gt = 0, gu = 0, se = 0, ct = 0, cu = 0, cm = 0;
    long out_t = 0, out_u = 0;
    eng_output_range(m, &lo, &hi);
    const double *spread = eng_output_spread(m);
    for (int f = 0; f < t.k; f++) {
      eng_grid(t.low[f], t.high[f], num, grid);
      double c0 = cpu_s();
      eng_taylor(m, f, grid, num, T, NULL);
      double c1 = cpu_s();
      eng_unscented(m, f, grid, num, U);
      double c2 = cpu_s();
      eng_montecarlo(m, f, grid, num, M, S);
      double c3 = cpu_s();
      ct += c1 - c0;
      cu += c2 - c1;
      cm += c3 - c2;
      for (size_t c = 0; c < cells; c++) {
        double sp = spread[c % no] > 1e-12 ? spread[c % no] : 1e-12;
        gt = fmax(gt, fabs(T[c] - M[c]) / sp);
        gu = fmax(gu, fabs(U[c] - M[c]) / sp);
        se = fmax(se, S[c] / sp);
        out_t += T[c] < lo - 1e-12 || T[c] > hi + 1e-12;
        out_u += U[c] < lo - 1e-12 || U[c] > hi + 1e-12;
      }
    }
    const char *name = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
    double per = 1e6 / ((double)t.k * num);
    printf("| %s (%d samples, rank %d) | %d x %d x %d | %.3g | %.3g | %ld | %ld | %.3g | %.1f / %.1f / "
           "%.1f |\n",
           name, t.n_samples, eng_model_rank(m), t.k, num, no, gt, gu, out_t, out_u, se, ct * per,
           cu * per, cm * per);
    bad |= out_u > 0;
    free(grid);
    free(T);
    free(U);
    free(M);
    free(S);
    eng_model_free(m);
    tl_free(&t);
  }
  return bad;
}
