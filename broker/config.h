/* SPDX-License-Identifier: Apache-2.0 */
/* Node configuration: every flag of `parley serve` with its PARLEY_* twin in
 * the environment (a flag wins) and its embedded default. */
#ifndef PARLEY_BROKER_CONFIG_H
#define PARLEY_BROKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct brk_config {
	char *listen;         /* host:port for WebSocket and public HTTP */
	char *admin;          /* host:port for the admin API */
	char *cluster_listen; /* NNG bus URL */
	char *advertise;      /* bus URL peers dial; NULL = derived */
	char *cluster_direct_listen;    /* addressed path; NULL = derived */
	char *cluster_direct_advertise; /* NULL = derived */
	long ack_replicas;              /* nodes durable before an ok */
	long catchup_timeout;           /* seconds before ready anyway */
	char *join;                     /* comma-separated seeds */
	char *node_name;                /* NULL = hostname */
	char *data;                     /* LMDB directory */
	char *jwt_secret;               /* NULL = generated into data dir */
	char *jwt_secret_file; /* one secret a line, signing one first */
	char *allowed_origins; /* NULL = any */
	char *rate_limit;      /* "30/60" */
	char *firebase_url;
	char *firebase_auth;
	char *firebase_auth_file;
	char *firebase_credentials;
	char *log_level;        /* error|warn|notice|info|debug */
	char *log_format;       /* text|json|logfmt */
	char *log_file;         /* NULL = stderr */
	char *admin_token_file; /* NULL = no token: loopback admin only */
	long max_devices;
	long max_comment_bytes;
	long max_message_bytes; /* WebSocket message limit (close 1009) */
	long max_channels;      /* channels per socket */
	long idle_timeout;      /* seconds of silence before close */
	long max_out_bytes; /* output buffer cap before a slow consumer is closed */
	long max_connections;   /* refuse beyond this many sockets */
	long presence_tick_ms;  /* presence_diff coalescing period */
	long drain_timeout;     /* seconds SIGTERM waits for flushes */
	int cluster_test_hooks; /* enables the admin fault-injection endpoint */
	int metrics_auth;       /* /metrics needs the admin token too */
	/* Hostile clients (issue 12). */
	long handshake_timeout;     /* seconds from accept to the upgrade */
	long max_handshakes;        /* sockets not yet upgraded; 0 = auto */
	long max_handshakes_per_ip; /* the same per source address; 0 = off */
	long max_sockets_per_user;  /* upgraded sockets per user; 0 = off */
	long max_queued_bytes;      /* node-wide queued output; 0 = auto */
	/* Firebase sync (issue 10). */
	long firebase_batch;        /* comments per Firebase request */
	long firebase_batch_bytes;  /* JSON bytes per Firebase request */
	long firebase_max_inflight; /* Firebase requests at once */
	long firebase_timeout;      /* seconds one Firebase request may take */
	long firebase_retry_max_ms; /* longest Firebase retry backoff */
	uint64_t argv_set;          /* bit i: flag i came from argv (not env) */
} brk_config;

/* Fills *c from defaults, then the environment, then argv (flags of the form
 * --name value or --name=value). Unknown flags and bad values are errors:
 * returns PL_EINVAL with a message in err. Free with brk_config_fini. */
int
brk_config_load(brk_config *c, int argc, char **argv, char *err, size_t errlen);
void brk_config_fini(brk_config *c);

/* True when flag `name` (without --) was given on the command line, where
 * ps shows it, rather than in the environment. */
int brk_config_in_argv(const brk_config *c, const char *name);

/* Prints the flag table (name, default, meaning) for --help. */
void brk_config_usage(void);

/* Splits "host:port" (IPv6 as [::1]:4000). Returns PL_OK or PL_EINVAL. */
int
brk_config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
