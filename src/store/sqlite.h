/*
 * store/sqlite.h -- what the two files of the SQLite backend share
 * (sqlite.c: schema, statements, connections, opening; sqlite_ops.c: the
 * registry and cache operations).  Nothing outside src/store/ includes it.
 */
#ifndef ACED_STORE_SQLITE_H
#define ACED_STORE_SQLITE_H

#include <pthread.h>
#include <stddef.h>

#include <sqlite3.h>

#include "aced/limits.h"
#include "aced/store.h"
#include "store/latest.h"

enum sq_stmt_id {
  SQ_BEGIN,
  SQ_COMMIT,
  SQ_ROLLBACK,
  SQ_MODEL_FIND_DIGEST,
  SQ_MODEL_NEXT_VERSION,
  SQ_MODEL_INSERT,
  SQ_MODEL_GET,
  SQ_MODEL_LIST,
  SQ_MODEL_VERSIONS,
  SQ_CACHE_PRUNE,
  SQ_MODEL_DELETE,
  SQ_MODEL_COUNT,
  SQ_CACHE_GET,
  SQ_CACHE_PUT,
  SQ_CACHE_COUNT,
  SQ_PING,
  SQ_STMT__COUNT
};

struct sq_conn {
  sqlite3 *db;
  sqlite3_stmt *stmt[SQ_STMT__COUNT]; /* prepared on first use */
};

struct sq_store {
  struct store base;                /* first: a struct store * is ours */
  pthread_mutex_t write_lock;       /* guards `writer` */
  struct sq_conn writer;
  pthread_mutex_t pool_lock;        /* guards a_free/n_free */
  pthread_cond_t pool_cond;         /* signalled when a reader is returned */
  int n_readers;                    /* 0 for ":memory:" */
  struct sq_conn readers[ACED_DB_READERS];
  int a_free[ACED_DB_READERS];           /* indices of idle readers */
  int n_free;
  /* Latest-version rows by name (no body), so that the lookup every query
   * starts with needs no SQLite read transaction (each costs several
   * system calls: locks and stat of the WAL index).  Every write through
   * this store empties it (latest.h).  This assumes, as aced does, one
   * process writing the database file. */
  struct store_latest latest;
};

static inline struct sq_store *sq_of(struct store *s)
{
  return (struct sq_store *)s;
}

enum aced_err sq_fail(struct sq_conn *c, struct aced_error *err,
                      const char *what);
enum aced_err sq_oom(struct aced_error *err, const char *what);
void sq_done(sqlite3_stmt *st);
enum aced_err sq_exec(struct sq_conn *c, enum sq_stmt_id id,
                      struct aced_error *err, const char *what);
void sq_rollback(struct sq_conn *c);
int sq_bind_text(sqlite3_stmt *st, int i, const char *z);
void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t n);
int sq_col_dup(sqlite3_stmt *st, int i, char **out);
int sq_col_int(sqlite3_stmt *st, int i);
int sq_row_decode(sqlite3_stmt *st, struct store_model_row *row);
void sq_now(char *buf, size_t n);
struct sq_conn *sq_writer_get(struct sq_store *q);
void sq_writer_put(struct sq_store *q);
struct sq_conn *sq_reader_get(struct sq_store *q);
void sq_reader_put(struct sq_store *q, struct sq_conn *c);
void sq_conn_close(struct sq_conn *c);
int sq_pragma(sqlite3 *db, const char *sql);
enum aced_err sq_conn_open(struct sq_conn *c, const char *path,
                           int reader, struct aced_error *err);
enum aced_err sq_wal(struct sq_conn *c, const char *path, int memory,
                     struct aced_error *err);
int sq_user_version(sqlite3 *db, int *v);
enum aced_err sq_migrate(struct sq_conn *c, const char *path,
                         struct aced_error *err);
void sq_sync_dir(const char *path);
void sq_close(struct store *s);
enum aced_err sq_ping(struct store *s, struct aced_error *err);
enum aced_err sq_model_put(struct store *s, struct store_model_row *row,
                           const char *body, int *created,
                           struct aced_error *err);
enum aced_err sq_model_get(struct store *s, const char *name, int version,
                           int with_body, struct store_model_row *row,
                           struct aced_error *err);
enum aced_err sq_model_list(struct store *s,
                            int (*cb)(void *cls, const struct store_model_row *row),
                            void *cls, struct aced_error *err);
enum aced_err sq_model_versions(struct store *s, const char *name,
                                int (*cb)(void *cls, const struct store_model_row *row),
                                void *cls, struct aced_error *err);
enum aced_err sq_model_delete(struct store *s, const char *name,
                              int *deleted, struct aced_error *err);
enum aced_err sq_model_count(struct store *s, long *n,
                             struct aced_error *err);
enum aced_err sq_cache_count(struct store *s, long *n,
                             struct aced_error *err);
enum aced_err sq_cache_get(struct store *s, const struct store_cache_key *k,
                           char **value, struct aced_error *err);
enum aced_err sq_cache_put(struct store *s, const struct store_cache_key *k,
                           const char *const *values, int n,
                           struct aced_error *err);

sqlite3_stmt *sq_stmt(struct sq_conn *c, enum sq_stmt_id id, struct aced_error *err);

#endif
