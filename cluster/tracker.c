/* SPDX-License-Identifier: Apache-2.0 */
/* Presence replication (see tracker.h): four message kinds carrying
 * pro_presence messages, deltas on the tick, clocks every second, full
 * states on request or to a member that turns alive. */
#include "cluster/tracker.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

enum {
	PRES_DELTA = CLU_KINDS_PRESENCE,
	PRES_CLOCKS,
	PRES_STATE_REQ,
	PRES_STATE,
};

#define CLOCKS_EVERY_TICKS 10

struct clu_tracker {
	clu_cluster *clu;
	clu_presence *crdt;
	void (*after_merge)(void *arg);
	void *arg;
	unsigned ticks;
};

static void
send_msg(clu_tracker *t, const char *to, uint32_t kind, pro_presence_msg *pm)
{
	char *buf = NULL;
	size_t len = 0;

	if (pm == NULL) {
		return;
	}
	if (pro_presence_encode(pm, &buf, &len) == PL_OK) {
		clu_cluster_send_app(t->clu, to, kind, buf, len);
	}
	free(buf);
	pro_presence_msg_destroy(pm);
}

static void
send_state(clu_tracker *t, const char *to)
{
	pro_presence_msg *pm = NULL;

	if (clu_presence_export(t->crdt, to, &pm) == PL_OK) {
		send_msg(t, to, PRES_STATE, pm);
	}
}

static void
on_tick(void *arg, uint64_t now_ms)
{
	clu_tracker *t = arg;
	pro_presence_msg *pm = NULL;

	(void)now_ms;
	if (clu_presence_has_delta(t->crdt) &&
	    clu_presence_take_delta(t->crdt, &pm) == PL_OK) {
		send_msg(t, NULL, PRES_DELTA, pm);
	}
	if (++t->ticks % CLOCKS_EVERY_TICKS == 0 &&
	    clu_presence_clocks(t->crdt, &pm) == PL_OK) {
		send_msg(t, NULL, PRES_CLOCKS, pm);
	}
}

/* The sender's replica must be known (and up) before its entries merge. */
static int
sender_up(clu_tracker *t, const char *from, const pro_presence_msg *pm)
{
	const pro_presence_replica *r;
	clu_status st;

	if (pm->sender >= pm->nreplicas) {
		return PL_EINVAL;
	}
	r = &pm->replicas[pm->sender];
	if (strcmp(r->name, from) != 0) {
		LOG_WARN("CLU-PRESFROM",
		    "presence message from %s claims to be from %s; dropped",
		    from, r->name);
		return PL_EINVAL;
	}
	st = clu_cluster_member_status(t->clu, from);
	if (st != CLU_ALIVE && st != CLU_SUSPECT) {
		return PL_EAGAIN;
	}
	return clu_presence_replica_up(t->crdt, r->name, r->vsn);
}

static void
on_message(
    void *arg, const char *from, uint32_t kind, const void *bytes, size_t len)
{
	clu_tracker *t = arg;
	pro_presence_msg *pm = NULL;
	int rc;

	if (kind == PRES_STATE_REQ) {
		send_state(t, from);
		return;
	}
	if (kind < PRES_DELTA || kind > PRES_STATE) {
		return;
	}
	if ((rc = pro_presence_decode(bytes, len, &pm)) != PL_OK) {
		LOG_WARN("CLU-PRESDECODE",
		    "undecodable presence message from %s: %s", from,
		    pl_strerror(rc));
		return;
	}
	if ((rc = sender_up(t, from, pm)) != PL_OK) {
		LOG_DEBUG("CLU-PRESSKIP",
		    "presence message %u from %s skipped: %s", kind, from,
		    pl_strerror(rc));
		goto out;
	}
	if (kind == PRES_CLOCKS) {
		if (clu_presence_behind(t->crdt, pm)) {
			clu_cluster_send_app(
			    t->clu, from, PRES_STATE_REQ, "", 0);
		}
		goto out;
	}
	LOG_DEBUG("CLU-PRESMSG", "presence %s from %s: %zu entries",
	    kind == PRES_DELTA ? "delta" : "state", from, pm->nentries);
	if ((rc = clu_presence_merge(t->crdt, pm)) != PL_OK) {
		LOG_WARN("CLU-PRESMERGE", "presence %s from %s not merged: %s",
		    kind == PRES_DELTA ? "delta" : "state", from,
		    pl_strerror(rc));
	}
	if (t->after_merge != NULL) {
		t->after_merge(t->arg);
	}
out:
	pro_presence_msg_destroy(pm);
}

static void
on_member_change(void *arg, const char *name, clu_status old, clu_status st)
{
	clu_tracker *t = arg;

	(void)old;
	LOG_DEBUG("CLU-PRESREP", "member %s %s: presence replica follows", name,
	    clu_status_name(st));
	switch (st) {
	case CLU_ALIVE:
		/* A new or returning node gets our state at once rather than
		 * after the next clocks exchange. */
		send_state(t, name);
		break;
	case CLU_DEAD: clu_presence_replica_down(t->crdt, name); break;
	case CLU_LEFT: clu_presence_replica_permdown(t->crdt, name); break;
	default: break;
	}
}

static const clu_service_ops tracker_ops = {
	.name = "presence",
	.kind_first = CLU_KINDS_PRESENCE,
	.kind_count = PRES_STATE - PRES_DELTA + 1,
	.on_message = on_message,
	.on_member_change = on_member_change,
	.on_tick = on_tick,
};

int
clu_tracker_create(clu_tracker **out, clu_cluster *c, clu_presence *p,
    void (*after_merge)(void *arg), void *arg)
{
	clu_tracker *t;
	int rc;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		return PL_ENOMEM;
	}
	t->clu = c;
	t->crdt = p;
	t->after_merge = after_merge;
	t->arg = arg;
	if ((rc = clu_cluster_add_service(c, &tracker_ops, t)) != PL_OK) {
		free(t);
		return rc;
	}
	*out = t;
	return PL_OK;
}

void
clu_tracker_destroy(clu_tracker *t)
{
	free(t);
}
