/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench helpers every process uses: the clock, own CPU time, the
 * latency histogram and whole-message I/O on the control sockets. */
#include "tests/bench/bench.h"

#include <errno.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * BENCH_NS + ts.tv_nsec;
}

int64_t
bench_cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * BENCH_NS +
	    ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int
bucket_of(uint64_t v)
{
	int e;

	if (v < BENCH_HIST_SUB) {
		return (int)v;
	}
	e = 63 - __builtin_clzll(v);
	/* e >= 5: the top 6 bits select the sub-bucket of that octave. */
	return (e - 4) * BENCH_HIST_SUB +
	    (int)((v >> (e - 5)) & (BENCH_HIST_SUB - 1));
}

static uint64_t
bucket_mid(int b)
{
	int e;
	uint64_t lo;

	if (b < BENCH_HIST_SUB) {
		return (uint64_t)b;
	}
	e = b / BENCH_HIST_SUB + 4;
	lo = (uint64_t)(BENCH_HIST_SUB + b % BENCH_HIST_SUB) << (e - 5);
	return lo + ((1ULL << (e - 5)) >> 1);
}

void
bench_hist_add(uint64_t *h, int64_t v)
{
	int b = bucket_of(v < 0 ? 0 : (uint64_t)v);

	if (b >= BENCH_HIST_BUCKETS) {
		b = BENCH_HIST_BUCKETS - 1;
	}
	h[b]++;
}

uint64_t
bench_hist_count(const uint64_t *h)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		n += h[i];
	}
	return n;
}

int64_t
bench_hist_pct(const uint64_t *h, double q)
{
	uint64_t n = bench_hist_count(h), want, seen = 0;
	int i;

	if (n == 0) {
		return 0;
	}
	want = (uint64_t)(q * (double)n);
	if (want >= n) {
		want = n - 1;
	}
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen > want) {
			return (int64_t)bucket_mid(i);
		}
	}
	return (int64_t)bucket_mid(BENCH_HIST_BUCKETS - 1);
}

int
bench_write_all(int fd, const void *p, size_t len)
{
	const char *s = p;

	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int
bench_read_all(int fd, void *p, size_t len)
{
	char *s = p;

	while (len > 0) {
		ssize_t n = read(fd, s, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}
