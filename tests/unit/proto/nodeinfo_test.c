/* SPDX-License-Identifier: Apache-2.0 */
/* The node-facts message: round trip, trailing fields a later version may
 * append are ignored, other versions, bad fingerprints, junk and oversize
 * input refused. */
#include "common/err.h"
#include "proto/nodeinfo.h"
#include "tests/unit/test.h"

#include <msgpack.h>
#include <stdlib.h>

/* Packs [version, fp, extra...] by hand. */
static size_t
pack(char *out, unsigned version, const char *fp, int extra)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2 + (unsigned)extra);
	msgpack_pack_uint32(&pk, version);
	msgpack_pack_str(&pk, strlen(fp));
	msgpack_pack_str_body(&pk, fp, strlen(fp));
	for (int i = 0; i < extra; i++) {
		msgpack_pack_true(&pk);
	}
	n = sb.size;
	memcpy(out, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static void
round_trip(void)
{
	char *buf, fp[PRO_NODEINFO_FP_MAX + 1];
	size_t len;

	ASSERT_OK(pro_nodeinfo_encode("5c562eccc87b846a", &buf, &len));
	ASSERT_OK(pro_nodeinfo_decode(buf, len, fp));
	ASSERT_STREQ(fp, "5c562eccc87b846a");
	/* Truncations are refused, never half-read. */
	for (size_t k = 0; k < len; k++) {
		ASSERT_EQ(pro_nodeinfo_decode(buf, k, fp), PL_EPROTO);
	}
	free(buf);
	ASSERT_EQ(pro_nodeinfo_encode("", &buf, &len), PL_EINVAL);
	ASSERT_EQ(pro_nodeinfo_encode("has space", &buf, &len), PL_EINVAL);
}

static void
versions_and_junk(void)
{
	char b[256], fp[PRO_NODEINFO_FP_MAX + 1];
	char big[PRO_NODEINFO_MAX_BYTES + 1] = { 0 };
	char long_fp[PRO_NODEINFO_FP_MAX + 2];
	size_t n;

	n = pack(b, 1, "abc", 3);
	ASSERT_OK(pro_nodeinfo_decode(b, n, fp));
	ASSERT_STREQ(fp, "abc");
	n = pack(b, 2, "abc", 0);
	ASSERT_EQ(pro_nodeinfo_decode(b, n, fp), PL_EPROTO);
	n = pack(b, 1, "a\x01", 0);
	ASSERT_EQ(pro_nodeinfo_decode(b, n, fp), PL_EPROTO);
	memset(long_fp, 'f', sizeof(long_fp) - 1);
	long_fp[sizeof(long_fp) - 1] = '\0';
	n = pack(b, 1, long_fp, 0);
	ASSERT_EQ(pro_nodeinfo_decode(b, n, fp), PL_EPROTO);
	ASSERT_EQ(pro_nodeinfo_decode("\x92\x01", 2, fp), PL_EPROTO);
	ASSERT_EQ(pro_nodeinfo_decode("\xc1", 1, fp), PL_EPROTO);
	ASSERT_EQ(pro_nodeinfo_decode(big, sizeof(big), fp), PL_ETOOBIG);
	ASSERT_EQ(pro_nodeinfo_decode(NULL, 0, fp), PL_EPROTO);
}

TEST_LIST{
	TEST_ENTRY(round_trip),
	TEST_ENTRY(versions_and_junk),
};
TEST_MAIN()
