/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync state service (see syncmarks.h): two sorted tables, the
 * marks by origin and the parked entries by (origin, seq), merged by max. */
#include "cluster/syncmarks.h"

#include "cluster/cluster.h"
#include "cluster/resend.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512 /* entries per message */

typedef struct mark {
	char origin[PRO_SYNC_ORIGIN_MAX + 1];
	uint64_t synced, sent;
} mark;

typedef struct parked {
	char origin[PRO_SYNC_ORIGIN_MAX + 1];
	char reason[PRO_SYNC_REASON_MAX + 1];
	pro_sync_parked p; /* strings point at the two above */
} parked;

struct clu_syncmarks {
	clu_cluster *c;
	clu_syncmarks_listener l;
	mark *m;
	size_t nm, capm;
	parked **p; /* pointers, so an entry's strings stay put */
	size_t np, capp;
	char leader[PRO_WIRE_NAME_MAX + 1];
	bool has_leader;
	uint64_t last_full_ms, last_parked_ms;
	clu_resend resend; /* everything again after a member turns alive */
};

static bool
origin_ok(const char *o)
{
	size_t n = o ? strnlen(o, PRO_SYNC_ORIGIN_MAX + 1) : 0;

	return n >= 1 && n <= PRO_SYNC_ORIGIN_MAX;
}

/* ---- sending ---- */

/* Sends what an encoder made (rc its result); frees buf. */
static void
send_encoded(clu_syncmarks *s, const char *to, uint32_t kind, int rc, char *buf,
    size_t len)
{
	if (rc == PL_OK) {
		rc = clu_cluster_send_app(s->c, to, kind, buf, len);
	}
	if (rc != PL_OK && rc != PL_ECLOSED) {
		LOG_WARN("CLU-SYNCSEND", "sync state (kind %u) not sent: %s",
		    kind, pl_strerror(rc));
	}
	free(buf);
}

static void
send_marks(clu_syncmarks *s, const char *to, const pro_sync_mark *v, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = pro_sync_marks_encode(v, n, &buf, &len);

	send_encoded(s, to, CLU_SYNCMARKS_KIND_MARKS, rc, buf, len);
}

static void
send_all_marks(clu_syncmarks *s, const char *to)
{
	pro_sync_mark v[CHUNK];
	size_t k = 0;

	for (size_t i = 0; i < s->nm; i++) {
		v[k].origin = s->m[i].origin;
		v[k].synced = s->m[i].synced;
		v[k].sent = s->m[i].sent;
		if (++k == CHUNK || i + 1 == s->nm) {
			send_marks(s, to, v, k);
			k = 0;
		}
	}
}

static void
send_parked(
    clu_syncmarks *s, const char *to, const pro_sync_parked *v, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = pro_sync_parked_encode(v, n, &buf, &len);

	send_encoded(s, to, CLU_SYNCMARKS_KIND_PARKED, rc, buf, len);
}

static void
send_all_parked(clu_syncmarks *s, const char *to)
{
	pro_sync_parked v[CHUNK];
	size_t k = 0;

	for (size_t i = 0; i < s->np; i++) {
		v[k++] = s->p[i]->p;
		if (k == CHUNK || i + 1 == s->np) {
			send_parked(s, to, v, k);
			k = 0;
		}
	}
}

/* ---- the tables ---- */

/* Binary search over n sorted entries: the index of the one cmp(i) calls
 * equal (*found), or where it would go. */
static size_t
search(size_t n, int (*cmp)(const void *key, const clu_syncmarks *s, size_t i),
    const void *key, const clu_syncmarks *s, bool *found)
{
	size_t lo = 0, hi = n;

	*found = false;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = cmp(key, s, mid);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c > 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static int
cmp_mark(const void *key, const clu_syncmarks *s, size_t i)
{
	return strcmp(key, s->m[i].origin);
}

static size_t
find_mark(const clu_syncmarks *s, const char *origin, bool *found)
{
	return search(s->nm, cmp_mark, origin, s, found);
}

/* Raises origin's marks; *changed tells whether anything rose. */
static int
raise_mark(clu_syncmarks *s, const char *origin, uint64_t synced, uint64_t sent,
    bool *changed)
{
	bool found;
	size_t i = find_mark(s, origin, &found);
	mark *m;

	*changed = false;
	if (!found) {
		if (s->nm >= CLU_SYNCMARKS_ORIGINS_MAX) {
			return PL_EFULL;
		}
		if (s->nm == s->capm) {
			size_t cap = s->capm ? s->capm * 2 : 8;
			mark *nm = realloc(s->m, cap * sizeof(*nm));
			if (nm == NULL) {
				return PL_ENOMEM;
			}
			s->m = nm;
			s->capm = cap;
		}
		memmove(&s->m[i + 1], &s->m[i], (s->nm - i) * sizeof(*s->m));
		s->nm++;
		memset(&s->m[i], 0, sizeof(s->m[i]));
		snprintf(s->m[i].origin, sizeof(s->m[i].origin), "%s", origin);
	}
	m = &s->m[i];
	if (synced > m->synced) {
		m->synced = synced;
		*changed = true;
	}
	if (sent > m->sent) {
		m->sent = sent;
		*changed = true;
	}
	/* Whatever is synced was sent. */
	if (m->synced > m->sent) {
		m->sent = m->synced;
	}
	return PL_OK;
}

typedef struct parked_key {
	const char *origin;
	uint64_t seq;
} parked_key;

static int
cmp_parked(const void *key, const clu_syncmarks *s, size_t i)
{
	const parked_key *k = key;
	const parked *e = s->p[i];
	int c = strcmp(k->origin, e->origin);

	if (c != 0) {
		return c;
	}
	return k->seq < e->p.seq ? -1 : k->seq > e->p.seq;
}

static size_t
find_parked(
    const clu_syncmarks *s, const char *origin, uint64_t seq, bool *found)
{
	parked_key k = { origin, seq };

	return search(s->np, cmp_parked, &k, s, found);
}

static void
remove_parked(clu_syncmarks *s, size_t i)
{
	free(s->p[i]);
	memmove(&s->p[i], &s->p[i + 1], (s->np - i - 1) * sizeof(*s->p));
	s->np--;
}

/* Makes room in a full table by forgetting the oldest DONE entry. */
static bool
evict_done(clu_syncmarks *s)
{
	size_t best = s->np;

	for (size_t i = 0; i < s->np; i++) {
		if (s->p[i]->p.state == PRO_SYNC_DONE &&
		    (best == s->np || s->p[i]->p.gen < s->p[best]->p.gen)) {
			best = i;
		}
	}
	if (best == s->np) {
		return false;
	}
	remove_parked(s, best);
	return true;
}

/* Stores p when newer; PL_EEXIST when not. */
static int
merge_parked(clu_syncmarks *s, const pro_sync_parked *p)
{
	bool found;
	size_t i;
	parked *e;

	if (!origin_ok(p->origin) || p->seq == 0 || p->gen == 0 ||
	    p->state < PRO_SYNC_PARKED || p->state > PRO_SYNC_DONE) {
		return PL_EINVAL;
	}
	i = find_parked(s, p->origin, p->seq, &found);
	if (found) {
		e = s->p[i];
		if (p->gen <= e->p.gen) {
			return PL_EEXIST;
		}
	} else {
		if (s->np >= CLU_SYNCMARKS_PARKED_MAX) {
			if (!evict_done(s)) {
				return PL_EFULL;
			}
			i = find_parked(s, p->origin, p->seq, &found);
		}
		if (s->np == s->capp) {
			size_t cap = s->capp ? s->capp * 2 : 16;
			parked **np = realloc(s->p, cap * sizeof(*np));
			if (np == NULL) {
				return PL_ENOMEM;
			}
			s->p = np;
			s->capp = cap;
		}
		if ((e = calloc(1, sizeof(*e))) == NULL) {
			return PL_ENOMEM;
		}
		memmove(&s->p[i + 1], &s->p[i], (s->np - i) * sizeof(*s->p));
		s->p[i] = e;
		s->np++;
		snprintf(e->origin, sizeof(e->origin), "%s", p->origin);
	}
	e->p = *p;
	snprintf(
	    e->reason, sizeof(e->reason), "%s", p->reason ? p->reason : "");
	e->p.origin = e->origin;
	e->p.reason = e->reason;
	return PL_OK;
}

/* ---- service callbacks ---- */

typedef struct merge_ctx {
	clu_syncmarks *s;
	const char *from;
} merge_ctx;

static void
merge_mark(void *arg, const pro_sync_mark *m)
{
	merge_ctx *x = arg;
	clu_syncmarks *s = x->s;
	bool changed;
	uint64_t synced, sent;
	int rc = raise_mark(s, m->origin, m->synced, m->sent, &changed);

	if (rc != PL_OK) {
		LOG_WARN("CLU-SYNCMERGE",
		    "sync marks of %s from %s not kept: %s", m->origin, x->from,
		    pl_strerror(rc));
		return;
	}
	if (changed && s->l.on_marks != NULL) {
		clu_syncmarks_get(s, m->origin, &synced, &sent);
		s->l.on_marks(s->l.arg, m->origin, synced, sent);
	}
}

static void
merge_one_parked(void *arg, const pro_sync_parked *p)
{
	merge_ctx *x = arg;
	clu_syncmarks *s = x->s;
	int rc = merge_parked(s, p);

	if (rc == PL_OK && s->l.on_parked != NULL) {
		s->l.on_parked(
		    s->l.arg, clu_syncmarks_parked(s, p->origin, p->seq));
	} else if (rc != PL_OK && rc != PL_EEXIST) {
		LOG_WARN("CLU-SYNCMERGE",
		    "parked comment %s#%llu from %s not kept: %s", p->origin,
		    (unsigned long long)p->seq, x->from, pl_strerror(rc));
	}
}

static void
on_message(
    void *arg, const char *from, uint32_t kind, const void *bytes, size_t len)
{
	merge_ctx x = { arg, from };
	int rc;

	if (kind == CLU_SYNCMARKS_KIND_MARKS) {
		rc = pro_sync_marks_decode(bytes, len, merge_mark, &x);
	} else if (kind == CLU_SYNCMARKS_KIND_PARKED) {
		rc = pro_sync_parked_decode(bytes, len, merge_one_parked, &x);
	} else {
		return; /* a later kind of this range: not ours to know */
	}
	if (rc != PL_OK) {
		LOG_WARN("CLU-SYNCDECODE",
		    "undecodable sync state (kind %u) from %s: %s", kind, from,
		    pl_strerror(rc));
	}
}

static void
on_member_change(void *arg, const char *name, clu_status old, clu_status st)
{
	clu_syncmarks *s = arg;

	(void)old;
	if (st == CLU_ALIVE) {
		/* A new or returning node (a healed partition) gets all we
		 * know at once; it answers in kind when we turn alive for
		 * it. */
		send_all_marks(s, name);
		send_all_parked(s, name);
		clu_resend_member_alive(&s->resend);
	}
}

static void
on_leader_change(void *arg, const char *leader)
{
	clu_syncmarks *s = arg;

	s->has_leader = leader != NULL;
	snprintf(s->leader, sizeof(s->leader), "%s", leader ? leader : "");
	if (s->l.on_leader != NULL) {
		s->l.on_leader(s->l.arg, leader);
	}
}

static void
on_tick(void *arg, uint64_t now_ms)
{
	clu_syncmarks *s = arg;

	if (clu_resend_due(&s->resend, now_ms)) {
		s->last_full_ms = s->last_parked_ms = now_ms;
		send_all_marks(s, NULL);
		send_all_parked(s, NULL);
		return;
	}
	if (now_ms - s->last_full_ms >= CLU_SYNCMARKS_FULL_MS) {
		s->last_full_ms = now_ms;
		send_all_marks(s, NULL);
	}
	if (now_ms - s->last_parked_ms >= CLU_SYNCMARKS_PARKED_MS) {
		s->last_parked_ms = now_ms;
		send_all_parked(s, NULL);
	}
}

static const clu_service_ops syncmarks_ops = {
	.name = "syncmarks",
	.kind_first = CLU_KINDS_SYNC,
	.kind_count = 2,
	.on_message = on_message,
	.on_member_change = on_member_change,
	.on_leader_change = on_leader_change,
	.on_tick = on_tick,
};

/* ---- API ---- */

int
clu_syncmarks_create(clu_syncmarks **out, clu_cluster *c)
{
	clu_syncmarks *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL) {
		return PL_ENOMEM;
	}
	s->c = c;
	if ((rc = clu_cluster_add_service(c, &syncmarks_ops, s)) != PL_OK) {
		free(s);
		return rc;
	}
	*out = s;
	return PL_OK;
}

void
clu_syncmarks_destroy(clu_syncmarks *s)
{
	if (s == NULL) {
		return;
	}
	for (size_t i = 0; i < s->np; i++) {
		free(s->p[i]);
	}
	free(s->p);
	free(s->m);
	free(s);
}

void
clu_syncmarks_set_listener(clu_syncmarks *s, const clu_syncmarks_listener *l)
{
	if (l != NULL) {
		s->l = *l;
	} else {
		memset(&s->l, 0, sizeof(s->l));
	}
}

int
clu_syncmarks_raise(clu_syncmarks *s, const char *origin, uint64_t synced,
    uint64_t sent, bool announce)
{
	pro_sync_mark v;
	bool changed;
	int rc;

	if (!origin_ok(origin)) {
		return PL_EINVAL;
	}
	if ((rc = raise_mark(s, origin, synced, sent, &changed)) != PL_OK) {
		return rc;
	}
	if (changed && announce) {
		v.origin = origin;
		clu_syncmarks_get(s, origin, &v.synced, &v.sent);
		send_marks(s, NULL, &v, 1);
	}
	return PL_OK;
}

void
clu_syncmarks_get(const clu_syncmarks *s, const char *origin, uint64_t *synced,
    uint64_t *sent)
{
	bool found;
	size_t i = find_mark(s, origin, &found);

	*synced = found ? s->m[i].synced : 0;
	*sent = found ? s->m[i].sent : 0;
}

void
clu_syncmarks_each(const clu_syncmarks *s,
    void (*fn)(void *arg, const char *origin, uint64_t synced, uint64_t sent),
    void *arg)
{
	for (size_t i = 0; i < s->nm; i++) {
		fn(arg, s->m[i].origin, s->m[i].synced, s->m[i].sent);
	}
}

int
clu_syncmarks_put_parked(
    clu_syncmarks *s, const pro_sync_parked *p, bool announce)
{
	int rc = merge_parked(s, p);

	if (rc == PL_OK && announce) {
		send_parked(
		    s, NULL, clu_syncmarks_parked(s, p->origin, p->seq), 1);
	}
	return rc;
}

const pro_sync_parked *
clu_syncmarks_parked(const clu_syncmarks *s, const char *origin, uint64_t seq)
{
	bool found;
	size_t i = find_parked(s, origin, seq, &found);

	return found ? &s->p[i]->p : NULL;
}

size_t
clu_syncmarks_parked_each(const clu_syncmarks *s, uint32_t state,
    void (*fn)(void *arg, const pro_sync_parked *p), void *arg)
{
	size_t k = 0;

	for (size_t i = 0; i < s->np; i++) {
		if (state == 0 || s->p[i]->p.state == state) {
			k++;
		}
		if (fn != NULL) {
			fn(arg, &s->p[i]->p);
		}
	}
	return k;
}

const char *
clu_syncmarks_leader(const clu_syncmarks *s)
{
	return s->has_leader ? s->leader : NULL;
}
