# tests/tests.mk -- shared test support and the end-to-end tests.
# End-to-end tests are Python 3 (standard library only) scripts that
# start the real daemon on a free loopback port and speak HTTP to it;
# they print TAP like the C unit tests.
EXTRA_DIST += tests/unit/tap.h tests/e2e/acedtest.py tests/e2e/allocstat.c tests/e2e/cdp.py

# The reference fixture every test and benchmark reads (nothing reads
# outside the tree), its provenance, and the PyTorch script that
# recomputes its reference values (tools/gen_small_mlp.py --check).
EXTRA_DIST += tests/data/small_mlp.json tests/data/README.md tools/gen_small_mlp.py \
	tests/data/log_softmax_mlp.json tests/data/scm_mlp.json tools/gen_graph_ref.py \
	doc/graph.md
# The unscented transform's PyTorch reference and its generator.
EXTRA_DIST += tests/data/unscented_ref.json tools/gen_unscented_ref.py
# The band's coverage test: a known distribution, its truth and fresh sample sets.
EXTRA_DIST += tests/data/band_ref.json tools/gen_band_ref.py

TEST_EXTENSIONS = .py
PY_LOG_DRIVER = $(LOG_DRIVER)
PY_LOG_COMPILER = $(PYTHON3) -B

E2E_TESTS = \
	tests/e2e/test_openapi.py \
	tests/e2e/test_config.py \
	tests/e2e/test_registry.py \
	tests/e2e/test_errors.py \
	tests/e2e/test_auth.py \
	tests/e2e/test_attribution.py \
	tests/e2e/test_systemd.py \
	tests/e2e/test_crash.py \
	tests/e2e/test_load.py \
	tests/e2e/test_hostile.py \
	tests/e2e/test_layers.py \
	tests/e2e/test_singleflight.py \
	tests/e2e/test_mixed_load.py \
	tests/e2e/test_transform.py \
	tests/e2e/test_pipeline.py \
	tests/e2e/test_register_torch.py \
	tests/e2e/test_errorlog.py \
	tests/e2e/test_explanations.py \
	tests/e2e/test_rexplain.py \
	tests/e2e/test_edges.py \
	tests/e2e/test_openapi_get.py \
	tests/e2e/test_numbers.py \
	tests/e2e/test_security_doc.py \
	tests/e2e/test_prism.py \
	tests/e2e/test_operators.py \
	tests/e2e/test_docs_config.py \
	tests/e2e/test_install.py \
	tests/e2e/test_docpaths.py \
	tests/e2e/test_accesslog.py \
	tests/e2e/test_warm_cache.py \
	tests/e2e/test_quick.py \
	tests/e2e/test_onnx.py \
	tests/e2e/test_register_onnx.py \
	tests/e2e/test_postgres.py \
	tests/e2e/test_job_gone.py \
	tests/e2e/test_postgres_jobs.py \
	tests/e2e/test_pg_split.py \
	tests/e2e/test_deploy.py \
	tests/e2e/test_pg_suites.py \
	tests/e2e/test_cors_cache.py \
	tests/e2e/test_client.py \
	tests/e2e/test_ui.py \
	tests/e2e/test_graph.py \
	tests/e2e/test_graph_learn.py \
	tests/e2e/test_unscented.py \
	tests/e2e/test_band.py \
	tests/e2e/test_significance.py \
	tests/e2e/test_recurrent.py \
	tests/e2e/test_register_gru.py \
	tests/e2e/test_integration.py
TESTS += $(E2E_TESTS)
# ONNX exports and their PyTorch references (tools/gen_onnx_fixtures.py).
EXTRA_DIST += tests/data/onnx tools/gen_onnx_fixtures.py
EXTRA_DIST += $(E2E_TESTS)
# The Node tools of test_prism.py (tools/setup runs npm ci here).
EXTRA_DIST += tests/package.json tests/package-lock.json tests/.npmrc
# A throw-away PostgreSQL cluster for the tests of the PostgreSQL backend.
EXTRA_DIST += tests/pgcluster.sh tests/e2e/pgcluster.py
