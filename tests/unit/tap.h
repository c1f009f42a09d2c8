/*
 * tap.h -- a minimal Test Anything Protocol emitter for the C unit tests.
 * Each check prints "ok N - what" or "not ok N - what"; tap_done() prints
 * the plan and returns the exit status (non-zero when anything failed).
 */
#ifndef ACED_TAP_H
#define ACED_TAP_H

#include <math.h>
#include <stdio.h>
#include <stdarg.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int tap_ok(int cond, const char *fmt, ...)
{
  va_list ap;
  printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  if (!cond)
    tap_failed++;
  fflush(stdout);
  return cond;
}

/* |got - want| <= tol, printing both on failure. */
#define tap_close(got, want, tol, ...)                                        \
  do {                                                                        \
    double tap_g_ = (got), tap_w_ = (want);                                   \
    if (!tap_ok(fabs(tap_g_ - tap_w_) <= (tol), __VA_ARGS__))                 \
      printf("#   got %.17g want %.17g (diff %.3g, tol %.3g)\n", tap_g_,      \
             tap_w_, fabs(tap_g_ - tap_w_), (double)(tol));                   \
  } while (0)

static inline void tap_diag(const char *fmt, ...)
{
  va_list ap;
  printf("# ");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

static inline int tap_done(void)
{
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}

#endif
