/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the presence delta-CRDT: local ops and diffs, replica up/down,
 * merge laws, a randomized multi-replica convergence property (deltas and
 * full states through the real codec, reordered, duplicated and dropped)
 * and a small benchmark of join/leave cost against topic size. */
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/presence.h"
#include "common/err.h"
#include "proto/presence_codec.h"
#include "tests/unit/test.h"

/* ---- Sorted string set, for views and listings ---- */

typedef struct svec {
	char **v;
	size_t n, cap;
} svec;

static size_t
sv_pos(const svec *s, const char *x, bool *found)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->v[mid], x);
		if (c == 0) {
			*found = true;
			return mid;
		}
		*(c < 0 ? &lo : &hi) = c < 0 ? mid + 1 : mid;
	}
	*found = false;
	return lo;
}

static bool
sv_add(svec *s, const char *x)
{
	bool f;
	size_t i = sv_pos(s, x, &f);
	if (f) {
		return false;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = strdup(x);
	s->n++;
	return true;
}

static bool
sv_del(svec *s, const char *x)
{
	bool f;
	size_t i = sv_pos(s, x, &f);
	if (!f) {
		return false;
	}
	free(s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	return true;
}

static bool
sv_has(const svec *s, const char *x)
{
	bool f;
	sv_pos(s, x, &f);
	return f;
}

static void
sv_free(svec *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i]);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool
sv_eq(const svec *a, const svec *b)
{
	if (a->n != b->n) {
		return false;
	}
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i], b->v[i]) != 0) {
			return false;
		}
	}
	return true;
}

static void
sv_dump(const char *label, const svec *s)
{
	fprintf(stderr, "  %s (%zu):\n", label, s->n);
	for (size_t i = 0; i < s->n && i < 2000; i++) {
		fprintf(stderr, "    %s\n", s->v[i]);
	}
}

/* ---- Listing helpers ---- */

static const char *topics[] = { "t0", "t1", "t2", "t3" };
#define NTOPICS 4

static void
list_cb(void *arg, const char *topic, const char *key,
    const clu_presence_meta *m, size_t n)
{
	svec *out = arg;
	char buf[256];
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%s|%s|%s|%" PRIu64 "|%s|%s", topic,
		    key, m[i].phx_ref, m[i].owner, m[i].meta,
		    m[i].phx_ref_prev);
		sv_add(out, buf);
	}
}

/* Visible state of p over the test topics, as sorted strings. */
static void
listing(clu_presence *p, svec *out)
{
	for (int t = 0; t < NTOPICS; t++) {
		ASSERT_OK(clu_presence_list(p, topics[t], list_cb, out));
	}
}

static void
local_cb(void *arg, const char *topic, const char *key,
    const clu_presence_meta *m, size_t n)
{
	svec *out = arg;
	char buf[256];
	for (size_t i = 0; i < n; i++) {
		if (m[i].local) {
			snprintf(buf, sizeof(buf), "%s|%s|%s|%" PRIu64 "|%s|%s",
			    topic, key, m[i].phx_ref, m[i].owner, m[i].meta,
			    m[i].phx_ref_prev);
			sv_add(out, buf);
		}
	}
}

static void
local_listing(clu_presence *p, svec *out)
{
	for (int t = 0; t < NTOPICS; t++) {
		ASSERT_OK(clu_presence_list(p, topics[t], local_cb, out));
	}
}

/* ---- Diff recorder ---- */

typedef struct rec {
	int calls;
	size_t joins, leaves;
	char last_topic[64];
	char join_ref[17], join_prev[17], leave_ref[17];
} rec;

static void
rec_diff(void *arg, const char *topic, const clu_presence_meta *j, size_t nj,
    const clu_presence_meta *l, size_t nl)
{
	rec *r = arg;
	r->calls++;
	r->joins += nj;
	r->leaves += nl;
	snprintf(r->last_topic, sizeof(r->last_topic), "%s", topic);
	if (nj > 0) {
		memcpy(r->join_ref, j[nj - 1].phx_ref, 17);
		memcpy(r->join_prev, j[nj - 1].phx_ref_prev, 17);
	}
	if (nl > 0) {
		memcpy(r->leave_ref, l[nl - 1].phx_ref, 17);
	}
}

#define META "{\"online_at\":1700000000}"

/* ---- Unit tests ---- */

static void
test_join_leave_list(void)
{
	clu_presence *p;
	rec r = { 0 };
	char ref[17];
	svec l = { 0 };
	ASSERT_OK(clu_presence_create(&p, "n1", 1, rec_diff, &r));
	ASSERT_OK(
	    clu_presence_join(p, 7, "t0", "alice", META, strlen(META), ref));
	ASSERT_EQ(r.calls, 1);
	ASSERT_EQ(r.joins, 1);
	ASSERT_STREQ(r.last_topic, "t0");
	ASSERT_STREQ(r.join_ref, ref);
	ASSERT_EQ(
	    clu_presence_join(p, 7, "t0", "alice", META, strlen(META), NULL),
	    PL_EEXIST);
	ASSERT_OK(clu_presence_join(p, 7, "t0", "bob", "{}", 2, NULL));
	ASSERT_OK(clu_presence_join(p, 7, "t1", "alice", "{}", 2, NULL));
	ASSERT_EQ(clu_presence_key_count(p, "t0"), 2);
	ASSERT_EQ(clu_presence_count(p, "t0", "alice"), 1);
	listing(p, &l);
	ASSERT_EQ(l.n, 3);
	ASSERT_TRUE(strncmp(l.v[0], "t0|alice|", 9) == 0);
	sv_free(&l);
	ASSERT_OK(clu_presence_leave(p, 7, "t0", "alice"));
	ASSERT_EQ(r.leaves, 1);
	ASSERT_STREQ(r.leave_ref, ref);
	ASSERT_EQ(clu_presence_leave(p, 7, "t0", "alice"), PL_ENOTFOUND);
	ASSERT_EQ(clu_presence_key_count(p, "t0"), 1);
	ASSERT_EQ(clu_presence_count(p, "t0", "alice"), 0);
	ASSERT_EQ(clu_presence_size(p), 2);
	ASSERT_EQ(clu_presence_join(p, 7, "", "k", "{}", 2, NULL), PL_EINVAL);
	ASSERT_EQ(clu_presence_join(p, 7, "t", "", "{}", 2, NULL), PL_EINVAL);
	clu_presence_destroy(p);
}

typedef struct got {
	size_t n;
	uint64_t owners[8];
	uint64_t ns[8];
	bool local[8];
} got;

static void
got_cb(void *arg, const char *topic, const char *key,
    const clu_presence_meta *m, size_t n)
{
	got *g = arg;
	(void)topic;
	(void)key;
	for (size_t i = 0; i < n && g->n < 8; i++) {
		g->owners[g->n] = m[i].owner;
		g->ns[g->n] = m[i].joined_ns;
		g->local[g->n++] = m[i].local;
	}
}

static void
test_same_key_two_metas(void)
{
	clu_presence *p;
	got g = { 0 };
	ASSERT_OK(clu_presence_create(&p, "n1", 1, NULL, NULL));
	ASSERT_OK(
	    clu_presence_join(p, 1, "presence:u1", "phone", "{}", 2, NULL));
	ASSERT_OK(
	    clu_presence_join(p, 2, "presence:u1", "phone", "{}", 2, NULL));
	ASSERT_OK(
	    clu_presence_join(p, 3, "presence:u1", "laptop", "{}", 2, NULL));
	ASSERT_EQ(clu_presence_count(p, "presence:u1", "phone"), 2);
	ASSERT_EQ(clu_presence_key_count(p, "presence:u1"), 2);
	ASSERT_OK(clu_presence_get(p, "presence:u1", "phone", got_cb, &g));
	ASSERT_EQ(g.n, 2);
	/* Oldest join first, with a join time close to now. */
	ASSERT_EQ(g.owners[0], 1);
	ASSERT_EQ(g.owners[1], 2);
	ASSERT_TRUE(g.ns[0] < g.ns[1]);
	ASSERT_TRUE(g.local[0]);
	ASSERT_TRUE(g.ns[0] > 1600000000ULL * 1000000000ULL);
	ASSERT_EQ(clu_presence_get(p, "presence:u1", "tablet", got_cb, &g),
	    PL_ENOTFOUND);
	clu_presence_destroy(p);
}

static void
test_leave_owner(void)
{
	clu_presence *p;
	rec r = { 0 };
	size_t n = 0;
	got g = { 0 };
	ASSERT_OK(clu_presence_create(&p, "n1", 1, rec_diff, &r));
	for (int t = 0; t < 3; t++) {
		ASSERT_OK(
		    clu_presence_join(p, 42, topics[t], "u", "{}", 2, NULL));
	}
	ASSERT_OK(clu_presence_join(p, 43, "t0", "u", "{}", 2, NULL));
	ASSERT_EQ(clu_presence_owner_list(p, 42, got_cb, &g), 3);
	r = (rec){ 0 };
	ASSERT_OK(clu_presence_leave_owner(p, 42, &n));
	ASSERT_EQ(n, 3);
	ASSERT_EQ(r.calls, 3); /* one diff per topic */
	ASSERT_EQ(r.leaves, 3);
	ASSERT_EQ(clu_presence_size(p), 1);
	ASSERT_EQ(clu_presence_count(p, "t0", "u"), 1);
	ASSERT_OK(clu_presence_leave_owner(p, 42, &n));
	ASSERT_EQ(n, 0);
	clu_presence_destroy(p);
}

static void
test_phx_ref_unique(void)
{
	clu_presence *p;
	svec refs = { 0 };
	char ref[17];
	ASSERT_OK(clu_presence_create(&p, "n1", 1, NULL, NULL));
	for (int i = 0; i < 5000; i++) {
		ASSERT_OK(
		    clu_presence_join(p, (uint64_t)i, "t", "k", "{}", 2, ref));
		ASSERT_EQ(strlen(ref), 16);
		for (int c = 0; c < 16; c++) {
			char ch = ref[c];
			ASSERT_TRUE((ch >= 'A' && ch <= 'Z') ||
			    (ch >= 'a' && ch <= 'z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_');
		}
		ASSERT_TRUE(sv_add(&refs, ref));
		if (i % 2 == 0) {
			ASSERT_OK(clu_presence_leave(p, (uint64_t)i, "t", "k"));
		}
	}
	sv_free(&refs);
	clu_presence_destroy(p);
}

static void
test_update(void)
{
	clu_presence *p;
	rec r = { 0 };
	char ref1[17], ref2[17];
	svec l = { 0 };
	ASSERT_OK(clu_presence_create(&p, "n1", 1, rec_diff, &r));
	ASSERT_EQ(
	    clu_presence_update(p, 1, "t0", "u", "{}", 2, NULL), PL_ENOTFOUND);
	ASSERT_OK(clu_presence_join(p, 1, "t0", "u", "{\"a\":1}", 7, ref1));
	r = (rec){ 0 };
	ASSERT_OK(clu_presence_update(p, 1, "t0", "u", "{\"a\":2}", 7, ref2));
	ASSERT_EQ(r.calls, 1); /* one diff with a join and a leave */
	ASSERT_EQ(r.joins, 1);
	ASSERT_EQ(r.leaves, 1);
	ASSERT_STREQ(r.join_ref, ref2);
	ASSERT_STREQ(r.join_prev, ref1);
	ASSERT_STREQ(r.leave_ref, ref1);
	ASSERT_TRUE(strcmp(ref1, ref2) != 0);
	ASSERT_EQ(clu_presence_count(p, "t0", "u"), 1);
	listing(p, &l);
	ASSERT_EQ(l.n, 1);
	ASSERT_TRUE(strstr(l.v[0], "{\"a\":2}") != NULL);
	ASSERT_TRUE(strstr(l.v[0], ref1) != NULL); /* as phx_ref_prev */
	sv_free(&l);
	clu_presence_destroy(p);
}

/* Delivers m to dst as a heartbeat would: sender up, then merge. */
static void
deliver(clu_presence *dst, const pro_presence_msg *m)
{
	const pro_presence_replica *s = &m->replicas[m->sender];
	ASSERT_OK(clu_presence_replica_up(dst, s->name, s->vsn));
	ASSERT_OK(clu_presence_merge(dst, m));
}

static void
send_delta(clu_presence *src, clu_presence *dst)
{
	pro_presence_msg *m;
	ASSERT_OK(clu_presence_take_delta(src, &m));
	if (m != NULL) {
		deliver(dst, m);
		pro_presence_msg_destroy(m);
	}
}

static void
send_state(clu_presence *src, clu_presence *dst, const char *exclude)
{
	pro_presence_msg *m;
	ASSERT_OK(clu_presence_export(src, exclude, &m));
	ASSERT_OK(clu_presence_merge(dst, m));
	pro_presence_msg_destroy(m);
}

static void
test_delta_basic(void)
{
	clu_presence *a, *b;
	rec rb = { 0 };
	pro_presence_msg *m;
	ASSERT_OK(clu_presence_create(&a, "a", 1, NULL, NULL));
	ASSERT_OK(clu_presence_create(&b, "b", 2, rec_diff, &rb));
	ASSERT_TRUE(!clu_presence_has_delta(a));
	ASSERT_OK(clu_presence_take_delta(a, &m));
	ASSERT_TRUE(m == NULL);
	ASSERT_OK(clu_presence_join(a, 1, "t0", "x", "{}", 2, NULL));
	ASSERT_OK(clu_presence_join(a, 2, "t0", "y", "{}", 2, NULL));
	ASSERT_TRUE(clu_presence_has_delta(a));
	/* An unknown sender's entries are ignored. */
	ASSERT_OK(clu_presence_take_delta(a, &m));
	ASSERT_OK(clu_presence_merge(b, m));
	ASSERT_EQ(clu_presence_size(b), 0);
	deliver(b, m);
	pro_presence_msg_destroy(m);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 2);
	ASSERT_EQ(rb.joins, 2);
	ASSERT_OK(clu_presence_leave(a, 1, "t0", "x"));
	send_delta(a, b);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 1);
	ASSERT_EQ(rb.leaves, 1);
	/* b's entries never ride in a's state, and a's are not b's to drop. */
	ASSERT_OK(clu_presence_join(b, 9, "t0", "z", "{}", 2, NULL));
	send_state(a, b, NULL);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 2);
	clu_presence_destroy(a);
	clu_presence_destroy(b);
}

/* A delta only removes what it observed: b holds a's old entry from a full
 * state, then gets a delta of a's later join only. */
static void
test_delta_removes_only_observed(void)
{
	clu_presence *a, *b, *c;
	pro_presence_msg *m;
	ASSERT_OK(clu_presence_create(&a, "a", 1, NULL, NULL));
	ASSERT_OK(clu_presence_create(&b, "b", 2, NULL, NULL));
	ASSERT_OK(clu_presence_create(&c, "c", 3, NULL, NULL));
	ASSERT_OK(clu_presence_replica_up(b, "a", 1));
	ASSERT_OK(clu_presence_replica_up(c, "a", 1));
	ASSERT_OK(clu_presence_replica_up(b, "c", 3));
	ASSERT_OK(clu_presence_join(a, 1, "t0", "old", "{}", 2, NULL));
	ASSERT_OK(clu_presence_take_delta(a, &m)); /* dropped */
	pro_presence_msg_destroy(m);
	send_state(a, b, NULL);
	ASSERT_OK(clu_presence_join(a, 2, "t0", "new", "{}", 2, NULL));
	send_delta(a, b);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 2);
	/* c knows nothing of "old"; its full state must not remove it. */
	send_state(c, b, NULL);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 2);
	/* A later delta that removes "old" does. */
	ASSERT_OK(clu_presence_leave(a, 1, "t0", "old"));
	send_delta(a, b);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 1);
	ASSERT_EQ(clu_presence_count(b, "t0", "new"), 1);
	clu_presence_destroy(a);
	clu_presence_destroy(b);
	clu_presence_destroy(c);
}

static void
test_down_up_permdown(void)
{
	clu_presence *a, *b;
	rec rb = { 0 };
	ASSERT_OK(clu_presence_create(&a, "a", 1, NULL, NULL));
	ASSERT_OK(clu_presence_create(&b, "b", 2, rec_diff, &rb));
	ASSERT_OK(clu_presence_join(b, 5, "t0", "mine", "{}", 2, NULL));
	for (int i = 0; i < 10; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i);
		ASSERT_OK(clu_presence_join(
		    a, (uint64_t)i, "t0", key, "{}", 2, NULL));
	}
	send_delta(a, b);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 11);
	rb = (rec){ 0 };
	ASSERT_OK(clu_presence_replica_down(b, "a"));
	ASSERT_EQ(rb.leaves, 10);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 1);
	ASSERT_EQ(clu_presence_size(b), 11); /* hidden, not gone */
	/* While down, a's changes are merged silently. */
	ASSERT_OK(clu_presence_leave(a, 0, "t0", "k0"));
	pro_presence_msg *m;
	ASSERT_OK(clu_presence_take_delta(a, &m));
	ASSERT_OK(clu_presence_merge(b, m));
	pro_presence_msg_destroy(m);
	ASSERT_EQ(rb.leaves, 10);
	ASSERT_EQ(clu_presence_size(b), 10);
	rb = (rec){ 0 };
	ASSERT_OK(clu_presence_replica_up(b, "a", 1));
	ASSERT_EQ(rb.joins, 9);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 10);
	ASSERT_OK(clu_presence_replica_down(b, "a"));
	rb = (rec){ 0 };
	ASSERT_OK(clu_presence_replica_permdown(b, "a"));
	ASSERT_EQ(rb.calls, 0); /* purged silently */
	ASSERT_EQ(clu_presence_size(b), 1);
	ASSERT_EQ(clu_presence_replica_permdown(b, "a"), PL_ENOTFOUND);
	ASSERT_EQ(clu_presence_replica_down(b, "b"), PL_EINVAL);
	/* a's old state is ignored until a is known again. */
	send_state(a, b, NULL);
	ASSERT_EQ(clu_presence_size(b), 1);
	ASSERT_OK(clu_presence_replica_up(b, "a", 1));
	send_state(a, b, NULL);
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 10);
	/* Permdown of a replica still up reports its leaves. */
	rb = (rec){ 0 };
	ASSERT_OK(clu_presence_replica_permdown(b, "a"));
	ASSERT_EQ(rb.leaves, 9);
	ASSERT_EQ(clu_presence_size(b), 1);
	clu_presence_destroy(a);
	clu_presence_destroy(b);
}

static void
test_same_node_new_vsn(void)
{
	clu_presence *a1, *a2, *b;
	rec rb = { 0 };
	pro_presence_msg *stale;
	ASSERT_OK(clu_presence_create(&a1, "a", 100, NULL, NULL));
	ASSERT_OK(clu_presence_create(&b, "b", 2, rec_diff, &rb));
	ASSERT_OK(clu_presence_join(a1, 1, "t0", "x", "{}", 2, NULL));
	ASSERT_OK(clu_presence_join(a1, 2, "t0", "y", "{}", 2, NULL));
	send_delta(a1, b);
	ASSERT_OK(clu_presence_join(a1, 3, "t0", "z", "{}", 2, NULL));
	ASSERT_OK(clu_presence_take_delta(a1, &stale));
	ASSERT_EQ(clu_presence_key_count(b, "t0"), 2);
	/* a restarts: new vsn, empty state. */
	ASSERT_OK(clu_presence_create(&a2, "a", 200, NULL, NULL));
	ASSERT_OK(clu_presence_join(a2, 1, "t0", "w", "{}", 2, NULL));
	rb = (rec){ 0 };
	send_delta(a2, b);
	ASSERT_EQ(rb.leaves, 2);
	ASSERT_EQ(rb.joins, 1);
	ASSERT_EQ(clu_presence_size(b), 1);
	ASSERT_EQ(clu_presence_count(b, "t0", "w"), 1);
	/* A late delta of the old incarnation is ignored by merge. */
	ASSERT_OK(clu_presence_merge(b, stale));
	ASSERT_EQ(clu_presence_size(b), 1);
	pro_presence_msg_destroy(stale);
	/* Our own name with another vsn is refused. */
	ASSERT_EQ(clu_presence_replica_up(b, "b", 3), PL_EINVAL);
	clu_presence_destroy(a1);
	clu_presence_destroy(a2);
	clu_presence_destroy(b);
}

/* ---- Merge laws ---- */

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned
rn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void
random_ops(clu_presence *p, uint64_t base, int nops)
{
	char key[16], meta[32];
	for (int i = 0; i < nops; i++) {
		uint64_t owner = base + rn(8);
		const char *t = topics[rn(NTOPICS)];
		snprintf(key, sizeof(key), "k%u", rn(5));
		snprintf(meta, sizeof(meta), "{\"v\":%d}", i);
		switch (rn(4)) {
		case 0:
		case 1:
			(void)clu_presence_join(
			    p, owner, t, key, meta, strlen(meta), NULL);
			break;
		case 2: (void)clu_presence_leave(p, owner, t, key); break;
		default:
			(void)clu_presence_update(
			    p, owner, t, key, meta, strlen(meta), NULL);
			break;
		}
	}
}

static clu_presence *
observer(const char *name, clu_presence **peers, const char **names, int npeers)
{
	clu_presence *o;
	ASSERT_OK(clu_presence_create(&o, name, 99, NULL, NULL));
	for (int i = 0; i < npeers; i++) {
		ASSERT_OK(
		    clu_presence_replica_up(o, names[i], (uint64_t)i + 1));
	}
	(void)peers;
	return o;
}

static void
merge_all(clu_presence *o, pro_presence_msg **ms, const int *order, int n)
{
	for (int i = 0; i < n; i++) {
		ASSERT_OK(clu_presence_merge(o, ms[order[i]]));
	}
}

static void
test_merge_laws(void)
{
	const char *names[3] = { "a", "b", "c" };
	clu_presence *r[3], *o[5];
	pro_presence_msg *st[3], *d[9], *e;
	svec truth = { 0 }, l = { 0 };
	rng_state = 7;
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(clu_presence_create(
		    &r[i], names[i], (uint64_t)i + 1, NULL, NULL));
		for (int j = 0; j < 3; j++) {
			ASSERT_OK(clu_presence_replica_up(
			    r[i], names[j], (uint64_t)j + 1));
		}
	}
	/* Three rounds of ops, each round's deltas kept; partial exchange. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++) {
			random_ops(r[i], (uint64_t)i * 100, 40);
			ASSERT_OK(
			    clu_presence_take_delta(r[i], &d[round * 3 + i]));
			ASSERT_TRUE(d[round * 3 + i] != NULL);
		}
		ASSERT_OK(clu_presence_merge(r[(round + 1) % 3], d[round * 3]));
	}
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(clu_presence_export(r[i], NULL, &st[i]));
		local_listing(r[i], &truth);
	}
	/* Full states: commutative, associative, idempotent. */
	static const int ord1[] = { 0, 1, 2 }, ord2[] = { 2, 0, 1 },
			 ord3[] = { 1, 1, 0, 2, 0, 2 };
	for (int i = 0; i < 5; i++) {
		char nm[8];
		snprintf(nm, sizeof(nm), "o%d", i);
		o[i] = observer(nm, r, names, 3);
	}
	merge_all(o[0], st, ord1, 3);
	merge_all(o[1], st, ord2, 3);
	merge_all(o[2], st, ord3, 6);
	/* (b + c) then a, through an intermediate observer's export. */
	merge_all(o[3], st, ord2, 1);
	merge_all(o[3], st, ord3, 1);
	ASSERT_OK(clu_presence_export(o[3], NULL, &e));
	merge_all(o[4], st, ord1, 1);
	ASSERT_OK(clu_presence_merge(o[4], e));
	pro_presence_msg_destroy(e);
	for (int i = 0; i < 5; i++) {
		if (i == 3) {
			continue; /* only b + c: not the whole truth */
		}
		sv_free(&l);
		listing(o[i], &l);
		if (!sv_eq(&l, &truth)) {
			sv_dump("observer", &l);
			sv_dump("truth", &truth);
		}
		ASSERT_TRUE(sv_eq(&l, &truth));
	}
	/* Merging what was already merged reports nothing. */
	{
		rec rr = { 0 };
		clu_presence *x;
		ASSERT_OK(clu_presence_create(&x, "ox", 98, rec_diff, &rr));
		for (int i = 0; i < 3; i++) {
			ASSERT_OK(clu_presence_replica_up(
			    x, names[i], (uint64_t)i + 1));
		}
		merge_all(x, st, ord1, 3);
		ASSERT_EQ(rr.joins, truth.n);
		rr = (rec){ 0 };
		merge_all(x, st, ord3, 6);
		merge_all(x, d, ord3, 6);
		ASSERT_EQ(rr.calls, 0);
		clu_presence_destroy(x);
	}
	/* Every delta, in any order and with duplicates, gives the truth. */
	for (int k = 0; k < 3; k++) {
		clu_presence *x = observer("ox", r, names, 3);
		int idx[18];
		for (int i = 0; i < 18; i++) {
			idx[i] = i % 9;
		}
		for (int i = 17; i > 0; i--) {
			int j = (int)rn((unsigned)i + 1), t = idx[i];
			idx[i] = idx[j];
			idx[j] = t;
		}
		merge_all(x, d, idx, 18);
		sv_free(&l);
		listing(x, &l);
		ASSERT_TRUE(sv_eq(&l, &truth));
		/* A later full state changes nothing. */
		merge_all(x, st, ord3, 6);
		sv_free(&l);
		listing(x, &l);
		ASSERT_TRUE(sv_eq(&l, &truth));
		clu_presence_destroy(x);
	}
	sv_free(&l);
	sv_free(&truth);
	for (int i = 0; i < 9; i++) {
		pro_presence_msg_destroy(d[i]);
	}
	for (int i = 0; i < 3; i++) {
		pro_presence_msg_destroy(st[i]);
		clu_presence_destroy(r[i]);
	}
	for (int i = 0; i < 5; i++) {
		clu_presence_destroy(o[i]);
	}
}

/* ---- Randomized convergence property ---- */

#define NN 4
#define NOWNERS 12

typedef struct tracked {
	uint64_t owner;
	int topic;
	char key[8];
} tracked;

typedef struct node {
	clu_presence *p;
	char name[8];
	uint64_t vsn;
	svec view;    /* built from diffs only, as a client would */
	svec removed; /* refs this node saw leave (not merely hidden) */
	bool in_down;
	const char *err;
	tracked tr[NOWNERS * NTOPICS * 6];
	size_t ntr;
	bool down[NN]; /* our view of peers */
} node;

typedef struct wire {
	int src, dst;
	char *buf;
	size_t len;
} wire;

typedef struct net {
	node n[NN];
	wire *q;
	size_t nq, capq;
	size_t sent, dropped, dups, states, restarts;
} net;

static void
node_diff(void *arg, const char *topic, const clu_presence_meta *j, size_t nj,
    const clu_presence_meta *l, size_t nl)
{
	node *n = arg;
	char buf[128];
	for (size_t i = 0; i < nj; i++) {
		snprintf(buf, sizeof(buf), "%s|%s|%s", topic, j[i].key,
		    j[i].phx_ref);
		if (strcmp(j[i].topic, topic) != 0 || !sv_add(&n->view, buf)) {
			n->err = "join of a visible entry";
		}
		if (sv_has(&n->removed, j[i].phx_ref)) {
			n->err = "a removed entry came back";
		}
	}
	for (size_t i = 0; i < nl; i++) {
		snprintf(buf, sizeof(buf), "%s|%s|%s", topic, l[i].key,
		    l[i].phx_ref);
		if (!sv_del(&n->view, buf)) {
			n->err = "leave of an unseen entry";
		}
		if (!n->in_down) {
			sv_add(&n->removed, l[i].phx_ref);
		}
	}
}

static void
enqueue(net *w, int src, int dst, const pro_presence_msg *m, bool lossy)
{
	char *buf;
	size_t len;
	ASSERT_OK(pro_presence_encode(m, &buf, &len));
	int copies = 1;
	if (lossy && rn(100) < 10) {
		copies = 0;
		w->dropped++;
	} else if (lossy && rn(100) < 5) {
		copies = 2;
		w->dups++;
	}
	for (int c = 0; c < copies; c++) {
		if (w->nq == w->capq) {
			w->capq = w->capq ? w->capq * 2 : 64;
			w->q = realloc(w->q, w->capq * sizeof(*w->q));
		}
		char *b = malloc(len);
		memcpy(b, buf, len);
		w->q[w->nq++] =
		    (wire){ .src = src, .dst = dst, .buf = b, .len = len };
		w->sent++;
	}
	free(buf);
}

static int
node_index(net *w, const char *name)
{
	for (int i = 0; i < NN; i++) {
		if (strcmp(w->n[i].name, name) == 0) {
			return i;
		}
	}
	return -1;
}

static void
deliver_one(net *w, size_t qi)
{
	wire m = w->q[qi];
	pro_presence_msg *msg;
	w->q[qi] = w->q[--w->nq];
	node *d = &w->n[m.dst];
	ASSERT_OK(pro_presence_decode(m.buf, m.len, &msg));
	free(m.buf);
	if (msg->kind == PRO_PRESENCE_DELTA) {
		const pro_presence_replica *s = &msg->replicas[msg->sender];
		ASSERT_OK(clu_presence_replica_up(d->p, s->name, s->vsn));
		d->down[node_index(w, s->name)] = false;
	}
	ASSERT_OK(clu_presence_merge(d->p, msg));
	pro_presence_msg_destroy(msg);
	if (d->err != NULL) {
		TEST_FAIL_("node %s: %s", d->name, d->err);
	}
}

static void
local_op(node *n, int step)
{
	char meta[48], ref[17];
	unsigned op = rn(20);
	snprintf(meta, sizeof(meta), "{\"online_at\":%d}", step);
	if (op < 12 || n->ntr == 0) {
		tracked t = { .owner = rn(NOWNERS), .topic = (int)rn(NTOPICS) };
		snprintf(t.key, sizeof(t.key), "k%u", rn(6));
		int rc = clu_presence_join(n->p, t.owner, topics[t.topic],
		    t.key, meta, strlen(meta), ref);
		if (rc == PL_OK) {
			n->tr[n->ntr++] = t;
		} else {
			ASSERT_EQ(rc, PL_EEXIST);
		}
	} else if (op < 17) {
		size_t i = rn((unsigned)n->ntr);
		ASSERT_OK(clu_presence_leave(n->p, n->tr[i].owner,
		    topics[n->tr[i].topic], n->tr[i].key));
		n->tr[i] = n->tr[--n->ntr];
	} else if (op < 19) {
		size_t i = rn((unsigned)n->ntr);
		ASSERT_OK(clu_presence_update(n->p, n->tr[i].owner,
		    topics[n->tr[i].topic], n->tr[i].key, meta, strlen(meta),
		    ref));
	} else {
		uint64_t owner = n->tr[rn((unsigned)n->ntr)].owner;
		size_t want = 0, got_n;
		for (size_t i = 0; i < n->ntr; i++) {
			want += n->tr[i].owner == owner;
		}
		ASSERT_OK(clu_presence_leave_owner(n->p, owner, &got_n));
		ASSERT_EQ(got_n, want);
		for (size_t i = n->ntr; i-- > 0;) {
			if (n->tr[i].owner == owner) {
				n->tr[i] = n->tr[--n->ntr];
			}
		}
	}
	if (n->err != NULL) {
		TEST_FAIL_("node %s: %s", n->name, n->err);
	}
}

/* j asks i for its state when i's clocks show j is behind. */
static bool
anti_entropy(net *w, int i, int j, bool lossy)
{
	pro_presence_msg *c, *st;
	ASSERT_OK(clu_presence_clocks(w->n[i].p, &c));
	bool behind = clu_presence_behind(w->n[j].p, c);
	pro_presence_msg_destroy(c);
	if (behind) {
		ASSERT_OK(clu_presence_export(w->n[i].p, w->n[j].name, &st));
		enqueue(w, i, j, st, lossy);
		pro_presence_msg_destroy(st);
		w->states++;
	}
	return behind;
}

static void
tick(net *w, int i, bool lossy)
{
	pro_presence_msg *m;
	ASSERT_OK(clu_presence_take_delta(w->n[i].p, &m));
	if (m == NULL) {
		return;
	}
	for (int j = 0; j < NN; j++) {
		if (j != i) {
			enqueue(w, i, j, m, lossy);
		}
	}
	pro_presence_msg_destroy(m);
}

/* Node i restarts with a new vsn and empty state; what it had in flight
 * dies with its connections. Peers learn of the new incarnation from its
 * heartbeats and then drop the old one's entries for good. */
static void
restart(net *w, int i)
{
	node *n = &w->n[i];
	clu_presence_destroy(n->p);
	sv_free(&n->view);
	sv_free(&n->removed);
	n->ntr = 0;
	memset(n->down, 0, sizeof(n->down));
	n->vsn += 1000;
	ASSERT_OK(clu_presence_create(&n->p, n->name, n->vsn, node_diff, n));
	for (int j = 0; j < NN; j++) {
		ASSERT_OK(
		    clu_presence_replica_up(n->p, w->n[j].name, w->n[j].vsn));
	}
	for (size_t k = w->nq; k-- > 0;) {
		if (w->q[k].src == i) {
			free(w->q[k].buf);
			w->q[k] = w->q[--w->nq];
		}
	}
	w->restarts++;
}

static void
run_property(uint64_t seed, int nops)
{
	net w;
	svec truth = { 0 }, l = { 0 };
	memset(&w, 0, sizeof(w));
	rng_state = seed;
	for (int i = 0; i < NN; i++) {
		node *n = &w.n[i];
		snprintf(n->name, sizeof(n->name), "n%d", i);
		n->vsn = seed * 10 + (uint64_t)i;
		ASSERT_OK(
		    clu_presence_create(&n->p, n->name, n->vsn, node_diff, n));
	}
	for (int i = 0; i < NN; i++) {
		for (int j = 0; j < NN; j++) {
			ASSERT_OK(clu_presence_replica_up(
			    w.n[i].p, w.n[j].name, w.n[j].vsn));
		}
	}
	for (int step = 0; step < nops; step++) {
		unsigned r = rn(100);
		int i = (int)rn(NN),
		    j = (int)((unsigned)(i + 1 + rn(NN - 1)) % NN);
		if (rn(1000) < 3) {
			restart(&w, i);
		} else if (r < 40) {
			local_op(&w.n[i], step);
		} else if (r < 55) {
			tick(&w, i, true);
		} else if (r < 90) {
			if (w.nq > 0) {
				deliver_one(&w, rn((unsigned)w.nq));
			}
		} else if (r < 96) {
			(void)anti_entropy(&w, i, j, true);
		} else if (!w.n[i].down[j]) {
			w.n[i].in_down = true;
			ASSERT_OK(
			    clu_presence_replica_down(w.n[i].p, w.n[j].name));
			w.n[i].in_down = false;
			w.n[i].down[j] = true;
		} else {
			ASSERT_OK(clu_presence_replica_up(
			    w.n[i].p, w.n[j].name, w.n[j].vsn));
			w.n[i].down[j] = false;
		}
		ASSERT_TRUE(w.n[i].err == NULL);
	}
	/* Heal: everyone up, in-flight messages delivered, last deltas sent,
	 * then clock-driven transfers until nobody is behind. */
	for (int i = 0; i < NN; i++) {
		for (int j = 0; j < NN; j++) {
			ASSERT_OK(clu_presence_replica_up(
			    w.n[i].p, w.n[j].name, w.n[j].vsn));
		}
		tick(&w, i, false);
	}
	int rounds = 0;
	for (bool again = true; again; rounds++) {
		ASSERT_TRUE(rounds < 6);
		while (w.nq > 0) {
			deliver_one(&w, rn((unsigned)w.nq));
		}
		again = false;
		for (int i = 0; i < NN; i++) {
			for (int j = 0; j < NN; j++) {
				if (i != j) {
					again |= anti_entropy(&w, i, j, false);
				}
			}
		}
	}
	for (int i = 0; i < NN; i++) {
		local_listing(w.n[i].p, &truth);
	}
	for (int i = 0; i < NN; i++) {
		svec view_full = { 0 };
		sv_free(&l);
		listing(w.n[i].p, &l);
		if (!sv_eq(&l, &truth)) {
			fprintf(stderr, "  seed %" PRIu64 " node %d diverged\n",
			    seed, i);
			sv_dump("node", &l);
			sv_dump("truth", &truth);
		}
		ASSERT_TRUE(sv_eq(&l, &truth));
		/* The diffs a client saw add up to the same state. */
		for (size_t k = 0; k < l.n; k++) {
			char buf[128];
			const char *s = l.v[k];
			const char *p1 = strchr(s, '|'),
				   *p2 = strchr(p1 + 1, '|');
			snprintf(
			    buf, sizeof(buf), "%.*s", (int)(p2 - s + 17), s);
			sv_add(&view_full, buf);
		}
		ASSERT_TRUE(sv_eq(&view_full, &w.n[i].view));
		/* No removed entry is listed anywhere. */
		for (size_t k = 0; k < l.n; k++) {
			char ref[17];
			const char *p2 = strchr(strchr(l.v[k], '|') + 1, '|');
			memcpy(ref, p2 + 1, 16);
			ref[16] = '\0';
			ASSERT_TRUE(!sv_has(&w.n[i].removed, ref));
		}
		sv_free(&view_full);
	}
	fprintf(stderr,
	    "  seed %" PRIu64 ": %d ops, %zu entries, %zu msgs "
	    "(%zu dropped, %zu dup, %zu states), %zu restarts, %d sync "
	    "rounds\n",
	    seed, nops, truth.n, w.sent, w.dropped, w.dups, w.states,
	    w.restarts, rounds);
	sv_free(&l);
	sv_free(&truth);
	for (int i = 0; i < NN; i++) {
		clu_presence_destroy(w.n[i].p);
		sv_free(&w.n[i].view);
		sv_free(&w.n[i].removed);
	}
	free(w.q);
}

static void
test_property_convergence(void)
{
	static const uint64_t seeds[] = { 1, 2, 3, 42, 1234, 987654321, 77,
		31337 };
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		run_property(seeds[i], 5000);
	}
}

/* ---- Cost against topic size ---- */

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
join_leave_ns(clu_presence *p, const char *topic, int iters)
{
	char key[24];
	double t0 = now_s();
	for (int i = 0; i < iters; i++) {
		snprintf(key, sizeof(key), "user-%d", 900000 + i % 64);
		ASSERT_OK(clu_presence_join(p, 5000000 + (uint64_t)i, topic,
		    key, META, strlen(META), NULL));
		ASSERT_OK(
		    clu_presence_leave(p, 5000000 + (uint64_t)i, topic, key));
	}
	return (now_s() - t0) * 1e9 / iters;
}

static size_t
heap_used(void)
{
	return mallinfo2().uordblks;
}

static void
noop_diff(void *arg, const char *topic, const clu_presence_meta *j, size_t nj,
    const clu_presence_meta *l, size_t nl)
{
	(void)arg, (void)topic, (void)j, (void)nj, (void)l, (void)nl;
}

static void
test_bench_topic_size(void)
{
	clu_presence *p;
	char key[24], topic[40];
	const int big = 10000, iters = 20000;
	size_t h0 = heap_used();
	ASSERT_OK(clu_presence_create(&p, "n1", 1, noop_diff, NULL));
	size_t h1 = heap_used();
	for (int i = 0; i < big; i++) {
		snprintf(key, sizeof(key), "user-%d", i);
		ASSERT_OK(clu_presence_join(p, (uint64_t)i, "comments:big", key,
		    META, strlen(META), NULL));
	}
	size_t h2 = heap_used();
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "user-%d", i);
		ASSERT_OK(clu_presence_join(p, 100000 + (uint64_t)i,
		    "comments:small", key, META, strlen(META), NULL));
	}
	/* Warm up, then alternate to even out noise from other processes. */
	(void)join_leave_ns(p, "comments:big", 2000);
	double tb = 0, ts = 0;
	for (int r = 0; r < 3; r++) {
		tb += join_leave_ns(p, "comments:big", iters);
		ts += join_leave_ns(p, "comments:small", iters);
	}
	size_t h3 = heap_used();
	/* presence:<user_id> shape: one topic and one key per entry. */
	for (int i = 0; i < big; i++) {
		snprintf(topic, sizeof(topic), "presence:user-%d", i);
		ASSERT_OK(clu_presence_join(p, 200000 + (uint64_t)i, topic,
		    "device-1", META, strlen(META), NULL));
	}
	size_t h4 = heap_used();
	ASSERT_EQ(clu_presence_key_count(p, "comments:big"), big);
	fprintf(stderr,
	    "  join+leave: %.0f ns on a %d-entry topic, %.0f ns on "
	    "a 10-entry topic (ratio %.2f)\n",
	    tb / 3, big, ts / 3, tb / ts);
	(void)h0;
	if (h2 > h1 && h4 > h3) {
		fprintf(stderr,
		    "  heap per entry: %.0f B (one big topic, key "
		    "per user), %.0f B (one topic per user)\n",
		    (double)(h2 - h1) / big, (double)(h4 - h3) / big);
	} else {
		fprintf(
		    stderr, "  heap per entry: n/a (allocator not glibc)\n");
	}
	/* Loose on purpose: the machine is shared; O(N) would be ~1000x. */
	ASSERT_TRUE(tb / ts < 8.0);
	clu_presence_destroy(p);
}

TEST_LIST{
	TEST_ENTRY(test_join_leave_list),
	TEST_ENTRY(test_same_key_two_metas),
	TEST_ENTRY(test_leave_owner),
	TEST_ENTRY(test_phx_ref_unique),
	TEST_ENTRY(test_update),
	TEST_ENTRY(test_delta_basic),
	TEST_ENTRY(test_delta_removes_only_observed),
	TEST_ENTRY(test_down_up_permdown),
	TEST_ENTRY(test_same_node_new_vsn),
	TEST_ENTRY(test_merge_laws),
	TEST_ENTRY(test_property_convergence),
	TEST_ENTRY(test_bench_topic_size),
};

TEST_MAIN()
