/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench client side, shared by bench_client.c (one connection:
 * connect, upgrade, join, frame reading with just enough parsing, masked
 * sends) and bench_worker.c (which connections a worker holds, the steps,
 * publishing and the report). */
#ifndef PARLEY_BENCH_CLIENT_H
#define PARLEY_BENCH_CLIENT_H

#include "tests/bench/bench.h"

#include <event2/event.h>
#include <event2/event_struct.h>

typedef struct bworker bworker;

enum bc_state { CS_IDLE, CS_CONNECTING, CS_HS, CS_JOINING, CS_READY, CS_DONE };

/* The sets of connections a worker opens, each by its own step. */
enum bc_group { G_NODE, G_CEIL, G_OVF, G_RES, G_COUNT };

/* A publisher or poster: pushes new_comment from patched templates. */
typedef struct bpub {
	int ntopics, next;
	uint32_t *topics;
	char **tmpl; /* per topic: the encoded push, before masking */
	size_t *tlen, *ts_off, *ref_off;
	double rate;           /* publishes/s for this publisher; 0 = window */
	int64_t sent, replies; /* ever: their difference is in flight */
	int64_t step_sent;     /* since the step began, for the pacing */
	int64_t next_ref;
	size_t ring_mask; /* send times by ref, for the reply latency */
	int64_t *ring_ref, *ring_ns;
} bpub;

typedef struct bconn {
	struct event rev, wev;
	bworker *w;
	bpub *pub;   /* NULL for a subscriber */
	char *token; /* until the upgrade request is sent */
	char *carry; /* unparsed bytes (a partial frame), or NULL */
	uint32_t carry_len, carry_cap;
	char *out; /* unsent bytes, or NULL */
	uint32_t out_len, out_cap;
	int64_t t0; /* connect started */
	int fd;
	uint32_t idx;         /* index in its group across all workers */
	uint32_t topic;       /* subscriber's topic */
	uint16_t joins_left;  /* join replies still awaited */
	uint16_t states_left; /* presence_state still awaited */
	uint16_t tries;       /* reconnect attempts since the last open */
	uint8_t state, group, target, url;
	uint8_t moving; /* reconnect: 1 coming back, 2 back */
	int64_t hb_at;  /* outstanding heartbeat sent at, or 0 */
} bconn;

struct bworker {
	const bench_opts *o;
	struct event_base *base;
	int kind, idx, nworkers, ctl;
	bconn *conns;
	size_t nconns;
	size_t gbeg[G_COUNT], gend[G_COUNT];
	/* current connect-like step */
	size_t open_beg, next_open, open_end;
	long inflight;
	size_t pending;
	int64_t last_progress;
	/* current command and its report */
	bench_cmd cmd;
	bench_report rep;
	int busy;            /* a step is running */
	int phase;           /* measure: 0 before window, 1 in, 2 after */
	int counted_in_read; /* deliveries counted from the current read */
	int64_t cpu0, wall0;
	struct event ctl_ev, tick_ev, step_ev, hb_ev, res_hb_ev;
	char *rbuf;
	size_t rbuf_cap;
	char *stage;
	size_t stage_cap;
	uint64_t rng;
	size_t hb_next, res_hb_next;
	char hb_tmpl[64];
	size_t hb_len, hb_ref_off;
};

/* ---- bench_client.c ---- */

/* Starts connecting c (state CS_IDLE). The outcome arrives through
 * bw_conn_finished(); a failure may be reported before this returns. */
void bc_open(bconn *c);

/* Closes c's socket and frees its buffers; c stays in its array. */
void bc_close(bconn *c);

/* Sends a text frame, masked as a client must; queues what the socket does
 * not take. */
void bc_send_text(bconn *c, const char *payload, size_t len);

/* Sends ready bytes (already framed); queues what the socket does not take. */
void bc_send_raw(bconn *c, const char *p, size_t len);

/* Appends a masked text frame of payload to dst (room for len + 14 bytes);
 * returns the frame's length. */
size_t bc_mask_into(bworker *w, const char *payload, size_t len, char *dst);

/* Writes v as `digits` zero-padded decimal digits at p. */
void bc_put_digits(char *p, int64_t v, int digits);

/* ---- bench_worker.c: hooks called by the client side ---- */

/* c finished its connect step: ready (ok), refused by the server before the
 * upgrade, or failed; `why` is a static or transient reason. */
void bw_conn_finished(bconn *c, int ok, int refused, const char *why);

/* A ready connection was closed by the server or failed. */
void bw_conn_lost(bconn *c, const char *why);

/* A new_comment arrived with send time ts (0 when none could be read). */
void bw_on_comment(bconn *c, int64_t ts, size_t frame_len, int64_t now);

/* A reply to a push with ref >= BENCH_REF_BASE. */
void bw_on_ack(bconn *c, int64_t ref, int ok, const char *why, size_t why_len,
    int64_t now);

/* A heartbeat reply. */
void bw_on_heartbeat(bconn *c, int ok);

/* Ends the current step: sends the report to the coordinator. */
void bw_finish_step(bworker *w);

/* Mints a fresh token for c's user into c->token. Returns 0 or -1. */
int bw_mint(bworker *w, bconn *c);

/* ---- bench_rejoin.c: the reconnect scenario's worker side ---- */

/* Residents heartbeat every BW_RES_HB_NS, a share of them every
 * BW_RES_TICK_US; once the last mover is back, BW_REJOIN_SETTLE_NS more are
 * watched (the node still sends the storm's last diffs). */
#define BW_RES_HB_NS (1 * BENCH_NS)
#define BW_RES_TICK_US 100000
#define BW_REJOIN_SETTLE_NS (2 * BENCH_NS)

/* Schedules c's next connection attempt after phoenix.js's backoff. */
void bw_retry_later(bconn *c);

/* ST_REJOIN: marks the ready movers and arms the step's deadline. */
void bw_rejoin_start(bworker *w);

/* ST_REJOIN ends (all back and settled, or the deadline): counts the
 * residents' overdue heartbeats and reports. */
void bw_rejoin_finish(bworker *w);

/* Hooks from bench_worker.c; each returns 1 when it took the event: a
 * mover lost by the drained node (it comes back), a mover's reconnect
 * attempt ending, a resident's heartbeat reply. */
int bw_rejoin_lost(bconn *c);
int bw_rejoin_finished(bconn *c, int ok, const char *why, int64_t now);
int bw_resident_hb_reply(bconn *c, int ok);

/* Timer callback (arg: the worker): the residents' heartbeats. */
void bw_resident_hb(evutil_socket_t fd, short what, void *arg);

#endif
