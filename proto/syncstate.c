/* SPDX-License-Identifier: Apache-2.0 */
/* msgpack codec of the Firebase sync state (see syncstate.h). */
#include "proto/syncstate.h"

#include "common/err.h"
#include "proto/mp.h"

#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#define MARK_FIELDS 3
#define PARKED_FIELDS 6

static bool
origin_ok(const char *s)
{
	size_t n = s ? strnlen(s, PRO_SYNC_ORIGIN_MAX + 1) : 0;

	return n >= 1 && n <= PRO_SYNC_ORIGIN_MAX;
}

/* Packs entry i of v; PL_EINVAL for a field out of bounds. Write
 * failures are caught once, by pro_mp_enc_end. */
typedef int (*pack_fn)(msgpack_packer *pk, const void *v, size_t i);

static int
pack_mark(msgpack_packer *pk, const void *arg, size_t i)
{
	const pro_sync_mark *m = (const pro_sync_mark *)arg + i;

	if (!origin_ok(m->origin)) {
		return PL_EINVAL;
	}
	msgpack_pack_array(pk, MARK_FIELDS);
	pro_mp_pack_str(pk, pro_wire_cstr(m->origin));
	msgpack_pack_uint64(pk, m->synced);
	msgpack_pack_uint64(pk, m->sent);
	return PL_OK;
}

static int
pack_parked(msgpack_packer *pk, const void *arg, size_t i)
{
	const pro_sync_parked *p = (const pro_sync_parked *)arg + i;
	const char *reason = p->reason ? p->reason : "";

	if (!origin_ok(p->origin) || p->seq == 0 || p->gen == 0 ||
	    p->state < PRO_SYNC_PARKED || p->state > PRO_SYNC_DONE ||
	    strlen(reason) > PRO_SYNC_REASON_MAX) {
		return PL_EINVAL;
	}
	msgpack_pack_array(pk, PARKED_FIELDS);
	pro_mp_pack_str(pk, pro_wire_cstr(p->origin));
	msgpack_pack_uint64(pk, p->seq);
	msgpack_pack_uint64(pk, p->gen);
	msgpack_pack_uint32(pk, p->state);
	msgpack_pack_uint32(pk, p->status);
	pro_mp_pack_str(pk, pro_wire_cstr(reason));
	return PL_OK;
}

/* [version, [entries...]] into a malloc'ed buffer. */
static int
encode(const void *v, size_t n, pack_fn fn, char **buf, size_t *len)
{
	pro_wire_buf out = { 0 };
	pro_mp_enc e;
	int rc = PL_OK;

	*buf = NULL;
	*len = 0;
	if (n > PRO_SYNC_MAX_ENTRIES) {
		return PL_EINVAL;
	}
	pro_mp_enc_begin(&e, &out);
	msgpack_pack_array(&e.pk, 2);
	msgpack_pack_uint32(&e.pk, PRO_SYNC_VERSION);
	msgpack_pack_array(&e.pk, (uint32_t)n);
	for (size_t i = 0; i < n && rc == PL_OK; i++) {
		rc = fn(&e.pk, v, i);
	}
	if (rc == PL_OK) {
		rc = pro_mp_enc_end(&e);
	}
	if (rc != PL_OK || out.data == NULL) {
		pro_wire_buf_free(&out);
		return rc != PL_OK ? rc : PL_ENOMEM;
	}
	*buf = out.data; /* the buffer's malloc'ed bytes become the caller's */
	*len = out.len;
	return PL_OK;
}

int
pro_sync_marks_encode(const pro_sync_mark *v, size_t n, char **buf, size_t *len)
{
	return encode(v, n, pack_mark, buf, len);
}

int
pro_sync_parked_encode(
    const pro_sync_parked *v, size_t n, char **buf, size_t *len)
{
	return encode(v, n, pack_parked, buf, len);
}

/* Copies a str of 1..max bytes without NUL into out (max + 1 bytes);
 * min 0 allows the empty string. */
static bool
get_str(const msgpack_object *o, size_t min, size_t max, char *out)
{
	pro_wire_str s;

	if (!pro_mp_str(o, &s) || s.len < min || s.len > max ||
	    memchr(s.ptr, '\0', s.len) != NULL) {
		return false;
	}
	memcpy(out, s.ptr, s.len);
	out[s.len] = '\0';
	return true;
}

typedef struct entry {
	char origin[PRO_SYNC_ORIGIN_MAX + 1];
	char reason[PRO_SYNC_REASON_MAX + 1];
	pro_sync_mark m;
	pro_sync_parked p;
} entry;

static bool
get_mark(const msgpack_object *o, entry *e)
{
	const msgpack_object *f;

	if (o->type != MSGPACK_OBJECT_ARRAY ||
	    o->via.array.size < MARK_FIELDS) {
		return false;
	}
	f = o->via.array.ptr;
	e->m.origin = e->origin;
	return get_str(&f[0], 1, PRO_SYNC_ORIGIN_MAX, e->origin) &&
	    pro_mp_uint(&f[1], UINT64_MAX, &e->m.synced) &&
	    pro_mp_uint(&f[2], UINT64_MAX, &e->m.sent);
}

static bool
get_parked(const msgpack_object *o, entry *e)
{
	const msgpack_object *f;
	uint64_t state, status;

	if (o->type != MSGPACK_OBJECT_ARRAY ||
	    o->via.array.size < PARKED_FIELDS) {
		return false;
	}
	f = o->via.array.ptr;
	e->p.origin = e->origin;
	e->p.reason = e->reason;
	if (!get_str(&f[0], 1, PRO_SYNC_ORIGIN_MAX, e->origin) ||
	    !pro_mp_uint(&f[1], UINT64_MAX, &e->p.seq) ||
	    !pro_mp_uint(&f[2], UINT64_MAX, &e->p.gen) ||
	    !pro_mp_uint(&f[3], PRO_SYNC_DONE, &state) ||
	    !pro_mp_uint(&f[4], 999, &status) ||
	    !get_str(&f[5], 0, PRO_SYNC_REASON_MAX, e->reason)) {
		return false;
	}
	e->p.state = (uint32_t)state;
	e->p.status = (uint32_t)status;
	return e->p.seq > 0 && e->p.gen > 0 && state >= PRO_SYNC_PARKED;
}

typedef struct visit {
	bool parked;
	void (*mark_fn)(void *arg, const pro_sync_mark *m);
	void (*parked_fn)(void *arg, const pro_sync_parked *p);
	void *arg;
} visit;

/* Unpacks, checks every entry, then calls back for each. */
static int
decode(const void *buf, size_t len, const visit *v)
{
	msgpack_unpacked up;
	const msgpack_object *a, *list;
	size_t end = 0;
	uint64_t version;
	entry e;
	int rc = PL_EPROTO;

	if (buf == NULL || len == 0) {
		return PL_EPROTO;
	}
	if (len > PRO_SYNC_MAX_BYTES) {
		return PL_ETOOBIG;
	}
	/* Bounds what msgpack-c allocates before it unpacks peer input. */
	if (!pro_mp_scan(
		buf, len, 2 + (size_t)PRO_SYNC_MAX_ENTRIES * 8, 4, &end) ||
	    end != len) {
		return PL_EPROTO;
	}
	if ((rc = pro_mp_unpack_one(&up, buf, len)) != PL_OK) {
		goto out;
	}
	rc = PL_EPROTO;
	if (up.data.type != MSGPACK_OBJECT_ARRAY ||
	    up.data.via.array.size < 2) {
		goto out;
	}
	a = up.data.via.array.ptr;
	list = &a[1];
	if (!pro_mp_uint(&a[0], UINT32_MAX, &version) ||
	    version != PRO_SYNC_VERSION || list->type != MSGPACK_OBJECT_ARRAY ||
	    list->via.array.size > PRO_SYNC_MAX_ENTRIES) {
		goto out;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < list->via.array.size; i++) {
			const msgpack_object *o = &list->via.array.ptr[i];
			if (!(v->parked ? get_parked(o, &e)
					: get_mark(o, &e))) {
				goto out;
			}
			if (pass == 1 && v->parked) {
				v->parked_fn(v->arg, &e.p);
			} else if (pass == 1) {
				v->mark_fn(v->arg, &e.m);
			}
		}
	}
	rc = PL_OK;
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

int
pro_sync_marks_decode(const void *buf, size_t len,
    void (*fn)(void *arg, const pro_sync_mark *m), void *arg)
{
	visit v = { false, fn, NULL, arg };

	return decode(buf, len, &v);
}

int
pro_sync_parked_decode(const void *buf, size_t len,
    void (*fn)(void *arg, const pro_sync_parked *p), void *arg)
{
	visit v = { true, NULL, fn, arg };

	return decode(buf, len, &v);
}
