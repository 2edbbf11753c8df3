/* SPDX-License-Identifier: Apache-2.0 */
/* A table of flags drives defaults, environment twins and argv parsing, so a
 * flag added here is documented, parsed and overridable in one place. */
#include "broker/config.h"

#include "common/err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_STR, T_LONG, T_BOOL };

typedef struct flag {
	const char *name;
	int type;
	size_t off;
	const char *def; /* NULL = unset */
	long min, max;
	const char *help;
} flag;

#define S(f) T_STR, offsetof(brk_config, f)
#define L(f) T_LONG, offsetof(brk_config, f)
#define B(f) T_BOOL, offsetof(brk_config, f)

static const flag flags[] = {
	{ "listen", S(listen), "0.0.0.0:4000", 0, 0,
	    "WebSocket and public HTTP" },
	{ "admin", S(admin), "127.0.0.1:4001", 0, 0,
	    "admin JSON API and /metrics" },
	{ "cluster-listen", S(cluster_listen), "tcp://0.0.0.0:4002", 0, 0,
	    "NNG bus address this node listens on" },
	{ "advertise", S(advertise), NULL, 0, 0,
	    "bus address other nodes dial" },
	{ "cluster-direct-listen", S(cluster_direct_listen), NULL, 0, 0,
	    "address of the addressed path (catch-up requests to one node)" },
	{ "cluster-direct-advertise", S(cluster_direct_advertise), NULL, 0, 0,
	    "addressed-path address other nodes dial" },
	{ "ack-replicas", L(ack_replicas), "1", 1, 16,
	    "nodes that must hold a comment durably before its ok reply" },
	{ "catchup-timeout", L(catchup_timeout), "120", 0, 86400,
	    "seconds a new node waits to catch up with its peers' comments "
	    "before /readyz turns 200 (0: do not wait)" },
	{ "join", S(join), NULL, 0, 0,
	    "comma-separated seed bus URLs, or dns:NAME:PORT" },
	{ "node-name", S(node_name), NULL, 0, 0, "unique name in the cluster" },
	{ "data", S(data), "./data", 0, 0, "LMDB directory" },
	{ "jwt-secret", S(jwt_secret), NULL, 0, 0,
	    "HS256 secret (visible in ps: prefer --jwt-secret-file)" },
	{ "jwt-secret-file", S(jwt_secret_file), NULL, 0, 0,
	    "file of HS256 secrets, one a line, the signing one first "
	    "(reloaded on SIGHUP)" },
	{ "allowed-origins", S(allowed_origins), NULL, 0, 0,
	    "comma-separated origins a browser may connect from" },
	{ "max-devices", L(max_devices), "1", 1, 1000,
	    "devices one user may have online at once" },
	{ "rate-limit", S(rate_limit), "30/60", 0, 0,
	    "actions per user per action kind per window (seconds)" },
	{ "max-comment-bytes", L(max_comment_bytes), "2000", 1, 1 << 20,
	    "longest comment accepted, in bytes of UTF-8" },
	{ "firebase-url", S(firebase_url), NULL, 0, 0,
	    "Firebase Realtime Database base URL (sync off without it)" },
	{ "firebase-auth", S(firebase_auth), NULL, 0, 0,
	    "Firebase auth= token (visible in ps: prefer "
	    "--firebase-auth-file)" },
	{ "firebase-auth-file", S(firebase_auth_file), NULL, 0, 0,
	    "file holding the Firebase auth= token (reloaded on SIGHUP)" },
	{ "firebase-credentials", S(firebase_credentials), NULL, 0, 0,
	    "Google service-account JSON key file: OAuth2 tokens are "
	    "fetched and refreshed" },
	{ "max-message-bytes", L(max_message_bytes), "1048576", 1024, 64 << 20,
	    "largest WebSocket message (close 1009 beyond)" },
	{ "max-channels", L(max_channels), "100", 1, 100000,
	    "channels one socket may join" },
	{ "idle-timeout", L(idle_timeout), "60", 1, 86400,
	    "seconds of silence before a socket is closed" },
	{ "max-out-bytes", L(max_out_bytes), "4194304", 65536, 1L << 30,
	    "unsent bytes one socket may queue before it is closed as a slow "
	    "consumer" },
	{ "max-connections", L(max_connections), "19900", 1, 10000000,
	    "sockets served at once; more are refused" },
	{ "presence-tick-ms", L(presence_tick_ms), "50", 1, 10000,
	    "presence_diff coalescing period (stretches while busy)" },
	{ "drain-timeout", L(drain_timeout), "10", 0, 600,
	    "seconds SIGTERM waits for pending writes" },
	{ "log-level", S(log_level), "info", 0, 0,
	    "error, warn, notice, info or debug (change it live with "
	    "`parley log-level`)" },
	{ "log-format", S(log_format), "text", 0, 0, "text, json or logfmt" },
	{ "log-file", S(log_file), NULL, 0, 0,
	    "append logs to this file, reopened on SIGHUP" },
	{ "admin-token-file", S(admin_token_file), NULL, 0, 0,
	    "file holding the bearer token every admin request but /metrics "
	    "needs (reloaded on SIGHUP); without it --admin must be a "
	    "loopback address" },
	{ "metrics-auth", B(metrics_auth), "0", 0, 1,
	    "require the admin token for /metrics too" },
	{ "cluster-test-hooks", B(cluster_test_hooks), "0", 0, 1,
	    "enable the admin fault-injection endpoint (tests only)" },
	{ "handshake-timeout", L(handshake_timeout), "10", 1, 600,
	    "seconds from accept to a finished upgrade; bytes received do not "
	    "extend it" },
	{ "max-handshakes", L(max_handshakes), "0", 0, 10000000,
	    "sockets not yet upgraded; the oldest makes room for a newcomer "
	    "once over 1 s old or 4x this (0: an eighth of "
	    "--max-connections)" },
	{ "max-handshakes-per-ip", L(max_handshakes_per_ip), "128", 0, 10000000,
	    "sockets not yet upgraded per source address, IPv6 per /64 (0: no "
	    "cap)" },
	{ "max-sockets-per-user", L(max_sockets_per_user), "64", 0, 10000000,
	    "upgraded sockets one user may hold on this node; more get 429 "
	    "(0: no cap)" },
	{ "max-queued-bytes", L(max_queued_bytes), "0", 0, LONG_MAX,
	    "unsent output the whole node may hold; the readers furthest "
	    "behind are closed beyond it (0: a quarter of memory)" },
	{ "firebase-batch", L(firebase_batch), "500", 1, 10000,
	    "most comments in one Firebase request (one multi-path update)" },
	{ "firebase-batch-bytes", L(firebase_batch_bytes), "1048576", 4096,
	    16 << 20, "most JSON bytes in one Firebase request" },
	{ "firebase-max-inflight", L(firebase_max_inflight), "4", 1, 64,
	    "Firebase requests in flight at once" },
	{ "firebase-timeout", L(firebase_timeout), "30", 1, 600,
	    "seconds one Firebase request may take before it is retried" },
	{ "firebase-retry-max-ms", L(firebase_retry_max_ms), "30000", 100,
	    3600000,
	    "longest wait between two tries of a failed Firebase "
	    "request (exponential backoff with jitter from 500 ms)" },
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))
_Static_assert(NFLAGS <= 64, "argv_set has 64 bits");

static int
set(brk_config *c, const flag *f, const char *v, char *err, size_t errlen)
{
	char *end;
	long n;

	if (f->type == T_STR) {
		char **slot = (char **)((char *)c + f->off);
		free(*slot);
		*slot = v ? strdup(v) : NULL;
		return PL_OK;
	}
	if (f->type == T_BOOL && (v == NULL || strcmp(v, "true") == 0)) {
		v = "1";
	} else if (f->type == T_BOOL && strcmp(v, "false") == 0) {
		v = "0";
	}
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < f->min ||
	    n > f->max) {
		snprintf(err, errlen,
		    "--%s: expected a number from %ld to %ld, got \"%s\"",
		    f->name, f->min, f->max, v);
		return PL_EINVAL;
	}
	if (f->type == T_BOOL) {
		*(int *)((char *)c + f->off) = (int)n;
	} else {
		*(long *)((char *)c + f->off) = n;
	}
	return PL_OK;
}

static void
env_name(const char *flag, char *out, size_t len)
{
	size_t i = 0;

	i = (size_t)snprintf(out, len, "PARLEY_");
	for (; *flag && i + 1 < len; flag++) {
		out[i++] =
		    *flag == '-' ? '_' : (char)toupper((unsigned char)*flag);
	}
	out[i] = '\0';
}

int
brk_config_load(brk_config *c, int argc, char **argv, char *err, size_t errlen)
{
	char env[64];
	size_t i;
	int a;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NFLAGS; i++) {
		const char *v;
		if (flags[i].def &&
		    set(c, &flags[i], flags[i].def, err, errlen)) {
			return PL_EINVAL;
		}
		env_name(flags[i].name, env, sizeof(env));
		v = getenv(env);
		if (v && *v && set(c, &flags[i], v, err, errlen)) {
			return PL_EINVAL;
		}
	}
	for (a = 0; a < argc; a++) {
		const char *arg = argv[a], *val = NULL, *eq;
		size_t nlen;
		const flag *f = NULL;

		if (strncmp(arg, "--", 2) != 0) {
			snprintf(
			    err, errlen, "unexpected argument \"%s\"", arg);
			return PL_EINVAL;
		}
		arg += 2;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		for (i = 0; i < NFLAGS; i++) {
			if (strlen(flags[i].name) == nlen &&
			    strncmp(flags[i].name, arg, nlen) == 0) {
				f = &flags[i];
			}
		}
		if (f == NULL) {
			snprintf(err, errlen,
			    "unknown flag --%.*s (see --help)", (int)nlen, arg);
			return PL_EINVAL;
		}
		if (eq) {
			val = eq + 1;
		} else if (f->type != T_BOOL) {
			if (a + 1 >= argc) {
				snprintf(
				    err, errlen, "--%s needs a value", f->name);
				return PL_EINVAL;
			}
			val = argv[++a];
		}
		if (set(c, f, val, err, errlen)) {
			return PL_EINVAL;
		}
		c->argv_set |= 1ULL << (f - flags);
	}
	return PL_OK;
}

int
brk_config_in_argv(const brk_config *c, const char *name)
{
	for (size_t i = 0; i < NFLAGS; i++) {
		if (strcmp(flags[i].name, name) == 0) {
			return (c->argv_set >> i) & 1;
		}
	}
	return 0;
}

void
brk_config_fini(brk_config *c)
{
	size_t i;

	for (i = 0; i < NFLAGS; i++) {
		if (flags[i].type == T_STR) {
			char **slot = (char **)((char *)c + flags[i].off);
			free(*slot);
			*slot = NULL;
		}
	}
}

/* What --help shows as the default of a flag that has no value by default
 * (kept apart from the table so adding a flag stays one row). */
static const char *
shown_default(const char *name)
{
	static const char *const shown[][2] = {
		{ "advertise", "from the hostname" },
		{ "cluster-direct-listen", "--cluster-listen's port + 1" },
		{ "cluster-direct-advertise",
		    "the advertised host, the direct port" },
		{ "node-name", "the hostname" },
		{ "jwt-secret", "generated once into the data dir" },
		{ "allowed-origins", "any" },
		{ "log-file", "stderr" },
		{ "admin-token-file", "none: loopback admin only" },
	};

	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		if (strcmp(shown[i][0], name) == 0) {
			return shown[i][1];
		}
	}
	return "none";
}

void
brk_config_usage(void)
{
	size_t i;
	char env[64];

	printf("flags (each also read from its environment twin):\n");
	for (i = 0; i < NFLAGS; i++) {
		env_name(flags[i].name, env, sizeof(env));
		printf("  --%-22s %-28s %s (default: %s)\n", flags[i].name, env,
		    flags[i].help,
		    flags[i].def ? flags[i].def : shown_default(flags[i].name));
	}
}

int
brk_config_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	const char *h = s;
	size_t hl;
	char *end;
	long p;

	if (s == NULL) {
		return PL_EINVAL;
	}
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':') {
			return PL_EINVAL;
		}
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			return PL_EINVAL;
		}
		hl = (size_t)(colon - s);
	}
	if (hl + 1 > hostlen) {
		return PL_EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || p < 0 || p > 65535 || end == colon + 1) {
		return PL_EINVAL;
	}
	*port = (int)p;
	return PL_OK;
}
