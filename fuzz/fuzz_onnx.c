/*
 * fuzz_onnx.c -- ONNX files (the bytes a client base64-encodes into
 * "network": {"type": "onnx", "model": ...}) through the importer
 * (src/model/onnx.c: base64, the nesting walk, protobuf-c under its
 * allocation budget, the graph walk) and, when it accepts one, through
 * model_parse() as POST /v1/models takes it.
 *
 * Accepted files must give a recurrent network of issue #12's form (its
 * parser is fuzzed by fuzz_model with recurrent seeds; here the shape of
 * the converted network is checked), or a feedforward network
 * whose layer 0 takes the graph's inputs; registered with that many features, the model must
 * parse, or be refused with a well-formed error (a network past the
 * model limits, say), never crash.  The seeds are the real PyTorch
 * exports of tests/data/onnx/ (fuzz/corpus/onnx/).
 */
#include "config.h"

#include <cblas.h>
#include <jansson.h>

#include "aced/model.h"
#include "model/internal.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  openblas_set_num_threads(1);
  return 0;
}

static char *base64(const uint8_t *data, size_t n)
{
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *s = malloc((n + 2) / 3 * 4 + 1), *p = s;
  size_t i;
  if (s == NULL)
    return NULL;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
    *p++ = a[v >> 18];
    *p++ = a[(v >> 12) & 63];
    *p++ = a[(v >> 6) & 63];
    *p++ = a[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)data[i] << 16;
    *p++ = a[v >> 18];
    *p++ = a[(v >> 12) & 63];
    *p++ = '=';
    *p++ = '=';
  } else if (n - i == 2) {
    unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
    *p++ = a[v >> 18];
    *p++ = a[(v >> 12) & 63];
    *p++ = a[(v >> 6) & 63];
    *p++ = '=';
  }
  *p = '\0';
  return s;
}

static void check_error(enum aced_err rc, const struct aced_error *err)
{
  FUZZ_ASSERT(rc > ACED_OK && rc < ACED_E__COUNT);
  FUZZ_ASSERT(err->code == rc);
  FUZZ_ASSERT(fuzz_terminated(err->field, sizeof err->field));
  FUZZ_ASSERT(fuzz_terminated(err->message, sizeof err->message));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = base64(data, size), source[ACED_SOURCE_MAX + 1];
  json_t *body, *expanded = NULL, *layers, *features;
  struct aced_error err;
  struct aced_model *m = NULL;
  enum aced_err rc;
  size_t i, n_in;

  if (text == NULL)
    return 0;
  memset(&err, 0, sizeof err);
  body = json_pack("{s:s,s:[{s:s,s:f,s:f}],s:{s:s,s:s},s:{s:[[f],[f]]}}", "name", "fuzz",
                   "features", "name", "x0", "low", -1.0, "high", 1.0, "network", "type", "onnx",
                   "model", text, "data", "samples", 0.0, 1.0);
  free(text);
  FUZZ_ASSERT(body != NULL && model_onnx_body(body));
  rc = model_onnx_expand(body, &expanded, source, sizeof source, &err);
  if (rc != ACED_OK) {
    FUZZ_ASSERT(expanded == NULL);
    check_error(rc, &err);
    json_decref(body);
    return 0;
  }
  FUZZ_ASSERT(fuzz_terminated(source, sizeof source) && source[0] == '{');
  json_t *src = json_loads(source, 0, NULL); /* the model row's text is JSON */
  FUZZ_ASSERT(json_is_object(src));
  json_decref(src);
  json_t *net = json_object_get(expanded, "network");
  if (strcmp(json_string_value(json_object_get(net, "type")), "recurrent") == 0) {
    /* issue #12's form: a head, and one cell's weights or a stack of them */
    FUZZ_ASSERT(json_array_size(json_object_get(net, "head")) >= 1);
    FUZZ_ASSERT(json_is_array(json_object_get(net, "weight_ih")) ||
                json_array_size(json_object_get(net, "layers")) >= 2);
    json_decref(expanded);
    json_decref(body);
    return 0;
  }
  layers = json_object_get(net, "layers");
  FUZZ_ASSERT(json_array_size(layers) >= 1);
  n_in = json_array_size(json_array_get(json_object_get(json_array_get(layers, 0), "weights"), 0));
  FUZZ_ASSERT(n_in >= 1 && n_in <= ACED_MAX_UNITS);

  /* As many features as the graph takes (and samples of that width). */
  features = json_array();
  json_t *row0 = json_array(), *row1 = json_array();
  for (i = 0; i < n_in; i++) {
    json_array_append_new(features, json_pack("{s:o,s:f,s:f}", "name", json_sprintf("x%zu", i),
                                              "low", -1.0, "high", 1.0));
    json_array_append_new(row0, json_real(0.25));
    json_array_append_new(row1, json_real(-0.5 + (double)i / (double)n_in));
  }
  json_object_set_new(body, "features", features);
  json_object_set_new(body, "data", json_pack("{s:[o,o]}", "samples", row0, row1));
  json_decref(expanded);
  rc = model_parse(body, 1, &m, &err);
  json_decref(body);
  if (rc != ACED_OK) {
    FUZZ_ASSERT(m == NULL);
    check_error(rc, &err);
    return 0;
  }
  FUZZ_ASSERT(m->n_features == (int)n_in && m->net.layers[0].n_in == (int)n_in);
  FUZZ_ASSERT(strcmp(m->source, source) == 0);
  model_free(m);
  return 0;
}
