/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster transport: one NNG bus0 socket that listens on this node's bus
 * URL and keeps one background-redialling dialer per wanted peer URL. NNG
 * threads queue received messages (and note connections coming and going)
 * and wake the owner's loop through an eventfd; everything else is called
 * from that one loop thread. */
#ifndef PARLEY_CLUSTER_BUS_H
#define PARLEY_CLUSTER_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct clu_bus clu_bus;
/* A received message (an nng_msg underneath). */
typedef struct clu_bus_msg clu_bus_msg;

typedef struct clu_bus_opts {
	const char *listen_url;    /* tcp://host:port; port 0 picks one */
	size_t recv_max;           /* largest accepted message, bytes */
	uint32_t reconnect_min_ms; /* NNG redial backoff bounds */
	uint32_t reconnect_max_ms;
	size_t queue_max;   /* received messages waiting for the loop */
	uint32_t retire_ms; /* 0: 15000; see clu_bus_dial_end() */
} clu_bus_opts;

/* Opens the socket and starts listening and receiving.
 * Returns PL_OK and *out; PL_EINVAL (bad URL), PL_EIO (listen failed, e.g.
 * address in use), PL_ENOMEM. Caller destroys. */
int clu_bus_create(clu_bus **out, const clu_bus_opts *o);

/* Stops receiving, quiesces the connections (~10 ms) and closes the socket,
 * which closes every dialer, retired ones included (queued outgoing
 * messages may be lost), then frees everything. Because NNG 1.5.2's close
 * can hang (see bus.c), it waits for the close at most 1 s and otherwise
 * leaves the socket behind (logged "CLU-CLOSEHANG"). NULL is ignored. */
void clu_bus_destroy(clu_bus *b);

/* An fd that turns readable when messages are waiting or a dialer's
 * connection came or went (an eventfd: others may also write an 8-byte
 * increment to it to wake the loop). Owned by the bus; valid until destroy. */
int clu_bus_fd(const clu_bus *b);

/* Makes the fd readable (e.g. so the loop comes back to flush output). */
void clu_bus_wake(clu_bus *b);

/* Resets the fd's readiness. Call before draining with clu_bus_recv() so that
 * no wake-up is lost. */
void clu_bus_clear_fd(clu_bus *b);

/* Pops the oldest received message, or NULL when none. Caller frees with
 * clu_bus_msg_free(). */
clu_bus_msg *clu_bus_recv(clu_bus *b);
const void *clu_bus_msg_data(const clu_bus_msg *m);
size_t clu_bus_msg_len(const clu_bus_msg *m);
/* NNG id of the pipe (connection) the message arrived on. */
uint32_t clu_bus_msg_pipe(const clu_bus_msg *m);
void clu_bus_msg_free(clu_bus_msg *m);

/* Sends a copy of data to every connected peer without blocking; a peer
 * whose queue is full silently misses it (bus0 semantics). Returns PL_OK,
 * PL_EAGAIN (not sent at all), PL_ENOMEM, PL_ECLOSED. */
int clu_bus_send(clu_bus *b, const void *data, size_t len);

/* Dialer reconciliation: clu_bus_dial_begin() unmarks every dialer,
 * clu_bus_dial() marks (creating if needed) the dialer for url, and
 * clu_bus_dial_end() lets go of the unmarked ones. clu_bus_dial() may also
 * be used alone. A URL NNG rejects is logged once and remembered (not
 * retried) while it stays wanted. Returns PL_OK, PL_EINVAL (bad URL),
 * PL_ENOMEM.
 * Letting go retires a dialer rather than closing it, because closing one
 * at the wrong moment leaks or wedges NNG 1.5.2 (see bus.c): a retired
 * dialer is no longer counted or reported as dialing, redials only after an
 * hour, keeps a connection its peer keeps up, and is closed once it has
 * been retired retire_ms without a connection (by dial_end,
 * clu_bus_dial_sweep or destroy). Dialing the URL again revives it while it is connected,
 * else a new dialer takes over. */
void clu_bus_dial_begin(clu_bus *b);
int clu_bus_dial(clu_bus *b, const char *url);
void clu_bus_dial_end(clu_bus *b);
/* Closes the retired dialers that are due; call about once a second (the
 * cluster does every tick). Cheap when none is retired. */
void clu_bus_dial_sweep(clu_bus *b);
/* Closes every dialer for url (retired ones too) at once, connected or not:
 * for a URL found to reach ourselves, where keeping it would echo all we
 * send. url may be borrowed from the bus. Unknown URLs are ignored. */
void clu_bus_undial(clu_bus *b, const char *url);
/* Number of dialers open and wanted (retired ones not counted). */
size_t clu_bus_dialer_count(const clu_bus *b);
/* Number of retired dialers not closed yet. */
size_t clu_bus_retired_count(const clu_bus *b);
/* True when a working, wanted dialer for url exists. */
bool clu_bus_dialing(const clu_bus *b, const char *url);
/* True when the wanted dialer for url currently holds a connection (one
 * it made; connections the peer made to us do not count). */
bool clu_bus_connected(clu_bus *b, const char *url);
/* True once after any of our dialers connected or lost its connection
 * since the last call (the fd was woken for it). */
bool clu_bus_take_pipe_change(clu_bus *b);

/* The URL of our own dialer (wanted or retired) that created pipe, or NULL
 * when the pipe was accepted by the listener or is gone. Borrowed; valid
 * until the next dial_end, dial_sweep, undial or destroy. */
const char *clu_bus_pipe_dial_url(clu_bus *b, uint32_t pipe);

/* Closes one connection (e.g. a misbehaving peer). A dialer-owned pipe is
 * redialled by NNG after its backoff. */
void clu_bus_pipe_close(clu_bus *b, uint32_t pipe);

/* The TCP port the listener is bound to (useful after port 0). */
int clu_bus_port(const clu_bus *b);

/* Messages NNG delivered that were dropped because the loop's queue was full. */
uint64_t clu_bus_queue_dropped(const clu_bus *b);

#endif
