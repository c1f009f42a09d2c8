/*
 * routes.c -- the one route table.  http.c matches method and path here,
 * answers 404/405, enforces the scope and (for takes_body) parses the JSON
 * body before calling the handler.
 */
#include "config.h"

#include "aced/auth.h"
#include "aced/handlers.h"

const struct route aced_routes[] = {
    /* method    pattern                                        handler                 scope       body */
    {"GET",    "/healthz",                                     handler_healthz,            0,          0},
    {"GET",    "/readyz",                                      handler_readyz,             0,          0},
    {"GET",    "/metrics",                                     handler_metrics,            0,          0},
    {"POST",   "/v1/models",                                   handler_models_post,        AUTH_WRITE, 1},
    {"GET",    "/v1/models",                                   handler_models_list,        AUTH_READ,  0},
    {"GET",    "/v1/models/{name}",                            handler_model_get,          AUTH_READ,  0},
    {"DELETE", "/v1/models/{name}",                            handler_model_delete,       AUTH_WRITE, 0},
    {"POST",   "/v1/models/{name}/interventions",              handler_interventions_post, AUTH_READ,  1},
    {"GET",    "/v1/models/{name}/regressors/{output}/{feature}", handler_regressor_get,   AUTH_READ,  0},
    {"POST",   "/v1/models/{name}/regressors",                 handler_regressors_post,    AUTH_READ,  1},
    {"POST",   "/v1/models/{name}/attributions",               handler_attributions_post,  AUTH_READ,  1},
    {"GET",    "/v1/jobs/{id}",                                handler_job_get,            AUTH_READ,  0},
    {"DELETE", "/v1/jobs/{id}",                                handler_job_delete,         AUTH_READ,  0},
};
const int aced_n_routes = sizeof aced_routes / sizeof aced_routes[0];
