/* SPDX-License-Identifier: Apache-2.0 */
/* The parts of a node a broker test builds without one: the loop, the
 * flags, the counters, a router and the socket list with its hooks (the
 * hooks answer from the fields below, which a test may flip). The client
 * side of node_harness.h drives them. */
#ifndef PARLEY_TESTS_UNIT_BROKER_PARTS_HARNESS_H
#define PARLEY_TESTS_UNIT_BROKER_PARTS_HARNESS_H

#include "broker/config.h"
#include "broker/conn.h"
#include "broker/router.h"
#include "common/metrics.h"

#include <stddef.h>

typedef struct ph_parts {
	struct event_base *base;
	brk_config cfg;
	pl_metrics *metrics;
	brk_router *router; /* --max-channels from the flags */
	brk_node_stats stats;
	brk_conn_list conns;
	int accepting, draining; /* what the hooks say */
	int sockets_closed;
} ph_parts;

extern ph_parts ph;

/* Builds the parts from flags (argv style, no program name). */
void ph_start(int argc, char **argv);
/* Closes and frees every socket (their channels end); idempotent. */
void ph_close_sockets(void);
/* Closes the sockets if still open, then frees the parts. Modules
 * registered with the router are the caller's to free after this. */
void ph_stop(void);

/* A plain HTTP request on a new socket: returns the status code, with the
 * body (up to cap - 1 bytes, NUL-terminated) in body. */
int ph_http(const char *request, char *body, size_t cap);

#endif
