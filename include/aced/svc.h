/*
 * svc.h -- the services: what aced does, between the HTTP handlers and
 * the job pool, model, store and engine (src/svc/).
 *
 * Each job kind is one file in src/svc/ defining its struct job_ops and
 * listed once in the kind table (SVC_KINDS below).  The services also
 * answer cached queries on the calling (HTTP) thread without a job: the
 * svc_cached_* functions.  Nothing here knows HTTP: errors come back as
 * struct aced_error, replies as JSON.
 *
 * A job's plan step loads the model (prepared models are kept in memory,
 * keyed by digest, see prepared.c), resolves names, looks in the regressor
 * cache (regcache.c) and splits the rest into tasks (one feature's grid
 * each); request parameters are parsed by the same code (params.c) on the
 * HTTP thread and on the workers.
 */
#ifndef ACED_SVC_H
#define ACED_SVC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aced/config.h"
#include "aced/errors.h"
#include "aced/jobs.h"

struct store;

/* What the services need from the daemon, built once in main.c and
 * handed to the pool as its context. */
struct svc {
  struct store *store;
  const struct aced_config *cfg;
};

/* ---- the kind table ----
 * One row per job kind: X(name) declares `svc_kind_<name>`, the job_ops
 * defined in src/svc/<name>.c.  Adding a kind is that file, one row here
 * and its name in src/svc/svc.mk. */
#define SVC_KINDS(X) \
  X(register)        /* POST /v1/models: validate and store */            \
  X(metadata)        /* GET /v1/models/{name}: load and describe */       \
  X(interventions)   /* POST .../interventions */                         \
  X(regressor)       /* GET .../regressors/{output}/{feature} */          \
  X(attributions)    /* POST .../attributions */                          \
  X(regressors)      /* POST .../regressors: fit a set in the background */ \
  X(explanations)    /* POST .../explanations: gradients, IG, ablation */ \
  X(graph)           /* POST .../graph: learn a DAG among the inputs */   \
  X(graph_get)       /* GET .../graph: the graph and its fitted weights */ \
  X(graph_put)       /* PUT .../graph: a new version with a given graph */ \
  X(significance)    /* POST .../significance: the randomization test */

#define SVC_KIND_DECLARE(k) extern const struct job_ops svc_kind_##k;
SVC_KINDS(SVC_KIND_DECLARE)
#undef SVC_KIND_DECLARE

/* The kind named `name` ("regressor"), or NULL. */
const struct job_ops *svc_kind_find(const char *name);
/* Every kind, NULL-terminated. */
extern const struct job_ops *const svc_kinds[];

/* ---- estimators and query parameters (params.c) ---- */
enum estimator { EST_AUTO, EST_TAYLOR, EST_FD, EST_MC, EST_UT, EST__COUNT };
const char *estimator_name(enum estimator e);

/* Which effect of do(x_i = a) (issue 14): direct (the other inputs as
 * they were: the paper), total (the descendants of i re-generated through
 * the model's graph), indirect (total - direct).  DEFAULT resolves per
 * model: total with a graph, direct without (effect.c). */
enum effect { EFFECT_DEFAULT, EFFECT_DIRECT, EFFECT_TOTAL, EFFECT_INDIRECT };
const char *effect_name(enum effect e);

struct query_params {
  enum estimator estimator;
  int num;          /* regressor grid points */
  int max_order;
  double epsilon;   /* finite_difference step */
  enum effect effect;
};
/* Parse estimator/num/max_order/epsilon from a JSON object (missing keys
 * keep defaults); errors name the field. */
enum aced_err query_params_parse(const struct svc *svc, const json_t *obj,
                                 struct query_params *q, struct aced_error *err);
/* From URL query strings (GET regressor); errors are bad_parameter. */
enum aced_err query_params_from_strings(const struct svc *svc, const char *estimator,
                                        const char *num, const char *max_order,
                                        const char *epsilon, struct query_params *q,
                                        struct aced_error *err);
/* The `effect` URL query parameter (NULL: default) into q->effect; errors
 * are bad_parameter. */
enum aced_err query_params_effect(const char *effect, struct query_params *q,
                                  struct aced_error *err);
/* The parameters as a JSON object, e.g. for a job's params. */
json_t *query_params_json(const struct query_params *q);

/* ---- the randomization test (significance.c) ----
 * Checks permutations, statistic and seed of a significance body (types
 * were checked by the route's spec), so a bad one is answered at once. */
enum aced_err significance_params_check(const json_t *body, struct aced_error *err);

/* ---- cached answers on the calling thread ----
 * Each returns a reply, or NULL: with err->code == ACED_OK when the
 * request must go to a worker (model not loaded, regressor not cached),
 * else with the error to answer at once (unknown output, ...). */
/* timestep, output_timestep: of a recurrent model, STEP_NONE when not
 * given. */
#define STEP_NONE INT_MIN
/* Both write the reply as JSON text (malloc'ed, *len bytes) with
 * meta.elapsed_ms counted from start_us (aced_now_us()). */
char *svc_cached_regressor(const struct svc *svc, const char *digest, const char *output,
                           const char *feature, int timestep, int output_timestep,
                           const struct query_params *q, int64_t start_us, size_t *len,
                           struct aced_error *err);
/* raw (raw_len bytes, may be NULL) is the body as sent: a reply it gets
 * is remembered for svc_quick_attributions. */
char *svc_cached_attributions(const struct svc *svc, const char *digest, const json_t *body,
                              const char *raw, size_t raw_len, int64_t start_us, size_t *len,
                              struct aced_error *err);
/* The same reply straight from the body's bytes, without parsing it into
 * a tree, when this HTTP thread answered the same query (its body but for
 * the rows of "inputs") from the cache before and nothing it depends on
 * has changed since: the model, the configured defaults, the regressors.
 * NULL whenever that does not hold, or the rows are anything but plain
 * numbers of the right count: then the caller takes the usual path, which
 * gives the same reply or the error (src/svc/quick.c). */
char *svc_quick_attributions(const struct svc *svc, const char *digest, const char *body,
                             size_t len, int64_t start_us, size_t *out_len);
/* Its reading of the body's bytes, exposed for fuzz/fuzz_query.c: the
 * value of the top-level member "inputs", [*vs, *ve) (0, or -1 when the
 * body is not an object it follows or has not exactly one "inputs"); and
 * the rows of such a value, arrays of exactly k numbers read as jansson
 * reads them (their count, 0 when refused; *x is malloc'ed, rows x k). */
int svc_quick_find_inputs(const char *body, size_t len, size_t *vs, size_t *ve);
size_t svc_quick_read_rows(const char *p, const char *end, int k, double **x);
/* Metadata of a loaded model under `name` and `version`, or NULL if the
 * content is not loaded. */
json_t *svc_cached_metadata(const struct svc *svc, const char *digest, const char *name,
                            int version);

/* The parameters of POST .../graph (graph.c): method (0 dagma, 1
 * notears), lambda1 (default 0.02 dagma, 0.1 notears), threshold (0.3),
 * max_parents (0: no cap); errors name the field. */
struct graph_learn_params {
  int method;
  double lambda1, threshold;
  int max_parents;
};
enum aced_err graph_learn_params_parse(const json_t *body, struct graph_learn_params *p,
                                       struct aced_error *err);

/* The graph of a loaded model (GET .../graph), or NULL: not loaded (err
 * ACED_OK) or no graph (err set). */
json_t *svc_cached_graph(const struct svc *svc, const char *digest, const char *name,
                         int version, struct aced_error *err);

/* ---- prepared models (prepared.c) ---- */
/* Drop the prepared model and the in-memory regressors of a digest
 * (after DELETE). */
void svc_evict(const char *digest);
long svc_loaded_count(void);
/* Drop everything kept in memory (shutdown, tests). */
void svc_clear(void);

/* Decode the parts of a cached regressor that attributions use (order,
 * coefficients, domain); 0, or -1 when any of it is missing or malformed.
 * r->cov and log_evidence are not filled: use eng_regressor_mean and
 * eng_regressor_baseline on the result, not eng_regressor_std. */
struct eng_regressor;
int svc_regressor_decode(const json_t *v, struct eng_regressor *r);

/* ---- durable jobs (journal.c), when the store is shared by replicas ----
 * Start the journal: 1 when on, 0 when the store keeps no jobs (SQLite),
 * -1 on failure.  Before jobs_shutdown: quiesce (claim nothing more; jobs
 * failed by the shutdown are given up to other replicas); after: stop. */
int svc_journal_start(const struct svc *svc, struct jobs *js);
void svc_journal_quiesce(void);
void svc_journal_stop(void);
/* GET and DELETE of a job this replica does not have: its state as last
 * recorded (a new reference), or NULL with err->code ACED_OK when the
 * store has no such job either.  svc_job_cancel asks its owner to cancel
 * it; *finished = 1 when it had already ended. */
json_t *svc_job_lookup(const struct svc *svc, const char *id, struct aced_error *err);
json_t *svc_job_cancel(const struct svc *svc, const char *id, int *finished,
                       struct aced_error *err);

#endif
