/*
 * compute.h -- what each job kind does, between the job system and the
 * numerical engine.
 *
 * A job runs in three steps on worker threads:
 *   work_plan    load the model (prepared models are kept in memory, keyed
 *                by digest), resolve names, look in the cache, and split
 *                the rest into tasks (one feature's grid each);
 *   work_task    compute one task (may run on several workers at once);
 *   work_finish  assemble the reply.
 * This is also where request parameters are parsed, so the same rules
 * apply to the HTTP fast path (cache hits answered on the HTTP thread)
 * and to the workers.
 */
#ifndef ACED_COMPUTE_H
#define ACED_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aced/errors.h"
#include "aced/jobs.h"

struct server;
struct work;

struct work *work_plan(struct server *srv, struct job *job,
                       const struct job_request *req, int *n_tasks,
                       long *units_total, struct aced_error *err);
/* Returns progress units done by this task, or -1 with *err. */
long work_task(struct work *w, int i, struct aced_error *err);
json_t *work_finish(struct work *w, struct aced_error *err);
void work_free(struct work *w);

/* ---- estimators and query parameters ---- */
enum estimator { EST_AUTO, EST_TAYLOR, EST_FD, EST_MC };
const char *estimator_name(enum estimator e);

struct query_params {
  enum estimator estimator;
  int num;          /* regressor grid points */
  int max_order;
  double epsilon;   /* finite_difference step */
};
/* Parse estimator/num/max_order/epsilon from a JSON object (missing keys
 * keep defaults).  prefix is used in field paths. */
enum aced_err query_params_parse(struct server *srv, const json_t *obj,
                                 struct query_params *q, struct aced_error *err);
/* From URL query strings (GET regressor). */
enum aced_err query_params_from_strings(struct server *srv, const char *estimator,
                                        const char *num, const char *max_order,
                                        const char *epsilon,
                                        struct query_params *q,
                                        struct aced_error *err);

/* Checks of a POST .../regressors body that need no model (fields,
 * types, parameters), so that a bad body is a 400 rather than a failed job. */
enum aced_err compute_check_regressors_body(struct server *srv, const json_t *body,
                                            struct aced_error *err);

/* The HTTP fast path: answer GET regressor / POST attributions from the
 * cache without a worker when the model is already loaded and every
 * regressor needed is cached.  Returns a reply body, or NULL when the
 * request must go to a worker (err->code == ACED_OK), or NULL with an
 * error to answer at once (unknown output, ...). */
json_t *fast_regressor(struct server *srv, const char *digest,
                       const char *output, const char *feature,
                       const struct query_params *q, struct aced_error *err);
/* fast_attributions returns the reply as JSON text (malloc'ed, *len
 * bytes) with meta.elapsed_ms counted from start_us (http_now_us()). */
char *fast_attributions(struct server *srv, const char *digest, const json_t *body,
                        int64_t start_us, size_t *len, struct aced_error *err);
/* Metadata of a loaded model under `name` and `version`, or NULL if the
 * content is not loaded. */
json_t *fast_metadata(struct server *srv, const char *digest, const char *name, int version);

/* Decode the parts of a cached regressor that attributions use (order,
 * coefficients, domain); 0 or -1 when any of it is missing or malformed.
 * r->cov and log_evidence are not filled: use eng_regressor_mean and
 * eng_regressor_baseline on the result, not eng_regressor_std. */
struct eng_regressor;
int compute_regressor_decode(const json_t *v, struct eng_regressor *r);

/* Drop prepared models of these digests (after DELETE). */
void loaded_evict(const char *digest);
long loaded_count(void);
void loaded_clear(void);

#endif
