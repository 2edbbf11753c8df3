/* SPDX-License-Identifier: Apache-2.0 */
/* Node facts (see nodeinfo.h): a table of peers' fingerprints, kept for
 * live members only, compared with ours. */
#include "cluster/nodeinfo.h"

#include "cluster/cluster.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/nodeinfo.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct peer {
	char name[PRO_WIRE_NAME_MAX + 1];
	char fp[PRO_NODEINFO_FP_MAX + 1];
	bool logged; /* the mismatch with this fp was logged */
} peer;

struct clu_nodeinfo {
	clu_cluster *c;
	char fp[PRO_NODEINFO_FP_MAX + 1];
	peer *v; /* sorted by name */
	size_t n, cap;
	uint64_t last_sent_ms;
};

static void
announce(clu_nodeinfo *ni, const char *to)
{
	char *buf = NULL;
	size_t len = 0;

	if (pro_nodeinfo_encode(ni->fp, &buf, &len) == PL_OK) {
		clu_cluster_send_app(ni->c, to, CLU_NODEINFO_KIND_FP, buf, len);
	}
	free(buf);
}

static peer *
find(clu_nodeinfo *ni, const char *name, bool add)
{
	size_t i = 0;

	while (i < ni->n && strcmp(ni->v[i].name, name) < 0) {
		i++;
	}
	if (i < ni->n && strcmp(ni->v[i].name, name) == 0) {
		return &ni->v[i];
	}
	if (!add) {
		return NULL;
	}
	if (ni->n == ni->cap) {
		size_t cap = ni->cap ? ni->cap * 2 : 8;
		peer *p = realloc(ni->v, cap * sizeof(*p));
		if (p == NULL) {
			return NULL;
		}
		ni->v = p;
		ni->cap = cap;
	}
	memmove(&ni->v[i + 1], &ni->v[i], (ni->n - i) * sizeof(*ni->v));
	ni->n++;
	memset(&ni->v[i], 0, sizeof(ni->v[i]));
	snprintf(ni->v[i].name, sizeof(ni->v[i].name), "%s", name);
	return &ni->v[i];
}

static void
forget(clu_nodeinfo *ni, const char *name)
{
	peer *p = find(ni, name, false);

	if (p != NULL) {
		size_t i = (size_t)(p - ni->v);
		memmove(&ni->v[i], &ni->v[i + 1], (ni->n - i - 1) * sizeof(*p));
		ni->n--;
	}
}

/* Logs a peer's mismatch once per (its fingerprint, ours). */
static void
judge(clu_nodeinfo *ni, peer *p)
{
	if (strcmp(p->fp, ni->fp) == 0) {
		if (p->logged) {
			LOG_NOTICE("CLU-SECRETMATCH",
			    "node %s now signs client tokens with the same JWT "
			    "secret as this node",
			    p->name);
		}
		p->logged = false;
		return;
	}
	if (!p->logged) {
		LOG_ERR("CLU-SECRETMISMATCH",
		    "node %s signs client tokens with a different JWT secret "
		    "(fingerprint %s, ours %s): tokens one of us issues are "
		    "refused by the other; give every node the same "
		    "--jwt-secret-file (first line signs)",
		    p->name, p->fp, ni->fp);
		p->logged = true;
	}
}

static const clu_service_ops nodeinfo_ops = {
	.name = "nodeinfo",
	.kind_first = CLU_KINDS_NODEINFO,
	.kind_count = 1,
	.on_message = clu_nodeinfo_on_message,
	.on_member_change = clu_nodeinfo_on_member_change,
	.on_tick = clu_nodeinfo_on_tick,
};

int
clu_nodeinfo_create(
    clu_nodeinfo **out, clu_cluster *cluster, const char *fingerprint)
{
	clu_nodeinfo *ni = calloc(1, sizeof(*ni));
	int rc;

	*out = NULL;
	if (ni == NULL) {
		return PL_ENOMEM;
	}
	ni->c = cluster;
	snprintf(ni->fp, sizeof(ni->fp), "%s", fingerprint ? fingerprint : "");
	if ((rc = clu_cluster_add_service(cluster, &nodeinfo_ops, ni)) !=
	    PL_OK) {
		free(ni);
		return rc;
	}
	*out = ni;
	return PL_OK;
}

void
clu_nodeinfo_destroy(clu_nodeinfo *ni)
{
	if (ni == NULL) {
		return;
	}
	free(ni->v);
	free(ni);
}

void
clu_nodeinfo_set_fingerprint(clu_nodeinfo *ni, const char *fingerprint)
{
	if (strcmp(ni->fp, fingerprint) == 0) {
		return;
	}
	snprintf(ni->fp, sizeof(ni->fp), "%s", fingerprint);
	/* Every peer is judged anew against the new secret. */
	for (size_t i = 0; i < ni->n; i++) {
		if (strcmp(ni->v[i].fp, ni->fp) != 0) {
			ni->v[i].logged = false; /* a new pair: say it again */
		}
		judge(ni, &ni->v[i]);
	}
	announce(ni, NULL);
}

void
clu_nodeinfo_on_message(
    void *arg, const char *from, uint32_t kind, const void *bytes, size_t len)
{
	clu_nodeinfo *ni = arg;
	char fp[PRO_NODEINFO_FP_MAX + 1];
	clu_status st = clu_cluster_member_status(ni->c, from);
	peer *p;
	int rc;

	if (kind != CLU_NODEINFO_KIND_FP) {
		return; /* a later kind of this range: not ours to know */
	}
	if ((rc = pro_nodeinfo_decode(bytes, len, fp)) != PL_OK) {
		LOG_WARN("CLU-NODEINFO", "undecodable node facts from %s: %s",
		    from, pl_strerror(rc));
		return;
	}
	if ((st != CLU_ALIVE && st != CLU_SUSPECT) ||
	    (p = find(ni, from, true)) == NULL) {
		return;
	}
	if (strcmp(p->fp, fp) != 0) {
		snprintf(p->fp, sizeof(p->fp), "%s", fp);
		if (strcmp(fp, ni->fp) != 0) {
			p->logged = false; /* a new pair: say it again */
		}
	}
	judge(ni, p);
}

void
clu_nodeinfo_on_member_change(
    void *arg, const char *name, clu_status old_status, clu_status new_status)
{
	clu_nodeinfo *ni = arg;

	(void)old_status;
	if (strcmp(name, clu_cluster_self_name(ni->c)) == 0) {
		return;
	}
	if (new_status == CLU_ALIVE) {
		/* A new or returning node hears our fingerprint at once; it
		 * answers with its own when we turn alive in its view. */
		announce(ni, name);
	} else if (new_status != CLU_SUSPECT) {
		forget(ni, name);
	}
}

void
clu_nodeinfo_on_tick(void *arg, uint64_t now_ms)
{
	clu_nodeinfo *ni = arg;

	if (ni->last_sent_ms == 0 ||
	    now_ms - ni->last_sent_ms >= CLU_NODEINFO_RESEND_MS) {
		ni->last_sent_ms = now_ms;
		announce(ni, NULL);
	}
}

size_t
clu_nodeinfo_mismatches(const clu_nodeinfo *ni,
    void (*fn)(void *arg, const char *peer, const char *fingerprint), void *arg)
{
	size_t k = 0;

	for (size_t i = 0; i < ni->n; i++) {
		if (strcmp(ni->v[i].fp, ni->fp) != 0) {
			k++;
			if (fn) {
				fn(arg, ni->v[i].name, ni->v[i].fp);
			}
		}
	}
	return k;
}
