/* SPDX-License-Identifier: Apache-2.0 */
/* One client socket: admission (handshake caps per node and per source
 * address, sockets per user), the HTTP upgrade (or a plain /healthz
 * request), RFC 6455 framing, Phoenix message decoding, and output with a
 * per-socket cap and a node-wide budget. A conn is refcounted so that work
 * finishing later (a durable comment's reply) can hold it; once closed,
 * sends to it are dropped. */
#ifndef PARLEY_BROKER_CONN_H
#define PARLEY_BROKER_CONN_H

#include "broker/node_stats.h"
#include "broker/outq.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
typedef struct brk_conn brk_conn;
typedef struct brk_channel brk_channel;
typedef struct brk_config brk_config;
typedef struct brk_tally brk_tally;
typedef struct brk_router brk_router;
struct brk_key;

/* What sockets need of their node, given once to brk_conn_list_init: the
 * loop, flags, counters and router it is built with, and what can change
 * while it runs, asked through the hooks (each gets arg). The pointers are
 * borrowed and outlive the list. */
typedef struct brk_conn_env {
	struct event_base *base;
	const brk_config *cfg;
	brk_node_stats *stats;
	brk_router *router; /* every Phoenix message goes here */
	/* Asks for a flush pass of the queued sockets soon. */
	void (*want_flush)(void *arg);
	/* The JWT verification keys now (reloaded on SIGHUP). */
	const struct brk_key *(*keys)(void *arg, size_t *count);
	/* Whether upgrades are taken now, and if not whether for a drain. */
	int (*accepting)(void *arg);
	int (*draining)(void *arg);
	/* /readyz's body and status, for the plain HTTP side. */
	const char *(*readyz)(void *arg, int *status);
	void *arg;
} brk_conn_env;

/* Health checks admitted while every --max-connections slot holds an
 * upgraded socket, so that probes still get their answer. */
#define BRK_CONN_PROBE_SLOTS 16

/* The node's sockets. Upgraded (and answered) sockets sit in the main list,
 * oldest activity first, which the idle sweep walks. Sockets still in their
 * handshake sit in the handshake list in accept order: their deadline runs
 * from accept, and the oldest is the first closed to make room. Links live
 * in the conns. Zeroed, then brk_conn_list_init. */
typedef struct brk_conn_list {
	brk_conn_env env;
	brk_conn *head, *tail;
	brk_conn *flush_head;
	size_t count;                /* every open socket */
	brk_conn *hs_head, *hs_tail; /* the handshake list */
	size_t handshakes;    /* in the handshake list, probes included */
	size_t probes;        /* admitted over --max-connections */
	brk_outq_account out; /* every socket's queued output */
	/* Limits, resolved from the flags by brk_conn_list_init. */
	size_t max_conns, max_handshakes, out_budget;
	unsigned max_per_addr, max_per_user;
	uint64_t handshake_ms;
	brk_tally *addrs; /* handshakes per source address (IPv6: per /64) */
	brk_tally *users; /* upgraded sockets per user */
} brk_conn_list;

/* Keeps env (copied), resolves the limits from env->cfg (defaults that
 * depend on other flags or on memory) and creates the tables. PL_OK or
 * PL_ENOMEM. */
int brk_conn_list_init(brk_conn_list *l, const brk_conn_env *env);
/* Frees the tables; after brk_conn_free_all. */
void brk_conn_list_fini(brk_conn_list *l);
/* Handshakes past the grace that --max-handshakes holds (conn_admit.c):
 * these never exceed the cap once a newcomer has been admitted. */
size_t brk_conn_stale_handshakes(const brk_conn_list *l, uint64_t now_ms);

/* Flushes every socket queued since the last pass. */
void brk_conn_flush_all(brk_conn_list *l);
/* Closes every socket (node shutdown): close frames are queued first. */
void brk_conn_close_all(brk_conn_list *l, uint16_t code, const char *reason);
/* Sockets that are or were WebSockets and are not gone yet (the drain
 * waits for these; plain HTTP probes do not count). */
size_t brk_conn_count_ws(const brk_conn_list *l);
/* Frees every socket at once (final teardown, after the loop stopped). */
void brk_conn_free_all(brk_conn_list *l);

/* Takes ownership of fd, which must be non-blocking: on failure the fd is
 * closed. */
int brk_conn_accept(
    brk_conn_list *l, int fd, const struct sockaddr *sa, socklen_t salen);

/* Queues a text message. The bytes are copied. */
void brk_conn_send_text(brk_conn *c, const char *data, size_t len);
/* Queues a shared frame (takes a reference of its own; never copied). */
void brk_conn_send_frame(brk_conn *c, brk_frame *f);
/* Queues one text message made of the n slices in order. Long slices that
 * lie in a shared block are queued by reference (taking one of their own),
 * the others copied. */
void brk_conn_send_slices(brk_conn *c, const pl_slice *s, size_t n);
/* Writes what is queued; called by the node's flush pass. */
void brk_conn_flush(brk_conn *c);

/* Starts the close handshake with code and reason (clients reconnect unless
 * code is 1000). Channels are terminated at once. Idempotent. */
void brk_conn_close(brk_conn *c, uint16_t code, const char *reason);
/* Closes idle sockets, handshakes past their deadline and lingering
 * sockets; called once a second. */
void brk_conn_sweep(brk_conn_list *l, uint64_t now_ms);

void brk_conn_ref(brk_conn *c);
void brk_conn_unref(brk_conn *c);

int brk_conn_is_open(const brk_conn *c);
int brk_conn_vsn(const brk_conn *c);
const char *brk_conn_user(const brk_conn *c);
const char *brk_conn_peer(const brk_conn *c);
uint64_t brk_conn_id(const brk_conn *c);

/* The socket's channel list head (owned by the router). */
brk_channel **brk_conn_channels(brk_conn *c);

#endif
