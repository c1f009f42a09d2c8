/*
 * bench_graph.c -- aced's DAG learner (src/engine/learn.c) on one data
 * set, for bench/graph_bench.py: reads X (n rows of d numbers, text),
 * learns W, writes it (d rows of d numbers) and prints the learner's CPU
 * seconds (this thread) and objective evaluations.
 *
 *   bench_graph METHOD LAMBDA1 THRESHOLD X.txt W.txt
 *
 * METHOD is dagma or notears.  One BLAS thread (eng_init).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aced/engine.h"

int main(int argc, char **argv)
{
  if (argc != 6) {
    fprintf(stderr, "usage: bench_graph dagma|notears LAMBDA1 THRESHOLD X.txt W.txt\n");
    return 2;
  }
  eng_init();
  FILE *f = fopen(argv[4], "r");
  int n, d;
  if (f == NULL || fscanf(f, "%d %d", &n, &d) != 2 || n < 2 || d < 1 || d > 4096) {
    fprintf(stderr, "bench_graph: cannot read %s\n", argv[4]);
    return 1;
  }
  double *X = malloc(sizeof(double) * (size_t)n * d), *W = malloc(sizeof(double) * (size_t)d * d);
  if (!X || !W)
    return 1;
  for (long i = 0; i < (long)n * d; i++)
    if (fscanf(f, "%lf", &X[i]) != 1) {
      fprintf(stderr, "bench_graph: short file\n");
      return 1;
    }
  fclose(f);
  struct eng_learn_params p = {.method = strcmp(argv[1], "notears") == 0 ? ENG_LEARN_NOTEARS
                                                                         : ENG_LEARN_DAGMA,
                               .lambda1 = atof(argv[2]), .threshold = atof(argv[3])};
  struct eng_learn_info info;
  char ebuf[128];
  struct timespec t0, t1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  int rc = eng_learn_dag(X, n, d, 0, &p, W, &info, ebuf, sizeof ebuf);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  if (rc != 0) {
    fprintf(stderr, "bench_graph: %s\n", ebuf);
    return 1;
  }
  FILE *o = fopen(argv[5], "w");
  if (o == NULL)
    return 1;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++)
      fprintf(o, "%.17g%c", W[(size_t)i * d + j], j + 1 < d ? ' ' : '\n');
  fclose(o);
  printf("cpu_seconds %.6f evaluations %ld\n",
         (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, info.evaluations);
  free(X);
  free(W);
  return 0;
}
