/* SPDX-License-Identifier: Apache-2.0 */
/* A running node: the one libevent loop and everything hanging off it
 * (listeners, sockets, router, storage, presence, cluster, admin API), its
 * timers and signals, readiness and the SIGTERM drain. */
#ifndef PARLEY_BROKER_NODE_H
#define PARLEY_BROKER_NODE_H

#include "broker/config.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct brk_node brk_node;
typedef struct brk_conn brk_conn;
typedef struct brk_router brk_router;
typedef struct brk_presence brk_presence;
typedef struct brk_ratelimit brk_ratelimit;
typedef struct sto_comments sto_comments;
typedef struct brk_mesh brk_mesh;

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
	uint64_t open_conns; /* sockets open now */
	uint64_t ws_conns;   /* upgraded sockets open now */
} brk_node_stats;

/* cfg is borrowed and must outlive the node. On failure writes a reason to
 * err and returns non-zero. */
int brk_node_create(
    brk_node **out, const brk_config *cfg, char *err, size_t errlen);
/* Runs the loop until the node stops; returns the process exit code. */
int brk_node_run(brk_node *n);
void brk_node_destroy(brk_node *n);

struct event_base *brk_node_base(brk_node *n);
struct event;
/* Gives a timer the loop's urgent priority: it runs even while a burst of
 * socket events is being worked through. */
void brk_node_urgent(struct event *ev);
const brk_config *brk_node_config(const brk_node *n);
const char *brk_node_name(const brk_node *n);
brk_router *brk_node_router(brk_node *n);
brk_presence *brk_node_presence(brk_node *n);
brk_ratelimit *brk_node_ratelimit(brk_node *n);
sto_comments *brk_node_comments(brk_node *n);
brk_mesh *brk_node_mesh(brk_node *n);
brk_node_stats *brk_node_stats_of(brk_node *n);
const uint8_t *brk_node_secret(const brk_node *n, size_t *len);
uint64_t brk_node_now_ms(brk_node *n);

int brk_node_ready(const brk_node *n);
int brk_node_draining(const brk_node *n);
/* Begins the graceful drain (SIGTERM, POST /v1/drain). */
void brk_node_drain(brk_node *n);
/* Announces leave to the cluster without stopping (POST /v1/leave). */
void brk_node_leave(brk_node *n);

/* --- sockets (for conn.c) --- */
/* Arms the flush pass that runs once the current batch of events is done. */
void brk_node_want_flush(brk_node *n);
/* The node's socket lists; conn.c owns the links. */
struct brk_conn_list *brk_node_conns(brk_node *n);

#endif
