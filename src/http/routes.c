/*
 * routes.c -- the one route table.  http.c matches method and path here,
 * answers 404/405, enforces the scope and, for routes that take a body,
 * checks its type and size cap and parses it before calling the handler.
 * A registration may be as large as max_body_bytes; a query body is
 * capped at ACED_QUERY_BODY_MAX (limits.h) as well.
 */
#include "config.h"

#include "aced/auth.h"
#include "aced/handlers.h"

const struct route aced_routes[] = {
    /* method    pattern                                        handler                 scope       body       cap */
    {"GET",    "/healthz",                                     handler_healthz,            0,          BODY_NONE, 0},
    {"GET",    "/readyz",                                      handler_readyz,             0,          BODY_NONE, 0},
    {"GET",    "/metrics",                                     handler_metrics,            0,          BODY_NONE, 0},
    {"POST",   "/v1/models",                                   handler_models_post,        AUTH_WRITE, BODY_JSON, 0},
    {"GET",    "/v1/models",                                   handler_models_list,        AUTH_READ,  BODY_NONE, 0},
    {"GET",    "/v1/models/{name}",                            handler_model_get,          AUTH_READ,  BODY_NONE, 0},
    {"DELETE", "/v1/models/{name}",                            handler_model_delete,       AUTH_WRITE, BODY_NONE, 0},
    {"POST",   "/v1/models/{name}/interventions",              handler_interventions_post, AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX},
    {"GET",    "/v1/models/{name}/regressors/{output}/{feature}", handler_regressor_get,   AUTH_READ,  BODY_NONE, 0},
    {"POST",   "/v1/models/{name}/regressors",                 handler_regressors_post,    AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX},
    {"POST",   "/v1/models/{name}/attributions",               handler_attributions_post,  AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX},
    {"GET",    "/v1/jobs/{id}",                                handler_job_get,            AUTH_READ,  BODY_NONE, 0},
    {"DELETE", "/v1/jobs/{id}",                                handler_job_delete,         AUTH_READ,  BODY_NONE, 0},
};
const int aced_n_routes = sizeof aced_routes / sizeof aced_routes[0];
