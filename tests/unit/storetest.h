/*
 * storetest.h -- what tests/unit/test_store.c (registry semantics, the
 * regressor cache, bad files, migration) and test_store_durability.c
 * (concurrency, crash durability, replicas, a database restart) share:
 * the backend under test, the helpers, and the loop that runs every check
 * against SQLite and then PostgreSQL.  Included by exactly one
 * translation unit per test program.
 */
#ifndef ACED_STORETEST_H
#define ACED_STORETEST_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "aced/store.h"
#include "pgtest.h"
#include "tap.h"

/* ---- the backend under test -------------------------------------------- */

static struct pgt pg_cluster;

/* Open the store `file` names in dir (SQLite) or the database of that
 * name (PostgreSQL, created on first use). */
static inline struct store *open_sqlite(const char *dir, const char *file, struct aced_error *err)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return store_sqlite_open(path, err);
}

static inline void pg_name(const char *file, char *db, size_t n)
{
  snprintf(db, n, "%s", file);
  char *dot = strchr(db, '.');
  if (dot != NULL)
    *dot = '\0';
  for (char *p = db; *p; p++)
    if (*p == '-')
      *p = '_';
}

static inline struct store *open_pg(const char *dir, const char *file, struct aced_error *err)
{
  char db[128], uri[512];
  (void)dir;
  pg_name(file, db, sizeof db);
  pgt_uri(&pg_cluster, db, uri, sizeof uri);
  return store_open(uri, err);
}

struct backend {
  const char *name;
  struct store *(*open)(const char *dir, const char *file, struct aced_error *err);
  int files; /* SQLite: a file to look at behind the store's back */
};
static const struct backend backend_sqlite = {"sqlite", open_sqlite, 1};
static const struct backend backend_pg = {"postgresql", open_pg, 0};
static const struct backend *B = &backend_sqlite;

/* ---- helpers ----------------------------------------------------------- */

/* One cache entry through the batch interface. */
static inline enum aced_err cache_put1(struct store *s, const struct store_cache_key *k,
                                const char *v, struct aced_error *err)
{
  return s->ops->cache_put(s, k, &v, 1, err);
}

static inline char *tmp_dir(void)
{
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/aced-test-store-XXXXXX",
           base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  if (d == NULL) {
    perror("mkdtemp");
    exit(99);
  }
  return strdup(d);
}

/* Remove the directory and the files in it (the db, -wal, -shm). */
static inline void rm_dir(char *dir)
{
  DIR *d = opendir(dir);
  if (d != NULL) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
  free(dir);
}

static inline void db_path(char *buf, size_t n, const char *dir, const char *file)
{
  snprintf(buf, n, "%s/%s", dir, file);
}

static inline enum aced_err put(struct store *s, const char *name, const char *digest,
                         const char *description, const char *body,
                         int *created, int *version, struct aced_error *err)
{
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "%s", name);
  snprintf(row.digest, sizeof row.digest, "%s", digest);
  row.description = (char *)description;
  row.n_features = 3;
  row.n_outputs = 2;
  row.n_samples = 10;
  row.n_params = 42;
  *version = -1;
  enum aced_err e = s->ops->model_put(s, &row, body, created, err);
  *version = row.version;
  return e;
}

/* Collect rows of model_list / model_versions. */
struct seen {
  int n;
  char names[16][ACED_NAME_MAX + 1];
  char digests[16][72];
  int versions[16];
  int body_null;     /* every row came without a body */
  int stop_after;    /* return non-zero after this many rows (0: never) */
};

static inline int seen_cb(void *cls, const struct store_model_row *row)
{
  struct seen *sn = cls;
  if (sn->n < 16) {
    snprintf(sn->names[sn->n], sizeof sn->names[0], "%s", row->name);
    snprintf(sn->digests[sn->n], sizeof sn->digests[0], "%s", row->digest);
    sn->versions[sn->n] = row->version;
  }
  if (row->body != NULL)
    sn->body_null = 0;
  sn->n++;
  return sn->stop_after && sn->n >= sn->stop_after;
}

static inline void key(struct store_cache_key *k, const char *digest, int output,
                int feature, const char *params)
{
  k->digest = digest;
  k->output = output;
  k->feature = feature;
  k->estimator = "linear";
  k->params = params;
}

static inline int cache_has(struct store *s, const char *digest, int output,
                     int feature, const char *params)
{
  struct store_cache_key k;
  char *v = NULL;
  key(&k, digest, output, feature, params);
  if (s->ops->cache_get(s, &k, &v, NULL) != ACED_OK)
    return -1;
  int has = v != NULL;
  free(v);
  return has;
}

static inline int rfc3339_utc(const char *z)
{
  /* 2026-11-22T10:00:00Z */
  const char *pat = "dddd-dd-ddTdd:dd:ddZ";
  if (strlen(z) != strlen(pat))
    return 0;
  for (size_t i = 0; pat[i]; i++) {
    if (pat[i] == 'd' ? (z[i] < '0' || z[i] > '9') : z[i] != pat[i])
      return 0;
  }
  return 1;
}

/* ---- main: every check against SQLite, then PostgreSQL ------------------ */

/* Run run_all in a fresh directory with SQLite, then (when a PostgreSQL
 * cluster can be started) again with PostgreSQL; a TAP SKIP naming the
 * reason when PostgreSQL is not installed. */
static inline int run_backends(void (*run_all)(const char *dir))
{
  char *dir = tmp_dir();
  tap_diag("backend sqlite");
  B = &backend_sqlite;
  run_all(dir);
  rm_dir(dir);
  const char *why = "";
  int rc = pgt_start(&pg_cluster, &why);
  if (rc == 0) {
    tap_diag("backend postgresql (port %d)", pg_cluster.port);
    B = &backend_pg;
    dir = tmp_dir();
    run_all(dir);
    rm_dir(dir);
    pgt_stop(&pg_cluster);
  } else if (rc == 77) {
    printf("ok %d # SKIP postgresql backend: %s\n", ++tap_n, why);
  } else {
    tap_ok(0, "start a PostgreSQL cluster: %s", why);
    pgt_stop(&pg_cluster);
  }
  return tap_done();
}

#endif
