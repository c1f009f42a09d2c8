/*
 * handlers.h -- one handler per endpoint, one file per handler
 * (src/api/handler_<route>.c), listed in the route table in
 * src/http/routes.c.
 */
#ifndef ACED_HANDLERS_H
#define ACED_HANDLERS_H

#include "aced/http.h"
#include "aced/jobs.h"
#include "aced/store.h"

MHD_RESULT handler_healthz(struct request *rq);
MHD_RESULT handler_readyz(struct request *rq);
MHD_RESULT handler_metrics(struct request *rq);
MHD_RESULT handler_openapi_get(struct request *rq);
MHD_RESULT handler_models_post(struct request *rq);
MHD_RESULT handler_models_list(struct request *rq);
MHD_RESULT handler_model_get(struct request *rq);
MHD_RESULT handler_model_delete(struct request *rq);
MHD_RESULT handler_interventions_post(struct request *rq);
MHD_RESULT handler_regressor_get(struct request *rq);
MHD_RESULT handler_regressors_post(struct request *rq);
MHD_RESULT handler_attributions_post(struct request *rq);
int handler_attributions_quick(struct request *rq, MHD_RESULT *ret);
MHD_RESULT handler_explanations_post(struct request *rq);
MHD_RESULT handler_graph_get(struct request *rq);
MHD_RESULT handler_graph_put(struct request *rq);
MHD_RESULT handler_graph_post(struct request *rq);
MHD_RESULT handler_significance_post(struct request *rq);
MHD_RESULT handler_job_get(struct request *rq);
MHD_RESULT handler_job_delete(struct request *rq);
MHD_RESULT handler_ui_get(struct request *rq);

#endif
