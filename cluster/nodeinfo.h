/* SPDX-License-Identifier: Apache-2.0 */
/* The node-facts service: every node tells every other the fingerprint of
 * the JWT secret it signs client tokens with (proto/nodeinfo), when a
 * member turns alive, when its own secret changes (SIGHUP) and every
 * NODEINFO_RESEND_MS in case a message was lost. A peer whose fingerprint
 * differs from ours is logged loudly (CLU-SECRETMISMATCH) once per change
 * and listed by clu_nodeinfo_mismatches() for /readyz and /metrics. A
 * cluster service (service.h): create registers it. Loop thread only. */
#ifndef PARLEY_CLUSTER_NODEINFO_H
#define PARLEY_CLUSTER_NODEINFO_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"

/* The app kind of the fingerprint message: the first of the node-facts
 * range of app kinds (64..79). */
#define CLU_NODEINFO_KIND_FP 64u
#define CLU_NODEINFO_RESEND_MS 10000u

typedef struct clu_cluster clu_cluster;
typedef struct clu_nodeinfo clu_nodeinfo;

/* Creates the service and registers it with cluster (borrowed; destroy the
 * cluster first). fingerprint: copied. Returns PL_OK, PL_ENOMEM or the error
 * of clu_cluster_add_service; *out is NULL on error. */
int clu_nodeinfo_create(
    clu_nodeinfo **out, clu_cluster *cluster, const char *fingerprint);
void clu_nodeinfo_destroy(clu_nodeinfo *ni);

/* Our secret changed: re-announces it to everyone and re-judges peers. */
void clu_nodeinfo_set_fingerprint(clu_nodeinfo *ni, const char *fingerprint);

/* Service callbacks (arg is the clu_nodeinfo). */
void clu_nodeinfo_on_message(
    void *arg, const char *from, uint32_t kind, const void *bytes, size_t len);
void clu_nodeinfo_on_member_change(
    void *arg, const char *name, clu_status old_status, clu_status new_status);
void clu_nodeinfo_on_tick(void *arg, uint64_t now_ms);

/* Calls fn (may be NULL) for every peer known to sign with another secret,
 * in name order, with its fingerprint; returns how many there are. */
size_t clu_nodeinfo_mismatches(const clu_nodeinfo *ni,
    void (*fn)(void *arg, const char *peer, const char *fingerprint),
    void *arg);

#endif
