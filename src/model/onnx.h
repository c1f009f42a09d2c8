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
};

/* The constant called `name`, or NULL. */
const struct onnx_const *onnx_const_find(const struct onnx_ctx *c, const char *name);
/* Decode one tensor into *out (bounds checked before allocating);
 * `what` names it in the message ("initializer 'fc.weight'"). */
enum aced_err onnx_const_decode(struct onnx_ctx *c, const Onnx__TensorProto *t,
                                const char *name, const char *what, struct onnx_const *out);
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
