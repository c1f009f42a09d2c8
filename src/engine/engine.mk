# src/engine/engine.mk -- the numerical engine and its tests.
libaced_engine_a_SOURCES += \
	include/aced/engine.h
