/* SPDX-License-Identifier: Apache-2.0 */
/* The clocks every module reads: monotonic milliseconds for timeouts and
 * intervals (never jumps), and unix milliseconds for what is shown or stored
 * (timestamps, "since"). One place, so no module grows its own. */
#ifndef PARLEY_COMMON_CLOCK_H
#define PARLEY_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and durations only. */
static inline uint64_t
pl_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Microseconds of CLOCK_MONOTONIC: for latencies measured into
 * histograms, where milliseconds are too coarse. */
static inline uint64_t
pl_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Unix time in milliseconds (CLOCK_REALTIME): may jump with the wall clock. */
static inline uint64_t
pl_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Unix time in nanoseconds. */
static inline uint64_t
pl_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CPU time the calling thread has used, in nanoseconds: how busy the
 * event loop is, whatever else runs on the machine. */
static inline uint64_t
pl_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif
