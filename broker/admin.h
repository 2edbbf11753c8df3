/* SPDX-License-Identifier: Apache-2.0 */
/* The admin HTTP API on --admin: GET /metrics, /v1/members, /v1/leader,
 * /v1/stats, /v1/sync, /v1/sync/parked, /v1/log-level, /v1/backup; POST
 * /v1/drain, /v1/leave, /v1/log-level, /v1/sync/retry (and, with --cluster-test-hooks, POST
 * /v1/test/block). Authenticated with the --admin-token-file bearer token;
 * without one, refuses to start on a non-loopback address. */
#ifndef PARLEY_BROKER_ADMIN_H
#define PARLEY_BROKER_ADMIN_H

#include <stddef.h>

typedef struct brk_node brk_node;
typedef struct brk_admin brk_admin;

int brk_admin_create(brk_admin **out, brk_node *n, char *err, size_t errlen);
void brk_admin_destroy(brk_admin *a);
/* Re-reads --admin-token-file (SIGHUP); logs the result, keeps the old
 * token when the file is unusable. */
void brk_admin_reload(brk_admin *a);

#endif
