/*
 * fuzz_model.c -- registration bodies (POST /v1/models) through
 * model_parse(), the gate every model passes (include/aced/model.h).
 *
 * The input is handled as src/http/dispatch.c handles a body: nesting deeper than
 * ACED_JSON_DEPTH_MAX is refused before parsing, then json_loadb() with
 * JSON_REJECT_DUPLICATES, then model_parse(require_name = 1).  A model
 * that is accepted must survive the trip the store makes it take:
 *
 *   canonical JSON -> json_loads -> model_parse(require_name = 0)
 *
 * must succeed, give the same digest and write the same canonical text;
 * and that text must be what json_dumps(JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_REAL_PRECISION(17)) prints for it, as src/model/model.c promises.
 */
#include "config.h"

#include <cblas.h>
#include <jansson.h>

#include "aced/model.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* The PSD check calls LAPACK; one BLAS thread, as eng_init() sets in
   * the daemon, keeps runs reproducible and thread buffers few. */
  openblas_set_num_threads(1);
  return 0;
}

static void check_error(enum aced_err rc, const struct aced_model *m,
                        const struct aced_error *err)
{
  FUZZ_ASSERT(m == NULL);
  FUZZ_ASSERT(rc > ACED_OK && rc < ACED_E__COUNT);
  FUZZ_ASSERT(err->code == rc);
  FUZZ_ASSERT(fuzz_terminated(err->field, sizeof err->field));
  FUZZ_ASSERT(fuzz_terminated(err->message, sizeof err->message));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (fuzz_json_depth(data, size) > ACED_JSON_DEPTH_MAX)
    return 0;
  json_error_t jerr;
  json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
  if (body == NULL)
    return 0;

  struct aced_model *m = NULL;
  struct aced_error err;
  memset(&err, 0, sizeof err);
  enum aced_err rc = model_parse(body, 1, &m, &err);
  json_decref(body);
  if (rc != ACED_OK) {
    check_error(rc, m, &err);
    return 0;
  }
  FUZZ_ASSERT(m != NULL);
  FUZZ_ASSERT(model_name_valid(m->name));
  FUZZ_ASSERT(strncmp(m->digest, "sha256:", 7) == 0 && strlen(m->digest) == 71);
  FUZZ_ASSERT(m->n_features >= 1 && m->n_features <= ACED_MAX_INPUTS);
  FUZZ_ASSERT(m->net.n_layers >= 1 && m->net.n_layers <= ACED_MAX_LAYERS);
  /* a recurrent model: features and outputs flattened over time, net the head */
  const int nf = m->rnn ? m->step_features : m->n_features;
  const int no = m->rnn ? m->step_outputs : m->n_outputs;
  FUZZ_ASSERT(no >= 1 && no <= ACED_MAX_OUTPUTS);
  FUZZ_ASSERT(m->n_outputs <= (m->rnn ? ACED_MAX_STEP_OUTPUTS : ACED_MAX_OUTPUTS));
  FUZZ_ASSERT(m->rnn == NULL || (m->n_features == m->seq_len * nf && m->rnn->input_size == nf &&
                                 (m->n_outputs == no || m->n_outputs == m->seq_len * no)));
  FUZZ_ASSERT(m->net.layers[0].n_in == (m->rnn ? m->rnn->hidden_size : m->n_features));
  FUZZ_ASSERT(m->net.layers[m->net.n_layers - 1].n_out == no);

  /* Metadata and lookups on an accepted model. */
  json_t *meta = model_metadata_json(m);
  FUZZ_ASSERT(meta != NULL);
  json_decref(meta);
  /* Names are unique, so each finds itself. */
  for (int i = 0; i < nf; i++)
    FUZZ_ASSERT(model_feature_lookup(m, m->features[i].name) == i);
  for (int i = 0; i < no; i++)
    FUZZ_ASSERT(model_output_lookup(m, m->outputs[i]) == i);

  /* Round trip through the canonical JSON, as the store re-reads it. */
  char *canon = model_canonical_json(m);
  FUZZ_ASSERT(canon != NULL);
  json_t *cj = json_loads(canon, JSON_REJECT_DUPLICATES, &jerr);
  if (cj == NULL)
    fprintf(stderr, "canonical JSON does not parse: %s\n%s\n", jerr.text, canon);
  FUZZ_ASSERT(cj != NULL);
  FUZZ_ASSERT(json_object_get(cj, "name") == NULL);

  char *dumped = json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  FUZZ_ASSERT(dumped != NULL);
  if (strcmp(dumped, canon) != 0)
    fprintf(stderr, "canonical writer and json_dumps differ:\n%s\n%s\n", canon, dumped);
  FUZZ_ASSERT(strcmp(dumped, canon) == 0);
  free(dumped);

  struct aced_model *m2 = NULL;
  rc = model_parse(cj, 0, &m2, &err);
  json_decref(cj);
  if (rc != ACED_OK)
    fprintf(stderr, "canonical JSON rejected: %s at %s: %s\n", aced_err_code(rc),
            err.field, err.message);
  FUZZ_ASSERT(rc == ACED_OK && m2 != NULL);
  if (strcmp(m->digest, m2->digest) != 0)
    fprintf(stderr, "digest changed on re-parse: %s -> %s\n", m->digest, m2->digest);
  FUZZ_ASSERT(strcmp(m->digest, m2->digest) == 0);
  char *canon2 = model_canonical_json(m2);
  FUZZ_ASSERT(canon2 != NULL && strcmp(canon, canon2) == 0);
  FUZZ_ASSERT(m2->n_params == m->n_params && m2->n_samples == m->n_samples);

  free(canon2);
  free(canon);
  model_free(m2);
  model_free(m);
  return 0;
}
