/* SPDX-License-Identifier: Apache-2.0 */
/* A running node: the one libevent loop and everything hanging off it
 * (listeners, sockets, router, storage, presence, cluster, admin API), its
 * timers and signals, readiness and the SIGTERM drain. */
#ifndef PARLEY_BROKER_NODE_H
#define PARLEY_BROKER_NODE_H

#include "broker/config.h"
#include "broker/node_stats.h"

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
typedef struct brk_fbsync brk_fbsync;

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
/* This process's comment origin, "<name>~<random>" (borrowed). */
const char *brk_node_origin(const brk_node *n);
brk_router *brk_node_router(brk_node *n);
brk_presence *brk_node_presence(brk_node *n);
brk_ratelimit *brk_node_ratelimit(brk_node *n);
sto_comments *brk_node_comments(brk_node *n);
brk_mesh *brk_node_mesh(brk_node *n);
brk_fbsync *brk_node_fbsync(brk_node *n);
brk_node_stats *brk_node_stats_of(brk_node *n);
/* The node's metrics registry: modules add their series to it at create
 * time (see common/metrics.h). */
struct pl_metrics *brk_node_metrics(brk_node *n);
/* The JWT keys (signing key first); borrowed until the next SIGHUP. */
struct brk_key;
const struct brk_key *brk_node_keys(const brk_node *n, size_t *count);
/* The signing secret's fingerprint (BRK_FINGERPRINT_LEN + 1 bytes). */
void brk_node_fingerprint(const brk_node *n, char *out);
/* The Firebase auth= token (--firebase-auth-file or --firebase-auth), NULL
 * when none; borrowed until the next SIGHUP. */
const char *brk_node_firebase_auth(const brk_node *n);
uint64_t brk_node_now_ms(brk_node *n);

int brk_node_ready(const brk_node *n);
/* The /readyz answer: *status 200 or 503 and a text body that names
 * warnings (peers signing tokens with another JWT secret); valid until the
 * next call. */
const char *brk_node_readyz(brk_node *n, int *status);
int brk_node_draining(const brk_node *n);
/* False once draining or after `parley leave`: upgrades are refused. */
int brk_node_accepting(const brk_node *n);
/* What SIGHUP does: reopens the log file, reloads the JWT secrets, the
 * admin token and the Firebase token from their files (each logged; a file
 * that fails to load keeps the previous value). */
void brk_node_reload(brk_node *n);
/* Begins the graceful drain (SIGTERM, POST /v1/drain). */
void brk_node_drain(brk_node *n);
/* Announces leave to the cluster without stopping (POST /v1/leave):
 * /readyz turns 503 and new upgrades are refused; open sockets stay. */
void brk_node_leave(brk_node *n);

/* --- sockets (for conn.c) --- */
/* Arms the flush pass that runs once the current batch of events is done. */
void brk_node_want_flush(brk_node *n);
/* The node's socket lists; conn.c owns the links. */
struct brk_conn_list *brk_node_conns(brk_node *n);

#endif
