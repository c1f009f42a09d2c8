/*
 * jobs.c -- worker pool, bounded queue, job table, waiters (see jobs.h).
 *
 * DESIGN
 * The pool runs jobs of any kind through their struct job_ops; nothing
 * here names a kind.
 *
 * One mutex (js->lock) guards everything here: the run queue, the job
 * table, every job's state and its waiters.  Critical sections are short
 * (no computation and no callbacks run under it), so one lock is simpler
 * than finer ones and not a bottleneck next to the numerical work.
 *
 * A job is QUEUED until a worker takes its plan step, RUNNING while tasks
 * remain or run, and then DONE, FAILED or CANCELLED.  Waiters (requests
 * waiting synchronously) are called exactly once: by whoever finishes the
 * job, or by the timer thread when their deadline passes first.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <nettle/sha2.h>

#include "aced/clock.h"
#include "aced/jobs.h"
#include "aced/log.h"
#include "aced/metrics.h"

struct waiter {
  struct waiter *next;
  struct job *job;
  int64_t deadline_us;
  job_waiter_fn fn;
  void *cls;
};

struct job {
  struct jobs *js;
  int refs;
  char id[33];
  struct job_request req;
  char flight[JOB_FLIGHT_KEY_MAX]; /* single-flight key, "" for none */
  enum job_state state;
  int planned;            /* plan step taken */
  int cancel;             /* cancellation asked (or a task failed) */
  int active;             /* workers inside its plan, a task or finish */
  int waited_out;         /* some waiter got 202 (timed out) */
  void *work;             /* the kind's, from ops->plan */
  int n_tasks, next_task, tasks_running, tasks_done;
  long units_total, units_done;
  int64_t created_us, started_us, finished_us;
  time_t created_wall;
  json_t *result;
  struct aced_error err;
  struct waiter *waiters;
  struct job *qnext;      /* run queue link */
  struct job *tnext;      /* table link (all jobs) */
};

struct jobs {
  void *ctx;                /* for the kinds' plan steps */
  pthread_mutex_t lock;
  pthread_cond_t work_cv;   /* workers wait for tasks */
  pthread_cond_t timer_cv;  /* timer waits for the next deadline */
  pthread_cond_t idle_cv;   /* shutdown waits for running tasks */
  struct job *qhead, *qtail;/* jobs with a plan or tasks to hand out */
  struct job *table;        /* every remembered job, newest first */
  long n_table;
  struct waiter *waiters;   /* all pending waiters (timer scans) */
  long queued;              /* jobs not yet planned */
  long running;             /* jobs planned and not finished */
  long busy;                /* workers inside a plan/task/finish */
  long queue_max;
  long job_timeout_us;
  int n_workers;
  int stopping;
  unsigned long long boot_stamp; /* start of this run, ms: ids begin with it */
  struct job_journal journal;    /* all NULL without one */
  pthread_t *workers;
  pthread_t timer;
};

#define JOB_STAMP_DIGITS 11
/* Stamps start with this format (2026-01-01T00:00:00Z, in ms): an id
 * whose stamp is older is not one an earlier run can have issued. */
#define JOB_STAMP_FIRST 1767225600000ULL

/* ---- helpers (called with js->lock held) ---- */

static void work_release(struct job *j)
{
  if (j->work != NULL)
    j->req.ops->free(j->work);
  j->work = NULL;
}

static void job_destroy(struct job *j)
{
  work_release(j);
  json_decref(j->result);
  json_decref(j->req.params);
  free(j);
}

static void queue_push(struct jobs *js, struct job *j)
{
  j->qnext = NULL;
  if (js->qtail)
    js->qtail->qnext = j;
  else
    js->qhead = j;
  js->qtail = j;
}

static void queue_remove(struct jobs *js, struct job *j)
{
  struct job **pp = &js->qhead, *prev = NULL;
  while (*pp && *pp != j) {
    prev = *pp;
    pp = &(*pp)->qnext;
  }
  if (*pp == NULL)
    return;
  *pp = j->qnext;
  if (js->qtail == j)
    js->qtail = prev;
  j->qnext = NULL;
}

static int in_queue(struct jobs *js, struct job *j)
{
  for (struct job *q = js->qhead; q; q = q->qnext)
    if (q == j)
      return 1;
  return 0;
}

static int finished(enum job_state s)
{
  return s == JOB_DONE || s == JOB_FAILED || s == JOB_CANCELLED;
}

/* A finished job no worker is using keeps only what GET /v1/jobs shows:
 * its request (for a registration, the whole model) and its work (which
 * pins a prepared model) are let go at once, so that the table of
 * remembered jobs holds little memory. */
static void release_inputs_locked(struct job *j)
{
  if (j->active > 0)
    return;
  json_decref(j->req.params);
  j->req.params = NULL;
  work_release(j);
}

/* Mark j finished; returns its waiters, detached, for the caller to call
 * after unlocking. */
static struct waiter *finish_locked(struct jobs *js, struct job *j,
                                    enum job_state s)
{
  if (finished(j->state))
    return NULL;
  if (j->planned)
    js->running--;
  else
    js->queued--;
  j->state = s;
  j->finished_us = aced_now_us();
  if (in_queue(js, j))
    queue_remove(js, j);
  release_inputs_locked(j);
  metrics_job_finished(job_state_name(s));
  /* detach this job's waiters from the global list */
  struct waiter *mine = NULL;
  for (struct waiter **pp = &js->waiters; *pp;) {
    if ((*pp)->job == j) {
      struct waiter *w = *pp;
      *pp = w->next;
      w->next = mine;
      mine = w;
    } else {
      pp = &(*pp)->next;
    }
  }
  pthread_cond_broadcast(&js->idle_cv);
  return mine;
}

static void call_waiters(struct waiter *w, int timed_out)
{
  while (w) {
    struct waiter *next = w->next;
    w->fn(w->cls, w->job, timed_out);
    job_unref(w->job);
    free(w);
    w = next;
  }
}

/* Drop the oldest finished jobs beyond ACED_JOBS_KEPT. */
static void table_trim(struct jobs *js)
{
  if (js->n_table <= ACED_JOBS_KEPT)
    return;
  struct job **pp = &js->table, **last_fin = NULL;
  for (; *pp; pp = &(*pp)->tnext)
    if (finished((*pp)->state))
      last_fin = pp;
  if (last_fin) {
    struct job *j = *last_fin;
    *last_fin = j->tnext;
    js->n_table--;
    j->refs--;
    if (j->refs == 0)
      job_destroy(j); /* no one else can reach it */
  }
}

/* ---- public ---- */

const char *job_state_name(enum job_state s)
{
  static const char *const n[] = {"queued", "running", "done", "failed", "cancelled"};
  return n[s];
}

const char *job_id(const struct job *j) { return j->id; }

const char *job_who(const struct job *j) { return j->req.who; }

const struct job_ops *job_ops(const struct job *j) { return j->req.ops; }

void job_ref(struct job *j)
{
  pthread_mutex_lock(&j->js->lock);
  j->refs++;
  pthread_mutex_unlock(&j->js->lock);
}

void job_unref(struct job *j)
{
  if (j == NULL)
    return;
  struct jobs *js = j->js;
  pthread_mutex_lock(&js->lock);
  int gone = --j->refs == 0;
  pthread_mutex_unlock(&js->lock);
  if (gone)
    job_destroy(j);
}

enum job_state job_state(struct job *j)
{
  pthread_mutex_lock(&j->js->lock);
  enum job_state s = j->state;
  pthread_mutex_unlock(&j->js->lock);
  return s;
}

void job_progress_note(struct job *j, long units_done)
{
  pthread_mutex_lock(&j->js->lock);
  if (units_done > j->units_done && !finished(j->state))
    j->units_done = units_done > j->units_total ? j->units_total : units_done;
  pthread_mutex_unlock(&j->js->lock);
}

int job_cancelled(struct job *j)
{
  pthread_mutex_lock(&j->js->lock);
  int c = j->cancel || j->js->stopping ||
          (j->started_us && aced_now_us() - j->started_us > j->js->job_timeout_us);
  pthread_mutex_unlock(&j->js->lock);
  return c;
}

json_t *job_result(struct job *j) { return j->result; }

void job_error(struct job *j, struct aced_error *err)
{
  pthread_mutex_lock(&j->js->lock);
  *err = j->err;
  pthread_mutex_unlock(&j->js->lock);
}

json_t *job_to_json(struct job *j, int with_result)
{
  struct jobs *js = j->js;
  pthread_mutex_lock(&js->lock);
  int64_t end = finished(j->state) ? j->finished_us : aced_now_us();
  int64_t begin = j->started_us ? j->started_us : end;
  char created[32];
  struct tm tm;
  gmtime_r(&j->created_wall, &tm);
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_t *o = json_pack(
      "{s:s,s:s,s:s,s:s,s:{s:I,s:I},s:f,s:f,s:s}", "id", j->id, "kind",
      j->req.ops->name, "model", j->req.model, "state",
      job_state_name(j->state), "progress", "done", (json_int_t)j->units_done,
      "total", (json_int_t)j->units_total, "elapsed_ms", (end - begin) / 1e3,
      "queued_ms", ((j->started_us ? j->started_us : end) - j->created_us) / 1e3,
      "created_at", created);
  if (o && j->state == JOB_FAILED) {
    json_t *e = error_json(&j->err); /* {"error": {...}}: keep the inner object */
    json_object_set(o, "error", json_object_get(e, "error"));
    json_decref(e);
  }
  if (o && with_result && j->state == JOB_DONE && j->result) {
    json_t *res = json_deep_copy(j->result);
    json_t *meta = json_object_get(res, "meta");
    if (json_is_object(meta))
      json_object_set_new(meta, "elapsed_ms", json_real((end - j->created_us) / 1e3));
    json_object_set_new(o, "result", res);
  }
  pthread_mutex_unlock(&js->lock);
  return o;
}

int jobs_flight_key(const struct job_request *req, char key[JOB_FLIGHT_KEY_MAX])
{
  key[0] = '\0';
  char *text = req->params ? json_dumps(req->params, JSON_COMPACT | JSON_SORT_KEYS |
                                                        JSON_REAL_PRECISION(17) |
                                                        JSON_ENCODE_ANY)
                           : strdup("null");
  if (text == NULL)
    return -1;
  struct sha256_ctx ctx;
  uint8_t h[SHA256_DIGEST_SIZE];
  sha256_init(&ctx);
  sha256_update(&ctx, strlen(text), (const uint8_t *)text);
  sha256_digest(&ctx, sizeof h, h);
  free(text);
  int n = snprintf(key, JOB_FLIGHT_KEY_MAX, "%s|%s|%d|%s|", req->ops->name, req->digest,
                   req->version, req->model);
  if (n < 0 || n + 2 * SHA256_DIGEST_SIZE >= JOB_FLIGHT_KEY_MAX) {
    key[0] = '\0';
    return -1;
  }
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
    key[n++] = hex[h[i] >> 4];
    key[n++] = hex[h[i] & 15];
  }
  key[n] = '\0';
  return 0;
}

/* Register a waiter for j (lock held); w was allocated by the caller. */
static void waiter_add_locked(struct jobs *js, struct job *j, struct waiter *w,
                              const struct job_wait *wait)
{
  j->refs++;
  w->job = j;
  w->deadline_us = wait->deadline_us;
  w->fn = wait->fn;
  w->cls = wait->cls;
  w->next = js->waiters;
  js->waiters = w;
  pthread_cond_signal(&js->timer_cv);
}

/* jobs_submit, and jobs_adopt with `id` (not NULL). */
static enum aced_err submit(struct jobs *js, const char *id, const struct job_request *req,
                            const struct job_wait *wait, struct job **out, int *shared,
                            struct aced_error *err)
{
  *out = NULL;
  *shared = 0;
  char key[JOB_FLIGHT_KEY_MAX] = "";
  if (req->single_flight)
    jobs_flight_key(req, key); /* on failure "": a job of its own */
  struct waiter *w = NULL;
  if (wait != NULL && (w = calloc(1, sizeof *w)) == NULL)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  pthread_mutex_lock(&js->lock);
  if (js->stopping) {
    pthread_mutex_unlock(&js->lock);
    free(w);
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "shutting down");
  }
  if (key[0] != '\0')
    for (struct job *j = js->table; j; j = j->tnext)
      if (!finished(j->state) && !j->cancel && strcmp(j->flight, key) == 0) {
        j->refs++;
        if (w != NULL)
          waiter_add_locked(js, j, w, wait);
        *out = j;
        *shared = 1;
        pthread_mutex_unlock(&js->lock);
        return ACED_OK;
      }
  if (js->queued >= js->queue_max) {
    long queued = js->queued;
    pthread_mutex_unlock(&js->lock);
    free(w);
    return aced_error_set(err, ACED_E_QUEUE_FULL, "",
                          "%ld jobs are waiting (queue_max); retry later", queued);
  }
  struct job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    pthread_mutex_unlock(&js->lock);
    free(w);
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  /* The id: this run's start stamp (JOB_STAMP_DIGITS hex digits, see
   * jobs_id_from_earlier_run), then random hex digits. */
  unsigned char rnd[32 - JOB_STAMP_DIGITS];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    for (size_t i = 0; i < sizeof rnd; i++)
      rnd[i] = (unsigned char)rand();
  snprintf(j->id, sizeof j->id, "%0*llx", JOB_STAMP_DIGITS, js->boot_stamp);
  for (int i = JOB_STAMP_DIGITS; i < 32; i++)
    j->id[i] = "0123456789abcdef"[rnd[i - JOB_STAMP_DIGITS] & 15];
  j->id[32] = '\0';
  if (id != NULL)
    snprintf(j->id, sizeof j->id, "%s", id);
  j->js = js;
  j->req = *req;
  memcpy(j->flight, key, sizeof key);
  json_incref(j->req.params);
  j->state = JOB_QUEUED;
  j->created_us = aced_now_us();
  j->created_wall = time(NULL);
  j->refs = 2; /* table + caller */
  j->tnext = js->table;
  js->table = j;
  js->n_table++;
  js->queued++;
  struct job_journal jr = js->journal;
  /* With a journal, the job is queued once it is recorded: a worker must
   * not plan it (and, say, record its tasks) before its record exists. */
  int journaled = id == NULL && jr.submitted != NULL;
  if (!journaled) {
    queue_push(js, j);
    pthread_cond_signal(&js->work_cv);
  }
  if (w != NULL)
    waiter_add_locked(js, j, w, wait);
  table_trim(js);
  pthread_mutex_unlock(&js->lock);
  *out = j;
  /* before the caller hands out the id: the journal records the job */
  if (journaled) {
    jr.submitted(jr.cls, j, req);
    pthread_mutex_lock(&js->lock);
    if (j->state == JOB_QUEUED && !js->stopping) {
      queue_push(js, j);
      pthread_cond_signal(&js->work_cv);
    }
    pthread_mutex_unlock(&js->lock);
  }
  return ACED_OK;
}

enum aced_err jobs_submit(struct jobs *js, const struct job_request *req,
                          const struct job_wait *wait, struct job **out, int *shared,
                          struct aced_error *err)
{
  return submit(js, NULL, req, wait, out, shared, err);
}

enum aced_err jobs_adopt(struct jobs *js, const char *id, const struct job_request *req,
                         struct job **out, struct aced_error *err)
{
  int shared = 0;
  if (id == NULL || strlen(id) != 32)
    return aced_error_set(err, ACED_E_INTERNAL, "", "jobs_adopt: bad id");
  struct job *old = jobs_find(js, id);
  if (old != NULL) {
    job_unref(old);
    return aced_error_set(err, ACED_E_CONFLICT, "", "job %s is here already", id);
  }
  struct job_request r = *req;
  r.single_flight = 0;
  return submit(js, id, &r, NULL, out, &shared, err);
}

void jobs_set_journal(struct jobs *js, const struct job_journal *jr)
{
  pthread_mutex_lock(&js->lock);
  if (jr != NULL)
    js->journal = *jr;
  else
    memset(&js->journal, 0, sizeof js->journal);
  pthread_mutex_unlock(&js->lock);
}

void jobs_wait(struct jobs *js, struct job *j, int64_t deadline_us,
               job_waiter_fn fn, void *cls)
{
  struct waiter *w = calloc(1, sizeof *w);
  pthread_mutex_lock(&js->lock);
  if (w == NULL || finished(j->state)) {
    pthread_mutex_unlock(&js->lock);
    free(w);
    fn(cls, j, 0);
    return;
  }
  struct job_wait wait = {.fn = fn, .cls = cls, .deadline_us = deadline_us};
  waiter_add_locked(js, j, w, &wait);
  pthread_mutex_unlock(&js->lock);
}

/* A job id starts with the wall-clock millisecond its daemon started, in
 * JOB_STAMP_DIGITS hex digits (enough until the year 2527): an id with an
 * earlier stamp was handed out by an earlier run, whose jobs a restart
 * lost (they live in memory), and is answered 410 rather than 404.
 * Several replicas on one PostgreSQL database each have their own stamp:
 * an id of another replica's job may read as an earlier run's. */
int jobs_id_from_earlier_run(struct jobs *js, const char *id)
{
  if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
    return 0;
  char stamp[JOB_STAMP_DIGITS + 1];
  memcpy(stamp, id, JOB_STAMP_DIGITS);
  stamp[JOB_STAMP_DIGITS] = '\0';
  unsigned long long t = strtoull(stamp, NULL, 16);
  return t >= JOB_STAMP_FIRST && t < js->boot_stamp;
}

struct job *jobs_find(struct jobs *js, const char *id)
{
  pthread_mutex_lock(&js->lock);
  struct job *j = js->table;
  while (j && strcmp(j->id, id) != 0)
    j = j->tnext;
  if (j)
    j->refs++;
  pthread_mutex_unlock(&js->lock);
  return j;
}

/* With the lock held: cancel j; returns waiters to call. */
static struct waiter *cancel_locked(struct jobs *js, struct job *j)
{
  j->cancel = 1;
  aced_error_set(&j->err, ACED_E_CONFLICT, "", "job cancelled");
  if (!j->planned || (j->tasks_running == 0 && j->planned))
    return finish_locked(js, j, JOB_CANCELLED);
  /* Tasks are running: the last one to return finishes it as cancelled.
   * Hand out no further tasks. */
  if (in_queue(js, j))
    queue_remove(js, j);
  return NULL;
}

int jobs_cancel(struct jobs *js, struct job *j)
{
  pthread_mutex_lock(&js->lock);
  if (finished(j->state)) {
    pthread_mutex_unlock(&js->lock);
    return -1;
  }
  struct waiter *w = cancel_locked(js, j);
  pthread_mutex_unlock(&js->lock);
  call_waiters(w, 0);
  return 0;
}

void jobs_cancel_model(struct jobs *js, const char *model)
{
  for (;;) {
    pthread_mutex_lock(&js->lock);
    struct job *j = js->table;
    while (j && (finished(j->state) || j->cancel || strcmp(j->req.model, model) != 0 ||
                 (j->req.ops->flags & JOB_OUTLIVES_SUBJECT)))
      j = j->tnext;
    if (j == NULL) {
      pthread_mutex_unlock(&js->lock);
      return;
    }
    struct waiter *w = cancel_locked(js, j);
    pthread_mutex_unlock(&js->lock);
    call_waiters(w, 0);
  }
}

void jobs_stats(struct jobs *js, struct jobs_stats *st)
{
  pthread_mutex_lock(&js->lock);
  st->queued = js->queued;
  st->running = js->running;
  st->workers = js->n_workers;
  st->busy = js->busy;
  pthread_mutex_unlock(&js->lock);
}

/* ---- workers ---- */

/* Complete a job whose tasks are all done (or that failed/cancelled). */
static void complete(struct jobs *js, struct job *j)
{
  /* lock held on entry and exit */
  struct waiter *w;
  if (j->cancel && j->err.code == ACED_E_CONFLICT) {
    w = finish_locked(js, j, JOB_CANCELLED);
  } else if (j->cancel) {
    w = finish_locked(js, j, JOB_FAILED);
  } else {
    js->busy++;
    j->active++;
    pthread_mutex_unlock(&js->lock);
    struct aced_error err = {0};
    json_t *res = j->req.ops->finish(j->work, &err);
    pthread_mutex_lock(&js->lock);
    js->busy--;
    j->active--;
    if (res) {
      j->result = res;
      w = finish_locked(js, j, JOB_DONE);
    } else {
      if (err.code == ACED_OK)
        aced_error_set(&err, ACED_E_INTERNAL, "", "job produced no result");
      j->err = err;
      w = finish_locked(js, j, JOB_FAILED);
    }
  }
  int served = 0;
  for (struct waiter *x = w; x; x = x->next)
    served++;
  pthread_mutex_unlock(&js->lock);
  call_waiters(w, 0);
  pthread_mutex_lock(&js->lock);
  /* A synchronous result that every waiter has received is not kept:
   * nobody can ask for it again (they never saw the job id), and results
   * can be megabytes.  Results of 202'd and background jobs stay for GET. */
  if (served > 0 && !j->waited_out && !(j->req.ops->flags & JOB_KEEP_RESULT) &&
      j->result) {
    json_decref(j->result);
    j->result = NULL;
  }
}

static void *worker_main(void *arg)
{
  struct jobs *js = arg;
  pthread_mutex_lock(&js->lock);
  for (;;) {
    while (!js->stopping && js->qhead == NULL)
      pthread_cond_wait(&js->work_cv, &js->lock);
    if (js->stopping)
      break;
    struct job *j = js->qhead;
    j->refs++;
    if (!j->planned) {
      /* Plan step: take the job out of the queue while planning so that
       * no other worker picks it; put it back if it has tasks. */
      queue_remove(js, j);
      j->planned = 1;
      js->queued--;
      js->running++;
      j->state = JOB_RUNNING;
      j->started_us = aced_now_us();
      js->busy++;
      j->active++;
      pthread_mutex_unlock(&js->lock);
      struct aced_error err = {0};
      int n = 0;
      long units = 0;
      void *w = j->req.ops->plan(js->ctx, j, &j->req, &n, &units, &err);
      pthread_mutex_lock(&js->lock);
      js->busy--;
      j->active--;
      j->work = w;
      if (w == NULL && !j->cancel) {
        if (err.code == ACED_OK) /* a failure must never read as success */
          aced_error_set(&err, ACED_E_INTERNAL, "", "job failed");
        j->err = err;
        j->cancel = 1;
      }
      if (!j->cancel) {
        j->n_tasks = n;
        j->units_total = units;
      }
      if (j->cancel || n == 0) {
        complete(js, j);
      } else {
        queue_push(js, j);
        /* its tasks are for every idle worker, not just this one */
        pthread_cond_broadcast(&js->work_cv);
      }
    } else {
      int i = j->next_task++;
      if (j->next_task == j->n_tasks)
        queue_remove(js, j);
      j->tasks_running++;
      js->busy++;
      j->active++;
      pthread_mutex_unlock(&js->lock);
      struct aced_error err = {0};
      long done = -1;
      if (!job_cancelled(j))
        done = j->req.ops->task(j->work, i, &err);
      else
        aced_error_set(&err, ACED_E_UNAVAILABLE, "",
                       "job stopped (cancelled, timed out or shutting down)");
      pthread_mutex_lock(&js->lock);
      js->busy--;
      j->active--;
      j->tasks_running--;
      j->tasks_done++;
      if (done < 0 && !j->cancel) {
        j->err = err;
        j->cancel = 1;
        if (in_queue(js, j))
          queue_remove(js, j);
      } else if (done > 0) {
        j->units_done += done;
      }
      if (j->tasks_running == 0 &&
          (j->tasks_done == j->n_tasks || j->cancel) && !finished(j->state))
        complete(js, j);
    }
    if (finished(j->state))
      release_inputs_locked(j);
    pthread_mutex_unlock(&js->lock);
    job_unref(j);
    pthread_mutex_lock(&js->lock);
  }
  pthread_mutex_unlock(&js->lock);
  return NULL;
}

/* The timer thread answers waiters whose deadline has passed. */
static void *timer_main(void *arg)
{
  struct jobs *js = arg;
  pthread_mutex_lock(&js->lock);
  while (!js->stopping) {
    int64_t now = aced_now_us(), next = now + 1000000;
    struct waiter *due = NULL;
    for (struct waiter **pp = &js->waiters; *pp;) {
      struct waiter *w = *pp;
      if (w->deadline_us <= now) {
        *pp = w->next;
        w->next = due;
        due = w;
        w->job->waited_out = 1;
      } else {
        if (w->deadline_us < next)
          next = w->deadline_us;
        pp = &w->next;
      }
    }
    if (due) {
      pthread_mutex_unlock(&js->lock);
      call_waiters(due, 1);
      pthread_mutex_lock(&js->lock);
      continue;
    }
    /* condition variables wait on CLOCK_REALTIME by default */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wait_us = next - now;
    ts.tv_sec += wait_us / 1000000;
    ts.tv_nsec += (wait_us % 1000000) * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&js->timer_cv, &js->lock, &ts);
  }
  pthread_mutex_unlock(&js->lock);
  return NULL;
}

struct jobs *jobs_create(void *ctx, int workers, long queue_max, long job_timeout_s)
{
  struct jobs *js = calloc(1, sizeof *js);
  if (js == NULL)
    return NULL;
  js->ctx = ctx;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  js->boot_stamp = ((unsigned long long)now.tv_sec * 1000ULL +
                    (unsigned long long)now.tv_nsec / 1000000ULL) &
                   ((1ULL << (4 * JOB_STAMP_DIGITS)) - 1);
  js->queue_max = queue_max;
  js->job_timeout_us = job_timeout_s * 1000000L;
  js->n_workers = workers;
  pthread_mutex_init(&js->lock, NULL);
  pthread_cond_init(&js->work_cv, NULL);
  pthread_cond_init(&js->timer_cv, NULL);
  pthread_cond_init(&js->idle_cv, NULL);
  js->workers = calloc((size_t)workers, sizeof(pthread_t));
  if (js->workers == NULL) {
    free(js);
    return NULL;
  }
  for (int i = 0; i < workers; i++)
    pthread_create(&js->workers[i], NULL, worker_main, js);
  pthread_create(&js->timer, NULL, timer_main, js);
  return js;
}

void jobs_shutdown(struct jobs *js)
{
  if (js == NULL)
    return;
  pthread_mutex_lock(&js->lock);
  if (js->stopping) {
    pthread_mutex_unlock(&js->lock);
    return;
  }
  js->stopping = 1;
  pthread_cond_broadcast(&js->work_cv);
  pthread_cond_broadcast(&js->timer_cv);
  pthread_mutex_unlock(&js->lock);
  /* Workers finish the task in hand (job_cancelled() is now true, so big
   * jobs stop at the next task boundary) and exit. */
  for (int i = 0; i < js->n_workers; i++)
    pthread_join(js->workers[i], NULL);
  pthread_join(js->timer, NULL);
  /* Whatever has not finished fails, and its waiters get their answer. */
  pthread_mutex_lock(&js->lock);
  for (;;) {
    struct job *j = js->table;
    while (j && finished(j->state))
      j = j->tnext;
    if (j == NULL)
      break;
    aced_error_set(&j->err, ACED_E_UNAVAILABLE, "", "daemon shutting down");
    struct waiter *w = finish_locked(js, j, JOB_FAILED);
    pthread_mutex_unlock(&js->lock);
    call_waiters(w, 0);
    pthread_mutex_lock(&js->lock);
  }
  struct waiter *rest = js->waiters;
  js->waiters = NULL;
  pthread_mutex_unlock(&js->lock);
  call_waiters(rest, 1);
}

void jobs_free(struct jobs *js)
{
  if (js == NULL)
    return;
  struct job *j = js->table;
  while (j) {
    struct job *next = j->tnext;
    if (--j->refs == 0)
      job_destroy(j);
    j = next;
  }
  free(js->workers);
  pthread_mutex_destroy(&js->lock);
  pthread_cond_destroy(&js->work_cv);
  pthread_cond_destroy(&js->timer_cv);
  pthread_cond_destroy(&js->idle_cv);
  free(js);
}
