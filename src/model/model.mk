# src/model/model.mk -- registration parsing, validation, canonical form.
libaced_core_a_SOURCES += \
	include/aced/model.h \
	src/model/model.c \
	src/model/canonical.c \
	src/model/describe.c \
	src/model/graph.c \
	src/model/internal.h \
	src/model/transform.c \
	src/model/training.c \
	src/model/recurrent.c

check_PROGRAMS += tests/unit/test_model tests/unit/test_model_ext
TESTS += tests/unit/test_model tests/unit/test_model_ext
tests_unit_test_model_SOURCES = tests/unit/test_model.c tests/unit/modeltest.h
tests_unit_test_model_ext_SOURCES = tests/unit/test_model_ext.c tests/unit/modeltest.h
EXTRA_DIST += tests/data/models/good_tiny_linear.json

# ONNX import: onnx.c reads models through C bindings that protoc-c
# generates from the installed onnx.proto (configure's ONNX_PROTO) into
# gen/onnx/ of the build tree; they are never committed.
libaced_core_a_SOURCES += src/model/onnx.c src/model/onnx_graph.c src/model/onnx_rnn.c \
	src/model/onnx.h
nodist_libaced_core_a_SOURCES = gen/onnx/onnx.pb-c.c gen/onnx/onnx.pb-c.h
BUILT_SOURCES = gen/onnx/onnx.pb-c.h
AM_CPPFLAGS += -I$(top_builddir)/gen $(PROTOBUF_C_CFLAGS)
LDADD += $(PROTOBUF_C_LIBS)
CLEANFILES += gen/onnx/onnx.pb-c.c gen/onnx/onnx.pb-c.h gen/onnx/onnx.proto
gen/onnx/onnx.pb-c.h: gen/onnx/onnx.pb-c.c
gen/onnx/onnx.pb-c.c: $(ONNX_PROTO)
	$(MKDIR_P) gen/onnx
	cp '$(ONNX_PROTO)' gen/onnx/onnx.proto
	cd gen && '$(PROTOC_C)' --c_out=. onnx/onnx.proto
check_PROGRAMS += tests/unit/test_onnx
TESTS += tests/unit/test_onnx
