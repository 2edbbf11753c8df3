/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the cluster envelope decoder (proto/wire), which
 * every bus peer reaches: the input is one transport frame, walked envelope
 * by envelope as cluster/bus does. Every decoded envelope that the encoder
 * accepts is encoded again and must decode to the same fields. Any abort or
 * sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
str_eq(pro_wire_str a, pro_wire_str b)
{
	return (a.ptr == NULL) == (b.ptr == NULL) && a.len == b.len &&
	    (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void
check_hdr(const pro_wire_hdr *a, const pro_wire_hdr *b)
{
	if (!str_eq(a->sender, b->sender) || a->incarnation != b->incarnation ||
	    a->start_id != b->start_id || a->seq != b->seq ||
	    !str_eq(a->dest, b->dest) || a->n_skip != b->n_skip) {
		abort();
	}
	for (size_t i = 0; i < a->n_skip; i++) {
		if (!str_eq(a->skip[i], b->skip[i])) {
			abort();
		}
	}
}

static void
check_body(const pro_wire_msg *a, const pro_wire_msg *b)
{
	if (a->kind != b->kind) {
		abort();
	}
	switch (a->kind) {
	case PRO_WIRE_PING:
	case PRO_WIRE_PING_ACK:
		if (a->u.digest.n != b->u.digest.n) {
			abort();
		}
		for (size_t i = 0; i < a->u.digest.n; i++) {
			const pro_wire_member *x = &a->u.digest.members[i];
			const pro_wire_member *y = &b->u.digest.members[i];
			if (!str_eq(x->name, y->name) ||
			    !str_eq(x->addr, y->addr) ||
			    x->status != y->status ||
			    x->incarnation != y->incarnation ||
			    x->start_id != y->start_id) {
				abort();
			}
		}
		break;
	case PRO_WIRE_BROADCAST:
		if (!str_eq(a->u.broadcast.topic, b->u.broadcast.topic) ||
		    !str_eq(a->u.broadcast.event, b->u.broadcast.event) ||
		    !str_eq(a->u.broadcast.payload, b->u.broadcast.payload) ||
		    !str_eq(
			a->u.broadcast.publisher, b->u.broadcast.publisher) ||
		    a->u.broadcast.seq != b->u.broadcast.seq) {
			abort();
		}
		break;
	case PRO_WIRE_APP:
		if (a->u.app.app_kind != b->u.app.app_kind ||
		    !str_eq(a->u.app.bytes, b->u.app.bytes)) {
			abort();
		}
		break;
	default: break;
	}
}

static int
encode(pro_wire_buf *out, const pro_wire_msg *m)
{
	switch (m->kind) {
	case PRO_WIRE_PING:
	case PRO_WIRE_PING_ACK:
		return pro_wire_encode_digest(out, (pro_wire_kind)m->kind,
		    &m->hdr, m->u.digest.members, m->u.digest.n);
	case PRO_WIRE_LEAVE: return pro_wire_encode_leave(out, &m->hdr);
	case PRO_WIRE_BROADCAST:
		return pro_wire_encode_broadcast(out, &m->hdr,
		    m->u.broadcast.topic, m->u.broadcast.event,
		    m->u.broadcast.payload.ptr, m->u.broadcast.payload.len,
		    m->u.broadcast.publisher, m->u.broadcast.seq);
	case PRO_WIRE_APP:
		return pro_wire_encode_app(out, &m->hdr, m->u.app.app_kind,
		    m->u.app.bytes.ptr, m->u.app.bytes.len);
	}
	return PL_EINVAL;
}

static void
round_trip(const pro_wire_msg *m)
{
	pro_wire_buf b;
	pro_wire_msg again;
	size_t used = 0;

	pro_wire_buf_init(&b);
	if (encode(&b, m) == PL_OK) {
		if (pro_wire_decode(b.data, b.len, &used, &again) != PL_OK ||
		    used != b.len || again.skip != PRO_WIRE_SKIP_NONE) {
			abort();
		}
		check_hdr(&m->hdr, &again.hdr);
		check_body(m, &again);
		pro_wire_msg_release(&again);
	}
	pro_wire_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		pro_wire_msg m;
		size_t used = 0;
		int rc;

		memset(&m, 0, sizeof(m));
		rc = pro_wire_decode(data + off, size - off, &used, &m);
		if (rc != PL_OK) {
			if (rc != PL_EPROTO && rc != PL_ENOMEM) {
				abort();
			}
			break;
		}
		if (used == 0 || used > size - off) {
			abort();
		}
		if (m.skip == PRO_WIRE_SKIP_NONE) {
			round_trip(&m);
		}
		pro_wire_msg_release(&m);
		off += used;
	}
	return 0;
}
