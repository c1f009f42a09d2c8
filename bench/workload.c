/*
 * workload.c -- bench_engine's workload and the files for its peers (see
 * workload.h and the DESIGN note of bench_engine.c).  Benchmark code: it
 * is never linked into the daemon.
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

/* ---- small utilities ---- */
double wall_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cpu_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Resident set size in bytes, from /proc/self/statm; 0 when unreadable. */
long rss_bytes(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f == NULL)
    return 0;
  if (fscanf(f, "%ld %ld", &size, &res) != 2)
    res = 0;
  fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

/* json_real refuses NaN and infinities: those become null. */
json_t *jreal(double x)
{
  return isfinite(x) ? json_real(x) : json_null();
}

void *xcalloc(size_t n, size_t sz)
{
  void *p = calloc(n == 0 ? 1 : n, sz);
  if (p == NULL) {
    fprintf(stderr, "bench_engine: out of memory (%zu x %zu)\n", n, sz);
    exit(2);
  }
  return p;
}


static uint64_t rng_next(struct rng *r)
{
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform on (0, 1). */
double rng_unif(struct rng *r)
{
  return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(struct rng *r)
{
  double u = rng_unif(r), v = rng_unif(r);
  return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

double g_spread = 0.4;

static double sigmoid(double z)
{
  return 1.0 / (1.0 + exp(-z));
}

/* ---- the workload ---- */

/* n image-like samples of k pixels (row-major n x k) laid out on a square
 * of side ceil(sqrt(k)): a base intensity plus nb Gaussian blobs whose
 * weights have decaying variance (the low-rank structure) plus pixel noise,
 * through a sigmoid so values lie in (0,1); the outer frame is exactly 0
 * in every sample (constant pixels, so the covariance is singular). */
void gen_samples(int k, int n, uint64_t seed, double *X)
{
  struct rng r = {seed};
  int side = (int)ceil(sqrt((double)k));
  int nb = 24;
  double *blob = xcalloc((size_t)nb * (size_t)k, sizeof *blob);
  double *base = xcalloc((size_t)k, sizeof *base);
  double c = (side - 1) / 2.0;
  for (int p = 0; p < k; p++) {
    double dy = (p / side - c) / side, dx = (p % side - c) / side;
    base[p] = 1.5 - 10.0 * (dx * dx + dy * dy) * 2.0; /* bright centre */
  }
  for (int b = 0; b < nb; b++) {
    double cy = side * (0.2 + 0.6 * rng_unif(&r));
    double cx = side * (0.2 + 0.6 * rng_unif(&r));
    double w = side * (0.06 + 0.12 * rng_unif(&r));
    for (int p = 0; p < k; p++) {
      double dy = p / side - cy, dx = p % side - cx;
      blob[(size_t)b * k + p] = exp(-(dx * dx + dy * dy) / (2 * w * w));
    }
  }
  for (int i = 0; i < n; i++) {
    double *x = X + (size_t)i * k;
    for (int p = 0; p < k; p++)
      x[p] = base[p] - 1.0 + 0.35 * rng_normal(&r);
    for (int b = 0; b < nb; b++) {
      double zb = 2.5 * rng_normal(&r) / pow(1.0 + b, 0.8);
      const double *bl = blob + (size_t)b * k;
      for (int p = 0; p < k; p++)
        x[p] += zb * bl[p];
    }
    for (int p = 0; p < k; p++) {
      int py = p / side, px = p % side;
      int frame = py == 0 || px == 0 || py == side - 1 || px == side - 1;
      x[p] = frame ? 0.0 : sigmoid(x[p]);
    }
  }
  free(blob);
  free(base);
}

/* Mean (k) and unbiased covariance (k x k) of n x k samples. */
void moments(const double *X, int n, int k, double *mean, double *cov)
{
  double *C = xcalloc((size_t)n * (size_t)k, sizeof *C);
  memset(mean, 0, (size_t)k * sizeof *mean);
  for (int i = 0; i < n; i++)
    for (int p = 0; p < k; p++)
      mean[p] += X[(size_t)i * k + p];
  for (int p = 0; p < k; p++)
    mean[p] /= n;
  for (int i = 0; i < n; i++)
    for (int p = 0; p < k; p++)
      C[(size_t)i * k + p] = X[(size_t)i * k + p] - mean[p];
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, k, n, 1.0 / (n - 1), C, k, 0.0,
              cov, k);
  for (int p = 0; p < k; p++)
    for (int q = 0; q < p; q++)
      cov[(size_t)p * k + q] = cov[(size_t)q * k + p];
  free(C);
}


/* Random layers for dims[0..nd-1]: sigmoid hidden layers, softmax output.
 * Each unit's row is scaled so that its pre-activation over the samples
 * has a standard deviation between 0.75 and 2.25 (2.0 for the logits), and
 * its bias centres it near zero: the units neither saturate nor stay
 * linear, so the Hessian is far from zero. */
void gen_net(struct bnet *b, const int *dims, int nd, const double *X, int n,
                    uint64_t seed)
{
  struct rng r = {seed ^ 0x5bd1e995ULL};
  b->n_layers = nd - 1;
  memcpy(b->dims, dims, (size_t)nd * sizeof *dims);
  double *H = xcalloc((size_t)n * (size_t)dims[0], sizeof *H);
  memcpy(H, X, (size_t)n * (size_t)dims[0] * sizeof *H);
  for (int l = 0; l < nd - 1; l++) {
    int ni = dims[l], no = dims[l + 1];
    int last = l == nd - 2;
    struct eng_layer *L = &b->layers[l];
    L->n_in = ni;
    L->n_out = no;
    L->act = last ? ENG_ACT_SOFTMAX : ENG_ACT_SIGMOID;
    L->W = xcalloc((size_t)no * (size_t)ni, sizeof *L->W);
    L->b = xcalloc((size_t)no, sizeof *L->b);
    for (size_t j = 0; j < (size_t)no * ni; j++)
      L->W[j] = rng_normal(&r) / sqrt((double)ni);
    double *Z = xcalloc((size_t)n * (size_t)no, sizeof *Z);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, no, ni, 1.0, H, ni, L->W, ni,
                0.0, Z, no);
    for (int j = 0; j < no; j++) {
      double s = 0, s2 = 0;
      for (int i = 0; i < n; i++) {
        s += Z[(size_t)i * no + j];
        s2 += Z[(size_t)i * no + j] * Z[(size_t)i * no + j];
      }
      double mu = s / n, sd = sqrt(fmax(s2 / n - mu * mu, 0.0));
      double target = g_spread * (last ? 2.0 : 0.75 + 1.5 * rng_unif(&r));
      double scale = sd > 1e-12 ? target / sd : 1.0;
      for (int p = 0; p < ni; p++)
        L->W[(size_t)j * ni + p] *= scale;
      L->b[j] = -mu * scale + 0.3 * rng_normal(&r);
      for (int i = 0; i < n; i++)
        Z[(size_t)i * no + j] = Z[(size_t)i * no + j] * scale + L->b[j];
    }
    free(H);
    H = Z;
    if (!last)
      for (size_t j = 0; j < (size_t)n * no; j++)
        H[j] = sigmoid(H[j]);
  }
  free(H);
  b->net.n_layers = b->n_layers;
  b->net.layers = b->layers;
}

void free_net(struct bnet *b)
{
  for (int l = 0; l < b->n_layers; l++) {
    free(b->layers[l].W);
    free(b->layers[l].b);
  }
}

/* ---- files for the peers ---- */

/* Binary dump for peer_torch.py: "ACEDBNC1", a little-endian uint32 header
 * length, a JSON header (dims, activations, check pairs, epsilon), then
 * float64 arrays: W and b of each layer, mean (k), covariance (k x k). */
int ig_rows_dump;

int write_dump(const char *path, const struct bnet *b, const double *mean,
                      const double *cov, const int *cf, int ncf, const double *ca, int nca,
                      int n_alpha_time, const int *tfeat, int ntf)
{
  json_t *h = json_object();
  json_t *dims = json_array(), *acts = json_array(), *jf = json_array(), *ja = json_array();
  json_t *jt = json_array();
  for (int l = 0; l <= b->n_layers; l++)
    json_array_append_new(dims, json_integer(b->dims[l]));
  for (int l = 0; l < b->n_layers; l++)
    json_array_append_new(acts, json_string(eng_act_name(b->layers[l].act)));
  for (int i = 0; i < ncf; i++)
    json_array_append_new(jf, json_integer(cf[i]));
  for (int i = 0; i < nca; i++)
    json_array_append_new(ja, json_real(ca[i]));
  for (int i = 0; i < ntf; i++)
    json_array_append_new(jt, json_integer(tfeat[i]));
  json_object_set_new(h, "dims", dims);
  json_object_set_new(h, "activations", acts);
  json_object_set_new(h, "check_features", jf);
  json_object_set_new(h, "check_alphas", ja);
  json_object_set_new(h, "time_features", jt);
  json_object_set_new(h, "n_alpha", json_integer(n_alpha_time));
  json_object_set_new(h, "epsilon", json_real(1e-6));
  json_object_set_new(h, "ig_rows", json_integer(ig_rows_dump));
  json_object_set_new(h, "ig_steps", json_integer(64));
  char *hs = json_dumps(h, JSON_COMPACT);
  json_decref(h);
  FILE *f = fopen(path, "wb");
  if (f == NULL || hs == NULL) {
    fprintf(stderr, "bench_engine: %s: %s\n", path, strerror(errno));
    free(hs);
    if (f)
      fclose(f);
    return -1;
  }
  uint32_t n = (uint32_t)strlen(hs);
  unsigned char le[4] = {n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >> 24) & 255};
  int k = b->dims[0];
  fwrite("ACEDBNC1", 1, 8, f);
  fwrite(le, 1, 4, f);
  fwrite(hs, 1, n, f);
  for (int l = 0; l < b->n_layers; l++) {
    fwrite(b->layers[l].W, sizeof(double), (size_t)b->dims[l + 1] * b->dims[l], f);
    fwrite(b->layers[l].b, sizeof(double), (size_t)b->dims[l + 1], f);
  }
  fwrite(mean, sizeof(double), (size_t)k, f);
  fwrite(cov, sizeof(double), (size_t)k * k, f);
  free(hs);
  return fclose(f) == 0 ? 0 : -1;
}

/* A registration body (POST /v1/models) for this network and samples.
 * Weights at full precision; samples at 5 significant digits, which is
 * what image data carries and keeps 4096-input bodies under the body cap.
 * With as_moments (--moments), the samples' mean and covariance instead. */
int write_body(const char *path, const char *name, const struct bnet *b, const double *X,
               int n, int as_moments)
{
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "bench_engine: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int k = b->dims[0], m = b->dims[b->n_layers];
  fprintf(f, "{\"name\":\"%s\",\"description\":\"bench_engine %d", name, b->dims[0]);
  for (int l = 1; l <= b->n_layers; l++)
    fprintf(f, "-%d", b->dims[l]);
  fprintf(f, "\",\"features\":[");
  for (int p = 0; p < k; p++)
    fprintf(f, "%s{\"name\":\"p%d\",\"low\":0,\"high\":1}", p ? "," : "", p);
  fprintf(f, "],\"outputs\":[");
  for (int o = 0; o < m; o++)
    fprintf(f, "%s\"c%d\"", o ? "," : "", o);
  fprintf(f, "],\"network\":{\"type\":\"feedforward\",\"layers\":[");
  for (int l = 0; l < b->n_layers; l++) {
    const struct eng_layer *L = &b->layers[l];
    fprintf(f, "%s{\"weights\":[", l ? "," : "");
    for (int j = 0; j < L->n_out; j++) {
      fprintf(f, "%s[", j ? "," : "");
      for (int p = 0; p < L->n_in; p++)
        fprintf(f, "%s%.17g", p ? "," : "", L->W[(size_t)j * L->n_in + p]);
      fputc(']', f);
    }
    fprintf(f, "],\"bias\":[");
    for (int j = 0; j < L->n_out; j++)
      fprintf(f, "%s%.17g", j ? "," : "", L->b[j]);
    fprintf(f, "],\"activation\":\"%s\"}", eng_act_name(L->act));
  }
  if (as_moments) {
    /* a model registered without samples: their mean and covariance */
    double *mean = calloc((size_t)k, sizeof *mean), *cov = calloc((size_t)k * k, sizeof *cov);
    if (mean == NULL || cov == NULL)
      abort();
    moments(X, n, k, mean, cov);
    fprintf(f, "]},\"data\":{\"mean\":[");
    for (int p = 0; p < k; p++)
      fprintf(f, "%s%.17g", p ? "," : "", mean[p]);
    fprintf(f, "],\"covariance\":[");
    for (int p = 0; p < k; p++) {
      fprintf(f, "%s[", p ? "," : "");
      for (int q = 0; q < k; q++)
        fprintf(f, "%s%.17g", q ? "," : "", cov[(size_t)p * k + q]);
      fputc(']', f);
    }
    fprintf(f, "]}}\n");
    free(mean);
    free(cov);
    return fclose(f) == 0 ? 0 : -1;
  }
  fprintf(f, "]},\"data\":{\"samples\":[");
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s[", i ? "," : "");
    for (int p = 0; p < k; p++) {
      double v = X[(size_t)i * k + p];
      if (v == 0.0)
        fprintf(f, "%s0", p ? "," : "");
      else
        fprintf(f, "%s%.5g", p ? "," : "", v);
    }
    fputc(']', f);
  }
  fprintf(f, "]}}\n");
  return fclose(f) == 0 ? 0 : -1;
}

