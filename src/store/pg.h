/*
 * store/pg.h -- what the two files of the PostgreSQL backend share (pg.c:
 * schema, connection pool, the listener, opening; pg_ops.c: the registry
 * and cache operations).  Nothing outside src/store/ includes it.
 */
#ifndef ACED_STORE_PG_H
#define ACED_STORE_PG_H

#include <pthread.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "aced/limits.h"
#include "aced/store.h"
#include "store/latest.h"

/* Every statement aced sends, prepared once per connection on first use
 * (after a reconnection, again). */
enum pg_stmt_id {
  PG_MODEL_LOCK,
  PG_MODEL_FIND_DIGEST,
  PG_MODEL_INSERT,
  PG_MODEL_GET,
  PG_MODEL_LIST,
  PG_MODEL_VERSIONS,
  PG_CACHE_PRUNE,
  PG_MODEL_DELETE,
  PG_MODEL_COUNT,
  PG_CACHE_GET,
  PG_CACHE_PUT,
  PG_CACHE_COUNT,
  PG_NOTIFY,
  PG_PING,
  PG_STMT__COUNT
};

struct pg_conn {
  PGconn *pg;               /* NULL until first used, or after a failure */
  unsigned long prepared;   /* bit i: statement i is prepared on pg */
};

struct pg_store {
  struct store base;        /* first: a struct store * is ours */
  char *uri;
  pthread_mutex_t pool_lock;
  pthread_cond_t pool_cond;
  int n_conn;
  struct pg_conn conn[ACED_PG_CONN_MAX];
  int a_free[ACED_PG_CONN_MAX];
  int n_free;
  /* Latest-version rows by name, as in the SQLite backend, but other
   * replicas write too: their writes arrive as NOTIFY aced_models on the
   * listener's connection, which empties the table.  While the listener
   * is not connected the table is disabled (nothing remembered or served
   * from it), since a notification might be missed. */
  struct store_latest latest;
  pthread_t listener;
  int listener_started;
  pthread_mutex_t stop_lock;  /* also guards job_fn/job_cls */
  pthread_cond_t stop_cond;
  int stopping;
  void (*job_fn)(void *cls, const char *event);
  void *job_cls;
};

#define PG_JOBS_CHANNEL "aced_jobs"

static inline struct pg_store *pg_of(struct store *s)
{
  return (struct pg_store *)s;
}

/* A borrowed connection, connected (or NULL with *err: 503). */
struct pg_conn *pg_conn_get(struct pg_store *q, struct aced_error *err);
/* Give it back; a broken one is closed (the next user reconnects). */
void pg_conn_put(struct pg_store *q, struct pg_conn *c);
/* Run prepared statement id with text parameters (NULL: SQL NULL).  The
 * result (PGRES_COMMAND_OK or PGRES_TUPLES_OK), or NULL with *err. */
PGresult *pg_run(struct pg_conn *c, enum pg_stmt_id id, int n, const char *const *values,
                 struct aced_error *err, const char *what);
/* SQL text with parameters, unprepared (for rare statements). */
PGresult *pg_query(struct pg_conn *c, const char *sql, int n, const char *const *values,
                   struct aced_error *err, const char *what);
/* Plain SQL without parameters (BEGIN, COMMIT, ROLLBACK, SET ...). */
enum aced_err pg_cmd(struct pg_conn *c, const char *sql, struct aced_error *err,
                     const char *what);
void pg_rollback(struct pg_conn *c);
/* 1 when c's last failure lost the connection (nothing was done). */
int pg_conn_lost(const struct pg_conn *c);
void pg_now(char *buf, size_t n);
int pg_row_decode(const PGresult *r, int i, struct store_model_row *row);

enum aced_err pg_model_put(struct store *s, struct store_model_row *row, const char *body,
                           int *created, struct aced_error *err);
enum aced_err pg_model_get(struct store *s, const char *name, int version, int with_body,
                           struct store_model_row *row, struct aced_error *err);
enum aced_err pg_model_list(struct store *s,
                            int (*cb)(void *cls, const struct store_model_row *row),
                            void *cls, struct aced_error *err);
enum aced_err pg_model_versions(struct store *s, const char *name,
                                int (*cb)(void *cls, const struct store_model_row *row),
                                void *cls, struct aced_error *err);
enum aced_err pg_model_delete(struct store *s, const char *name, int *deleted,
                              struct aced_error *err);
enum aced_err pg_model_count(struct store *s, long *n, struct aced_error *err);
enum aced_err pg_cache_count(struct store *s, long *n, struct aced_error *err);
enum aced_err pg_cache_get(struct store *s, const struct store_cache_key *k, char **value,
                           struct aced_error *err);
enum aced_err pg_cache_put(struct store *s, const struct store_cache_key *k,
                           const char *const *values, int n, struct aced_error *err);
enum aced_err pg_job_insert(struct store *s, const struct store_job *job, const char *owner,
                            int lease_ms, const char *body, struct aced_error *err);
enum aced_err pg_job_heartbeat(struct store *s, const char *id, const char *owner, int lease_ms,
                               const char *body, int *cancel, int *owned,
                               struct aced_error *err);
enum aced_err pg_job_renew(struct store *s, const char *owner, int lease_ms,
                           void (*cb)(void *cls, const char *id, int cancel), void *cls,
                           struct aced_error *err);
enum aced_err pg_job_finish(struct store *s, const char *id, const char *owner, const char *state,
                            const char *body, struct aced_error *err);
enum aced_err pg_job_claim(struct store *s, const char *owner, int lease_ms,
                           struct store_job *job, int *found, struct aced_error *err);
enum aced_err pg_job_get(struct store *s, const char *id, char **body, struct aced_error *err);
enum aced_err pg_job_cancel(struct store *s, const char *id, char **body, int *finished,
                            struct aced_error *err);
void pg_job_listen(struct store *s, void (*fn)(void *cls, const char *event), void *cls);
/* pg_tasks.c: a job's tasks (store.h) */
/* err's code, ACED_E_STORE when it has none. */
enum aced_err pg_jobs_code(struct aced_error *err);
/* Row 0 of r (id, kind, model, request) into *job, *found = 1; none: 0. */
enum aced_err pg_job_row(const PGresult *r, struct store_job *job, int *found,
                         struct aced_error *err);
PGresult *pg_jobs_exec(struct pg_store *q, const char *sql, int n, const char *const *v,
                       struct aced_error *err, const char *what);
enum aced_err pg_task_plan(struct store *s, const char *id, int n, struct aced_error *err);
enum aced_err pg_task_claim(struct store *s, const char *id, const char *owner, int lease_ms,
                            int *i, int *pending, struct aced_error *err);
enum aced_err pg_task_done(struct store *s, const char *id, int i, const char *owner,
                           long units, long computed, struct aced_error *err);
enum aced_err pg_task_release(struct store *s, const char *id, int i, const char *owner,
                              struct aced_error *err);
enum aced_err pg_task_sum(struct store *s, const char *id, long *units, long *computed,
                          int *done, int *total, struct aced_error *err);
enum aced_err pg_fit_claim(struct store *s, const char *key, const char *owner, int lease_ms,
                           int *mine, struct aced_error *err);
enum aced_err pg_fit_release(struct store *s, const char *key, const char *owner,
                             struct aced_error *err);
enum aced_err pg_task_find(struct store *s, const char *owner, struct store_job *job, int *found,
                           struct aced_error *err);

#endif
