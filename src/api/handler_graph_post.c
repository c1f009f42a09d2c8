/*
 * handler_graph_post.c -- POST /v1/models/{name}/graph with {"method":
 * "dagma" | "notears", "lambda1", "threshold", "max_parents"}: learn a DAG
 * among the inputs from the model's samples as a background job (202 with
 * the job and its Location, like POST .../regressors); its result is the
 * new version that carries the learned graph.  A model without samples is
 * 422 no_samples at once.
 */
#include "config.h"

#include "api/api.h"

static const struct spec_field graph_post_spec[] = {
    {"method", SPEC_STRING, 0, 0},
    {"lambda1", SPEC_NUMBER, 0, 0},
    {"threshold", SPEC_NUMBER, 0, 0},
    {"max_parents", SPEC_INTEGER, 0, 0},
    SPEC_END};

MHD_RESULT handler_graph_post(struct request *rq)
{
  MHD_RESULT ret;
  struct aced_error err;
  struct graph_learn_params p;
  if (api_check_body(rq, graph_post_spec, &ret) != 0)
    return ret;
  if (graph_learn_params_parse(rq->body, &p, &err) != ACED_OK)
    return reply_aced_error(rq, &err);
  struct store_model_row row;
  if (api_model_row(rq, rq->arg[0], &row, &ret) != 0)
    return ret;
  if (row.n_samples < 2) {
    store_model_row_clear(&row);
    return reply_error(rq, ACED_E_NO_SAMPLES, "",
                       "learning a graph needs the model's samples; this model was registered "
                       "with mean and covariance only: give the graph instead (PUT)");
  }
  struct job_request req;
  api_job_for_row(&req, &svc_kind_graph, &row, rq->body);
  return api_run_job(rq, &req, 1);
}
