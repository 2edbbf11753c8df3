/* SPDX-License-Identifier: Apache-2.0 */
/* Logging with syslog levels and a stable ID per warning/error site (e.g.
 * "BRK-FRAMEMAX") so operators can grep and alert on it. The level is
 * checked before anything is formatted. Each line is one write(2) to
 * stderr or to a log file (O_APPEND), so lines from several threads never
 * interleave; the file can be reopened (SIGHUP, after logrotate) and the
 * level changed while threads log. Three formats: text (the default),
 * json (one object per line) and logfmt. */
#ifndef PARLEY_COMMON_LOG_H
#define PARLEY_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pl_log_level {
	PL_LOG_ERR = 3,
	PL_LOG_WARN = 4,
	PL_LOG_NOTICE = 5,
	PL_LOG_INFO = 6,
	PL_LOG_DEBUG = 7
};

/* Read by the macros below; change it with pl_log_set_level. */
extern _Atomic int pl_log_level;

/* Sets the node name printed on every line; the string is copied. Call
 * before other threads log. */
void pl_log_set_node(const char *node);
void pl_log_write(int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "error", "warn", "notice", "info", "debug" <-> PL_LOG_*. parse returns
 * -1 for an unknown name; name returns "?" for an unknown level. */
int pl_log_level_parse(const char *name);
const char *pl_log_level_name(int level);
void pl_log_set_level(int level);

/* "text", "json" or "logfmt"; returns 0, or -1 for an unknown name. */
int pl_log_set_format(const char *name);

/* Sends lines to path (appended, created 0640) instead of stderr; NULL
 * goes back to stderr. Returns 0, or -1 with a message in err. */
int pl_log_open(const char *path, char *err, size_t errlen);
/* Reopens the current file at its path (after it was rotated away): lines
 * written meanwhile go to the old or the new file, never nowhere. Returns
 * 0 (also when logging to stderr), or -1 with a message in err. */
int pl_log_reopen(char *err, size_t errlen);
/* Closes the log file (back to stderr). */
void pl_log_close(void);

/* A log site whose repeats are summarised: the first line of each second
 * is written, later ones are only counted, and the count is written once
 * the second is over ("... and N more like this"). For refusals and slow
 * clients, which come in bursts. Loop thread only. */
typedef struct pl_log_site {
	const char *id;
	int level;
	uint64_t window_start; /* mono ms */
	uint64_t suppressed;
	bool linked;
	struct pl_log_site *next;
} pl_log_site;

/* True when this occurrence should be written. */
bool pl_log_site_admit(pl_log_site *s);
/* Writes the pending counts of sites whose second is over; call about once
 * a second. Returns how many lines were suppressed in all. */
uint64_t pl_log_flush_summaries(void);
/* Lines suppressed by summaries since start. */
uint64_t pl_log_suppressed_total(void);

#define PL_LOG(level, id, ...)                                                 \
	do {                                                                   \
		if ((level) <= pl_log_level) {                                 \
			pl_log_write((level), (id), __VA_ARGS__);              \
		}                                                              \
	} while (0)
#define LOG_ERR(id, ...) PL_LOG(PL_LOG_ERR, id, __VA_ARGS__)
#define LOG_WARN(id, ...) PL_LOG(PL_LOG_WARN, id, __VA_ARGS__)
#define LOG_NOTICE(id, ...) PL_LOG(PL_LOG_NOTICE, id, __VA_ARGS__)
#define LOG_INFO(id, ...) PL_LOG(PL_LOG_INFO, id, __VA_ARGS__)
#define LOG_DEBUG(id, ...) PL_LOG(PL_LOG_DEBUG, id, __VA_ARGS__)

/* Like PL_LOG, summarised per second (see pl_log_site). */
#define LOG_SUMMARY(level, id, ...)                                            \
	do {                                                                   \
		static pl_log_site site_ = { id, level, 0, 0, false, NULL };   \
		if ((level) <= pl_log_level && pl_log_site_admit(&site_)) {    \
			pl_log_write((level), (id), __VA_ARGS__);              \
		}                                                              \
	} while (0)

#endif
