/*
 * test_store.c -- the store: registry semantics, the regressor cache,
 * persistence, bad files, concurrency and crash durability, run against
 * both backends: SQLite (a real file in a fresh mkdtemp directory, since
 * WAL, the reader pool and durability only exist for files) and
 * PostgreSQL (a cluster started for the test by tests/pgcluster.sh; a
 * TAP SKIP naming the package when it is not installed).  Checks of
 * SQLite's file format (WAL, user_version, damaged rows written behind
 * its back, files that are not databases) run for SQLite only; several
 * stores on one database (replicas) and a database restart for
 * PostgreSQL only.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

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
static struct store *open_sqlite(const char *dir, const char *file, struct aced_error *err)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return store_sqlite_open(path, err);
}

static void pg_name(const char *file, char *db, size_t n)
{
  snprintf(db, n, "%s", file);
  char *dot = strchr(db, '.');
  if (dot != NULL)
    *dot = '\0';
  for (char *p = db; *p; p++)
    if (*p == '-')
      *p = '_';
}

static struct store *open_pg(const char *dir, const char *file, struct aced_error *err)
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
static enum aced_err cache_put1(struct store *s, const struct store_cache_key *k,
                                const char *v, struct aced_error *err)
{
  return s->ops->cache_put(s, k, &v, 1, err);
}

static char *tmp_dir(void)
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
static void rm_dir(char *dir)
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

static void db_path(char *buf, size_t n, const char *dir, const char *file)
{
  snprintf(buf, n, "%s/%s", dir, file);
}

static enum aced_err put(struct store *s, const char *name, const char *digest,
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

static int seen_cb(void *cls, const struct store_model_row *row)
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

static void key(struct store_cache_key *k, const char *digest, int output,
                int feature, const char *params)
{
  k->digest = digest;
  k->output = output;
  k->feature = feature;
  k->estimator = "linear";
  k->params = params;
}

static int cache_has(struct store *s, const char *digest, int output,
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

static int rfc3339_utc(const char *z)
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

/* ---- the latest-row cache follows every write ------------------------- */

static void test_latest_cache(const char *dir)
{
  const char *file = "latest.db";
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "open a database for the latest-row cache"))
    return;
  int created, v;
  struct store_model_row row;
  put(s, "m", "sha256:one", "first", "{}", &created, &v, &err);
  /* twice: the second read is served from memory */
  s->ops->model_get(s, "m", 0, 0, &row, &err);
  store_model_row_clear(&row);
  enum aced_err e = s->ops->model_get(s, "m", 0, 0, &row, &err);
  tap_ok(e == ACED_OK && row.version == 1 && strcmp(row.digest, "sha256:one") == 0 &&
             row.description && strcmp(row.description, "first") == 0,
         "latest row read twice: version 1 with its description");
  store_model_row_clear(&row);
  put(s, "m", "sha256:two", "second", "{}", &created, &v, &err);
  e = s->ops->model_get(s, "m", 0, 0, &row, &err);
  tap_ok(e == ACED_OK && row.version == 2 && strcmp(row.digest, "sha256:two") == 0,
         "after a new version the latest row is version 2, not the remembered 1");
  store_model_row_clear(&row);
  int deleted = 0;
  s->ops->model_delete(s, "m", &deleted, &err);
  e = s->ops->model_get(s, "m", 0, 0, &row, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "after DELETE the remembered row is gone (%d)", (int)e);
  store_model_row_clear(&row);
  s->ops->close(s);
}

/* ---- registry ---------------------------------------------------------- */

static const char *DESC = "it's a \"test\"'); DROP TABLE models; --";
static const char *BODY_A = "{\"network\":{\"layers\":[]},\"x\":'quoted'}";
static const char *BODY_B = "{\"network\":{\"layers\":[1]}}";

static void test_registry(const char *dir)
{
  const char *file = "registry.db";
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "open a new database file")) {
    tap_diag("%s", err.message);
    exit(1);
  }
  tap_ok(s->ops->ping(s, &err) == ACED_OK, "ping a fresh database");
  long n = -1;
  enum aced_err e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 0,
         "fresh database has no models (%ld)", n);

  /* Round trip of every field. */
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "alpha");
  snprintf(row.digest, sizeof row.digest, "sha256:%064d", 1);
  row.description = (char *)DESC;
  row.n_features = 7;
  row.n_outputs = 3;
  row.n_samples = 1000;
  row.n_params = 5000000000L;  /* does not fit an int */
  int created = -1;
  e = s->ops->model_put(s, &row, BODY_A, &created, &err);
  tap_ok(e == ACED_OK && created == 1 && row.version == 1,
         "first put creates version 1 (e=%d created=%d v=%d)", e, created,
         row.version);
  tap_ok(rfc3339_utc(row.created_at), "created_at is RFC 3339 UTC (%s)",
         row.created_at);
  char created_a[32];
  snprintf(created_a, sizeof created_a, "%s", row.created_at);

  struct store_model_row got;
  e = s->ops->model_get(s, "alpha", 1, 1, &got, &err);
  tap_ok(e == ACED_OK, "get alpha v1");
  tap_ok(strcmp(got.name, "alpha") == 0, "name round trip");
  tap_ok(got.version == 1, "version round trip");
  tap_ok(strcmp(got.digest, row.digest) == 0, "digest round trip");
  tap_ok(got.description && strcmp(got.description, DESC) == 0,
         "description with SQL metacharacters round trip");
  tap_ok(strcmp(got.created_at, created_a) == 0, "created_at round trip");
  tap_ok(got.n_features == 7 && got.n_outputs == 3 && got.n_samples == 1000,
         "n_features/n_outputs/n_samples round trip");
  tap_ok(got.n_params == 5000000000L, "n_params round trip (%ld)", got.n_params);
  tap_ok(got.body && strcmp(got.body, BODY_A) == 0, "body round trip");
  tap_ok(got.source[0] == '\0', "a row put without a source has none");
  store_model_row_clear(&got);
  tap_ok(got.body == NULL && got.description == NULL,
         "store_model_row_clear frees and clears");

  /* The origin of an imported model (ONNX) is kept beside the body, on
   * every backend, and read back with and without the body. */
  struct store_model_row src;
  memset(&src, 0, sizeof src);
  snprintf(src.name, sizeof src.name, "imported");
  snprintf(src.digest, sizeof src.digest, "sha256:%064d", 9);
  snprintf(src.source, sizeof src.source, "{\"opset\":13,\"producer\":\"pytorch 1.13.0\"}");
  e = s->ops->model_put(s, &src, BODY_A, &created, &err);
  struct store_model_row gs;
  enum aced_err e2 = s->ops->model_get(s, "imported", 0, 1, &gs, &err);
  tap_ok(e == ACED_OK && e2 == ACED_OK && strcmp(gs.source, src.source) == 0 && gs.body &&
             strcmp(gs.body, BODY_A) == 0,
         "a source round trip, with the body (%s)", gs.source);
  store_model_row_clear(&gs);
  e2 = s->ops->model_get(s, "imported", 0, 0, &gs, &err);
  tap_ok(e2 == ACED_OK && strcmp(gs.source, src.source) == 0, "and without it");
  store_model_row_clear(&gs);
  int del = 0;
  tap_ok(s->ops->model_delete(s, "imported", &del, &err) == ACED_OK && del == 1,
         "the imported row is deleted again");

  e = s->ops->model_get(s, "alpha", 1, 0, &got, &err);
  tap_ok(e == ACED_OK && got.body == NULL && got.n_params == 5000000000L,
         "get without body leaves body NULL");
  store_model_row_clear(&got);

  /* Same digest again: nothing new. */
  int v = 0;
  sleep(1);  /* so that a wrongly refreshed created_at would show */
  e = put(s, "alpha", row.digest, "other", BODY_A, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 0 && v == 1,
         "same digest again: created=0, version 1 (created=%d v=%d)", created, v);
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "alpha");
  snprintf(row.digest, sizeof row.digest, "sha256:%064d", 1);
  s->ops->model_put(s, &row, BODY_A, &created, &err);
  tap_ok(strcmp(row.created_at, created_a) == 0,
         "same digest again returns the original created_at");

  /* A new digest: version 2. */
  char dig_b[72];
  snprintf(dig_b, sizeof dig_b, "sha256:%064d", 2);
  e = put(s, "alpha", dig_b, NULL, BODY_B, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 1 && v == 2,
         "different digest: created=1, version 2 (v=%d)", v);
  e = put(s, "alpha", row.digest, NULL, BODY_A, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 0 && v == 1,
         "the first digest again still answers version 1 (v=%d)", v);

  e = s->ops->model_get(s, "alpha", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && got.version == 2 && strcmp(got.digest, dig_b) == 0 &&
             got.body && strcmp(got.body, BODY_B) == 0 && got.description == NULL,
         "version 0 is the latest (v=%d)", got.version);
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "alpha", 1, 0, &got, &err);
  tap_ok(e == ACED_OK && got.version == 1 && strcmp(got.digest, row.digest) == 0,
         "version 1 is still there");
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "alpha", 3, 0, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND && err.code == ACED_E_MODEL_NOT_FOUND,
         "missing version: model_not_found (%s)", err.message);
  e = s->ops->model_get(s, "nosuch", 0, 1, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "missing name: model_not_found (%s)",
         err.message);

  /* More names, one of them with a quote. */
  tap_ok(put(s, "zeta", "sha256:z", NULL, "{}", &created, &v, &err) == ACED_OK &&
             v == 1, "put zeta");
  tap_ok(put(s, "beta", "sha256:b", NULL, "{}", &created, &v, &err) == ACED_OK &&
             v == 1, "put beta");
  tap_ok(put(s, "o'brien", "sha256:o", "x'); --", "{}", &created, &v, &err) ==
             ACED_OK && v == 1, "put a name with a quote");
  e = s->ops->model_get(s, "o'brien", 0, 0, &got, &err);
  tap_ok(e == ACED_OK && strcmp(got.name, "o'brien") == 0 &&
             strcmp(got.description, "x'); --") == 0,
         "get a name with a quote");
  store_model_row_clear(&got);

  struct seen sn = {.body_null = 1};
  e = s->ops->model_list(s, seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 4, "list has 4 models (%d)", sn.n);
  tap_ok(sn.n == 4 && strcmp(sn.names[0], "alpha") == 0 &&
             strcmp(sn.names[1], "beta") == 0 &&
             strcmp(sn.names[2], "o'brien") == 0 &&
             strcmp(sn.names[3], "zeta") == 0,
         "list is ordered by name");
  tap_ok(sn.versions[0] == 2 && strcmp(sn.digests[0], dig_b) == 0,
         "list shows the latest version of alpha (v=%d)", sn.versions[0]);
  tap_ok(sn.body_null, "list rows carry no body");
  memset(&sn, 0, sizeof sn);
  sn.stop_after = 2;
  e = s->ops->model_list(s, seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 2, "list stops when the callback says so (%d)",
         sn.n);

  memset(&sn, 0, sizeof sn);
  sn.body_null = 1;
  e = s->ops->model_versions(s, "alpha", seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 2 && sn.versions[0] == 1 &&
             sn.versions[1] == 2 && strcmp(sn.digests[1], dig_b) == 0 &&
             sn.body_null,
         "versions of alpha: 1 then 2");
  memset(&sn, 0, sizeof sn);
  e = s->ops->model_versions(s, "nosuch", seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 0, "versions of an unknown name: none");

  n = -1;
  e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 4,
         "model_count counts names, not versions (%ld)", n);

  /* Cache. */
  struct store_cache_key k;
  key(&k, dig_b, 0, 1, "num=100;max_order=20");
  char *val = (char *)"sentinel";
  e = s->ops->cache_get(s, &k, &val, &err);
  tap_ok(e == ACED_OK && val == NULL, "cache miss: ACED_OK and NULL");
  tap_ok(cache_put1(s, &k, "{\"curve\":[1,2]}", &err) == ACED_OK,
         "cache put");
  e = s->ops->cache_get(s, &k, &val, &err);
  tap_ok(e == ACED_OK && val && strcmp(val, "{\"curve\":[1,2]}") == 0,
         "cache get returns what was put");
  free(val);
  struct store_cache_key k2 = k;
  k2.params = "num=100;max_order=21";
  e = s->ops->cache_get(s, &k2, &val, &err);
  tap_ok(e == ACED_OK && val == NULL, "cache: other params miss");
  free(val);
  k2 = k;
  k2.feature = 2;
  e = s->ops->cache_get(s, &k2, &val, &err);
  tap_ok(e == ACED_OK && val == NULL, "cache: other feature misses");
  free(val);
  tap_ok(cache_put1(s, &k, "{\"curve\":[3]}", &err) == ACED_OK,
         "cache put again replaces");
  e = s->ops->cache_get(s, &k, &val, &err);
  tap_ok(e == ACED_OK && val && strcmp(val, "{\"curve\":[3]}") == 0,
         "cache get returns the replacement");
  free(val);
  n = -1;
  e = s->ops->cache_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 1,
         "cache_count is 1 after a replace (%ld)", n);
  /* A batch: three outputs of one feature in one call. */
  {
    struct store_cache_key kb[3];
    const char *vb[3] = {"[b0]", "[b1]", "[b2]"};
    for (int i = 0; i < 3; i++)
      key(&kb[i], dig_b, i, 7, "num=50");
    tap_ok(s->ops->cache_put(s, kb, vb, 3, &err) == ACED_OK &&
               cache_has(s, dig_b, 0, 7, "num=50") == 1 &&
               cache_has(s, dig_b, 1, 7, "num=50") == 1 &&
               cache_has(s, dig_b, 2, 7, "num=50") == 1,
           "cache_put stores a batch of entries");
    n = -1;
    s->ops->cache_count(s, &n, &err);
    tap_ok(n == 4, "cache_count counts the batch (%ld)", n);
  }
  /* A digest no model has (its model was deleted while a worker fitted):
   * the put is accepted and stores nothing. */
  key(&k2, "sha256:nobody", 0, 0, "num=100");
  tap_ok(cache_put1(s, &k2, "[orphan]", &err) == ACED_OK &&
             cache_has(s, "sha256:nobody", 0, 0, "num=100") == 0,
         "cache_put for a digest no model has stores nothing");

  /* Delete and the cache: shared1 (digests s, only1) and shared2 (s). */
  put(s, "shared1", "sha256:s", NULL, "{}", &created, &v, &err);
  put(s, "shared1", "sha256:only1", NULL, "{}", &created, &v, &err);
  put(s, "shared2", "sha256:s", NULL, "{}", &created, &v, &err);
  key(&k, "sha256:s", 0, 0, "num=100");
  cache_put1(s, &k, "[s]", &err);
  key(&k, "sha256:only1", 0, 0, "num=100");
  cache_put1(s, &k, "[only1]", &err);
  key(&k, "sha256:only1", 1, 0, "num=100");
  cache_put1(s, &k, "[only1b]", &err);
  tap_ok(cache_has(s, "sha256:s", 0, 0, "num=100") == 1 &&
             cache_has(s, "sha256:only1", 0, 0, "num=100") == 1 &&
             cache_has(s, "sha256:only1", 1, 0, "num=100") == 1,
         "cache rows for shared and own digests are there");
  int deleted = -1;
  e = s->ops->model_delete(s, "shared1", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 2, "delete shared1: 2 versions (%d)", deleted);
  tap_ok(cache_has(s, "sha256:only1", 0, 0, "num=100") == 0 &&
             cache_has(s, "sha256:only1", 1, 0, "num=100") == 0,
         "delete removes the cache rows of its own digest");
  tap_ok(cache_has(s, "sha256:s", 0, 0, "num=100") == 1,
         "delete keeps cache rows of a digest shared2 still uses");
  tap_ok(cache_has(s, dig_b, 0, 1, "num=100;max_order=20") == 1,
         "delete keeps other models' cache rows");
  e = s->ops->model_get(s, "shared2", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && strcmp(got.digest, "sha256:s") == 0,
         "the other name with the same digest is untouched");
  store_model_row_clear(&got);
  e = s->ops->model_delete(s, "shared2", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 1 &&
             cache_has(s, "sha256:s", 0, 0, "num=100") == 0,
         "deleting the last user of a digest removes its cache rows");

  deleted = -1;
  e = s->ops->model_delete(s, "nosuch", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 0, "delete of an unknown name: OK, 0 (%d)",
         deleted);

  e = s->ops->model_delete(s, "alpha", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 2, "delete alpha: 2 versions (%d)", deleted);
  e = s->ops->model_get(s, "alpha", 0, 0, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "alpha is gone");
  e = s->ops->model_get(s, "alpha", 1, 0, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "alpha v1 is gone too");
  memset(&sn, 0, sizeof sn);
  s->ops->model_versions(s, "alpha", seen_cb, &sn, &err);
  tap_ok(sn.n == 0, "no versions of alpha remain");
  tap_ok(cache_has(s, dig_b, 0, 1, "num=100;max_order=20") == 0,
         "alpha's cache rows are gone");
  n = -1;
  e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 3,
         "model_count after deletes (%ld)", n);
  e = put(s, "alpha", dig_b, NULL, BODY_B, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 1 && v == 1,
         "a deleted name starts again at version 1 (v=%d)", v);

  s->ops->close(s);

  /* Persistence: everything is there after close and reopen. */
  s = B->open(dir, file, &err);
  tap_ok(s != NULL, "reopen");
  if (s == NULL)
    return;
  e = s->ops->model_get(s, "o'brien", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && strcmp(got.digest, "sha256:o") == 0 &&
             strcmp(got.body, "{}") == 0,
         "model persists across close/reopen");
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "alpha", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && got.version == 1 && strcmp(got.body, BODY_B) == 0,
         "re-registered model persists");
  store_model_row_clear(&got);
  n = -1;
  e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 4,
         "model_count after reopen (%ld)", n);
  e = put(s, "zeta", "sha256:z2", NULL, "{}", &created, &v, &err);
  tap_ok(e == ACED_OK && v == 2, "versions continue after reopen (v=%d)", v);
  s->ops->close(s);

  if (!B->files)
    return;
  /* The file has the schema version and the WAL mode we promise. */
  char path[1024];
  db_path(path, sizeof path, dir, file);
  sqlite3 *db = NULL;
  int uv = -1;
  char *mode = NULL;
  if (sqlite3_open(path, &db) == SQLITE_OK) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      uv = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      mode = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  tap_ok(uv == 2, "user_version is 2 (%d)", uv);
  tap_ok(mode && strcmp(mode, "wal") == 0, "journal mode is WAL (%s)",
         mode ? mode : "?");
  free(mode);

  /* Damaged rows decode without crashing: NULLs and wrong types. */
  int rc = sqlite3_exec(
      db,
      "INSERT INTO models(name, version, digest, description, created_at,"
      " n_features, n_outputs, n_samples, n_params, body)"
      " VALUES ('damaged', 1, 'sha256:d', NULL, '', NULL, 'abc', -5, NULL, '{}');"
      "INSERT INTO models(name, version, digest, created_at, body)"
      " VALUES ('damaged', 2, x'00ff', 'not a date', '');",
      NULL, NULL, NULL);
  tap_ok(rc == SQLITE_OK, "insert damaged rows behind the store's back");
  sqlite3_close(db);
  s = B->open(dir, file, &err);
  if (s == NULL) {
    tap_ok(0, "reopen after damage: %s", err.message);
    return;
  }
  e = s->ops->model_get(s, "damaged", 1, 1, &got, &err);
  tap_ok(e == ACED_OK && got.description == NULL && got.n_features == 0 &&
             got.n_outputs == 0 && got.n_samples == 0 && got.n_params == 0,
         "NULL, text and negative numbers decode as 0 / NULL");
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "damaged", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && got.version == 2 && got.body != NULL,
         "a blob digest decodes without crashing");
  store_model_row_clear(&got);
  memset(&sn, 0, sizeof sn);
  e = s->ops->model_list(s, seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 5,
         "list with damaged rows (%d)", sn.n);
  s->ops->close(s);
}

/* ---- files that are not usable ----------------------------------------- */

static void test_bad_files(const char *dir)
{
  char path[1024];
  struct aced_error err = {0};

  db_path(path, sizeof path, dir, "notadb.db");
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 200; i++)
    fputs("this is not an SQLite database, just some text\n", f);
  fclose(f);
  struct store *s = store_sqlite_open(path, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE && err.message[0] != '\0',
         "a text file is refused: %s", err.message);
  tap_ok(strstr(err.message, "not a database") != NULL,
         "the message says why");
  if (s)
    s->ops->close(s);

  memset(&err, 0, sizeof err);
  db_path(path, sizeof path, dir, "no/such/dir/x.db");
  s = store_sqlite_open(path, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE && strstr(err.message, path),
         "a path in a missing directory is refused: %s", err.message);
  if (s)
    s->ops->close(s);

  memset(&err, 0, sizeof err);
  s = store_sqlite_open(dir, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE,
         "a directory is refused: %s", err.message);
  if (s)
    s->ops->close(s);

  /* A database from a newer aced. */
  db_path(path, sizeof path, dir, "future.db");
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
  sqlite3_close(db);
  memset(&err, 0, sizeof err);
  s = store_sqlite_open(path, &err);
  tap_ok(s == NULL && strstr(err.message, "99") != NULL,
         "a newer schema version is refused: %s", err.message);
  if (s)
    s->ops->close(s);

  memset(&err, 0, sizeof err);
  s = store_sqlite_open(NULL, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE, "a NULL path is refused");

  /* :memory: works without a reader pool. */
  s = store_sqlite_open(":memory:", &err);
  tap_ok(s != NULL, "open :memory:");
  if (s) {
    int created, v;
    struct store_model_row got;
    put(s, "m", "sha256:m", NULL, "{}", &created, &v, &err);
    tap_ok(s->ops->model_get(s, "m", 0, 1, &got, &err) == ACED_OK &&
               strcmp(got.body, "{}") == 0,
           ":memory: put/get");
    store_model_row_clear(&got);
    s->ops->close(s);
  }
}

/* ---- concurrency ------------------------------------------------------- */

#define CONC_THREADS 4
#define CONC_ITERS 40
#define CONC_COMMON 10

struct conc_arg {
  struct store *s;
  int id;
  int errors;
  char last_error[ACED_MESSAGE_MAX];
  int own_version[CONC_ITERS];        /* version of digest t<id>-<i> */
  int common_version[CONC_COMMON];    /* version of digest c<k> (0: unset) */
  int common_mismatch;
};

static void conc_fail(struct conc_arg *a, const struct aced_error *err)
{
  a->errors++;
  snprintf(a->last_error, sizeof a->last_error, "%s", err->message);
}

static void *conc_thread(void *p)
{
  struct conc_arg *a = p;
  struct store *s = a->s;
  struct aced_error err;
  char digest[72], body[64], val[64];
  for (int i = 0; i < CONC_ITERS; i++) {
    int created, v;
    snprintf(digest, sizeof digest, "sha256:t%d-%d", a->id, i);
    snprintf(body, sizeof body, "{\"t\":%d,\"i\":%d}", a->id, i);
    if (put(s, "conc", digest, NULL, body, &created, &v, &err) != ACED_OK ||
        !created)
      conc_fail(a, &err);
    a->own_version[i] = v;

    /* Everybody registers the same few digests under "common". */
    int c = (i + a->id) % CONC_COMMON;
    snprintf(digest, sizeof digest, "sha256:c%d", c);
    if (put(s, "common", digest, NULL, "{}", &created, &v, &err) != ACED_OK)
      conc_fail(a, &err);
    if (a->common_version[c] && a->common_version[c] != v)
      a->common_mismatch++;
    a->common_version[c] = v;

    struct store_model_row row;
    if (s->ops->model_get(s, "conc", 0, 1, &row, &err) != ACED_OK)
      conc_fail(a, &err);
    store_model_row_clear(&row);

    struct store_cache_key k;
    snprintf(digest, sizeof digest, "sha256:t%d-%d", a->id, i);
    key(&k, digest, i, a->id, "num=100");
    snprintf(val, sizeof val, "[%d,%d]", a->id, i);
    if (cache_put1(s, &k, val, &err) != ACED_OK)
      conc_fail(a, &err);
    char *got = NULL;
    if (s->ops->cache_get(s, &k, &got, &err) != ACED_OK || got == NULL ||
        strcmp(got, val) != 0) {
      a->errors++;
      snprintf(a->last_error, sizeof a->last_error, "cache read back %s",
               got ? got : "(miss)");
    }
    free(got);

    long n;
    struct seen sn = {0};
    if (s->ops->model_count(s, &n, &err) != ACED_OK ||
        s->ops->model_list(s, seen_cb, &sn, &err) != ACED_OK ||
        s->ops->ping(s, &err) != ACED_OK)
      conc_fail(a, &err);
  }
  return NULL;
}

struct version_map {
  int n;
  int versions[CONC_THREADS * CONC_ITERS + 8];
  char digests[CONC_THREADS * CONC_ITERS + 8][72];
};

static int vm_cb(void *cls, const struct store_model_row *row)
{
  struct version_map *m = cls;
  if (m->n < (int)(sizeof m->versions / sizeof m->versions[0])) {
    m->versions[m->n] = row->version;
    snprintf(m->digests[m->n], sizeof m->digests[0], "%s", row->digest);
  }
  m->n++;
  return 0;
}

static void test_concurrency(const char *dir)
{
  const char *file = "conc.db";
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "open for concurrency"))
    return;
  static struct conc_arg args[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  for (int t = 0; t < CONC_THREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].s = s;
    args[t].id = t;
    pthread_create(&th[t], NULL, conc_thread, &args[t]);
  }
  int errors = 0, mismatch = 0;
  for (int t = 0; t < CONC_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += args[t].errors;
    mismatch += args[t].common_mismatch;
    if (args[t].errors)
      tap_diag("thread %d: %d errors, last: %s", t, args[t].errors,
               args[t].last_error);
  }
  tap_ok(errors == 0, "%d threads x %d rounds: no errors (%d)", CONC_THREADS,
         CONC_ITERS, errors);

  /* Each distinct digest of "conc" got its own version, 1..N without gaps,
   * and the store agrees with what put answered. */
  enum { N = CONC_THREADS * CONC_ITERS };
  static int seen_v[N + 1];
  memset(seen_v, 0, sizeof seen_v);
  int bad = 0;
  for (int t = 0; t < CONC_THREADS; t++)
    for (int i = 0; i < CONC_ITERS; i++) {
      int v = args[t].own_version[i];
      if (v < 1 || v > N || seen_v[v]++)
        bad++;
    }
  tap_ok(bad == 0, "every distinct digest got a distinct version in 1..%d (%d bad)",
         N, bad);
  static struct version_map m;
  memset(&m, 0, sizeof m);
  s->ops->model_versions(s, "conc", vm_cb, &m, &err);
  int agree = m.n == N;
  for (int j = 0; agree && j < m.n; j++) {
    int t, i;
    if (m.versions[j] != j + 1 ||
        sscanf(m.digests[j], "sha256:t%d-%d", &t, &i) != 2 || t < 0 ||
        t >= CONC_THREADS || i < 0 || i >= CONC_ITERS ||
        args[t].own_version[i] != m.versions[j])
      agree = 0;
  }
  tap_ok(agree, "stored versions of conc match what put answered (%d rows)", m.n);

  memset(&m, 0, sizeof m);
  s->ops->model_versions(s, "common", vm_cb, &m, &err);
  tap_ok(m.n == CONC_COMMON, "racing puts of %d shared digests made %d versions",
         CONC_COMMON, m.n);
  int digests_ok = m.n == CONC_COMMON;
  for (int j = 0; digests_ok && j < m.n; j++)
    for (int j2 = j + 1; j2 < m.n; j2++)
      if (strcmp(m.digests[j], m.digests[j2]) == 0)
        digests_ok = 0;
  tap_ok(digests_ok, "no digest is stored twice under one name");
  int threads_agree = mismatch == 0;
  for (int c = 0; c < CONC_COMMON; c++)
    for (int t = 1; t < CONC_THREADS; t++)
      if (args[t].common_version[c] != args[0].common_version[c])
        threads_agree = 0;
  tap_ok(threads_agree, "all threads were told the same version per digest");
  long n = -1;
  enum aced_err e = s->ops->cache_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == N,
         "cache holds one row per put (%ld)", n);
  s->ops->close(s);
}

/* ---- crash durability -------------------------------------------------- */

/* Child: register models "crash" with digests k<i> and bodies b<i>, and
 * write i to the pipe only once put has returned.  With `n_then_wait` > 0
 * it stops right after acknowledging that many and waits, store open, for
 * the parent's SIGKILL (no close, no checkpoint); otherwise it keeps
 * registering until the parent kills it. */
static void crash_child(const char *dir, const char *file, int fd, int n_then_wait)
{
  struct aced_error err;
  struct store *s = B->open(dir, file, &err);
  if (s == NULL)
    _exit(2);
  for (int i = 0; n_then_wait == 0 || i < n_then_wait; i++) {
    char digest[72], body[64];
    int created, v;
    snprintf(digest, sizeof digest, "sha256:k%d", i);
    snprintf(body, sizeof body, "{\"b\":%d}", i);
    if (put(s, "crash", digest, "d", body, &created, &v, &err) != ACED_OK ||
        v != i + 1)
      _exit(3);
    if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
      _exit(4);
  }
  for (;;)
    pause();
}

/* Read acknowledgements until EOF; returns how many arrived. */
static int read_acks(int fd, int want, int *acked)
{
  int i;
  while (*acked < want && read(fd, &i, sizeof i) == (ssize_t)sizeof i)
    (*acked)++;
  return *acked;
}

static void check_acked(const char *dir, const char *file, int acked, const char *what)
{
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "%s: reopen after the child died (%s)", what,
              s ? "" : err.message))
    return;
  int missing = 0;
  for (int i = 0; i < acked; i++) {
    struct store_model_row row;
    char digest[72], body[64];
    snprintf(digest, sizeof digest, "sha256:k%d", i);
    snprintf(body, sizeof body, "{\"b\":%d}", i);
    if (s->ops->model_get(s, "crash", i + 1, 1, &row, &err) != ACED_OK ||
        strcmp(row.digest, digest) != 0 || row.body == NULL ||
        strcmp(row.body, body) != 0) {
      if (missing++ == 0)
        tap_diag("model crash v%d: %s", i + 1, err.message);
    }
    store_model_row_clear(&row);
  }
  tap_ok(missing == 0, "%s: all %d acknowledged models are there (%d missing)",
         what, acked, missing);
  tap_ok(s->ops->ping(s, &err) == ACED_OK, "%s: database usable", what);
  s->ops->close(s);
}

static void test_crash(const char *dir)
{
  char path[1024];
  int fds[2];

  /* SIGKILL at an arbitrary moment after some acknowledgements. */
  const char *file = "crash-kill.db";
  if (pipe(fds) != 0) {
    tap_ok(0, "pipe: %s", strerror(errno));
    return;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    crash_child(dir, file, fds[1], 0);
  }
  close(fds[1]);
  int acked = 0;
  read_acks(fds[0], 25, &acked);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  /* Acknowledgements written before the kill still count. */
  read_acks(fds[0], 1 << 30, &acked);
  close(fds[0]);
  tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && acked >= 25,
         "child killed with SIGKILL after %d acknowledged puts", acked);
  check_acked(dir, file, acked, "after SIGKILL");

  /* SIGKILL right after the 15th put returned: the WAL is left behind,
   * not checkpointed, and every acknowledged put must be in it. */
  file = "crash-ack.db";
  db_path(path, sizeof path, dir, file);
  if (pipe(fds) != 0)
    return;
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    crash_child(dir, file, fds[1], 15);
  }
  close(fds[1]);
  acked = 0;
  read_acks(fds[0], 15, &acked);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  read_acks(fds[0], 1 << 30, &acked);
  close(fds[0]);
  tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && acked == 15,
         "child killed right after its %d-th put returned (status %d)",
         acked, status);
  /* The models must be in the uncheckpointed WAL, or this test would not
   * be testing recovery from it. */
  char wal[1100];
  struct stat stw;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (B->files)
    tap_ok(stat(wal, &stw) == 0 && stw.st_size > 0,
         "the killed child left a WAL behind (%lld bytes)",
         (long long)(stat(wal, &stw) == 0 ? stw.st_size : -1));
  check_acked(dir, file, acked, "after SIGKILL on acknowledgement");
}

/* ---- PostgreSQL: replicas on one database, and a database restart ----- */

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Poll model_get(name, latest) on s until it answers `want` (ACED_OK or
 * ACED_E_MODEL_NOT_FOUND) with version `v` (when OK), for up to 2 s;
 * returns the seconds it took or -1. */
static double wait_latest(struct store *s, const char *name, enum aced_err want, int v)
{
  double t0 = now_s();
  while (now_s() - t0 < 2.0) {
    struct store_model_row row;
    struct aced_error err;
    enum aced_err e = s->ops->model_get(s, name, 0, 0, &row, &err);
    int ver = row.version;
    store_model_row_clear(&row);
    if (e == want && (e != ACED_OK || ver == v))
      return now_s() - t0;
    usleep(1000);
  }
  return -1;
}

static void test_replicas(const char *dir)
{
  struct aced_error err = {0};
  struct store *a = B->open(dir, "replicas.db", &err);
  struct store *b = B->open(dir, "replicas.db", &err);
  if (!tap_ok(a != NULL && b != NULL, "two stores (replicas) on one database"))
    return;
  usleep(300000); /* both listeners connected */
  int created = -1, v = 0;
  put(a, "shared", "sha256:one", "d", "{\"one\":1}", &created, &v, &err);
  struct store_model_row row;
  enum aced_err e = b->ops->model_get(b, "shared", 0, 1, &row, &err);
  tap_ok(e == ACED_OK && row.version == 1 && row.body && strcmp(row.body, "{\"one\":1}") == 0,
         "registered through A, read through B");
  store_model_row_clear(&row);
  /* B remembers the latest row now; A's next version must reach it */
  b->ops->model_get(b, "shared", 0, 0, &row, &err);
  store_model_row_clear(&row);
  put(a, "shared", "sha256:two", NULL, "{}", &created, &v, &err);
  double dt = wait_latest(b, "shared", ACED_OK, 2);
  tap_ok(dt >= 0, "a new version through A is B's latest after %.1f ms", dt * 1e3);
  e = put(b, "shared", "sha256:one", NULL, "{\"one\":1}", &created, &v, &err);
  tap_ok(e == ACED_OK && created == 0 && v == 1,
         "the same digest through B is not registered again (created=%d v=%d)", created, v);
  int deleted = 0;
  a->ops->model_delete(a, "shared", &deleted, &err);
  dt = wait_latest(b, "shared", ACED_E_MODEL_NOT_FOUND, 0);
  tap_ok(deleted == 2 && dt >= 0, "deleted through A: gone on B after %.1f ms", dt * 1e3);

  /* Racing registrations through both stores: one version per digest. */
  static struct conc_arg args[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  for (int t = 0; t < CONC_THREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].s = t % 2 ? b : a;
    args[t].id = t;
    pthread_create(&th[t], NULL, conc_thread, &args[t]);
  }
  int errors = 0, agree = 1;
  for (int t = 0; t < CONC_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += args[t].errors + args[t].common_mismatch;
    if (args[t].errors)
      tap_diag("thread %d: %d errors, last: %s", t, args[t].errors, args[t].last_error);
  }
  for (int c = 0; c < CONC_COMMON; c++)
    for (int t = 1; t < CONC_THREADS; t++)
      if (args[t].common_version[c] != args[0].common_version[c])
        agree = 0;
  static struct version_map m;
  memset(&m, 0, sizeof m);
  a->ops->model_versions(a, "common", vm_cb, &m, &err);
  tap_ok(errors == 0 && agree && m.n == CONC_COMMON,
         "threads on two replicas racing the same digests: %d versions, all told the same",
         m.n);
  a->ops->close(a);
  b->ops->close(b);
}

static void test_restart(const char *dir)
{
  struct aced_error err = {0};
  struct store *s = B->open(dir, "restart.db", &err);
  if (!tap_ok(s != NULL, "open for the restart test"))
    return;
  int created, v;
  put(s, "r", "sha256:r1", NULL, "{}", &created, &v, &err);
  struct store_model_row row;
  s->ops->model_get(s, "r", 0, 0, &row, &err);
  store_model_row_clear(&row);
  pgt_ctl(&pg_cluster, "stop", "immediate");
  usleep(300000); /* the listener notices */
  enum aced_err e = s->ops->model_get(s, "r", 0, 0, &row, &err);
  tap_ok(e == ACED_E_DB_UNAVAILABLE && aced_err_status(e) == 503,
         "database down: model_get answers database_unavailable, not a remembered row (%s)",
         err.message);
  store_model_row_clear(&row);
  e = put(s, "r", "sha256:r2", NULL, "{}", &created, &v, &err);
  tap_ok(e == ACED_E_DB_UNAVAILABLE, "database down: model_put fails with 503 (%s)", err.message);
  e = s->ops->ping(s, &err);
  tap_ok(e == ACED_E_DB_UNAVAILABLE, "database down: ping fails");
  pgt_ctl(&pg_cluster, "restart", "fast");
  e = s->ops->model_get(s, "r", 0, 1, &row, &err);
  tap_ok(e == ACED_OK && row.version == 1, "database back: the same store reads again (%s)",
         e == ACED_OK ? "ok" : err.message);
  store_model_row_clear(&row);
  e = put(s, "r", "sha256:r2", NULL, "{}", &created, &v, &err);
  tap_ok(e == ACED_OK && created == 1 && v == 2, "database back: registration works (v=%d)", v);
  /* A restart while the connections are idle: the first use of each must
   * not fail (the pool notices the closed sockets). */
  pgt_ctl(&pg_cluster, "restart", "fast");
  int fails = 0;
  for (int i = 0; i < 20; i++) {
    if (s->ops->model_get(s, "r", 2, 0, &row, &err) != ACED_OK)
      fails++;
    store_model_row_clear(&row);
  }
  tap_ok(fails == 0, "after a restart between requests: no request fails (%d did)", fails);
  s->ops->close(s);
}

/* A durable job's tasks (PostgreSQL only): replicas x threads claim the
 * tasks of one job at once, each task exactly once; a lease that ran out
 * makes a task claimable again; sums; task_find; single flight of a fit. */
#define TASKS_N 200
#define TASK_THREADS 6
struct task_arg {
  struct store *s;
  char owner[32];
  int got[TASKS_N];
  int n, errors;
};

static void *task_thread(void *p)
{
  struct task_arg *a = p;
  struct aced_error err;
  for (;;) {
    int i = -1, pending = 0;
    if (a->s->ops->task_claim(a->s, "tasksjob", a->owner, 60000, &i, &pending, &err) != ACED_OK) {
      a->errors++;
      break;
    }
    if (i < 0)
      break;
    a->got[a->n++] = i;
    if (a->s->ops->task_done(a->s, "tasksjob", i, a->owner, 2, 1, &err) != ACED_OK)
      a->errors++;
  }
  return NULL;
}

static void test_tasks(const char *dir)
{
  struct aced_error err = {0};
  struct store *a = B->open(dir, "tasks.db", &err);
  struct store *b = a ? B->open(dir, "tasks.db", &err) : NULL;
  if (!tap_ok(a != NULL && b != NULL, "two stores (replicas) for tasks"))
    return;
  if (a->ops->task_plan == NULL) {
    tap_ok(a->ops->task_claim == NULL && a->ops->fit_claim == NULL,
           "SQLite keeps no tasks: every job runs whole here");
    a->ops->close(a);
    b->ops->close(b);
    return;
  }
  tap_ok(a->ops->task_plan(a, "nosuchjob", 4, &err) != ACED_OK,
         "tasks of a job without a row are refused (it runs whole)");
  struct store_job job = {.id = "tasksjob", .kind = "regressors", .model = "m", .request = "{}"};
  enum aced_err e = a->ops->job_insert(a, &job, "ownerA", 60000, "{\"state\":\"running\"}", &err);
  e = e == ACED_OK ? a->ops->task_plan(a, "tasksjob", TASKS_N, &err) : e;
  e = e == ACED_OK ? a->ops->task_plan(a, "tasksjob", TASKS_N, &err) : e;
  tap_ok(e == ACED_OK, "a job's %d tasks recorded (twice: kept as they are)", TASKS_N);
  struct store_job row = {0};
  int found = 0;
  e = b->ops->task_find(b, "ownerB", &row, &found, &err);
  tap_ok(e == ACED_OK && found && strcmp(row.id, "tasksjob") == 0 && row.request != NULL,
         "another replica finds the job to help with");
  free(row.request);
  found = 1;
  e = a->ops->task_find(a, "ownerA", &row, &found, &err);
  tap_ok(e == ACED_OK && !found, "its owner does not");

  static struct task_arg args[TASK_THREADS];
  pthread_t th[TASK_THREADS];
  for (int t = 0; t < TASK_THREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].s = t % 2 ? b : a;
    snprintf(args[t].owner, sizeof args[t].owner, "owner%c", t % 2 ? 'B' : 'A');
    pthread_create(&th[t], NULL, task_thread, &args[t]);
  }
  int seen[TASKS_N] = {0}, errors = 0, twice = 0, by_b = 0;
  for (int t = 0; t < TASK_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += args[t].errors;
    for (int k = 0; k < args[t].n; k++)
      twice += seen[args[t].got[k]]++ > 0;
    if (t % 2)
      by_b += args[t].n;
  }
  int missing = 0;
  for (int i = 0; i < TASKS_N; i++)
    missing += seen[i] == 0;
  tap_ok(errors == 0 && twice == 0 && missing == 0,
         "%d threads on two replicas claim the %d tasks: each once (%d twice, %d missed, %d errors, "
         "%d by B)", TASK_THREADS, TASKS_N, twice, missing, errors, by_b);
  long units = 0, computed = 0;
  int done = 0, total = 0;
  e = b->ops->task_sum(b, "tasksjob", &units, &computed, &done, &total, &err);
  tap_ok(e == ACED_OK && total == TASKS_N && done == TASKS_N && units == 2 * TASKS_N &&
             computed == TASKS_N,
         "the sums over the task rows (%d of %d done, %ld units, %ld computed)", done, total, units,
         computed);
  found = 1;
  e = b->ops->task_find(b, "ownerB", &row, &found, &err);
  tap_ok(e == ACED_OK && !found, "a job with no free task is not offered for help");

  /* a lease that ran out: the task is claimable again, by anyone */
  struct store_job j2 = {.id = "tasksjob2", .kind = "regressors", .model = "m", .request = "{}"};
  a->ops->job_insert(a, &j2, "ownerA", 60000, "{}", &err);
  a->ops->task_plan(a, "tasksjob2", 2, &err);
  int i1 = -1, i2 = -1, i3 = -1, pending = -1;
  a->ops->task_claim(a, "tasksjob2", "ownerB", 1, &i1, &pending, &err);
  a->ops->task_claim(a, "tasksjob2", "ownerA", 60000, &i2, &pending, &err);
  usleep(20000);
  b->ops->task_claim(b, "tasksjob2", "ownerC", 60000, &i3, &pending, &err);
  tap_ok(i1 == 0 && i2 == 1 && i3 == 0, "a task whose lease ran out is claimed again (%d %d %d)", i1,
         i2, i3);
  i3 = 5;
  b->ops->task_claim(b, "tasksjob2", "ownerC", 60000, &i3, &pending, &err);
  tap_ok(i3 == -1 && pending == 2, "then none is left to claim, 2 pending (%d)", pending);
  e = b->ops->task_release(b, "tasksjob2", 0, "ownerA", &err); /* not A's: kept */
  e = e == ACED_OK ? b->ops->task_release(b, "tasksjob2", 0, "ownerC", &err) : e;
  i3 = -1;
  a->ops->task_claim(a, "tasksjob2", "ownerD", 60000, &i3, &pending, &err);
  tap_ok(e == ACED_OK && i3 == 0, "a task given back by its holder is claimable at once (%d)", i3);
  char *body = NULL;
  int fin = 0;
  a->ops->job_cancel(a, "tasksjob2", &body, &fin, &err);
  free(body);
  b->ops->task_claim(b, "tasksjob2", "ownerC", 60000, &i3, &pending, &err);
  tap_ok(i3 == -1 && pending == 0, "a cancelled job has no task to claim or wait for");

  /* single flight of a fit */
  int m1 = 0, m2 = 1, m3 = 0;
  a->ops->fit_claim(a, "fitkey", "ownerA", 60000, &m1, &err);
  b->ops->fit_claim(b, "fitkey", "ownerB", 60000, &m2, &err);
  a->ops->fit_release(a, "fitkey", "ownerA", &err);
  b->ops->fit_claim(b, "fitkey", "ownerB", 60000, &m3, &err);
  tap_ok(m1 == 1 && m2 == 0 && m3 == 1,
         "a fit is claimed by one replica; the other gets it once released (%d %d %d)", m1, m2, m3);
  m1 = m2 = 0;
  a->ops->fit_claim(a, "fitkey2", "ownerA", 1, &m1, &err);
  usleep(20000);
  b->ops->fit_claim(b, "fitkey2", "ownerB", 60000, &m2, &err);
  tap_ok(m1 == 1 && m2 == 1, "or once its lease ran out");
  a->ops->close(a);
  b->ops->close(b);
}

static void run_all(const char *dir)
{
  test_registry(dir);
  test_latest_cache(dir);
  if (B->files)
    test_bad_files(dir);
  test_concurrency(dir);
  test_crash(dir);
  test_tasks(dir);
  if (!B->files) {
    test_replicas(dir);
    test_restart(dir);
  }
}

/* A database of schema 1 (before the model row kept its source) opens,
 * is migrated in place, keeps its rows (source ""), and stores sources. */
static void test_migration(const char *dir)
{
  char path[512];
  struct aced_error err;
  sqlite3 *db;
  db_path(path, sizeof path, dir, "schema1.db");
  sqlite3_open(path, &db);
  int rc = sqlite3_exec(
      db,
      "CREATE TABLE models (name TEXT NOT NULL, version INTEGER NOT NULL,"
      " digest TEXT NOT NULL, description TEXT, created_at TEXT NOT NULL,"
      " n_features INTEGER, n_outputs INTEGER, n_samples INTEGER, n_params INTEGER,"
      " body TEXT NOT NULL, PRIMARY KEY (name, version));"
      "CREATE INDEX models_digest ON models(digest);"
      "CREATE TABLE regressor_cache (digest TEXT NOT NULL, output INTEGER NOT NULL,"
      " feature INTEGER NOT NULL, estimator TEXT NOT NULL, params TEXT NOT NULL,"
      " value TEXT NOT NULL, created_at TEXT NOT NULL,"
      " PRIMARY KEY (digest, output, feature, estimator, params));"
      "INSERT INTO models VALUES ('old', 1, 'sha256:old', NULL, '2026-01-01T00:00:00Z',"
      " 3, 2, 0, 42, '{}');"
      "PRAGMA user_version = 1;",
      NULL, NULL, NULL);
  sqlite3_close(db);
  tap_ok(rc == SQLITE_OK, "a schema-1 database is written");
  struct store *s = store_sqlite_open(path, &err);
  tap_ok(s != NULL, "a schema-1 database opens (migrated to 2)");
  if (s == NULL)
    return;
  struct store_model_row row, got;
  s->ops->model_get(s, "old", 0, 1, &got, &err);
  tap_ok(strcmp(got.digest, "sha256:old") == 0 && got.source[0] == '\0' &&
             strcmp(got.body, "{}") == 0,
         "its row is kept, without a source");
  store_model_row_clear(&got);
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "imported");
  snprintf(row.digest, sizeof row.digest, "sha256:imp");
  snprintf(row.source, sizeof row.source, "{\"opset\":13,\"producer\":\"pytorch 1.13.0\"}");
  int created = 0;
  s->ops->model_put(s, &row, "{}", &created, &err);
  s->ops->close(s);
  s = store_sqlite_open(path, &err);
  memset(&got, 0, sizeof got);
  if (s != NULL)
    s->ops->model_get(s, "imported", 0, 0, &got, &err);
  tap_ok(created && strcmp(got.source, row.source) == 0,
         "a row's source survives close/reopen (%s)", got.source);
  store_model_row_clear(&got);
  if (s != NULL)
    s->ops->close(s);
}

int main(void)
{
  char *dir = tmp_dir();
  tap_diag("backend sqlite");
  test_migration(dir); /* SQLite's schema 1 -> 2 (the ONNX source column) */
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
