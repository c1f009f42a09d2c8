/*
 * canonical.c -- the canonical form of a registration: the JSON text a
 * model is stored as and whose SHA-256 is its digest (model.h).
 *
 * Written with the hot-path writer (jsonw.h), which gives jansson's
 * compact bytes: keys in byte order at every level (as JSON_SORT_KEYS),
 * reals with 17 significant digits (they round-trip every double), so two
 * registrations with the same numbers have the same digest however the
 * client spelled them (1 and 1.0, 0.1 and 1e-1).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include "aced/jsonw.h"
#include "aced/model.h"
#include "model/internal.h"

/* When hashing, the text goes to SHA-256 in chunks of HASH_CHUNK bytes,
 * so the whole text (hundreds of MB for the largest models) is never
 * held. */
#define HASH_CHUNK 65536

static void w_reals(struct jw *w, const double *a, size_t n)
{
  size_t i;
  jw_raw(w, "[", 1);
  for (i = 0; i < n; i++) {
    if (i)
      jw_raw(w, ",", 1);
    jw_real(w, a[i]);
  }
  jw_raw(w, "]", 1);
}

static void w_matrix(struct jw *w, const double *a, size_t rows, size_t cols)
{
  size_t r;
  jw_raw(w, "[", 1);
  for (r = 0; r < rows; r++) {
    if (r)
      jw_raw(w, ",", 1);
    w_reals(w, a + r * cols, cols);
  }
  jw_raw(w, "]", 1);
}

/* Keys in byte order at every level, as JSON_SORT_KEYS would put them:
 * data{covariance,mean,samples} description features[{high,low,name}]
 * graph (only when given) input_transform{scale,shift} (only when given)
 * network{layers[{activation,bias,weights}],type} outputs
 * training{batch_size,epochs,learning_rate,loss,seed,weight_decay} (with data.targets, only when given). */
static void write_recurrent(struct jw *w, const struct aced_model *m);
static void w_features(struct jw *w, const struct aced_model *m, int n);
static void w_head(struct jw *w, const struct eng_net *net);

/* {"data":{ and the given mean and covariance (k inputs), with the comma
 * before the samples that follow. */
static void w_moments(struct jw *w, const struct aced_model *m, size_t k)
{
  jw_lit(w, "{\"data\":{");
  if (m->moments_given) {
    jw_lit(w, "\"covariance\":");
    w_matrix(w, m->cov, k, k);
    jw_lit(w, ",\"mean\":");
    w_reals(w, m->mean, k);
    if (m->n_samples > 0)
      jw_raw(w, ",", 1);
  }
}

static void write_canonical(struct jw *w, const struct aced_model *m)
{
  if (m->rnn != NULL) {
    write_recurrent(w, m);
    return;
  }
  const size_t k = (size_t)m->n_features;
  int i;

  w_moments(w, m, k);
  if (m->n_samples > 0) {
    jw_lit(w, "\"samples\":");
    w_matrix(w, m->samples, (size_t)m->n_samples, k);
  }
  if (m->has_training) {
    jw_lit(w, ",\"targets\":");
    w_matrix(w, m->targets, (size_t)m->n_samples, (size_t)m->n_outputs);
  }
  jw_raw(w, "}", 1);
  if (m->description != NULL) {
    jw_lit(w, ",\"description\":");
    jw_str(w, m->description);
  }
  w_features(w, m, m->n_features);
  model_graph_write(w, m); /* ,"graph":{...} when there is one */
  if (m->has_transform) {
    jw_lit(w, ",\"input_transform\":{\"scale\":");
    w_reals(w, m->tf_scale, k);
    jw_lit(w, ",\"shift\":");
    w_reals(w, m->tf_shift, k);
    jw_raw(w, "}", 1);
  }
  jw_lit(w, ",\"network\":{\"layers\":[");
  w_head(w, &m->net);
  jw_lit(w, "],\"type\":\"feedforward\"},\"outputs\":[");
  for (i = 0; i < m->n_outputs; i++) {
    if (i)
      jw_raw(w, ",", 1);
    jw_str(w, m->outputs[i]);
  }
  jw_raw(w, "]", 1);
  if (m->has_training) {
    const struct aced_training *t = &m->training;
    jw_lit(w, ",\"training\":{\"batch_size\":");
    jw_int(w, t->batch_size);
    jw_lit(w, ",\"epochs\":");
    jw_int(w, t->epochs);
    jw_lit(w, ",\"learning_rate\":");
    jw_real(w, t->learning_rate);
    jw_lit(w, ",\"loss\":");
    jw_str(w, model_loss_name(t->loss));
    jw_lit(w, ",\"seed\":");
    jw_int(w, t->seed);
    jw_lit(w, ",\"weight_decay\":");
    jw_real(w, t->weight_decay);
    jw_raw(w, "}", 1);
  }
  jw_raw(w, "}", 1);
}

static void w_features(struct jw *w, const struct aced_model *m, int n)
{
  jw_lit(w, ",\"features\":[");
  for (int i = 0; i < n; i++) {
    jw_lit(w, i ? ",{\"high\":" : "{\"high\":");
    jw_real(w, m->features[i].high);
    jw_lit(w, ",\"low\":");
    jw_real(w, m->features[i].low);
    jw_lit(w, ",\"name\":");
    jw_str(w, m->features[i].name);
    jw_raw(w, "}", 1);
  }
  jw_raw(w, "]", 1);
}

static void w_head(struct jw *w, const struct eng_net *net)
{
  for (int i = 0; i < net->n_layers; i++) {
    const struct eng_layer *L = &net->layers[i];
    jw_lit(w, i ? ",{\"activation\":" : "{\"activation\":");
    jw_str(w, eng_act_name(L->act));
    jw_lit(w, ",\"bias\":");
    w_reals(w, L->b, (size_t)L->n_out);
    jw_lit(w, ",\"weights\":");
    w_matrix(w, L->W, (size_t)L->n_out, (size_t)L->n_in);
    jw_raw(w, "}", 1);
  }
}

/* A recurrent model, keys sorted: data{covariance,mean,sequences}
 * description features (per step) network{cell,feedback,head,hidden_size,
 * input_size,layers[{bias_hh,bias_ih,weight_hh,weight_ih}],output_at,type}
 * outputs (per step) sequence_length.  Always the stacked "layers" form. */
static void write_recurrent(struct jw *w, const struct aced_model *m)
{
  const struct eng_rnn *r = m->rnn;
  const size_t k = (size_t)m->n_features, T = (size_t)m->seq_len, ni = (size_t)m->step_features;
  const size_t G = (size_t)eng_cell_gates(r->cell) * r->hidden_size;
  w_moments(w, m, k);
  if (m->n_samples > 0) {
    jw_lit(w, "\"sequences\":[");
    for (int s = 0; s < m->n_samples; s++) {
      if (s)
        jw_raw(w, ",", 1);
      w_matrix(w, m->samples + (size_t)s * k, T, ni);
    }
    jw_raw(w, "]", 1);
  }
  jw_raw(w, "}", 1);
  if (m->description != NULL) {
    jw_lit(w, ",\"description\":");
    jw_str(w, m->description);
  }
  w_features(w, m, m->step_features);
  jw_lit(w, ",\"network\":{\"cell\":");
  jw_str(w, eng_cell_name(r->cell));
  jw_lit(w, r->feedback ? ",\"feedback\":true,\"head\":[" : ",\"feedback\":false,\"head\":[");
  w_head(w, &m->net);
  jw_lit(w, "],\"hidden_size\":");
  jw_int(w, r->hidden_size);
  jw_lit(w, ",\"input_size\":");
  jw_int(w, r->input_size);
  jw_lit(w, ",\"layers\":[");
  for (int l = 0; l < r->n_layers; l++) {
    const struct eng_rnn_layer *L = &r->layers[l];
    jw_lit(w, l ? ",{\"bias_hh\":" : "{\"bias_hh\":");
    w_reals(w, L->b_hh, G);
    jw_lit(w, ",\"bias_ih\":");
    w_reals(w, L->b_ih, G);
    jw_lit(w, ",\"weight_hh\":");
    w_matrix(w, L->W_hh, G, (size_t)r->hidden_size);
    jw_lit(w, ",\"weight_ih\":");
    w_matrix(w, L->W_ih, G, (size_t)L->n_in);
    jw_raw(w, "}", 1);
  }
  jw_lit(w, r->every ? "],\"output_at\":\"every\"" : "],\"output_at\":\"last\"");
  jw_lit(w, ",\"type\":\"recurrent\"},\"outputs\":[");
  for (int i = 0; i < m->step_outputs; i++) {
    if (i)
      jw_raw(w, ",", 1);
    jw_str(w, m->outputs[i]);
  }
  jw_lit(w, "],\"sequence_length\":");
  jw_int(w, m->seq_len);
  jw_raw(w, "}", 1);
}

char *model_canonical_json(const struct aced_model *m)
{
  if (m == NULL)
    return NULL;
  struct jw w;
  jw_init(&w, 4096);
  write_canonical(&w, m);
  return jw_finish(&w, NULL);
}

static void hash_sink(void *cls, const char *text, size_t n)
{
  sha256_update(cls, n, (const uint8_t *)text);
}

int model_compute_digest(struct aced_model *m)
{
  static const char hex[] = "0123456789abcdef";
  struct sha256_ctx ctx;
  uint8_t d[SHA256_DIGEST_SIZE];
  struct jw w;
  int i;

  sha256_init(&ctx);
  jw_init_sink(&w, HASH_CHUNK, hash_sink, &ctx);
  write_canonical(&w, m);
  int rc = jw_flush(&w);
  jw_free(&w);
  if (rc != 0)
    return -1;
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, d);
  memcpy(m->digest, "sha256:", 7);
  for (i = 0; i < SHA256_DIGEST_SIZE; i++) {
    m->digest[7 + 2 * i] = hex[d[i] >> 4];
    m->digest[8 + 2 * i] = hex[d[i] & 15];
  }
  m->digest[7 + 2 * SHA256_DIGEST_SIZE] = '\0';
  return 0;
}

