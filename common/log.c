/* SPDX-License-Identifier: Apache-2.0 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int pl_log_level = PL_LOG_INFO;
static char log_node[64] = "-";

void
pl_log_set_node(const char *node)
{
	snprintf(log_node, sizeof(log_node), "%s", node ? node : "-");
}

void
pl_log_write(int level, const char *id, const char *fmt, ...)
{
	static const char *names[] = { "emerg", "alert", "crit", "error",
		"warn", "notice", "info", "debug" };
	char msg[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s [%s] %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000, log_node, names[level & 7],
	    id ? id : "-", msg);
}
