/* SPDX-License-Identifier: Apache-2.0 */
/* Encode/decode pair for rate-limit counts (see ratecount.h). */
#include "proto/ratecount.h"

#include <msgpack.h>
#include <string.h>

#include "common/err.h"
#include "proto/mp.h"

static bool
text_ok(pro_wire_str s, size_t max)
{
	return s.ptr != NULL && s.len >= 1 && s.len <= max &&
	    memchr(s.ptr, 0, s.len) == NULL;
}

int
pro_ratecount_encode(
    pro_wire_buf *out, uint32_t window_ms, const pro_ratecount *items, size_t n)
{
	pro_mp_enc e;

	if (n > PRO_RATECOUNT_MAX || (n > 0 && items == NULL)) {
		return PL_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!text_ok(items[i].action, PRO_RATECOUNT_ACTION_MAX) ||
		    !text_ok(items[i].user, PRO_RATECOUNT_USER_MAX)) {
			return PL_EINVAL;
		}
	}
	pro_mp_enc_begin(&e, out);
	msgpack_pack_array(&e.pk, 3);
	msgpack_pack_uint64(&e.pk, PRO_RATECOUNT_VERSION);
	msgpack_pack_uint32(&e.pk, window_ms);
	msgpack_pack_array(&e.pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_array(&e.pk, 4);
		pro_mp_pack_str(&e.pk, items[i].action);
		pro_mp_pack_str(&e.pk, items[i].user);
		msgpack_pack_uint64(&e.pk, items[i].window);
		msgpack_pack_uint32(&e.pk, items[i].count);
	}
	return pro_mp_enc_end(&e);
}

static int
decode_items(const msgpack_object *o, msgpack_zone *z, pro_ratecount_msg *m)
{
	pro_ratecount *it;
	uint64_t c;

	if (o->type != MSGPACK_OBJECT_ARRAY ||
	    o->via.array.size > PRO_RATECOUNT_MAX) {
		return PL_EPROTO;
	}
	if (o->via.array.size == 0) {
		return PL_OK;
	}
	if ((it = msgpack_zone_malloc(z, o->via.array.size * sizeof(*it))) ==
	    NULL) {
		return PL_ENOMEM;
	}
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *e = &o->via.array.ptr[i];
		const msgpack_object *f = e->via.array.ptr;

		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 4 ||
		    !pro_mp_str(&f[0], &it[i].action) ||
		    !pro_mp_str(&f[1], &it[i].user) ||
		    !pro_mp_uint(&f[2], UINT64_MAX, &it[i].window) ||
		    !pro_mp_uint(&f[3], UINT32_MAX, &c) ||
		    !text_ok(it[i].action, PRO_RATECOUNT_ACTION_MAX) ||
		    !text_ok(it[i].user, PRO_RATECOUNT_USER_MAX)) {
			return PL_EPROTO;
		}
		it[i].count = (uint32_t)c;
	}
	m->items = it;
	m->n = o->via.array.size;
	return PL_OK;
}

int
pro_ratecount_decode(const void *buf, size_t len, pro_ratecount_msg *out)
{
	msgpack_zone *z;
	msgpack_object root;
	size_t off = 0, end;
	uint64_t v, w;
	int rc = PL_EPROTO;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len == 0 ||
	    !pro_mp_scan(buf, len, 8 + PRO_RATECOUNT_MAX * 5, 4, &end) ||
	    end != len) {
		return PL_EPROTO;
	}
	if ((z = msgpack_zone_new(2048)) == NULL) {
		return PL_ENOMEM;
	}
	if (msgpack_unpack(buf, len, &off, z, &root) !=
		MSGPACK_UNPACK_SUCCESS ||
	    off != len || root.type != MSGPACK_OBJECT_ARRAY ||
	    root.via.array.size < 3 ||
	    !pro_mp_uint(&root.via.array.ptr[0], UINT64_MAX, &v) || v == 0) {
		goto fail;
	}
	if (v > PRO_RATECOUNT_VERSION) {
		rc = PL_ENOTFOUND;
		goto fail;
	}
	if (!pro_mp_uint(&root.via.array.ptr[1], UINT32_MAX, &w) || w == 0 ||
	    (rc = decode_items(&root.via.array.ptr[2], z, out)) != PL_OK) {
		rc = rc == PL_OK ? PL_EPROTO : rc;
		goto fail;
	}
	out->window_ms = (uint32_t)w;
	out->zone_ = z;
	return PL_OK;

fail:
	msgpack_zone_free(z);
	memset(out, 0, sizeof(*out));
	return rc;
}

void
pro_ratecount_release(pro_ratecount_msg *m)
{
	if (m->zone_ != NULL) {
		msgpack_zone_free(m->zone_);
	}
	memset(m, 0, sizeof(*m));
}
