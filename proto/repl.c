/* SPDX-License-Identifier: Apache-2.0 */
/* Encode/decode pairs for the comment replication messages (see repl.h). */
#include "proto/repl.h"

#include <msgpack.h>
#include <string.h>

#include "common/err.h"
#include "proto/mp.h"

/* A full batch is 4,096 comments of 7 objects each. */
#define SCAN_MAX_OBJECTS (8 + PRO_REPL_VEC_MAX * 4)
#define SCAN_MAX_DEPTH 4
#define COMMENT_FIELDS 6

/* ---- field checks shared by encoders and decoder ---- */

bool
pro_repl_origin_ok(pro_wire_str s)
{
	if (s.ptr == NULL || s.len == 0 || s.len > PRO_REPL_ORIGIN_MAX) {
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
id_ok(pro_wire_str s)
{
	if (s.ptr == NULL || s.len != PRO_REPL_ID_LEN) {
		return false;
	}
	for (size_t i = 0; i < s.len; i++) {
		char ch = s.ptr[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
			return false;
		}
	}
	return true;
}

static bool
text_ok(pro_wire_str s, size_t min, size_t max)
{
	return s.ptr != NULL && s.len >= min && s.len <= max &&
	    memchr(s.ptr, 0, s.len) == NULL;
}

static bool
comment_ok(const pro_repl_comment *c)
{
	return c->seq >= 1 && c->inserted_at >= 0 && id_ok(c->id) &&
	    text_ok(c->video_id, 1, PRO_REPL_VIDEO_MAX) &&
	    text_ok(c->user_id, 1, PRO_REPL_USER_MAX) &&
	    text_ok(c->content, 1, PRO_REPL_CONTENT_MAX);
}

/* ---- encoders ---- */

static void
begin(pro_mp_enc *e, pro_wire_buf *out, pro_repl_type type, size_t fields)
{
	pro_mp_enc_begin(e, out);
	msgpack_pack_array(&e->pk, 2 + fields);
	msgpack_pack_uint64(&e->pk, PRO_REPL_VERSION);
	msgpack_pack_uint64(&e->pk, type);
}

static int
pack_comments(pro_mp_enc *e, const pro_repl_comment *c, size_t n)
{
	msgpack_pack_array(&e->pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_array(&e->pk, COMMENT_FIELDS);
		msgpack_pack_uint64(&e->pk, c[i].seq);
		pro_mp_pack_str(&e->pk, c[i].id);
		pro_mp_pack_str(&e->pk, c[i].video_id);
		pro_mp_pack_str(&e->pk, c[i].user_id);
		pro_mp_pack_str(&e->pk, c[i].content);
		msgpack_pack_uint64(&e->pk, (uint64_t)c[i].inserted_at);
	}
	return pro_mp_enc_end(e);
}

static bool
comments_ok(const pro_repl_comment *c, size_t n)
{
	if (n > PRO_REPL_BATCH_MAX || (n > 0 && c == NULL)) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!comment_ok(&c[i])) {
			return false;
		}
	}
	return true;
}

int
pro_repl_encode_vec(pro_wire_buf *out, const pro_repl_mark *marks, size_t n)
{
	pro_mp_enc e;

	if (n > PRO_REPL_VEC_MAX || (n > 0 && marks == NULL)) {
		return PL_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!pro_repl_origin_ok(marks[i].origin) ||
		    marks[i].cw > marks[i].hw) {
			return PL_EINVAL;
		}
	}
	begin(&e, out, PRO_REPL_VEC, 1);
	msgpack_pack_array(&e.pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_array(&e.pk, 3);
		pro_mp_pack_str(&e.pk, marks[i].origin);
		msgpack_pack_uint64(&e.pk, marks[i].cw);
		msgpack_pack_uint64(&e.pk, marks[i].hw);
	}
	return pro_mp_enc_end(&e);
}

int
pro_repl_encode_comments(pro_wire_buf *out, pro_wire_str origin, bool ack,
    const pro_repl_comment *c, size_t n)
{
	pro_mp_enc e;

	if (!pro_repl_origin_ok(origin) || !comments_ok(c, n)) {
		return PL_EINVAL;
	}
	begin(&e, out, PRO_REPL_COMMENTS, 3);
	pro_mp_pack_str(&e.pk, origin);
	if (ack) {
		msgpack_pack_true(&e.pk);
	} else {
		msgpack_pack_false(&e.pk);
	}
	return pack_comments(&e, c, n);
}

int
pro_repl_encode_ack(
    pro_wire_buf *out, pro_wire_str origin, const uint64_t *seqs, size_t n)
{
	pro_mp_enc e;

	if (!pro_repl_origin_ok(origin) || n > PRO_REPL_BATCH_MAX ||
	    (n > 0 && seqs == NULL)) {
		return PL_EINVAL;
	}
	begin(&e, out, PRO_REPL_ACK, 2);
	pro_mp_pack_str(&e.pk, origin);
	msgpack_pack_array(&e.pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_uint64(&e.pk, seqs[i]);
	}
	return pro_mp_enc_end(&e);
}

int
pro_repl_encode_pull(
    pro_wire_buf *out, pro_wire_str origin, uint64_t after, uint64_t limit)
{
	pro_mp_enc e;

	if (!pro_repl_origin_ok(origin) || limit == 0 ||
	    limit > PRO_REPL_BATCH_MAX) {
		return PL_EINVAL;
	}
	begin(&e, out, PRO_REPL_PULL, 3);
	pro_mp_pack_str(&e.pk, origin);
	msgpack_pack_uint64(&e.pk, after);
	msgpack_pack_uint64(&e.pk, limit);
	return pro_mp_enc_end(&e);
}

int
pro_repl_encode_chunk(pro_wire_buf *out, pro_wire_str origin, uint64_t through,
    bool more, const pro_repl_comment *c, size_t n)
{
	pro_mp_enc e;

	if (!pro_repl_origin_ok(origin) || !comments_ok(c, n)) {
		return PL_EINVAL;
	}
	begin(&e, out, PRO_REPL_CHUNK, 4);
	pro_mp_pack_str(&e.pk, origin);
	msgpack_pack_uint64(&e.pk, through);
	if (more) {
		msgpack_pack_true(&e.pk);
	} else {
		msgpack_pack_false(&e.pk);
	}
	return pack_comments(&e, c, n);
}

/* ---- decoder ---- */

static bool
get_bool(const msgpack_object *o, bool *out)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		return false;
	}
	*out = o->via.boolean;
	return true;
}

static bool
get_origin(const msgpack_object *o, pro_wire_str *out)
{
	return pro_mp_str(o, out) && pro_repl_origin_ok(*out);
}

static bool
get_array(const msgpack_object *o, size_t max, const msgpack_object **items,
    size_t *n)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max) {
		return false;
	}
	*items = o->via.array.ptr;
	*n = o->via.array.size;
	return true;
}

static int
decode_comments(const msgpack_object *o, msgpack_zone *z, pro_repl_msg *m)
{
	const msgpack_object *items;
	pro_repl_comment *c;
	uint64_t at;
	size_t n;

	if (!get_array(o, PRO_REPL_BATCH_MAX, &items, &n)) {
		return PL_EPROTO;
	}
	if (n == 0) {
		return PL_OK;
	}
	if ((c = msgpack_zone_malloc(z, n * sizeof(*c))) == NULL) {
		return PL_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *f;
		size_t nf;

		if (!get_array(&items[i], 64, &f, &nf) || nf < COMMENT_FIELDS ||
		    !pro_mp_uint(&f[0], UINT64_MAX, &c[i].seq) ||
		    !pro_mp_str(&f[1], &c[i].id) ||
		    !pro_mp_str(&f[2], &c[i].video_id) ||
		    !pro_mp_str(&f[3], &c[i].user_id) ||
		    !pro_mp_str(&f[4], &c[i].content) ||
		    !pro_mp_uint(&f[5], INT64_MAX, &at)) {
			return PL_EPROTO;
		}
		c[i].inserted_at = (int64_t)at;
		if (!comment_ok(&c[i])) {
			return PL_EPROTO;
		}
	}
	m->comments = c;
	m->ncomments = n;
	return PL_OK;
}

static int
decode_vec(const msgpack_object *o, msgpack_zone *z, pro_repl_msg *m)
{
	const msgpack_object *items;
	pro_repl_mark *mk;
	size_t n;

	if (!get_array(o, PRO_REPL_VEC_MAX, &items, &n)) {
		return PL_EPROTO;
	}
	if (n == 0) {
		return PL_OK;
	}
	if ((mk = msgpack_zone_malloc(z, n * sizeof(*mk))) == NULL) {
		return PL_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *f;
		size_t nf;

		if (!get_array(&items[i], 64, &f, &nf) || nf < 3 ||
		    !get_origin(&f[0], &mk[i].origin) ||
		    !pro_mp_uint(&f[1], UINT64_MAX, &mk[i].cw) ||
		    !pro_mp_uint(&f[2], UINT64_MAX, &mk[i].hw) ||
		    mk[i].cw > mk[i].hw) {
			return PL_EPROTO;
		}
	}
	m->marks = mk;
	m->nmarks = n;
	return PL_OK;
}

static int
decode_seqs(const msgpack_object *o, msgpack_zone *z, pro_repl_msg *m)
{
	const msgpack_object *items;
	uint64_t *s;
	size_t n;

	if (!get_array(o, PRO_REPL_BATCH_MAX, &items, &n)) {
		return PL_EPROTO;
	}
	if (n == 0) {
		return PL_OK;
	}
	if ((s = msgpack_zone_malloc(z, n * sizeof(*s))) == NULL) {
		return PL_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!pro_mp_uint(&items[i], UINT64_MAX, &s[i]) || s[i] == 0) {
			return PL_EPROTO;
		}
	}
	m->seqs = s;
	m->nseqs = n;
	return PL_OK;
}

/* f[0..n) are the fields after version and type. */
static int
decode_body(const msgpack_object *f, size_t n, msgpack_zone *z, pro_repl_msg *m)
{
	switch (m->type) {
	case PRO_REPL_VEC: return n < 1 ? PL_EPROTO : decode_vec(&f[0], z, m);
	case PRO_REPL_COMMENTS:
		if (n < 3 || !get_origin(&f[0], &m->origin) ||
		    !get_bool(&f[1], &m->flag)) {
			return PL_EPROTO;
		}
		return decode_comments(&f[2], z, m);
	case PRO_REPL_ACK:
		if (n < 2 || !get_origin(&f[0], &m->origin)) {
			return PL_EPROTO;
		}
		return decode_seqs(&f[1], z, m);
	case PRO_REPL_PULL:
		if (n < 3 || !get_origin(&f[0], &m->origin) ||
		    !pro_mp_uint(&f[1], UINT64_MAX, &m->after) ||
		    !pro_mp_uint(&f[2], PRO_REPL_BATCH_MAX, &m->limit) ||
		    m->limit == 0) {
			return PL_EPROTO;
		}
		return PL_OK;
	case PRO_REPL_CHUNK:
		if (n < 4 || !get_origin(&f[0], &m->origin) ||
		    !pro_mp_uint(&f[1], UINT64_MAX, &m->through) ||
		    !get_bool(&f[2], &m->flag)) {
			return PL_EPROTO;
		}
		return decode_comments(&f[3], z, m);
	default: return PL_ENOTFOUND;
	}
}

int
pro_repl_decode(const void *buf, size_t len, pro_repl_msg *out)
{
	msgpack_zone *z = NULL;
	msgpack_object root;
	size_t off = 0, end;
	uint64_t version, type;
	int rc = PL_EPROTO;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len == 0 ||
	    !pro_mp_scan(buf, len, SCAN_MAX_OBJECTS, SCAN_MAX_DEPTH, &end) ||
	    end != len) {
		return PL_EPROTO;
	}
	if ((z = msgpack_zone_new(4096)) == NULL) {
		return PL_ENOMEM;
	}
	switch (msgpack_unpack(buf, len, &off, z, &root)) {
	case MSGPACK_UNPACK_SUCCESS: break;
	case MSGPACK_UNPACK_NOMEM_ERROR: rc = PL_ENOMEM; goto fail;
	default: goto fail;
	}
	if (off != len || root.type != MSGPACK_OBJECT_ARRAY ||
	    root.via.array.size < 2 ||
	    !pro_mp_uint(&root.via.array.ptr[0], UINT64_MAX, &version) ||
	    version == 0 ||
	    !pro_mp_uint(&root.via.array.ptr[1], UINT32_MAX, &type)) {
		goto fail;
	}
	if (version > PRO_REPL_VERSION) {
		rc = PL_ENOTFOUND;
		goto fail;
	}
	out->type = (pro_repl_type)type;
	rc = decode_body(
	    root.via.array.ptr + 2, root.via.array.size - 2, z, out);
	if (rc != PL_OK) {
		goto fail;
	}
	out->zone_ = z;
	return PL_OK;

fail:
	msgpack_zone_free(z);
	memset(out, 0, sizeof(*out));
	return rc;
}

void
pro_repl_msg_release(pro_repl_msg *m)
{
	if (m->zone_ != NULL) {
		msgpack_zone_free(m->zone_);
	}
	memset(m, 0, sizeof(*m));
}
