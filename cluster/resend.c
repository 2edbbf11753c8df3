/* SPDX-License-Identifier: Apache-2.0 */
/* The repeat schedule after a member turns alive (see resend.h). */
#include "cluster/resend.h"

void
clu_resend_member_alive(clu_resend *r)
{
	r->active = true;
	r->done = 0;
	r->at = r->now + CLU_RESEND_FIRST_MS;
}

bool
clu_resend_due(clu_resend *r, uint64_t now_ms)
{
	if (r->now == 0 && r->active) {
		/* The event came before our first tick: count from here. */
		r->at = now_ms + CLU_RESEND_FIRST_MS;
	}
	r->now = now_ms;
	if (!r->active || now_ms < r->at) {
		return false;
	}
	if (++r->done == 2) {
		r->active = false;
	} else {
		r->at += CLU_RESEND_SECOND_MS - CLU_RESEND_FIRST_MS;
	}
	return true;
}
