/*
 * test_model_ext.c -- what a registration carries beyond the feedforward
 * network and its data: the input transform (issue 10: canonical form,
 * digest, folding into layer 0, errors naming the field), the graph among
 * the inputs (issue 14) and recurrent networks (issue 12,
 * tests/data/recurrent_ref.json).  The plain registration (fixture,
 * moments, digests, errors, limits, lookups) is test_model.c.
 *
 * Reads $ACED_SRCDIR/tests/data/small_mlp.json and recurrent_ref.json;
 * without them the test fails rather than skips.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aced/model.h"
#include "tap.h"
#include "modeltest.h"

/* The input transform (issue 10): canonical form, digest, folding. */
static void test_transform(void)
{
  json_t *b = body(), *tf;
  struct aced_model *m0, *m1, *m2;

  m0 = parse_ok(json_deep_copy(b), 1);
  tf = json_pack("{s:[f,f,f,f], s:[f,f,f,f]}", "scale", 2.0, 0.5, -4.0, 1.0, "shift", 1.0,
                 -3.0, 0.25, 0.0);
  json_object_set_new(b, "input_transform", tf);
  m1 = parse_ok(json_deep_copy(b), 1);
  tap_ok(m0 && m1 && m1->has_transform && !m0->has_transform &&
             strcmp(m0->digest, m1->digest) != 0,
         "a transform is parsed and changes the digest");
  if (m0 && m1) {
    char *c0 = model_canonical_json(m0), *c1 = model_canonical_json(m1);
    json_t *j = json_loads(c1, 0, NULL);
    char *dumped = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17))
                     : NULL;
    tap_ok(dumped && strcmp(dumped, c1) == 0,
           "canonical text with a transform is exactly what jansson writes for it");
    tap_ok(strstr(c0, "input_transform") == NULL &&
               strstr(c1, "\"input_transform\":{\"scale\":[2.0,0.5,-4.0,1.0],"
                          "\"shift\":[1.0,-3.0,0.25,0.0]}") != NULL,
           "no transform: canonical text as before; a transform: kept as given");
    m2 = j ? parse_ok(json_incref(j), 0) : NULL;
    tap_ok(m2 && strcmp(m2->digest, m1->digest) == 0,
           "canonical text with a transform re-parses to the same digest");
    model_free(m2);
    json_decref(j);
    free(dumped);
    free(c0);
    free(c1);

    /* folding: W' = W diag(1/scale), b' = b - W (shift/scale), other
     * layers shared */
    struct eng_net net;
    struct eng_layer *ls = NULL;
    double werr = 0.0, berr = 0.0;
    tap_ok(model_engine_net(m0, &net, &ls) == 0 && ls == NULL && net.layers == m0->net.layers,
           "without a transform the engine gets the network as registered");
    tap_ok(model_engine_net(m1, &net, &ls) == 0 && ls != NULL &&
               net.layers[1].W == m1->net.layers[1].W,
           "with one, layer 0 is a folded copy and the rest is shared");
    if (ls != NULL) {
      const struct eng_layer *L0 = &m1->net.layers[0];
      for (int u = 0; u < L0->n_out; u++) {
        double bb = L0->b[u];
        for (int j2 = 0; j2 < L0->n_in; j2++) {
          double w = L0->W[u * L0->n_in + j2];
          werr = fmax(werr, fabs(ls[0].W[u * L0->n_in + j2] - w / m1->tf_scale[j2]));
          bb -= w * m1->tf_shift[j2] / m1->tf_scale[j2];
        }
        berr = fmax(berr, fabs(ls[0].b[u] - bb));
      }
      tap_ok(werr == 0.0 && berr <= 1e-14, "folded layer 0 is W/scale, b - W shift/scale "
                                           "(max diffs %.1e, %.1e)",
             werr, berr);
      model_engine_net_free(ls);
    }
  }
  model_free(m0);
  model_free(m1);

  /* errors name the field */
  json_object_set_new(b, "input_transform", json_pack("{s:[i,i,i,i]}", "scale", 1, 1, 0, 1));
  expect_err(json_deep_copy(b), 1, ACED_E_INVALID, "input_transform.scale[2]", "zero scale");
  json_object_set_new(b, "input_transform", json_pack("{s:[i,i]}", "shift", 1, 1));
  expect_err(json_deep_copy(b), 1, ACED_E_SHAPE, "input_transform.shift", "short shift");
  json_object_set_new(b, "input_transform", json_pack("{s:[f,f,f,f]}", "scale", 1.0, 1.0, 1.0,
                                                      1e-310));
  expect_err(json_deep_copy(b), 1, ACED_E_NOT_FINITE, "input_transform.scale[3]",
             "scale whose inverse overflows");
  json_object_set_new(b, "input_transform", json_object());
  expect_err(json_deep_copy(b), 1, ACED_E_MISSING_FIELD, "input_transform.scale",
             "empty transform");
  json_object_set_new(b, "input_transform", json_pack("{s:[i,i,i,i]}", "offset", 1, 1, 1, 1));
  expect_err(json_deep_copy(b), 1, ACED_E_UNKNOWN_FIELD, "input_transform.offset",
             "unknown transform field");
  json_decref(b);
}

/* The graph among the inputs (issue 14): in the canonical text exactly as
 * jansson writes it, sorted edges, round trip, learned fields kept. */
static void test_graph(void)
{
  json_t *b = body();
  const char *f0 = json_string_value(json_object_get(at(b, "features.0"), "name"));
  const char *f1 = json_string_value(json_object_get(at(b, "features.1"), "name"));
  const char *f2 = json_string_value(json_object_get(at(b, "features.2"), "name"));
  json_object_set_new(b, "graph", json_pack("{s:[[ss][ss]]}", "edges", f1, f2, f0, f2));
  struct aced_model *m = parse_ok(b, 1);
  if (tap_ok(m != NULL && m->graph && m->graph->n_edges == 2, "a body with a graph registers")) {
    tap_ok(m->graph->edges[0][0] == 0 && m->graph->edges[1][0] == 1, "edges are kept sorted");
    char *canon = model_canonical_json(m);
    json_t *re = json_loads(canon, 0, NULL);
    char *dumped = json_dumps(re, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    tap_ok(dumped && strcmp(dumped, canon) == 0, "the canonical text with a graph is jansson's");
    struct aced_model *m2 = parse_ok(json_incref(re), 0);
    tap_ok(m2 && strcmp(m2->digest, m->digest) == 0, "and round-trips to the same digest");
    /* a learned graph keeps the learner's report */
    int e[1][2] = {{2, 0}};
    struct aced_error err;
    if (m2 && model_graph_set(m2, (const int (*)[2])e, 1, 1,
                              json_pack("{s:s,s:f}", "method", "dagma", "score", 0.25),
                              &err) == ACED_OK && model_compute_digest(m2) == 0) {
      char *c3 = model_canonical_json(m2);
      json_t *r3 = json_loads(c3, 0, NULL);
      struct aced_model *m3 = parse_ok(json_incref(r3), 0); /* parse_ok takes a reference */
      tap_ok(m3 && m3->graph && m3->graph->learned && strcmp(m3->digest, m2->digest) == 0 &&
                 strcmp(m2->digest, m->digest) != 0,
             "a learned graph is stored with its report and changes the digest");
      tap_ok(r3 && json_object_get(json_object_get(r3, "graph"), "method") &&
                 json_object_get(json_object_get(r3, "graph"), "source"),
             "its canonical form carries method and source");
      model_free(m3);
      json_decref(r3);
      free(c3);
    }
    int cyc[2][2] = {{0, 1}, {1, 0}};
    tap_ok(m2 && model_graph_set(m2, (const int (*)[2])cyc, 2, 0, NULL, &err) == ACED_E_CYCLIC_GRAPH,
           "model_graph_set refuses a cycle");
    model_free(m2);
    json_decref(re);
    free(dumped);
    free(canon);
  }
  model_free(m);
}

/* Recurrent registrations (tests/data/recurrent_ref.json): the canonical
 * text is what jansson writes for it, re-parses to the same digest, and
 * the features, outputs and data are flattened over time. */
static void test_recurrent(const char *src)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/recurrent_ref.json", src ? src : ".");
  json_t *root = json_load_file(path, 0, NULL), *c;
  size_t i;
  if (!tap_ok(root != NULL, "load %s", path))
    return;
  json_array_foreach(json_object_get(root, "cases"), i, c) {
    json_t *b = json_object_get(c, "model");
    struct aced_model *m = NULL, *m2 = NULL;
    struct aced_error e;
    const char *name = json_string_value(json_object_get(b, "name"));
    if (!tap_ok(model_parse(b, 1, &m, &e) == ACED_OK, "%s parses (%s)", name, e.message))
      continue;
    int T = (int)json_integer_value(json_object_get(b, "sequence_length"));
    int ni = (int)json_array_size(json_object_get(b, "features"));
    tap_ok(m->rnn != NULL && m->seq_len == T && m->step_features == ni &&
               m->n_features == T * ni && m->n_samples == (int)json_array_size(json_object_get(
                                                               json_object_get(b, "data"), "sequences")),
           "%s: %d steps x %d features flattened", name, T, ni);
    char *canon = model_canonical_json(m);
    json_t *j = json_loads(canon, 0, NULL);
    char *dumped = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    tap_ok(dumped && strcmp(dumped, canon) == 0, "%s: canonical text is what jansson writes", name);
    tap_ok(model_parse(j, 0, &m2, &e) == ACED_OK && strcmp(m2->digest, m->digest) == 0,
           "%s: canonical text re-parses to the same digest", name);
    model_free(m2);
    free(dumped);
    free(canon);
    json_decref(j);
    model_free(m);
  }
  json_decref(root);
}

int main(void)
{
  if (!load_fixture())
    return tap_done();
  test_transform();
  test_graph();
  test_recurrent(getenv("ACED_SRCDIR"));
  json_decref(fixture);
  return tap_done();
}
