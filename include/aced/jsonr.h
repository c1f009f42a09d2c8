/*
 * jsonr.h -- a quick reader for the plain JSON of query bodies.
 *
 * A cached attribution spends more of its CPU in jansson's parse of the
 * 80-byte request body than in anything else aced does for it: jansson's
 * lexer reads through a callback per byte, buffers every token and
 * converts numbers through a locale-aware copy.  Query bodies are small
 * and plain (ASCII names, numbers, nesting of three or four levels), so
 * this reader takes that subset straight from the buffer and builds the
 * same jansson tree json_loadb(JSON_REJECT_DUPLICATES) builds.
 *
 * It never refuses anything itself: on any input outside its subset
 * (escapes, bytes outside printable ASCII in strings, duplicate keys,
 * deep nesting, a top level that is not an object, numbers jansson would
 * refuse, anything malformed) it returns NULL and the caller parses with
 * jansson, which gives the error message or the tree.  So its answers are
 * either jansson's tree or nothing; tests/unit/test_jsonr.c and the query
 * fuzz target compare the two with json_equal and by type.
 */
#ifndef ACED_JSONR_H
#define ACED_JSONR_H

#include <stddef.h>

#include <jansson.h>

/* The body's tree (a new reference, always an object), or NULL when the
 * caller must parse it with jansson. */
json_t *jsonr_parse(const char *buf, size_t len);

/* The JSON number that starts at p (and ends by `end`) as a double, as
 * json_number_value gives it for the value jansson would parse there.
 * Returns where the number ends, or NULL when there is no well-formed
 * number there or jansson would refuse it (out of range). */
const char *jsonr_number(const char *p, const char *end, double *v);

/* json_object_get(obj, key) for the hot path: a query body has a handful
 * of keys, and comparing them in order costs less than jansson's hash of
 * the key (about 450 instructions a lookup, eleven lookups a cached
 * attribution).  Larger objects are looked up by hash. */
json_t *jsonr_get(const json_t *obj, const char *key);

#endif
