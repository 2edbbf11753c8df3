/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync state codec: marks and parked entries round trip;
 * trailing elements a later version may append are ignored; other
 * versions, truncations, wrong types, out-of-bound fields and junk are
 * refused before any callback runs. */
#include "common/err.h"
#include "proto/syncstate.h"
#include "tests/unit/test.h"

#include <msgpack.h>
#include <stdlib.h>

static pro_sync_mark got_m[8];
static char got_origin[8][PRO_SYNC_ORIGIN_MAX + 1];
static pro_sync_parked got_p[8];
static char got_reason[8][PRO_SYNC_REASON_MAX + 1];
static int ngot;

static void
on_mark(void *arg, const pro_sync_mark *m)
{
	(void)arg;
	if (ngot < 8) {
		snprintf(
		    got_origin[ngot], sizeof(got_origin[0]), "%s", m->origin);
		got_m[ngot] = *m;
		got_m[ngot].origin = got_origin[ngot];
	}
	ngot++;
}

static void
on_parked(void *arg, const pro_sync_parked *p)
{
	(void)arg;
	if (ngot < 8) {
		snprintf(
		    got_origin[ngot], sizeof(got_origin[0]), "%s", p->origin);
		snprintf(
		    got_reason[ngot], sizeof(got_reason[0]), "%s", p->reason);
		got_p[ngot] = *p;
		got_p[ngot].origin = got_origin[ngot];
		got_p[ngot].reason = got_reason[ngot];
	}
	ngot++;
}

static void
marks_round_trip(void)
{
	pro_sync_mark v[2] = { { "n1", 10, 12 },
		{ "n2~3f9a0c12", 0, UINT64_MAX } };
	char *buf;
	size_t len;

	ASSERT_OK(pro_sync_marks_encode(v, 2, &buf, &len));
	ngot = 0;
	ASSERT_OK(pro_sync_marks_decode(buf, len, on_mark, NULL));
	ASSERT_EQ(ngot, 2);
	ASSERT_STREQ(got_m[0].origin, "n1");
	ASSERT_EQ(got_m[0].synced, 10);
	ASSERT_EQ(got_m[0].sent, 12);
	ASSERT_STREQ(got_m[1].origin, "n2~3f9a0c12");
	ASSERT_TRUE(got_m[1].sent == UINT64_MAX);
	/* Every truncation is refused, and nothing is called back. */
	for (size_t k = 0; k < len; k++) {
		ngot = 0;
		ASSERT_EQ(
		    pro_sync_marks_decode(buf, k, on_mark, NULL), PL_EPROTO);
		ASSERT_EQ(ngot, 0);
	}
	/* A marks message is not a parked one. */
	ASSERT_EQ(pro_sync_parked_decode(buf, len, on_parked, NULL), PL_EPROTO);
	free(buf);
	ASSERT_OK(pro_sync_marks_encode(NULL, 0, &buf, &len));
	ngot = 0;
	ASSERT_OK(pro_sync_marks_decode(buf, len, on_mark, NULL));
	ASSERT_EQ(ngot, 0);
	free(buf);
	v[0].origin = "";
	ASSERT_EQ(pro_sync_marks_encode(v, 2, &buf, &len), PL_EINVAL);
}

static void
parked_round_trip(void)
{
	pro_sync_parked v[2] = {
		{ "n1", 7, 3, PRO_SYNC_PARKED, 400, "{\"error\":\"bad\"}" },
		{ "n2", 1, 9, PRO_SYNC_DONE, 0, NULL },
	};
	char *buf;
	size_t len;

	ASSERT_OK(pro_sync_parked_encode(v, 2, &buf, &len));
	ngot = 0;
	ASSERT_OK(pro_sync_parked_decode(buf, len, on_parked, NULL));
	ASSERT_EQ(ngot, 2);
	ASSERT_STREQ(got_p[0].origin, "n1");
	ASSERT_EQ(got_p[0].seq, 7);
	ASSERT_EQ(got_p[0].gen, 3);
	ASSERT_EQ(got_p[0].state, PRO_SYNC_PARKED);
	ASSERT_EQ(got_p[0].status, 400);
	ASSERT_STREQ(got_p[0].reason, "{\"error\":\"bad\"}");
	ASSERT_STREQ(got_p[1].reason, "");
	ASSERT_EQ(got_p[1].state, PRO_SYNC_DONE);
	free(buf);
	v[1].seq = 0;
	ASSERT_EQ(pro_sync_parked_encode(v, 2, &buf, &len), PL_EINVAL);
	v[1].seq = 1;
	v[1].state = 9;
	ASSERT_EQ(pro_sync_parked_encode(v, 2, &buf, &len), PL_EINVAL);
}

/* [version, [[origin, synced, sent, extra...]], extra...] by hand. */
static msgpack_sbuffer
hand_marks(unsigned version, const char *origin, bool extra, bool bad_type)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, extra ? 3 : 2);
	msgpack_pack_uint32(&pk, version);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, extra ? 4 : 3);
	msgpack_pack_str(&pk, strlen(origin));
	msgpack_pack_str_body(&pk, origin, strlen(origin));
	if (bad_type) {
		msgpack_pack_int64(&pk, -1);
	} else {
		msgpack_pack_uint64(&pk, 5);
	}
	msgpack_pack_uint64(&pk, 6);
	if (extra) {
		msgpack_pack_true(&pk);
		msgpack_pack_nil(&pk);
	}
	return sb;
}

static void
later_versions_and_junk(void)
{
	char origin[PRO_SYNC_ORIGIN_MAX + 2];
	msgpack_sbuffer sb;
	char junk[64];

	sb = hand_marks(PRO_SYNC_VERSION, "n1", true, false);
	ngot = 0;
	ASSERT_OK(pro_sync_marks_decode(sb.data, sb.size, on_mark, NULL));
	ASSERT_EQ(ngot, 1);
	ASSERT_EQ(got_m[0].synced, 5);
	msgpack_sbuffer_destroy(&sb);
	sb = hand_marks(PRO_SYNC_VERSION + 1, "n1", false, false);
	ASSERT_EQ(
	    pro_sync_marks_decode(sb.data, sb.size, on_mark, NULL), PL_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	sb = hand_marks(PRO_SYNC_VERSION, "n1", false, true);
	ASSERT_EQ(
	    pro_sync_marks_decode(sb.data, sb.size, on_mark, NULL), PL_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	memset(origin, 'o', sizeof(origin) - 1);
	origin[sizeof(origin) - 1] = '\0';
	sb = hand_marks(PRO_SYNC_VERSION, origin, false, false);
	ASSERT_EQ(
	    pro_sync_marks_decode(sb.data, sb.size, on_mark, NULL), PL_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	sb = hand_marks(PRO_SYNC_VERSION, "", false, false);
	ASSERT_EQ(
	    pro_sync_marks_decode(sb.data, sb.size, on_mark, NULL), PL_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	for (int i = 0; i < 1000; i++) {
		for (size_t k = 0; k < sizeof(junk); k++) {
			junk[k] = (char)(rand() & 0xff);
		}
		/* Never crashes; junk is all but never a valid message. */
		(void)pro_sync_marks_decode(junk, sizeof(junk), on_mark, NULL);
		(void)pro_sync_parked_decode(
		    junk, sizeof(junk), on_parked, NULL);
	}
	ASSERT_EQ(
	    pro_sync_marks_decode(junk, PRO_SYNC_MAX_BYTES + 1, on_mark, NULL),
	    PL_ETOOBIG);
	ASSERT_EQ(pro_sync_marks_decode(NULL, 0, on_mark, NULL), PL_EPROTO);
}

TEST_LIST{
	TEST_ENTRY(marks_round_trip),
	TEST_ENTRY(parked_round_trip),
	TEST_ENTRY(later_versions_and_junk),
};
TEST_MAIN()
