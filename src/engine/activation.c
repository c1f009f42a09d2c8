/*
 * activation.c -- the activation table: value, first and second derivative.
 *
 * To add an activation: a value in enum eng_act (engine.h), one eval
 * function here and one row in `table`.  The forward pass, the tangent
 * pass and the range check all read this table.
 */
#include <math.h>
#include <string.h>
#include "engine/internal.h"

static void act_identity(double z, double *f, double *d1, double *d2)
{
  *f = z;
  *d1 = 1.0;
  *d2 = 0.0;
}

/* relu'' is 0 everywhere (a distribution at 0 that we ignore, as autograd
 * does); relu'(0) = 0 as in PyTorch. */
static void act_relu(double z, double *f, double *d1, double *d2)
{
  *f = z > 0.0 ? z : 0.0;
  *d1 = z > 0.0 ? 1.0 : 0.0;
  *d2 = 0.0;
}

#define LEAKY_SLOPE 0.01
static void act_leaky_relu(double z, double *f, double *d1, double *d2)
{
  *f = z > 0.0 ? z : LEAKY_SLOPE * z;
  *d1 = z > 0.0 ? 1.0 : LEAKY_SLOPE;
  *d2 = 0.0;
}

/* elu with alpha 1: e^z - 1 below zero. */
static void act_elu(double z, double *f, double *d1, double *d2)
{
  if (z > 0.0) {
    *f = z;
    *d1 = 1.0;
    *d2 = 0.0;
  } else {
    double e = exp(z);
    *f = expm1(z);
    *d1 = e;
    *d2 = e;
  }
}

static double sigmoid(double z)
{
  if (z >= 0.0)
    return 1.0 / (1.0 + exp(-z));
  double e = exp(z);
  return e / (1.0 + e);
}

static void act_sigmoid(double z, double *f, double *d1, double *d2)
{
  double s = sigmoid(z);
  double ds = s * (1.0 - s);
  *f = s;
  *d1 = ds;
  *d2 = ds * (1.0 - 2.0 * s);
}

static void act_tanh(double z, double *f, double *d1, double *d2)
{
  double t = tanh(z);
  double dt = 1.0 - t * t;
  *f = t;
  *d1 = dt;
  *d2 = -2.0 * t * dt;
}

/* log(1 + e^z) without overflow for large z. */
static void act_softplus(double z, double *f, double *d1, double *d2)
{
  double s = sigmoid(z);
  *f = z > 0.0 ? z + log1p(exp(-z)) : log1p(exp(z));
  *d1 = s;
  *d2 = s * (1.0 - s);
}

/* Exact gelu: z Phi(z); gelu' = Phi + z phi; gelu'' = phi (2 - z^2). */
static void act_gelu(double z, double *f, double *d1, double *d2)
{
  const double inv_sqrt2 = 0.70710678118654752440;
  const double inv_sqrt2pi = 0.39894228040143267794;
  double cdf = 0.5 * erfc(-z * inv_sqrt2);
  double pdf = inv_sqrt2pi * exp(-0.5 * z * z);
  *f = z * cdf;
  *d1 = cdf + z * pdf;
  *d2 = pdf * (2.0 - z * z);
}

/* gelu's minimum, about -0.16997 at z = -0.7518; rounded outwards. */
#define GELU_MIN (-0.17)

static const struct eng_act_info table[ENG_ACT__COUNT] = {
    [ENG_ACT_IDENTITY] = {"identity", act_identity, -INFINITY, INFINITY},
    [ENG_ACT_RELU] = {"relu", act_relu, 0.0, INFINITY},
    [ENG_ACT_LEAKY_RELU] = {"leaky_relu", act_leaky_relu, -INFINITY, INFINITY},
    [ENG_ACT_ELU] = {"elu", act_elu, -1.0, INFINITY},
    [ENG_ACT_SIGMOID] = {"sigmoid", act_sigmoid, 0.0, 1.0},
    [ENG_ACT_TANH] = {"tanh", act_tanh, -1.0, 1.0},
    [ENG_ACT_SOFTPLUS] = {"softplus", act_softplus, 0.0, INFINITY},
    [ENG_ACT_GELU] = {"gelu", act_gelu, GELU_MIN, INFINITY},
    [ENG_ACT_SOFTMAX] = {"softmax", NULL, 0.0, 1.0},
    [ENG_ACT_LOG_SOFTMAX] = {"log_softmax", NULL, -INFINITY, 0.0},
};

const struct eng_act_info *eng_act_info(enum eng_act a)
{
  if ((int)a < 0 || a >= ENG_ACT__COUNT)
    return NULL;
  return &table[a];
}

const char *eng_act_name(enum eng_act a)
{
  const struct eng_act_info *p = eng_act_info(a);
  return p ? p->name : NULL;
}

int eng_act_from_name(const char *name, enum eng_act *out)
{
  if (!name)
    return -1;
  for (int a = 0; a < ENG_ACT__COUNT; a++)
    if (strcmp(table[a].name, name) == 0) {
      if (out)
        *out = (enum eng_act)a;
      return 0;
    }
  return -1;
}

void eng_softmax(const double *z, int n, double *s)
{
  double zmax = -INFINITY, sum = 0.0;
  for (int j = 0; j < n; j++)
    if (z[j] > zmax)
      zmax = z[j];
  for (int j = 0; j < n; j++) {
    s[j] = exp(z[j] - zmax);
    sum += s[j];
  }
  for (int j = 0; j < n; j++)
    s[j] /= sum;
}

void eng_log_softmax(const double *z, int n, double *y, double *s)
{
  double zmax = -INFINITY, sum = 0.0;
  for (int j = 0; j < n; j++)
    if (z[j] > zmax)
      zmax = z[j];
  for (int j = 0; j < n; j++) {
    double e = exp(z[j] - zmax);
    if (s)
      s[j] = e;
    sum += e;
  }
  double lse = zmax + log(sum);
  for (int j = 0; j < n; j++) {
    if (s)
      s[j] /= sum;
    y[j] = z[j] - lse;
  }
}

#define VMATH_SLICE (1 << 20)

void eng_act_rows(enum eng_act a, double *z, int n, int width)
{
  if (a == ENG_ACT_LOG_SOFTMAX) {
    for (int i = 0; i < n; i++)
      eng_log_softmax(z + (size_t)i * width, width, z + (size_t)i * width, NULL);
    return;
  }
  if (a == ENG_ACT_SOFTMAX) {
    for (int i = 0; i < n; i++)
      eng_softmax(z + (size_t)i * width, width, z + (size_t)i * width);
    return;
  }
  if (a == ENG_ACT_IDENTITY)
    return;
  size_t total = (size_t)n * width;
  /* Values only, for the common activations: every forward pass
   * (montecarlo, gradients, integrated gradients, unscented) goes through
   * here, and the call through the table plus derivatives nobody reads
   * cost as much as the exp.  Sigmoid and tanh take vmath.c's vectorized
   * exp (a libm call per unit was most of a forward pass of a sigmoid
   * network after the GEMMs); they differ from the table's values by
   * rounding only (at most 3.4e-16). */
  switch (a) {
  case ENG_ACT_SIGMOID:
  case ENG_ACT_TANH:
    /* vectorized (vmath.c: within 3.4e-16 of libm's), in slices that
     * an int counts */
    for (size_t i = 0; i < total; i += VMATH_SLICE) {
      int len = total - i < VMATH_SLICE ? (int)(total - i) : VMATH_SLICE;
      if (a == ENG_ACT_SIGMOID)
        eng_vsigmoid(z + i, len);
      else
        eng_vtanh(z + i, len);
    }
    return;
  case ENG_ACT_RELU:
    for (size_t i = 0; i < total; i++)
      z[i] = z[i] > 0.0 ? z[i] : 0.0;
    return;
  default:
    break;
  }
  void (*ev)(double, double *, double *, double *) = table[a].eval;
  double d1, d2;
  for (size_t i = 0; i < total; i++)
    ev(z[i], &z[i], &d1, &d2);
}

/* ---- stop checks (engine.h): per thread ---- */
static _Thread_local eng_stop_fn stop_fn;
static _Thread_local void *stop_cls;

void eng_set_stop(eng_stop_fn fn, void *cls)
{
  stop_fn = fn;
  stop_cls = cls;
}

int eng_should_stop(void)
{
  return stop_fn != NULL && stop_fn(stop_cls) != 0;
}
