/*
 * clock.c -- monotonic microseconds (see clock.h).
 */
#include "config.h"

#include <time.h>

#include "aced/clock.h"

int64_t aced_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
