/*
 * journal.c -- durable jobs: the journal that records this replica's jobs
 * in a store shared by replicas (PostgreSQL), runs the jobs of replicas
 * that died, and carries cancels between replicas.
 *
 * DESIGN
 *
 * The pool stays in memory and knows no job kind; the journal is one more
 * user of it (jobs.h: struct job_journal).  Every job submitted here is
 * inserted into the store, owned by this replica, with its request (kind
 * name, model, version, digest, params: all a job is made of) and the body
 * GET /v1/jobs/{id} shows, before its id is handed out.  One thread then:
 *
 *   - renews the lease of each running job every ACED_JOB_HEARTBEAT_MS,
 *     writing its progress, and learns there of a cancel asked elsewhere;
 *   - writes the final body (with the result) when a job ends;
 *   - claims, while this replica's workers have nothing queued, a job
 *     whose lease ran out (its replica died), rebuilds the request, and
 *     adopts it in the pool under the same id: it is computed again, and
 *     regressors its first replica already stored are cache hits;
 *   - is woken by the store's notifications: "cancel <id>" cancels a job
 *     running here at once, "free <id>" (a replica stopping gave it up)
 *     makes it claim without waiting.
 *
 * On a clean stop, jobs the pool failed for shutting down are given up,
 * not failed, so another replica carries on with them at once.
 *
 *   - helps, while its workers have nothing queued, with the tasks of
 *     another replica's job that splits (split.c): a helper job of the
 *     same kind and request, under the job's id reversed, whose tasks
 *     claim from the job's task rows.  Cancels reach it like the job.
 *
 * Most kinds run whole on one replica: their tasks share the plan's
 * memory.  A kind whose plan is repeatable task by task splits (split.c:
 * "regressors").
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aced/clock.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/store.h"
#include "svc/internal.h"

struct owned {
  struct job *j;
  int64_t beat_us;  /* last heartbeat */
  int64_t added_us; /* its row existed before this moment */
};

static struct journal {
  const struct svc *svc;
  struct jobs *js;
  char owner[128];
  pthread_mutex_t lock;   /* guards everything below */
  pthread_cond_t cond;
  int started, quiescing, stopping, wake;
  struct owned *a;
  int n, cap;
  pthread_t thread;
} J = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* The body GET /v1/jobs/{id} shows; a split job's progress summed over
 * the replicas from its task rows. */
static char *body_text(struct job *j, int with_result)
{
  json_t *b = job_to_json(j, with_result);
  struct store *s = J.svc->store;
  long units = 0, computed = 0;
  int done = 0, total = 0;
  struct aced_error err;
  json_t *pr = json_object_get(b, "progress");
  if (pr != NULL && s->ops->task_sum != NULL &&
      s->ops->task_sum(s, job_id(j), &units, &computed, &done, &total, &err) == ACED_OK &&
      total > 0 && units > json_integer_value(json_object_get(pr, "done")) &&
      units <= json_integer_value(json_object_get(pr, "total")))
    json_object_set_new(pr, "done", json_integer(units));
  char *t = b ? json_dumps(b, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(b);
  return t;
}

static void owned_add(struct job *j)
{
  pthread_mutex_lock(&J.lock);
  if (J.n == J.cap) {
    int cap = J.cap ? 2 * J.cap : 64;
    struct owned *a = realloc(J.a, (size_t)cap * sizeof *a);
    if (a == NULL) {
      pthread_mutex_unlock(&J.lock);
      log_warn("journal", "out of memory: job %s is not renewed", job_id(j));
      return;
    }
    J.a = a;
    J.cap = cap;
  }
  job_ref(j);
  int64_t now = aced_now_us();
  J.a[J.n++] = (struct owned){.j = j, .beat_us = now, .added_us = now};
  pthread_mutex_unlock(&J.lock);
}

/* jobs.h's journal hook: record a job submitted here. */
static void on_submitted(void *cls, struct job *j, const struct job_request *req)
{
  (void)cls;
  struct store *s = J.svc->store;
  /* A registration's request is the whole model (up to max_body_bytes):
   * not serialised on this HTTP thread nor kept; its client has the body
   * and registering is idempotent, so it is not run again elsewhere. */
  json_t *r = req->ops == &svc_kind_register ? NULL : json_pack("{s:s,s:s,s:i,s:s,s:O?,s:s,s:s}", "kind", req->ops->name, "model",
                        req->model, "version", req->version, "digest", req->digest, "params",
                        req->params, "who", req->who, "client", req->client);
  char *request = r ? json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(r);
  if (request != NULL && strlen(request) > ACED_JOB_REQUEST_MAX) {
    free(request); /* recorded, but not to be run again elsewhere */
    request = NULL;
  }
  struct store_job row;
  memset(&row, 0, sizeof row);
  snprintf(row.id, sizeof row.id, "%s", job_id(j));
  snprintf(row.kind, sizeof row.kind, "%s", req->ops->name);
  snprintf(row.model, sizeof row.model, "%s", req->model);
  row.request = request;
  char *body = body_text(j, 0);
  struct aced_error err;
  if (body == NULL ||
      s->ops->job_insert(s, &row, J.owner, ACED_JOB_LEASE_MS, body, &err) != ACED_OK)
    log_warn("journal", "job %s is not recorded (it runs here only): %s", row.id,
             body ? err.message : "out of memory");
  else
    owned_add(j);
  free(body);
  free(request);
}

/* The id of the helper job that runs tasks of job `id` here: its
 * characters reversed (an id of the same form, never the job's own). */
static void helper_id(const char *id, char out[40])
{
  size_t n = strlen(id);
  if (n >= 40)
    n = 39;
  for (size_t k = 0; k < n; k++)
    out[k] = id[n - 1 - k];
  out[n] = '\0';
}

/* Cancel job `id` here, and the helper job of it if there is one
 * (helper_only: just that). */
static void cancel_here(const char *id, int helper_only)
{
  char hid[40];
  helper_id(id, hid);
  const char *ids[] = {hid, id};
  for (int k = 0; k < 2 - helper_only; k++) {
    struct job *j = jobs_find(J.js, ids[k]);
    if (j != NULL) {
      if (jobs_cancel(J.js, j) == 0)
        log_info("journal", "job %s cancelled from another replica", job_id(j));
      job_unref(j);
    }
  }
}

/* The store's notifications (its thread). */
static void on_event(void *cls, const char *event)
{
  (void)cls;
  if (strncmp(event, "cancel ", 7) == 0)
    cancel_here(event + 7, 0);
  else if (strncmp(event, "ended ", 6) == 0)
    cancel_here(event + 6, 1);
  pthread_mutex_lock(&J.lock);
  J.wake = 1;
  pthread_cond_signal(&J.cond);
  pthread_mutex_unlock(&J.lock);
}

/* Write what happened to owned job i since the last look; returns 1 when
 * it is no longer ours to watch. */
static int tend(struct owned *o, int64_t now, int quiescing)
{
  struct store *s = J.svc->store;
  struct aced_error err;
  enum job_state st = job_state(o->j);
  if (st == JOB_DONE || st == JOB_FAILED || st == JOB_CANCELLED) {
    struct aced_error jerr = {0};
    job_error(o->j, &jerr);
    const char *state = job_state_name(st);
    /* failed because this replica is stopping: give it up to another */
    if (quiescing && st == JOB_FAILED && jerr.code == ACED_E_UNAVAILABLE)
      state = NULL;
    char *body = body_text(o->j, 1);
    if (body == NULL || s->ops->job_finish(s, job_id(o->j), J.owner, state, body, &err) != ACED_OK)
      log_warn("journal", "job %s: cannot record its end: %s", job_id(o->j),
               body ? err.message : "out of memory");
    else if (state == NULL)
      log_info("journal", "job %s given up for another replica (stopping)", job_id(o->j));
    free(body);
    return 1;
  }
  /* Queued jobs' leases are renewed all at once (renew()); a running
   * one's heartbeat also records its progress for the other replicas. */
  if (st != JOB_RUNNING || now - o->beat_us < ACED_JOB_HEARTBEAT_MS * 1000L)
    return 0;
  o->beat_us = now;
  char *body = body_text(o->j, 0);
  int cancel = 0, owned = 1;
  if (body != NULL && s->ops->job_heartbeat(s, job_id(o->j), J.owner, ACED_JOB_LEASE_MS, body,
                                            &cancel, &owned, &err) != ACED_OK)
    log_warn("journal", "job %s: heartbeat failed: %s", job_id(o->j), err.message);
  free(body);
  if (cancel || !owned) {
    /* cancelled elsewhere, or taken over after our heartbeats failed:
     * stop computing what another replica computes now */
    jobs_cancel(J.js, o->j);
    if (!owned) {
      log_warn("journal", "job %s was taken over by another replica", job_id(o->j));
      return 1;
    }
  }
  return 0;
}

/* renew(): the jobs the store says are still ours, sorted for lookup. */
struct renewed {
  char (*id)[40];
  unsigned char *cancel;
  int n, cap, oom;
};

static void renewed_add(void *cls, const char *id, int cancel)
{
  struct renewed *r = cls;
  if (r->n == r->cap) {
    int cap = r->cap ? 2 * r->cap : 256;
    char (*a)[40] = realloc(r->id, (size_t)cap * sizeof *a);
    unsigned char *c = a ? realloc(r->cancel, (size_t)cap) : NULL;
    if (a != NULL)
      r->id = a;
    if (c == NULL) {
      r->oom = 1; /* then nothing is judged lost this time */
      return;
    }
    r->cancel = c;
    r->cap = cap;
  }
  snprintf(r->id[r->n], sizeof r->id[0], "%s", id);
  r->cancel[r->n++] = (unsigned char)cancel;
}

/* Renew every lease of this replica in one statement (queued jobs have
 * no heartbeat of their own), and act on what it says: a cancel asked
 * for, or a job another replica has taken over (our renewals failed for
 * longer than the lease) is cancelled here. */
static void renew(int64_t start)
{
  struct store *s = J.svc->store;
  struct renewed r = {0};
  struct aced_error err;
  if (s->ops->job_renew(s, J.owner, ACED_JOB_LEASE_MS, renewed_add, &r, &err) != ACED_OK) {
    log_warn("journal", "lease renewal failed: %s", err.message);
    free(r.id);
    free(r.cancel);
    return;
  }
  pthread_mutex_lock(&J.lock);
  int n = J.n;
  pthread_mutex_unlock(&J.lock);
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&J.lock);
    struct owned o = J.a[i];
    pthread_mutex_unlock(&J.lock);
    if (o.j == NULL || o.added_us >= start)
      continue; /* its row may be newer than the renewal */
    int k = 0;
    while (k < r.n && strcmp(r.id[k], job_id(o.j)) != 0)
      k++;
    enum job_state st = job_state(o.j);
    if (st == JOB_DONE || st == JOB_FAILED || st == JOB_CANCELLED)
      continue; /* tend() writes its end */
    if (k == r.n && !r.oom) {
      log_warn("journal", "job %s was taken over by another replica", job_id(o.j));
      jobs_cancel(J.js, o.j);
      pthread_mutex_lock(&J.lock);
      J.a[i].j = NULL;
      pthread_mutex_unlock(&J.lock);
      job_unref(o.j);
    } else if (r.cancel[k]) {
      jobs_cancel(J.js, o.j);
    }
  }
  /* jobs whose tasks run here in a helper job */
  for (int k = 0; k < r.n; k++)
    if (r.cancel[k]) {
      char hid[40];
      helper_id(r.id[k], hid);
      struct job *h = jobs_find(J.js, hid);
      if (h != NULL) {
        if (jobs_cancel(J.js, h) == 0)
          log_info("journal", "job %s cancelled from another replica", job_id(h));
        job_unref(h);
      }
    }
  free(r.id);
  free(r.cancel);
}

/* A stored request (r, parsed) as a job request of kind `kind`; 0, or -1
 * for a kind this aced does not know. */
static int request_build(const struct store_job *row, json_t *r, struct job_request *req)
{
  const char *kind = json_string_value(json_object_get(r, "kind"));
  const struct job_ops *ops = kind ? svc_kind_find(kind) : NULL;
  memset(req, 0, sizeof *req);
  if (ops == NULL)
    return -1;
  req->ops = ops;
  snprintf(req->model, sizeof req->model, "%s", row->model);
  req->version = (int)json_integer_value(json_object_get(r, "version"));
  snprintf(req->digest, sizeof req->digest, "%s",
           json_string_value(json_object_get(r, "digest")) ?: "");
  json_t *p = json_object_get(r, "params");
  req->params = json_is_null(p) ? NULL : p;
  snprintf(req->who, sizeof req->who, "%s", json_string_value(json_object_get(r, "who")) ?: "-");
  snprintf(req->client, sizeof req->client, "%s",
           json_string_value(json_object_get(r, "client")) ?: "-");
  return 0;
}

/* Rebuild a claimed job's request and adopt it; 0 when adopted. */
static int adopt(struct store_job *row)
{
  json_error_t jerr;
  json_t *r = json_loads(row->request, 0, &jerr);
  const char *kind = json_string_value(json_object_get(r, "kind"));
  struct job_request req;
  int rc = -1;
  if (request_build(row, r, &req) == 0) {
    struct job *j = NULL;
    struct aced_error err;
    if (jobs_adopt(J.js, row->id, &req, &j, &err) == ACED_OK) {
      log_info("journal", "job %s (%s, model %s) taken over from a replica that stopped",
               row->id, kind, row->model);
      owned_add(j);
      pthread_mutex_lock(&J.lock);
      J.a[J.n - 1].beat_us = 0; /* renew at once */
      pthread_mutex_unlock(&J.lock);
      job_unref(j);
      rc = 0;
    } else {
      log_warn("journal", "job %s: cannot take it over: %s", row->id, err.message);
    }
  } else {
    log_warn("journal", "job %s: unknown kind '%s': given up", row->id, kind ? kind : "?");
  }
  json_decref(r);
  /* on failure its lease runs out again, and after ACED_JOB_ATTEMPTS_MAX
   * claims the store fails it */
  return rc;
}

/* Help with another replica's job that has free tasks: run a helper job
 * (its request, "_help": its id) unless one ran here already (it ended
 * when no task was left to claim).  0 when one was started. */
static int help(struct store_job *row)
{
  char hid[40];
  helper_id(row->id, hid);
  struct job *old = jobs_find(J.js, hid);
  if (old != NULL) {
    job_unref(old);
    return -1;
  }
  json_t *r = json_loads(row->request, 0, NULL);
  struct job_request req;
  int rc = -1;
  if (request_build(row, r, &req) == 0) {
    json_t *p = req.params ? json_deep_copy(req.params) : json_object();
    if (p != NULL && json_object_set_new(p, "_help", json_string(row->id)) == 0) {
      req.params = p;
      struct job *j = NULL;
      struct aced_error err;
      if (jobs_adopt(J.js, hid, &req, &j, &err) == ACED_OK) {
        log_info("journal", "helping with the tasks of job %s (%s, model %s)", row->id,
                 req.ops->name, row->model);
        job_unref(j);
        rc = 0;
      } else {
        log_debug("journal", "job %s: cannot help: %s", row->id, err.message);
      }
    }
    json_decref(p);
  }
  json_decref(r);
  return rc;
}

/* Claim jobs while this replica has idle workers and nothing queued. */
static void claim(void)
{
  struct store *s = J.svc->store;
  for (int k = 0; k < 4; k++) {
    struct jobs_stats st;
    jobs_stats(J.js, &st);
    if (st.queued > 0 || st.busy >= st.workers)
      return;
    struct store_job row;
    int found = 0;
    struct aced_error err;
    if (s->ops->job_claim(s, J.owner, ACED_JOB_LEASE_MS, &row, &found, &err) != ACED_OK) {
      log_debug("journal", "claim: %s", err.message);
      return;
    }
    if (!found) {
      /* nothing to take over: help with another replica's tasks */
      if (s->ops->task_find == NULL ||
          s->ops->task_find(s, J.owner, &row, &found, &err) != ACED_OK || !found)
        return;
      int started = help(&row) == 0;
      free(row.request);
      if (!started)
        return;
      continue;
    }
    adopt(&row);
    free(row.request);
  }
}

const char *svc_journal_owner(void)
{
  return __atomic_load_n(&J.started, __ATOMIC_ACQUIRE) ? J.owner : NULL;
}

static void *journal_main(void *arg)
{
  (void)arg;
  int64_t last_claim = 0, last_renew = aced_now_us();
  pthread_mutex_lock(&J.lock);
  for (;;) {
    int stopping = J.stopping, quiescing = J.quiescing, woken = J.wake;
    J.wake = 0;
    int64_t t = aced_now_us();
    if (!stopping && t - last_renew >= ACED_JOB_HEARTBEAT_MS * 1000L) {
      pthread_mutex_unlock(&J.lock);
      last_renew = t;
      renew(t);
      pthread_mutex_lock(&J.lock);
    }
    /* tend a snapshot: the list may grow meanwhile (only this thread
     * removes entries) */
    int n = J.n;
    pthread_mutex_unlock(&J.lock);
    int64_t now = aced_now_us();
    for (int i = 0; i < n; i++) {
      pthread_mutex_lock(&J.lock);
      struct owned o = J.a[i];
      pthread_mutex_unlock(&J.lock);
      if (o.j == NULL) /* let go by renew() */
        continue;
      int drop = tend(&o, now, quiescing);
      pthread_mutex_lock(&J.lock);
      J.a[i].beat_us = o.beat_us;
      if (drop) {
        J.a[i].j = NULL;
      }
      pthread_mutex_unlock(&J.lock);
      if (drop)
        job_unref(o.j);
    }
    pthread_mutex_lock(&J.lock);
    int w = 0; /* drop what tend() or renew() let go */
    for (int i = 0; i < J.n; i++)
      if (J.a[i].j != NULL)
        J.a[w++] = J.a[i];
    J.n = w;
    if (stopping)
      break;
    pthread_mutex_unlock(&J.lock);
    if (!quiescing && (woken || now - last_claim >= ACED_JOB_HEARTBEAT_MS * 1000L)) {
      last_claim = now;
      claim();
    }
    pthread_mutex_lock(&J.lock);
    if (!J.wake && !J.stopping) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 200 * 1000000L; /* how soon an ended job is written */
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&J.cond, &J.lock, &ts);
    }
  }
  /* What is left unwritten (jobs the pool never ended) is left to its
   * lease. */
  for (int i = 0; i < J.n; i++)
    job_unref(J.a[i].j);
  J.n = 0;
  pthread_mutex_unlock(&J.lock);
  return NULL;
}

int svc_journal_start(const struct svc *svc, struct jobs *js)
{
  struct store *s = svc->store;
  if (s->ops->job_claim == NULL)
    return 0;
  J.svc = svc;
  J.js = js;
  char host[64] = "?";
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  snprintf(J.owner, sizeof J.owner, "%s:%ld:%lld", host, (long)getpid(),
           (long long)aced_now_us());
  struct job_journal jr = {.cls = &J, .submitted = on_submitted};
  jobs_set_journal(js, &jr);
  s->ops->job_listen(s, on_event, &J);
  __atomic_store_n(&J.started, 1, __ATOMIC_RELEASE); /* before the thread helps */
  if (pthread_create(&J.thread, NULL, journal_main, NULL) != 0) {
    __atomic_store_n(&J.started, 0, __ATOMIC_RELEASE);
    jobs_set_journal(js, NULL);
    s->ops->job_listen(s, NULL, NULL);
    return -1;
  }
  log_info("journal", "durable jobs on: this replica is %s", J.owner);
  return 1;
}

void svc_journal_quiesce(void)
{
  pthread_mutex_lock(&J.lock);
  J.quiescing = 1;
  pthread_mutex_unlock(&J.lock);
}

void svc_journal_stop(void)
{
  if (!J.started)
    return;
  pthread_mutex_lock(&J.lock);
  J.quiescing = 1;
  J.stopping = 1;
  pthread_cond_signal(&J.cond);
  pthread_mutex_unlock(&J.lock);
  pthread_join(J.thread, NULL);
  J.started = 0;
  jobs_set_journal(J.js, NULL);
  J.svc->store->ops->job_listen(J.svc->store, NULL, NULL);
}

/* A stored body (freed here) parsed; NULL when there is none. */
static json_t *body_parse(const char *id, char *body, struct aced_error *err)
{
  if (body == NULL)
    return NULL;
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  if (j == NULL)
    aced_error_set(err, ACED_E_STORE, "", "job %.64s: its stored state is unreadable", id);
  return j;
}

json_t *svc_job_lookup(const struct svc *svc, const char *id, struct aced_error *err)
{
  struct store *s = svc->store;
  err->code = ACED_OK;
  if (s->ops->job_get == NULL)
    return NULL;
  char *body = NULL;
  if (s->ops->job_get(s, id, &body, err) != ACED_OK)
    return NULL;
  return body_parse(id, body, err);
}

json_t *svc_job_cancel(const struct svc *svc, const char *id, int *finished,
                       struct aced_error *err)
{
  struct store *s = svc->store;
  err->code = ACED_OK;
  *finished = 0;
  if (s->ops->job_cancel == NULL)
    return NULL;
  char *body = NULL;
  if (s->ops->job_cancel(s, id, &body, finished, err) != ACED_OK)
    return NULL;
  return body_parse(id, body, err);
}
