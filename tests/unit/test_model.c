/*
 * test_model.c -- model_parse and friends: the fixture registers, moments,
 * canonical JSON and digest, one test per error class (code and field
 * path), limits without huge allocations, metadata and index lookups.
 * What registrations carry beyond the feedforward network (the input
 * transform, the graph among the inputs, recurrent networks) is tested in
 * test_model_ext.c; the helpers both use are in modeltest.h.
 *
 * Reads $ACED_SRCDIR/tests/data/small_mlp.json (default: the current
 * folder's tests/data); without it the test fails rather than skips, so a
 * broken environment cannot pass silently.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <nettle/sha2.h>

#include "aced/model.h"
#include "tap.h"
#include "modeltest.h"


static void sha256_hex(const char *s, char out[7 + 64 + 1])
{
  static const char hex[] = "0123456789abcdef";
  struct sha256_ctx ctx;
  uint8_t d[SHA256_DIGEST_SIZE];
  int i;
  sha256_init(&ctx);
  sha256_update(&ctx, strlen(s), (const uint8_t *)s);
  sha256_digest(&ctx, sizeof d, d);
  memcpy(out, "sha256:", 7);
  for (i = 0; i < SHA256_DIGEST_SIZE; i++) {
    out[7 + 2 * i] = hex[d[i] >> 4];
    out[8 + 2 * i] = hex[d[i] & 15];
  }
  out[71] = '\0';
}

static void test_fixture(void)
{
  struct aced_model *m = parse_ok(body(), 1), *m2;
  json_t *d = at(fixture, "data"), *b;
  char *canon, *canon2, *dumped, hex[72];
  double maxdiff = 0.0;
  int i, j, k;

  if (!tap_ok(m != NULL, "fixture registers with a name added"))
    return;
  tap_ok(strcmp(m->name, "small_mlp") == 0 && m->version == 0, "name kept, version 0");
  tap_ok(m->n_features == 4 && m->n_outputs == 3 && m->net.n_layers == 3,
         "4 features, 3 outputs, 3 layers");
  tap_ok(m->net.layers[0].n_in == 4 && m->net.layers[0].n_out == 6 &&
             m->net.layers[1].n_out == 5 && m->net.layers[2].n_out == 3,
         "layer shapes 4-6-5-3");
  tap_ok(m->net.layers[0].act == ENG_ACT_TANH && m->net.layers[1].act == ENG_ACT_SOFTPLUS &&
             m->net.layers[2].act == ENG_ACT_IDENTITY,
         "activations tanh, softplus, identity");
  tap_ok(m->n_params == 6 * 4 + 6 + 5 * 6 + 5 + 3 * 5 + 3, "n_params = 83 (got %ld)",
         m->n_params);
  tap_ok(m->net.layers[1].W[0 * 6 + 5] ==
             json_number_value(at(fixture, "network.layers.1.weights.0.5")) &&
             m->net.layers[2].b[2] == json_number_value(at(fixture, "network.layers.2.bias.2")),
         "weights are [out][in]: W[0][5] and b[2] read where they belong");
  tap_ok(m->n_samples == 200 && m->moments_given == 1, "200 samples, moments given");
  tap_ok(m->samples[199 * 4 + 3] == json_number_value(at(d, "samples.199.3")),
         "last sample value kept");
  tap_ok(strncmp(m->digest, "sha256:", 7) == 0 && strlen(m->digest) == 71,
         "digest is sha256:<64 hex> (%s)", m->digest);

  /* canonical JSON: hash, jansson equivalence, round trip */
  canon = model_canonical_json(m);
  sha256_hex(canon, hex);
  tap_ok(strcmp(hex, m->digest) == 0, "digest is the SHA-256 of the canonical text");
  tap_ok(strstr(canon, "small_mlp") == NULL && strstr(canon, "\n") == NULL &&
             strncmp(canon, "{\"data\":{\"covariance\":[[", 24) == 0,
         "canonical text: no model name, compact, keys sorted");
  tap_ok(strstr(canon, "{\"high\":1.0,\"low\":0.0,\"name\":\"x0\"}") != NULL,
         "canonical numbers are always reals (0.0, not 0)");
  b = json_loads(canon, 0, NULL);
  dumped = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  if (!tap_ok(dumped && strcmp(dumped, canon) == 0,
              "canonical text is exactly what jansson writes for it (sorted, compact, "
              "%%.17g)"))
    tap_diag("ours %.200s\njansson %.200s", canon, dumped ? dumped : "(null)");
  free(dumped);
  tap_ok(json_object_get(b, "name") == NULL && json_object_get(b, "reference") == NULL &&
             json_object_get(json_object_get(b, "data"), "mean") != NULL,
         "canonical has no name, keeps the given mean");
  m2 = parse_ok(b, 0);
  tap_ok(m2 != NULL && strcmp(m2->digest, m->digest) == 0,
         "canonical JSON re-parsed with require_name=0 gives the same digest");
  canon2 = m2 ? model_canonical_json(m2) : NULL;
  tap_ok(canon2 && strcmp(canon, canon2) == 0, "and the same canonical text");
  free(canon);
  free(canon2);
  model_free(m2);

  /* given covariance is stored exactly symmetric and as given */
  k = m->n_features;
  for (i = 0; i < k; i++)
    for (j = 0; j < k; j++) {
      double want = json_number_value(
          json_array_get(json_array_get(json_object_get(d, "covariance"), (size_t)i), (size_t)j));
      if (fabs(m->cov[i * k + j] - want) > maxdiff)
        maxdiff = fabs(m->cov[i * k + j] - want);
    }
  tap_ok(maxdiff <= 1e-15, "given covariance kept (max diff %.3g)", maxdiff);
  model_free(m);
}

static void test_moments(void)
{
  json_t *b = body(), *d, *mean, *cov;
  struct aced_model *m;
  double dm = 0.0, dc = 0.0;
  char *canon;
  int i, j;

  d = json_object_get(b, "data");
  json_object_del(d, "mean");
  json_object_del(d, "covariance");
  m = parse_ok(b, 1);
  if (!tap_ok(m != NULL && m->moments_given == 0, "samples-only body registers, moments computed"))
    return;
  mean = at(fixture, "data.mean");
  cov = at(fixture, "data.covariance");
  for (i = 0; i < 4; i++) {
    dm = fmax(dm, fabs(m->mean[i] - json_number_value(json_array_get(mean, (size_t)i))));
    for (j = 0; j < 4; j++)
      dc = fmax(dc, fabs(m->cov[i * 4 + j] -
                         json_number_value(json_array_get(json_array_get(cov, (size_t)i), (size_t)j))));
  }
  tap_close(dm, 0.0, 1e-12, "computed mean matches the fixture's data.mean");
  tap_close(dc, 0.0, 1e-12, "computed covariance (divisor n-1) matches data.covariance");
  for (i = 0, dc = 0.0; i < 4; i++)
    for (j = 0; j < 4; j++)
      dc = fmax(dc, fabs(m->cov[i * 4 + j] - m->cov[j * 4 + i]));
  tap_ok(dc == 0.0, "computed covariance exactly symmetric");
  canon = model_canonical_json(m);
  tap_ok(canon && strstr(canon, "\"mean\"") == NULL && strstr(canon, "\"covariance\"") == NULL &&
             strstr(canon, "\"samples\"") != NULL,
         "canonical JSON leaves computed moments out");
  free(canon);
  model_free(m);

  /* Numerically careful: a large offset must not destroy the covariance
   * (a one-pass sum-of-squares formula loses every digit here). */
  b = tiny_body(1, 0, 0, 1);
  d = json_object_get(b, "data");
  json_object_clear(d);
  json_object_set_new(d, "samples", json_pack("[[f,f],[f,f],[f,f]]", 1e9 + 1, 0.0,
                                              1e9 + 2, 0.0, 1e9 + 3, 1.0));
  m = parse_ok(b, 1);
  if (tap_ok(m != NULL, "samples with a 1e9 offset register")) {
    tap_close(m->mean[0], 1e9 + 2, 0.0, "mean with offset exact");
    tap_close(m->cov[0], 1.0, 1e-15, "variance with offset exact (1.0)");
    tap_close(m->cov[1], 0.5, 1e-15, "covariance with offset exact (0.5)");
  }
  model_free(m);

  /* The refined mean is the correctly rounded one: summing 1e16 + 1 + 1
   * left to right loses both ones, and 1e16 / 3 is off by half an ulp. */
  b = tiny_body(1, 0, 0, 1);
  d = json_object_get(b, "data");
  json_object_clear(d);
  json_object_set_new(d, "samples", json_pack("[[f,f],[f,f],[f,f]]", 1e16, 0.0, 1.0, 0.0,
                                              1.0, 1.0));
  m = parse_ok(b, 1);
  tap_ok(m && m->mean[0] == 3333333333333334.0,
         "mean of 1e16, 1, 1 is correctly rounded (got %.17g)", m ? m->mean[0] : 0.0);
  model_free(m);
}

static void test_digests(void)
{
  struct aced_model *a = parse_ok(body(), 1), *m;
  json_t *b;

  if (!tap_ok(a != NULL, "reference model for digests"))
    return;
  /* the fixture spells low 0.0 and high 1.0 as reals */
  b = body();
  json_object_set_new(at(b, "features.0"), "low", json_integer(0));
  json_object_set_new(at(b, "features.0"), "high", json_integer(1));
  json_object_set_new(at(b, "features.1"), "low", json_real(-0.0));
  m = parse_ok(b, 1);
  tap_ok(m && strcmp(m->digest, a->digest) == 0,
         "0 vs 0.0 vs -0.0 and 1 vs 1.0 give the same digest");
  model_free(m);

  b = body();
  json_object_set_new(b, "name", json_string("another_name"));
  m = parse_ok(b, 1);
  tap_ok(m && strcmp(m->digest, a->digest) == 0, "the name is not part of the digest");
  model_free(m);

  b = body();
  json_array_set_new(at(b, "network.layers.1.weights.2"), 3,
                     json_real(json_number_value(at(b, "network.layers.1.weights.2.3")) +
                               1e-12));
  m = parse_ok(b, 1);
  tap_ok(m && strcmp(m->digest, a->digest) != 0, "a weight changed by 1e-12 changes the digest");
  model_free(m);

  b = body();
  json_object_set_new(b, "description", json_string("other text"));
  m = parse_ok(b, 1);
  tap_ok(m && strcmp(m->digest, a->digest) != 0, "the description is part of the digest");
  model_free(m);

  b = body();
  json_object_del(b, "description");
  m = parse_ok(b, 1);
  tap_ok(m && m->description == NULL && strcmp(m->digest, a->digest) != 0,
         "no description: NULL and a different digest");
  model_free(m);

  /* strings with characters jansson escapes: still equal to jansson's text */
  b = body();
  json_object_set_new(b, "description",
                      json_string("line\nbreak \"quoted\" back\\slash \x01 \x1b tab\t \xc3\xa9 / end"));
  json_object_set_new(at(b, "features.0"), "name", json_string("caf\xc3\xa9 \"x\""));
  json_object_set_new(at(b, "features.0"), "high", json_real(1e-300));
  json_object_set_new(at(b, "features.1"), "high", json_real(1.5e300));
  json_object_set_new(at(b, "features.2"), "low", json_real(-123456789.125e-7));
  m = parse_ok(b, 1);
  if (tap_ok(m != NULL, "body with escapes and extreme exponents registers")) {
    char *canon = model_canonical_json(m), *dumped;
    json_t *re = json_loads(canon, 0, NULL);
    struct aced_model *m2;
    dumped = json_dumps(re, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    tap_ok(dumped && strcmp(dumped, canon) == 0,
           "escapes and exponents written exactly as jansson writes them");
    m2 = parse_ok(re, 0);
    tap_ok(m2 && strcmp(m2->digest, m->digest) == 0, "and they round-trip to the same digest");
    model_free(m2);
    free(dumped);
    free(canon);
  }
  model_free(m);
  model_free(a);
}

static void test_names(void)
{
  char long_name[70];
  json_t *b;
  struct aced_model *m;

  tap_ok(model_name_valid("iris") && model_name_valid("a.b_c-D9") && model_name_valid("...") &&
             !model_name_valid("") && !model_name_valid(NULL) && !model_name_valid(".") &&
             !model_name_valid("..") && !model_name_valid("caf\xc3\xa9"),
         "model_name_valid on the character set, '.' and '..' refused");
  memset(long_name, 'a', 64);
  long_name[64] = '\0';
  tap_ok(model_name_valid(long_name), "64 characters is allowed");
  long_name[64] = 'a';
  long_name[65] = '\0';
  tap_ok(!model_name_valid(long_name), "65 characters is not");

  b = body();
  json_object_set_new(b, "name", json_string("../x"));
  expect_err(b, 1, ACED_E_BAD_NAME, "name", "name '../x'");
  b = body();
  json_object_set_new(b, "name", json_string("a b"));
  expect_err(b, 1, ACED_E_BAD_NAME, "name", "name 'a b'");
  b = body();
  json_object_set_new(b, "name", json_string(long_name));
  expect_err(b, 1, ACED_E_BAD_NAME, "name", "name of 65 characters");
  b = body();
  json_object_set_new(b, "name", json_string("x'; drop table models; --"));
  expect_err(b, 1, ACED_E_BAD_NAME, "name", "name with SQL in it");
  b = body();
  json_object_set_new(b, "name", json_string(""));
  expect_err(b, 1, ACED_E_BAD_NAME, "name", "empty name");
  b = body();
  json_object_set_new(b, "name", json_stringn("ab\0cd", 5));
  expect_err(b, 1, ACED_E_BAD_NAME, "name", "name with a NUL inside");
  b = body();
  json_object_set_new(b, "name", json_integer(7));
  expect_err(b, 1, ACED_E_BAD_TYPE, "name", "name as a number");

  b = body();
  json_object_del(b, "name");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "name", "missing name on registration");
  b = body();
  expect_err(b, 0, ACED_E_UNKNOWN_FIELD, "name", "name present with require_name=0");
  b = body();
  json_object_del(b, "name");
  m = parse_ok(b, 0);
  tap_ok(m && m->name[0] == '\0', "no name with require_name=0 parses, empty name");
  model_free(m);
}

static void test_structure_errors(void)
{
  json_t *b;

  expect_err(json_array(), 1, ACED_E_BAD_TYPE, "", "body is an array");

  b = body();
  json_object_set_new(b, "weights", json_integer(1));
  expect_err(b, 1, ACED_E_UNKNOWN_FIELD, "weights", "unknown top-level field");
  b = body();
  json_object_set_new(at(b, "network.layers.1"), "dropout", json_real(0.5));
  expect_err(b, 1, ACED_E_UNKNOWN_FIELD, "network.layers[1].dropout", "unknown layer field");
  b = body();
  json_object_set_new(at(b, "features.2"), "unit", json_string("cm"));
  expect_err(b, 1, ACED_E_UNKNOWN_FIELD, "features[2].unit", "unknown feature field");
  b = body();
  json_object_set_new(at(b, "data"), "weights", json_array());
  expect_err(b, 1, ACED_E_UNKNOWN_FIELD, "data.weights", "unknown data field");
  b = body();
  json_object_set_new(at(b, "network"), "lr", json_real(0.1));
  expect_err(b, 1, ACED_E_UNKNOWN_FIELD, "network.lr", "unknown network field");

  b = body();
  json_object_del(b, "features");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "features", "missing features");
  b = body();
  json_object_del(b, "outputs");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "outputs", "missing outputs");
  b = body();
  json_object_del(b, "network");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "network", "missing network");
  b = body();
  json_object_del(b, "data");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "data", "missing data");
  b = body();
  json_object_del(at(b, "network"), "type");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "network.type", "missing network.type");
  b = body();
  json_object_del(at(b, "network.layers.2"), "bias");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "network.layers[2].bias", "missing bias");
  b = body();
  json_object_del(at(b, "features.1"), "high");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "features[1].high", "missing feature high");
  b = body();
  json_object_clear(at(b, "data"));
  expect_err(b, 1, ACED_E_MISSING_FIELD, "data.samples", "empty data");
  b = body();
  json_object_del(at(b, "data"), "covariance");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "data.covariance", "mean without covariance");
  b = body();
  json_object_del(at(b, "data"), "mean");
  expect_err(b, 1, ACED_E_MISSING_FIELD, "data.mean", "covariance without mean");

  b = body();
  json_object_set_new(b, "features", json_object());
  expect_err(b, 1, ACED_E_BAD_TYPE, "features", "features is an object");
  b = body();
  json_object_set_new(at(b, "features.1"), "low", json_string("0"));
  expect_err(b, 1, ACED_E_BAD_TYPE, "features[1].low", "low is a string");
  b = body();
  json_array_set_new(at(b, "features"), 3, json_string("x3"));
  expect_err(b, 1, ACED_E_BAD_TYPE, "features[3]", "feature is a string");
  b = body();
  json_array_set_new(at(b, "outputs"), 1, json_integer(1));
  expect_err(b, 1, ACED_E_BAD_TYPE, "outputs[1]", "output is a number");
  b = body();
  json_array_set_new(at(b, "network.layers.0.weights.0"), 3, json_string("0.5"));
  expect_err(b, 1, ACED_E_BAD_TYPE, "network.layers[0].weights[0][3]", "weight is a string");
  b = body();
  json_array_set_new(at(b, "network.layers.0.weights"), 4, json_real(1));
  expect_err(b, 1, ACED_E_BAD_TYPE, "network.layers[0].weights[4]", "weight row is a number");
  b = body();
  json_array_set_new(at(b, "network.layers.1.bias"), 2, json_null());
  expect_err(b, 1, ACED_E_BAD_TYPE, "network.layers[1].bias[2]", "bias is null");
  b = body();
  json_object_set_new(at(b, "network.layers.1"), "activation", json_integer(3));
  expect_err(b, 1, ACED_E_BAD_TYPE, "network.layers[1].activation", "activation is a number");
  b = body();
  json_object_set_new(b, "description", json_true());
  expect_err(b, 1, ACED_E_BAD_TYPE, "description", "description is a boolean");
  b = body();
  json_array_set_new(at(b, "data.samples.17"), 2, json_string("x"));
  expect_err(b, 1, ACED_E_BAD_TYPE, "data.samples[17][2]", "sample value is a string");
  b = body();
  json_array_set_new(at(b, "data.covariance.3"), 0, json_false());
  expect_err(b, 1, ACED_E_BAD_TYPE, "data.covariance[3][0]", "covariance value is a boolean");
}

static void test_network_errors(void)
{
  json_t *b, *rows;
  struct aced_model *m;
  size_t i;

  b = body();
  rows = at(b, "network.layers.1.weights");
  for (i = 0; i < json_array_size(rows); i++)
    json_array_remove(json_array_get(rows, i), 5);
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[1].weights", "layer 1 takes 5, layer 0 gives 6");
  b = body();
  json_array_remove(at(b, "network.layers.0.weights.2"), 1);
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[0].weights[2]", "ragged weights");
  b = body();
  json_array_remove(at(b, "network.layers.2.bias"), 0);
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[2].bias", "bias too short");
  b = body();
  json_array_append_new(at(b, "network.layers.0.bias"), json_real(0));
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[0].bias", "bias too long");
  b = body();
  json_array_remove(at(b, "features"), 3);
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[0].weights", "first layer takes 4, 3 features");
  b = body();
  json_array_append_new(at(b, "outputs"), json_string("y3"));
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[2].weights", "last layer has 3 units, 4 outputs");
  b = body();
  json_array_clear(at(b, "network.layers"));
  expect_err(b, 1, ACED_E_SHAPE, "network.layers", "no layers");
  b = body();
  json_array_clear(at(b, "network.layers.0.weights"));
  expect_err(b, 1, ACED_E_SHAPE, "network.layers[0].weights", "empty weights");
  b = body();
  json_object_set_new(at(b, "network.layers.0"), "activation", json_string("softmax"));
  expect_err(b, 1, ACED_E_INVALID, "network.layers[0].activation", "softmax not last");
  b = body();
  json_object_set_new(at(b, "network.layers.1"), "activation", json_string("swish"));
  expect_err(b, 1, ACED_E_INVALID, "network.layers[1].activation", "unknown activation");
  b = body();
  json_object_set_new(at(b, "network.layers.1"), "activation", json_string("Tanh"));
  expect_err(b, 1, ACED_E_INVALID, "network.layers[1].activation", "activation names are case-sensitive");
  b = body();
  json_object_set_new(at(b, "network"), "type", json_string("lstm"));
  expect_err(b, 1, ACED_E_INVALID, "network.type", "network.type lstm (the cell goes in network.cell)");
  b = body();
  json_object_set_new(at(b, "network"), "type", json_string("recurrent"));
  expect_err(b, 1, ACED_E_MISSING_FIELD, "sequence_length", "recurrent without sequence_length");
  b = body();
  json_object_set_new(b, "sequence_length", json_integer(3));
  expect_err(b, 1, ACED_E_INVALID, "sequence_length", "sequence_length on a feedforward model");

  b = body();
  json_object_set_new(at(b, "network.layers.2"), "activation", json_string("softmax"));
  json_object_set_new(at(b, "network.layers.0"), "activation", json_string("gelu"));
  json_object_set_new(at(b, "network.layers.1"), "activation", json_string("leaky_relu"));
  m = parse_ok(b, 1);
  tap_ok(m && m->net.layers[2].act == ENG_ACT_SOFTMAX && m->net.layers[0].act == ENG_ACT_GELU &&
             m->net.layers[1].act == ENG_ACT_LEAKY_RELU,
         "softmax on the last layer, gelu and leaky_relu accepted");
  model_free(m);
}

static void test_value_errors(void)
{
  char label[140];
  json_t *b, *d;

  b = body();
  json_object_set_new(at(b, "features.2"), "low", json_integer(1));
  {
    /* low == high: a constant feature (issue 10), accepted and reported */
    struct aced_model *mc = parse_ok(b, 1);
    json_t *md = mc ? model_metadata_json(mc) : NULL;
    tap_ok(mc != NULL && mc->features[2].low == 1.0 && mc->features[2].high == 1.0,
           "low == high is accepted (a constant feature)");
    tap_ok(md && json_is_true(json_object_get(at(md, "features.2"), "constant")) &&
               json_object_get(at(md, "features.1"), "constant") == NULL,
           "the metadata marks it \"constant\": true, and only it");
    json_decref(md);
    model_free(mc);
  }
  b = body();
  json_object_set_new(at(b, "features.0"), "low", json_real(2.5));
  expect_err(b, 1, ACED_E_INVALID, "features[0].low", "low > high");
  b = body();
  json_object_set_new(at(b, "features.3"), "name", json_string("x1"));
  expect_err(b, 1, ACED_E_INVALID, "features[3].name", "duplicate feature name");
  b = body();
  json_object_set_new(at(b, "features.1"), "name", json_string("x3"));
  json_object_set_new(at(b, "features.2"), "name", json_string("x0"));
  expect_err(b, 1, ACED_E_INVALID, "features[2].name", "first duplicate in body order is reported");
  b = body();
  json_array_set_new(at(b, "outputs"), 2, json_string("y0"));
  expect_err(b, 1, ACED_E_INVALID, "outputs[2]", "duplicate output name");
  b = body();
  json_object_set_new(at(b, "features.1"), "name", json_string(""));
  expect_err(b, 1, ACED_E_INVALID, "features[1].name", "empty feature name");
  b = body();
  json_array_set_new(at(b, "outputs"), 0, json_string("y\x07"));
  expect_err(b, 1, ACED_E_INVALID, "outputs[0]", "control character in output name");
  b = body();
  memset(label, 'f', 129);
  label[129] = '\0';
  json_object_set_new(at(b, "features.0"), "name", json_string(label));
  expect_err(b, 1, ACED_E_LIMIT, "features[0].name", "feature name of 129 bytes");

  /* jansson cannot hold inf or NaN, nor parse 1e400, so non-finite input
   * can only arise from arithmetic: samples whose squares overflow. */
  tap_ok(json_real(INFINITY) == NULL && json_real(NAN) == NULL &&
             json_loads("[1e400]", 0, NULL) == NULL,
         "jansson refuses inf, NaN and 1e400 (non-finite input cannot arrive)");
  b = tiny_body(1, 0, 0, 1);
  d = json_object_get(b, "data");
  json_object_clear(d);
  json_object_set_new(d, "samples", json_pack("[[f,f],[f,f]]", 1e300, 0.0, -1e300, 1.0));
  expect_err(b, 1, ACED_E_NOT_FINITE, "data.samples", "samples whose covariance overflows");

  b = body();
  json_array_set_new(at(b, "data.covariance.1"), 0,
                     json_real(json_number_value(at(b, "data.covariance.1.0")) + 0.01));
  expect_err(b, 1, ACED_E_NOT_PSD, "data.covariance[1][0]", "asymmetric covariance");
  b = tiny_body(1, 2, 2, 1);
  expect_err(b, 1, ACED_E_NOT_PSD, "data.covariance", "covariance [[1,2],[2,1]] is not PSD");
  b = tiny_body(1e-12, 2e-12, 2e-12, 1e-12);
  expect_err(b, 1, ACED_E_NOT_PSD, "data.covariance", "non-PSD at a tiny scale is still refused");
  b = tiny_body(-1, 0, 0, 1);
  expect_err(b, 1, ACED_E_NOT_PSD, "data.covariance", "negative variance");
  {
    struct aced_model *m = parse_ok(tiny_body(1, 1, 1, 1), 1);
    tap_ok(m != NULL, "singular PSD covariance [[1,1],[1,1]] accepted");
    model_free(m);
    m = parse_ok(tiny_body(2, 0.3, 0.3 * (1 + 1e-12), 1), 1);
    tap_ok(m && m->cov[1] == m->cov[2] && fabs(m->cov[1] - 0.3) < 1e-12,
           "1e-12 relative asymmetry accepted and symmetrized exactly");
    model_free(m);
    /* v v^T for v = (3, 1.6) in float64: LAPACK gives its zero
     * eigenvalue as about -2.2e-16, which the tolerance must absorb. */
    m = parse_ok(tiny_body(9, 4.7999999999999998, 4.7999999999999998, 2.5599999999999996), 1);
    tap_ok(m != NULL, "rank-one covariance with a rounding-level negative eigenvalue accepted");
    model_free(m);
    m = parse_ok(tiny_body(0, 0, 0, 0), 1);
    tap_ok(m != NULL, "zero covariance (constant inputs) accepted");
    model_free(m);
  }

  b = body();
  json_array_remove(at(b, "data.covariance"), 3);
  expect_err(b, 1, ACED_E_SHAPE, "data.covariance", "covariance with 3 rows for 4 features");
  b = body();
  json_array_append_new(at(b, "data.covariance.2"), json_real(0));
  expect_err(b, 1, ACED_E_SHAPE, "data.covariance[2]", "covariance row of 5");
  b = body();
  json_array_remove(at(b, "data.mean"), 0);
  expect_err(b, 1, ACED_E_SHAPE, "data.mean", "mean of 3 for 4 features");
  b = body();
  json_array_remove(at(b, "data.samples.5"), 0);
  expect_err(b, 1, ACED_E_SHAPE, "data.samples[5]", "sample row of 3");
  b = body();
  d = at(b, "data");
  json_object_del(d, "mean");
  json_object_del(d, "covariance");
  while (json_array_size(at(d, "samples")) > 1)
    json_array_remove(at(d, "samples"), 1);
  expect_err(b, 1, ACED_E_SHAPE, "data.samples", "one sample only");
  b = body();
  json_array_clear(at(b, "features"));
  expect_err(b, 1, ACED_E_SHAPE, "features", "no features");
  b = body();
  json_array_clear(at(b, "outputs"));
  expect_err(b, 1, ACED_E_SHAPE, "outputs", "no outputs");
}

/* Limits: the bodies reuse one json_t many times (a reference each), so
 * they cost little memory; the parser must refuse them before allocating. */
static void test_limits(void)
{
  json_t *b, *arr, *row, *feats;
  char *desc;
  int i;

  b = body();
  arr = at(b, "network.layers");
  for (i = 3; i <= ACED_MAX_LAYERS; i++)
    json_array_append(arr, json_array_get(arr, 1));
  expect_err(b, 1, ACED_E_LIMIT, "network.layers", "33 layers");

  b = body();
  arr = at(b, "data.samples");
  row = json_array_get(arr, 0);
  while (json_array_size(arr) <= ACED_MAX_SAMPLES)
    json_array_append(arr, row);
  expect_err(b, 1, ACED_E_LIMIT, "data.samples", "100001 samples");

  /* 4096 features x 8192 units in layer 0 is 33.5M parameters > 16M.
   * Every weight row is the same json_t. */
  b = json_pack("{s:s, s:[], s:[s], s:{s:s, s:[{s:[], s:[], s:s}, {}]}, s:{}}", "name",
                "big", "features", "outputs", "y", "network", "type", "feedforward",
                "layers", "weights", "bias", "activation", "relu", "data");
  feats = json_object_get(b, "features");
  row = json_array();
  for (i = 0; i < ACED_MAX_INPUTS; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "f%d", i);
    json_array_append_new(feats, json_pack("{s:s, s:i, s:i}", "name", nm, "low", 0, "high", 1));
    json_array_append_new(row, json_real(0.5));
  }
  arr = at(b, "network.layers.0.weights");
  for (i = 0; i < ACED_MAX_UNITS; i++) {
    json_array_append(arr, row);
    json_array_append_new(at(b, "network.layers.0.bias"), json_real(0));
  }
  expect_err(json_incref(b), 1, ACED_E_LIMIT, "network.layers[0]",
             "33.5M parameters in layer 0");
  json_array_append(arr, row);
  expect_err(json_incref(b), 1, ACED_E_LIMIT, "network.layers[0].weights", "8193 units");

  /* 4096 features x 100000 samples is 409.6M cells > 32M.  A valid
   * 4096 -> 1 network first so that parsing reaches the data. */
  json_array_clear(at(b, "network.layers"));
  json_array_append_new(at(b, "network.layers"),
                        json_pack("{s:[O], s:[f], s:s}", "weights", row, "bias", 0.0,
                                  "activation", "identity"));
  arr = json_array();
  for (i = 0; i < 10000; i++)
    json_array_append(arr, row);
  json_object_set_new(at(b, "data"), "samples", arr);
  expect_err(b, 1, ACED_E_LIMIT, "data.samples", "10000 samples x 4096 features = 41M cells");
  json_decref(row);

  b = body();
  arr = at(b, "features");
  row = json_array_get(arr, 0);
  while (json_array_size(arr) <= ACED_MAX_INPUTS)
    json_array_append(arr, row);
  expect_err(b, 1, ACED_E_LIMIT, "features", "4097 features");
  b = body();
  arr = at(b, "outputs");
  while (json_array_size(arr) <= ACED_MAX_OUTPUTS)
    json_array_append_new(arr, json_string("z"));
  expect_err(b, 1, ACED_E_LIMIT, "outputs", "1025 outputs");

  desc = malloc(ACED_DESCRIPTION_MAX + 2);
  memset(desc, 'd', ACED_DESCRIPTION_MAX + 1);
  desc[ACED_DESCRIPTION_MAX + 1] = '\0';
  b = body();
  json_object_set_new(b, "description", json_string(desc));
  expect_err(b, 1, ACED_E_LIMIT, "description", "description of 4097 bytes");
  desc[ACED_DESCRIPTION_MAX] = '\0';
  b = body();
  json_object_set_new(b, "description", json_string(desc));
  {
    struct aced_model *m = parse_ok(b, 1);
    tap_ok(m && strlen(m->description) == ACED_DESCRIPTION_MAX,
           "description of exactly 4096 bytes accepted");
    model_free(m);
  }
  free(desc);
}

static void test_metadata_and_lookups(void)
{
  struct aced_model *m = parse_ok(body(), 1), *m2;
  json_t *md, *v;
  char *s;

  if (!tap_ok(m != NULL, "model for metadata"))
    return;
  m->version = 3;
  md = model_metadata_json(m);
  s = json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS);
  tap_diag("metadata: %.400s", s);
  tap_ok(md && strcmp(json_string_value(json_object_get(md, "name")), "small_mlp") == 0 &&
             json_integer_value(json_object_get(md, "version")) == 3 &&
             strcmp(json_string_value(json_object_get(md, "digest")), m->digest) == 0 &&
             json_is_string(json_object_get(md, "description")) &&
             json_integer_value(json_object_get(md, "n_params")) == 83,
         "metadata: name, version, digest, description, n_params");
  tap_ok(json_array_size(json_object_get(md, "features")) == 4 &&
             json_number_value(at(md, "features.3.high")) == 1.0 &&
             strcmp(json_string_value(at(md, "features.3.name")), "x3") == 0 &&
             strcmp(json_string_value(at(md, "outputs.2")), "y2") == 0,
         "metadata: features and outputs");
  tap_ok(strcmp(json_string_value(at(md, "network.type")), "feedforward") == 0 &&
             json_integer_value(at(md, "network.layers.1.inputs")) == 6 &&
             json_integer_value(at(md, "network.layers.1.units")) == 5 &&
             strcmp(json_string_value(at(md, "network.layers.1.activation")), "softplus") == 0 &&
             json_object_size(at(md, "network.layers.1")) == 3,
         "metadata: layers as {inputs, units, activation}, no weights");
  tap_ok(json_integer_value(at(md, "data.n_samples")) == 200 &&
             strcmp(json_string_value(at(md, "data.moments")), "given") == 0 &&
             json_object_size(at(md, "data")) == 2 && strstr(s, "samples\":[") == NULL,
         "metadata: data {n_samples, moments}, no samples");
  free(s);
  json_decref(md);

  v = json_string("y1");
  tap_ok(model_output_index(m, v) == 1, "output index by name");
  json_decref(v);
  v = json_integer(2);
  tap_ok(model_output_index(m, v) == 2, "output index by integer");
  json_decref(v);
  v = json_integer(3);
  tap_ok(model_output_index(m, v) == -1, "output index out of range");
  json_decref(v);
  v = json_integer(-1);
  tap_ok(model_output_index(m, v) == -1, "negative output index");
  json_decref(v);
  v = json_real(1.0);
  tap_ok(model_output_index(m, v) == -1, "output index as a real is refused");
  json_decref(v);
  v = json_string("x1");
  tap_ok(model_output_index(m, v) == -1 && model_feature_index(m, v) == 1,
         "a feature name is not an output");
  json_decref(v);
  tap_ok(model_output_index(m, NULL) == -1 && model_feature_index(m, json_true()) == -1,
         "NULL and booleans are not indices");
  tap_ok(model_output_lookup(m, "y2") == 2 && model_output_lookup(m, "0") == 0 &&
             model_output_lookup(m, "3") == -1 && model_output_lookup(m, "1x") == -1 &&
             model_output_lookup(m, "") == -1 && model_output_lookup(m, "-1") == -1 &&
             model_output_lookup(m, "99999999999999999999999") == -1 &&
             model_output_lookup(m, "Y2") == -1,
         "output lookup from URL segments");
  tap_ok(model_feature_lookup(m, "x3") == 3 && model_feature_lookup(m, "002") == 2 &&
             model_feature_lookup(m, "4") == -1 && model_feature_lookup(m, NULL) == -1,
         "feature lookup from URL segments");
  model_free(m);

  /* a name wins over an index */
  {
    json_t *b = body();
    json_array_set_new(at(b, "outputs"), 0, json_string("2"));
    json_array_set_new(at(b, "outputs"), 2, json_string("0"));
    m2 = parse_ok(b, 1);
    tap_ok(m2 && model_output_lookup(m2, "2") == 0 && model_output_lookup(m2, "0") == 2 &&
               model_output_lookup(m2, "1") == 1,
           "an output named \"2\" is found by name before index");
    model_free(m2);
  }
  /* model_free(NULL) in a child, so that a crash is a failed check here
   * rather than a test program that dies without its plan. */
  {
    int status = -1;
    pid_t pid;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
      model_free(NULL);
      _exit(0);
    }
    int waited = pid > 0 && waitpid(pid, &status, 0) == pid;
    tap_ok(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "model_free(NULL) is a no-op (child wait status %d)", status);
  }
}

/* Every tests/data/models/good_*.json registers.  The list is fixed here
 * rather than globbed so that a missing file is a failure. */
static void test_example_bodies(void)
{
  static const char *files[] = {"good_tiny_linear.json"};
  const char *src = getenv("ACED_SRCDIR");
  char path[1024];
  size_t i;

  for (i = 0; i < sizeof files / sizeof files[0]; i++) {
    json_t *b;
    struct aced_model *m = NULL;
    snprintf(path, sizeof path, "%s/tests/data/models/%s", src ? src : ".", files[i]);
    b = json_load_file(path, 0, NULL);
    if (!tap_ok(b != NULL, "load %s", path))
      continue;
    m = parse_ok(b, 1);
    tap_ok(m && m->moments_given == 0 && m->n_samples == 4 && fabs(m->cov[0] - 1.0 / 3) < 1e-15 &&
               fabs(m->cov[1] + 1.0 / 3) < 1e-15,
           "%s registers; variance 1/3, covariance -1/3", files[i]);
    model_free(m);
  }
}

int main(void)
{
  if (!load_fixture())
    return tap_done();
  test_example_bodies();
  test_fixture();
  test_moments();
  test_digests();
  test_names();
  test_structure_errors();
  test_network_errors();
  test_value_errors();
  test_limits();
  test_metadata_and_lookups();
  json_decref(fixture);
  return tap_done();
}
