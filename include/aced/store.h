/*
 * store.h -- persistence behind one interface.
 *
 * The registry (models and their versions) and the regressor cache live
 * behind `struct store_ops`: SQLite (src/store/sqlite.c, the embedded
 * default) and PostgreSQL (src/store/pg.c, for several replicas sharing
 * one registry and cache).  The store keeps text and numbers; it does not parse
 * model JSON or know about the engine.
 *
 * Every function returns ACED_OK or an error code, with a message in *err
 * (err may be NULL).  All functions are safe to call from any thread.
 */
#ifndef ACED_STORE_H
#define ACED_STORE_H

#include <stddef.h>
#include "aced/errors.h"
#include "aced/limits.h"

struct store_model_row {
  char name[ACED_NAME_MAX + 1];
  int version;
  char digest[72];
  char created_at[32];      /* RFC 3339 UTC, "2026-11-22T10:00:00Z" */
  int n_features, n_outputs, n_samples;
  long n_params;
  char *description;        /* malloc'ed or NULL */
  char source[ACED_SOURCE_MAX + 1]; /* origin (model.h's source), "" for JSON */
  char *body;               /* canonical JSON, malloc'ed; NULL unless asked */
};
void store_model_row_clear(struct store_model_row *row); /* frees strings */

/* Key of one cached regressor.  `params` is a canonical string of the
 * remaining parameters, e.g. "num=100;max_order=20". */
struct store_cache_key {
  const char *digest;
  int output, feature;
  const char *estimator;
  const char *params;
};

/* A durable job (backends shared by replicas): what is needed to run it
 * again on another replica.  request is malloc'ed JSON text, or NULL for
 * a job that cannot be run again (its request was too large to keep). */
struct store_job {
  char id[40];
  char kind[32];
  char model[ACED_NAME_MAX + 1];
  char *request;
};

struct store;

struct store_ops {
  void (*close)(struct store *s);
  /* Is the database usable right now (for /readyz)? */
  enum aced_err (*ping)(struct store *s, struct aced_error *err);
  /* Register: if some version of `row->name` has `row->digest`, fill
   * row->version/created_at from it and set *created = 0; else insert the
   * next version durably (committed before return) and set *created = 1. */
  enum aced_err (*model_put)(struct store *s, struct store_model_row *row,
                             const char *body, int *created,
                             struct aced_error *err);
  /* version 0 means the latest.  with_body: also load row->body. */
  enum aced_err (*model_get)(struct store *s, const char *name, int version,
                             int with_body, struct store_model_row *row,
                             struct aced_error *err);
  /* The digest of name's latest version into digest (72 bytes) if the
   * backend holds it in memory: 1, else 0 (then model_get, which reads
   * it and keeps it).  Takes no lock for a name this thread asked for
   * before, until the next write. */
  int (*model_digest)(struct store *s, const char *name, char *digest);
  /* Latest version of every model, ordered by name; calls cb per row
   * (body not loaded).  cb returns non-zero to stop. */
  enum aced_err (*model_list)(struct store *s,
                              int (*cb)(void *cls, const struct store_model_row *row),
                              void *cls, struct aced_error *err);
  /* All versions of name `name` (row->version ascending), body not loaded. */
  enum aced_err (*model_versions)(struct store *s, const char *name,
                                  int (*cb)(void *cls, const struct store_model_row *row),
                                  void *cls, struct aced_error *err);
  /* Delete every version of `name` and the cache entries of digests no
   * other model still uses.  *deleted = versions removed (0: not found). */
  enum aced_err (*model_delete)(struct store *s, const char *name, int *deleted,
                                struct aced_error *err);
  enum aced_err (*model_count)(struct store *s, long *n, struct aced_error *err);
  /* Cache: *value is malloc'ed JSON text, or NULL on a miss (ACED_OK). */
  enum aced_err (*cache_get)(struct store *s, const struct store_cache_key *k,
                             char **value, struct aced_error *err);
  /* Store n entries in one transaction (a feature's regressors for every
   * output at once).  Cache rows can always be recomputed, so they are
   * committed without waiting for the disk; a later durable commit (a
   * registration) or a checkpoint flushes them.  Keys whose digest no
   * model has are skipped. */
  enum aced_err (*cache_put)(struct store *s, const struct store_cache_key *k,
                             const char *const *values, int n, struct aced_error *err);
  enum aced_err (*cache_count)(struct store *s, long *n, struct aced_error *err);

  /* ---- durable jobs: NULL in a backend without them (SQLite) ----
   * A job row holds what GET /v1/jobs/{id} shows (`body`, JSON text as
   * its owner last wrote it), who runs it (`owner`) until when (a lease
   * of lease_ms, renewed by heartbeats), and its request.  The store
   * treats body and request as text, except that it sets body's "state"
   * (and "error") when it ends a job itself. */
  /* Record a job submitted by `owner`, who runs it. */
  enum aced_err (*job_insert)(struct store *s, const struct store_job *job, const char *owner,
                              int lease_ms, const char *body, struct aced_error *err);
  /* Renew the lease and record body; *cancel = 1 once a cancel was asked
   * for, *owned = 0 once another replica has taken the job over. */
  enum aced_err (*job_heartbeat)(struct store *s, const char *id, const char *owner,
                                 int lease_ms, const char *body, int *cancel, int *owned,
                                 struct aced_error *err);
  /* Renew every lease `owner` holds, in one statement; cb(cls, id,
   * cancel) for each job it still owns. */
  enum aced_err (*job_renew)(struct store *s, const char *owner, int lease_ms,
                             void (*cb)(void *cls, const char *id, int cancel), void *cls,
                             struct aced_error *err);
  /* The end: body with its final state ("done", "failed", "cancelled"),
   * if owner still owns it.  state NULL: give it up unfinished (owner
   * stopping): another replica may claim it at once. */
  enum aced_err (*job_finish)(struct store *s, const char *id, const char *owner,
                              const char *state, const char *body, struct aced_error *err);
  /* Claim for `owner` the oldest unfinished job whose lease ran out (SELECT
   * ... FOR UPDATE SKIP LOCKED: replicas never claim the same one); *found
   * 0 when there is none.  Such jobs that cannot be run again or were
   * cancelled are ended on the way. */
  enum aced_err (*job_claim)(struct store *s, const char *owner, int lease_ms,
                             struct store_job *job, int *found, struct aced_error *err);
  /* *body (malloc'ed) as last written, NULL when there is no such job. */
  enum aced_err (*job_get)(struct store *s, const char *id, char **body, struct aced_error *err);
  /* Ask for a cancel, which reaches the owner by notification and at its
   * next heartbeat; a job nobody runs ends at once.  *body as after the
   * request (NULL: no such job); *finished = 1 when it had already ended. */
  enum aced_err (*job_cancel)(struct store *s, const char *id, char **body, int *finished,
                              struct aced_error *err);
  /* Be told of other replicas' job events: fn(cls, "cancel <id>") when a
   * cancel is asked for, fn(cls, "free <id>") when a job may be claimed,
   * fn(cls, "tasks <id>") when a job has tasks to help with, fn(cls,
   * "ended <id>") when a job ended with some of its tasks not done.
   * Called from the store's own thread. */
  void (*job_listen)(struct store *s, void (*fn)(void *cls, const char *event), void *cls);

  /* ---- a durable job's tasks, claimable by any replica (NULL without) ----
   * A job whose kind splits it (plan repeatable task by task) records its
   * tasks 0..n-1 as rows beside its job row; every replica running it
   * claims them one at a time (FOR UPDATE SKIP LOCKED), leased like the
   * job (job_renew renews the tasks `owner` holds too), and marks each
   * done with its units and how many regressors it computed. */
  /* Create tasks 0..n-1 of job `id`, keeping any that exist (a job taken
   * over).  An error when the job has no row (it then runs here whole). */
  enum aced_err (*task_plan)(struct store *s, const char *id, int n, struct aced_error *err);
  /* Claim one task of job `id` that is free or whose lease ran out: *i,
   * or -1 when there is none; then *pending = tasks not done yet (leased
   * by live replicas).  A cancelled or ended job has none. */
  enum aced_err (*task_claim)(struct store *s, const char *id, const char *owner, int lease_ms,
                              int *i, int *pending, struct aced_error *err);
  enum aced_err (*task_done)(struct store *s, const char *id, int i, const char *owner,
                             long units, long computed, struct aced_error *err);
  /* Give task i back unfinished (free again), if owner holds it. */
  enum aced_err (*task_release)(struct store *s, const char *id, int i, const char *owner,
                                struct aced_error *err);
  /* Sums over the job's done tasks; *total = its tasks (0: not split). */
  enum aced_err (*task_sum)(struct store *s, const char *id, long *units, long *computed,
                            int *done, int *total, struct aced_error *err);
  /* A running job of another replica with tasks nobody has claimed yet
   * (for this replica to help with), *found 0 when there is none. */
  enum aced_err (*task_find)(struct store *s, const char *owner, struct store_job *job,
                             int *found, struct aced_error *err);
  /* Single flight of one fit across replicas: claim the fit named `key`
   * for owner, leased like a task (job_renew renews it); *mine = 1 when
   * this replica is to fit it, 0 while another replica's lease holds it.
   * fit_release once its results are in the cache. */
  enum aced_err (*fit_claim)(struct store *s, const char *key, const char *owner, int lease_ms,
                             int *mine, struct aced_error *err);
  enum aced_err (*fit_release)(struct store *s, const char *key, const char *owner,
                               struct aced_error *err);
};

struct store {
  const struct store_ops *ops;
};

/* Open the store a URI names; the scheme chooses the backend:
 *   sqlite:<path> or a plain path   an SQLite database (created if needed)
 *   postgresql://... postgres://... a PostgreSQL database (a libpq URI),
 *                                   when built with libpq
 * An unknown scheme is an error naming it.  n_conn: the connections a
 * client/server backend keeps (one per thread that calls the store at
 * once); 0 for its default.  store_open(uri, err) is n_conn 0. */
struct store *store_open(const char *uri, struct aced_error *err);
struct store *store_open_pool(const char *uri, int n_conn, struct aced_error *err);
/* 1 when uri names a database server rather than a file. */
int store_uri_is_server(const char *uri);
/* uri for the log: a password in it ("user:secret@") becomes "***". */
void store_uri_redact(const char *uri, char *out, size_t n);

/* The backends (src/store/<backend>.c). */
struct store *store_sqlite_open(const char *path, struct aced_error *err);
struct store *store_pg_open(const char *uri, int n_conn, struct aced_error *err);

#endif
