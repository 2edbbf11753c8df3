/* SPDX-License-Identifier: Apache-2.0 */
/* msgpack encode/decode pairs for the cluster envelope (see wire.h). Input is
 * first scanned byte by byte so that no container count can make msgpack-c
 * allocate more than the envelope could possibly hold, then unpacked into a
 * zone and checked field by field. */
#include "proto/wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/mp.h"

/* Bounds for the pre-scan: far above any legitimate message (a full digest
 * is about 6,200 objects, 3 levels deep). */
#define SCAN_MAX_OBJECTS 16384
#define SCAN_MAX_DEPTH 6

/* Header fields before the body. */
#define HDR_FIELDS 8

/* ---- output buffer ---- */

void
pro_wire_buf_init(pro_wire_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
pro_wire_buf_free(pro_wire_buf *b)
{
	free(b->data);
	pro_wire_buf_init(b);
}

pro_wire_str
pro_wire_cstr(const char *s)
{
	pro_wire_str r = { s, s ? strlen(s) : 0 };
	return r;
}

/* ---- field checks shared by encoder and decoder ---- */

static bool
name_ok(pro_wire_str s)
{
	if (s.ptr == NULL || s.len == 0 || s.len > PRO_WIRE_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < s.len; i++) {
		unsigned char ch = (unsigned char)s.ptr[i];
		if (ch < 0x21 || ch > 0x7e) {
			return false;
		}
	}
	return true;
}

static bool
addr_ok(pro_wire_str s)
{
	if (s.len > PRO_WIRE_ADDR_MAX || (s.len > 0 && s.ptr == NULL)) {
		return false;
	}
	for (size_t i = 0; i < s.len; i++) {
		unsigned char ch = (unsigned char)s.ptr[i];
		if (ch < 0x21 || ch > 0x7e) {
			return false;
		}
	}
	return true;
}

/* Text that will be handed out NUL-terminated: no embedded NUL. */
static bool
text_ok(pro_wire_str s, size_t max)
{
	return s.ptr != NULL && s.len <= max && memchr(s.ptr, 0, s.len) == NULL;
}

static bool
hdr_ok(const pro_wire_hdr *h)
{
	if (!name_ok(h->sender) || (h->dest.ptr != NULL && !name_ok(h->dest))) {
		return false;
	}
	if (h->n_skip > PRO_WIRE_SKIP_MAX ||
	    (h->n_skip > 0 && h->skip == NULL)) {
		return false;
	}
	for (size_t i = 0; i < h->n_skip; i++) {
		if (!name_ok(h->skip[i])) {
			return false;
		}
	}
	return true;
}

/* ---- encoders ---- */

static void
enc_begin(pro_mp_enc *e, pro_wire_buf *out, uint64_t kind,
    const pro_wire_hdr *h, size_t body_fields)
{
	pro_mp_enc_begin(e, out);
	msgpack_pack_array(&e->pk, HDR_FIELDS + body_fields);
	msgpack_pack_uint64(&e->pk, PRO_WIRE_VERSION);
	msgpack_pack_uint64(&e->pk, kind);
	pro_mp_pack_str(&e->pk, h->sender);
	msgpack_pack_uint64(&e->pk, h->incarnation);
	msgpack_pack_uint64(&e->pk, h->start_id);
	msgpack_pack_uint64(&e->pk, h->seq);
	if (h->dest.ptr == NULL) {
		msgpack_pack_nil(&e->pk);
	} else {
		pro_mp_pack_str(&e->pk, h->dest);
	}
	msgpack_pack_array(&e->pk, h->n_skip);
	for (size_t i = 0; i < h->n_skip; i++) {
		pro_mp_pack_str(&e->pk, h->skip[i]);
	}
}

static int
enc_end(pro_mp_enc *e)
{
	return pro_mp_enc_end(e);
}

int
pro_wire_encode_digest(pro_wire_buf *out, pro_wire_kind kind,
    const pro_wire_hdr *h, const pro_wire_member *members, size_t n)
{
	pro_mp_enc e;

	if ((kind != PRO_WIRE_PING && kind != PRO_WIRE_PING_ACK) ||
	    !hdr_ok(h) || n > PRO_WIRE_DIGEST_MAX ||
	    (n > 0 && members == NULL)) {
		return PL_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!name_ok(members[i].name) || !addr_ok(members[i].addr) ||
		    !addr_ok(members[i].direct) ||
		    members[i].status > PRO_WIRE_LEFT) {
			return PL_EINVAL;
		}
	}
	enc_begin(&e, out, kind, h, 1);
	msgpack_pack_array(&e.pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_array(&e.pk, 6);
		pro_mp_pack_str(&e.pk, members[i].name);
		pro_mp_pack_str(&e.pk, members[i].addr);
		msgpack_pack_uint8(&e.pk, members[i].status);
		msgpack_pack_uint64(&e.pk, members[i].incarnation);
		msgpack_pack_uint64(&e.pk, members[i].start_id);
		pro_mp_pack_str(&e.pk, members[i].direct);
	}
	return enc_end(&e);
}

int
pro_wire_encode_leave(pro_wire_buf *out, const pro_wire_hdr *h)
{
	pro_mp_enc e;

	if (!hdr_ok(h)) {
		return PL_EINVAL;
	}
	enc_begin(&e, out, PRO_WIRE_LEAVE, h, 0);
	return enc_end(&e);
}

int
pro_wire_encode_broadcast(pro_wire_buf *out, const pro_wire_hdr *h,
    pro_wire_str topic, pro_wire_str event, const void *payload, size_t len,
    pro_wire_str publisher, uint64_t seq)
{
	pro_mp_enc e;

	if (!hdr_ok(h) || !text_ok(topic, PRO_WIRE_TOPIC_MAX) ||
	    !text_ok(event, PRO_WIRE_EVENT_MAX) || !name_ok(publisher) ||
	    (len > 0 && payload == NULL)) {
		return PL_EINVAL;
	}
	enc_begin(&e, out, PRO_WIRE_BROADCAST, h, 5);
	pro_mp_pack_str(&e.pk, topic);
	pro_mp_pack_str(&e.pk, event);
	pro_mp_pack_bin(&e.pk, payload, len);
	pro_mp_pack_str(&e.pk, publisher);
	msgpack_pack_uint64(&e.pk, seq);
	return enc_end(&e);
}

int
pro_wire_encode_app(pro_wire_buf *out, const pro_wire_hdr *h, uint32_t app_kind,
    const void *bytes, size_t len)
{
	pro_mp_enc e;

	if (!hdr_ok(h) || (len > 0 && bytes == NULL)) {
		return PL_EINVAL;
	}
	enc_begin(&e, out, PRO_WIRE_APP, h, 2);
	msgpack_pack_uint32(&e.pk, app_kind);
	pro_mp_pack_bin(&e.pk, bytes, len);
	return enc_end(&e);
}

/* ---- decoder ---- */

static bool
get_name(const msgpack_object *o, pro_wire_str *out)
{
	return pro_mp_str(o, out) && name_ok(*out);
}

static int
decode_hdr(const msgpack_object *f, pro_wire_msg *m, msgpack_zone *z)
{
	pro_wire_hdr *h = &m->hdr;
	pro_wire_str *skip = NULL;
	uint32_t n;

	if (!get_name(&f[2], &h->sender) ||
	    !pro_mp_uint(&f[3], UINT64_MAX, &h->incarnation) ||
	    !pro_mp_uint(&f[4], UINT64_MAX, &h->start_id) ||
	    !pro_mp_uint(&f[5], UINT64_MAX, &h->seq)) {
		return PL_EPROTO;
	}
	if (f[6].type == MSGPACK_OBJECT_NIL) {
		h->dest.ptr = NULL;
		h->dest.len = 0;
	} else if (!get_name(&f[6], &h->dest)) {
		return PL_EPROTO;
	}
	if (f[7].type != MSGPACK_OBJECT_ARRAY ||
	    f[7].via.array.size > PRO_WIRE_SKIP_MAX) {
		return PL_EPROTO;
	}
	n = f[7].via.array.size;
	if (n > 0) {
		skip = msgpack_zone_malloc(z, n * sizeof(*skip));
		if (skip == NULL) {
			return PL_ENOMEM;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (!get_name(&f[7].via.array.ptr[i], &skip[i])) {
				return PL_EPROTO;
			}
		}
	}
	h->skip = skip;
	h->n_skip = n;
	return PL_OK;
}

static int
decode_digest(const msgpack_object *body, uint32_t nbody, pro_wire_msg *m,
    msgpack_zone *z)
{
	const msgpack_object *arr;
	pro_wire_member *mem = NULL;
	uint32_t n;

	if (nbody < 1 || body[0].type != MSGPACK_OBJECT_ARRAY ||
	    body[0].via.array.size > PRO_WIRE_DIGEST_MAX) {
		return PL_EPROTO;
	}
	n = body[0].via.array.size;
	arr = body[0].via.array.ptr;
	if (n > 0 && (mem = msgpack_zone_malloc(z, n * sizeof(*mem))) == NULL) {
		return PL_ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *e;
		uint64_t st;

		if (arr[i].type != MSGPACK_OBJECT_ARRAY ||
		    arr[i].via.array.size < 5) {
			return PL_EPROTO;
		}
		e = arr[i].via.array.ptr;
		if (!get_name(&e[0], &mem[i].name) ||
		    !pro_mp_str(&e[1], &mem[i].addr) || !addr_ok(mem[i].addr) ||
		    !pro_mp_uint(&e[2], PRO_WIRE_LEFT, &st) ||
		    !pro_mp_uint(&e[3], UINT64_MAX, &mem[i].incarnation) ||
		    !pro_mp_uint(&e[4], UINT64_MAX, &mem[i].start_id)) {
			return PL_EPROTO;
		}
		mem[i].direct = pro_wire_cstr("");
		if (arr[i].via.array.size > 5 &&
		    (!pro_mp_str(&e[5], &mem[i].direct) ||
			!addr_ok(mem[i].direct))) {
			return PL_EPROTO;
		}
		mem[i].status = (uint8_t)st;
	}
	m->u.digest.members = mem;
	m->u.digest.n = n;
	return PL_OK;
}

static int
decode_body(const msgpack_object *body, uint32_t nbody, pro_wire_msg *m,
    msgpack_zone *z)
{
	uint64_t v;

	switch (m->kind) {
	case PRO_WIRE_PING:
	case PRO_WIRE_PING_ACK: return decode_digest(body, nbody, m, z);
	case PRO_WIRE_LEAVE: return PL_OK;
	case PRO_WIRE_BROADCAST:
		if (nbody < 5 || !pro_mp_str(&body[0], &m->u.broadcast.topic) ||
		    !text_ok(m->u.broadcast.topic, PRO_WIRE_TOPIC_MAX) ||
		    !pro_mp_str(&body[1], &m->u.broadcast.event) ||
		    !text_ok(m->u.broadcast.event, PRO_WIRE_EVENT_MAX) ||
		    !pro_mp_bytes(&body[2], &m->u.broadcast.payload) ||
		    !get_name(&body[3], &m->u.broadcast.publisher) ||
		    !pro_mp_uint(&body[4], UINT64_MAX, &m->u.broadcast.seq)) {
			return PL_EPROTO;
		}
		return PL_OK;
	case PRO_WIRE_APP:
		if (nbody < 2 || !pro_mp_uint(&body[0], UINT32_MAX, &v) ||
		    !pro_mp_bytes(&body[1], &m->u.app.bytes)) {
			return PL_EPROTO;
		}
		m->u.app.app_kind = (uint32_t)v;
		return PL_OK;
	default: m->skip = PRO_WIRE_SKIP_KIND; return PL_OK;
	}
}

int
pro_wire_decode(const void *buf, size_t len, size_t *used, pro_wire_msg *out)
{
	msgpack_zone *z = NULL;
	msgpack_object root;
	const msgpack_object *f;
	size_t off = 0;
	uint32_t n;
	int rc = PL_EPROTO;

	memset(out, 0, sizeof(*out));
	*used = 0;
	if (buf == NULL || len == 0 ||
	    !pro_mp_scan(buf, len, SCAN_MAX_OBJECTS, SCAN_MAX_DEPTH, &len)) {
		return PL_EPROTO;
	}
	if ((z = msgpack_zone_new(1024)) == NULL) {
		return PL_ENOMEM;
	}
	switch (msgpack_unpack(buf, len, &off, z, &root)) {
	case MSGPACK_UNPACK_SUCCESS: break;
	case MSGPACK_UNPACK_NOMEM_ERROR: rc = PL_ENOMEM; goto fail;
	default: goto fail;
	}
	if (off != len || root.type != MSGPACK_OBJECT_ARRAY ||
	    root.via.array.size < 2) {
		goto fail;
	}
	f = root.via.array.ptr;
	n = root.via.array.size;
	if (!pro_mp_uint(&f[0], UINT64_MAX, &out->version) ||
	    out->version == 0 || !pro_mp_uint(&f[1], UINT64_MAX, &out->kind)) {
		goto fail;
	}
	out->zone_ = z;
	*used = len;
	if (out->version > PRO_WIRE_VERSION) {
		/* A newer node may have changed everything after the version. */
		out->skip = PRO_WIRE_SKIP_VERSION;
		return PL_OK;
	}
	if (n < HDR_FIELDS || (rc = decode_hdr(f, out, z)) != PL_OK ||
	    (rc = decode_body(f + HDR_FIELDS, n - HDR_FIELDS, out, z)) !=
		PL_OK) {
		rc = rc == PL_OK ? PL_EPROTO : rc;
		goto fail;
	}
	return PL_OK;

fail:
	msgpack_zone_free(z);
	memset(out, 0, sizeof(*out));
	*used = 0;
	return rc;
}

void
pro_wire_msg_release(pro_wire_msg *m)
{
	if (m->zone_ != NULL) {
		msgpack_zone_free(m->zone_);
	}
	memset(m, 0, sizeof(*m));
}

/* ---- addressed path ---- */

int
pro_wire_encode_request(pro_wire_buf *out, pro_wire_str sender,
    uint32_t app_kind, const void *bytes, size_t len)
{
	pro_mp_enc e;

	if (!name_ok(sender) || (len > 0 && bytes == NULL)) {
		return PL_EINVAL;
	}
	pro_mp_enc_begin(&e, out);
	msgpack_pack_array(&e.pk, 4);
	msgpack_pack_uint64(&e.pk, PRO_WIRE_VERSION);
	pro_mp_pack_str(&e.pk, sender);
	msgpack_pack_uint32(&e.pk, app_kind);
	pro_mp_pack_bin(&e.pk, bytes, len);
	return pro_mp_enc_end(&e);
}

int
pro_wire_encode_reply(
    pro_wire_buf *out, uint32_t status, const void *bytes, size_t len)
{
	pro_mp_enc e;

	if (len > 0 && bytes == NULL) {
		return PL_EINVAL;
	}
	pro_mp_enc_begin(&e, out);
	msgpack_pack_array(&e.pk, 3);
	msgpack_pack_uint64(&e.pk, PRO_WIRE_VERSION);
	msgpack_pack_uint32(&e.pk, status);
	pro_mp_pack_bin(&e.pk, bytes, len);
	return pro_mp_enc_end(&e);
}

/* Unpacks one small array of at least n fields whose first is a version
 * this build reads; the elements stay in z. */
static int
unpack_envelope(const void *buf, size_t len, msgpack_zone *z, uint32_t n,
    const msgpack_object **f)
{
	msgpack_object root;
	uint64_t version;
	size_t off = 0, end;

	if (buf == NULL || len == 0 || !pro_mp_scan(buf, len, 16, 3, &end) ||
	    end != len ||
	    msgpack_unpack(buf, len, &off, z, &root) !=
		MSGPACK_UNPACK_SUCCESS ||
	    off != len || root.type != MSGPACK_OBJECT_ARRAY ||
	    root.via.array.size < n ||
	    !pro_mp_uint(&root.via.array.ptr[0], UINT64_MAX, &version) ||
	    version == 0 || version > PRO_WIRE_VERSION) {
		return PL_EPROTO;
	}
	*f = root.via.array.ptr;
	return PL_OK;
}

int
pro_wire_decode_request(const void *buf, size_t len, pro_wire_str *sender,
    uint32_t *app_kind, pro_wire_str *bytes)
{
	msgpack_zone z;
	const msgpack_object *f;
	uint64_t k;
	int rc = PL_EPROTO;

	if (!msgpack_zone_init(&z, 256)) {
		return PL_ENOMEM;
	}
	if (unpack_envelope(buf, len, &z, 4, &f) == PL_OK &&
	    get_name(&f[1], sender) && pro_mp_uint(&f[2], UINT32_MAX, &k) &&
	    pro_mp_bytes(&f[3], bytes)) {
		*app_kind = (uint32_t)k;
		rc = PL_OK;
	}
	msgpack_zone_destroy(&z);
	return rc;
}

int
pro_wire_decode_reply(
    const void *buf, size_t len, uint32_t *status, pro_wire_str *bytes)
{
	msgpack_zone z;
	const msgpack_object *f;
	uint64_t st;
	int rc = PL_EPROTO;

	if (!msgpack_zone_init(&z, 256)) {
		return PL_ENOMEM;
	}
	if (unpack_envelope(buf, len, &z, 3, &f) == PL_OK &&
	    pro_mp_uint(&f[1], UINT32_MAX, &st) && pro_mp_bytes(&f[2], bytes)) {
		*status = (uint32_t)st;
		rc = PL_OK;
	}
	msgpack_zone_destroy(&z);
	return rc;
}

const char *
pro_wire_kind_name(uint64_t kind)
{
	switch (kind) {
	case PRO_WIRE_PING: return "ping";
	case PRO_WIRE_PING_ACK: return "ping-ack";
	case PRO_WIRE_LEAVE: return "leave";
	case PRO_WIRE_BROADCAST: return "broadcast";
	case PRO_WIRE_APP: return "app";
	default: return "unknown";
	}
}
