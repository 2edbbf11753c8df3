/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster-wide rate-limit counts (see ratesync.h). */
#include "cluster/ratesync.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/resend.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/ratecount.h"

enum { RATE_COUNTS = CLU_KINDS_RATELIMIT };

struct clu_ratesync {
	clu_cluster *clu;
	uint32_t window_ms;
	clu_ratesync_ops ops;
	pro_ratecount *items; /* collected, not yet sent */
	char **strs;          /* their strings (action, user pairs) */
	size_t n, cap;
	pro_wire_buf buf;
	clu_resend resend; /* all counts again after a member turns alive */
	clu_ratesync_stats st;
};

static void
send_items(clu_ratesync *s)
{
	s->buf.len = 0;
	if (s->n > 0 &&
	    pro_ratecount_encode(&s->buf, s->window_ms, s->items, s->n) ==
		PL_OK &&
	    clu_cluster_send_app(
		s->clu, NULL, RATE_COUNTS, s->buf.data, s->buf.len) == PL_OK) {
		s->st.sent += s->n;
	}
	for (size_t i = 0; i < 2 * s->n; i++) {
		free(s->strs[i]);
	}
	s->n = 0;
}

static void
emit(void *ctx, const char *action, const char *user, uint64_t window,
    unsigned count)
{
	clu_ratesync *s = ctx;
	char *a, *u;

	if (s->n == PRO_RATECOUNT_MAX) {
		send_items(s);
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		pro_ratecount *it = realloc(s->items, cap * sizeof(*it));
		char **st;

		if (it == NULL) {
			return;
		}
		s->items = it;
		if ((st = realloc(s->strs, 2 * cap * sizeof(*st))) == NULL) {
			return;
		}
		s->strs = st;
		s->cap = cap;
	}
	if ((a = strdup(action)) == NULL || (u = strdup(user)) == NULL) {
		free(a);
		return;
	}
	s->strs[2 * s->n] = a;
	s->strs[2 * s->n + 1] = u;
	s->items[s->n] = (pro_ratecount){ pro_wire_cstr(a), pro_wire_cstr(u),
		window, count };
	s->n++;
}

void
clu_ratesync_flush(clu_ratesync *s)
{
	s->ops.collect(s->ops.arg, emit, s);
	send_items(s);
}

static void
send_all(clu_ratesync *s)
{
	if (s->ops.touch_all != NULL) {
		s->ops.touch_all(s->ops.arg);
		clu_ratesync_flush(s);
	}
}

static void
on_tick(void *arg, uint64_t now)
{
	clu_ratesync *s = arg;

	if (clu_resend_due(&s->resend, now)) {
		s->st.resends++;
		send_all(s);
		return;
	}
	clu_ratesync_flush(s);
}

static void
on_message(
    void *arg, const char *from, uint32_t kind, const void *bytes, size_t len)
{
	clu_ratesync *s = arg;
	pro_ratecount_msg m;
	char action[PRO_RATECOUNT_ACTION_MAX + 1];
	char user[PRO_RATECOUNT_USER_MAX + 1];
	int rc;

	(void)kind;
	if ((rc = pro_ratecount_decode(bytes, len, &m)) != PL_OK) {
		if (rc != PL_ENOTFOUND) {
			s->st.refused++;
		}
		return;
	}
	if (m.window_ms != s->window_ms) {
		s->st.refused++;
		LOG_SUMMARY(PL_LOG_WARN, "CLU-RATEWINDOW",
		    "%s counts rate limits in windows of %u ms, we in %u ms: "
		    "its counts are ignored (give every node the same "
		    "--rate-limit)",
		    from, m.window_ms, s->window_ms);
	} else {
		for (size_t i = 0; i < m.n; i++) {
			const pro_ratecount *c = &m.items[i];

			memcpy(action, c->action.ptr, c->action.len);
			action[c->action.len] = '\0';
			memcpy(user, c->user.ptr, c->user.len);
			user[c->user.len] = '\0';
			s->ops.merge(s->ops.arg, from, action, user, c->window,
			    c->count);
		}
		s->st.received += m.n;
	}
	pro_ratecount_release(&m);
}

static void
on_member_change(void *arg, const char *name, clu_status old, clu_status st)
{
	clu_ratesync *s = arg;

	(void)name;
	(void)old;
	if (st == CLU_ALIVE) {
		send_all(s);
		clu_resend_member_alive(&s->resend);
	}
}

static const clu_service_ops ratesync_ops = {
	.name = "ratelimit",
	.kind_first = CLU_KINDS_RATELIMIT,
	.kind_count = 1,
	.on_message = on_message,
	.on_member_change = on_member_change,
	.on_tick = on_tick,
};

int
clu_ratesync_create(clu_ratesync **out, clu_cluster *c, uint32_t window_ms,
    const clu_ratesync_ops *ops)
{
	clu_ratesync *s;
	int rc;

	*out = NULL;
	if (c == NULL || window_ms == 0 || ops == NULL ||
	    ops->collect == NULL || ops->merge == NULL) {
		return PL_EINVAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return PL_ENOMEM;
	}
	s->clu = c;
	s->window_ms = window_ms;
	s->ops = *ops;
	if ((rc = clu_cluster_add_service(c, &ratesync_ops, s)) != PL_OK) {
		free(s);
		return rc;
	}
	*out = s;
	return PL_OK;
}

void
clu_ratesync_destroy(clu_ratesync *s)
{
	if (s == NULL) {
		return;
	}
	free(s->items);
	free(s->strs);
	pro_wire_buf_free(&s->buf);
	free(s);
}

void
clu_ratesync_stats_get(const clu_ratesync *s, clu_ratesync_stats *out)
{
	*out = s->st;
}
