/*
 * jsonw.h -- an append-only JSON text writer for hot replies.
 *
 * Building a jansson tree and dumping it costs more than everything else
 * a cached attribution does (most of it printf and small allocations), so
 * the replies on the cached path are written straight into one growing
 * buffer.  The output is the same text json_dumps(JSON_COMPACT |
 * JSON_REAL_PRECISION(17)) would give for the same values: strings
 * escaped as jansson escapes them, reals as "%.17g" with ".0" added when
 * that reads as an integer, non-finite reals as null.
 *
 * Errors are sticky: after a failed allocation every call is a no-op and
 * jw_finish() returns NULL, so callers check once, at the end.
 */
#ifndef ACED_JSONW_H
#define ACED_JSONW_H

#include <stddef.h>
#include <string.h>

struct jw {
  char *buf;
  size_t len, cap;
  int oom;
  /* sink mode: full buffers go to sink(cls, text, n) instead of growing */
  void (*sink)(void *cls, const char *text, size_t n);
  void *sink_cls;
};

/* Start with room for `hint` bytes (0: a default). */
void jw_init(struct jw *w, size_t hint);
/* Sink mode, for text too big to keep (a model's canonical form, hashed
 * as it is written): whenever `chunk` bytes are buffered they are handed
 * to sink and the buffer is emptied.  End with jw_flush, then jw_free. */
void jw_init_sink(struct jw *w, size_t chunk,
                  void (*sink)(void *cls, const char *text, size_t n), void *cls);
/* Hand what is buffered to the sink; 0, or -1 if memory ran out. */
int jw_flush(struct jw *w);
/* jw_raw's growing (or flushing, or failed) case. */
void jw_raw_grow(struct jw *w, const char *s, size_t n);
/* n bytes as they are.  Inline: a reply is some hundred of these, most a
 * few bytes into a buffer with room, where a call costs more than the
 * copy. */
static inline void jw_raw(struct jw *w, const char *s, size_t n)
{
  if (w->len + n < w->cap) { /* room for the text and the final NUL */
    memcpy(w->buf + w->len, s, n);
    w->len += n;
  } else {
    jw_raw_grow(w, s, n);
  }
}
/* jw_raw of a C string (a literal's length is known when it compiles) */
static inline void jw_lit(struct jw *w, const char *s) { jw_raw(w, s, strlen(s)); }
void jw_str(struct jw *w, const char *s); /* a quoted, escaped JSON string */
void jw_real(struct jw *w, double v);
void jw_int(struct jw *w, long long v);
/* The NUL-terminated text (malloc'ed; the caller frees it) and its
 * length, or NULL if memory ran out.  The writer is then empty. */
char *jw_finish(struct jw *w, size_t *len);
void jw_free(struct jw *w);

/* A time in milliseconds to the microsecond, from whole microseconds:
 * always three decimals ("87.911", "0.072", "12.000").  Every time in a
 * reply (elapsed_ms, queued_ms) is written so. */
void jw_ms(struct jw *w, long long us);
/* The keys whose values are times in milliseconds (NULL-terminated). */
extern const char *const jw_ms_keys[];
/* Rewrite, in JSON text written by jansson, the number after each key of
 * jw_ms_keys as jw_ms() writes it (rounded to the microsecond: jansson
 * writes 87.911 as 87.911000000000001).  Returns text itself when there
 * is nothing to change, else a new malloc'ed text (text is freed) with
 * *len updated; NULL if memory ran out (text is freed). */
char *jw_fix_ms(char *text, size_t *len);

/* Render one real as jw_real() does into buf (at least 32 bytes);
 * returns its length. */
size_t jw_format_real(char *buf, double v);
/* The "%.17g" text of v as glibc's snprintf writes it (no jansson
 * touches), into buf (at least 32 bytes); exported for its test. */
size_t jw_format_g17(char *buf, double v);

#endif
