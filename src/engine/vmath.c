/*
 * vmath.c -- element-wise sigmoid and tanh over arrays, and the other
 * element-wise steps of the gradient passes (gradient.c), vectorized.
 * They started with the cells of recurrent networks (recurrent.c), where
 * they cost more than the GEMMs:
 * an LSTM step of hidden size 64 does 320 of them per sequence against
 * 37 kflop of matrix products, and libm's scalar calls take 5 to 10 ns
 * each.
 *
 * exp is computed here without branches so that the loops vectorize:
 * x = k ln 2 + r with k = round(x / ln 2) by the 1.5 * 2^52 rounding trick,
 * ln 2 split in two (Cody and Waite) so that r is exact to the last bit,
 * |r| <= ln(2)/2, exp(r) by its Taylor series to degree 13 (remainder
 * below 4e-18), and 2^k built in the exponent bits.  Measured against
 * libm: relative error at most 2.3e-16 for exp, absolute 2.3e-16 for the
 * sigmoid and 3.4e-16 for tanh (tanh(x) = 1 - 2 / (e^(2x) + 1) loses
 * relative, not absolute, accuracy near 0).  Arguments are clamped to
 * [-708, 708], where both functions are saturated to the last bit.
 *
 * This file alone is compiled at O3 with finite-math-only (the clamps are
 * then vector min/max): its arguments are gate pre-activations, finite
 * whenever the weights and inputs are (model.c refuses non-finite
 * numbers).
 */
#pragma GCC optimize("O3", "finite-math-only", "no-signed-zeros")

#include <stdint.h>
#include <string.h>
#include "engine/internal.h"

static inline __attribute__((always_inline)) double vexp(double x)
{
  x = __builtin_fmax(x, -708.0);
  x = __builtin_fmin(x, 708.0);
  const double shift = 0x1.8p52;
  double t = x * 0x1.71547652b82fep0 + shift; /* round(x / ln 2) + shift */
  double k = t - shift;
  double r = (x - k * 0x1.62e42fefa3800p-1) - k * 0x1.ef35793c7673p-45;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  uint64_t bits;
  memcpy(&bits, &t, sizeof bits);
  bits = (bits << 52) + ((uint64_t)1023 << 52); /* 2^k: k sits in the low bits of t */
  double s;
  memcpy(&s, &bits, sizeof s);
  return p * s;
}

/* One copy per instruction set, chosen when the program loads (ifunc):
 * 8 lanes with AVX-512, 4 with AVX2, 2 with the SSE2 every x86-64 has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VMATH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VMATH_CLONES
#endif

VMATH_CLONES void eng_vsigmoid(double *restrict x, int n)
{
  for (int i = 0; i < n; i++)
    x[i] = 1.0 / (1.0 + vexp(-x[i]));
}

VMATH_CLONES void eng_vtanh(double *restrict x, int n)
{
  for (int i = 0; i < n; i++)
    x[i] = 1.0 - 2.0 / (vexp(2.0 * x[i]) + 1.0);
}

/* x = f(x + b) row by row (rows x width, b width): a layer's bias and
 * activation in one pass over its GEMM's output (gradient.c). */
VMATH_CLONES void eng_vsigmoid_rows(double *restrict x, const double *restrict b, int rows,
                                    int width)
{
  for (int r = 0; r < rows; r++, x += width)
    for (int i = 0; i < width; i++)
      x[i] = 1.0 / (1.0 + vexp(-(x[i] + b[i])));
}

VMATH_CLONES void eng_vtanh_rows(double *restrict x, const double *restrict b, int rows, int width)
{
  for (int r = 0; r < rows; r++, x += width)
    for (int i = 0; i < width; i++)
      x[i] = 1.0 - 2.0 / (vexp(2.0 * (x[i] + b[i])) + 1.0);
}

/* The element-wise steps of the gradient passes (gradient.c), here to be
 * vectorized like the rest of this file: gradient.c is built at O2, where
 * GCC 12 leaves such loops scalar. */

/* gz = f'(z) g from the activations h: sigmoid h (1 - h), tanh 1 - h^2,
 * relu [h > 0] (h = max(z, 0) > 0 exactly when z > 0). */
VMATH_CLONES void eng_vsigmoid_back(double *restrict gz, const double *restrict h,
                                    const double *restrict g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    gz[i] = h[i] * (1.0 - h[i]) * g[i];
}

VMATH_CLONES void eng_vtanh_back(double *restrict gz, const double *restrict h,
                                 const double *restrict g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    gz[i] = (1.0 - h[i] * h[i]) * g[i];
}

VMATH_CLONES void eng_vrelu_back(double *restrict gz, const double *restrict h,
                                 const double *restrict g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    gz[i] = h[i] > 0.0 ? g[i] : 0.0;
}

/* x += b row by row (rows x width, b one row). */
VMATH_CLONES void eng_vadd_rows(double *restrict x, const double *restrict b, int rows, int width)
{
  for (int r = 0; r < rows; r++, x += width)
    for (int i = 0; i < width; i++)
      x[i] += b[i];
}

/* y = W diag(d): every row of W (rows x width) times d, element-wise.
 * Eq. 4's tangent pass forms W_l J_{l-1} this way once per alpha and
 * layer (a megabyte at MNIST scale), about 4% of its time as a scalar
 * loop. */
VMATH_CLONES void eng_vmul_rows(double *restrict y, const double *restrict W,
                                const double *restrict d, int rows, int width)
{
  for (int r = 0; r < rows; r++, y += width, W += width)
    for (int i = 0; i < width; i++)
      y[i] = W[i] * d[i];
}

/* z = a + t d: a point on the line through a with direction d. */
VMATH_CLONES void eng_vline(double *restrict z, const double *restrict a, double t,
                            const double *restrict d, int n)
{
  for (int i = 0; i < n; i++)
    z[i] = a[i] + t * d[i];
}

/* y += a x */
VMATH_CLONES void eng_vaxpy(double *restrict y, double a, const double *restrict x, int n)
{
  for (int i = 0; i < n; i++)
    y[i] += a * x[i];
}

/* The cells of one layer for n value rows (no tangents): gates from
 * p->gi + p->gh, the vectorized non-linearities of vmath.c, the state at
 * offset off updated in place.  p->gh is scratch once added in. */
VMATH_CLONES void eng_cells_plain(struct rnn_pass *p, int off)
{
  const int H = p->H, G = p->G, S = p->S;
  for (int s = 0; s < p->n; s++) {
    double *h = p->v + (size_t)s * S + off, *c = h + H;
    double *g = p->gi + (size_t)s * G, *gh = p->gh + (size_t)s * G;
    switch (p->net->cell) {
    case ENG_CELL_GRU:
      for (int j = 0; j < 2 * H; j++)
        g[j] += gh[j];
      eng_vsigmoid(g, 2 * H); /* r, z */
      for (int j = 0; j < H; j++)
        gh[j] = g[2 * H + j] + g[j] * gh[2 * H + j]; /* n's argument */
      eng_vtanh(gh, H);
      for (int j = 0; j < H; j++)
        h[j] = gh[j] + g[H + j] * (h[j] - gh[j]);
      break;
    case ENG_CELL_LSTM:
      for (int j = 0; j < G; j++)
        g[j] += gh[j];
      eng_vsigmoid(g, 2 * H); /* i, f */
      eng_vtanh(g + 2 * H, H); /* g */
      eng_vsigmoid(g + 3 * H, H); /* o */
      for (int j = 0; j < H; j++) {
        c[j] = g[H + j] * c[j] + g[j] * g[2 * H + j];
        gh[j] = c[j];
      }
      eng_vtanh(gh, H);
      for (int j = 0; j < H; j++)
        h[j] = g[3 * H + j] * gh[j];
      break;
    case ENG_CELL_RNN_TANH:
      for (int j = 0; j < H; j++)
        h[j] = g[j] + gh[j];
      eng_vtanh(h, H);
      break;
    default:
      for (int j = 0; j < H; j++) {
        double z = g[j] + gh[j];
        h[j] = z > 0.0 ? z : 0.0;
      }
    }
  }
}

/* exp with its argument clamped to [-230, 230] (below). */
static inline __attribute__((always_inline)) double vexp230(double x)
{
  x = __builtin_fmax(x, -230.0);
  x = __builtin_fmin(x, 230.0);
  return vexp(x);
}

/* The LSTM cells of n rows in one pass (recurrent_mc.c): gate
 * pre-activations z (n x 4H at ldz, gates i, f, g, o) plus the bias b
 * (4H), the state rows hc ([h | c], ld ldhc) updated in place.
 *
 * With e_i = exp(-z_i), e_f = exp(-z_f), e_g = exp(2 z_g), e_o = exp(-z_o)
 * and e_c = exp(2 c'), the five non-linearities take two divisions:
 *   c' = f c + i g = (c (1 + e_i)(e_g + 1) + (e_g - 1)(1 + e_f))
 *                    / ((1 + e_f)(1 + e_i)(e_g + 1)),
 *   h' = o tanh(c') = (e_c - 1) / ((1 + e_o)(e_c + 1)).
 * Arguments are clamped to [-230, 230] so that a product of three factors
 * stays below e^690 (finite); the gates are then saturated to within
 * e^-230 (1e-100) absolute.  Rounding as for eng_vsigmoid and eng_vtanh:
 * absolute, about 1e-16 of the terms' size (e_g - 1 and e_c - 1 lose
 * relative accuracy near 0 exactly as 1 - 2 / (e + 1) does).  Contracted
 * to fused multiply-adds where the machine has them (x86-64-v3 and v4:
 * the polynomial of exp is then half the instructions), which only
 * rounds less. */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VMATH_CLONES_FMA __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VMATH_CLONES_FMA
#endif
VMATH_CLONES_FMA void eng_lstm_cells(int n, int H, const double *restrict z, int ldz,
                                 const double *restrict b, double *restrict hc, int ldhc)
{
  for (int s = 0; s < n; s++) {
    const double *zr = z + (size_t)s * ldz;
    double *h = hc + (size_t)s * ldhc, *c = h + H;
    for (int j = 0; j < H; j++) {
      double ai = 1.0 + vexp230(-(zr[j] + b[j]));
      double af = 1.0 + vexp230(-(zr[H + j] + b[H + j]));
      double eg = vexp230(2.0 * (zr[2 * H + j] + b[2 * H + j]));
      double ao = 1.0 + vexp230(-(zr[3 * H + j] + b[3 * H + j]));
      double ag = eg + 1.0;
      double cv = (c[j] * ai * ag + (eg - 1.0) * af) / (af * ai * ag);
      double ec = vexp230(2.0 * cv);
      c[j] = cv;
      h[j] = (ec - 1.0) / (ao * (ec + 1.0));
    }
  }
}
#pragma GCC pop_options
