/*
 * clock.h -- the one clock every part of aced measures time with.
 *
 * Monotonic microseconds: request latency, job deadlines, the header
 * watchdog and meta.elapsed_ms all subtract two readings of it, so it
 * must never jump with the wall clock (NTP, an operator's `date -s`).
 */
#ifndef ACED_CLOCK_H
#define ACED_CLOCK_H

#include <stdint.h>

int64_t aced_now_us(void);

#endif
