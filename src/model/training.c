/*
 * training.c -- a registration's training targets and settings, for the
 * randomization test (POST .../significance), which retrains the
 * registered architecture on permuted targets:
 *
 *   "data": {"samples": [...], "targets": [[...] per sample, one value per output]},
 *   "training": {"loss": "mse" | "cross_entropy", "epochs": 200,
 *                "learning_rate": 0.01, "batch_size": 32,
 *                "weight_decay": 0, "seed": 0}
 *
 * Both or neither: targets need the samples they are aligned with and the
 * settings to train on them.  loss, epochs and learning_rate are required;
 * batch_size defaults to ACED_TRAIN_BATCH_DEFAULT, weight_decay to 0, seed
 * to 0.  The loss must suit the network's last layer (eng_train_check:
 * cross_entropy needs softmax, log_softmax, identity logits or a sigmoid).
 * The canonical form (canonical.c) carries both, so they are part of the
 * digest and survive in the store.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/limits.h"
#include "aced/model.h"
#include "model/internal.h"

static const char *const train_fields[] = {"loss",         "epochs", "learning_rate",
                                           "batch_size",   "weight_decay", "seed"};
#define N_TRAIN_FIELDS (sizeof train_fields / sizeof train_fields[0])

/* The number training.<name> into *out: absent, def (or a missing_field
 * error when required); an integer when `integer`; finite and in [lo, hi]
 * (lo excluded when open). */
static enum aced_err num_field(const json_t *tj, const char *name, int integer, double lo,
                               int open, double hi, double def, int required, double *out,
                               struct aced_error *err)
{
  char field[64];
  snprintf(field, sizeof field, "training.%s", name);
  const json_t *v = json_object_get(tj, name);
  if (v == NULL) {
    if (required)
      return aced_error_set(err, ACED_E_MISSING_FIELD, field, "required field '%s' is missing",
                            name);
    *out = def;
    return ACED_OK;
  }
  if (integer ? !json_is_integer(v) : !json_is_number(v))
    return aced_error_set(err, ACED_E_BAD_TYPE, field, integer ? "expected an integer"
                                                               : "expected a number");
  double x = json_number_value(v);
  if (!isfinite(x) || (open ? !(x > lo) : !(x >= lo)) || !(x <= hi))
    return aced_error_set(err, ACED_E_INVALID, field, "%s must be in %c%.17g, %.17g]", name,
                          open ? '(' : '[', lo, hi);
  *out = x + 0.0;
  return ACED_OK;
}

static enum aced_err parse_settings(const json_t *tj, struct aced_model *m,
                                    struct aced_error *err)
{
  struct aced_training *t = &m->training;
  const char *key;
  json_t *val;
  if (!json_is_object(tj))
    return aced_error_set(err, ACED_E_BAD_TYPE, "training", "expected an object");
  json_object_foreach((json_t *)tj, key, val) {
    size_t i = 0;
    while (i < N_TRAIN_FIELDS && strcmp(key, train_fields[i]) != 0)
      i++;
    if (i == N_TRAIN_FIELDS) {
      char field[96];
      snprintf(field, sizeof field, "training.%.64s", key);
      return aced_error_set(err, ACED_E_UNKNOWN_FIELD, field,
                            "'%.64s' is not a field of training", key);
    }
  }
  const json_t *loss = json_object_get(tj, "loss");
  if (loss == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "training.loss",
                          "required field 'loss' is missing");
  if (!json_is_string(loss))
    return aced_error_set(err, ACED_E_BAD_TYPE, "training.loss", "expected a string");
  if (strcmp(json_string_value(loss), "mse") == 0)
    t->loss = ENG_LOSS_MSE;
  else if (strcmp(json_string_value(loss), "cross_entropy") == 0)
    t->loss = ENG_LOSS_CROSS_ENTROPY;
  else
    return aced_error_set(err, ACED_E_INVALID, "training.loss",
                          "loss must be mse or cross_entropy");
  if (eng_train_check(&m->net, t->loss) != 0)
    return aced_error_set(err, ACED_E_INVALID, "training.loss",
                          t->loss == ENG_LOSS_MSE
                              ? "this network cannot be trained (softmax before the last layer)"
                              : "cross_entropy needs a softmax, log_softmax, identity (logits) "
                                "or sigmoid last layer");
  double epochs, batch, seed;
  enum aced_err rc;
  if ((rc = num_field(tj, "epochs", 1, 1, 0, ACED_TRAIN_EPOCHS_MAX, 0, 1, &epochs, err)) !=
          ACED_OK ||
      (rc = num_field(tj, "batch_size", 1, 1, 0, ACED_MAX_SAMPLES, ACED_TRAIN_BATCH_DEFAULT, 0,
                      &batch, err)) != ACED_OK ||
      (rc = num_field(tj, "seed", 1, 0, 0, 9007199254740991.0, 0, 0, &seed, err)) != ACED_OK ||
      (rc = num_field(tj, "learning_rate", 0, 0.0, 1, 10.0, 0.0, 1, &t->learning_rate, err)) !=
          ACED_OK ||
      (rc = num_field(tj, "weight_decay", 0, 0.0, 0, 1e3, 0.0, 0, &t->weight_decay, err)) !=
          ACED_OK)
    return rc;
  t->epochs = (int)epochs;
  t->batch_size = (int)batch;
  t->seed = (long long)seed;
  return ACED_OK;
}

enum aced_err model_parse_training(const json_t *tj, const json_t *targets, struct aced_model *m,
                                   struct aced_error *err)
{
  if (tj == NULL && targets == NULL)
    return ACED_OK;
  if (targets == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "data.targets",
                          "training needs data.targets (one row of targets per sample)");
  if (tj == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "training",
                          "data.targets needs the training settings to go with them");
  if (m->n_samples == 0)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "data.samples",
                          "data.targets are aligned with data.samples, which are missing");
  if (!json_is_array(targets))
    return aced_error_set(err, ACED_E_BAD_TYPE, "data.targets", "expected an array of rows");
  if (json_array_size(targets) != (size_t)m->n_samples)
    return aced_error_set(err, ACED_E_SHAPE, "data.targets",
                          "expected %d rows (one per sample), found %zu", m->n_samples,
                          json_array_size(targets));
  int no = m->n_outputs;
  if ((m->targets = malloc(sizeof(double) * (size_t)m->n_samples * (size_t)no)) == NULL)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  for (int r = 0; r < m->n_samples; r++) {
    const json_t *row = json_array_get(targets, (size_t)r);
    char field[64];
    snprintf(field, sizeof field, "data.targets[%d]", r);
    if (!json_is_array(row))
      return aced_error_set(err, ACED_E_BAD_TYPE, field, "expected an array (a row)");
    if (json_array_size(row) != (size_t)no)
      return aced_error_set(err, ACED_E_SHAPE, field,
                            "expected %d entries (one per output), found %zu", no,
                            json_array_size(row));
    for (int j = 0; j < no; j++) {
      const json_t *v = json_array_get(row, (size_t)j);
      snprintf(field, sizeof field, "data.targets[%d][%d]", r, j);
      if (!json_is_number(v))
        return aced_error_set(err, ACED_E_BAD_TYPE, field, "expected a number");
      double x = json_number_value(v);
      if (!isfinite(x))
        return aced_error_set(err, ACED_E_NOT_FINITE, field, "numbers must be finite");
      m->targets[(size_t)r * no + j] = x + 0.0;
    }
  }
  m->has_training = 1;
  return parse_settings(tj, m, err);
}

const char *model_loss_name(int loss)
{
  return loss == ENG_LOSS_CROSS_ENTROPY ? "cross_entropy" : "mse";
}
