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

/* The optional data.targets and "training" of a registration
 * (training.c), once the samples and network are parsed: both or neither. */
enum aced_err model_parse_training(const json_t *tj, const json_t *targets, struct aced_model *m,
                                   struct aced_error *err);

#endif
