/*
 * graph.c -- a causal graph among a model's inputs (issue 14): its
 * parsing, validation, canonical form and topological order.
 *
 * DESIGN
 *
 * The paper assumes inputs do not cause each other; a graph says which
 * do, so that do(x_i = a) can re-generate the descendants of i (total
 * effects, src/engine/scm.c).  A registration may carry
 *
 *   "graph": {"edges": [["w", "z"], ["w", "x"], ["z", "x"]]}
 *
 * (feature names; an edge may also be written {"from": "w", "to": "z"},
 * the form GET .../graph answers with, its "weight" ignored).  The graph
 * is part of the model's content: it is in the canonical JSON, so in the
 * digest, so in every cache key.  Replacing it (PUT or a learning job)
 * stores a new version under a new digest, and regressors fitted under
 * the old graph can never be served for the new one.
 *
 * Edges are kept sorted by (from, to), so the digest does not depend on
 * the order a client listed them in.  A cycle is refused with
 * `cyclic_graph` naming every feature of one cycle in order.  A learned
 * graph also keeps what the learner said (method, parameters, score,
 * warnings, varsortability) as a JSON object, stored with it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/model.h"
#include "model/internal.h"

void model_graph_free(struct aced_graph *g)
{
  if (g == NULL)
    return;
  free(g->edges);
  json_decref(g->info);
  free(g);
}

static int edge_cmp(const void *a, const void *b)
{
  const int *x = a, *y = b;
  if (x[0] != y[0])
    return x[0] < y[0] ? -1 : 1;
  return x[1] < y[1] ? -1 : x[1] > y[1];
}

static int feature_by_name(const struct aced_model *m, const json_t *v)
{
  if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
    return -1;
  for (int i = 0; i < m->n_features; i++)
    if (strcmp(m->features[i].name, json_string_value(v)) == 0)
      return i;
  return -1;
}

/* Depth-first search for a cycle.  adj is CSR (start[k + 1], to[]).  On
 * finding one, cyc gets its features in order and the count is returned;
 * 0 when the graph is acyclic, -1 when out of memory.  Iterative, with an
 * explicit stack: a path may be k = 4096 features long. */
static int find_cycle(int k, const int *start, const int *to, int *cyc)
{
  char *color = calloc((size_t)k, 1); /* 0 new, 1 on the stack, 2 done */
  int *stack = malloc(sizeof(int) * (size_t)k), *next = malloc(sizeof(int) * (size_t)k);
  int found = 0;
  if (!color || !stack || !next) {
    found = -1;
    goto out;
  }
  for (int s = 0; s < k && !found; s++) {
    if (color[s])
      continue;
    int top = 0;
    stack[0] = s;
    next[0] = start[s];
    color[s] = 1;
    while (top >= 0 && !found) {
      int u = stack[top];
      if (next[top] == start[u + 1]) {
        color[u] = 2;
        top--;
        continue;
      }
      int v = to[next[top]++];
      if (color[v] == 1) {
        int b = top;
        while (stack[b] != v)
          b--;
        for (int i = b; i <= top; i++)
          cyc[found++] = stack[i];
      } else if (color[v] == 0) {
        color[v] = 1;
        stack[++top] = v;
        next[top] = start[v];
      }
    }
  }
out:
  free(color);
  free(stack);
  free(next);
  return found;
}

/* Edges (sorted) as CSR adjacency; 0 or -1 when out of memory. */
static int csr(int k, const int (*e)[2], int n, int **start, int **to)
{
  *start = calloc((size_t)k + 1, sizeof(int));
  *to = malloc(sizeof(int) * (size_t)(n ? n : 1));
  if (*start == NULL || *to == NULL) {
    free(*start);
    free(*to);
    return -1;
  }
  for (int i = 0; i < n; i++)
    (*start)[e[i][0] + 1]++;
  for (int i = 0; i < k; i++)
    (*start)[i + 1] += (*start)[i];
  for (int i = 0; i < n; i++) /* sorted by from: in order */
    (*to)[i] = e[i][1];
  return 0;
}

static enum aced_err check_acyclic(const struct aced_model *m, const int (*e)[2], int n,
                                   const char *field, struct aced_error *err)
{
  int k = m->n_features, *start, *to;
  int *cyc = malloc(sizeof(int) * (size_t)k);
  if (cyc == NULL || csr(k, e, n, &start, &to) != 0) {
    free(cyc);
    return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
  }
  int nc = find_cycle(k, start, to, cyc);
  free(start);
  free(to);
  if (nc == 0) {
    free(cyc);
    return ACED_OK;
  }
  if (nc < 0) {
    free(cyc);
    return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
  }
  char msg[ACED_MESSAGE_MAX];
  size_t w = (size_t)snprintf(msg, sizeof msg, "the graph has a cycle: ");
  for (int i = 0; i <= nc && w < sizeof msg; i++)
    w += (size_t)snprintf(msg + w, sizeof msg - w, "%s%s", i ? " -> " : "",
                          m->features[cyc[i % nc]].name);
  free(cyc);
  if (w >= sizeof msg) /* a very long cycle: say so rather than cut silently */
    memcpy(msg + sizeof msg - 5, " ...", 5);
  return aced_error_set(err, ACED_E_CYCLIC_GRAPH, field, "%s", msg);
}

enum aced_err model_graph_set(struct aced_model *m, const int (*edges)[2], int n, int learned,
                              json_t *info, struct aced_error *err)
{
  struct aced_graph *g = calloc(1, sizeof *g);
  if (g == NULL || (g->edges = malloc(sizeof *g->edges * (size_t)(n ? n : 1))) == NULL) {
    free(g);
    json_decref(info);
    return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
  }
  g->info = info;
  g->learned = learned;
  for (int i = 0; i < n; i++) {
    g->edges[i][0] = edges[i][0];
    g->edges[i][1] = edges[i][1];
  }
  qsort(g->edges, (size_t)n, sizeof *g->edges, edge_cmp);
  g->n_edges = n;
  for (int i = 0; i < n; i++) {
    int a = g->edges[i][0], b = g->edges[i][1];
    if (a < 0 || a >= m->n_features || b < 0 || b >= m->n_features ||
        (i > 0 && a == g->edges[i - 1][0] && b == g->edges[i - 1][1])) {
      model_graph_free(g);
      return aced_error_set(err, ACED_E_INVALID, "edges", "invalid or duplicate edge");
    }
  }
  enum aced_err rc = check_acyclic(m, (const int (*)[2])g->edges, n, "edges", err);
  if (rc != ACED_OK) {
    model_graph_free(g);
    return rc;
  }
  model_graph_free(m->graph);
  m->graph = g;
  return ACED_OK;
}

/* One edge entry at edges[i]: ["w", "z"] or {"from": "w", "to": "z"}. */
static enum aced_err parse_edge(const struct aced_model *m, const json_t *e, const char *path,
                                size_t i, int *from, int *to, struct aced_error *err)
{
  char field[ACED_FIELD_MAX];
  const json_t *a, *b;
  const char *fa, *fb;
  if (json_is_array(e) && json_array_size(e) == 2) {
    a = json_array_get(e, 0);
    b = json_array_get(e, 1);
    fa = "[0]";
    fb = "[1]";
  } else if (json_is_object(e)) {
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)e, key, val) {
      if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "weight")) {
        snprintf(field, sizeof field, "%sedges[%zu].%.64s", path, i, key);
        return aced_error_set(err, ACED_E_UNKNOWN_FIELD, field,
                              "'%.64s' is not a field of an edge (from, to, weight)", key);
      }
    }
    a = json_object_get(e, "from");
    b = json_object_get(e, "to");
    fa = ".from";
    fb = ".to";
    if (a == NULL || b == NULL) {
      snprintf(field, sizeof field, "%sedges[%zu]%s", path, i, a == NULL ? fa : fb);
      return aced_error_set(err, ACED_E_MISSING_FIELD, field, "an edge needs 'from' and 'to'");
    }
  } else {
    snprintf(field, sizeof field, "%sedges[%zu]", path, i);
    return aced_error_set(err, json_is_array(e) ? ACED_E_SHAPE : ACED_E_BAD_TYPE, field,
                          "an edge is a pair of feature names [\"from\", \"to\"]");
  }
  const json_t *v[2] = {a, b};
  const char *suf[2] = {fa, fb};
  int *out[2] = {from, to};
  for (int s = 0; s < 2; s++) {
    snprintf(field, sizeof field, "%sedges[%zu]%s", path, i, suf[s]);
    if (!json_is_string(v[s]))
      return aced_error_set(err, ACED_E_BAD_TYPE, field, "expected a feature name (a string)");
    if ((*out[s] = feature_by_name(m, v[s])) < 0)
      return aced_error_set(err, ACED_E_INVALID, field, "the model has no feature '%.64s'",
                            json_string_value(v[s]));
  }
  return ACED_OK;
}

enum aced_err model_graph_parse(const json_t *gj, int client, const char *path,
                                struct aced_model *m, struct aced_error *err)
{
  char field[ACED_FIELD_MAX];
  const char *key;
  json_t *val;
  if (gj == NULL)
    return ACED_OK;
  if (!json_is_object(gj))
    return aced_error_set(err, ACED_E_BAD_TYPE, path[0] ? "graph" : "",
                          "the graph is an object {\"edges\": [[\"from\", \"to\"], ...]}");
  const json_t *src = json_object_get(gj, "source");
  int learned = !client && json_is_string(src) && strcmp(json_string_value(src), "learned") == 0;
  json_object_foreach((json_t *)gj, key, val) {
    if (strcmp(key, "edges") == 0 || (!client && strcmp(key, "source") == 0))
      continue;
    if (learned)
      continue; /* the learner's report, kept as it is */
    snprintf(field, sizeof field, "%s%.64s", path, key);
    return aced_error_set(err, ACED_E_UNKNOWN_FIELD, field,
                          "'%.64s' is not a field of a graph (only \"edges\")", key);
  }
  const json_t *edges = json_object_get(gj, "edges");
  snprintf(field, sizeof field, "%sedges", path);
  if (edges == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, field, "required field 'edges' is missing");
  if (!json_is_array(edges))
    return aced_error_set(err, ACED_E_BAD_TYPE, field, "expected an array of edges");
  size_t n = json_array_size(edges);
  if (n > ACED_GRAPH_MAX_EDGES)
    return aced_error_set(err, ACED_E_LIMIT, field, "%zu edges, at most %d allowed", n,
                          ACED_GRAPH_MAX_EDGES);
  int(*e)[2] = malloc(sizeof *e * (n ? n : 1));
  if (e == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
  enum aced_err rc = ACED_OK;
  for (size_t i = 0; i < n && rc == ACED_OK; i++)
    rc = parse_edge(m, json_array_get(edges, i), path, i, &e[i][0], &e[i][1], err);
  /* duplicates, named by the second occurrence: a quadratic scan is too
   * slow at the edge limit, so look them up in the sorted copy */
  if (rc == ACED_OK && n > 1) {
    int(*s)[2] = malloc(sizeof *s * n);
    if (s == NULL)
      rc = aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
    else {
      memcpy(s, e, sizeof *s * n);
      qsort(s, n, sizeof *s, edge_cmp);
      for (size_t i = 1; i < n && rc == ACED_OK; i++)
        if (s[i][0] == s[i - 1][0] && s[i][1] == s[i - 1][1]) {
          size_t j, first = n;
          for (j = 0; j < n; j++)
            if (e[j][0] == s[i][0] && e[j][1] == s[i][1]) {
              if (first < n)
                break;
              first = j;
            }
          snprintf(field, sizeof field, "%sedges[%zu]", path, j);
          rc = aced_error_set(err, ACED_E_INVALID, field, "edge %s -> %s is listed twice",
                              m->features[s[i][0]].name, m->features[s[i][1]].name);
        }
      free(s);
    }
  }
  if (rc == ACED_OK) {
    json_t *info = NULL;
    if (learned) {
      info = json_deep_copy(gj);
      json_object_del(info, "edges");
      json_object_del(info, "source");
    }
    rc = model_graph_set(m, (const int (*)[2])e, (int)n, learned, info, err);
    if (rc != ACED_OK)
      snprintf(err->field, sizeof err->field, "%sedges", path);
  }
  free(e);
  return rc;
}

json_t *model_graph_json(const struct aced_model *m)
{
  if (m == NULL || m->graph == NULL)
    return NULL;
  const struct aced_graph *g = m->graph;
  json_t *edges = json_array();
  for (int i = 0; i < g->n_edges; i++)
    json_array_append_new(edges, json_pack("[ss]", m->features[g->edges[i][0]].name,
                                           m->features[g->edges[i][1]].name));
  json_t *o = g->info ? json_deep_copy(g->info) : json_object();
  if (o == NULL || edges == NULL) {
    json_decref(o);
    json_decref(edges);
    return NULL;
  }
  json_object_set_new(o, "edges", edges);
  if (g->learned)
    json_object_set_new(o, "source", json_string("learned"));
  return o;
}

void model_graph_write(struct jw *w, const struct aced_model *m)
{
  json_t *g = model_graph_json(m);
  if (g == NULL)
    return;
  /* the same bytes jansson writes for the whole body (canonical.c) */
  char *text = json_dumps(g, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  json_decref(g);
  if (text == NULL)
    return; /* out of memory: the digest then cannot match on reload */
  jw_lit(w, ",\"graph\":");
  jw_raw(w, text, strlen(text));
  free(text);
}

int model_graph_order(const struct aced_model *m, int *order)
{
  if (m == NULL || m->graph == NULL)
    return -1;
  int k = m->n_features, *start, *to, *indeg = calloc((size_t)k, sizeof(int));
  if (indeg == NULL || csr(k, (const int (*)[2])m->graph->edges, m->graph->n_edges, &start, &to) != 0) {
    free(indeg);
    return -1;
  }
  for (int i = 0; i < m->graph->n_edges; i++)
    indeg[m->graph->edges[i][1]]++;
  int head = 0, tail = 0;
  for (int i = 0; i < k; i++)
    if (indeg[i] == 0)
      order[tail++] = i;
  while (head < tail) {
    int u = order[head++];
    for (int j = start[u]; j < start[u + 1]; j++)
      if (--indeg[to[j]] == 0)
        order[tail++] = to[j];
  }
  free(start);
  free(to);
  free(indeg);
  return tail == k ? 0 : -1;
}
