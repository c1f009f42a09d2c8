/*
 * workload.h -- what bench_engine measures on, apart from the measuring:
 * timers and small utilities, the seeded MNIST-scale workload (samples,
 * moments, the network) and the files written for the peers (the binary
 * dump of bench/peer_torch.py, a registration body for the HTTP
 * benchmark).  bench/workload.c; benchmark code, never in the daemon.
 */
#ifndef ACED_BENCH_WORKLOAD_H
#define ACED_BENCH_WORKLOAD_H

#include <stdint.h>

#include <jansson.h>

#include "aced/engine.h"

#define MAX_LAYERS 16

/* splitmix64: small, fast, and the same sequence everywhere. */
struct rng {
  uint64_t s;
};

struct bnet {
  int n_layers;
  int dims[MAX_LAYERS + 1];
  struct eng_layer layers[MAX_LAYERS];
  struct eng_net net;
};

/* Multiplies every unit's target pre-activation spread (--spread). */
extern double g_spread;
/* Integrated-gradients rows timed, written into the dump for the peer. */
extern int ig_rows_dump;

double wall_now(void);
double cpu_now(void);
long rss_bytes(void);
json_t *jreal(double x);
void *xcalloc(size_t n, size_t sz);
double rng_unif(struct rng *r);
void gen_samples(int k, int n, uint64_t seed, double *X);
void moments(const double *X, int n, int k, double *mean, double *cov);
void gen_net(struct bnet *b, const int *dims, int nd, const double *X, int n,
             uint64_t seed);
void free_net(struct bnet *b);
int write_dump(const char *path, const struct bnet *b, const double *mean, const double *cov,
               const int *cf, int ncf, const double *ca, int nca, int n_alpha_time,
               const int *tfeat, int ntf);
int write_body(const char *path, const char *name, const struct bnet *b, const double *X,
               int n, int as_moments);

#endif
