/*
 * handler_metrics.c -- GET /metrics: Prometheus text format.  No
 * authentication: it reveals counts and route names, never model content.
 */
#include "config.h"

#include <stdlib.h>

#include "aced/metrics.h"
#include "api/api.h"

MHD_RESULT handler_metrics(struct request *rq)
{
  struct metrics_gauges g;
  struct jobs_stats st;
  struct aced_error err;
  jobs_stats(rq->srv->jobs, &st);
  if (rq->srv->store->ops->model_count(rq->srv->store, &g.models, &err) != ACED_OK)
    g.models = -1;
  if (rq->srv->store->ops->cache_count(rq->srv->store, &g.cache_entries, &err) != ACED_OK)
    g.cache_entries = -1;
  g.queue_depth = st.queued;
  g.jobs_running = st.running;
  g.workers = st.workers;
  g.workers_busy = st.busy;
  g.models_loaded = svc_loaded_count();
  char *text = metrics_render(&g);
  if (text == NULL)
    return reply_error(rq, ACED_E_UNAVAILABLE, "", "out of memory");
  MHD_RESULT r = reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text);
  free(text);
  return r;
}
