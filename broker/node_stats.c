/* SPDX-License-Identifier: Apache-2.0 */
/* The node's counters as Prometheus series (see node_stats.h). */
#include "broker/node_stats.h"

#include <stdio.h>

#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/version.h"

static double
suppressed_lines(void *arg)
{
	(void)arg;
	return (double)pl_log_suppressed_total();
}

typedef struct stat_series {
	const char *name, *help;
	size_t off; /* of a uint64_t in brk_node_stats */
	int gauge;
	const char *lk, *lv; /* one label, or NULL */
} stat_series;

#define ST(f) offsetof(brk_node_stats, f)

static const stat_series node_series[] = {
	{ "parley_connections_accepted_total", "Sockets accepted.",
	    ST(accepted), 0, NULL, NULL },
	{ "parley_connections_refused_total",
	    "Sockets closed at once because --max-connections were open.",
	    ST(refused), 0, NULL, NULL },
	{ "parley_accept_errors_total",
	    "accept() failures (out of file descriptors and the like).",
	    ST(accept_errors), 0, NULL, NULL },
	{ "parley_connections_open", "Sockets open now (HTTP and WebSocket).",
	    ST(open_conns), 1, NULL, NULL },
	{ "parley_websockets_open", "Upgraded WebSocket connections open now.",
	    ST(ws_conns), 1, NULL, NULL },
	{ "parley_upgrades_total", "Successful WebSocket upgrades.",
	    ST(upgrades), 0, NULL, NULL },
	{ "parley_frames_received_total", "WebSocket messages received.",
	    ST(frames_in), 0, NULL, NULL },
	{ "parley_frames_sent_total", "WebSocket messages queued to clients.",
	    ST(frames_out), 0, NULL, NULL },
	{ "parley_received_bytes_total", "Bytes read from client sockets.",
	    ST(bytes_in), 0, NULL, NULL },
	{ "parley_sent_bytes_total", "Bytes written to client sockets.",
	    ST(bytes_out), 0, NULL, NULL },
	{ "parley_protocol_errors_total",
	    "Sockets closed for a protocol violation.", ST(protocol_errors), 0,
	    NULL, NULL },
	{ "parley_slow_consumers_closed_total",
	    "Sockets closed because they stopped reading (--max-out-bytes).",
	    ST(slow_closed), 0, NULL, NULL },
	{ "parley_idle_closed_total",
	    "Sockets closed after --idle-timeout of silence.", ST(idle_closed),
	    0, NULL, NULL },
	{ "parley_comments_accepted_total",
	    "Comments stored durably and acknowledged.", ST(comments_ok), 0,
	    NULL, NULL },
	{ "parley_handshake_timeouts_total",
	    "Sockets closed at --handshake-timeout without finishing.",
	    ST(handshake_timeouts), 0, NULL, NULL },
	{ "parley_handshakes_evicted_total",
	    "Oldest handshakes closed to make room for a newcomer.",
	    ST(handshakes_evicted), 0, NULL, NULL },
	{ "parley_handshakes_refused_per_address_total",
	    "Sockets closed at once: --max-handshakes-per-ip from their "
	    "address.",
	    ST(addr_refused), 0, NULL, NULL },
	{ "parley_upgrades_refused_per_user_total",
	    "Upgrades refused with 429: --max-sockets-per-user.",
	    ST(user_refused), 0, NULL, NULL },
	{ "parley_budget_closed_total",
	    "Sockets closed, furthest behind first, to bring queued output "
	    "under --max-queued-bytes.",
	    ST(budget_closed), 0, NULL, NULL },
};

static const char *const refusal_names[BRK_REFUSE_N] = { "bad_request",
	"origin", "draining", "vsn", "auth", "limit" };
static const char *const crefusal_names[BRK_CREFUSE_N] = { "invalid_content",
	"content_too_long", "rate_limit", "overloaded", "storage",
	"unavailable" };
static const uint16_t close_codes[] = { BRK_CLOSE_CODES };

size_t
brk_close_code_slot(uint16_t code)
{
	size_t i;

	for (i = 0; i < sizeof(close_codes) / sizeof(close_codes[0]); i++) {
		if (close_codes[i] == code) {
			return i;
		}
	}
	return BRK_CLOSE_N - 1;
}

int
brk_node_stats_register(pl_metrics *r, brk_node_stats *st,
    const brk_node_stats_views *v, pl_metric **loop_lag)
{
	char code[8];
	size_t i;
	int rc = 0;

	rc |= pl_metrics_add_process(r);
	pl_gauge_set(pl_metrics_gauge(r, "parley_build_info",
			 "Always 1; the labels name the build.", "version",
			 PARLEY_VERSION, "commit", PARLEY_GIT_DESCRIBE, NULL),
	    1);
	rc |= pl_metrics_gauge_fn(r, "parley_ready",
	    "1 while /readyz answers 200.", v->ready, v->arg, NULL);
	rc |= pl_metrics_gauge_fn(r, "parley_handshakes_open",
	    "Sockets still in their handshake (probes included).",
	    v->handshakes_open, v->arg, NULL);
	rc |= pl_metrics_gauge_fn(r, "parley_queued_output_bytes",
	    "Unsent output of every socket, each shared frame counted once.",
	    v->queued_bytes, v->arg, NULL);
	rc |= pl_metrics_gauge_fn(r, "parley_queued_output_budget_bytes",
	    "--max-queued-bytes as resolved at start.", v->queued_budget,
	    v->arg, NULL);
	for (i = 0; i < sizeof(node_series) / sizeof(node_series[0]); i++) {
		const stat_series *d = &node_series[i];
		const uint64_t *p =
		    (const uint64_t *)((const char *)st + d->off);
		rc |= d->gauge ? pl_metrics_gauge_ptr(
				     r, d->name, d->help, p, d->lk, d->lv, NULL)
			       : pl_metrics_counter_ptr(r, d->name, d->help, p,
				     d->lk, d->lv, NULL);
	}
	for (i = 0; i < BRK_REFUSE_N; i++) {
		rc |= pl_metrics_counter_ptr(r, "parley_upgrades_refused_total",
		    "WebSocket upgrades refused, by reason.",
		    &st->refused_by[i], "reason", refusal_names[i], NULL);
	}
	for (i = 0; i < BRK_CREFUSE_N; i++) {
		rc |= pl_metrics_counter_ptr(r, "parley_comments_refused_total",
		    "Comments refused, by reason.", &st->comments_refused_by[i],
		    "reason", crefusal_names[i], NULL);
	}
	for (i = 0; i < BRK_CLOSE_N; i++) {
		if (i + 1 < BRK_CLOSE_N) {
			snprintf(code, sizeof(code), "%u", close_codes[i]);
		}
		rc |= pl_metrics_counter_ptr(r, "parley_websocket_closes_total",
		    "Close frames sent to clients, by close code.",
		    &st->closes_sent[i], "code",
		    i + 1 < BRK_CLOSE_N ? code : "other", NULL);
	}
	st->ack_seconds = pl_metrics_histogram(r, "parley_comment_ack_seconds",
	    "From a new_comment push to its ok reply (the comment is durable).",
	    pl_metrics_latency_buckets, pl_metrics_latency_nbuckets, NULL);
	st->delivery_seconds = pl_metrics_histogram(r,
	    "parley_cluster_delivery_seconds",
	    "From a comment's acceptance on another node to its delivery to "
	    "this node's subscribers (needs synchronised clocks).",
	    pl_metrics_latency_buckets, pl_metrics_latency_nbuckets, NULL);
	*loop_lag = pl_metrics_histogram(r, "parley_loop_lag_seconds",
	    "How late a periodic timer runs on the event loop.",
	    pl_metrics_latency_buckets, pl_metrics_latency_nbuckets, NULL);
	rc |= pl_metrics_gauge_fn(r, "parley_storage_file_bytes",
	    "Size of the LMDB data file on disk.", v->data_file_bytes, v->arg,
	    NULL);
	rc |= pl_metrics_counter_fn(r, "parley_log_lines_suppressed_total",
	    "Repeated log lines folded into per-second summaries.",
	    suppressed_lines, NULL, NULL);
	return rc ? PL_ENOMEM : PL_OK;
}
