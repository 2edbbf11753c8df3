/* SPDX-License-Identifier: Apache-2.0 */
/* Key and value encodings of the comment store, and the translation of
 * LMDB codes into pl_err. The value format (version 1, big-endian):
 *   u8 version | u64 inserted_at | u64 seq | u16 origin_len | u16 user_len |
 *   u32 content_len | origin | user_id | content
 * video_id and id live in the key, so they are not repeated. */
#include "storage/comments_int.h"

#include <errno.h>
#include <string.h>

#include "common/err.h"

int
sto_comments_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return (PL_OK);
	case MDB_NOTFOUND: return (PL_ENOTFOUND);
	case MDB_KEYEXIST: return (PL_EEXIST);
	case MDB_MAP_FULL:
	case MDB_DBS_FULL:
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL: return (PL_EFULL);
	case MDB_READERS_FULL: return (PL_EAGAIN);
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_DBI:
	case MDB_BAD_VALSIZE: return (PL_ECORRUPT);
	case ENOMEM: return (PL_ENOMEM);
	case EINVAL:
	case MDB_BAD_TXN:
	case MDB_BAD_RSLOT: return (PL_EINVAL);
	default:
		/* MDB_PANIC, MDB_MAP_RESIZED, MDB_TLS_FULL and errno values. */
		return (PL_EIO);
	}
}

size_t
sto_comments_ckey(char *buf, const char *video, size_t vlen, const char *id)
{
	memcpy(buf, video, vlen);
	buf[vlen] = '\0';
	memcpy(buf + vlen + 1, id, STO_COMMENT_ID_LEN);
	return (vlen + 1 + STO_COMMENT_ID_LEN);
}

void
sto_comments_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

uint64_t
sto_comments_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++) {
		v = (v << 8) | p[i];
	}
	return (v);
}

static void
put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

size_t
sto_comments_okey(char *buf, const char *origin, size_t olen, uint64_t seq)
{
	memcpy(buf, origin, olen);
	buf[olen] = '\0';
	sto_comments_put_u64((uint8_t *)buf + olen + 1, seq);
	return (olen + 1 + 8);
}

size_t
sto_comments_mkey(char *buf, const char *prefix, const char *name, size_t nlen)
{
	size_t plen = strlen(prefix);

	memcpy(buf, prefix, plen);
	buf[plen] = '\0';
	memcpy(buf + plen + 1, name, nlen);
	return (plen + 1 + nlen);
}

size_t
sto_comments_value_size(const sto_comment *c)
{
	return (STO_VALUE_HDR + strlen(c->origin) + strlen(c->user_id) +
	    strlen(c->content));
}

void
sto_comments_value_encode(uint8_t *dst, const sto_comment *c)
{
	size_t olen = strlen(c->origin);
	size_t ulen = strlen(c->user_id);
	size_t clen = strlen(c->content);

	/* Lengths were bounded by the STO_*_MAX checks at enqueue time. */
	dst[0] = STO_VALUE_VERSION;
	sto_comments_put_u64(dst + 1, (uint64_t)c->inserted_at);
	sto_comments_put_u64(dst + 9, c->seq);
	put_u16(dst + 17, (uint16_t)olen);
	put_u16(dst + 19, (uint16_t)ulen);
	put_u32(dst + 21, (uint32_t)clen);
	dst += STO_VALUE_HDR;
	memcpy(dst, c->origin, olen);
	memcpy(dst + olen, c->user_id, ulen);
	memcpy(dst + olen + ulen, c->content, clen);
}

static bool
has_nul(sto_span s)
{
	return (memchr(s.p, '\0', s.n) != NULL);
}

int
sto_comments_view_decode(
    const MDB_val *key, const MDB_val *val, sto_comment_view *v)
{
	const uint8_t *p = val->mv_data;
	const char *k = key->mv_data;
	size_t olen, ulen, clen;

	if (key->mv_size < 2 + STO_COMMENT_ID_LEN ||
	    k[key->mv_size - STO_COMMENT_ID_LEN - 1] != '\0') {
		return (PL_ECORRUPT);
	}
	v->video_id.p = k;
	v->video_id.n = key->mv_size - STO_COMMENT_ID_LEN - 1;
	v->id.p = k + v->video_id.n + 1;
	v->id.n = STO_COMMENT_ID_LEN;
	if (val->mv_size < STO_VALUE_HDR || p[0] != STO_VALUE_VERSION) {
		return (PL_ECORRUPT);
	}
	v->inserted_at = (int64_t)sto_comments_get_u64(p + 1);
	v->seq = sto_comments_get_u64(p + 9);
	olen = ((size_t)p[17] << 8) | p[18];
	ulen = ((size_t)p[19] << 8) | p[20];
	clen = ((size_t)p[21] << 24) | ((size_t)p[22] << 16) |
	    ((size_t)p[23] << 8) | p[24];
	if (STO_VALUE_HDR + olen + ulen + clen != val->mv_size) {
		return (PL_ECORRUPT);
	}
	p += STO_VALUE_HDR;
	v->origin.p = (const char *)p;
	v->origin.n = olen;
	v->user_id.p = (const char *)p + olen;
	v->user_id.n = ulen;
	v->content.p = (const char *)p + olen + ulen;
	v->content.n = clen;
	if (has_nul(v->video_id) || has_nul(v->id) || has_nul(v->origin) ||
	    has_nul(v->user_id) || has_nul(v->content)) {
		return (PL_ECORRUPT);
	}
	return (PL_OK);
}

int
sto_comments_meta_get_u64(
    MDB_txn *txn, MDB_dbi db, const char *prefix, const char *name, uint64_t *v)
{
	char kb[STO_MKEY_MAX];
	MDB_val k, d;
	int rc;

	k.mv_data = kb;
	k.mv_size = sto_comments_mkey(kb, prefix, name, strlen(name));
	rc = mdb_get(txn, db, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*v = 0;
		return (0);
	}
	if (rc == 0 && d.mv_size != 8) {
		return (MDB_CORRUPTED);
	}
	if (rc == 0) {
		*v = sto_comments_get_u64(d.mv_data);
	}
	return (rc);
}

int
sto_comments_meta_put_u64(MDB_txn *txn, MDB_dbi db, const char *prefix,
    const char *name, size_t nlen, uint64_t v)
{
	char kb[STO_MKEY_MAX];
	uint8_t vb[8];
	MDB_val k, d;

	k.mv_data = kb;
	k.mv_size = sto_comments_mkey(kb, prefix, name, nlen);
	sto_comments_put_u64(vb, v);
	d.mv_data = vb;
	d.mv_size = 8;
	return (mdb_put(txn, db, &k, &d, 0));
}
