/*
 * pg_ops.c -- the registry and regressor-cache operations of the
 * PostgreSQL backend (store.h); connections, schema, the listener and
 * opening are in pg.c, and its DESIGN comment says why things are so.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static enum aced_err pg_code(struct aced_error *err)
{
  return err != NULL && err->code != ACED_OK ? err->code : ACED_E_STORE;
}

/* One statement in the current transaction whose rows do not matter. */
static enum aced_err pg_step(struct pg_conn *c, enum pg_stmt_id id, int n,
                             const char *const *v, struct aced_error *err, const char *what)
{
  PGresult *r = pg_run(c, id, n, v, err, what);
  if (r == NULL)
    return pg_code(err);
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_model_put(struct store *s, struct store_model_row *row, const char *body,
                           int *created, struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  if (row == NULL || body == NULL || created == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "model_put: row, body and created are required");
  *created = 0;
  char name[sizeof row->name], digest[sizeof row->digest];
  snprintf(name, sizeof name, "%.*s", (int)(sizeof name - 1), row->name);
  snprintf(digest, sizeof digest, "%.*s", (int)(sizeof digest - 1), row->digest);
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  PGresult *r = NULL;
  enum aced_err e = pg_cmd(c, "BEGIN", err, "begin");
  const char *vn[] = {name};
  if (e == ACED_OK)
    e = pg_step(c, PG_MODEL_LOCK, 1, vn, err, "model lock");
  if (e != ACED_OK)
    goto out;
  const char *vf[] = {name, digest};
  if ((r = pg_run(c, PG_MODEL_FIND_DIGEST, 2, vf, err, "model lookup")) == NULL) {
    e = pg_code(err);
    goto out;
  }
  if (PQntuples(r) == 1) {
    row->version = atoi(PQgetvalue(r, 0, 0));
    snprintf(row->created_at, sizeof row->created_at, "%s", PQgetvalue(r, 0, 1));
    e = pg_cmd(c, "COMMIT", err, "commit");
    goto out;
  }
  PQclear(r);
  char now[sizeof row->created_at], nf[16], no[16], ns[16], np[24];
  pg_now(now, sizeof now);
  snprintf(nf, sizeof nf, "%d", row->n_features);
  snprintf(no, sizeof no, "%d", row->n_outputs);
  snprintf(ns, sizeof ns, "%d", row->n_samples);
  snprintf(np, sizeof np, "%ld", row->n_params);
  const char *vi[] = {name, digest, row->description, now, nf, no, ns, np, body,
                      row->source[0] ? row->source : NULL};
  if ((r = pg_run(c, PG_MODEL_INSERT, 10, vi, err, "model insert")) == NULL) {
    e = pg_code(err);
    goto out;
  }
  long next = PQntuples(r) == 1 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  if (next < 1 || next > 0x7fffffff) {
    e = aced_error_set(err, ACED_E_STORE, NULL, "model %s: no version number left", name);
    goto out;
  }
  e = pg_step(c, PG_NOTIFY, 1, vn, err, "notify");
  /* synchronous_commit is on: this returns once the row is on disk. */
  if (e == ACED_OK)
    e = pg_cmd(c, "COMMIT", err, "commit");
  if (e == ACED_OK) {
    row->version = (int)next;
    memcpy(row->created_at, now, sizeof now);
    *created = 1;
  }
out:
  PQclear(r);
  if (e != ACED_OK)
    pg_rollback(c);
  pg_conn_put(q, c);
  if (*created)
    store_latest_reset(&q->latest, -1);
  return e;
}

enum aced_err pg_model_get(struct store *s, const char *name, int version, int with_body,
                           struct store_model_row *row, struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  if (row == NULL || name == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL, "model_get: name and row are required");
  memset(row, 0, sizeof *row);
  if (version < 0)
    return aced_error_set(err, ACED_E_MODEL_NOT_FOUND, NULL, "model %s has no version %d",
                          name, version);
  unsigned long gen = 0;
  int cacheable = version == 0 && !with_body;
  if (cacheable && store_latest_get(&q->latest, name, row, &gen))
    return ACED_OK;
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  char vbuf[16];
  snprintf(vbuf, sizeof vbuf, "%d", version);
  const char *v[] = {name, vbuf, with_body ? "true" : "false"};
  enum aced_err e = ACED_OK;
  PGresult *r = pg_run(c, PG_MODEL_GET, 3, v, err, "model get");
  if (r == NULL)
    e = pg_code(err);
  else if (PQntuples(r) == 0)
    e = version == 0
            ? aced_error_set(err, ACED_E_MODEL_NOT_FOUND, NULL, "no model named %s", name)
            : aced_error_set(err, ACED_E_MODEL_NOT_FOUND, NULL, "model %s has no version %d",
                             name, version);
  else if (pg_row_decode(r, 0, row) != 0 ||
           (with_body && !PQgetisnull(r, 0, 10) &&
            (row->body = strdup(PQgetvalue(r, 0, 10))) == NULL))
    e = aced_error_set(err, ACED_E_STORE, NULL, "model get: out of memory");
  else if (with_body && row->body == NULL)
    e = aced_error_set(err, ACED_E_STORE, NULL, "model %s version %d has no stored body",
                       row->name, row->version);
  PQclear(r);
  pg_conn_put(q, c);
  if (e == ACED_OK && cacheable)
    store_latest_put(&q->latest, row, gen);
  if (e != ACED_OK)
    store_model_row_clear(row);
  return e;
}

/* model_list / model_versions: every row read, the connection given back,
 * then the callbacks (which may call into the store). */
static enum aced_err pg_rows_emit(struct pg_store *q, enum pg_stmt_id id, const char *name,
                                  int (*cb)(void *, const struct store_model_row *),
                                  void *cls, struct aced_error *err, const char *what)
{
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  const char *v[] = {name};
  PGresult *r = pg_run(c, id, name ? 1 : 0, name ? v : NULL, err, what);
  pg_conn_put(q, c);
  if (r == NULL)
    return pg_code(err);
  enum aced_err e = ACED_OK;
  int n = PQntuples(r);
  for (int i = 0; i < n && cb != NULL; i++) {
    struct store_model_row row;
    memset(&row, 0, sizeof row);
    if (pg_row_decode(r, i, &row) != 0) {
      e = aced_error_set(err, ACED_E_STORE, NULL, "%s: out of memory", what);
      break;
    }
    int stop = cb(cls, &row);
    store_model_row_clear(&row);
    if (stop)
      break;
  }
  PQclear(r);
  return e;
}

enum aced_err pg_model_list(struct store *s,
                            int (*cb)(void *cls, const struct store_model_row *row),
                            void *cls, struct aced_error *err)
{
  return pg_rows_emit(pg_of(s), PG_MODEL_LIST, NULL, cb, cls, err, "model list");
}

enum aced_err pg_model_versions(struct store *s, const char *name,
                                int (*cb)(void *cls, const struct store_model_row *row),
                                void *cls, struct aced_error *err)
{
  if (name == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL, "model_versions: name is required");
  return pg_rows_emit(pg_of(s), PG_MODEL_VERSIONS, name, cb, cls, err, "model versions");
}

enum aced_err pg_model_delete(struct store *s, const char *name, int *deleted,
                              struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  if (name == NULL || deleted == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "model_delete: name and deleted are required");
  *deleted = 0;
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  const char *v[] = {name};
  int n = 0;
  enum aced_err e = pg_cmd(c, "BEGIN", err, "begin");
  if (e == ACED_OK)
    e = pg_step(c, PG_MODEL_LOCK, 1, v, err, "model lock");
  /* Lock the rows first: a cache_put that already saw them commits
   * before the prune below reads the cache, so it leaves no orphan. */
  if (e == ACED_OK) {
    PGresult *r = PQexecParams(c->pg, "SELECT 1 FROM models WHERE name = $1 FOR UPDATE", 1,
                               NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      e = aced_error_set(err, pg_conn_lost(c) ? ACED_E_DB_UNAVAILABLE : ACED_E_STORE, NULL,
                         "postgresql: model delete: %s", PQresultErrorMessage(r));
    PQclear(r);
  }
  if (e == ACED_OK)
    e = pg_step(c, PG_CACHE_PRUNE, 1, v, err, "cache prune");
  if (e == ACED_OK) {
    PGresult *r = pg_run(c, PG_MODEL_DELETE, 1, v, err, "model delete");
    if (r == NULL)
      e = pg_code(err);
    else
      n = atoi(PQcmdTuples(r));
    PQclear(r);
  }
  if (e == ACED_OK && n > 0)
    e = pg_step(c, PG_NOTIFY, 1, v, err, "notify");
  if (e == ACED_OK)
    e = pg_cmd(c, "COMMIT", err, "commit");
  if (e == ACED_OK)
    *deleted = n;
  else
    pg_rollback(c);
  pg_conn_put(q, c);
  store_latest_reset(&q->latest, -1);
  return e;
}

static enum aced_err pg_count(struct pg_store *q, enum pg_stmt_id id, long *n,
                              struct aced_error *err, const char *what)
{
  if (n == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL, "%s: n is required", what);
  *n = 0;
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  PGresult *r = pg_run(c, id, 0, NULL, err, what);
  enum aced_err e = r == NULL ? pg_code(err) : ACED_OK;
  if (r != NULL && PQntuples(r) == 1)
    *n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  pg_conn_put(q, c);
  return e;
}

enum aced_err pg_model_count(struct store *s, long *n, struct aced_error *err)
{
  return pg_count(pg_of(s), PG_MODEL_COUNT, n, err, "model count");
}

enum aced_err pg_cache_count(struct store *s, long *n, struct aced_error *err)
{
  return pg_count(pg_of(s), PG_CACHE_COUNT, n, err, "cache count");
}

struct pg_key_text {
  char output[16], feature[16];
  const char *v[7];
};

static void pg_key(const struct store_cache_key *k, struct pg_key_text *t)
{
  snprintf(t->output, sizeof t->output, "%d", k->output);
  snprintf(t->feature, sizeof t->feature, "%d", k->feature);
  t->v[0] = k->digest ? k->digest : "";
  t->v[1] = t->output;
  t->v[2] = t->feature;
  t->v[3] = k->estimator ? k->estimator : "";
  t->v[4] = k->params ? k->params : "";
}

enum aced_err pg_cache_get(struct store *s, const struct store_cache_key *k, char **value,
                           struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  if (k == NULL || value == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL, "cache_get: key and value are required");
  *value = NULL;
  struct pg_key_text t;
  pg_key(k, &t);
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  PGresult *r = pg_run(c, PG_CACHE_GET, 5, t.v, err, "cache get");
  enum aced_err e = r == NULL ? pg_code(err) : ACED_OK;
  if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
      (*value = strdup(PQgetvalue(r, 0, 0))) == NULL)
    e = aced_error_set(err, ACED_E_STORE, NULL, "cache get: out of memory");
  PQclear(r);
  pg_conn_put(q, c);
  return e;
}

enum aced_err pg_cache_put(struct store *s, const struct store_cache_key *k,
                           const char *const *values, int n, struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  if (k == NULL || values == NULL || n < 0)
    return aced_error_set(err, ACED_E_INTERNAL, NULL, "cache_put: keys and values are required");
  for (int i = 0; i < n; i++)
    if (values[i] == NULL)
      return aced_error_set(err, ACED_E_INTERNAL, NULL, "cache_put: value %d missing", i);
  char now[32];
  pg_now(now, sizeof now);
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  /* Recomputable rows: no wait for the disk (a crash loses at most the
   * last few, never consistency). */
  enum aced_err e = pg_cmd(c, "BEGIN", err, "begin");
  if (e == ACED_OK)
    e = pg_cmd(c, "SET LOCAL synchronous_commit = off", err, "set");
  for (int i = 0; i < n && e == ACED_OK; i++) {
    struct pg_key_text t;
    pg_key(&k[i], &t);
    t.v[5] = values[i];
    t.v[6] = now;
    e = pg_step(c, PG_CACHE_PUT, 7, t.v, err, "cache put");
  }
  if (e == ACED_OK)
    e = pg_cmd(c, "COMMIT", err, "commit");
  else
    pg_rollback(c);
  pg_conn_put(q, c);
  return e;
}
