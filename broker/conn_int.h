/* SPDX-License-Identifier: Apache-2.0 */
/* Private to broker/conn*.c: the socket struct, shared by the socket core
 * (conn.c) and its HTTP side (conn_http.c). Nothing else includes this. */
#ifndef PARLEY_BROKER_CONN_INT_H
#define PARLEY_BROKER_CONN_INT_H

#include "broker/conn.h"
#include "broker/outq.h"
#include "broker/tally.h"
#include "proto/ws.h"

#include <event2/event_struct.h>

struct evbuffer;

enum { S_HTTP, S_WS, S_CLOSING, S_DEAD };

struct brk_conn {
	brk_conn_list *list; /* its node's sockets, and their env */
	int fd;
	unsigned refs;
	uint8_t state;
	uint8_t vsn;
	uint8_t flush_queued;
	uint8_t write_armed;
	uint8_t shut_wr;
	uint8_t slow;
	uint8_t in_handshake; /* in the handshake list */
	uint8_t probe;        /* admitted over --max-connections */
	uint64_t id;
	uint64_t last_rx_ms; /* handshake: accept time; then last activity */
	struct evbuffer *in;
	brk_outq *out;
	/* In the handshake: its source address's count; once upgraded: its
	 * user's. NULL when not counted. */
	brk_tally_entry *slot;
	char *user;
	brk_channel *channels;
	brk_conn *prev, *next, *flush_next;
	pro_ws_reader rd;
	struct event rev, wev;
};

/* conn.c */
void brk_conn_queue_flush(brk_conn *c);
/* Releases the socket at once (see conn.c). */
void brk_conn_kill(brk_conn *c);
/* Moves a socket out of the handshake list (it was answered, refused or
 * upgraded): its source address stops counting it. */
void brk_conn_handshake_done(brk_conn *c);
/* Queues the bytes a proto writer left in b (b is drained). */
void brk_conn_push(brk_conn *c, struct evbuffer *b);

/* conn_admit.c: decides whether a new socket from sa gets in (see there).
 * Returns 0, with *slot its address's count and *probe set when it is
 * admitted over --max-connections for a health check, or -1 to refuse. */
int brk_conn_admit(brk_conn_list *l, const struct sockaddr *sa, socklen_t salen,
    brk_tally_entry **slot, uint8_t *probe, brk_node_stats *st);

/* A probe whose request is an upgrade becomes an ordinary socket if a slot
 * has freed since it was admitted: returns 1, else 0. */
int brk_conn_unprobe(brk_conn *c);

/* conn_http.c: parses and answers what has arrived of the request. */
void brk_conn_handle_http(brk_conn *c);

#endif
