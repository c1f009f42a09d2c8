/*
 * onnx_rnn.c -- the recurrent part of an ONNX graph: torch.nn.GRU, LSTM
 * and RNN as torch.onnx.export writes them, turned into issue #12's
 * "recurrent" network (PyTorch's layout and gate order).
 *
 * The exporter surrounds the cells with scaffolding: the initial hidden
 * state is zeros of a shape computed from the input's (Shape, Gather,
 * Unsqueeze, Concat, ConstantOfShape, Slice per layer), batch_first adds
 * a Transpose before and after, each cell's output [steps, 1, batch,
 * hidden] loses its direction axis by a Squeeze, a head on the last step
 * takes a Gather of step -1 (or of the last layer's final state, a Concat
 * of the layers' Y_h), and the head itself is Gemm, or MatMul + Add over
 * every step.  The walk gives every value a kind -- shape arithmetic,
 * zeros, the sequence out of cell l, the final state of cells l..m, the
 * last step of cell l -- node by node, in the graph's (topological)
 * order, refusing anything else, until the first node of the head; the
 * feedforward walk (onnx_graph.c) takes it from there.
 *
 * Gate orders.  ONNX keeps GRU gates as z, r, h and LSTM gates as i, o,
 * f, c; PyTorch as r, z, n and i, f, g, o.  PyTorch's GRU applies the
 * reset gate to (W_hn h + b_hn), which is ONNX's linear_before_reset = 1;
 * a GRU with linear_before_reset = 0 computes another function and is
 * refused.  ONNX's B is [W_b; R_b], PyTorch's bias_ih and bias_hh.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/onnx.h"

#define S(x) ((x) != NULL ? (x) : "")

enum kind { K_NONE, K_SHAPE, K_ZERO, K_SEQ, K_STATE, K_LAST };

/* What a value is.  K_SEQ: steps x batch x hidden out of cell `layer`
 * (-1: the graph's input), with the time axis at `time_axis` and, when
 * `dirs`, ONNX's direction axis still at 1.  K_STATE: the final states of
 * cells layer..last stacked on axis 0.  K_LAST: the last step of cell
 * `layer`, batch x hidden. */
struct val {
  const char *name;
  enum kind kind;
  int layer, last, time_axis, dirs, x_flip;
};

struct rwalk {
  struct walk *w;
  int n;
  struct val *v;     /* one per node output, plus the input */
};

static const struct val *get(const struct rwalk *r, const char *name)
{
  int i;
  for (i = 0; i < r->n; i++)
    if (strcmp(r->v[i].name, name) == 0)
      return &r->v[i];
  return NULL;
}

static void put(struct rwalk *r, const char *name, struct val v)
{
  v.name = name;
  r->v[r->n++] = v;
}

static const Onnx__NodeProto *node(const struct rwalk *r, int i)
{
  return r->w->c->g->node[i];
}

static int is_op(const Onnx__NodeProto *n, const char *op)
{
  return strcmp(S(n->op_type), op) == 0;
}

static int is_cell(const Onnx__NodeProto *n)
{
  return is_op(n, "GRU") || is_op(n, "LSTM") || is_op(n, "RNN");
}

/* The one integer of a constant input (or attribute list) k, or -999. */
static long const_int(const struct rwalk *r, const Onnx__NodeProto *n, size_t k,
                      const char *attr)
{
  const struct onnx_const *t = k < n->n_input ? onnx_const_find(r->w->c, n->input[k]) : NULL;
  const Onnx__AttributeProto *a = attr != NULL ? onnx_attr(n, attr) : NULL;
  if (t != NULL && t->i != NULL && t->n == 1)
    return (long)t->i[0];
  if (t == NULL && a != NULL && a->n_ints == 1)
    return (long)a->ints[0];
  return -999;
}

static long attr_int(const Onnx__NodeProto *n, const char *name, long dflt)
{
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  return a != NULL && a->has_i ? (long)a->i : dflt;
}

/* Is every input of n shape arithmetic, zeros or a constant? */
static int all_scaffold(const struct rwalk *r, const Onnx__NodeProto *n)
{
  size_t j;
  for (j = 0; j < n->n_input; j++) {
    const struct val *v = get(r, S(n->input[j]));
    if (S(n->input[j])[0] != '\0' && onnx_const_find(r->w->c, n->input[j]) == NULL &&
        (v == NULL || (v->kind != K_SHAPE && v->kind != K_ZERO)))
      return 0;
  }
  return 1;
}

/* ConstantOfShape's value attribute is a one-element tensor, 0 if absent. */
static int zero_fill(const Onnx__NodeProto *n)
{
  const Onnx__AttributeProto *a = onnx_attr(n, "value");
  const Onnx__TensorProto *t = a != NULL ? a->t : NULL;
  size_t i;
  if (t == NULL)
    return 1;
  if (t->has_raw_data) {
    for (i = 0; i < t->raw_data.len; i++)
      if (t->raw_data.data[i] != 0)
        return 0;
    return 1;
  }
  return (t->n_float_data == 1 && t->float_data[0] == 0.0f) ||
         (t->n_double_data == 1 && t->double_data[0] == 0.0) ||
         (t->n_int64_data == 1 && t->int64_data[0] == 0);
}

/* Copy gate block `from` of an ONNX [gates*H x cols] matrix to block `to`. */
static void block(double *dst, const double *src, int to, int from, int H, int cols)
{
  memcpy(dst + (size_t)to * (size_t)H * (size_t)cols, src + (size_t)from * (size_t)H * (size_t)cols,
         (size_t)H * (size_t)cols * sizeof *dst);
}

/* A cell node reading the sequence of layer `layer - 1`. */
static enum aced_err cell(struct rwalk *r, int ni, const struct val *x)
{
  static const int gru[3] = {1, 0, 2}, lstm[4] = {0, 2, 3, 1}, one[1] = {0};
  struct walk *w = r->w;
  const Onnx__NodeProto *n = node(r, ni);
  const struct onnx_const *W, *R, *B;
  const Onnx__AttributeProto *a;
  const int *map;
  struct rnn_cell *c;
  const char *name;
  int G, H, I, g;
  size_t k;

  if (is_op(n, "GRU")) {
    name = "gru", G = 3, map = gru;
    if (attr_int(n, "linear_before_reset", 0) != 1)
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "a GRU with linear_before_reset 0 (PyTorch's GRU, and aced's, "
                            "applies the reset gate after the linear map: 1)");
  } else if (is_op(n, "LSTM")) {
    name = "lstm", G = 4, map = lstm;
    if (attr_int(n, "input_forget", 0) != 0 || (n->n_input > 7 && S(n->input[7])[0] != '\0'))
      return onnx_node_fail(w->c, ni, ACED_E_INVALID, "peepholes or coupled input-forget gates");
  } else {
    name = "rnn_tanh", G = 1, map = one;
    a = onnx_attr(n, "activations");
    if (a != NULL && a->n_strings == 1 && a->strings[0].len == 4 &&
        memcmp(a->strings[0].data, "Relu", 4) == 0)
      name = "rnn_relu";
    else if (a != NULL && !(a->n_strings == 1 && a->strings[0].len == 4 &&
                            memcmp(a->strings[0].data, "Tanh", 4) == 0))
      return onnx_node_fail(w->c, ni, ACED_E_INVALID, "an RNN activation other than Tanh or Relu");
  }
  if ((name[0] == 'g' || name[0] == 'l') && onnx_attr(n, "activations") != NULL)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                          "non-default activations (PyTorch's cells use the defaults)");
  a = onnx_attr(n, "direction");
  if ((a != NULL && a->has_s && !(a->s.len == 7 && memcmp(a->s.data, "forward", 7) == 0)) ||
      onnx_attr(n, "clip") != NULL || attr_int(n, "layout", 0) != 0)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                          "only forward cells, without clip, in layout 0 import "
                          "(bidirectional cells are not a chain aced explains)");
  if (w->rnn.n_cells > 0 && strcmp(w->rnn.cell, name) != 0)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID, "cells of different kinds in one stack");
  /* the graph's input may come either way round (x_flip says which) */
  if (x->kind != K_SEQ || x->dirs || (x->layer >= 0 && x->time_axis != 0) ||
      x->layer != w->rnn.n_cells - 1)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                          "its input is not the sequence out of the cell below it, time first "
                          "(the graph is not a chain of cells)");
  for (k = 4; k < n->n_input && k < 7; k++) {
    const struct val *v = get(r, S(n->input[k]));
    if (S(n->input[k])[0] != '\0' && (k == 4 || v == NULL || v->kind != K_ZERO))
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "sequence lengths or a non-zero initial state (aced's cells start "
                            "from zeros and run every step)");
  }
  W = n->n_input > 1 ? onnx_const_find(w->c, n->input[1]) : NULL;
  R = n->n_input > 2 ? onnx_const_find(w->c, n->input[2]) : NULL;
  B = n->n_input > 3 ? onnx_const_find(w->c, n->input[3]) : NULL;
  H = (int)attr_int(n, "hidden_size", -1);
  if (W == NULL || R == NULL || W->d == NULL || R->d == NULL || W->n_dims != 3 || R->n_dims != 3)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID, "W and R must be constant 3-d tensors");
  I = (int)W->dims[2];
  if (H < 1 || H > ACED_MAX_UNITS || I < 1 || I > ACED_MAX_UNITS || W->dims[0] != 1 ||
      W->dims[1] != (long)G * H || R->dims[0] != 1 || R->dims[1] != (long)G * H ||
      R->dims[2] != H ||
      (B != NULL && (B->d == NULL || B->n != 2L * G * H)) ||
      (w->rnn.n_cells > 0 && I != w->rnn.hidden) || (w->rnn.n_cells > 0 && H != w->rnn.hidden))
    return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                          "W, R and B do not have the shapes of one forward %s cell of hidden "
                          "size %d stacked on the one below",
                          name, H);
  if (w->rnn.n_cells == ACED_MAX_LAYERS)
    return onnx_node_fail(w->c, ni, ACED_E_LIMIT, "more than %d cells", ACED_MAX_LAYERS);
  c = &w->rnn.cells[w->rnn.n_cells++];
  c->n_in = I;
  c->W_ih = malloc((size_t)G * (size_t)H * (size_t)I * sizeof *c->W_ih);
  c->W_hh = malloc((size_t)G * (size_t)H * (size_t)H * sizeof *c->W_hh);
  c->b_ih = calloc((size_t)G * (size_t)H, sizeof *c->b_ih);
  c->b_hh = calloc((size_t)G * (size_t)H, sizeof *c->b_hh);
  if (c->W_ih == NULL || c->W_hh == NULL || c->b_ih == NULL || c->b_hh == NULL)
    return aced_error_set(w->c->err, ACED_E_INTERNAL, "", "out of memory");
  for (g = 0; g < G; g++) {
    block(c->W_ih, W->d, g, map[g], H, I);
    block(c->W_hh, R->d, g, map[g], H, H);
    if (B != NULL) {
      block(c->b_ih, B->d, g, map[g], H, 1);
      block(c->b_hh, B->d + (size_t)G * (size_t)H, g, map[g], H, 1);
    }
  }
  if (w->rnn.n_cells == 1) {
    const Onnx__GraphProto *gp = w->c->g;
    w->rnn.cell = name;
    w->rnn.gates = G;
    w->rnn.hidden = H;
    w->rnn.input_size = I;
    /* T: the input's time axis, if the graph fixes it */
    for (k = 0; k < gp->n_input; k++)
      if (strcmp(S(gp->input[k]->name), r->v[0].name) == 0) {
        const Onnx__TypeProto *t = gp->input[k]->type;
        const Onnx__TensorShapeProto *sh =
            t != NULL && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type
                ? t->tensor_type->shape
                : NULL;
        int axis = x->x_flip ? 1 : 0;
        if (sh != NULL && sh->n_dim == 3 &&
            sh->dim[axis]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            sh->dim[axis]->dim_value > 0 && sh->dim[axis]->dim_value <= ACED_MAX_INPUTS)
          w->rnn.steps = (long)sh->dim[axis]->dim_value;
        if (sh != NULL && sh->n_dim == 3 &&
            sh->dim[2]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            sh->dim[2]->dim_value != I)
          return onnx_node_fail(w->c, ni, ACED_E_SHAPE,
                                "the graph's input has %lld features a step, the cell takes %d",
                                (long long)sh->dim[2]->dim_value, I);
      }
  }
  {
    struct val y = {0};
    y.kind = K_SEQ, y.layer = w->rnn.n_cells - 1, y.dirs = 1;
    if (n->n_output > 0 && S(n->output[0])[0] != '\0')
      put(r, n->output[0], y);
    y.kind = K_STATE, y.last = y.layer;
    if (n->n_output > 1 && S(n->output[1])[0] != '\0')
      put(r, n->output[1], y);
  }
  return ACED_OK;
}

/* Gather of step -1 (or T - 1) out of a sequence, or of the last cell's
 * final state out of the stacked states. */
static enum aced_err gather(struct rwalk *r, int ni, const struct val *x)
{
  const Onnx__NodeProto *n = node(r, ni);
  long axis = attr_int(n, "axis", 0), idx = const_int(r, n, 1, NULL);
  struct val out = {0};
  out.kind = K_LAST;
  if (x->kind == K_SEQ && !x->dirs && axis == x->time_axis &&
      (idx == -1 || (r->w->rnn.steps > 0 && idx == r->w->rnn.steps - 1)))
    out.layer = x->layer;
  else if (x->kind == K_STATE && axis == 0 && (idx == -1 || idx == x->last - x->layer))
    out.layer = x->last;
  else
    return onnx_node_fail(r->w->c, ni, ACED_E_INVALID,
                          "a Gather that is not the last step of a sequence (axis %ld, index "
                          "%ld): aced's heads read the last step or every step",
                          axis, idx);
  put(r, n->output[0], out);
  return ACED_OK;
}

/* One node of the recurrent part; *head = 1 when n is the first node of
 * the head (nothing done then). */
static enum aced_err rnode(struct rwalk *r, int ni, int *head)
{
  struct walk *w = r->w;
  const Onnx__NodeProto *n = node(r, ni);
  const struct val *x = n->n_input > 0 ? get(r, S(n->input[0])) : NULL;
  struct val out = {0};
  size_t j;

  *head = 0;
  if (n->n_output < 1 || S(n->output[0])[0] == '\0')
    return onnx_node_fail(w->c, ni, ACED_E_INVALID, "the node has no output");
  if (is_op(n, "Shape") && x != NULL && x == &r->v[0]) {
    out.kind = K_SHAPE;
    put(r, n->output[0], out);
    return ACED_OK;
  }
  if (all_scaffold(r, n) && n->n_input > 0) {
    if (is_op(n, "ConstantOfShape")) {
      if (!zero_fill(n))
        return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                              "an initial state that is not zeros");
      out.kind = K_ZERO;
    } else if (is_op(n, "Gather") || is_op(n, "Unsqueeze") || is_op(n, "Concat") ||
               is_op(n, "Squeeze") || is_op(n, "Slice") || is_op(n, "Cast") ||
               is_op(n, "Reshape") || is_op(n, "Expand")) {
      out.kind = x != NULL && x->kind == K_ZERO ? K_ZERO : K_SHAPE;
    } else
      return onnx_unsupported(w->c, ni, "an operator of shape arithmetic aced does not know");
    for (j = 0; j < n->n_output; j++)
      put(r, n->output[j], out);
    return ACED_OK;
  }
  if (x == NULL)
    return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                          "reads '%.64s', which is neither the sequence, nor shape arithmetic, "
                          "nor a constant: the graph is not a chain",
                          n->n_input > 0 ? S(n->input[0]) : "");
  if (is_cell(n))
    return cell(r, ni, x);
  if (is_op(n, "Transpose") && x->kind == K_SEQ && !x->dirs) {
    const Onnx__AttributeProto *p = onnx_attr(n, "perm");
    if (p == NULL || p->n_ints != 3 || p->ints[0] != 1 || p->ints[1] != 0 || p->ints[2] != 2)
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "a Transpose other than swapping the batch and time axes");
    out = *x;
    out.time_axis = 1 - x->time_axis;
    if (x->layer < 0)
      out.x_flip = !x->x_flip;
    put(r, n->output[0], out);
    return ACED_OK;
  }
  if (is_op(n, "Squeeze") && x->kind == K_SEQ && x->dirs && const_int(r, n, 1, "axes") == 1) {
    out = *x;
    out.dirs = 0;
    put(r, n->output[0], out);
    return ACED_OK;
  }
  if (is_op(n, "Squeeze") && x->kind == K_STATE && x->layer == x->last &&
      const_int(r, n, 1, "axes") == 0) {
    out.kind = K_LAST;
    out.layer = x->last;
    put(r, n->output[0], out);
    return ACED_OK;
  }
  if (is_op(n, "Gather"))
    return gather(r, ni, x);
  if (is_op(n, "Concat") && attr_int(n, "axis", 0) == 0 && x->kind == K_STATE) {
    out = *x;
    for (j = 1; j < n->n_input; j++) {
      const struct val *v = get(r, S(n->input[j]));
      if (v == NULL || v->kind != K_STATE || v->layer != out.last + 1)
        return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                              "a Concat that is not the cells' final states in order");
      out.last = v->last;
    }
    put(r, n->output[0], out);
    return ACED_OK;
  }
  if ((x->kind == K_SEQ && !x->dirs && x->layer >= 0) || x->kind == K_LAST) {
    if (w->rnn.n_cells == 0 || x->layer != w->rnn.n_cells - 1)
      return onnx_node_fail(w->c, ni, ACED_E_INVALID,
                            "the head reads cell %d, not the top of the stack", x->layer);
    w->rnn.every = x->kind == K_SEQ;
    *head = 1;
    return ACED_OK;
  }
  return onnx_unsupported(w->c, ni, "not part of a recurrent chain aced imports");
}

enum aced_err onnx_rnn_walk(struct walk *w)
{
  const Onnx__GraphProto *g = w->c->g;
  struct rwalk r = {w, 0, NULL};
  enum aced_err rc = ACED_OK;
  size_t i, n_vals = 1;
  int head = 0;

  for (i = 0; i < g->n_node; i++)
    n_vals += g->node[i]->n_output;
  if ((r.v = calloc(n_vals, sizeof *r.v)) == NULL)
    return aced_error_set(w->c->err, ACED_E_INTERNAL, "", "out of memory");
  {
    struct val x = {0};
    x.kind = K_SEQ, x.layer = -1;
    put(&r, w->cur, x);
  }
  for (i = 0; i < g->n_node && !head; i++) {
    if (w->c->done[i])
      continue;
    if ((rc = rnode(&r, (int)i, &head)) != ACED_OK)
      goto out;
    if (!head)
      w->c->done[i] = 1;
  }
  if (!head) {
    /* no head: the graph's output is the top cell's sequence or last step */
    const struct val *y = g->n_output == 1 ? get(&r, S(g->output[0]->name)) : NULL;
    if (y == NULL || w->rnn.n_cells == 0 || y->layer != w->rnn.n_cells - 1 ||
        !((y->kind == K_SEQ && !y->dirs) || y->kind == K_LAST)) {
      rc = aced_error_set(w->c->err, ACED_E_INVALID, "network.model",
                          "the graph's output is not the top cell's sequence or last step");
      goto out;
    }
    w->rnn.every = y->kind == K_SEQ;
    w->cur = y->name;
  } else
    w->cur = S(g->node[i - 1]->input[0]);
  w->rank = 2;
  w->width = w->rnn.hidden;
out:
  free(r.v);
  return rc;
}

static json_t *matrix(const double *a, int rows, int cols)
{
  json_t *m = json_array();
  int i, j;
  for (i = 0; m != NULL && i < rows; i++) {
    json_t *row = json_array();
    for (j = 0; row != NULL && j < cols; j++)
      if (json_array_append_new(row, json_real(a[(size_t)i * (size_t)cols + (size_t)j])) != 0) {
        json_decref(row);
        row = NULL;
      }
    if (row == NULL || json_array_append_new(m, row) != 0) {
      json_decref(m);
      return NULL;
    }
  }
  return m;
}

static json_t *vector(const double *a, int n)
{
  json_t *v = matrix(a, 1, n), *row = json_incref(json_array_get(v, 0));
  json_decref(v);
  return row;
}

/* weight_ih, weight_hh, bias_ih, bias_hh of one cell into o. */
static int cell_json(json_t *o, const struct walk *w, const struct rnn_cell *c)
{
  int GH = w->rnn.gates * w->rnn.hidden;
  return json_object_set_new(o, "weight_ih", matrix(c->W_ih, GH, c->n_in)) ||
         json_object_set_new(o, "weight_hh", matrix(c->W_hh, GH, w->rnn.hidden)) ||
         json_object_set_new(o, "bias_ih", vector(c->b_ih, GH)) ||
         json_object_set_new(o, "bias_hh", vector(c->b_hh, GH));
}

json_t *onnx_rnn_json(const struct walk *w, json_t *head)
{
  json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:o,s:s,s:b}", "type", "recurrent", "cell", w->rnn.cell,
                        "input_size", w->rnn.input_size, "hidden_size", w->rnn.hidden, "head",
                        head, "output_at", w->rnn.every ? "every" : "last", "feedback", 0);
  int i;
  if (o == NULL)
    return NULL;
  if (w->rnn.n_cells == 1) {
    if (cell_json(o, w, &w->rnn.cells[0]) != 0) {
      json_decref(o);
      return NULL;
    }
    return o;
  }
  json_t *layers = json_array();
  for (i = 0; layers != NULL && i < w->rnn.n_cells; i++) {
    json_t *l = json_object();
    if (l == NULL || cell_json(l, w, &w->rnn.cells[i]) != 0) {
      json_decref(l);
      json_decref(layers);
      layers = NULL;
    } else if (json_array_append_new(layers, l) != 0) { /* l is freed */
      json_decref(layers);
      layers = NULL;
    }
  }
  if (layers == NULL || json_object_set_new(o, "layers", layers) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

void onnx_rnn_free(struct walk *w)
{
  int i;
  for (i = 0; i < w->rnn.n_cells; i++) {
    free(w->rnn.cells[i].W_ih);
    free(w->rnn.cells[i].W_hh);
    free(w->rnn.cells[i].b_ih);
    free(w->rnn.cells[i].b_hh);
  }
}
