/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench presence scenario, shared by its three files:
 * bench_presence_conn.c (one client connection: connect, upgrade, masked
 * sends, frame reading), bench_presence.c (the worker process: members, the
 * churner, the steps) and bench_presence_scenario.c (the coordinator's
 * steps, figures and output). */
#ifndef PARLEY_BENCH_PRESENCE_H
#define PARLEY_BENCH_PRESENCE_H

#include "tests/bench/bench.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>

/* A connection's life: members go CONN, HS, JOINING, IN; the churner's
 * users go CONN, HS, OUT, then JOINING, IN, LEAVING, OUT again. */
enum { P_IDLE, P_CONN, P_HS, P_OUT, P_JOINING, P_IN, P_LEAVING, P_DONE };

typedef struct pworker pworker;

typedef struct pconn {
	struct event rev, wev;
	pworker *w;
	char *token;       /* until the upgrade request is sent */
	char *carry, *out; /* unparsed and unsent bytes, or NULL */
	uint32_t carry_len, carry_cap, out_len, out_cap;
	int64_t t_op; /* churner: when the pending join/leave left */
	int fd;
	uint32_t idx;  /* member index across workers, or churn slot */
	uint32_t jref; /* join_ref of the latest join */
	uint8_t state, replied, stated;
	uint8_t checked; /* member that counts the metas of its diffs */
	uint8_t counted; /* churner: the pending op left in the window */
} pconn;

struct pworker {
	const bench_opts *o;
	struct event_base *base;
	int kind, ctl, busy, phase;
	pconn *c;
	size_t n, next_open, pending, hb_next;
	long inflight, ops, joining;
	int64_t last_progress, last_rx, cpu0, wall0, drain0, step_changes;
	bench_cmd cmd;
	bench_report rep;
	struct event ctl_ev, step_ev, tick_ev, hb_ev;
	char *rbuf, *stage, topic[96];
	size_t rbuf_cap, stage_cap;
	uint64_t rng;
	uint32_t *absent, *present; /* churner: FIFO rings of slots */
	size_t a_head, a_n, p_head, p_n;
};

/* ---- bench_presence_scenario.c ---- */

/* The coordinator's side: runs the steps, prints the figures and adds them
 * to j (borrowed). Returns 0 or -1. */
int bench_presence_scenario(const bench_opts *o, json_t *j);

/* ---- bench_presence_conn.c ---- */

/* Starts connecting c; the outcome arrives through bp_on_upgraded() or
 * bp_on_lost(), possibly before this returns. */
void bp_open(pconn *c);

/* Closes c's socket and frees its buffers (state P_DONE). */
void bp_close(pconn *c);

/* Closes c and reports it through bp_on_lost(). why: static. */
void bp_fail(pconn *c, const char *why);

/* Sends a text frame, masked as a client must; queues what the socket does
 * not take. */
void bp_send_text(pconn *c, const char *payload, size_t len);

/* ---- bench_presence.c: hooks called by the connection ---- */

void bp_on_upgraded(pconn *c);

/* A text message of n bytes at p, wire bytes on the wire with its header. */
void bp_on_text(pconn *c, const char *p, size_t n, size_t wire, int64_t now);

/* c was closed; `was` is its state before. why: static or transient. */
void bp_on_lost(pconn *c, int was, const char *why);

#endif
