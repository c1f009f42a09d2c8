/*
 * test_onnx.c -- the ONNX importer (src/model/onnx*.c) on the real
 * exports of tests/data/onnx/, below the daemon: the network it writes is
 * compared, value for value (json_equal: exact), with what PyTorch's own
 * state_dict says (tools/gen_onnx_fixtures.py wrote both).
 *
 * - Recurrent exports (rnn_ref.json): GRU, LSTM and RNN (tanh, relu),
 *   batch_first or not, heads on the last step (out[:, -1], out[-1], the
 *   final state h_n[-1]) or on every step, stacks of two: the "recurrent"
 *   network of issue #12, weights in PyTorch's layout and gate order (the
 *   importer reorders ONNX's z, r, h and i, o, f, c), and the sequence
 *   length from the graph.  Registering it end to end waits for #12's
 *   parser; until then this is the check of the mapping.
 * - Feedforward exports (ff_ref.json): the same network as the JSON
 *   registration of the same weights, exactly (test_onnx.py checks the
 *   digest and the expectations over HTTP).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aced/model.h"
#include "model/internal.h"
#include "tap.h"

static char *b64_file(const char *path)
{
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  char *s, *p;
  long n, i;
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
    if (f)
      fclose(f);
    return NULL;
  }
  rewind(f);
  buf = malloc((size_t)n + 3);
  s = malloc((size_t)n / 3 * 4 + 8);
  if (buf == NULL || s == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    free(s);
    return NULL;
  }
  fclose(f);
  buf[n] = buf[n + 1] = 0;
  for (i = 0, p = s; i < n; i += 3) {
    unsigned v = (unsigned)buf[i] << 16 | (unsigned)buf[i + 1] << 8 | buf[i + 2];
    *p++ = a[v >> 18];
    *p++ = a[(v >> 12) & 63];
    *p++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
    *p++ = i + 2 < n ? a[v & 63] : '=';
  }
  *p = '\0';
  free(buf);
  return s;
}

/* The expanded body of case c's export, or NULL (the error in *err). */
static json_t *import(const char *dir, json_t *c, char *source, struct aced_error *err)
{
  char path[1024], *text;
  json_t *body, *out = NULL;
  snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(c, "file")));
  if ((text = b64_file(path)) == NULL)
    return NULL;
  body = json_pack("{s:s,s:O,s:{s:s,s:s}}", "name", "t", "features", json_object_get(c, "features"),
                   "network", "type", "onnx", "model", text);
  free(text);
  if (model_onnx_expand(body, &out, source, ACED_SOURCE_MAX + 1, err) != ACED_OK)
    out = NULL;
  json_decref(body);
  return out;
}

static void worst_diff(json_t *a, json_t *b, double *worst)
{
  size_t i;
  const char *k;
  json_t *v;
  if (json_is_number(a) && json_is_number(b)) {
    double d = json_number_value(a) - json_number_value(b);
    if (d < 0)
      d = -d;
    if (d > *worst)
      *worst = d;
  } else if (json_is_array(a) && json_is_array(b)) {
    for (i = 0; i < json_array_size(a) && i < json_array_size(b); i++)
      worst_diff(json_array_get(a, i), json_array_get(b, i), worst);
  } else if (json_is_object(a))
    json_object_foreach(a, k, v) worst_diff(v, json_object_get(b, k), worst);
}

static void run(const char *dir, const char *file, int recurrent)
{
  char path[1024], source[ACED_SOURCE_MAX + 1];
  json_t *ref, *c;
  size_t i;
  snprintf(path, sizeof path, "%s/%s", dir, file);
  ref = json_load_file(path, 0, NULL);
  if (!tap_ok(ref != NULL, "load %s", path))
    return;
  json_array_foreach(json_object_get(ref, "cases"), i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    struct aced_error err;
    json_t *got;
    double worst = 0;
    memset(&err, 0, sizeof err);
    got = import(dir, c, source, &err);
    if (!tap_ok(got != NULL, "%s imports", name)) {
      tap_diag("%s: %s", err.field, err.message);
      continue;
    }
    worst_diff(json_object_get(got, "network"), json_object_get(c, "network"), &worst);
    if (!tap_ok(json_equal(json_object_get(got, "network"), json_object_get(c, "network")),
                "%s: the network is PyTorch's state_dict, exactly%s (largest difference %.3g)",
                name, recurrent ? ", in PyTorch's gate order" : "", worst)) {
      char *g = json_dumps(json_object_get(got, "network"), JSON_COMPACT);
      tap_diag("got %.600s", g);
      free(g);
    }
    if (recurrent)
      tap_ok(json_integer_value(json_object_get(got, "sequence_length")) ==
                 json_integer_value(json_object_get(c, "sequence_length")),
             "%s: sequence_length %lld from the graph", name,
             (long long)json_integer_value(json_object_get(got, "sequence_length")));
    tap_ok(strstr(source, "\"opset\":") != NULL && strstr(source, "\"producer\":") != NULL,
           "%s: source %s", name, source);
    json_decref(got);
  }
  json_decref(ref);
}

int main(void)
{
  const char *src = getenv("ACED_SRCDIR");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tests/data/onnx", src ? src : ".");
  run(dir, "ff_ref.json", 0);
  run(dir, "rnn_ref.json", 1);
  return tap_done();
}
