/*
 * params.c -- estimators and the query parameters every estimate takes
 * (estimator, num, max_order, epsilon), parsed by the same rules from a
 * JSON body and from a URL's query string.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/clock.h"
#include "aced/jsonr.h"
#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "aced/store.h"
#include "svc/internal.h"

/* parameters                                                          */

const char *estimator_name(enum estimator e)
{
  static const char *const n[] = {"auto", "taylor", "finite_difference", "montecarlo",
                                  "unscented"};
  return n[e];
}

static int estimator_parse(const char *s, enum estimator *e)
{
  for (int i = 0; i < EST__COUNT; i++)
    if (strcmp(s, estimator_name((enum estimator)i)) == 0) {
      *e = (enum estimator)i;
      return 0;
    }
  return -1;
}

void params_defaults(const struct svc *svc, struct query_params *q)
{
  q->estimator = EST_AUTO;
  q->num = ACED_GRID_DEFAULT;
  q->max_order = (int)svc->cfg->max_order;
  q->epsilon = 1e-4;
  q->effect = EFFECT_DEFAULT;
}

const char *effect_name(enum effect e)
{
  static const char *const n[] = {"default", "direct", "total", "indirect"};
  return n[e];
}

static int effect_parse(const char *s, enum effect *e)
{
  for (int i = EFFECT_DIRECT; i <= EFFECT_INDIRECT; i++)
    if (strcmp(s, effect_name((enum effect)i)) == 0) {
      *e = (enum effect)i;
      return 0;
    }
  return -1;
}

enum aced_err query_params_effect(const char *effect, struct query_params *q,
                                  struct aced_error *err)
{
  if (effect && effect_parse(effect, &q->effect) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "effect",
                          "effect must be total, direct or indirect");
  return ACED_OK;
}

static enum aced_err check_params(const struct query_params *q, struct aced_error *err)
{
  if (q->num < ACED_GRID_MIN || q->num > ACED_GRID_MAX)
    return aced_error_set(err, ACED_E_INVALID, "num", "num must be in [%d, %d]",
                          ACED_GRID_MIN, ACED_GRID_MAX);
  if (q->max_order < 0 || q->max_order >= ACED_ORDER_MAX_HARD)
    return aced_error_set(err, ACED_E_INVALID, "max_order", "max_order must be in [0, %d]",
                          ACED_ORDER_MAX_HARD - 1);
  if (!(q->epsilon > 0) || !(q->epsilon <= 1) || !isfinite(q->epsilon))
    return aced_error_set(err, ACED_E_INVALID, "epsilon", "epsilon must be in (0, 1]");
  return ACED_OK;
}

enum aced_err query_params_parse(const struct svc *svc, const json_t *obj,
                                 struct query_params *q, struct aced_error *err)
{
  params_defaults(svc, q);
  json_t *v;
  if ((v = jsonr_get(obj, "estimator")) != NULL) {
    if (!json_is_string(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "estimator", "estimator must be a string");
    if (estimator_parse(json_string_value(v), &q->estimator) != 0)
      return aced_error_set(err, ACED_E_INVALID, "estimator",
                            "estimator must be auto, taylor, finite_difference, montecarlo or "
                          "unscented");
  }
  if ((v = jsonr_get(obj, "num")) != NULL) {
    if (!json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "num", "num must be an integer");
    json_int_t n = json_integer_value(v);
    q->num = n > ACED_GRID_MAX ? ACED_GRID_MAX + 1 : n < 0 ? -1 : (int)n;
  }
  if ((v = jsonr_get(obj, "max_order")) != NULL) {
    if (!json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "max_order", "max_order must be an integer");
    json_int_t n = json_integer_value(v);
    q->max_order = n > 1000 ? 1000 : n < 0 ? -1 : (int)n;
  }
  if ((v = jsonr_get(obj, "epsilon")) != NULL) {
    if (!json_is_number(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, "epsilon", "epsilon must be a number");
    q->epsilon = json_number_value(v);
  }
  if ((v = jsonr_get(obj, "effect")) != NULL &&
      (!json_is_string(v) || effect_parse(json_string_value(v), &q->effect) != 0))
    return aced_error_set(err, json_is_string(v) ? ACED_E_INVALID : ACED_E_BAD_TYPE, "effect",
                          "effect must be total, direct or indirect");
  return check_params(q, err);
}

static int parse_int(const char *s, int *out)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < -1000000 || v > 1000000)
    return -1;
  *out = (int)v;
  return 0;
}

enum aced_err query_params_from_strings(const struct svc *svc, const char *estimator,
                                        const char *num, const char *max_order,
                                        const char *epsilon, struct query_params *q,
                                        struct aced_error *err)
{
  params_defaults(svc, q);
  if (estimator && estimator_parse(estimator, &q->estimator) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "estimator",
                          "estimator must be auto, taylor, finite_difference, montecarlo or "
                          "unscented");
  if (num && parse_int(num, &q->num) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "num", "num must be an integer");
  if (max_order && parse_int(max_order, &q->max_order) != 0)
    return aced_error_set(err, ACED_E_BAD_PARAMETER, "max_order",
                          "max_order must be an integer");
  if (epsilon) {
    char *end;
    q->epsilon = strtod(epsilon, &end);
    if (end == epsilon || *end != '\0')
      return aced_error_set(err, ACED_E_BAD_PARAMETER, "epsilon", "epsilon must be a number");
  }
  enum aced_err rc = check_params(q, err);
  if (rc != ACED_OK)
    err->code = rc = ACED_E_BAD_PARAMETER;
  return rc;
}

void params_key(const struct query_params *q, char *buf, size_t n)
{
  if (q->estimator == EST_FD || q->estimator == EST_AUTO)
    snprintf(buf, n, "num=%d;max_order=%d;epsilon=%.17g", q->num, q->max_order,
             q->estimator == EST_FD ? q->epsilon : 0.0);
  else
    snprintf(buf, n, "num=%d;max_order=%d", q->num, q->max_order);
}

json_t *query_params_json(const struct query_params *q)
{
  json_t *o = json_pack("{s:s,s:i,s:i,s:f}", "estimator", estimator_name(q->estimator), "num",
                        q->num, "max_order", q->max_order, "epsilon", q->epsilon);
  if (o != NULL && q->effect != EFFECT_DEFAULT)
    json_object_set_new(o, "effect", json_string(effect_name(q->effect)));
  return o;
}
