/* SPDX-License-Identifier: Apache-2.0 */
/* When a service sends its whole state again after a member turns alive.
 * A member counts as alive once any node vouches for it, which can be
 * before the bus has a pipe to it, so what a service sends it at that
 * moment can be lost. A service that sends its state when a member turns
 * alive sends it again 1 s and 5 s after the event (a newer event starts
 * the series again). A plain schedule on the caller's clock; loop thread
 * only. */
#ifndef PARLEY_CLUSTER_RESEND_H
#define PARLEY_CLUSTER_RESEND_H

#include <stdbool.h>
#include <stdint.h>

#define CLU_RESEND_FIRST_MS 1000u  /* after the member turned alive */
#define CLU_RESEND_SECOND_MS 5000u /* likewise */

typedef struct clu_resend {
	uint64_t now;  /* the caller's clock at its last tick */
	uint64_t at;   /* next repeat due */
	unsigned done; /* repeats made of the current series */
	bool active;
} clu_resend;

/* A member turned alive: the series starts (again) from the last tick. */
void clu_resend_member_alive(clu_resend *r);

/* Called on every tick: true when the whole state is due again now. */
bool clu_resend_due(clu_resend *r, uint64_t now_ms);

#endif
