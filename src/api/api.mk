# src/api/api.mk -- one file per route (handler_<route>.c), the request
# body specs and what the handlers share.
libaced_core_a_SOURCES += \
	include/aced/handlers.h \
	src/api/api.h \
	src/api/common.c \
	src/api/spec.h \
	src/api/spec.c \
	src/api/handler_healthz.c \
	src/api/handler_readyz.c \
	src/api/handler_metrics.c \
	src/api/handler_openapi_get.c \
	src/api/handler_models_post.c \
	src/api/handler_models_list.c \
	src/api/handler_model_get.c \
	src/api/handler_model_delete.c \
	src/api/handler_interventions_post.c \
	src/api/handler_regressor_get.c \
	src/api/handler_regressors_post.c \
	src/api/handler_attributions_post.c \
	src/api/handler_explanations_post.c \
	src/api/handler_graph_get.c \
	src/api/handler_graph_post.c \
	src/api/handler_graph_put.c \
	src/api/handler_significance_post.c \
	src/api/handler_job_get.c \
	src/api/handler_job_delete.c \
	src/api/handler_ui_get.c
