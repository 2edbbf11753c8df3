/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster façade the broker drives: NNG bus full mesh, SWIM-style gossip
 * membership, leader choice, ordered cross-node broadcast and opaque app
 * messages. No event library inside: the broker watches clu_cluster_fd()
 * and calls clu_cluster_poll() when it is readable, plus clu_cluster_tick()
 * about every CLU_CLUSTER_TICK_MS. Every function must be called from that
 * one loop thread, and every callback fires only from poll/tick on it.
 * NNG and a DNS helper thread run underneath and never call back. */
#ifndef PARLEY_CLUSTER_CLUSTER_H
#define PARLEY_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"
#include "cluster/service.h"

/* How often the broker should call clu_cluster_tick(). */
#define CLU_CLUSTER_TICK_MS 100

typedef struct clu_cluster clu_cluster;

/* Callbacks; any may be NULL. String arguments are borrowed for the call.
 * A callback may call any clu_cluster_* function except destroy. */
typedef struct clu_cluster_callbacks {
	/* A member's status changed (self included). old is CLU_NONE for a
	 * newly learnt member, new is CLU_NONE when a record is forgotten.
	 * Remove a node's presences on CLU_DEAD and CLU_LEFT. */
	void (*on_member_change)(void *arg, const char *name,
	    clu_status old_status, clu_status new_status);
	/* The local view's leader changed (only on a real change: never
	 * the same value twice in a row); leader is NULL while unknown and
	 * from this node's own leave on. since_ms is the unix time of the
	 * change. */
	void (*on_leader_change)(
	    void *arg, const char *leader, uint64_t since_ms);
	/* A broadcast from another node, exactly once and in the publisher's
	 * order. payload is not NUL-terminated. */
	void (*on_broadcast)(void *arg, const char *publisher, uint64_t seq,
	    const char *topic, const char *event, const char *payload,
	    size_t len);
	void *arg;
} clu_cluster_callbacks;

typedef struct clu_cluster_opts {
	const char *node_name;     /* NULL: hostname */
	const char *listen_url;    /* NULL: tcp://0.0.0.0:4002; port 0 picks */
	const char *advertise_url; /* NULL: tcp://<listen host, or hostname
	                             * when listening on any>:<bound port> */
	const char *direct_listen_url;    /* NULL: the listen URL with its port
	                                * + 1 (0 stays 0: any) */
	const char *direct_advertise_url; /* NULL: the advertised host with
	                                   * the direct port bound */
	const char *join;                 /* comma-separated bus URLs and
	                             * dns:NAME:PORT entries; NULL: none */
	uint64_t start_id;            /* 0: now in unix ms (the normal case) */
	uint32_t heartbeat_ms;        /* 500 */
	uint32_t suspect_after_ms;    /* 1500 of silence: alive -> suspect */
	uint32_t dead_after_ms;       /* 3000 more: suspect -> dead */
	uint32_t forget_after_ms;     /* 600000: dead/left records dropped */
	uint32_t dns_interval_ms;     /* 3000: re-resolve while alone */
	uint32_t reconnect_min_ms;    /* 100 */
	uint32_t reconnect_max_ms;    /* 2000 */
	size_t recv_max_bytes;        /* 4 MiB */
	uint32_t malformed_limit;     /* 10 malformed messages from one
	                             * connection within ... */
	uint32_t malformed_window_ms; /* ... 10000 ms cut it off */
	clu_cluster_callbacks cb;
} clu_cluster_opts;

/* Fills o with the defaults above (all strings NULL, callbacks NULL). */
void clu_cluster_opts_init(clu_cluster_opts *o);

/* Opens the bus, starts listening and dialing seeds. Strings are copied.
 * Returns PL_OK and *out; PL_EINVAL (bad name, URL or join entry), PL_EIO
 * (cannot listen), PL_ENOMEM. Caller destroys. */
int clu_cluster_create(clu_cluster **out, const clu_cluster_opts *o);

/* Leaves gracefully (unless already left) and frees everything; blocks
 * ~50 ms so the leave announcement gets out. With crash = true nothing is
 * announced: the socket just closes, as if the process were killed (tests).
 * Remove clu_cluster_fd() from the event loop first. NNG 1.5.2's socket
 * close can hang for ever (NNG issue #1543); destroy waits for it at most
 * 1 s, then logs "CLU-CLOSEHANG" and returns, leaving the socket behind.
 * NULL is ignored. Never call from a callback. */
void clu_cluster_destroy(clu_cluster *c, bool crash);

/* The fd to watch for readability (owned by the cluster). */
int clu_cluster_fd(const clu_cluster *c);

/* Processes what arrived (at most a budget per call; the fd stays readable
 * while more is queued) and sends what was queued. now_ms: any monotonic clock in ms, the same one
 * for every call. */
void clu_cluster_poll(clu_cluster *c, uint64_t now_ms);

/* Periodic work: drains arrivals, runs the failure detector, heartbeats,
 * DNS re-resolution and dialer upkeep. */
void clu_cluster_tick(clu_cluster *c, uint64_t now_ms);

/* Announces a graceful leave (receivers mark us left at once) and keeps
 * re-announcing it each heartbeat until destroy; broadcasts and app
 * messages are refused from then on. Final. Returns PL_OK. */
int clu_cluster_leave(clu_cluster *c);

/* Queues a broadcast for every other node (not delivered locally). payload
 * is JSON text of len bytes (copied); topic <= 512 and event <= 128 bytes,
 * no NUL. Envelopes queued between two polls travel as one frame, sent at
 * the end of the current poll/tick or, when called from outside them, at
 * the poll the cluster's fd wakes up for at once. Returns PL_OK, PL_EINVAL,
 * PL_ETOOBIG (over recv_max_bytes), PL_ENOMEM, PL_ECLOSED (after leave).
 * A peer whose connection queue is full misses the frame; the receiver
 * counts a gap (there is no retransmission yet). */
int clu_cluster_broadcast(clu_cluster *c, const char *topic, const char *event,
    const char *payload, size_t len);

/* Adds a service (see service.h): from now on the app messages of its kinds,
 * membership and leader changes and the tick reach it. ops and arg are
 * borrowed and must outlive the cluster. Up to CLU_SERVICES_MAX services.
 * Returns PL_OK, PL_EINVAL (kinds outside 1..2^31 or overlapping another
 * service's), PL_EFULL. */
#define CLU_SERVICES_MAX 8
int
clu_cluster_add_service(clu_cluster *c, const clu_service_ops *ops, void *arg);

/* Outcome of clu_cluster_request: status PL_OK with the service's answer
 * (bytes borrowed for the call), or PL_EAGAIN (no answer in time, no
 * connection), PL_ENOTFOUND (`to` has no such service or is unknown),
 * PL_EPROTO (a malformed answer), or the error the service returned. */
typedef void (*clu_reply_fn)(
    void *arg, int status, const void *bytes, size_t len);

/* Sends bytes (copied) to the service owning app_kind on node `to` over the
 * addressed path, which reaches that node only; cb(arg, ...) runs exactly
 * once from a later poll/tick, unless the cluster is destroyed first (then
 * never). Returns PL_OK, or without calling cb: PL_EINVAL, PL_ENOTFOUND (no
 * addressed-path URL known for `to`), PL_EAGAIN (`to` is blocked by the
 * fault hook), PL_EFULL (too many requests in flight), PL_ECLOSED (after
 * leave), PL_ENOMEM, PL_EIO. */
int clu_cluster_request(clu_cluster *c, const char *to, uint32_t app_kind,
    const void *bytes, size_t len, uint32_t timeout_ms, clu_reply_fn cb,
    void *arg);

/* This node's addressed-path URL as advertised; borrowed until destroy. */
const char *clu_cluster_direct_address(const clu_cluster *c);

/* Queues an opaque message for node `to`, or for every other node when to
 * is NULL (to must not be this node). Same batching and errors as
 * broadcast. Best effort: duplicates are suppressed and order is the
 * sender's, but a lost frame is not resent. */
int clu_cluster_send_app(clu_cluster *c, const char *to, uint32_t app_kind,
    const void *bytes, size_t len);

/* This node's name and advertised URL; borrowed, valid until destroy. */
const char *clu_cluster_self_name(const clu_cluster *c);
const char *clu_cluster_self_address(const clu_cluster *c);

/* The leader in the local view: the member (self included) alive or
 * suspect with the oldest start id (ties by name), so a restart never
 * takes the role back (see clu_membership_leader). A suspect stays eligible
 * because a suspicion is refuted within a heartbeat, while a leader change
 * restarts the Firebase queue; a crashed leader is replaced when it is
 * declared dead (within 5 s with the default timings). NULL while unknown:
 * a node with seeds claims nothing until it has heard from a peer or
 * suspect_after_ms has passed; and NULL from clu_cluster_leave() on, since
 * a node that has left belongs to no cluster (it does not follow the
 * others' changes while it lingers). *since_ms (optional) gets the unix ms
 * of the last change. Borrowed until the next poll/tick. */
const char *clu_cluster_leader(const clu_cluster *c, uint64_t *since_ms);

/* Calls fn for every known member (self included) in name order; info is
 * borrowed for the call. For GET /v1/members. */
void clu_cluster_members(const clu_cluster *c,
    void (*fn)(void *arg, const clu_member_info *info), void *arg);

/* Status of one member, CLU_NONE if unknown. */
clu_status clu_cluster_member_status(const clu_cluster *c, const char *name);

/* True once this node belongs to a cluster: it has no seeds, or it has
 * heard from another node (for /readyz). */
bool clu_cluster_joined(const clu_cluster *c);

/* Test-only fault hook: while blocked, every message from `name` is dropped
 * here and every message we send tells `name` to drop it, so one call cuts
 * both directions. Up to 16 names. Returns PL_OK, PL_EINVAL, PL_EFULL. */
int clu_cluster_set_blocked(clu_cluster *c, const char *name, bool blocked);

typedef struct clu_cluster_stats {
	uint64_t sent;           /* messages handed to the bus */
	uint64_t received;       /* messages taken from the bus */
	uint64_t malformed;      /* undecodable, dropped */
	uint64_t unknown;        /* newer version or unknown kind, skipped */
	uint64_t dropped;        /* lost locally: receive queue full or send
	                            * refused by the bus */
	uint64_t duplicates;     /* seen twice (a pair has two pipes) */
	uint64_t refused;        /* from a refused instance (name conflict,
	                            * stale restart, or our own echo) */
	uint64_t blocked;        /* dropped by the fault hook */
	uint64_t gaps;           /* broadcasts a publisher sent that we never
	                            * got (sequence holes) */
	uint64_t cut_off_peers;  /* connections closed for malformed input */
	uint64_t name_conflicts; /* messages refused for a duplicate name */
	uint64_t broadcasts_sent;
	uint64_t broadcasts_delivered;
	uint64_t apps_sent;
	uint64_t apps_delivered;
	uint64_t bus_bytes_in;  /* frames received on the bus */
	uint64_t bus_bytes_out; /* frames handed to the bus (each goes
	                            * to every connected peer) */
	uint64_t requests_sent; /* on the addressed path */
	uint64_t requests_served;
	uint64_t requests_failed;  /* ours that got no answer */
	uint64_t direct_bytes_in;  /* addressed-path bytes received */
	uint64_t direct_bytes_out; /* addressed-path bytes sent */
	uint32_t members_alive;    /* self included */
	uint32_t members_suspect;
	uint32_t members_dead;
	uint32_t members_left;
	uint32_t dialers; /* dialers open and wanted (retired ones,
	                            * see bus.h, not counted) */
} clu_cluster_stats;

void clu_cluster_stats_get(const clu_cluster *c, clu_cluster_stats *out);

#endif
