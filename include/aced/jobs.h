/*
 * jobs.h -- the worker pool and its job table (src/jobs/pool.c).
 *
 * All numerical work (and every step that may take long: loading and
 * validating a model, factoring its covariance) runs on a fixed pool of
 * worker threads, never on HTTP threads.  A job is split into tasks by its
 * kind's plan step; workers take tasks from the oldest job first, so one
 * big job uses every worker while a small one behind it still gets
 * through as soon as a worker frees up.
 *
 * The pool knows no job kind: a kind is a `struct job_ops` (plan, task,
 * finish, free) that the services define, one file per kind.
 *
 * The queue is bounded (queue_max jobs waiting): beyond it, jobs_submit
 * fails with ACED_E_QUEUE_FULL and the client gets 503 + Retry-After.
 * Identical requests in flight at the same time share one job (single
 * flight).  Finished jobs are remembered (ACED_JOBS_KEPT) for GET /v1/jobs.
 */
#ifndef ACED_JOBS_H
#define ACED_JOBS_H

#include <jansson.h>
#include <stdint.h>

#include "aced/errors.h"
#include "aced/limits.h"

struct job;
struct jobs;
struct job_request;

/* A job kind: what the pool calls, on worker threads, to run one job.
 *
 *   plan    runs when the job leaves the queue: load what it needs,
 *           resolve names, look in caches, and split what is left into
 *           *n_tasks independent tasks (0: the result is ready, finish
 *           next) worth *units_total progress units.  Returns the kind's
 *           private work, or NULL with *err.  ctx is the pool's context
 *           (jobs_create), job the job itself (for job_cancelled).
 *   task    task i of n_tasks, perhaps on several workers at once; returns
 *           the progress units it did, or -1 with *err.  A long task polls
 *           job_cancelled() and returns -1 when it says so.
 *   finish  the result (a new reference), or NULL with *err.
 *   free    release the work (after finish, failure or cancellation). */
struct job_ops {
  const char *name; /* "regressor": GET /v1/jobs/{id} shows it as "kind" */
  void *(*plan)(void *ctx, struct job *job, const struct job_request *req, int *n_tasks,
                long *units_total, struct aced_error *err);
  long (*task)(void *work, int i, struct aced_error *err);
  json_t *(*finish)(void *work, struct aced_error *err);
  void (*free)(void *work);
  unsigned flags; /* JOB_KEEP_RESULT | JOB_OUTLIVES_SUBJECT */
};
/* Keep the result for GET /v1/jobs/{id} even once every synchronous
 * waiter has received it (background jobs, whose clients poll). */
#define JOB_KEEP_RESULT 1u
/* DELETE of the subject model does not cancel it (a registration). */
#define JOB_OUTLIVES_SUBJECT 2u

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED };

struct job_request {
  const struct job_ops *ops;
  char model[ACED_NAME_MAX + 1]; /* the subject: DELETE of it cancels the job */
  int version;              /* 0: latest */
  char digest[72];          /* of the version looked up, "" for a registration */
  json_t *params;           /* request parameters; the job takes a reference */
  char who[64];             /* for the write log */
  char client[80];
  /* Single flight: an active job with the same key (jobs_flight_key) is
   * shared instead of starting another. */
  int single_flight;
};

/* The single-flight key of a request, built from all of it and nothing
 * cut short: "<kind>|<digest>|<version>|<model>|" and the SHA-256 (hex) of
 * params as canonical JSON (sorted keys, reals to 17 digits).  Returns 0,
 * or -1 when params cannot be serialised (the request then gets a job of
 * its own). */
#define JOB_FLIGHT_KEY_MAX (32 + 72 + 16 + ACED_NAME_MAX + 64 + 8)
int jobs_flight_key(const struct job_request *req, char key[JOB_FLIGHT_KEY_MAX]);

/* ctx is handed to every kind's plan step (the services' context). */
struct jobs *jobs_create(void *ctx, int workers, long queue_max, long job_timeout_s);
/* Cancel what is queued, stop running tasks at their next poll of
 * job_cancelled(), fail what is left, answer every waiter, join the
 * workers. */
void jobs_shutdown(struct jobs *js);
void jobs_free(struct jobs *js);

/* Called exactly once per wait: when the job finishes (timed_out = 0) or
 * at the deadline (aced_now_us clock) if it has not (timed_out = 1); from
 * a worker or the timer thread. */
typedef void (*job_waiter_fn)(void *cls, struct job *j, int timed_out);

struct job_wait {
  job_waiter_fn fn;
  void *cls;
  int64_t deadline_us;
};

/* Submit; *out gets a reference (job_unref when done with it).
 * *shared = 1 when an identical active job was joined instead.
 * With wait != NULL the waiter is registered in the same critical section
 * as the submission or the joining, so a request that joins a job can
 * never find it finished with its result already handed out and dropped.
 * wait->fn is never called from inside jobs_submit. */
enum aced_err jobs_submit(struct jobs *js, const struct job_request *req,
                          const struct job_wait *wait, struct job **out, int *shared,
                          struct aced_error *err);

/* Wait for a job already held; fn is called at once (on this thread) if
 * it has finished. */
void jobs_wait(struct jobs *js, struct job *j, int64_t deadline_us,
               job_waiter_fn fn, void *cls);

/* A journal of jobs (optional): the services install one when jobs must
 * outlive this process (a database shared by replicas).  submitted is
 * called once for every job jobs_submit creates (not for one joined
 * through single flight, nor an adopted one), on the submitting thread,
 * outside the pool's lock, before jobs_submit returns; req is the
 * caller's request.  The journal learns the rest through job_state,
 * job_to_json and jobs_cancel, like any other user of the pool. */
struct job_journal {
  void *cls;
  void (*submitted)(void *cls, struct job *j, const struct job_request *req);
};
void jobs_set_journal(struct jobs *js, const struct job_journal *jr);
/* Run a job another process started, under its id (a takeover): like
 * jobs_submit without waiter or single flight.  ACED_E_CONFLICT when a
 * job with that id is here already. */
enum aced_err jobs_adopt(struct jobs *js, const char *id, const struct job_request *req,
                         struct job **out, struct aced_error *err);

/* Look up by id; returns a reference or NULL. */
struct job *jobs_find(struct jobs *js, const char *id);
/* 1 when id (not found) was handed out by an earlier run of the daemon:
 * jobs live in memory, so a restart lost it (410 job_gone, not 404). */
int jobs_id_from_earlier_run(struct jobs *js, const char *id);
void job_ref(struct job *j);
void job_unref(struct job *j);

/* 0: cancelled (or cancelling); -1: already finished. */
int jobs_cancel(struct jobs *js, struct job *j);
/* Cancel every active job whose subject is `model` (DELETE of the model),
 * except kinds flagged JOB_OUTLIVES_SUBJECT. */
void jobs_cancel_model(struct jobs *js, const char *model);

enum job_state job_state(struct job *j);
const char *job_state_name(enum job_state s);
const char *job_id(const struct job *j);
const struct job_ops *job_ops(const struct job *j);
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

/* For a kind's tasks: non-zero once the job is cancelled or failed, past
 * its deadline (job_timeout) or the pool is shutting down.  Takes one
 * uncontended lock: cheap enough to poll between grid points. */
int job_cancelled(struct job *j);

/* For a kind whose tasks also run elsewhere (other replicas): progress
 * units done in all, when more than the pool counted itself. */
void job_progress_note(struct job *j, long units_done);

#endif
