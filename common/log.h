/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr with syslog levels and a stable ID per warning/error site
 * (e.g. "BRK-FRAMEMAX") so operators can grep and alert on it. The level is
 * checked before anything is formatted. Thread-safe (one fprintf per line). */
#ifndef PARLEY_COMMON_LOG_H
#define PARLEY_COMMON_LOG_H

enum pl_log_level {
	PL_LOG_ERR = 3,
	PL_LOG_WARN = 4,
	PL_LOG_NOTICE = 5,
	PL_LOG_INFO = 6,
	PL_LOG_DEBUG = 7
};

extern int pl_log_level;

/* Sets the node name printed on every line; the string is copied. */
void pl_log_set_node(const char *node);
void pl_log_write(int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

#endif
