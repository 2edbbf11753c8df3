/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the presence msgpack codec: round trips of every message kind,
 * builder validation, and rejection of truncated, corrupted, random and
 * hand-crafted hostile input without crashing or leaking. */
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/presence.h"
#include "common/err.h"
#include "proto/presence_codec.h"
#include "tests/unit/test.h"

static uint64_t rng_state = 12345;

static uint64_t
rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static pro_presence_msg *
sample(pro_presence_kind kind)
{
	pro_presence_msg *m;
	uint32_t r0, r1, t0, t1;
	const uint64_t dots[] = { 9, 7, 9, 12 };
	ASSERT_OK(pro_presence_msg_create(&m, kind));
	ASSERT_OK(pro_presence_msg_add_replica(
	    m, "node-a", 0xfedcba9876543210ULL, 3, 8, dots, 4, &r0));
	ASSERT_OK(
	    pro_presence_msg_add_replica(m, "node-b", 1, 0, 0, NULL, 0, &r1));
	m->sender = r1;
	if (kind == PRO_PRESENCE_CLOCKS) {
		return m;
	}
	ASSERT_OK(pro_presence_msg_add_topic(m, "comments:v1", &t0));
	ASSERT_OK(pro_presence_msg_add_topic(m, "presence:u\xc3\xa9", &t1));
	pro_presence_entry e = { .replica = r0,
		.topic = t0,
		.clock = 4,
		.owner = UINT64_MAX,
		.key = "alice",
		.meta = "{\"online_at\":1700000000}",
		.meta_len = 24 };
	for (int i = 0; i < PRO_PRESENCE_REF_BYTES; i++) {
		e.ref[i] = (uint8_t)(i * 17);
		e.prev_ref[i] = (uint8_t)(255 - i);
	}
	ASSERT_OK(pro_presence_msg_add_entry(m, &e));
	e.has_prev = true;
	e.clock = 5;
	e.topic = t1;
	e.key = "device-\x01";
	ASSERT_OK(pro_presence_msg_add_entry(m, &e));
	e.has_prev = false;
	e.replica = r1;
	e.clock = 1;
	e.meta = NULL;
	e.meta_len = 0;
	ASSERT_OK(pro_presence_msg_add_entry(m, &e));
	return m;
}

static void
assert_msg_eq(const pro_presence_msg *a, const pro_presence_msg *b)
{
	ASSERT_EQ(a->kind, b->kind);
	ASSERT_EQ(a->sender, b->sender);
	ASSERT_EQ(a->nreplicas, b->nreplicas);
	for (size_t i = 0; i < a->nreplicas; i++) {
		const pro_presence_replica *x = &a->replicas[i],
					   *y = &b->replicas[i];
		ASSERT_STREQ(x->name, y->name);
		ASSERT_TRUE(
		    x->vsn == y->vsn && x->lo == y->lo && x->hi == y->hi);
		ASSERT_EQ(x->ndots, y->ndots);
		for (size_t j = 0; j < x->ndots; j++) {
			ASSERT_TRUE(x->dots[j] == y->dots[j]);
		}
	}
	ASSERT_EQ(a->ntopics, b->ntopics);
	for (size_t i = 0; i < a->ntopics; i++) {
		ASSERT_STREQ(a->topics[i], b->topics[i]);
	}
	ASSERT_EQ(a->nentries, b->nentries);
	for (size_t i = 0; i < a->nentries; i++) {
		const pro_presence_entry *x = &a->entries[i],
					 *y = &b->entries[i];
		ASSERT_TRUE(x->replica == y->replica && x->topic == y->topic &&
		    x->clock == y->clock && x->owner == y->owner);
		ASSERT_STREQ(x->key, y->key);
		ASSERT_EQ(x->meta_len, y->meta_len);
		ASSERT_MEMEQ(x->meta, y->meta, x->meta_len + 1);
		ASSERT_MEMEQ(x->ref, y->ref, PRO_PRESENCE_REF_BYTES);
		ASSERT_EQ(x->has_prev, y->has_prev);
		if (x->has_prev) {
			ASSERT_MEMEQ(
			    x->prev_ref, y->prev_ref, PRO_PRESENCE_REF_BYTES);
		}
	}
}

static void
test_roundtrip(void)
{
	for (int k = PRO_PRESENCE_DELTA; k <= PRO_PRESENCE_CLOCKS; k++) {
		pro_presence_msg *m = sample((pro_presence_kind)k), *d;
		char *b1, *b2;
		size_t l1, l2;
		/* Dots were sorted and deduplicated by the builder. */
		ASSERT_EQ(m->replicas[0].ndots, 3);
		ASSERT_EQ(m->replicas[0].dots[0], 7);
		ASSERT_OK(pro_presence_encode(m, &b1, &l1));
		ASSERT_OK(pro_presence_decode(b1, l1, &d));
		assert_msg_eq(m, d);
		ASSERT_OK(pro_presence_encode(d, &b2, &l2));
		ASSERT_EQ(l1, l2);
		ASSERT_MEMEQ(b1, b2, l1);
		free(b1);
		free(b2);
		pro_presence_msg_destroy(m);
		pro_presence_msg_destroy(d);
	}
	/* An empty message too. */
	pro_presence_msg *m, *d;
	char *b;
	size_t l;
	ASSERT_OK(pro_presence_msg_create(&m, PRO_PRESENCE_STATE));
	ASSERT_OK(pro_presence_encode(m, &b, &l));
	ASSERT_OK(pro_presence_decode(b, l, &d));
	assert_msg_eq(m, d);
	free(b);
	pro_presence_msg_destroy(m);
	pro_presence_msg_destroy(d);
}

static void
test_builder_validation(void)
{
	pro_presence_msg *m;
	const uint64_t zero = 0;
	char big[PRO_PRESENCE_MAX_NAME + 2];
	ASSERT_EQ(pro_presence_msg_create(&m, (pro_presence_kind)9), PL_EINVAL);
	ASSERT_OK(pro_presence_msg_create(&m, PRO_PRESENCE_DELTA));
	ASSERT_EQ(pro_presence_msg_add_replica(m, "", 1, 0, 0, NULL, 0, NULL),
	    PL_EINVAL);
	ASSERT_EQ(pro_presence_msg_add_replica(m, "a", 1, 5, 4, NULL, 0, NULL),
	    PL_EINVAL);
	ASSERT_EQ(pro_presence_msg_add_replica(m, "a", 1, 0, 0, &zero, 1, NULL),
	    PL_EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ASSERT_EQ(pro_presence_msg_add_replica(m, big, 1, 0, 0, NULL, 0, NULL),
	    PL_ETOOBIG);
	ASSERT_EQ(pro_presence_msg_add_topic(m, "", NULL), PL_EINVAL);
	pro_presence_entry e = { .key = "k", .clock = 1 };
	ASSERT_EQ(pro_presence_msg_add_entry(m, &e), PL_EINVAL);
	pro_presence_msg_destroy(m);
}

static void
encode_sample(char **b, size_t *l)
{
	pro_presence_msg *m = sample(PRO_PRESENCE_DELTA);
	ASSERT_OK(pro_presence_encode(m, b, l));
	pro_presence_msg_destroy(m);
}

static void
test_truncated(void)
{
	char *b;
	size_t l;
	pro_presence_msg *d;
	encode_sample(&b, &l);
	for (size_t n = 0; n < l; n++) {
		ASSERT_EQ(pro_presence_decode(b, n, &d), PL_EPROTO);
		ASSERT_TRUE(d == NULL);
	}
	/* Trailing garbage is an error too. */
	char *x = malloc(l + 1);
	memcpy(x, b, l);
	x[l] = 0;
	ASSERT_EQ(pro_presence_decode(x, l + 1, &d), PL_EPROTO);
	free(x);
	free(b);
}

static void
test_corrupted(void)
{
	char *b;
	size_t l;
	int ok = 0, bad = 0;
	clu_presence *p;
	encode_sample(&b, &l);
	/* Whatever decodes is also merged: merge must cope with any shape. */
	ASSERT_OK(clu_presence_create(&p, "x", 5, NULL, NULL));
	ASSERT_OK(clu_presence_replica_up(p, "node-a", 0xfedcba9876543210ULL));
	ASSERT_OK(clu_presence_replica_up(p, "node-b", 1));
	char *x = malloc(l);
	for (int it = 0; it < 20000; it++) {
		pro_presence_msg *d;
		memcpy(x, b, l);
		int flips = 1 + (int)(rnd() % 4);
		for (int f = 0; f < flips; f++) {
			x[rnd() % l] = (char)rnd();
		}
		if (pro_presence_decode(x, l, &d) == PL_OK) {
			char *e;
			size_t el;
			ASSERT_OK(pro_presence_encode(d, &e, &el));
			free(e);
			int rc = clu_presence_merge(p, d);
			ASSERT_TRUE(rc == PL_OK || rc == PL_EINVAL);
			pro_presence_msg_destroy(d);
			ok++;
		} else {
			ASSERT_TRUE(d == NULL);
			bad++;
		}
	}
	fprintf(stderr,
	    "  corrupted: %d decoded, %d rejected; %zu entries "
	    "merged\n",
	    ok, bad, clu_presence_size(p));
	clu_presence_destroy(p);
	ASSERT_TRUE(bad > 0);
	free(x);
	free(b);
}

static void
test_random_bytes(void)
{
	unsigned char buf[256];
	for (int it = 0; it < 20000; it++) {
		pro_presence_msg *d;
		size_t n = 1 + rnd() % sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			buf[i] = (unsigned char)rnd();
		}
		/* Often start like a real message to get past the first checks. */
		if (it % 2 == 0) {
			buf[0] = 0x96;
			buf[1] = 0x01;
		}
		if (pro_presence_decode(buf, n, &d) == PL_OK) {
			pro_presence_msg_destroy(d);
		}
	}
	pro_presence_msg *d;
	ASSERT_EQ(pro_presence_decode(NULL, 0, &d), PL_EPROTO);
	ASSERT_EQ(pro_presence_decode("", 0, &d), PL_EPROTO);
}

/* ---- Hand-crafted hostile messages ---- */

typedef struct hostile {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} hostile;

static void
h_init(hostile *h)
{
	msgpack_sbuffer_init(&h->sb);
	msgpack_packer_init(&h->pk, &h->sb, msgpack_sbuffer_write);
}

static int
h_decode(hostile *h)
{
	pro_presence_msg *d = NULL;
	int rc = pro_presence_decode(h->sb.data, h->sb.size, &d);
	if (rc == PL_OK) {
		pro_presence_msg_destroy(d);
	}
	msgpack_sbuffer_destroy(&h->sb);
	return rc;
}

static void
h_str(hostile *h, const char *s, size_t n)
{
	msgpack_pack_str(&h->pk, n);
	msgpack_pack_str_body(&h->pk, s, n);
}

/* Writes a message with one replica, one topic and one entry; field
 * `bad` (0 = none) is replaced by something wrong. */
static int
crafted(int bad)
{
	hostile h;
	msgpack_packer *pk = &h.pk;
	uint8_t ref[12] = { 0 };
	h_init(&h);
	msgpack_pack_array(pk, 6);
	msgpack_pack_uint32(pk, bad == 1 ? 2 : 1); /* version */
	msgpack_pack_uint32(pk, bad == 2 ? 7 : 1); /* kind */
	msgpack_pack_uint32(pk, bad == 3 ? 1 : 0); /* sender */
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 5);
	if (bad == 4) {
		msgpack_pack_int64(pk, -1);
	} else {
		h_str(&h, "a", 1);
	}
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, bad == 5 ? 9 : 0); /* lo > hi */
	msgpack_pack_uint64(pk, 4);
	msgpack_pack_array(pk, 1);
	msgpack_pack_uint64(pk, bad == 6 ? 0 : 6); /* zero dot */
	msgpack_pack_array(pk, 1);
	if (bad == 7) {
		h_str(&h, "t\0x", 3); /* NUL */
	} else {
		h_str(&h, "t", 1);
	}
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, bad == 8 ? 7 : 8);
	msgpack_pack_uint32(pk, 0);
	msgpack_pack_uint32(pk, bad == 9 ? 1 : 0);  /* topic index */
	msgpack_pack_uint64(pk, bad == 10 ? 0 : 2); /* clock */
	if (bad == 11) {
		msgpack_pack_double(pk, 1.5);
	} else {
		msgpack_pack_uint64(pk, 77);
	}
	h_str(&h, "k", bad == 12 ? 0 : 1); /* empty key */
	msgpack_pack_bin(pk, bad == 13 ? 11 : 12);
	msgpack_pack_bin_body(pk, ref, bad == 13 ? 11 : 12);
	if (bad == 14) {
		msgpack_pack_true(pk);
	} else {
		msgpack_pack_nil(pk);
	}
	if (bad == 15) {
		msgpack_pack_map(pk, 0);
	} else {
		h_str(&h, "{}", 2);
	}
	if (bad == 16) {
		msgpack_pack_nil(pk); /* trailing */
	}
	return h_decode(&h);
}

static void
test_crafted(void)
{
	ASSERT_OK(crafted(0));
	for (int bad = 1; bad <= 16; bad++) {
		int rc = crafted(bad);
		if (rc == PL_OK) {
			fprintf(stderr, "  variant %d accepted\n", bad);
		}
		ASSERT_EQ(rc, PL_EPROTO);
	}
}

static void
test_huge_counts(void)
{
	/* array32 / map32 / str32 / bin32 claiming 4 G items or bytes. */
	static const unsigned char a32[] = { 0x96, 0x01, 0x01, 0x00, 0xdd, 0xff,
		0xff, 0xff, 0xff, 0x90, 0x90 };
	static const unsigned char m32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
	static const unsigned char s32[] = { 0xdb, 0xff, 0xff, 0xff, 0xff,
		'a' };
	static const unsigned char e32[] = { 0xc9, 0xff, 0xff, 0xff, 0xff, 1 };
	pro_presence_msg *d;
	ASSERT_EQ(pro_presence_decode(a32, sizeof(a32), &d), PL_EPROTO);
	ASSERT_EQ(pro_presence_decode(m32, sizeof(m32), &d), PL_EPROTO);
	ASSERT_EQ(pro_presence_decode(s32, sizeof(s32), &d), PL_EPROTO);
	ASSERT_EQ(pro_presence_decode(e32, sizeof(e32), &d), PL_EPROTO);
	/* Deep nesting of one-element arrays. */
	unsigned char deep[4096];
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0xc0;
	ASSERT_EQ(pro_presence_decode(deep, sizeof(deep), &d), PL_EPROTO);
	/* Well-formed but over a count limit: 5000 replicas of nil. */
	hostile h;
	h_init(&h);
	msgpack_pack_array(&h.pk, 6);
	msgpack_pack_uint32(&h.pk, 1);
	msgpack_pack_uint32(&h.pk, 2);
	msgpack_pack_uint32(&h.pk, 0);
	msgpack_pack_array(&h.pk, PRO_PRESENCE_MAX_REPLICAS + 1);
	for (int i = 0; i <= PRO_PRESENCE_MAX_REPLICAS; i++) {
		msgpack_pack_nil(&h.pk);
	}
	msgpack_pack_array(&h.pk, 0);
	msgpack_pack_array(&h.pk, 0);
	ASSERT_EQ(h_decode(&h), PL_ETOOBIG);
	/* A meta over the limit. */
	h_init(&h);
	size_t big = PRO_PRESENCE_MAX_META + 1;
	char *meta = calloc(1, big);
	memset(meta, ' ', big);
	msgpack_pack_array(&h.pk, 6);
	msgpack_pack_uint32(&h.pk, 1);
	msgpack_pack_uint32(&h.pk, 1);
	msgpack_pack_uint32(&h.pk, 0);
	msgpack_pack_array(&h.pk, 1);
	msgpack_pack_array(&h.pk, 5);
	h_str(&h, "a", 1);
	msgpack_pack_uint64(&h.pk, 1);
	msgpack_pack_uint64(&h.pk, 0);
	msgpack_pack_uint64(&h.pk, 1);
	msgpack_pack_array(&h.pk, 0);
	msgpack_pack_array(&h.pk, 1);
	h_str(&h, "t", 1);
	msgpack_pack_array(&h.pk, 1);
	msgpack_pack_array(&h.pk, 8);
	msgpack_pack_uint32(&h.pk, 0);
	msgpack_pack_uint32(&h.pk, 0);
	msgpack_pack_uint64(&h.pk, 1);
	msgpack_pack_uint64(&h.pk, 1);
	h_str(&h, "k", 1);
	msgpack_pack_bin(&h.pk, 12);
	msgpack_pack_bin_body(&h.pk, meta, 12);
	msgpack_pack_nil(&h.pk);
	h_str(&h, meta, big);
	free(meta);
	ASSERT_EQ(h_decode(&h), PL_ETOOBIG);
}

/* A full state of 10,000 entries survives encode/decode/merge. */
static void
test_presence_state_through_codec(void)
{
	clu_presence *a, *b;
	pro_presence_msg *m, *d;
	char key[24], *buf;
	size_t len;
	ASSERT_OK(clu_presence_create(&a, "a", 1, NULL, NULL));
	ASSERT_OK(clu_presence_create(&b, "b", 2, NULL, NULL));
	ASSERT_OK(clu_presence_replica_up(b, "a", 1));
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "user-%d", i);
		ASSERT_OK(clu_presence_join(a, (uint64_t)i, "comments:v", key,
		    "{\"online_at\":1700000000}", 24, NULL));
	}
	for (int i = 0; i < 10000; i += 3) {
		snprintf(key, sizeof(key), "user-%d", i);
		ASSERT_OK(
		    clu_presence_leave(a, (uint64_t)i, "comments:v", key));
	}
	ASSERT_OK(clu_presence_export(a, "b", &m));
	ASSERT_OK(pro_presence_encode(m, &buf, &len));
	ASSERT_OK(pro_presence_decode(buf, len, &d));
	assert_msg_eq(m, d);
	ASSERT_OK(clu_presence_merge(b, d));
	ASSERT_EQ(clu_presence_key_count(b, "comments:v"), 6666);
	ASSERT_EQ(clu_presence_count(b, "comments:v", "user-1"), 1);
	ASSERT_EQ(clu_presence_count(b, "comments:v", "user-3"), 0);
	fprintf(stderr,
	    "  full state: %zu entries in %zu bytes (%.1f B/entry)\n",
	    m->nentries, len, (double)len / (double)m->nentries);
	free(buf);
	pro_presence_msg_destroy(m);
	pro_presence_msg_destroy(d);
	/* Clocks: b has caught up with a. */
	ASSERT_OK(clu_presence_clocks(a, &m));
	ASSERT_OK(pro_presence_encode(m, &buf, &len));
	ASSERT_OK(pro_presence_decode(buf, len, &d));
	ASSERT_TRUE(!clu_presence_behind(b, d));
	ASSERT_OK(clu_presence_join(a, 1, "x", "y", "{}", 2, NULL));
	pro_presence_msg_destroy(m);
	pro_presence_msg_destroy(d);
	free(buf);
	ASSERT_OK(clu_presence_clocks(a, &m));
	ASSERT_TRUE(clu_presence_behind(b, m));
	/* Clocks are no state to merge. */
	ASSERT_EQ(clu_presence_merge(b, m), PL_EINVAL);
	pro_presence_msg_destroy(m);
	clu_presence_destroy(a);
	clu_presence_destroy(b);
}

TEST_LIST{
	TEST_ENTRY(test_roundtrip),
	TEST_ENTRY(test_builder_validation),
	TEST_ENTRY(test_truncated),
	TEST_ENTRY(test_corrupted),
	TEST_ENTRY(test_random_bytes),
	TEST_ENTRY(test_crafted),
	TEST_ENTRY(test_huge_counts),
	TEST_ENTRY(test_presence_state_through_codec),
};

TEST_MAIN()
