/* SPDX-License-Identifier: Apache-2.0 */
/* msgpack decoding helpers shared by the cluster codecs (see mp.h). */
#include "proto/mp.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* ---- encoding ---- */

static int
buf_write(void *data, const char *src, size_t len)
{
	pro_wire_buf *b = data;

	if (len == 0) {
		return 0;
	}
	if (len > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap - b->len < len) {
			if (cap > SIZE_MAX / 2) {
				return -1;
			}
			cap *= 2;
		}
		if ((p = realloc(b->data, cap)) == NULL) {
			return -1;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, src, len);
	b->len += len;
	return 0;
}

static int
enc_write(void *data, const char *src, size_t len)
{
	pro_mp_enc *e = data;

	if (e->fail) {
		return -1;
	}
	if (buf_write(e->out, src, len) != 0) {
		e->fail = 1;
		return -1;
	}
	return 0;
}

void
pro_mp_enc_begin(pro_mp_enc *e, pro_wire_buf *out)
{
	e->out = out;
	e->start = out->len;
	e->fail = 0;
	msgpack_packer_init(&e->pk, e, enc_write);
}

int
pro_mp_enc_end(pro_mp_enc *e)
{
	if (e->fail) {
		e->out->len = e->start;
		return PL_ENOMEM;
	}
	return PL_OK;
}

void
pro_mp_pack_str(msgpack_packer *pk, pro_wire_str s)
{
	msgpack_pack_str(pk, s.len);
	msgpack_pack_str_body(pk, s.ptr, s.len);
}

void
pro_mp_pack_bin(msgpack_packer *pk, const void *p, size_t len)
{
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, p, len);
}

/* ---- pre-scan ---- */

static uint64_t
be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

bool
pro_mp_scan(
    const void *buf, size_t len, size_t max_objects, int max_depth, size_t *end)
{
	const uint8_t *p = buf;
	uint64_t left[PRO_MP_DEPTH_MAX];
	int depth = 0;
	size_t pos = 0, objects = 0;

	if (max_depth > PRO_MP_DEPTH_MAX) {
		max_depth = PRO_MP_DEPTH_MAX;
	}
	left[0] = 1;
	while (depth >= 0) {
		uint64_t items = 0, skip = 0;
		size_t lenbytes = 0;
		uint8_t b;

		if (left[depth] == 0) {
			depth--;
			continue;
		}
		left[depth]--;
		if (pos >= len || ++objects > max_objects) {
			return false;
		}
		b = p[pos++];
		if (b <= 0x7f || b >= 0xe0) {
			/* fixint */
		} else if (b <= 0x8f) {
			items = (uint64_t)(b & 0x0f) * 2;
		} else if (b <= 0x9f) {
			items = b & 0x0f;
		} else if (b <= 0xbf) {
			skip = b & 0x1f;
		} else {
			switch (b) {
			case 0xc0:
			case 0xc2:
			case 0xc3: break;
			case 0xc4:
			case 0xd9: lenbytes = 1; break;
			case 0xc5:
			case 0xda: lenbytes = 2; break;
			case 0xc6:
			case 0xdb: lenbytes = 4; break;
			case 0xc7:
				lenbytes = 1;
				skip = 1;
				break;
			case 0xc8:
				lenbytes = 2;
				skip = 1;
				break;
			case 0xc9:
				lenbytes = 4;
				skip = 1;
				break;
			case 0xcc:
			case 0xd0: skip = 1; break;
			case 0xcd:
			case 0xd1: skip = 2; break;
			case 0xca:
			case 0xce:
			case 0xd2: skip = 4; break;
			case 0xcb:
			case 0xcf:
			case 0xd3: skip = 8; break;
			case 0xd4: skip = 2; break;
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc:
			case 0xde:
			case 0xdd:
			case 0xdf: {
				size_t n = (b == 0xdc || b == 0xde) ? 2 : 4;
				if (n > len - pos) {
					return false;
				}
				items = be(p + pos, n);
				if (b == 0xde || b == 0xdf) {
					items *= 2;
				}
				pos += n;
				break;
			}
			default: /* 0xc1 is never used */ return false;
			}
		}
		if (lenbytes > 0) {
			if (lenbytes > len - pos) {
				return false;
			}
			skip += be(p + pos, lenbytes);
			pos += lenbytes;
		}
		if (skip > len - pos) {
			return false;
		}
		pos += (size_t)skip;
		if (items > 0) {
			uint64_t pending = items;
			for (int i = 0; i <= depth; i++) {
				pending += left[i];
			}
			if (pending > len - pos || depth + 1 >= max_depth) {
				return false;
			}
			left[++depth] = items;
		}
	}
	*end = pos;
	return true;
}

/* ---- typed getters ---- */

bool
pro_mp_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
		return false;
	}
	*out = o->via.u64;
	return true;
}

bool
pro_mp_str(const msgpack_object *o, pro_wire_str *out)
{
	if (o->type != MSGPACK_OBJECT_STR) {
		return false;
	}
	out->ptr = o->via.str.size ? o->via.str.ptr : "";
	out->len = o->via.str.size;
	return true;
}

/* Payloads are written as bin; str is accepted too. */
bool
pro_mp_bytes(const msgpack_object *o, pro_wire_str *out)
{
	if (o->type == MSGPACK_OBJECT_BIN) {
		out->ptr = o->via.bin.size ? o->via.bin.ptr : "";
		out->len = o->via.bin.size;
		return true;
	}
	return pro_mp_str(o, out);
}

int
pro_mp_unpack_one(msgpack_unpacked *up, const void *buf, size_t len)
{
	size_t off = 0;
	msgpack_unpack_return ur;

	msgpack_unpacked_init(up);
	ur = msgpack_unpack_next(up, buf, len, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
		return PL_ENOMEM;
	}
	return ur == MSGPACK_UNPACK_SUCCESS && off == len ? PL_OK : PL_EPROTO;
}
