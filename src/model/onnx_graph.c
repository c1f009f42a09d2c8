/*
 * onnx_graph.c -- walk an ONNX graph as the chain of layers aced explains
 * and write it as the JSON network of a registration (onnx.c has the
 * DESIGN).
 *
 * The walk starts at the graph's one input and follows the value from
 * node to node: every node it meets must read the chain's current value
 * (and otherwise only constants) and be its only reader, and the last
 * value must be the graph's one output.  Linear maps (Gemm; MatMul and the
 * Add of its bias) open a layer, weights [out][in] as aced keeps them;
 * the activation after a layer closes it.  An activation with no open
 * layer before it (two in a row, or one straight after the input) gets an
 * identity layer of its own, which computes exactly the same function.
 * Identity, Dropout (inference) and Flatten of a batch of vectors change
 * nothing.  GELU as PyTorch exports it -- x * 0.5 * (1 + erf(x / sqrt 2)),
 * five nodes reading x twice -- is recognised as that pattern and is the
 * one place where the chain may fork.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/onnx.h"

#define S(x) ((x) != NULL ? (x) : "")

static const Onnx__NodeProto *node(const struct walk *w, int i)
{
  return w->c->g->node[i];
}

/* How many inputs of nodes not yet walked, and graph outputs, read v. */
static int uses(const struct walk *w, const char *v)
{
  const Onnx__GraphProto *g = w->c->g;
  size_t i, j;
  int k = 0;
  for (i = 0; i < g->n_node; i++)
    if (!w->c->done[i])
      for (j = 0; j < g->node[i]->n_input; j++)
        k += strcmp(S(g->node[i]->input[j]), v) == 0;
  for (i = 0; i < g->n_output; i++)
    k += strcmp(S(g->output[i]->name), v) == 0;
  return k;
}

/* The first node (not yet walked) after `from` that reads v, or -1. */
static int reader(const struct walk *w, const char *v, int from)
{
  const Onnx__GraphProto *g = w->c->g;
  size_t i, j;
  for (i = (size_t)(from + 1); i < g->n_node; i++)
    if (!w->c->done[i])
      for (j = 0; j < g->node[i]->n_input; j++)
        if (strcmp(S(g->node[i]->input[j]), v) == 0)
          return (int)i;
  return -1;
}

static int is_op(const Onnx__NodeProto *n, const char *op)
{
  return strcmp(S(n->op_type), op) == 0;
}

/* The scalar constant input `k` of node n, or NAN. */
static double scalar_in(const struct walk *w, const Onnx__NodeProto *n, size_t k)
{
  const struct onnx_const *t = k < n->n_input ? onnx_const_find(w->c, n->input[k]) : NULL;
  return t != NULL && t->n == 1 && t->d != NULL ? t->d[0] : NAN;
}

static double attr_f(const Onnx__NodeProto *n, const char *name, double dflt)
{
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  return a != NULL && a->has_f ? (double)a->f : dflt;
}

static long attr_i(const Onnx__NodeProto *n, const char *name, long dflt)
{
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  return a != NULL && a->has_i ? (long)a->i : dflt;
}

/* ---- layers ------------------------------------------------------- */

static enum aced_err push_layer(struct walk *w, int ni, int n_in, int n_out)
{
  struct ff_layer *L;
  if (w->width >= 0 && n_in != w->width)
    return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                          "takes %d inputs, but the value before it has %ld", n_in, w->width);
  if (w->rank != 2)
    return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                          "its input has rank %d; aced's layers take a batch of vectors "
                          "(rank 2: Flatten first)", w->rank);
  if (w->n > 0 && w->L[w->n - 1].act == NULL)
    w->L[w->n - 1].act = "identity";
  if (w->n == ACED_MAX_LAYERS)
    return onnx_node_fail(w->c, ni, ACED_E_LIMIT, "more than %d layers", ACED_MAX_LAYERS);
  if (n_in < 1 || n_out < 1 || n_in > ACED_MAX_UNITS || n_out > ACED_MAX_UNITS)
    return onnx_node_fail(w->c, ni, ACED_E_LIMIT, "%d x %d weights; 1 to %d units allowed",
                          n_out, n_in, ACED_MAX_UNITS);
  L = &w->L[w->n++];
  L->n_in = n_in;
  L->n_out = n_out;
  L->W = calloc((size_t)n_in * (size_t)n_out, sizeof *L->W);
  L->b = calloc((size_t)n_out, sizeof *L->b);
  if (L->W == NULL || L->b == NULL)
    return aced_error_set(w->c->err, ACED_E_INTERNAL, "", "out of memory");
  w->width = n_out;
  return ACED_OK;
}

/* An identity layer (W = I) for an activation or bias with no open layer. */
static enum aced_err push_identity(struct walk *w, int ni)
{
  int k;
  enum aced_err rc;
  if (w->width < 0)
    return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                          "the width of its input is unknown (a dynamic dimension)");
  if ((rc = push_layer(w, ni, (int)w->width, (int)w->width)) != ACED_OK)
    return rc;
  for (k = 0; k < w->width; k++)
    w->L[w->n - 1].W[(size_t)k * (size_t)w->width + (size_t)k] = 1.0;
  return ACED_OK;
}

static enum aced_err activation(struct walk *w, int ni, const char *act)
{
  enum aced_err rc;
  if ((w->n == 0 || w->L[w->n - 1].act != NULL) && (rc = push_identity(w, ni)) != ACED_OK)
    return rc;
  w->L[w->n - 1].act = act;
  w->L[w->n - 1].bias_open = 0;
  return ACED_OK;
}

/* A bias vector: t has `width` elements (dims [width] or [1, width]) or
 * is one scalar broadcast. */
static int bias_ok(const struct onnx_const *t, long width)
{
  if (t == NULL || t->d == NULL)
    return 0;
  if (t->n == 1)
    return 1;
  return t->n == width && (t->n_dims == 1 || (t->n_dims == 2 && t->dims[0] == 1));
}

static void add_bias(struct ff_layer *L, const struct onnx_const *t, double scale)
{
  int k;
  for (k = 0; k < L->n_out; k++)
    L->b[k] += scale * (t->n == 1 ? t->d[0] : t->d[k]);
}

static enum aced_err gemm(struct walk *w, int ni)
{
  const Onnx__NodeProto *n = node(w, ni);
  const struct onnx_const *B = n->n_input > 1 ? onnx_const_find(w->c, n->input[1]) : NULL;
  const struct onnx_const *C = n->n_input > 2 ? onnx_const_find(w->c, n->input[2]) : NULL;
  double alpha = attr_f(n, "alpha", 1.0), beta = attr_f(n, "beta", 1.0);
  long transB = attr_i(n, "transB", 0);
  int n_in, n_out, i, j;
  enum aced_err rc;
  struct ff_layer *L;

  if (attr_i(n, "transA", 0) != 0 || strcmp(S(n->input[0]), w->cur) != 0)
    return onnx_unsupported(w->c, ni, "Gemm must read the chain's value as A, untransposed");
  if (B == NULL || B->d == NULL || B->n_dims != 2)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID, "B must be a constant floating-point matrix");
  if (!isfinite(alpha) || !isfinite(beta))
    return onnx_node_fail(w->c, ni, ACED_E_NOT_FINITE, "alpha and beta must be finite");
  n_out = (int)(transB ? B->dims[0] : B->dims[1]);
  n_in = (int)(transB ? B->dims[1] : B->dims[0]);
  if ((rc = push_layer(w, ni, n_in, n_out)) != ACED_OK)
    return rc;
  L = &w->L[w->n - 1];
  for (i = 0; i < n_out; i++)
    for (j = 0; j < n_in; j++)
      L->W[(size_t)i * (size_t)n_in + (size_t)j] =
          alpha * B->d[transB ? (size_t)i * (size_t)n_in + (size_t)j
                              : (size_t)j * (size_t)n_out + (size_t)i];
  if (n->n_input > 2 && S(n->input[2])[0] != '\0') {
    if (!bias_ok(C, n_out))
      return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                            "C must be a constant of %d elements (or one)", n_out);
    add_bias(L, C, beta);
  }
  return ACED_OK;
}

static enum aced_err matmul(struct walk *w, int ni)
{
  const Onnx__NodeProto *n = node(w, ni);
  const struct onnx_const *B = n->n_input > 1 ? onnx_const_find(w->c, n->input[1]) : NULL;
  int n_in, n_out, i, j;
  enum aced_err rc;
  struct ff_layer *L;

  if (strcmp(S(n->input[0]), w->cur) != 0)
    return onnx_unsupported(w->c, ni, "MatMul must read the chain's value as its first input");
  if (B == NULL || B->d == NULL || B->n_dims != 2)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID, "B must be a constant floating-point matrix");
  n_in = (int)B->dims[0];
  n_out = (int)B->dims[1];
  if ((rc = push_layer(w, ni, n_in, n_out)) != ACED_OK)
    return rc;
  L = &w->L[w->n - 1];
  for (i = 0; i < n_out; i++)
    for (j = 0; j < n_in; j++)
      L->W[(size_t)i * (size_t)n_in + (size_t)j] = B->d[(size_t)j * (size_t)n_out + (size_t)i];
  L->bias_open = 1;
  return ACED_OK;
}

static enum aced_err add(struct walk *w, int ni)
{
  const Onnx__NodeProto *n = node(w, ni);
  const struct onnx_const *C =
      n->n_input != 2 ? NULL
                      : onnx_const_find(w->c, strcmp(S(n->input[0]), w->cur) == 0 ? n->input[1]
                                                                                   : n->input[0]);
  enum aced_err rc;

  if (n->n_input != 2 || w->width < 0 || !bias_ok(C, w->width))
    return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                          "Add must add a constant vector of %ld elements to the chain's value",
                          w->width);
  if (!(w->n > 0 && w->L[w->n - 1].bias_open) && (rc = push_identity(w, ni)) != ACED_OK)
    return rc;
  add_bias(&w->L[w->n - 1], C, 1.0);
  w->L[w->n - 1].bias_open = 0;
  return ACED_OK;
}

/* The one reader of v after node `from` if it is `op` with n_in inputs,
 * else -1. */
static int sole_reader(const struct walk *w, const char *v, int from, const char *op, size_t n_in)
{
  int r = uses(w, v) == 1 ? reader(w, v, from) : -1;
  return r >= 0 && is_op(node(w, r), op) && node(w, r)->n_input == n_in &&
                 node(w, r)->n_output >= 1
             ? r
             : -1;
}

/* Of a two-input node reading v, the other input (NULL if v is neither). */
static const char *other_input(const struct walk *w, int ni, const char *v)
{
  const Onnx__NodeProto *n = node(w, ni);
  if (strcmp(S(n->input[0]), v) == 0)
    return n->input[1];
  return strcmp(S(n->input[1]), v) == 0 ? n->input[0] : NULL;
}

/* Its value if that other input is a scalar constant, else NAN. */
static double other_scalar(const struct walk *w, int ni, const char *v)
{
  const struct onnx_const *t = onnx_const_find(w->c, other_input(w, ni, v));
  return t != NULL && t->n == 1 && t->d != NULL ? t->d[0] : NAN;
}

/* PyTorch's exact GELU: Div(x, sqrt 2) -> Erf -> Add 1 -> Mul(x, .) ->
 * Mul 0.5 (Mul by 1/sqrt 2 for the Div also accepted), the two readers of
 * x being a and b.  On a match marks the five nodes walked and sets
 * *last to the final one. */
static int gelu_pattern(struct walk *w, int a, int b, int *last)
{
  const double r2 = sqrt(2.0);
  int div = -1, mul = -1, erf, add1, half, i, k;
  const char *v;
  for (k = 0; k < 2; k++) {
    i = k ? b : a;
    const Onnx__NodeProto *n = node(w, i);
    if (n->n_input != 2 || n->n_output < 1)
      return 0;
    if (is_op(n, "Div") && strcmp(S(n->input[0]), w->cur) == 0 &&
        fabs(scalar_in(w, n, 1) - r2) <= 1e-6)
      div = i;
    else if (is_op(n, "Mul") && strcmp(S(n->input[0]), w->cur) == 0 &&
             fabs(scalar_in(w, n, 1) - 1.0 / r2) <= 1e-6 && div < 0)
      div = i;
    else if (is_op(n, "Mul"))
      mul = i;
  }
  if (div < 0 || mul < 0)
    return 0;
  v = node(w, div)->output[0];
  if ((erf = sole_reader(w, v, div, "Erf", 1)) < 0)
    return 0;
  v = node(w, erf)->output[0];
  if ((add1 = sole_reader(w, v, erf, "Add", 2)) < 0 || other_scalar(w, add1, v) != 1.0)
    return 0;
  v = node(w, add1)->output[0];
  if (sole_reader(w, v, add1, "Mul", 2) != mul || other_input(w, mul, v) == NULL ||
      strcmp(other_input(w, mul, v), w->cur) != 0)
    return 0;
  v = node(w, mul)->output[0];
  if ((half = sole_reader(w, v, mul, "Mul", 2)) < 0 || other_scalar(w, half, v) != 0.5)
    return 0;
  w->c->done[div] = w->c->done[erf] = w->c->done[add1] = w->c->done[mul] = 1;
  *last = half;
  return 1;
}

static enum aced_err softmax_axis(struct walk *w, int ni, const char *act)
{
  long axis = attr_i(node(w, ni), "axis", w->c->opset < 13 ? 1 : -1);
  /* over the units: the last axis, which is 2 on a recurrent head's
   * [steps, batch, units] */
  if (w->rank != 2 || (axis != 1 + (w->rnn.on && w->rnn.every) && axis != -1))
    return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                          "aced's %s is over the units of a batch of vectors (axis 1 of "
                          "rank 2); this one has axis %ld of rank %d",
                          act, axis, w->rank);
  return activation(w, ni, act);
}

/* One node reading the chain's value; w->cur moves to its output. */
static enum aced_err step(struct walk *w, int ni)
{
  const Onnx__NodeProto *n = node(w, ni);
  size_t j;

  if (S(n->domain)[0] != '\0' && strcmp(n->domain, "ai.onnx") != 0)
    return onnx_unsupported(w->c, ni, "an operator of another domain than ONNX's");
  if (n->n_output < 1 || S(n->output[0])[0] == '\0')
    return onnx_node_fail(w->c, ni, ACED_E_INVALID, "the node has no output");
  for (j = 0; j < n->n_input; j++) {
    const char *in = S(n->input[j]);
    if (in[0] != '\0' && strcmp(in, w->cur) != 0 && onnx_const_find(w->c, in) == NULL) {
      char v[64];
      snprintf(v, sizeof v, "%s", in);
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "reads '%s', which is neither the chain's value nor a constant: "
                            "the graph is not a chain (several inputs, or branches that "
                            "join), which aced cannot explain",
                            v);
    }
  }
  for (j = 1; j < n->n_output; j++)
    if (S(n->output[j])[0] != '\0' && uses(w, n->output[j]) > 0)
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "its output %zu is used: the graph branches", j);

  if (is_op(n, "Gemm"))
    return gemm(w, ni);
  if (is_op(n, "MatMul"))
    return matmul(w, ni);
  if (is_op(n, "Add"))
    return add(w, ni);
  if (is_op(n, "Relu"))
    return activation(w, ni, "relu");
  if (is_op(n, "Sigmoid"))
    return activation(w, ni, "sigmoid");
  if (is_op(n, "Tanh"))
    return activation(w, ni, "tanh");
  if (is_op(n, "Softplus"))
    return activation(w, ni, "softplus");
  if (is_op(n, "LeakyRelu")) {
    double a = attr_f(n, "alpha", 0.01);
    if (fabs(a - 0.01) > 1e-9)
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "alpha %.9g; aced's leaky_relu has slope 0.01", a);
    return activation(w, ni, "leaky_relu");
  }
  if (is_op(n, "Elu")) {
    if (attr_f(n, "alpha", 1.0) != 1.0)
      return onnx_node_fail(w->c, ni, ACED_E_INVALID, "alpha %.9g; aced's elu has alpha 1",
                            attr_f(n, "alpha", 1.0));
    return activation(w, ni, "elu");
  }
  if (is_op(n, "Gelu")) {
    const Onnx__AttributeProto *a = onnx_attr(n, "approximate");
    if (a != NULL && a->has_s && !(a->s.len == 4 && memcmp(a->s.data, "none", 4) == 0))
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "approximate GELU; aced's gelu is the exact x Phi(x)");
    return activation(w, ni, "gelu");
  }
  if (is_op(n, "Softmax"))
    return softmax_axis(w, ni, "softmax");
  if (is_op(n, "LogSoftmax"))
    return softmax_axis(w, ni, "log_softmax");
  if (is_op(n, "Identity"))
    return ACED_OK;
  if (is_op(n, "Dropout")) {
    if (n->n_input > 2 && S(n->input[2])[0] != '\0') {
      const struct onnx_const *t = onnx_const_find(w->c, n->input[2]);
      if (t == NULL || t->n != 1 || (t->d != NULL ? t->d[0] != 0.0 : t->i[0] != 0))
        return onnx_node_fail(w->c, ni, ACED_E_INVALID, "Dropout in training mode");
    }
    return ACED_OK;
  }
  if (is_op(n, "Flatten") && w->rnn.on && w->rnn.every)
    return onnx_unsupported(w->c, ni, "a Flatten on a head over every step");
  if (is_op(n, "Flatten")) {
    long axis = attr_i(n, "axis", 1);
    if (!(axis == 1 || (axis == -1 && w->rank == 2)))
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "Flatten with axis %ld; aced flattens each batch row (axis 1)",
                            axis);
    w->rank = 2;
    return ACED_OK;
  }
  return onnx_unsupported(w->c, ni, "operator not supported");
}

/* ---- the graph ---------------------------------------------------- */

/* Constant nodes, before the walk (they may come anywhere before use). */
static enum aced_err collect_constants(struct onnx_ctx *c)
{
  size_t i;
  enum aced_err rc;
  for (i = 0; i < c->g->n_node; i++) {
    const Onnx__NodeProto *n = c->g->node[i];
    const Onnx__AttributeProto *a;
    if (is_op(n, "Loop") || is_op(n, "Scan") || is_op(n, "If"))
      return onnx_unsupported(c, (int)i,
                              "control flow (Loop, Scan, If): the graph is not a chain of "
                              "layers");
    if (!is_op(n, "Constant") || (S(n->domain)[0] != '\0' && strcmp(n->domain, "ai.onnx") != 0))
      continue;
    if (n->n_output != 1 || (a = onnx_attr(n, "value")) == NULL || a->t == NULL)
      return onnx_unsupported(c, (int)i, "a Constant without a 'value' tensor");
    if ((rc = onnx_const_decode(c, a->t, n->output[0], "constant", &c->consts[c->n_consts])) !=
        ACED_OK)
      return rc;
    c->n_consts++;
    c->done[i] = 1;
  }
  return ACED_OK;
}

/* The graph's one input (not an initializer): its width and rank. */
static enum aced_err find_input(struct walk *w)
{
  const Onnx__GraphProto *g = w->c->g;
  const Onnx__ValueInfoProto *in = NULL;
  const Onnx__TypeProto__Tensor *tt;
  size_t i, k = 0;

  for (i = 0; i < g->n_input; i++)
    if (onnx_const_find(w->c, g->input[i]->name) == NULL) {
      in = g->input[i];
      k++;
    }
  if (k != 1)
    return aced_error_set(w->c->err, ACED_E_INVALID, "network.model",
                          "the graph has %zu inputs; aced explains a chain from one input", k);
  if (g->n_output != 1)
    return aced_error_set(w->c->err, ACED_E_INVALID, "network.model",
                          "the graph has %zu outputs; aced explains a chain to one output",
                          g->n_output);
  w->cur = S(in->name);
  if (in->type == NULL || in->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
      (tt = in->type->tensor_type) == NULL ||
      !(tt->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
        tt->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE))
    return aced_error_set(w->c->err, ACED_E_INVALID, "network.model",
                          "the graph's input must be a float32 or float64 tensor");
  w->rank = tt->shape != NULL ? (int)(tt->shape->n_dim > 64 ? 64 : tt->shape->n_dim) : -1;
  if (w->rank < 2)
    return aced_error_set(w->c->err, ACED_E_SHAPE, "network.model",
                          "the graph's input must be a batch of vectors (rank 2, or more "
                          "before a Flatten); its rank is %d", w->rank);
  w->width = 1;
  for (i = 1; i < (size_t)w->rank; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 1 ||
        d->dim_value > ACED_MAX_UNITS || w->width * d->dim_value > ACED_MAX_UNITS) {
      w->width = -1;
      break;
    }
    w->width *= (long)d->dim_value;
  }
  return ACED_OK;
}

static json_t *reals(const double *a, int n)
{
  json_t *r = json_array();
  int i;
  for (i = 0; r != NULL && i < n; i++)
    if (json_array_append_new(r, json_real(a[i])) != 0) {
      json_decref(r);
      return NULL;
    }
  return r;
}

/* The layers as JSON; NULL when out of memory.  Every value is finite
 * (checked before), so json_real() cannot refuse one. */
static json_t *layers_json(struct walk *w)
{
  json_t *layers = json_array();
  int l, i;
  for (l = 0; layers != NULL && l < w->n; l++) {
    struct ff_layer *L = &w->L[l];
    json_t *W = json_array(), *b = reals(L->b, L->n_out), *lj = json_object();
    for (i = 0; W != NULL && i < L->n_out; i++)
      if (json_array_append_new(W, reals(L->W + (size_t)i * (size_t)L->n_in, L->n_in)) != 0) {
        json_decref(W);
        W = NULL;
      }
    free(L->W); /* as JSON now: not held twice */
    L->W = NULL;
    if (W == NULL || b == NULL || lj == NULL) {
      json_decref(W);
      json_decref(b);
      json_decref(lj);
      json_decref(layers);
      return NULL;
    }
    /* these steal their value even when they fail */
    if (json_object_set_new(lj, "weights", W) != 0 ||
        json_object_set_new(lj, "bias", b) != 0 ||
        json_object_set_new(lj, "activation", json_string(L->act != NULL ? L->act : "identity")) !=
            0 ||
        json_array_append_new(layers, lj) != 0) {
      json_decref(layers);
      return NULL;
    }
  }
  return layers;
}

/* Weights scaled by Gemm's alpha, or biases by its beta, may overflow. */
static enum aced_err check_finite(const struct walk *w)
{
  int l;
  size_t i;
  for (l = 0; l < w->n; l++) {
    const struct ff_layer *L = &w->L[l];
    for (i = 0; i < (size_t)L->n_out * (size_t)L->n_in; i++)
      if (!isfinite(L->W[i]))
        return aced_error_set(w->c->err, ACED_E_NOT_FINITE, "network.model",
                              "layer %d: weight [%zu][%zu] is not finite", l,
                              i / (size_t)L->n_in, i % (size_t)L->n_in);
    for (i = 0; i < (size_t)L->n_out; i++)
      if (!isfinite(L->b[i]))
        return aced_error_set(w->c->err, ACED_E_NOT_FINITE, "network.model",
                              "layer %d: bias [%zu] is not finite", l, i);
  }
  return ACED_OK;
}

enum aced_err onnx_graph_convert(struct onnx_ctx *c, json_t **network, int *n_out)
{
  struct walk *w = calloc(1, sizeof *w);
  const Onnx__GraphProto *g = c->g;
  enum aced_err rc;
  json_t *layers;
  size_t i;

  *network = NULL;
  if (w == NULL)
    return aced_error_set(c->err, ACED_E_INTERNAL, "", "out of memory");
  w->c = c;
  if ((rc = collect_constants(c)) != ACED_OK || (rc = find_input(w)) != ACED_OK)
    goto out;
  for (i = 0; i < g->n_node; i++)
    if (is_op(g->node[i], "GRU") || is_op(g->node[i], "LSTM") || is_op(g->node[i], "RNN"))
      w->rnn.on = 1;
  if (w->rnn.on && (rc = onnx_rnn_walk(w)) != ACED_OK)
    goto out;
  for (;;) {
    int a, b, k = uses(w, w->cur), last;
    if (g->n_output == 1 && strcmp(S(g->output[0]->name), w->cur) == 0 && k == 1)
      break;
    a = reader(w, w->cur, -1);
    if (a < 0) {
      char v[64];
      snprintf(v, sizeof v, "%s", w->cur);
      rc = aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "the chain ends at '%s', which is not the graph's output", v);
      goto out;
    }
    if (k == 2 && (b = reader(w, w->cur, a)) >= 0 && gelu_pattern(w, a, b, &last)) {
      if ((rc = activation(w, last, "gelu")) != ACED_OK)
        goto out;
      a = last;
    } else if (k > 1) {
      char v[64];
      snprintf(v, sizeof v, "%s", w->cur);
      rc = onnx_node_fail(c, a, ACED_E_INVALID,
                          "not a chain: '%s' is read %d times (the graph branches), and "
                          "aced explains a chain of layers",
                          v, k);
      goto out;
    } else if ((rc = step(w, a)) != ACED_OK)
      goto out;
    c->done[a] = 1;
    w->cur = S(g->node[a]->output[0]);
  }
  for (i = 0; i < g->n_node; i++)
    if (!c->done[i]) {
      rc = onnx_node_fail(c, (int)i, ACED_E_INVALID,
                          "not on the chain from the graph's input to its output");
      goto out;
    }
  if (w->n == 0 && w->rnn.on && (rc = push_identity(w, (int)g->n_node - 1)) != ACED_OK)
    goto out; /* a recurrent net without a head: an identity one */
  if (w->n == 0) {
    rc = aced_error_set(c->err, ACED_E_INVALID, "network.model",
                        "the graph has no linear layer (Gemm or MatMul)");
    goto out;
  }
  if (w->L[w->n - 1].act == NULL)
    w->L[w->n - 1].act = "identity";
  if ((rc = check_finite(w)) != ACED_OK)
    goto out;
  c->steps = w->rnn.steps;
  onnx_release_input(c); /* everything needed is in w now */
  if ((layers = layers_json(w)) == NULL ||
      (*network = w->rnn.on ? onnx_rnn_json(w, layers)
                            : json_pack("{s:s,s:o}", "type", "feedforward", "layers", layers)) ==
          NULL) {
    rc = aced_error_set(c->err, ACED_E_INTERNAL, "", "out of memory");
    goto out;
  }
  *n_out = (int)w->width;
  rc = ACED_OK;
out:
  onnx_rnn_free(w);
  for (i = 0; i < (size_t)w->n; i++) {
    free(w->L[i].W);
    free(w->L[i].b);
  }
  free(w);
  return rc;
}
