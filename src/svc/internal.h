/*
 * svc/internal.h -- what the service files share; nothing outside
 * src/svc/ includes it.  The public face of the services is aced/svc.h.
 */
#ifndef ACED_SVC_INTERNAL_H
#define ACED_SVC_INTERNAL_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>

#include "aced/engine.h"
#include "aced/errors.h"
#include "aced/jobs.h"
#include "aced/model.h"
#include "aced/svc.h"

/* ---- prepared models (prepared.c) ----
 * A model parsed, validated and with its covariance factored, shared
 * read-only by every thread that holds a reference. */
struct loaded {
  char digest[72];
  struct aced_model *m;
  struct eng_model *em;
  atomic_int refs;     /* users + 1 while in the list */
  atomic_ulong tick;   /* last use, for LRU */
  struct loaded *next;
  struct effect_state *fx; /* structural equations when m has a graph (effect.c), else NULL */
};

/* Load name/version from the store, validate and prepare it (workers
 * only: this is O(k^3)).  `digest` (may be "") is what the HTTP thread
 * saw; the row read here is authoritative.  A new reference. */
struct loaded *prepared_acquire(const struct svc *svc, const char *name, int version,
                                const char *digest, struct aced_error *err);
/* The loaded model of a digest, or NULL: never loads (HTTP threads). */
struct loaded *prepared_peek(const char *digest);
void prepared_release(struct loaded *l);
/* A count that changes whenever a loaded model is dropped: while it
 * stands still, a model prepared_peek found is still loaded. */
unsigned long prepared_generation(void);

/* ---- parameters (params.c) ---- */
/* The cache key's parameter string: everything that changes the result. */
void params_key(const struct query_params *q, char *buf, size_t n);
/* The parameters a body that sets none gets (configuration defaults). */
void params_defaults(const struct svc *svc, struct query_params *q);

/* ---- Phase I with estimator resolution and diagnostics (phase1.c) ---- */
struct phase1 {
  int n, n_out;
  double *E;              /* n x n_out, the values served */
  double *se;             /* n x n_out standard errors (montecarlo), or NULL */
  enum estimator *used;   /* per output */
  const char **reason;    /* per output */
  struct eng_diag *diag;  /* per output, or NULL (montecarlo requested) */
  json_t *warnings;
};
/* E[y | do(x_feature = alpha)] for the n alphas and every output with the
 * estimator `est` (auto resolved per output).  `focus` is the output the
 * caller cares about (-1: all) for warnings.  When the thread's stop
 * check fires (svc_stop_begin), fails with unavailable "job stopped". */
enum aced_err phase1_run(const struct loaded *L, int feature, const double *alpha, int n,
                         enum estimator est, double epsilon, int focus, struct phase1 *p,
                         struct aced_error *err);
void phase1_free(struct phase1 *p);
json_t *diag_json(const struct loaded *L, const struct eng_diag *d);

/* ---- fitting regressors (fit.c) ---- */
/* Compute one feature's grid and fit + cache every output's regressor.
 * If want >= 0, *out gets that output's regressor JSON (new reference). */
enum aced_err fit_feature(const struct svc *svc, const struct loaded *L, int f,
                          const struct query_params *q, int want, json_t **out,
                          struct aced_error *err);
/* A cached or fresh regressor as a reply: a copy with "meta". */
json_t *regressor_reply(const json_t *v, const char *cache);
/* {"estimator", "cache", "elapsed_ms": 0, "warnings"}; steals warnings. */
json_t *meta_json(const char *estimator, const char *cache, json_t *warnings);
/* A JSON array of n numbers (non-finite ones as null). */
json_t *dbl_array(const double *a, int n, int stride);

/* A task's engine calls stop between grid points once job_cancelled(job)
 * says so (phase1_run then fails with "job stopped"): begin before them,
 * end after, on the same thread. */
void svc_stop_begin(struct job *job);
void svc_stop_end(void);

/* ---- the regressor cache (regcache.c) ----
 * Fitted regressors live in the store (survive restarts, shared by
 * replicas); what attributions need of them (a summary) is also kept
 * decoded in memory. */
struct reg_summary {
  atomic_int refs;
  int order;
  double coef[ENG_ORDER_CAP + 1];
  double low, high;
  char estimator[24];  /* the estimator that produced it */
  char baseline[40];   /* the ACE baseline as a JSON real */
  double base;         /* the ACE baseline: the curve's mean over the domain */
  char *warnings;      /* its warnings as JSON strings joined by ',', or "" */
  size_t warnings_len;
  /* The regressor GET's reply as text around meta.elapsed_ms (its value
   * left out), attached by the first warm GET (regcache.c); NULL until. */
  _Atomic(struct reg_reply *) reply;
};
struct reg_reply {
  int effect;          /* the request's effect as asked (meta.effect_reason says whether) */
  size_t pre_len, post_len;
  char text[]; /* pre, then post: "...\"elapsed_ms\":" | value | "," ... */
};
/* The store's key of regressor (o, f) under q; pbuf holds its params. */
struct store_cache_key;
void regcache_key(const struct loaded *L, int o, int f, const struct query_params *q,
                  char *pbuf, size_t pn, struct store_cache_key *k);
/* The full cached regressor (parsed) from the store, or NULL on a miss. */
json_t *regcache_get(const struct svc *svc, const struct loaded *L, int o, int f,
                     const struct query_params *q);
/* The summaries of output o for features feats[0..n): from memory, the
 * rest from the store.  regs[i] is a new reference, or NULL when (o,
 * feats[i]) is not cached; returns how many are missing.  With
 * stop_at_miss the store is not read past the first one missing (the
 * HTTP thread then hands the request to a worker, which looks again). */
int regcache_summaries(const struct svc *svc, const struct loaded *L, int o, const int *feats,
                       int n, const struct query_params *q, int stop_at_miss,
                       struct reg_summary **regs);
/* The summary of a full regressor; NULL if unreadable or out of memory. */
struct reg_summary *regcache_summary_of(const json_t *full);
void regcache_summary_unref(struct reg_summary *s);
/* The regressor GET's reply for (o, f) under q as text (malloc'ed, *len
 * bytes) with meta.elapsed_ms counted from start_us, from memory when a
 * GET was answered before, else from the store (and then kept); NULL when
 * the regressor is not cached (or memory ran out). */
char *regcache_reply_text(const struct svc *svc, const struct loaded *L, int o, int f,
                          const struct query_params *q, int64_t start_us, size_t *len);
/* A count that changes whenever an in-memory summary is added, replaced
 * or dropped: while it stands still, regcache_summaries gives the same
 * summaries for the same keys (those it found in memory). */
unsigned long regcache_generation(void);
/* Drop the in-memory summaries of a digest / of everything. */
void regcache_purge(const char *digest);
void regcache_clear(void);

/* ---- ACE rows for other kinds (attributions.c) ----
 * ACE of output o at every row of x (rows x k) for every feature, the
 * numbers POST .../attributions answers: regressors from the cache, the
 * missing ones fitted on the calling worker; constant features get 0
 * with a note in `warnings`, which also receives the regressors'
 * warnings.  *estimator: the estimator used by all, or "mixed". */
enum aced_err attributions_ace_rows(const struct svc *svc, const struct loaded *L, int o,
                                    const struct query_params *q, const double *x, int rows,
                                    double *ace, json_t *warnings, const char **estimator,
                                    struct aced_error *err);
/* The same for the features feats[0..nf-1] only (flattened indices of a
 * recurrent model's (timestep, feature)); the others' columns are 0. */
enum aced_err attributions_ace_features(const struct svc *svc, const struct loaded *L, int o,
                                        const struct query_params *q, const double *x, int rows,
                                        const int *feats, int nf, double *ace, json_t *warnings,
                                        const char **estimator, struct aced_error *err);

/* ---- the cached attributions reply, in parts (attributions.c) ---- */
struct jw;
/* Where a single-output attributions reply has its per-request parts:
 * the rows of values go in [values, values_end), meta.elapsed_ms's number
 * in [ms, ms_end); everything else depends only on the model, the output,
 * the features, the parameters and the regressors (quick.c keeps it). */
struct reply_marks {
  size_t values, values_end, ms, ms_end;
};
/* ACE of every feature at one input row: out[i] is regs[i]'s series at
 * xs[i] less its baseline.  Returns -1, or the first i whose value is not
 * finite (the regressor overflows far outside its domain). */
int attributions_ace_row(struct reg_summary *const *regs, int nf, const double *xs, double *out);
/* The attributions rows ("[a,b],[c,d]") of ace (nrows x nf). */
void attributions_write_values(struct jw *w, const double *ace, size_t nrows, int nf);

/* ---- cached attributions answered from the body's bytes (quick.c) ----
 * Remember a reply that svc_cached_attributions just gave (a feedforward
 * model, one output, no notes), keyed by its body without the value of
 * "inputs": a dashboard sends the same query with new rows, and
 * svc_quick_attributions then answers it without a JSON tree. */
void quick_learn(const struct svc *svc, const char *digest, const char *body, size_t len,
                 const struct loaded *L, int o, const int *feats, int nf,
                 struct reg_summary *const *regs, const struct query_params *q,
                 const char *text, size_t text_len, const struct reply_marks *marks);

/* ---- names and indices in request bodies (resolve.c) ---- */
/* An output (outputs = 1) or feature given as a name or an index; the
 * error names `field`. */
enum aced_err resolve_index(const struct loaded *L, const json_t *v, const char *field,
                            int outputs, int *idx, struct aced_error *err);
/* An optional list of names/indices (NULL: all) into a malloc'ed array.
 * Features: all leaves out the constant ones (low == high) with a note
 * each appended to `notes` (may be NULL); a list naming one is a 422. */
enum aced_err resolve_index_list(const struct loaded *L, const json_t *v, const char *field,
                                 int outputs, int **idx, int *n, json_t *notes,
                                 struct aced_error *err);
/* ACED_OK unless feature f is constant: then a 422 naming `field`. */
enum aced_err resolve_not_constant(const struct loaded *L, int f, const char *field,
                                   struct aced_error *err);

/* ---- effects through the graph among the inputs (effect.c) ---- */
struct effect_state;
/* The structural equations of m's graph, fitted; *out NULL without one. */
enum aced_err effect_state_new(const struct aced_model *m, struct effect_state **out,
                               struct aced_error *err);
void effect_state_free(struct effect_state *fx, int k);
/* The effect q asks for, resolved for L (never EFFECT_DEFAULT), and why. */
enum effect effect_of(const struct loaded *L, const struct query_params *q);
const char *effect_reason(const struct loaded *L, const struct query_params *q);
/* 422 no_graph naming "effect" when q asks for total/indirect without a graph. */
enum aced_err effect_check(const struct loaded *L, const struct query_params *q,
                           struct aced_error *err);
/* meta.effect and meta.effect_reason. */
void effect_meta(json_t *meta, const struct loaded *L, const struct query_params *q);
/* phase1_run for the effect q asks for (estimator and epsilon from q). */
enum aced_err effect_phase1(const struct loaded *L, int f, const double *alpha, int n,
                            const struct query_params *q, int focus, struct phase1 *p,
                            struct aced_error *err);
/* GET .../graph: {"edges": [{"from", "to", "weight"}], "source", "method",
 * "parameters", "score", "warnings"}, or JSON null without a graph. */
json_t *effect_graph_json(const struct loaded *L);

/* ---- storing a model version (register.c) ---- */
/* Store m (its digest computed) as the next version of m->name unless
 * that content is its latest already: the registration reply {"name",
 * "version", "digest", "created_at", "created"}.  Frees m. */
json_t *register_store(const struct svc *svc, const struct job_request *req,
                       struct aced_model *m, struct aced_error *err);
/* The latest stored model `name` (version 0) parsed anew, for a new
 * version with another graph (graph_put.c); NULL with err set. */
struct aced_model *graph_model_copy(const struct svc *svc, const char *name, int version,
                                    struct aced_error *err);

/* ---- recurrent models (resolve.c) ----
 * A feature f and output o resolved by name or index are per step; these
 * turn them into the model's flattened indices (model.h). */
/* f += timestep * step_features, o += output step * step_outputs (output_at
 * every; default the last step).  A feedforward model refuses either
 * field; a recurrent one needs timestep.  f, o may be NULL. */
enum aced_err resolve_steps(const struct loaded *L, int timestep, int output_timestep, int *f,
                            int *o, struct aced_error *err);
/* The same from a body's "timestep" and "output_timestep". */
enum aced_err resolve_steps_json(const struct loaded *L, const json_t *b, int *f, int *o,
                                 struct aced_error *err);
/* Only the output step (jobs over many timesteps). */
enum aced_err resolve_output_step(const struct loaded *L, const json_t *b, int *o,
                                  struct aced_error *err);
/* "timestep" and "output_timestep" of flattened f and o into a reply
 * (recurrent models only). */
void resolve_step_json(const struct loaded *L, json_t *reply, int f, int o);
/* The timesteps a job over all of them covers (recurrent models): from
 * the body's output_timestep (default the last) back to the time lag
 * (Proposition 3), or every step before it with "all_timesteps": true;
 * a note in `notes` says what was left out.  *steps is malloc'ed. */
enum aced_err resolve_step_window(const struct loaded *L, const json_t *b, int **steps, int *n,
                                  json_t *notes, struct aced_error *err);

/* ---- one job's tasks shared by replicas (split.c) ----
 * split_start: NULL when the job runs whole here (no journal, a store
 * without tasks, fewer than 2 tasks, or its tasks could not be recorded);
 * params "_help" names the job a helper job helps.  split_claim: the next
 * task to run here, -1 when none (*pending: tasks other replicas still
 * run).  split_drain (the owner's finish): run what is left, wait for the
 * rest.  split_counts: units and regressors computed over all replicas, 0,
 * or -1 when unknown.  svc_journal_owner (journal.c): this replica's name
 * in the store, NULL without the journal. */
struct split;
struct split *split_start(const struct svc *svc, struct job *job, const json_t *params, int n);
int split_helper(const struct split *sp);
int split_claim(struct split *sp, int *pending);
/* split_claim for a task step: -1 at once once a step found none. */
int split_next(struct split *sp);
void split_done(struct split *sp, int i, long units, long computed);
/* A task that failed here (cancel, shutdown): free for another replica
 * at once rather than when its lease runs out. */
void split_release(struct split *sp, int i);
enum aced_err split_drain(struct split *sp, long (*run)(void *cls, int i, long *computed,
                                                        struct aced_error *err),
                          void *cls, struct aced_error *err);
int split_counts(struct split *sp, long *units, long *computed);
void split_free(struct split *sp);
const char *svc_journal_owner(void);
/* fit_feature (fit.c), once across replicas: while another replica fits
 * feature f under q, wait (polling job_cancelled(job)) and take its
 * regressors from the cache, *waited = 1. */
enum aced_err fit_feature_shared(const struct svc *svc, const struct loaded *L, int f,
                                 const struct query_params *q, int want, json_t **out,
                                 struct job *job, int *waited, struct aced_error *err);

/* ---- kinds that finish in their plan step ----
 * Work of a job whose result is ready after plan (no tasks). */
struct done_work {
  json_t *result;
};
void *done_work_new(json_t *result, struct aced_error *err);
long done_work_task(void *work, int i, struct aced_error *err);
json_t *done_work_finish(void *work, struct aced_error *err);
void done_work_free(void *work);

#endif
