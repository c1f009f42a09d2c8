/*
 * bench_onnx.c -- what an ONNX registration costs against the JSON
 * registration of the same weights, measured in one fresh process per
 * run (bench/onnx_bench.py drives it; `make bench-onnx`).
 *
 *   bench_onnx BODY.json network   read the body text, json_loadb it and,
 *                                   for an ONNX body, import it into the
 *                                   JSON network (model_onnx_expand): what
 *                                   the two registrations do differently
 *   bench_onnx BODY.json full      the whole of model_parse (import,
 *                                   checks, covariance, digest), as
 *                                   POST /v1/models runs it on a worker
 *
 * Prints one JSON line: CPU seconds (user + system, getrusage) and wall
 * seconds of the measured part, the process's peak RSS and its RSS before
 * the body was read (so the part's own peak is the difference), the
 * digest (full) and the parameter count.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>
#include <jansson.h>

#include "aced/model.h"
#include "model/internal.h"

static double cpu_now(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec * 1e-6;
}

static double wall_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static long rss_kb(const char *field)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, field, n) == 0)
      v = atol(line + n);
  if (f != NULL)
    fclose(f);
  return v;
}

int main(int argc, char **argv)
{
  FILE *f;
  char *text, source[ACED_SOURCE_MAX + 1] = "";
  long n, before;
  double c0, w0, cpu, wall;
  json_t *body, *expanded = NULL;
  struct aced_error err;
  struct aced_model *m = NULL;
  int full;

  if (argc != 3 || (strcmp(argv[2], "network") != 0 && strcmp(argv[2], "full") != 0)) {
    fprintf(stderr, "usage: bench_onnx BODY.json network|full\n");
    return 2;
  }
  full = strcmp(argv[2], "full") == 0;
  openblas_set_num_threads(1); /* as each worker of the daemon */
  before = rss_kb("VmRSS:");
  if ((f = fopen(argv[1], "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
    perror(argv[1]);
    return 1;
  }
  rewind(f);
  if ((text = malloc((size_t)n)) == NULL || fread(text, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "%s: cannot read\n", argv[1]);
    return 1;
  }
  fclose(f);
  memset(&err, 0, sizeof err);
  c0 = cpu_now();
  w0 = wall_now();
  /* the HTTP layer parses the body (src/http/dispatch.c: the same flags) */
  body = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
  if (body == NULL) {
    fprintf(stderr, "%s: not JSON\n", argv[1]);
    return 1;
  }
  if (full) {
    if (model_parse(body, 1, &m, &err) != ACED_OK) {
      fprintf(stderr, "%s: %s: %s\n", argv[1], err.field, err.message);
      return 1;
    }
  } else if (model_onnx_body(body) &&
             model_onnx_expand(body, &expanded, source, sizeof source, &err) != ACED_OK) {
    fprintf(stderr, "%s: %s: %s\n", argv[1], err.field, err.message);
    return 1;
  }
  cpu = cpu_now() - c0;
  wall = wall_now() - w0;
  printf("{\"body_bytes\":%ld,\"cpu_s\":%.6f,\"wall_s\":%.6f,\"peak_rss_kb\":%ld,"
         "\"start_rss_kb\":%ld,\"digest\":\"%s\",\"n_params\":%ld}\n",
         n, cpu, wall, rss_kb("VmHWM:"), before, m != NULL ? m->digest : "",
         m != NULL ? m->n_params : 0L);
  model_free(m);
  json_decref(expanded);
  json_decref(body);
  free(text);
  return 0;
}
