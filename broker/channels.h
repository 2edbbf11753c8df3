/* SPDX-License-Identifier: Apache-2.0 */
/* The channel modules of the contract, comments:<video_id> and
 * presence:<user_id>, registered with a router. They take what they use
 * here, not from the node, so a test can run them over any store,
 * presence and limiter. */
#ifndef PARLEY_BROKER_CHANNELS_H
#define PARLEY_BROKER_CHANNELS_H

#include "broker/node.h"
#include "broker/presence.h"

typedef struct brk_channels brk_channels;
typedef struct brk_router brk_router;
typedef struct brk_presence brk_presence;
typedef struct brk_ratelimit brk_ratelimit;
typedef struct sto_comments sto_comments;
typedef struct clu_replication clu_replication;

/* Every pointer is borrowed and must outlive the modules. */
typedef struct brk_channels_deps {
	brk_router *router; /* the modules register here */
	sto_comments *comments;
	brk_presence *presence;
	brk_ratelimit *ratelimit;
	brk_node_stats *stats; /* comment counters and the ack histogram */
	long max_comment_bytes, max_devices, ack_replicas;
} brk_channels_deps;

/* Registers both modules with d->router. Returns PL_OK, PL_ENOMEM or the
 * error of brk_router_register (the router is then unusable: its owner
 * destroys it); *out NULL on error. */
int brk_channels_create(brk_channels **out, const brk_channels_deps *d);
/* After the router is gone (its channels hold the modules). */
void brk_channels_destroy(brk_channels *cs);

/* Points the presence hub's outputs at router r's channels: push
 * presence_state to a channel, presence_diff to a topic's local
 * subscribers, close a channel by its id. Sets env's push, broadcast,
 * close and arg; the rest is the caller's. */
void brk_channels_presence_env(brk_presence_env *env, brk_router *r);

/* The comment replication service once the cluster runs; NULL (the
 * default, and before the cluster goes) publishes nothing. Borrowed. */
void brk_channels_set_replication(brk_channels *cs, clu_replication *r);

#endif
