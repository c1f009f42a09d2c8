/*
 * model/internal.h -- what the files of src/model share; nothing outside
 * src/model/ includes it.
 */
#ifndef ACED_MODEL_INTERNAL_H
#define ACED_MODEL_INTERNAL_H

#include <jansson.h>

#include "aced/errors.h"
#include "aced/model.h"

/* The optional "input_transform" of a registration (transform.c), parsed
 * into m->tf_scale / m->tf_shift once m's features are known; NULL tj
 * (absent) is fine and leaves the model without one. */
enum aced_err model_parse_transform(const json_t *tj, struct aced_model *m,
                                    struct aced_error *err);

/* ONNX import (onnx.c): is the body's network {"type": "onnx", ...}?  If
 * so, model_onnx_expand() makes *expanded (new reference) a copy of the
 * body whose network is the imported one in aced's JSON form (and whose
 * "outputs" default to y0, y1, ...), and writes the model's origin into
 * source ({"opset":..,"producer":..}, at most n_source bytes). */
int model_onnx_body(const json_t *body);
enum aced_err model_onnx_expand(const json_t *body, json_t **expanded, char *source,
                                size_t n_source, struct aced_error *err);

/* Write m's graph (if any) into the canonical text as ,"graph":{...}
 * (graph.c). */
struct jw;
void model_graph_write(struct jw *w, const struct aced_model *m);

/* The optional data.targets and "training" of a registration
 * (training.c), once the samples and network are parsed: both or neither. */
enum aced_err model_parse_training(const json_t *tj, const json_t *targets, struct aced_model *m,
                                   struct aced_error *err);

#endif
