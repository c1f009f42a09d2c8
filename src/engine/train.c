/*
 * train.c -- a small, exact trainer: mini-batch Adam on a feedforward
 * network, for the randomization test (Olden and Jackson 2002), which
 * retrains the registered architecture on permuted targets.
 *
 * DESIGN.  Exact means: the same numbers as PyTorch float64 given the same
 * initial weights, batches and settings (tests/unit/test_engine_train.c
 * against tools/gen_train_ref.py, 1e-10).  So the rules are PyTorch's:
 *   - nn.Linear's default initialisation, W and b ~ U(-1/sqrt(fan_in),
 *     1/sqrt(fan_in)), drawn here from the engine's own generator
 *     (splitmix64, below) so that a seed gives the same network anywhere;
 *   - one permutation of the rows per epoch (Fisher-Yates with the same
 *     generator), batches of batch_size in that order, the last one short;
 *   - losses with mean reduction: mse, the mean of (y - t)^2 over the
 *     batch's rows and outputs (MSELoss); cross_entropy, -sum_j t_j log
 *     softmax(z)_j averaged over rows (CrossEntropyLoss with probability
 *     targets; the last layer's softmax or log_softmax is that softmax,
 *     an identity last layer gives the logits), or for a sigmoid output
 *     the binary cross-entropy averaged over rows and outputs (BCELoss);
 *   - Adam as torch.optim.Adam: betas (0.9, 0.999), eps 1e-8, weight decay
 *     added to the gradient (L2), p -= lr / (1 - b1^t) * m /
 *     (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Products are BLAS GEMMs over the batch: forward Z = H W^T + b, backward
 * dW = dZ^T H, dH = dZ W.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8

uint64_t eng_rng_next(uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double eng_rng_uniform(uint64_t *s)
{
  return (double)(eng_rng_next(s) >> 11) * 0x1.0p-53;
}

void eng_rng_permutation(uint64_t *s, int n, int *perm)
{
  for (int i = 0; i < n; i++)
    perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(eng_rng_next(s) % (uint64_t)(i + 1));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

void eng_init_weights(struct eng_net *net, uint64_t seed)
{
  uint64_t s = seed;
  for (int l = 0; l < net->n_layers; l++) {
    struct eng_layer *ly = &net->layers[l];
    double bound = 1.0 / sqrt((double)ly->n_in);
    for (size_t t = 0; t < (size_t)ly->n_out * ly->n_in; t++)
      ly->W[t] = (2.0 * eng_rng_uniform(&s) - 1.0) * bound;
    for (int j = 0; j < ly->n_out; j++)
      ly->b[j] = (2.0 * eng_rng_uniform(&s) - 1.0) * bound;
  }
}

int eng_train_check(const struct eng_net *net, enum eng_loss loss)
{
  if (!net || net->n_layers < 1)
    return -1;
  for (int l = 0; l + 1 < net->n_layers; l++) {
    enum eng_act a = net->layers[l].act;
    if (a == ENG_ACT_SOFTMAX || a == ENG_ACT_LOG_SOFTMAX)
      return -1;
  }
  enum eng_act last = net->layers[net->n_layers - 1].act;
  if (loss == ENG_LOSS_CROSS_ENTROPY)
    return last == ENG_ACT_SOFTMAX || last == ENG_ACT_LOG_SOFTMAX ||
                   last == ENG_ACT_IDENTITY || last == ENG_ACT_SIGMOID
               ? 0
               : -1;
  return loss == ENG_LOSS_MSE ? 0 : -1;
}

/* dZ (B x no) of the last layer from its pre-activations Z, outputs H and
 * the targets T.  d1 is scratch (no). */
static void last_delta(enum eng_act act, enum eng_loss loss, const double *Z, const double *H,
                       const double *T, int B, int no, double *dZ, double *d1)
{
  for (int r = 0; r < B; r++) {
    const double *z = Z + (size_t)r * no, *h = H + (size_t)r * no, *t = T + (size_t)r * no;
    double *d = dZ + (size_t)r * no;
    if (loss == ENG_LOSS_CROSS_ENTROPY) {
      if (act == ENG_ACT_SIGMOID) {
        for (int j = 0; j < no; j++)
          d[j] = (h[j] - t[j]) / ((double)B * no);
        continue;
      }
      /* softmax(z) sum(t) - t: the softmax of the logits, whichever layer */
      double st = 0.0;
      for (int j = 0; j < no; j++)
        st += t[j];
      eng_softmax(z, no, d1);
      for (int j = 0; j < no; j++)
        d[j] = (d1[j] * st - t[j]) / B;
      continue;
    }
    /* mse: dL/dh = 2 (h - t) / (B no), then back through the activation */
    for (int j = 0; j < no; j++)
      d[j] = 2.0 * (h[j] - t[j]) / ((double)B * no);
    if (act == ENG_ACT_SOFTMAX) {
      double gs = 0.0;
      for (int j = 0; j < no; j++)
        gs += d[j] * h[j];
      for (int j = 0; j < no; j++)
        d[j] = h[j] * (d[j] - gs);
    } else if (act == ENG_ACT_LOG_SOFTMAX) {
      double g = 0.0;
      for (int j = 0; j < no; j++)
        g += d[j];
      eng_softmax(z, no, d1);
      for (int j = 0; j < no; j++)
        d[j] -= d1[j] * g;
    } else {
      void (*ev)(double, double *, double *, double *) = eng_act_info(act)->eval;
      for (int j = 0; j < no; j++) {
        double f, g1, g2;
        ev(z[j], &f, &g1, &g2);
        d[j] *= g1;
      }
    }
  }
}

int eng_train(struct eng_net *net, const double *X, const double *Y, int n,
              const struct eng_train_opts *o)
{
  if (!net || !X || !Y || n < 1 || !o || o->epochs < 0 || o->batch_size < 1 ||
      !(o->learning_rate > 0) || !(o->weight_decay >= 0) || eng_train_check(net, o->loss) != 0)
    return -1;
  int nl = net->n_layers, k = net->layers[0].n_in, no = net->layers[nl - 1].n_out;
  int B0 = o->batch_size < n ? o->batch_size : n, wmax = k;
  size_t np = 0, off[ACED_MAX_LAYERS + 1], hoff[ACED_MAX_LAYERS + 1], htot = 0;
  for (int l = 0; l < nl; l++) {
    const struct eng_layer *ly = &net->layers[l];
    off[l] = np;
    np += (size_t)ly->n_out * ly->n_in + (size_t)ly->n_out;
    hoff[l] = htot;
    htot += (size_t)B0 * ly->n_out;
    wmax = ly->n_out > wmax ? ly->n_out : wmax;
  }
  double *mem = calloc(3 * np + 2 * htot + (size_t)B0 * (k + no) + 2 * (size_t)B0 * wmax + wmax,
                       sizeof *mem);
  int *perm = malloc(sizeof(int) * (size_t)n);
  if (!mem || !perm) {
    free(mem);
    free(perm);
    return -1;
  }
  double *am = mem, *av = am + np, *g = av + np, *Z = g + np, *H = Z + htot;
  double *Xb = H + htot, *Yb = Xb + (size_t)B0 * k, *dA = Yb + (size_t)B0 * no;
  double *dB = dA + (size_t)B0 * wmax, *scratch = dB + (size_t)B0 * wmax;
  uint64_t s = o->seed;
  long step = 0;
  int rc = 0;
  for (int ep = 0; ep < o->epochs && rc == 0; ep++) {
    eng_rng_permutation(&s, n, perm);
    for (int b0 = 0; b0 < n && rc == 0; b0 += B0) {
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        break;
      }
      int B = n - b0 < B0 ? n - b0 : B0;
      for (int r = 0; r < B; r++) {
        memcpy(Xb + (size_t)r * k, X + (size_t)perm[b0 + r] * k, sizeof(double) * (size_t)k);
        memcpy(Yb + (size_t)r * no, Y + (size_t)perm[b0 + r] * no, sizeof(double) * (size_t)no);
      }
      /* forward, keeping Z and H of every layer */
      for (int l = 0; l < nl; l++) {
        const struct eng_layer *ly = &net->layers[l];
        double *z = Z + hoff[l], *h = H + hoff[l];
        const double *in = l == 0 ? Xb : H + hoff[l - 1];
        for (int r = 0; r < B; r++)
          memcpy(z + (size_t)r * ly->n_out, ly->b, sizeof(double) * (size_t)ly->n_out);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, ly->n_out, ly->n_in, 1.0, in,
                    ly->n_in, ly->W, ly->n_in, 1.0, z, ly->n_out);
        memcpy(h, z, sizeof(double) * (size_t)B * ly->n_out);
        eng_act_rows(ly->act, h, B, ly->n_out);
      }
      /* backward */
      double *dz = dA, *dn = dB;
      last_delta(net->layers[nl - 1].act, o->loss, Z + hoff[nl - 1], H + hoff[nl - 1], Yb, B, no,
                 dz, scratch);
      for (int l = nl - 1; l >= 0; l--) {
        const struct eng_layer *ly = &net->layers[l];
        const double *in = l == 0 ? Xb : H + hoff[l - 1];
        double *gW = g + off[l], *gb = gW + (size_t)ly->n_out * ly->n_in;
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ly->n_out, ly->n_in, B, 1.0, dz,
                    ly->n_out, in, ly->n_in, 0.0, gW, ly->n_in);
        for (int j = 0; j < ly->n_out; j++) {
          double t = 0.0;
          for (int r = 0; r < B; r++)
            t += dz[(size_t)r * ly->n_out + j];
          gb[j] = t;
        }
        if (l == 0)
          break;
        /* dH = dZ W, then through the (element-wise) hidden activation */
        const struct eng_layer *pv = &net->layers[l - 1];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, ly->n_in, ly->n_out, 1.0, dz,
                    ly->n_out, ly->W, ly->n_in, 0.0, dn, ly->n_in);
        void (*ev)(double, double *, double *, double *) = eng_act_info(pv->act)->eval;
        const double *zp = Z + hoff[l - 1];
        for (size_t t = 0; t < (size_t)B * ly->n_in; t++) {
          double f, g1, g2;
          ev(zp[t], &f, &g1, &g2);
          dn[t] *= g1;
        }
        double *sw = dz;
        dz = dn;
        dn = sw;
      }
      /* Adam, as torch.optim.Adam */
      step++;
      double bc1 = 1.0 - pow(ADAM_B1, (double)step), bc2 = 1.0 - pow(ADAM_B2, (double)step);
      double lr = o->learning_rate / bc1, sq2 = sqrt(bc2);
      for (int l = 0; l < nl; l++) {
        struct eng_layer *ly = &net->layers[l];
        size_t nw = (size_t)ly->n_out * ly->n_in;
        for (size_t t = 0; t < nw + (size_t)ly->n_out; t++) {
          double *p = t < nw ? &ly->W[t] : &ly->b[t - nw];
          size_t q = off[l] + t;
          double gr = g[q] + o->weight_decay * *p;
          am[q] = ADAM_B1 * am[q] + (1.0 - ADAM_B1) * gr;
          av[q] = ADAM_B2 * av[q] + (1.0 - ADAM_B2) * gr * gr;
          *p -= lr * am[q] / (sqrt(av[q]) / sq2 + ADAM_EPS);
          if (!isfinite(*p))
            rc = -1;
        }
      }
    }
  }
  free(mem);
  free(perm);
  return rc;
}
