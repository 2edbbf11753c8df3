/* SPDX-License-Identifier: Apache-2.0 */
/* The process_* metrics every Prometheus client library exports, read from
 * /proc/self and getrusage/getrlimit when /metrics is rendered. */
#include "common/metrics.h"

#include "common/err.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double proc_start_s;

static double
proc_cpu(void *arg)
{
	struct rusage ru;

	(void)arg;
	if (getrusage(RUSAGE_SELF, &ru) != 0) {
		return 0;
	}
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Field 0 (virtual) or 1 (resident) of /proc/self/statm, in bytes. */
static double
statm(int field)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long v[2] = { 0, 0 };

	if (f == NULL) {
		return 0;
	}
	if (fscanf(f, "%lu %lu", &v[0], &v[1]) != 2) {
		v[0] = v[1] = 0;
	}
	fclose(f);
	return (double)v[field] * (double)sysconf(_SC_PAGESIZE);
}

static double
proc_rss(void *arg)
{
	(void)arg;
	return statm(1);
}

static double
proc_vsize(void *arg)
{
	(void)arg;
	return statm(0);
}

static double
proc_fds(void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	double n = 0;

	(void)arg;
	if (d == NULL) {
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n - 1; /* the directory stream's own descriptor */
}

static double
proc_max_fds(void *arg)
{
	struct rlimit rl;

	(void)arg;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return 0;
	}
	return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

static double
proc_start(void *arg)
{
	(void)arg;
	return proc_start_s;
}

/* The kernel's record of when the process started: boot time plus the
 * start field of /proc/self/stat, in clock ticks. */
static double
read_start_time(void)
{
	char buf[1024], *p;
	unsigned long long ticks = 0, btime = 0;
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;
	int field;

	if (f == NULL) {
		return (double)time(NULL);
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces; fields restart after ')'. */
	p = strrchr(buf, ')');
	for (field = 2; p && field < 22; field++) {
		p = strchr(p + 1, ' ');
	}
	if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1) {
		return (double)time(NULL);
	}
	f = fopen("/proc/stat", "re");
	if (f == NULL) {
		return (double)time(NULL);
	}
	while (fgets(buf, sizeof(buf), f)) {
		if (sscanf(buf, "btime %llu", &btime) == 1) {
			break;
		}
	}
	fclose(f);
	if (btime == 0) {
		return (double)time(NULL);
	}
	return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

int
pl_metrics_add_process(pl_metrics *r)
{
	int rc = 0;

	proc_start_s = read_start_time();
	rc |= pl_metrics_counter_fn(r, "process_cpu_seconds_total",
	    "User and system CPU time spent, in seconds.", proc_cpu, NULL,
	    NULL);
	rc |= pl_metrics_gauge_fn(r, "process_resident_memory_bytes",
	    "Resident memory size in bytes.", proc_rss, NULL, NULL);
	rc |= pl_metrics_gauge_fn(r, "process_virtual_memory_bytes",
	    "Virtual memory size in bytes.", proc_vsize, NULL, NULL);
	rc |= pl_metrics_gauge_fn(r, "process_open_fds",
	    "Number of open file descriptors.", proc_fds, NULL, NULL);
	rc |= pl_metrics_gauge_fn(r, "process_max_fds",
	    "Maximum number of open file descriptors.", proc_max_fds, NULL,
	    NULL);
	rc |= pl_metrics_gauge_fn(r, "process_start_time_seconds",
	    "Start time of the process since unix epoch in seconds.",
	    proc_start, NULL, NULL);
	return rc ? PL_EINVAL : PL_OK;
}
