/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench coordinator side: summing the workers' reports, sampling the
 * servers' CPU and memory from /proc, the scenarios' step sequences and
 * their tables and JSON. */
#ifndef PARLEY_BENCH_REPORT_H
#define PARLEY_BENCH_REPORT_H

#include "tests/bench/bench.h"

/* The reports of one step, summed per process kind. */
typedef struct bench_agg {
	bench_report k[3]; /* K_RECV, K_PUB, K_CEIL */
	double cpu_max[3]; /* busiest process of the kind: CPU / wall time */
	double cpu_sum[3]; /* all processes of the kind, in cores */
	int nproc[3];
	double machine_busy; /* all CPUs over the window: 1 - idle share */
} bench_agg;

/* Server CPU ticks and machine CPU times at one instant. */
typedef struct bench_sample {
	int64_t at;
	long long srv[BENCH_MAX_URLS]; /* utime + stime, clock ticks; -1 */
	long long busy, total;         /* /proc/stat jiffies */
} bench_sample;

/* Adds one process's report to agg. */
void bench_agg_add(bench_agg *agg, const bench_report *r);

void bench_sleep_until(int64_t t);
void bench_sample_take(const bench_opts *o, bench_sample *s);

/* server_cpu[i]: share of one core --server-pid i used between the samples
 * (-1 when unknown); *machine: share of all CPUs busy. */
void bench_sample_diff(const bench_opts *o, const bench_sample *a,
    const bench_sample *b, double *server_cpu, double *machine);

/* Resident memory of pid in KiB from /proc/PID/status, or -1. */
long bench_rss_kib(pid_t pid);

/* Defined in parley_bench.c: runs cmd on every process. Returns 0 or -1. */
int bench_step(const bench_opts *o, const bench_cmd *cmd, bench_agg *agg,
    double *server_cpu);

/* Runs o->scenario and prints its figures. Returns 0 or -1. */
int bench_run_scenario(const bench_opts *o, const char *name);

#endif
