/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines (see log.h): formatted into a stack buffer and written with
 * one write(2). The log file is reopened by opening the path again and
 * dup2()ing the new descriptor over the old number, so writers on other
 * threads never see a closed descriptor. */
#include "common/log.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { FMT_TEXT, FMT_JSON, FMT_LOGFMT };

_Atomic int pl_log_level = PL_LOG_INFO;
static _Atomic int log_format = FMT_TEXT;
static _Atomic int log_fd = STDERR_FILENO;
static char log_node[64] = "-";
static char *log_path; /* loop thread: open/reopen/close */

static pl_log_site *sites; /* loop thread */
static _Atomic uint64_t suppressed_total;

static const char *const level_names[] = { "emerg", "alert", "crit", "error",
	"warn", "notice", "info", "debug" };

void
pl_log_set_node(const char *node)
{
	snprintf(log_node, sizeof(log_node), "%s", node ? node : "-");
}

int
pl_log_level_parse(const char *name)
{
	for (int l = PL_LOG_ERR; l <= PL_LOG_DEBUG; l++) {
		if (name && strcmp(name, level_names[l]) == 0) {
			return l;
		}
	}
	return -1;
}

const char *
pl_log_level_name(int level)
{
	return level >= 0 && level <= PL_LOG_DEBUG ? level_names[level] : "?";
}

void
pl_log_set_level(int level)
{
	if (level >= PL_LOG_ERR && level <= PL_LOG_DEBUG) {
		atomic_store(&pl_log_level, level);
	}
}

int
pl_log_set_format(const char *name)
{
	static const char *const names[] = { "text", "json", "logfmt" };

	for (int i = 0; i < 3; i++) {
		if (name && strcmp(name, names[i]) == 0) {
			atomic_store(&log_format, i);
			return 0;
		}
	}
	return -1;
}

/* ---- file ---- */

static int
open_path(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0 && err) {
		snprintf(err, errlen, "cannot open log file %s: %s", path,
		    strerror(errno));
	}
	return fd;
}

int
pl_log_open(const char *path, char *err, size_t errlen)
{
	int fd;
	char *p;

	if (path == NULL) {
		pl_log_close();
		return 0;
	}
	if ((fd = open_path(path, err, errlen)) < 0) {
		return -1;
	}
	if ((p = strdup(path)) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pl_log_close();
	log_path = p;
	atomic_store(&log_fd, fd);
	return 0;
}

int
pl_log_reopen(char *err, size_t errlen)
{
	int fd, cur = atomic_load(&log_fd);

	if (log_path == NULL) {
		return 0;
	}
	if ((fd = open_path(log_path, err, errlen)) < 0) {
		return -1;
	}
	if (dup2(fd, cur) < 0) {
		snprintf(err, errlen, "dup2: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void
pl_log_close(void)
{
	int fd = atomic_exchange(&log_fd, STDERR_FILENO);

	if (fd != STDERR_FILENO) {
		close(fd);
	}
	free(log_path);
	log_path = NULL;
}

/* ---- lines ---- */

/* Appends s to buf at *o, escaped for a JSON string (json) or a quoted
 * logfmt value; control characters become \u00XX or are dropped. */
static void
put_escaped(char *buf, size_t cap, size_t *o, const char *s)
{
	for (; *s && *o + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[(*o)++] = '\\';
			buf[(*o)++] = (char)c;
		} else if (c == '\n') {
			buf[(*o)++] = '\\';
			buf[(*o)++] = 'n';
		} else if (c < 0x20) {
			*o +=
			    (size_t)snprintf(buf + *o, cap - *o, "\\u%04x", c);
		} else {
			buf[(*o)++] = (char)c;
		}
	}
}

static void
put(char *buf, size_t cap, size_t *o, const char *s)
{
	size_t n = strlen(s);

	if (n > cap - *o - 2) {
		n = cap - *o - 2;
	}
	memcpy(buf + *o, s, n);
	*o += n;
}

void
pl_log_write(int level, const char *id, const char *fmt, ...)
{
	char msg[1024], line[2600], ts[80];
	struct timespec tspec;
	struct tm tm;
	va_list ap;
	size_t o = 0;
	const char *lv = level_names[level & 7];
	int fmt_id;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &tspec);
	gmtime_r(&tspec.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long)(tspec.tv_nsec / 1000000) % 1000);
	id = id ? id : "-";
	fmt_id = atomic_load(&log_format);
	switch (fmt_id) {
	case FMT_JSON:
	case FMT_LOGFMT: {
		/* key, value, quoted in logfmt (json quotes every value) */
		const struct {
			const char *k, *v;
			bool quote;
		} f[] = { { "ts", ts, false }, { "level", lv, false },
			{ "node", log_node, true }, { "id", id, false },
			{ "msg", msg, true } };
		bool json = fmt_id == FMT_JSON;

		put(line, sizeof(line), &o, json ? "{" : "");
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
			bool q = json || f[i].quote;
			put(line, sizeof(line), &o,
			    i ? (json ? "," : " ") : "");
			put(line, sizeof(line), &o, json ? "\"" : "");
			put(line, sizeof(line), &o, f[i].k);
			put(line, sizeof(line), &o, json ? "\":" : "=");
			put(line, sizeof(line), &o, q ? "\"" : "");
			put_escaped(line, sizeof(line), &o, f[i].v);
			put(line, sizeof(line), &o, q ? "\"" : "");
		}
		put(line, sizeof(line), &o, json ? "}" : "");
		break;
	}
	default:
		o = (size_t)snprintf(line, sizeof(line) - 1, "%s %s %s [%s] %s",
		    ts, log_node, lv, id, msg);
		if (o > sizeof(line) - 2) {
			o = sizeof(line) - 2;
		}
		break;
	}
	line[o++] = '\n';
	/* One write per line; a short write to a full disk loses the rest. */
	if (write(atomic_load(&log_fd), line, o) < 0) {
		/* Nowhere left to report it. */
	}
}

/* ---- summaries ---- */

#define SUMMARY_WINDOW_MS 1000

static void
summarise(pl_log_site *s)
{
	if (s->suppressed > 0) {
		pl_log_write(s->level, s->id,
		    "... and %llu more like this in the last second",
		    (unsigned long long)s->suppressed);
		s->suppressed = 0;
	}
}

bool
pl_log_site_admit(pl_log_site *s)
{
	uint64_t now = pl_mono_ms();

	if (!s->linked) {
		s->linked = true;
		s->next = sites;
		sites = s;
	}
	if (s->window_start != 0 && now - s->window_start < SUMMARY_WINDOW_MS) {
		s->suppressed++;
		atomic_fetch_add(&suppressed_total, 1);
		return false;
	}
	summarise(s);
	s->window_start = now;
	return true;
}

uint64_t
pl_log_flush_summaries(void)
{
	uint64_t now = pl_mono_ms(), n = 0;

	for (pl_log_site *s = sites; s; s = s->next) {
		if (s->suppressed > 0 &&
		    now - s->window_start >= SUMMARY_WINDOW_MS) {
			n += s->suppressed;
			summarise(s);
		}
	}
	return n;
}

uint64_t
pl_log_suppressed_total(void)
{
	return atomic_load(&suppressed_total);
}
