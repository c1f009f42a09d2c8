/*
 * handler_regressor_get.c -- GET /v1/models/{name}/regressors/{output}/{feature}
 * ?estimator=auto&num=100&max_order=20&epsilon=1e-4[&timestep=t&output_timestep=s]
 *
 * A cached regressor of a loaded model is answered right here, on the HTTP
 * thread; anything else (first query after a restart included) goes to a
 * worker, which loads the model and then answers from the cache or fits.
 * Identical requests in flight share one job.
 *
 * Caching: a regressor is a function of the model version (its digest),
 * the output, the feature and the parameters, so its 200 carries a weak
 * ETag made of those (and of aced's version) with Cache-Control:
 * private, no-cache: a browser keeps it and revalidates, and an
 * If-None-Match naming it is answered 304 before any work (weak: meta's
 * elapsed_ms and cache differ from reply to reply).  The tag is a few
 * dozen bytes hashed, which a request without If-None-Match pays too.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/limits.h"

#include "api/api.h"

/* FNV-1a, 64 bits, over n bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

/* W/"<16 hex digits of the digest>-<hash of version, names, parameters>" */
static void regressor_etag(char *etag, size_t n, struct request *rq, const char *const *allowed,
                           const char *digest, const char *output, const char *feature,
                           const struct query_params *q)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  /* every query parameter the route takes, as sent (absent and empty
   * differ): a parameter added to the route is in the tag without anyone
   * having to remember it here */
  for (int i = 0; allowed[i] != NULL; i++) {
    const char *v = request_query(rq, allowed[i]);
    h = fnv1a(h, v ? "=" : "-", 1);
    if (v != NULL)
      h = fnv1a(h, v, strlen(v) + 1);
  }
  h = fnv1a(h, PACKAGE_VERSION, sizeof PACKAGE_VERSION);
  h = fnv1a(h, output, strlen(output) + 1);
  h = fnv1a(h, feature, strlen(feature) + 1);
  int iv[3] = {(int)q->estimator, q->num, q->max_order};
  h = fnv1a(h, iv, sizeof iv);
  h = fnv1a(h, &q->epsilon, sizeof q->epsilon);
  const char *hex = strchr(digest, ':');
  hex = hex ? hex + 1 : digest;
  snprintf(etag, n, "W/\"%.16s-%016llx\"", hex, (unsigned long long)h);
}

/* A query parameter that is a whole number (or absent: STEP_NONE). */
static int query_step(const char *s, int *out)
{
  if (s == NULL)
    return 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0')
    return -1;
  *out = v < -1 ? -1 : v > ACED_MAX_SEQUENCE ? ACED_MAX_SEQUENCE : (int)v;
  return 0;
}

MHD_RESULT handler_regressor_get(struct request *rq)
{
  static const char *const allowed[] = {"estimator", "num", "max_order", "epsilon", "effect",
                                        "timestep", "output_timestep", NULL};
  const char *bad;
  if (request_query_check(rq, allowed, &bad) != 0)
    return reply_error(rq, ACED_E_BAD_PARAMETER, bad, "unknown query parameter '%s'", bad);
  struct query_params q;
  struct aced_error err;
  if (query_params_from_strings(rq->srv->svc, request_query(rq, "estimator"), request_query(rq, "num"),
                                request_query(rq, "max_order"), request_query(rq, "epsilon"), &q,
                                &err) != ACED_OK ||
      query_params_effect(request_query(rq, "effect"), &q, &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  /* recurrent models: the intervention's and the output's steps */
  int ts = STEP_NONE, os = STEP_NONE;
  if (query_step(request_query(rq, "timestep"), &ts) != 0)
    return reply_error(rq, ACED_E_BAD_PARAMETER, "timestep", "timestep must be an integer");
  if (query_step(request_query(rq, "output_timestep"), &os) != 0)
    return reply_error(rq, ACED_E_BAD_PARAMETER, "output_timestep",
                       "output_timestep must be an integer");
  MHD_RESULT ret;
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  const char *output = rq->arg[1], *feature = rq->arg[2];
  char etag[64];
  regressor_etag(etag, sizeof etag, rq, allowed, row.digest, output, feature, &q);
  request_set_caching(rq, "private, no-cache", etag);
  if (request_etag_matches(rq, etag)) {
    store_model_row_clear(&row);
    return reply_not_modified(rq);
  }
  size_t len = 0;
  char *text = svc_cached_regressor(rq->srv->svc, row.digest, output, feature, ts, os, &q,
                                    rq->start_us, &len, &err);
  if (text != NULL || err.code != ACED_OK) {
    store_model_row_clear(&row);
    return text ? reply_json_text(rq, 200, text, len) : reply_aced_error(rq, &err);
  }
  /* The job's params are the parsed request, whole: the single-flight key
   * is built from them, so requests share a job only when every name and
   * parameter is the same. */
  json_t *params = query_params_json(&q);
  if (params == NULL || json_object_set_new(params, "output", json_string_nocheck(output)) != 0 ||
      json_object_set_new(params, "feature", json_string_nocheck(feature)) != 0 ||
      (ts != STEP_NONE && json_object_set_new(params, "timestep", json_integer(ts)) != 0) ||
      (os != STEP_NONE && json_object_set_new(params, "output_timestep", json_integer(os)) != 0)) {
    json_decref(params);
    store_model_row_clear(&row);
    return reply_error(rq, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_regressor, &row, params);
  req.single_flight = 1;
  ret = api_run_job(rq, &req, 0);
  json_decref(params);
  return ret;
}
