/*
 * jobs.h -- the worker pool and its job table.
 *
 * All numerical work (and every step that may take long: loading and
 * validating a model, factoring its covariance) runs on a fixed pool of
 * worker threads, never on HTTP threads.  A job is split into tasks by its
 * kind's plan step (compute.c); workers take tasks from the oldest job
 * first, so one big job uses every worker while a small one behind it
 * still gets through as soon as a worker frees up.
 *
 * The queue is bounded (queue_max jobs waiting): beyond it, jobs_submit
 * fails with ACED_E_QUEUE_FULL and the client gets 503 + Retry-After.
 * Identical requests in flight at the same time share one job (dedupe
 * key).  Finished jobs are remembered (ACED_JOBS_KEPT) for GET /v1/jobs.
 */
#ifndef ACED_JOBS_H
#define ACED_JOBS_H

#include <jansson.h>
#include <stdint.h>

#include "aced/errors.h"
#include "aced/limits.h"

struct server;

enum job_kind {
  JOB_REGISTER,      /* POST /v1/models: validate and store */
  JOB_METADATA,      /* GET /v1/models/{name}: load and describe */
  JOB_INTERVENTIONS, /* POST .../interventions */
  JOB_REGRESSOR,     /* GET .../regressors/{output}/{feature} */
  JOB_ATTRIBUTIONS,  /* POST .../attributions */
  JOB_REGRESSORS,    /* POST .../regressors: fit a set */
  JOB__COUNT
};

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED };

struct job_request {
  enum job_kind kind;
  char model[ACED_NAME_MAX + 1];
  int version;              /* 0: latest */
  char digest[72];          /* of the version looked up, "" for JOB_REGISTER */
  json_t *params;           /* request parameters; the job takes a reference */
  char who[64];             /* for the write log */
  char client[80];
  /* Non-empty: an active job with the same key is shared. */
  char dedupe[256];
};

struct jobs;
struct job;

struct jobs *jobs_create(struct server *srv, int workers, long queue_max,
                         long job_timeout_s);
/* Cancel what is queued, let running tasks finish, fail what is left,
 * answer every waiter, join the workers. */
void jobs_shutdown(struct jobs *js);
void jobs_free(struct jobs *js);

/* Submit; *out gets a reference (job_unref when done with it).
 * *shared = 1 when an identical active job was joined instead. */
enum aced_err jobs_submit(struct jobs *js, const struct job_request *req,
                          struct job **out, int *shared, struct aced_error *err);

/* Call fn(cls, job, timed_out) exactly once: when the job finishes
 * (timed_out = 0) or at deadline_us (http_now_us clock) if it has not
 * (timed_out = 1).  Called from a worker or the timer thread, or at once
 * if the job has already finished. */
typedef void (*job_waiter_fn)(void *cls, struct job *j, int timed_out);
void jobs_wait(struct jobs *js, struct job *j, int64_t deadline_us,
               job_waiter_fn fn, void *cls);

/* Look up by id; returns a reference or NULL. */
struct job *jobs_find(struct jobs *js, const char *id);
void job_ref(struct job *j);
void job_unref(struct job *j);

/* 0: cancelled (or cancelling); -1: already finished. */
int jobs_cancel(struct jobs *js, struct job *j);
/* Cancel every active job of a model name (DELETE of the model). */
void jobs_cancel_model(struct jobs *js, const char *model);

enum job_state job_state(struct job *j);
const char *job_state_name(enum job_state s);
const char *job_id(const struct job *j);
/* Label of the token that submitted the job ("-" without auth). */
const char *job_who(const struct job *j);
/* Result of a done job (borrowed, valid while the reference is held). */
json_t *job_result(struct job *j);
/* Error of a failed job. */
void job_error(struct job *j, struct aced_error *err);
/* {"id", "kind", "model", "state", "progress": {"done", "total"},
 *  "elapsed_ms", "queued_ms", "created_at", "error"?, "result"? (with_result)}
 * "error" is the {code, message, field} object of a failed job. */
json_t *job_to_json(struct job *j, int with_result);

struct jobs_stats {
  long queued, running, workers, busy;
};
void jobs_stats(struct jobs *js, struct jobs_stats *st);

/* ---- for compute.c: progress and cancellation of the running task ---- */
int job_cancelled(struct job *j);

#endif
