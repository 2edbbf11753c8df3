/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench coordinator side: summing the workers' reports, sampling the
 * servers' CPU and memory from /proc, the scenarios' step sequences and
 * their tables and JSON. */
#ifndef PARLEY_BENCH_REPORT_H
#define PARLEY_BENCH_REPORT_H

#include "tests/bench/bench.h"

#include <jansson.h>

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
	long long srv[BENCH_MAX_URLS]; /* CPU time used, ns; -1 unknown */
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

/* The two halves of bench_step, for a coordinator that acts between
 * them (the reconnect scenario stops a node once the workers are
 * listening). Return 0 or -1. */
int bench_step_send(const bench_cmd *cmd);
int bench_step_collect(bench_agg *agg);

/* Opens the target's sockets on every worker; prints and records under
 * label in j the rate at which they became ready (upgraded, joined, with
 * their presence_state). Returns 0, or -1 when none became ready. */
int
bench_open_all(const bench_opts *o, int target, const char *label, json_t *j);

/* bench_reconnect.c: the reconnect scenario. Returns 0, or -1 when a
 * mover did not come back or presence did not converge. */
int bench_reconnect_scenario(const bench_opts *o, json_t *j);

/* Runs o->scenario and prints its figures. Returns 0 or -1. */
int bench_run_scenario(const bench_opts *o, const char *name);

#endif
