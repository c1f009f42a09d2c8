/*
 * onnx.c -- register a model from its ONNX file:
 *   "network": {"type": "onnx", "model": "<base64 of the .onnx bytes>"}.
 *
 * DESIGN
 *
 * The importer does not build a network of its own.  It reads the ONNX
 * graph and writes the JSON `network` object a JSON registration carries
 * (feedforward: "layers" with weights [out][in] and aced's activation
 * names), puts it in a copy of the body in place of the ONNX one, and
 * model_parse() goes on with that body exactly as if the client had sent
 * it.  So the canonical form, the digest, every check and every estimator
 * are those of the JSON registration: the same weights sent as ONNX or as
 * JSON are one model (one digest), by construction.  What the ONNX file
 * adds -- where the model came from, the opset, the producer -- goes to
 * m->source, which the store keeps beside the canonical body (in the
 * model row), not in it, so it survives a restart and leaves the digest
 * alone.
 *
 * An ONNX file is hostile input, read with protobuf-c's bindings generated
 * from Debian's onnx.proto (never a hand-written wire parser):
 * - the base64 text is checked byte by byte and its decoded size is known
 *   before anything is allocated; it is at most 3/4 of the body, which the
 *   HTTP layer already held to max_body_bytes;
 * - protobuf-c recurses once per nested message and has no depth limit of
 *   its own, so the wire is first walked (iteratively, with the message
 *   descriptors of the same generated schema) to check that nothing nests
 *   deeper than ACED_ONNX_DEPTH_MAX; a walk, not a parse: no value is read;
 * - protobuf-c allocates through an allocator that refuses to go past a
 *   budget proportional to the file (ACED_ONNX_DECODE_*), so a file of
 *   many empty messages cannot make it allocate without bound;
 * - node, initializer, dimension and element counts are checked against
 *   limits.h before any tensor is widened to doubles;
 * - a tensor whose data lives in a file beside the model (external_data,
 *   data_location EXTERNAL) is refused: aced opens no path a client names.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/model.h"
#include "model/internal.h"
#include "model/onnx.h"

#define S(x) ((x) != NULL ? (x) : "")

/* ---- base64 (RFC 4648, standard alphabet, padded or not) ---------- */

static int b64_value(unsigned char ch)
{
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+')
    return 62;
  if (ch == '/')
    return 63;
  return -1;
}

/* Decode s (n bytes) into a new buffer; *len its size.  Errors are 400
 * naming network.model and the offset of the first bad byte. */
static enum aced_err b64_decode(const char *s, size_t n, unsigned char **out, size_t *len,
                                struct aced_error *err)
{
  size_t i, data = n, o = 0;
  unsigned acc = 0;
  int bits = 0;

  *out = NULL;
  while (data > 0 && s[data - 1] == '=')
    data--;
  if (n - data > 2 || (n % 4 != 0 && data != n))
    return aced_error_set(err, ACED_E_BAD_REQUEST, "network.model",
                          "not base64: bad padding ('=' at offset %zu)", data);
  if (data % 4 == 1)
    return aced_error_set(err, ACED_E_BAD_REQUEST, "network.model",
                          "not base64: %zu characters cannot encode whole bytes", data);
  if (data == 0)
    return aced_error_set(err, ACED_E_BAD_REQUEST, "network.model",
                          "empty: expected the base64 of an .onnx file");
  /* The decoded size, known before allocating: 3 bytes per 4 characters. */
  *len = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
  if (*len > ACED_ONNX_BYTES_MAX)
    return aced_error_set(err, ACED_E_LIMIT, "network.model",
                          "the ONNX file is %zu bytes, at most %ld allowed", *len,
                          (long)ACED_ONNX_BYTES_MAX);
  if ((*out = malloc(*len)) == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
  for (i = 0; i < data; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) {
      free(*out);
      *out = NULL;
      return aced_error_set(err, ACED_E_BAD_REQUEST, "network.model",
                            "not base64: byte 0x%02x at offset %zu", (unsigned char)s[i], i);
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      (*out)[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return ACED_OK;
}

/* ---- nesting depth, before protobuf-c recurses -------------------- */

static int varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
  int shift = 0;
  *v = 0;
  while (*p < end && shift < 64) {
    unsigned char b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return 0;
    shift += 7;
  }
  return -1;
}

/* Walk the wire of a ModelProto, following into length-delimited fields
 * that the schema says are messages, with an explicit stack of at most
 * ACED_ONNX_DEPTH_MAX frames.  0 when every message nests shallowly
 * enough; -1 when deeper (or the wire is so broken that the walk cannot
 * go on, which protobuf-c would refuse anyway: reported as undecodable). */
static int check_depth(const unsigned char *buf, size_t len, int *too_deep)
{
  struct {
    const ProtobufCMessageDescriptor *d;
    const unsigned char *end;
  } st[ACED_ONNX_DEPTH_MAX];
  const unsigned char *p = buf;
  int top = 0;

  *too_deep = 0;
  st[0].d = &onnx__model_proto__descriptor;
  st[0].end = buf + len;
  for (;;) {
    uint64_t key, v;
    while (top > 0 && p == st[top].end)
      top--;
    if (p == st[top].end)
      return 0;
    if (varint(&p, st[top].end, &key) != 0)
      return -1;
    switch (key & 7) {
    case 0:
      if (varint(&p, st[top].end, &v) != 0)
        return -1;
      break;
    case 1:
      if (st[top].end - p < 8)
        return -1;
      p += 8;
      break;
    case 5:
      if (st[top].end - p < 4)
        return -1;
      p += 4;
      break;
    case 2: {
      const ProtobufCFieldDescriptor *f;
      if (varint(&p, st[top].end, &v) != 0 || v > (uint64_t)(st[top].end - p))
        return -1;
      f = key >> 3 <= 0xffffffffu
              ? protobuf_c_message_descriptor_get_field(st[top].d, (unsigned)(key >> 3))
              : NULL;
      if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (top + 1 >= ACED_ONNX_DEPTH_MAX) {
          *too_deep = 1;
          return -1;
        }
        top++;
        st[top].d = f->descriptor;
        st[top].end = p + v;
      } else {
        p += v;
      }
      break;
    }
    default:
      return -1;
    }
  }
}

/* ---- a bounded allocator for protobuf-c --------------------------- */

struct budget {
  size_t used, max;
  int refused;       /* an allocation went past max */
};

static void *budget_alloc(void *data, size_t size)
{
  struct budget *b = data;
  size_t *p;
  if (size > b->max - b->used || size + sizeof(size_t) < size) {
    b->refused = 1;
    return NULL;
  }
  if ((p = malloc(size + sizeof(size_t))) == NULL)
    return NULL;
  b->used += size;
  p[0] = size;
  return p + 1;
}

static void budget_free(void *data, void *ptr)
{
  struct budget *b = data;
  size_t *p = ptr;
  if (p == NULL)
    return;
  b->used -= p[-1];
  free(p - 1);
}

/* ---- constants, attributes, errors -------------------------------- */

const struct onnx_const *onnx_const_find(const struct onnx_ctx *c, const char *name)
{
  int i;
  if (name == NULL || name[0] == '\0')
    return NULL;
  for (i = 0; i < c->n_consts; i++)
    if (strcmp(c->consts[i].name, name) == 0)
      return &c->consts[i];
  return NULL;
}

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name)
{
  size_t i;
  for (i = 0; i < n->n_attribute; i++)
    if (strcmp(S(n->attribute[i]->name), name) == 0)
      return n->attribute[i];
  return NULL;
}

/* Node names and operators echo client bytes: printable ASCII only, cut. */
static void clean(char *dst, size_t n, const char *src)
{
  size_t i;
  for (i = 0; src != NULL && src[i] != '\0' && i + 1 < n; i++)
    dst[i] = src[i] >= 0x20 && src[i] < 0x7f && src[i] != '"' && src[i] != '\\' ? src[i] : '?';
  dst[n > 0 ? i : 0] = '\0';
}

static enum aced_err node_fail_v(struct onnx_ctx *c, int ni, enum aced_err code,
                                 const char *fmt, va_list ap)
{
  const Onnx__NodeProto *n = c->g->node[ni];
  char name[64], op[48], msg[ACED_MESSAGE_MAX - 128];
  clean(name, sizeof name, n->name);
  clean(op, sizeof op, n->op_type);
  vsnprintf(msg, sizeof msg, fmt, ap);
  return aced_error_set(c->err, code, "network.model", "node %d ('%s', %s): %s", ni, name, op,
                        msg);
}

enum aced_err onnx_node_fail(struct onnx_ctx *c, int ni, enum aced_err code, const char *fmt, ...)
{
  va_list ap;
  enum aced_err rc;
  va_start(ap, fmt);
  rc = node_fail_v(c, ni, code, fmt, ap);
  va_end(ap);
  return rc;
}

enum aced_err onnx_unsupported(struct onnx_ctx *c, int ni, const char *why)
{
  return onnx_node_fail(c, ni, ACED_E_UNSUPPORTED_OPERATOR,
                        "%s; supported: Gemm, MatMul, Add, Relu, LeakyRelu, Elu, Sigmoid, Tanh, "
                        "Softplus, Gelu (or its Erf expansion), Softmax, LogSoftmax, Identity, "
                        "Flatten, Dropout, Constant",
                        why);
}

/* Element count of dims, or -1 past ACED_MAX_PARAMS (or negative). */
static long element_count(const int64_t *dims, size_t n)
{
  long count = 1;
  size_t i;
  for (i = 0; i < n; i++) {
    if (dims[i] < 0 || dims[i] > ACED_MAX_PARAMS)
      return -1;
    if (dims[i] != 0 && count > ACED_MAX_PARAMS / dims[i])
      return -1;
    count *= (long)dims[i];
  }
  return count;
}

static int little_endian(void)
{
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

enum aced_err onnx_const_decode(struct onnx_ctx *c, const Onnx__TensorProto *t,
                                const char *name, const char *what, struct onnx_const *out)
{
  char nm[64];
  long n, k;
  size_t have, width, listed;
  int type = t->has_data_type ? t->data_type : 0;

  clean(nm, sizeof nm, name);
  memset(out, 0, sizeof *out);
  out->name = S(name);
  if (t->n_external_data > 0 ||
      (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
    return aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "%s '%s' keeps its data in an external file (external_data): "
                          "refused, aced reads no file a model names; export with the "
                          "weights inside the .onnx file",
                          what, nm);
  if (t->segment != NULL)
    return aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "%s '%s' is a segment of a tensor, which is not supported", what, nm);
  if (t->n_dims > ACED_ONNX_DIMS_MAX)
    return aced_error_set(c->err, ACED_E_LIMIT, "network.model",
                          "%s '%s' has %zu dimensions, at most %d allowed", what, nm, t->n_dims,
                          ACED_ONNX_DIMS_MAX);
  if ((n = element_count(t->dims, t->n_dims)) < 0)
    return aced_error_set(c->err, ACED_E_LIMIT, "network.model",
                          "%s '%s' has more than %ld elements (or a negative dimension)", what,
                          nm, ACED_MAX_PARAMS);
  out->n_dims = (int)t->n_dims;
  if (t->n_dims > 0) /* a scalar has no dims array at all */
    memcpy(out->dims, t->dims, t->n_dims * sizeof *t->dims);
  out->n = n;
  switch (type) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: listed = t->n_float_data; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: listed = t->n_double_data; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: listed = t->n_int64_data; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: listed = t->n_int32_data; break;
  default:
    return aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "%s '%s' has element type %d; float32, float64 (and int32/int64 for "
                          "shapes) are supported",
                          what, nm, type);
  }
  width = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                  type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32
              ? 4
              : 8;
  have = t->has_raw_data ? t->raw_data.len / width : listed;
  if (have != (size_t)n || (t->has_raw_data && t->raw_data.len != (size_t)n * width))
    return aced_error_set(c->err, ACED_E_SHAPE, "network.model",
                          "%s '%s' has dimensions for %ld elements but data for %zu", what, nm,
                          n, have);
  if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
    if ((out->d = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->d)) == NULL)
      return aced_error_set(c->err, ACED_E_INTERNAL, "", "out of memory");
    for (k = 0; k < n; k++) {
      if (!t->has_raw_data)
        out->d[k] = width == 4 ? (double)t->float_data[k] : t->double_data[k];
      else if (width == 4) {
        float f;
        unsigned char b[4];
        memcpy(b, t->raw_data.data + 4 * k, 4);
        if (!little_endian()) {
          unsigned char x = b[0]; b[0] = b[3]; b[3] = x; x = b[1]; b[1] = b[2]; b[2] = x;
        }
        memcpy(&f, b, 4);
        out->d[k] = (double)f;
      } else {
        unsigned char b[8];
        int j;
        memcpy(b, t->raw_data.data + 8 * k, 8);
        if (!little_endian())
          for (j = 0; j < 4; j++) {
            unsigned char x = b[j]; b[j] = b[7 - j]; b[7 - j] = x;
          }
        memcpy(&out->d[k], b, 8);
      }
    }
  } else {
    if ((out->i = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->i)) == NULL)
      return aced_error_set(c->err, ACED_E_INTERNAL, "", "out of memory");
    for (k = 0; k < n; k++) {
      if (!t->has_raw_data)
        out->i[k] = width == 8 ? t->int64_data[k] : t->int32_data[k];
      else {
        unsigned char b[8] = {0};
        int j;
        int64_t v = 0;
        memcpy(b, t->raw_data.data + width * k, width);
        for (j = (int)width - 1; j >= 0; j--)
          v = (int64_t)((uint64_t)v << 8 | b[j]);
        if (width == 4)
          v = (int32_t)(uint32_t)v;
        out->i[k] = v;
      }
    }
  }
  return ACED_OK;
}

void onnx_release_input(struct onnx_ctx *c)
{
  int i;
  for (i = 0; i < c->n_consts; i++) {
    free(c->consts[i].d);
    free(c->consts[i].i);
  }
  free(c->consts);
  c->consts = NULL;
  c->n_consts = 0;
  if (c->model != NULL)
    onnx__model_proto__free_unpacked((Onnx__ModelProto *)c->model, c->alloc);
  c->model = NULL;
  c->g = NULL;
}

/* ---- the entry point ---------------------------------------------- */

int model_onnx_body(const json_t *body)
{
  const json_t *net = json_object_get(body, "network");
  return json_is_object(net) && json_is_string(json_object_get(net, "type")) &&
         strcmp(json_string_value(json_object_get(net, "type")), "onnx") == 0;
}

/* "type" and "model", both strings, nothing else. */
static enum aced_err check_network(const json_t *net, struct aced_error *err)
{
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)net, key, v) {
    if (strcmp(key, "type") != 0 && strcmp(key, "model") != 0)
      return aced_error_set(err, ACED_E_UNKNOWN_FIELD, "network", "unknown field '%.64s' "
                            "(an ONNX network has \"type\" and \"model\")", key);
  }
  v = json_object_get(net, "model");
  if (v == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "network.model",
                          "required: the base64 of the .onnx file");
  if (!json_is_string(v))
    return aced_error_set(err, ACED_E_BAD_TYPE, "network.model",
                          "expected string (base64), found another JSON type");
  return ACED_OK;
}

/* The default domain's opset; -1 when the model imports none. */
static int default_opset(const Onnx__ModelProto *mp)
{
  size_t i;
  for (i = 0; i < mp->n_opset_import; i++) {
    const char *d = S(mp->opset_import[i]->domain);
    if (d[0] == '\0' || strcmp(d, "ai.onnx") == 0)
      return mp->opset_import[i]->has_version && mp->opset_import[i]->version >= 0 &&
                     mp->opset_import[i]->version < 10000
                 ? (int)mp->opset_import[i]->version
                 : -1;
  }
  return -1;
}

/* {"opset":13,"producer":"pytorch 1.13.0"}: the model row's source. */
static void write_source(const Onnx__ModelProto *mp, int opset, char *dst, size_t n)
{
  char name[64], version[64], producer[130];
  clean(name, sizeof name, mp->producer_name);
  clean(version, sizeof version, mp->producer_version);
  snprintf(producer, sizeof producer, "%s%s%s", name, name[0] && version[0] ? " " : "",
           version);
  snprintf(dst, n, "{\"opset\":%d,\"producer\":\"%s\"}", opset, producer);
}

static enum aced_err import(struct onnx_ctx *c, const json_t *body, json_t **expanded,
                            char *source, size_t n_source)
{
  const Onnx__ModelProto *mp = c->model;
  json_t *network = NULL, *outputs;
  enum aced_err rc;
  int n_out = 0, i;

  if (mp->graph == NULL)
    return aced_error_set(c->err, ACED_E_INVALID, "network.model", "the ONNX model has no graph");
  c->g = mp->graph;
  if ((c->opset = default_opset(mp)) < 0)
    return aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "the model imports no opset of the default ONNX domain (not an ONNX "
                          "model, or a damaged one)");
  if (c->opset < ACED_ONNX_OPSET_MIN || c->opset > ACED_ONNX_OPSET_MAX)
    return aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "opset %d of the default ONNX domain; %d to %d are supported",
                          c->opset, ACED_ONNX_OPSET_MIN, ACED_ONNX_OPSET_MAX);
  if (c->g->n_node > ACED_ONNX_NODES_MAX || c->g->n_initializer > ACED_ONNX_NODES_MAX)
    return aced_error_set(c->err, ACED_E_LIMIT, "network.model",
                          "%zu nodes and %zu initializers, at most %d of each allowed",
                          c->g->n_node, c->g->n_initializer, ACED_ONNX_NODES_MAX);
  if (c->g->n_sparse_initializer > 0)
    return aced_error_set(c->err, ACED_E_INVALID, "network.model",
                          "sparse initializers are not supported");
  if ((c->consts = calloc(c->g->n_node + c->g->n_initializer + 1, sizeof *c->consts)) == NULL ||
      (c->done = calloc(c->g->n_node + 1, 1)) == NULL)
    return aced_error_set(c->err, ACED_E_INTERNAL, "", "out of memory");
  for (i = 0; i < (int)c->g->n_initializer; i++) {
    const Onnx__TensorProto *t = c->g->initializer[i];
    if ((rc = onnx_const_decode(c, t, t->name, "initializer", &c->consts[c->n_consts])) != ACED_OK)
      return rc;
    c->n_consts++;
  }
  write_source(mp, c->opset, source, n_source);
  if ((rc = onnx_graph_convert(c, &network, &n_out)) != ACED_OK)
    return rc;

  if ((*expanded = json_copy((json_t *)body)) == NULL) {
    json_decref(network);
    return aced_error_set(c->err, ACED_E_INTERNAL, "", "out of memory");
  }
  json_object_set_new(*expanded, "network", network);
  if (json_object_get(body, "outputs") == NULL) {
    /* ONNX names a graph output as a whole, not its elements. */
    outputs = json_array();
    for (i = 0; i < n_out && i < ACED_MAX_OUTPUTS + 1; i++)
      json_array_append_new(outputs, json_sprintf("y%d", i));
    json_object_set_new(*expanded, "outputs", outputs);
  }
  if (c->steps > 0 && json_object_get(body, "sequence_length") == NULL)
    json_object_set_new(*expanded, "sequence_length", json_integer(c->steps));
  return ACED_OK;
}

enum aced_err model_onnx_expand(const json_t *body, json_t **expanded, char *source,
                                size_t n_source, struct aced_error *err)
{
  const json_t *net = json_object_get(body, "network");
  const char *text;
  unsigned char *bytes = NULL;
  size_t len = 0;
  struct budget budget;
  ProtobufCAllocator alloc = {budget_alloc, budget_free, &budget};
  struct onnx_ctx c;
  enum aced_err rc;
  int too_deep;

  *expanded = NULL;
  memset(&c, 0, sizeof c);
  c.err = err;
  if ((rc = check_network(net, err)) != ACED_OK)
    return rc;
  text = json_string_value(json_object_get(net, "model"));
  if ((rc = b64_decode(text, json_string_length(json_object_get(net, "model")), &bytes, &len,
                       err)) != ACED_OK)
    return rc;
  if (check_depth(bytes, len, &too_deep) != 0) {
    free(bytes);
    if (too_deep)
      return aced_error_set(err, ACED_E_LIMIT, "network.model",
                            "messages nest more than %d deep", ACED_ONNX_DEPTH_MAX);
    return aced_error_set(err, ACED_E_INVALID, "network.model",
                          "not an ONNX model: the protobuf encoding is broken");
  }
  budget.used = 0;
  budget.refused = 0;
  budget.max = ACED_ONNX_DECODE_FIXED + ACED_ONNX_DECODE_FACTOR * len;
  c.model = onnx__model_proto__unpack(&alloc, len, bytes);
  free(bytes);
  if (c.model == NULL)
    return aced_error_set(err, ACED_E_INVALID, "network.model",
                          budget.refused
                              ? "the ONNX model needs more memory to decode than its size allows"
                              : "not an ONNX model: protobuf-c cannot decode it as a ModelProto");
  c.alloc = &alloc;
  rc = import(&c, body, expanded, source, n_source);
  onnx_release_input(&c);
  free(c.done);
  if (rc != ACED_OK) {
    json_decref(*expanded);
    *expanded = NULL;
  }
  return rc;
}
