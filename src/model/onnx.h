/*
 * model/onnx.h -- what the files of the ONNX importer share (onnx.c:
 * base64, protobuf decoding under bounds, constants and the entry point;
 * onnx_graph.c: the graph walk that turns a chain of nodes into aced's
 * JSON network).  Nothing outside src/model/ includes it.
 */
#ifndef ACED_MODEL_ONNX_H
#define ACED_MODEL_ONNX_H

#include <stdint.h>

#include <jansson.h>

#include "aced/errors.h"
#include "aced/limits.h"
#include "onnx/onnx.pb-c.h"

/* A constant the graph names: an initializer or a Constant node's value.
 * Floating-point data (FLOAT, DOUBLE) is widened to double in `d`;
 * integer data (INT64, INT32, the exporter's shape scaffolding) is in `i`. */
struct onnx_const {
  const char *name;            /* borrowed from the decoded model */
  int n_dims;
  int64_t dims[ACED_ONNX_DIMS_MAX];
  long n;                      /* elements: the product of dims */
  double *d;                   /* n values, or NULL for integer data */
  int64_t *i;                  /* n values, or NULL for floating-point data */
};

/* The importer's state while it walks one graph. */
struct onnx_ctx {
  const Onnx__ModelProto *model;
  const Onnx__GraphProto *g;
  int opset;                   /* of the default domain */
  struct aced_error *err;
  int n_consts;
  struct onnx_const *consts;   /* n_nodes + n_initializers slots */
  unsigned char *done;         /* per node: consumed by the walk */
  long steps;                  /* a recurrent graph's fixed sequence length, or 0 */
  ProtobufCAllocator *alloc;   /* the budgeted allocator model was decoded with */
};

/* A feedforward layer while the walk builds it. */
struct ff_layer {
  int n_in, n_out;
  double *W, *b;     /* n_out x n_in, n_out */
  const char *act;   /* NULL: still open (identity unless an activation follows) */
  int bias_open;     /* opened by MatMul: an Add may still bring the bias */
};

/* A recurrent cell in PyTorch's layout and gate order (onnx_rnn.c). */
struct rnn_cell {
  int n_in;
  double *W_ih, *W_hh, *b_ih, *b_hh; /* gates*H x n_in, gates*H x H, gates*H, gates*H */
};

struct walk {
  struct onnx_ctx *c;
  const char *cur;   /* the chain's current value */
  int rank;          /* of cur (2 for a recurrent head: a vector per step) */
  long width;        /* elements of cur per batch row (per step); -1 unknown */
  int n;             /* feedforward layers (the head of a recurrent net) */
  struct ff_layer L[ACED_MAX_LAYERS];
  struct {
    int on;          /* the graph is recurrent */
    const char *cell; /* "gru", "lstm", "rnn_tanh", "rnn_relu" */
    int gates, hidden, input_size, every;
    long steps;      /* T from the graph's input, 0 when dynamic */
    int n_cells;
    struct rnn_cell cells[ACED_MAX_LAYERS];
  } rnn;
};

/* Recurrent graphs (onnx_rnn.c): walk from the graph's input through the
 * exporter's shape scaffolding and the cells (GRU, LSTM, RNN) to the
 * first node of the head, leaving w->cur there (rank 2, width hidden);
 * the nodes it passed are marked walked.  Then the network object of
 * issue #12's "recurrent" form, around the head's layers. */
enum aced_err onnx_rnn_walk(struct walk *w);
json_t *onnx_rnn_json(const struct walk *w, json_t *head);
void onnx_rnn_free(struct walk *w);

/* The constant called `name`, or NULL. */
const struct onnx_const *onnx_const_find(const struct onnx_ctx *c, const char *name);
/* Decode one tensor into *out (bounds checked before allocating);
 * `what` names it in the message ("initializer 'fc.weight'"). */
enum aced_err onnx_const_decode(struct onnx_ctx *c, const Onnx__TensorProto *t,
                                const char *name, const char *what, struct onnx_const *out);
/* Free the decoded model and the constants once the walk has copied what
 * it needs (c->model and c->g are NULL after), so the JSON network is not
 * built beside them: the import's peak memory is then about the JSON
 * registration's. */
void onnx_release_input(struct onnx_ctx *c);
/* The attribute `name` of node n, or NULL. */
const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name);

/* 422 unsupported_operator naming the node, its operator and what is
 * supported. */
enum aced_err onnx_unsupported(struct onnx_ctx *c, int ni, const char *why);
/* Any other refusal of node ni: `code`, "node <i> ('<name>', <op>): <msg>". */
enum aced_err onnx_node_fail(struct onnx_ctx *c, int ni, enum aced_err code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Walk the graph (onnx_graph.c): *network becomes the JSON network object
 * of a registration ("type": "feedforward" with its layers), *n_out its
 * number of outputs. */
enum aced_err onnx_graph_convert(struct onnx_ctx *c, json_t **network, int *n_out);

#endif
