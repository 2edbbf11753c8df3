/* SPDX-License-Identifier: Apache-2.0 */
/* The admin HTTP API on --admin: /metrics, /v1/members, /v1/leader,
 * /v1/stats, /v1/sync, POST /v1/drain and /v1/leave (and, with
 * --cluster-test-hooks, POST /v1/test/block). */
#ifndef PARLEY_BROKER_ADMIN_H
#define PARLEY_BROKER_ADMIN_H

#include <stddef.h>

typedef struct brk_node brk_node;
typedef struct brk_admin brk_admin;

int brk_admin_create(brk_admin **out, brk_node *n, char *err, size_t errlen);
void brk_admin_destroy(brk_admin *a);

#endif
