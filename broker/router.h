/* SPDX-License-Identifier: Apache-2.0 */
/* The channel router: topic patterns to channel modules, the Phoenix control
 * events (join, leave, heartbeat, duplicate joins, refs), subscriptions and
 * the fastlane broadcast, which serializes once per serializer version and
 * writes the same bytes to every local subscriber. Broadcasts that must reach
 * other nodes leave through the forward hook, the cluster seam. */
#ifndef PARLEY_BROKER_ROUTER_H
#define PARLEY_BROKER_ROUTER_H

#include "common/rcbuf.h"
#include "proto/phx.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct brk_node brk_node;
typedef struct brk_conn brk_conn;
typedef struct brk_router brk_router;
typedef struct brk_channel brk_channel;
typedef struct brk_reply brk_reply;

typedef struct brk_channel_ops {
	const char *prefix; /* topics starting with this go to this module */
	/* Decides a join. Returns 0 and sets *reply (malloc'ed JSON text, NULL
	 * for {}) to accept; non-zero and sets *reason (static) to refuse. */
	int (*join)(
	    brk_channel *ch, json_t *params, char **reply, const char **reason);
	/* Runs after the ok reply is queued (push presence_state here). */
	void (*after_join)(brk_channel *ch);
	/* Handles an event; must answer r exactly once, now or later. */
	void (*handle_in)(
	    brk_channel *ch, const char *event, json_t *payload, brk_reply *r);
	/* Runs once when the channel ends for any reason. */
	void (*terminate)(brk_channel *ch);
} brk_channel_ops;

typedef struct pl_metrics pl_metrics;

/* metrics is borrowed (it must outlive the router): the router registers
 * its series there. max_channels: channels one socket may join. Returns
 * PL_OK, PL_ENOMEM or the registry's error; *out NULL on error. */
int
brk_router_create(brk_router **out, pl_metrics *metrics, uint32_t max_channels);
void brk_router_destroy(brk_router *r);

/* ops must outlive the router; arg (borrowed) is what the module's
 * channels get from brk_channel_module. Returns PL_OK, PL_EFULL (too many
 * modules) or the metrics registry's error. */
int brk_router_register(brk_router *r, const brk_channel_ops *ops, void *arg);

/* Handles one decoded client message. */
void brk_router_dispatch(brk_router *r, brk_conn *c, pro_phx_msg *m);

/* Terminates every channel of a closing socket. */
void brk_router_conn_closed(brk_router *r, brk_conn *c);

/* Sends event/payload (JSON text) to every subscriber of topic on this node
 * and, through the forward hook, to every other node. */
void brk_router_broadcast(brk_router *r, const char *topic, const char *event,
    const char *payload, size_t len);
/* Local subscribers only (broadcasts arriving from the cluster, presence
 * diffs, which every node computes for itself). Returns the sockets it
 * reached. */
size_t brk_router_local_broadcast(brk_router *r, const char *topic,
    const char *event, const char *payload, size_t len);

typedef void (*brk_forward_fn)(void *arg, const char *topic, const char *event,
    const char *payload, size_t len);
void brk_router_set_forward(brk_router *r, brk_forward_fn fn, void *arg);

/* Counts for /v1/stats and /metrics. */
size_t brk_router_topic_count(const brk_router *r);
size_t brk_router_channel_count(const brk_router *r);
uint64_t brk_router_broadcasts(const brk_router *r);
uint64_t brk_router_deliveries(const brk_router *r);

/* --- for channel modules --- */
const char *brk_channel_topic(const brk_channel *ch);
const char *brk_channel_user(const brk_channel *ch);
brk_conn *brk_channel_conn(brk_channel *ch);
/* The arg its module was registered with. */
void *brk_channel_module(const brk_channel *ch);
/* A process-unique id of this channel instance (presence owner handle). */
uint64_t brk_channel_id(const brk_channel *ch);
void *brk_channel_state(brk_channel *ch);
void brk_channel_set_state(brk_channel *ch, void *state);
/* Pushes event with payload (JSON text) to this channel only. */
void brk_channel_push(brk_channel *ch, const char *event, const char *payload);
/* The same with a payload made of n slices (see brk_conn_send_slices). */
void brk_channel_push_slices(
    brk_channel *ch, const char *event, const pl_slice *payload, size_t n);
/* Server-side close: pushes `event` {} first when non-NULL, then phx_close,
 * and ends the channel (terminate runs). */
void brk_channel_close(brk_channel *ch, const char *event);
/* Finds a channel by id (NULL if it has ended). */
brk_channel *brk_router_find_channel(brk_router *r, uint64_t id);

/* Replies. The reply holds the socket; it is freed by ok/error. */
void brk_reply_ok(brk_reply *rp, const char *response);
void brk_reply_error(brk_reply *rp, const char *reason);
/* Error with a full response object (JSON text). */
void brk_reply_error_json(brk_reply *rp, const char *response);

#endif
