/* SPDX-License-Identifier: Apache-2.0 */
/* The node's own counters (sockets, frames, bytes, refusals, closes,
 * comments) and the Prometheus series they are exposed as. The counters
 * are plain fields bumped where things happen (conn, channels, node); this
 * module names them once, with HELP text and labels, in the node's
 * registry. Loop thread only. */
#ifndef PARLEY_BROKER_NODE_STATS_H
#define PARLEY_BROKER_NODE_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Why an upgrade was refused: the reason label of
 * parley_upgrades_refused_total. */
typedef enum brk_refusal {
	BRK_REFUSE_BAD_REQUEST, /* not a valid WebSocket upgrade */
	BRK_REFUSE_ORIGIN,      /* Origin not in --allowed-origins */
	BRK_REFUSE_DRAINING,    /* draining or left the cluster */
	BRK_REFUSE_VSN,         /* unsupported protocol version */
	BRK_REFUSE_AUTH,        /* token missing or refused */
	BRK_REFUSE_LIMIT,       /* a per-user or per-node cap */
	BRK_REFUSE_N
} brk_refusal;

/* Why a comment was refused: the reason label of
 * parley_comments_refused_total. */
typedef enum brk_comment_refusal {
	BRK_CREFUSE_INVALID,     /* invalid_content */
	BRK_CREFUSE_TOO_LONG,    /* content_too_long */
	BRK_CREFUSE_RATE_LIMIT,  /* rate_limit_exceeded */
	BRK_CREFUSE_OVERLOADED,  /* storage queue full */
	BRK_CREFUSE_STORAGE,     /* storage failed (internal_error) */
	BRK_CREFUSE_UNAVAILABLE, /* fewer than --ack-replicas nodes held it */
	BRK_CREFUSE_N
} brk_comment_refusal;

/* Close codes counted apart in parley_websocket_closes_total; any other
 * code counts as "other" (the last slot). */
#define BRK_CLOSE_CODES 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012
#define BRK_CLOSE_N 10

struct pl_metric;
struct pl_metrics;

typedef struct brk_node_stats {
	uint64_t accepted;        /* sockets accepted */
	uint64_t refused;         /* sockets refused at the connection limit */
	uint64_t accept_errors;   /* accept() failures (EMFILE and friends) */
	uint64_t upgrades;        /* successful WebSocket upgrades */
	uint64_t upgrade_refused; /* 4xx answers to upgrade attempts */
	uint64_t frames_in, frames_out;
	uint64_t protocol_errors; /* sockets closed for a protocol violation */
	uint64_t slow_closed;     /* sockets closed as slow consumers */
	uint64_t idle_closed;     /* sockets closed after silence */
	uint64_t comments_ok, comments_refused;
	uint64_t open_conns;          /* sockets open now */
	uint64_t ws_conns;            /* upgraded sockets open now */
	uint64_t bytes_in, bytes_out; /* socket payload bytes, all states */
	uint64_t refused_by[BRK_REFUSE_N];
	uint64_t comments_refused_by[BRK_CREFUSE_N];
	uint64_t closes_sent[BRK_CLOSE_N]; /* close frames we sent, by code */
	/* Histograms (seconds), owned by the node's registry; NULL-safe. */
	struct pl_metric *ack_seconds;      /* new_comment push -> ok reply */
	struct pl_metric *delivery_seconds; /* comment accepted on another
	                                      * node -> delivered here */
	/* Admission and output limits (issue 12). */
	uint64_t handshake_timeouts; /* closed at the handshake deadline */
	uint64_t handshakes_evicted; /* oldest handshakes closed for room */
	uint64_t addr_refused;       /* refused: handshakes per address full */
	uint64_t user_refused;  /* upgrades refused: sockets per user full */
	uint64_t budget_closed; /* closed to bring queued output under budget */
} brk_node_stats;

/* Index of a close code in closes_sent. */
size_t brk_close_code_slot(uint16_t code);

/* Gauges read from the node each time /metrics renders; each gets arg. */
typedef struct brk_node_stats_views {
	double (*ready)(void *arg);           /* 1 while /readyz is 200 */
	double (*handshakes_open)(void *arg); /* sockets in their handshake */
	double (*queued_bytes)(void *arg);    /* unsent output, all sockets */
	double (*queued_budget)(void *arg);   /* --max-queued-bytes resolved */
	double (*data_file_bytes)(void *arg); /* LMDB data file on disk */
	void *arg;
} brk_node_stats_views;

/* Registers every series of st (borrowed: it must outlive r), the views,
 * build info, process metrics and the log's suppressed lines in r, and
 * sets st's histograms and *loop_lag (owned by r). Returns PL_OK or
 * PL_ENOMEM. */
int brk_node_stats_register(struct pl_metrics *r, brk_node_stats *st,
    const brk_node_stats_views *v, struct pl_metric **loop_lag);

#endif
