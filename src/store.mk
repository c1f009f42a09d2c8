# src/store.mk -- persistence (SQLite backend) and its tests.
libaced_core_a_SOURCES += \
	include/aced/store.h
