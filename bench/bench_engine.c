/*
 * bench_engine.c -- speed and accuracy of the numerical engine alone.
 *
 * DESIGN.  Builds an MNIST-scale workload from a fixed seed (no data files):
 * image-like samples in [0,1] (a few smooth blobs with decaying variance,
 * plus pixel noise, squashed by a sigmoid, with a constant border frame so
 * the covariance is only semidefinite), a 784-512-256-128-64-10 sigmoid
 * network with a softmax output whose rows are scaled so that every unit's
 * pre-activation has a spread of order one over the samples (no unit sits
 * saturated), and measures through include/aced/engine.h only:
 *
 *   - eng_model_prepare: time, eng_model_bytes, RSS growth, factor rank;
 *   - eng_taylor: time per (feature, alpha), all outputs, on one core;
 *   - the GEMM floor: the DGEMMs one evaluation needs, timed on this BLAS
 *     at their exact shapes, so that taylor time / floor time is the
 *     distance from what the scheme could ever reach;
 *   - low-rank mode (lowrank_share 0.99, 0.95, 0.9): speed and max error;
 *   - eng_finite_difference (paper App. A.5): speed and error vs taylor;
 *   - the shared fixture: taylor and montecarlo against its reference;
 *   - integrated gradients (64 Gauss-Legendre steps) for 1000 rows.
 *
 * Results go to stdout (human) and to --json FILE (for bench/run).  The
 * same network and covariance go to --dump FILE for bench/peer_torch.py,
 * and --body FILE writes a registration body for the HTTP benchmark (any
 * --arch).  --smoke runs a tiny version in well under a second and exits
 * non-zero when a sanity check fails.
 *
 * The workload, the utilities and the peers' files are bench/workload.c.
 * This program is benchmark code: it is never linked into the daemon.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "aced/engine.h"
#include "workload.h"

#define N_SHARES 3
static const double k_shares[N_SHARES] = {0.99, 0.95, 0.9};

/* ---- options ---- */
struct opts {
  int smoke;
  int dims[MAX_LAYERS + 1];
  int n_dims;
  int n_samples;
  int n_feat;      /* features timed for taylor */
  int n_alpha;     /* alphas per feature */
  int n_feat_fd;   /* features timed for finite_difference */
  int n_alpha_fd;
  double gemm_secs; /* minimum time per GEMM measurement */
  uint64_t seed;
  const char *json_path;
  const char *dump_path;
  const char *body_path;
  const char *body_name;
  const char *fixture_path;
  int body_only;   /* --body without the benchmark */
  int body_moments; /* --moments: the body carries mean and covariance */
  int info_only;
  int taylor_only; /* --taylor-only: prepare, time taylor, write the JSON, stop */
};

/* ---- the GEMM floor ----
 * Seconds per call of C = A B, A m x kk, B kk x n, row-major, no
 * transposes (the engine's W T), on this BLAS: the best of three runs of
 * at least `secs` each, in wall time and in this thread's CPU time (the
 * machine is shared: CPU time is what an idle core would show as wall
 * time).  Shapes are memoised. */
struct gemm_memo {
  int m, n, kk;
  double t, tc;
};
static struct gemm_memo g_memo[64];
static int g_n_memo;

static const struct gemm_memo *gemm_time(int m, int n, int kk, double secs)
{
  for (int i = 0; i < g_n_memo; i++)
    if (g_memo[i].m == m && g_memo[i].n == n && g_memo[i].kk == kk)
      return &g_memo[i];
  double *A = xcalloc((size_t)m * kk, sizeof *A), *B = xcalloc((size_t)kk * n, sizeof *B);
  double *C = xcalloc((size_t)m * n, sizeof *C);
  struct rng r = {42};
  for (size_t i = 0; i < (size_t)m * kk; i++)
    A[i] = rng_unif(&r) - 0.5;
  for (size_t i = 0; i < (size_t)kk * n; i++)
    B[i] = rng_unif(&r) - 0.5;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, kk, 1.0, A, kk, B, n, 0.0, C,
              n);
  double best = INFINITY, best_c = INFINITY;
  for (int run = 0; run < 3; run++) {
    int reps = 0;
    double t0 = wall_now(), c0 = cpu_now(), t1;
    do {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, kk, 1.0, A, kk, B, n, 0.0,
                  C, n);
      reps++;
      t1 = wall_now();
    } while (t1 - t0 < secs || reps < 3);
    double c1 = cpu_now();
    if ((t1 - t0) / reps < best)
      best = (t1 - t0) / reps;
    if ((c1 - c0) / reps < best_c)
      best_c = (c1 - c0) / reps;
  }
  free(A);
  free(B);
  free(C);
  static struct gemm_memo spare;
  struct gemm_memo *g = g_n_memo < 64 ? &g_memo[g_n_memo++] : &spare;
  *g = (struct gemm_memo){m, n, kk, best, best_c};
  return g;
}

/* The per-(feature, alpha) GEMMs of the forward-mode scheme with a tangent
 * block of c columns: Tz = W_l T for every layer after the first (the first
 * layer's block W1 L_i does not depend on alpha).  Fills their flops and
 * measured wall and CPU time. */
static void gemm_floor(const struct bnet *b, int c, double secs, double *flops, double *wall,
                       double *cpu)
{
  *flops = *wall = *cpu = 0;
  for (int l = 1; l < b->n_layers; l++) {
    int ni = b->dims[l], no = b->dims[l + 1];
    const struct gemm_memo *g = gemm_time(no, c, ni, secs);
    *flops += 2.0 * no * ni * c;
    *wall += g->t;
    *cpu += g->tc;
  }
}

/* The floor's GEMMs as one evaluation runs them, each shape once, on
 * matrices of their own: time_taylor runs a set after every eng_taylor
 * call, as many times as the call had alphas, so that taylor and its floor
 * are timed over the same stretch of a shared machine (a neighbour that
 * slows the cores, or a slower moment of the host, then weighs on both).
 * gemm_floor's figure, the best of three runs per shape taken apart from
 * taylor, stays beside it as the optimistic bound. */
struct floor_set {
  int n;
  int m[MAX_LAYERS], nn[MAX_LAYERS], kk[MAX_LAYERS];
  double *A[MAX_LAYERS], *B[MAX_LAYERS], *C[MAX_LAYERS];
};

static void floor_set_init(struct floor_set *fs, const struct bnet *b, int c)
{
  struct rng r = {43};
  fs->n = 0;
  for (int l = 1; l < b->n_layers; l++) {
    int i = fs->n++, mm = b->dims[l + 1], kk = b->dims[l];
    fs->m[i] = mm, fs->nn[i] = c, fs->kk[i] = kk;
    fs->A[i] = xcalloc((size_t)mm * kk, sizeof(double));
    fs->B[i] = xcalloc((size_t)kk * c, sizeof(double));
    fs->C[i] = xcalloc((size_t)mm * c, sizeof(double));
    for (size_t t = 0; t < (size_t)mm * kk; t++)
      fs->A[i][t] = rng_unif(&r) - 0.5;
    for (size_t t = 0; t < (size_t)kk * c; t++)
      fs->B[i][t] = rng_unif(&r) - 0.5;
  }
}

static void floor_set_run(const struct floor_set *fs)
{
  for (int i = 0; i < fs->n; i++)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, fs->m[i], fs->nn[i], fs->kk[i], 1.0,
                fs->A[i], fs->kk[i], fs->B[i], fs->nn[i], 0.0, fs->C[i], fs->nn[i]);
}

static void floor_set_free(struct floor_set *fs)
{
  for (int i = 0; i < fs->n; i++) {
    free(fs->A[i]);
    free(fs->B[i]);
    free(fs->C[i]);
  }
  fs->n = 0;
}

/* ---- fixture check (no regression in the shared fixture's accuracy) ---- */
static int name_index(const json_t *arr, const char *key, const char *name)
{
  for (size_t i = 0; i < json_array_size(arr); i++) {
    const json_t *e = json_array_get(arr, i);
    const json_t *s = key ? json_object_get(e, key) : e;
    if (json_is_string(s) && strcmp(json_string_value(s), name) == 0)
      return (int)i;
  }
  return -1;
}

static double *json_doubles(const json_t *a, size_t want, size_t *got)
{
  size_t n = json_array_size(a);
  double *v = xcalloc(n, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = json_number_value(json_array_get(a, i));
  if (got)
    *got = n;
  (void)want;
  return v;
}

/* Max abs error of taylor and montecarlo against the fixture's reference.
 * Returns 0, or -1 when the fixture cannot be read or the engine fails. */
static int fixture_check(const char *path, double *err_taylor, double *err_mc)
{
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (root == NULL) {
    fprintf(stderr, "bench_engine: %s: %s\n", path, je.text);
    return -1;
  }
  int rc = -1;
  const json_t *feats = json_object_get(root, "features");
  const json_t *outs = json_object_get(root, "outputs");
  const json_t *layers = json_object_get(json_object_get(root, "network"), "layers");
  const json_t *data = json_object_get(root, "data");
  int k = (int)json_array_size(feats), nl = (int)json_array_size(layers);
  struct eng_layer L[MAX_LAYERS];
  memset(L, 0, sizeof L);
  struct eng_net net = {nl, L};
  struct eng_model *m = NULL;
  double *mean = NULL, *cov = NULL, *samples = NULL;
  if (nl < 1 || nl > MAX_LAYERS)
    goto out;
  for (int l = 0; l < nl; l++) {
    const json_t *jl = json_array_get(layers, (size_t)l);
    const json_t *w = json_object_get(jl, "weights");
    L[l].n_out = (int)json_array_size(w);
    L[l].n_in = (int)json_array_size(json_array_get(w, 0));
    L[l].W = xcalloc((size_t)L[l].n_out * L[l].n_in, sizeof(double));
    for (int j = 0; j < L[l].n_out; j++)
      for (int p = 0; p < L[l].n_in; p++)
        L[l].W[(size_t)j * L[l].n_in + p] =
            json_number_value(json_array_get(json_array_get(w, (size_t)j), (size_t)p));
    L[l].b = json_doubles(json_object_get(jl, "bias"), (size_t)L[l].n_out, NULL);
    if (eng_act_from_name(json_string_value(json_object_get(jl, "activation")), &L[l].act) !=
        0)
      goto out;
  }
  mean = json_doubles(json_object_get(data, "mean"), (size_t)k, NULL);
  cov = xcalloc((size_t)k * k, sizeof *cov);
  const json_t *jc = json_object_get(data, "covariance");
  for (int p = 0; p < k; p++)
    for (int q = 0; q < k; q++)
      cov[(size_t)p * k + q] = json_number_value(json_array_get(json_array_get(jc, (size_t)p), (size_t)q));
  const json_t *js = json_object_get(data, "samples");
  int ns = (int)json_array_size(js);
  samples = xcalloc((size_t)ns * k, sizeof *samples);
  for (int i = 0; i < ns; i++)
    for (int p = 0; p < k; p++)
      samples[(size_t)i * k + p] =
          json_number_value(json_array_get(json_array_get(js, (size_t)i), (size_t)p));
  struct eng_model_input in = {.net = &net, .k = k, .mean = mean, .cov = cov, .n_samples = ns,
                               .samples = samples, .lowrank_share = 0.0};
  char eb[256] = "";
  if (eng_model_prepare(&in, &m, eb, sizeof eb) != 0) {
    fprintf(stderr, "bench_engine: fixture prepare: %s\n", eb);
    goto out;
  }
  int n_out = eng_model_outputs(m);
  *err_taylor = *err_mc = 0;
  static const char *kinds[2] = {"taylor", "montecarlo"};
  for (int kind = 0; kind < 2; kind++) {
    const json_t *cases = json_object_get(json_object_get(root, "reference"), kinds[kind]);
    for (size_t c = 0; c < json_array_size(cases); c++) {
      const json_t *jcase = json_array_get(cases, c);
      int o = name_index(outs, NULL, json_string_value(json_object_get(jcase, "output")));
      int f = name_index(feats, "name", json_string_value(json_object_get(jcase, "feature")));
      size_t na;
      double *alpha = json_doubles(json_object_get(jcase, "alpha"), 0, &na);
      double *want = json_doubles(json_object_get(jcase, "expectation"), 0, NULL);
      double *E = xcalloc(na * (size_t)n_out, sizeof *E);
      int erc = o < 0 || f < 0 ? -1
                : kind == 0    ? eng_taylor(m, f, alpha, (int)na, E, NULL)
                               : eng_montecarlo(m, f, alpha, (int)na, E, NULL);
      for (size_t a = 0; erc == 0 && a < na; a++) {
        double e = fabs(E[a * (size_t)n_out + (size_t)o] - want[a]);
        double *dst = kind == 0 ? err_taylor : err_mc;
        if (!(e <= *dst))
          *dst = e; /* NaN propagates as a failure */
      }
      free(alpha);
      free(want);
      free(E);
      if (erc != 0)
        goto out;
    }
  }
  rc = 0;
out:
  eng_model_free(m);
  for (int l = 0; l < nl && l < MAX_LAYERS; l++) {
    free(L[l].W);
    free(L[l].b);
  }
  free(mean);
  free(cov);
  free(samples);
  json_decref(root);
  return rc;
}

/* ---- the benchmark ---- */
struct timing {
  double per_eval;     /* wall seconds per (feature, alpha), all outputs */
  double per_eval_cpu; /* thread CPU seconds per (feature, alpha) */
  double min_call;     /* fastest call / n_alpha */
  /* the floor's GEMMs timed between the calls (struct floor_set), per
   * evaluation; 0 without a floor set */
  double floor_per_eval, floor_per_eval_cpu;
};

/* Times eng_taylor over nf features x na alphas; E gets nf x na x n_out.
 * With fs, also the floor's GEMMs, na sets after every call. */
static int time_taylor(const struct eng_model *m, const int *feat, int nf, const double *alpha,
                       int na, double *E, struct timing *t, const struct floor_set *fs)
{
  int n_out = eng_model_outputs(m);
  double *second = xcalloc((size_t)na * n_out, sizeof *second);
  /* warm-up: page in the workspace and the factor */
  if (eng_taylor(m, feat[0], alpha, na < 4 ? na : 4, E, second) != 0) {
    free(second);
    return -1;
  }
  double w = 0, c = 0, best = INFINITY, fw = 0, fc = 0;
  if (fs)
    floor_set_run(fs); /* warm-up */
  for (int i = 0; i < nf; i++) {
    double w0 = wall_now(), c0 = cpu_now();
    if (eng_taylor(m, feat[i], alpha, na, E + (size_t)i * na * n_out, second) != 0) {
      free(second);
      return -1;
    }
    double dw = wall_now() - w0;
    w += dw;
    c += cpu_now() - c0;
    if (dw < best)
      best = dw;
    if (fs) {
      w0 = wall_now(), c0 = cpu_now();
      for (int a = 0; a < na; a++)
        floor_set_run(fs);
      fw += wall_now() - w0;
      fc += cpu_now() - c0;
    }
  }
  t->per_eval = w / ((double)nf * na);
  t->per_eval_cpu = c / ((double)nf * na);
  t->min_call = best / na;
  t->floor_per_eval = fw / ((double)nf * na);
  t->floor_per_eval_cpu = fc / ((double)nf * na);
  free(second);
  return 0;
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
  double d = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]);
    if (!(e <= d))
      d = e;
  }
  return d;
}

static int all_finite(const double *a, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(a[i]))
      return 0;
  return 1;
}

static int prepare(const struct bnet *b, const double *mean, const double *cov, const double *X,
                   int n, double share, struct eng_model **m, double *secs, long *rss)
{
  struct eng_model_input in = {.net = &b->net, .k = b->dims[0], .mean = mean, .cov = cov,
                               .n_samples = n, .samples = X, .lowrank_share = share};
  char eb[256] = "";
  long r0 = rss_bytes();
  double t0 = wall_now();
  if (eng_model_prepare(&in, m, eb, sizeof eb) != 0) {
    fprintf(stderr, "bench_engine: eng_model_prepare(share %g): %s\n", share, eb);
    return -1;
  }
  *secs = wall_now() - t0;
  *rss = rss_bytes() - r0;
  return 0;
}

static void parse_arch(const char *s, struct opts *o)
{
  o->n_dims = 0;
  while (*s && o->n_dims <= MAX_LAYERS) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 100000) {
      fprintf(stderr, "bench_engine: bad --arch\n");
      exit(2);
    }
    o->dims[o->n_dims++] = (int)v;
    s = *end == ',' ? end + 1 : end;
  }
  if (o->n_dims < 2) {
    fprintf(stderr, "bench_engine: --arch needs at least two sizes\n");
    exit(2);
  }
}

static void usage(void)
{
  fprintf(stderr,
          "usage: bench_engine [--smoke] [--json FILE] [--dump FILE] [--fixture FILE]\n"
          "                    [--arch 784,512,256,128,64,10] [--samples N] [--features N]\n"
          "                    [--alphas N] [--seed N] [--info] [--taylor-only]\n"
          "       bench_engine --body FILE [--moments] [--name NAME] [--arch ...] [--samples N]\n");
  exit(2);
}

static const char *argval(int argc, char **argv, int *i)
{
  if (*i + 1 >= argc)
    usage();
  return argv[++*i];
}

int main(int argc, char **argv)
{
  struct opts o;
  memset(&o, 0, sizeof o);
  static const int mnist[] = {784, 512, 256, 128, 64, 10};
  memcpy(o.dims, mnist, sizeof mnist);
  o.n_dims = 6;
  o.n_samples = 3000;
  o.n_feat = 20;
  o.n_alpha = 100;
  o.n_feat_fd = 3;
  o.n_alpha_fd = 20;
  o.gemm_secs = 0.25;
  o.seed = 20190609;
  o.body_name = "mnist";
  int arch_given = 0, samples_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--smoke") == 0)
      o.smoke = 1;
    else if (strcmp(a, "--json") == 0)
      o.json_path = argval(argc, argv, &i);
    else if (strcmp(a, "--dump") == 0)
      o.dump_path = argval(argc, argv, &i);
    else if (strcmp(a, "--body") == 0)
      o.body_path = argval(argc, argv, &i), o.body_only = 1;
    else if (strcmp(a, "--moments") == 0)
      o.body_moments = 1;
    else if (strcmp(a, "--name") == 0)
      o.body_name = argval(argc, argv, &i);
    else if (strcmp(a, "--fixture") == 0)
      o.fixture_path = argval(argc, argv, &i);
    else if (strcmp(a, "--arch") == 0)
      parse_arch(argval(argc, argv, &i), &o), arch_given = 1;
    else if (strcmp(a, "--samples") == 0)
      o.n_samples = atoi(argval(argc, argv, &i)), samples_given = 1;
    else if (strcmp(a, "--features") == 0)
      o.n_feat = atoi(argval(argc, argv, &i));
    else if (strcmp(a, "--alphas") == 0)
      o.n_alpha = atoi(argval(argc, argv, &i));
    else if (strcmp(a, "--seed") == 0)
      o.seed = strtoull(argval(argc, argv, &i), NULL, 10);
    else if (strcmp(a, "--spread") == 0)
      g_spread = atof(argval(argc, argv, &i));
    else if (strcmp(a, "--info") == 0)
      o.info_only = 1;
    else if (strcmp(a, "--taylor-only") == 0)
      o.taylor_only = 1;
    else
      usage();
  }
  if (o.smoke) {
    static const int tiny[] = {64, 48, 24, 10};
    if (!arch_given) {
      memcpy(o.dims, tiny, sizeof tiny);
      o.n_dims = 4;
    }
    if (!samples_given)
      o.n_samples = 400;
    o.n_feat = 4;
    o.n_alpha = 10;
    o.n_feat_fd = 2;
    o.n_alpha_fd = 5;
    o.gemm_secs = 0.005;
  }
  if (o.n_samples < 2 || o.n_feat < 1 || o.n_alpha < 2)
    usage();

  eng_init(); /* pins BLAS to one thread: what a worker sees */
  if (o.info_only) {
    printf("blas_config=%s\nblas_threads=%d\ncompiler=%s\n", openblas_get_config(),
           openblas_get_num_threads(), __VERSION__);
    return 0;
  }

  int k = o.dims[0], n = o.n_samples;
  double *X = xcalloc((size_t)n * k, sizeof *X);
  gen_samples(k, n, o.seed, X);
  struct bnet b;
  memset(&b, 0, sizeof b);
  gen_net(&b, o.dims, o.n_dims, X, n, o.seed);
  if (o.body_only) {
    int rc = write_body(o.body_path, o.body_name, &b, X, n, o.body_moments);
    free_net(&b);
    free(X);
    return rc == 0 ? 0 : 1;
  }

  int failures = 0;
  double *mean = xcalloc((size_t)k, sizeof *mean), *cov = xcalloc((size_t)k * k, sizeof *cov);
  double tm0 = wall_now();
  moments(X, n, k, mean, cov);
  double moments_secs = wall_now() - tm0;
  int n_out = o.dims[o.n_dims - 1];

  /* Timed features: evenly spaced over the non-constant pixels. */
  int n_var = 0;
  int *var_idx = xcalloc((size_t)k, sizeof *var_idx);
  for (int p = 0; p < k; p++)
    if (cov[(size_t)p * k + p] > 0)
      var_idx[n_var++] = p;
  if (o.n_feat > n_var)
    o.n_feat = n_var;
  int *feat = xcalloc((size_t)o.n_feat, sizeof *feat);
  for (int i = 0; i < o.n_feat; i++)
    feat[i] = var_idx[(int)((i + 0.5) * n_var / o.n_feat)];
  double *alpha = xcalloc((size_t)o.n_alpha, sizeof *alpha);
  eng_grid(0.0, 1.0, o.n_alpha, alpha);

  /* Check pairs shared with the torch peer: three of the timed features. */
  int cf[3] = {feat[0], feat[o.n_feat / 2], feat[o.n_feat - 1]};
  int ncf = o.n_feat >= 3 ? 3 : 1;
  double ca[3] = {0.1, 0.5, 0.9};
  int nca = 3;

  printf("# bench_engine: %d", k);
  for (int l = 1; l < o.n_dims; l++)
    printf("-%d", o.dims[l]);
  printf(" network, %d samples, %d non-constant inputs\n", n, n_var);
  printf("# BLAS: %s, threads %d\n", openblas_get_config(), openblas_get_num_threads());

  json_t *res = json_object();
  json_t *wl = json_object();
  json_t *jd = json_array();
  for (int l = 0; l < o.n_dims; l++)
    json_array_append_new(jd, json_integer(o.dims[l]));
  json_object_set_new(wl, "dims", jd);
  json_object_set_new(wl, "samples", json_integer(n));
  json_object_set_new(wl, "nonconstant_inputs", json_integer(n_var));
  json_object_set_new(wl, "features_timed", json_integer(o.n_feat));
  json_object_set_new(wl, "alphas_per_feature", json_integer(o.n_alpha));
  json_object_set_new(wl, "moments_seconds", json_real(moments_secs));
  json_object_set_new(res, "workload", wl);
  json_object_set_new(res, "smoke", json_boolean(o.smoke));
  json_object_set_new(res, "blas_config", json_string(openblas_get_config()));
  json_object_set_new(res, "blas_threads", json_integer(openblas_get_num_threads()));
  json_object_set_new(res, "compiler", json_string(__VERSION__));

  /* ---- full rank ---- */
  struct eng_model *m = NULL;
  double prep_secs;
  long prep_rss;
  if (prepare(&b, mean, cov, X, n, 0.0, &m, &prep_secs, &prep_rss) != 0)
    return 1;
  int rank = eng_model_rank(m);
  int n1 = o.dims[1];
  int c_full = rank < n1 ? rank : n1;
  size_t nE = (size_t)o.n_feat * o.n_alpha * n_out;
  double *E_full = xcalloc(nE, sizeof *E_full);
  struct timing tf;
  if (o.smoke)
    printf("# smoke: tiny workload, figures are not meaningful\n");
  struct floor_set fset;
  floor_set_init(&fset, &b, c_full);
  int tt_rc = time_taylor(m, feat, o.n_feat, alpha, o.n_alpha, E_full, &tf, &fset);
  floor_set_free(&fset);
  if (tt_rc != 0) {
    fprintf(stderr, "bench_engine: eng_taylor failed\n");
    return 1;
  }
  if (!all_finite(E_full, nE)) {
    fprintf(stderr, "bench_engine: taylor gave non-finite values\n");
    failures++;
  }
  /* --taylor-only: the reference that bench/http_bench.py takes beside a
   * regressor job, in the same minutes of a shared host (the full run
   * comes minutes apart, and such a host's speed drifts by 10% and more
   * between them) */
  if (o.taylor_only) {
    printf("taylor: %.3f ms per (feature, alpha) (cpu %.3f ms); floor between the calls %.3f "
           "ms (cpu %.3f ms)\n",
           tf.per_eval * 1e3, tf.per_eval_cpu * 1e3, tf.floor_per_eval * 1e3,
           tf.floor_per_eval_cpu * 1e3);
    json_t *jt = json_pack("{s:f,s:f,s:f,s:f}", "taylor_seconds_per_eval", tf.per_eval,
                           "taylor_cpu_seconds_per_eval", tf.per_eval_cpu,
                           "floor_interleaved_seconds_per_eval", tf.floor_per_eval,
                           "floor_interleaved_cpu_seconds_per_eval", tf.floor_per_eval_cpu);
    json_object_set_new(res, "full", jt);
    goto dump;
  }
  double floor_flops, floor_secs, floor_cpu;
  gemm_floor(&b, c_full, o.gemm_secs, &floor_flops, &floor_secs, &floor_cpu);
  /* the reference shape for the GFLOP/s figure: the largest per-alpha GEMM */
  int gm = o.dims[2 < o.n_dims - 1 ? 2 : 1], gk = o.dims[1];
  const struct gemm_memo *gref = gemm_time(gm, c_full, gk, o.gemm_secs);
  double g_rate = 2.0 * gm * gk * c_full / gref->t;
  double g_rate_cpu = 2.0 * gm * gk * c_full / gref->tc;
  printf("prepare: %.3f s, rank %d, eng_model_bytes %.1f MiB, RSS +%.1f MiB\n", prep_secs,
         rank, eng_model_bytes(m) / 1048576.0, prep_rss / 1048576.0);
  printf("taylor: %.3f ms per (feature, alpha), all %d outputs (cpu %.3f ms, best call %.3f "
         "ms)\n",
         tf.per_eval * 1e3, n_out, tf.per_eval_cpu * 1e3, tf.min_call * 1e3);
  printf("GEMM: %dx%dx%d at %.2f GFLOP/s (cpu %.2f); floor %.1f MFLOP per eval = %.3f ms "
         "(cpu %.3f); taylor/floor %.2fx (cpu %.2fx)\n",
         gm, c_full, gk, g_rate / 1e9, g_rate_cpu / 1e9, floor_flops / 1e6, floor_secs * 1e3,
         floor_cpu * 1e3, tf.per_eval / floor_secs, tf.per_eval_cpu / floor_cpu);
  printf("floor timed between the taylor calls: %.3f ms (cpu %.3f); taylor/floor %.2fx (cpu "
         "%.2fx)\n",
         tf.floor_per_eval * 1e3, tf.floor_per_eval_cpu * 1e3, tf.per_eval / tf.floor_per_eval,
         tf.per_eval_cpu / tf.floor_per_eval_cpu);

  json_t *jf = json_object();
  json_object_set_new(jf, "prepare_seconds", json_real(prep_secs));
  json_object_set_new(jf, "rank", json_integer(rank));
  json_object_set_new(jf, "tangent_columns", json_integer(c_full));
  json_object_set_new(jf, "model_bytes", json_integer((json_int_t)eng_model_bytes(m)));
  json_object_set_new(jf, "rss_delta_bytes", json_integer(prep_rss));
  json_object_set_new(jf, "taylor_seconds_per_eval", json_real(tf.per_eval));
  json_object_set_new(jf, "taylor_cpu_seconds_per_eval", json_real(tf.per_eval_cpu));
  json_object_set_new(jf, "taylor_best_call_seconds_per_eval", json_real(tf.min_call));
  json_object_set_new(jf, "floor_flops_per_eval", json_real(floor_flops));
  json_object_set_new(jf, "floor_seconds_per_eval", json_real(floor_secs));
  json_object_set_new(jf, "floor_cpu_seconds_per_eval", json_real(floor_cpu));
  json_object_set_new(jf, "floor_interleaved_seconds_per_eval", json_real(tf.floor_per_eval));
  json_object_set_new(jf, "floor_interleaved_cpu_seconds_per_eval",
                      json_real(tf.floor_per_eval_cpu));
  json_object_set_new(res, "full", jf);
  json_t *jg = json_object();
  json_object_set_new(jg, "shape", json_pack("[iii]", gm, c_full, gk));
  json_object_set_new(jg, "gflops", json_real(g_rate / 1e9));
  json_object_set_new(jg, "gflops_cpu", json_real(g_rate_cpu / 1e9));
  json_t *shapes = json_array();
  for (int i = 0; i < g_n_memo; i++)
    json_array_append_new(shapes, json_pack("{s:[iii],s:f,s:f,s:f}", "mnk", g_memo[i].m,
                                            g_memo[i].n, g_memo[i].kk, "seconds", g_memo[i].t,
                                            "cpu_seconds", g_memo[i].tc, "gflops",
                                            2.0 * g_memo[i].m * g_memo[i].n * g_memo[i].kk /
                                                g_memo[i].t / 1e9));
  json_object_set_new(jg, "shapes", shapes);
  json_object_set_new(res, "gemm", jg);

  /* Check values for the torch peer: taylor and its second-order term. */
  json_t *jchk = json_array();
  for (int i = 0; i < ncf; i++) {
    double E[3 * 64], S2[3 * 64];
    if (n_out > 64 || eng_taylor(m, cf[i], ca, nca, E, S2) != 0) {
      failures++;
      break;
    }
    double Efd[3 * 64];
    int fd_ok = eng_finite_difference(m, cf[i], ca, nca, 1e-6, Efd) == 0;
    for (int a = 0; a < nca; a++) {
      json_t *e = json_array(), *s = json_array(), *fd = json_array();
      for (int q = 0; q < n_out; q++) {
        json_array_append_new(e, jreal(E[a * n_out + q]));
        json_array_append_new(s, jreal(S2[a * n_out + q]));
        json_array_append_new(fd, fd_ok ? jreal(Efd[a * n_out + q]) : json_null());
      }
      json_array_append_new(jchk, json_pack("{s:i,s:f,s:o,s:o,s:o}", "feature", cf[i],
                                            "alpha", ca[a], "taylor", e, "second", s,
                                            "finite_difference_1e-6", fd));
    }
  }
  json_object_set_new(res, "check", jchk);

  /* ---- low-rank mode ---- */
  json_t *jlr = json_array();
  double *E_lr = xcalloc(nE, sizeof *E_lr);
  double max_second = 0;
  {
    /* the size of the second-order term, to put the low-rank error in scale */
    double *S2 = xcalloc((size_t)o.n_alpha * n_out, sizeof *S2);
    double *Et = xcalloc((size_t)o.n_alpha * n_out, sizeof *Et);
    for (int i = 0; i < o.n_feat; i++)
      if (eng_taylor(m, feat[i], alpha, o.n_alpha, Et, S2) == 0)
        for (int j = 0; j < o.n_alpha * n_out; j++)
          if (fabs(S2[j]) > max_second)
            max_second = fabs(S2[j]);
    free(S2);
    free(Et);
  }
  json_object_set_new(jf, "max_abs_second_order_term", json_real(max_second));
  for (int s = 0; s < N_SHARES; s++) {
    struct eng_model *ml = NULL;
    double ps;
    long pr;
    if (prepare(&b, mean, cov, X, n, k_shares[s], &ml, &ps, &pr) != 0) {
      failures++;
      continue;
    }
    struct timing tl;
    int r_l = eng_model_rank(ml), c_l = r_l < n1 ? r_l : n1;
    if (time_taylor(ml, feat, o.n_feat, alpha, o.n_alpha, E_lr, &tl, NULL) != 0) {
      failures++;
      eng_model_free(ml);
      continue;
    }
    double fl_flops, fl_secs, fl_cpu;
    gemm_floor(&b, c_l, o.gemm_secs, &fl_flops, &fl_secs, &fl_cpu);
    double err = max_abs_diff(E_lr, E_full, nE);
    if (!isfinite(err))
      failures++;
    printf("lowrank %.2f: rank %d, prepare %.3f s, taylor %.3f ms (%.2fx full-rank speed), max "
           "abs err %.3g, floor %.3f ms\n",
           k_shares[s], r_l, ps, tl.per_eval * 1e3, tf.per_eval / tl.per_eval, err,
           fl_secs * 1e3);
    json_array_append_new(
        jlr, json_pack("{s:f,s:i,s:i,s:f,s:I,s:f,s:f,s:o,s:f,s:f,s:f}", "share", k_shares[s],
                       "rank", r_l, "tangent_columns", c_l, "prepare_seconds", ps,
                       "model_bytes", (json_int_t)eng_model_bytes(ml),
                       "taylor_seconds_per_eval", tl.per_eval, "taylor_cpu_seconds_per_eval",
                       tl.per_eval_cpu, "max_abs_err_vs_full", jreal(err), "floor_seconds_per_eval",
                       fl_secs, "floor_cpu_seconds_per_eval", fl_cpu, "floor_flops_per_eval",
                       fl_flops));
    eng_model_free(ml);
  }
  json_object_set_new(res, "lowrank", jlr);
  free(E_lr);

  /* ---- finite differences (paper App. A.5) ---- */
  {
    int nf = o.n_feat_fd < o.n_feat ? o.n_feat_fd : o.n_feat, na = o.n_alpha_fd;
    double *al = xcalloc((size_t)na, sizeof *al);
    eng_grid(0.0, 1.0, na, al);
    double *Efd = xcalloc((size_t)na * n_out, sizeof *Efd);
    double *Et = xcalloc((size_t)na * n_out, sizeof *Et);
    double w = 0, wc = 0, err6 = 0, err4 = 0;
    int ok = 1;
    for (int i = 0; i < nf && ok; i++) {
      int f = feat[i * o.n_feat / nf];
      double t0 = wall_now(), c0 = cpu_now();
      ok = eng_finite_difference(m, f, al, na, 1e-6, Efd) == 0;
      w += wall_now() - t0;
      wc += cpu_now() - c0;
      ok = ok && eng_taylor(m, f, al, na, Et, NULL) == 0;
      double e6 = max_abs_diff(Efd, Et, (size_t)na * n_out);
      ok = ok && eng_finite_difference(m, f, al, na, 1e-4, Efd) == 0;
      double e4 = max_abs_diff(Efd, Et, (size_t)na * n_out);
      if (!(e6 <= err6))
        err6 = e6;
      if (!(e4 <= err4))
        err4 = e4;
    }
    if (!ok) {
      fprintf(stderr, "bench_engine: eng_finite_difference failed\n");
      failures++;
    } else {
      double per = w / ((double)nf * na), per_c = wc / ((double)nf * na);
      printf("finite_difference: %.3f ms per (feature, alpha) (taylor is %.1fx faster); max abs "
             "diff vs taylor: eps 1e-6 %.3g, eps 1e-4 %.3g\n",
             per * 1e3, per / tf.per_eval, err6, err4);
      json_object_set_new(res, "finite_difference",
                          json_pack("{s:f,s:f,s:i,s:i,s:o,s:o}", "seconds_per_eval", per,
                                    "cpu_seconds_per_eval", per_c,
                                    "features", nf, "alphas", na, "max_abs_diff_eps_1e-6",
                                    jreal(err6), "max_abs_diff_eps_1e-4", jreal(err4)));
      if (!isfinite(err4) || err4 > 1e-3 * (1 + max_second))
        failures++;
    }
    free(al);
    free(Efd);
    free(Et);
  }

  /* ---- integrated gradients (explanations) ----
   * ig_rows rows x_r[p] = mean[p] + 0.5 sqrt(S_pp) sin(0.37 r + 0.11 p)
   * (peer_torch.py builds the same rows from the dump), baseline zeros,
   * output 0, Gauss-Legendre with ig_steps nodes, one core. */
  int ig_rows = o.smoke ? 8 : 1000, ig_steps = 64;
  ig_rows_dump = ig_rows;
  {
    double *xr = xcalloc((size_t)ig_rows * k, sizeof *xr), *zero = xcalloc((size_t)k, sizeof *zero);
    double *att = xcalloc((size_t)ig_rows * k, sizeof *att);
    double tq[64], wq[64];
    for (int r = 0; r < ig_rows; r++)
      for (int p = 0; p < k; p++)
        xr[(size_t)r * k + p] = mean[p] + 0.5 * sqrt(cov[(size_t)p * k + p]) * sin(0.37 * r + 0.11 * p);
    eng_quadrature(ENG_RULE_GAUSS_LEGENDRE, ig_steps, tq, wq);
    eng_integrated_gradients(m, xr, ig_rows < 4 ? ig_rows : 4, zero, tq, wq, ig_steps, 0, att);
    double w0 = wall_now(), c0 = cpu_now();
    int rc = eng_integrated_gradients(m, xr, ig_rows, zero, tq, wq, ig_steps, 0, att);
    double iw = wall_now() - w0, ic = cpu_now() - c0;
    /* completeness: sum(attr) - (f(x) - f(0)) */
    double *ends = xcalloc((size_t)(ig_rows + 1) * k, sizeof *ends);
    double *fy = xcalloc((size_t)(ig_rows + 1) * n_out, sizeof *fy);
    memcpy(ends, xr, sizeof(double) * (size_t)ig_rows * k);
    eng_forward(m, ends, ig_rows + 1, fy);
    double gap = 0;
    for (int r = 0; r < ig_rows; r++) {
      double sum = 0;
      for (int p = 0; p < k; p++)
        sum += att[(size_t)r * k + p];
      double g = fabs(sum - (fy[(size_t)r * n_out] - fy[(size_t)ig_rows * n_out]));
      if (!(g <= gap))
        gap = g;
    }
    json_t *first = json_array();
    for (int r = 0; r < 2 && r < ig_rows; r++) {
      json_t *row = json_array();
      for (int p = 0; p < k; p++)
        json_array_append_new(row, jreal(att[(size_t)r * k + p]));
      json_array_append_new(first, row);
    }
    printf("integrated gradients: %d rows x %d steps in %.3f s (cpu %.3f s), completeness gap %.2g\n",
           ig_rows, ig_steps, iw, ic, gap);
    if (rc != 0 || !all_finite(att, (size_t)ig_rows * k))
      failures++;
    json_object_set_new(res, "integrated_gradients",
                        json_pack("{s:i,s:i,s:i,s:f,s:f,s:o,s:o}", "rows", ig_rows, "steps",
                                  ig_steps, "output", 0, "seconds", iw, "cpu_seconds", ic,
                                  "completeness_gap", jreal(gap), "first_rows", first));
    free(xr);
    free(zero);
    free(att);
    free(ends);
    free(fy);
  }

  /* ---- the shared fixture ---- */
  if (o.fixture_path) {
    double et = NAN, em = NAN;
    if (fixture_check(o.fixture_path, &et, &em) != 0) {
      fprintf(stderr, "bench_engine: fixture check failed to run\n");
      failures++;
    } else {
      printf("fixture: taylor max abs err %.3g, montecarlo %.3g (bar 1e-10)\n", et, em);
      if (!(et <= 1e-10 && em <= 1e-10))
        failures++;
    }
    json_object_set_new(res, "fixture", json_pack("{s:s,s:o,s:o}", "path", o.fixture_path,
                                                  "taylor_max_abs_err", jreal(et),
                                                  "montecarlo_max_abs_err", jreal(em)));
  }

  if (o.dump_path) {
    if (write_dump(o.dump_path, &b, mean, cov, cf, ncf, ca, nca, o.n_alpha, feat, o.n_feat) !=
        0)
      failures++;
  }
dump:
  json_object_set_new(res, "failures", json_integer(failures));
  if (o.json_path && json_dump_file(res, o.json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0) {
    fprintf(stderr, "bench_engine: cannot write %s\n", o.json_path);
    failures++;
  }
  json_decref(res);
  eng_model_free(m);
  free(E_full);
  free(feat);
  free(var_idx);
  free(alpha);
  free(mean);
  free(cov);
  free(X);
  free_net(&b);
  return failures ? 1 : 0;
}
