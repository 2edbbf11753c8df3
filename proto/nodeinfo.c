/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/nodeinfo.h"

#include "common/err.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool
fp_ok(const char *s, size_t n)
{
	if (n == 0 || n > PRO_NODEINFO_FP_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x21 || s[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

int
pro_nodeinfo_encode(const char *fp, char **buf, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n = fp ? strlen(fp) : 0;
	int rc;

	*buf = NULL;
	*len = 0;
	if (!fp_ok(fp, n)) {
		return PL_EINVAL;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rc = msgpack_pack_array(&pk, 2);
	rc |= msgpack_pack_uint32(&pk, PRO_NODEINFO_VERSION);
	rc |= msgpack_pack_str(&pk, n);
	rc |= msgpack_pack_str_body(&pk, fp, n);
	if (rc != 0 || sb.data == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return PL_ENOMEM;
	}
	*buf = sb.data; /* the sbuffer's malloc'ed bytes become the caller's */
	*len = sb.size;
	return PL_OK;
}

int
pro_nodeinfo_decode(
    const void *buf, size_t len, char fp[PRO_NODEINFO_FP_MAX + 1])
{
	msgpack_unpacked up;
	msgpack_object *a;
	size_t off = 0;
	int rc = PL_EPROTO;

	fp[0] = '\0';
	if (buf == NULL || len == 0) {
		return PL_EPROTO;
	}
	/* Small and bounded: msgpack allocates at most a few times this. */
	if (len > PRO_NODEINFO_MAX_BYTES) {
		return PL_ETOOBIG;
	}
	msgpack_unpacked_init(&up);
	msgpack_unpack_return ur = msgpack_unpack_next(&up, buf, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		rc = ur == MSGPACK_UNPACK_NOMEM_ERROR ? PL_ENOMEM : PL_EPROTO;
		goto out;
	}
	if (up.data.type != MSGPACK_OBJECT_ARRAY ||
	    up.data.via.array.size < 2) {
		goto out;
	}
	a = up.data.via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[0].via.u64 != PRO_NODEINFO_VERSION ||
	    a[1].type != MSGPACK_OBJECT_STR ||
	    !fp_ok(a[1].via.str.ptr, a[1].via.str.size)) {
		goto out;
	}
	memcpy(fp, a[1].via.str.ptr, a[1].via.str.size);
	fp[a[1].via.str.size] = '\0';
	rc = PL_OK;
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}
