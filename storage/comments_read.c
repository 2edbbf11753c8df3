/* SPDX-License-Identifier: Apache-2.0 */
/* The read side of the comment store: history queries per video and the
 * per-origin walks replication uses. Each query is one read transaction and
 * one cursor walk inside a single video's (or origin's) key range; results
 * are copied into one allocation before the transaction ends. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "storage/comments_int.h"

/* Read txns hold the map lock shared so the writer can resize safely. */
static int
read_begin(sto_comments *s, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&s->maplock);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn)) != 0) {
		pthread_rwlock_unlock(&s->maplock);
		LOG_ERR("STO-READ", "read txn: %s", mdb_strerror(rc));
		return (sto_comments_err(rc));
	}
	return (PL_OK);
}

static void
read_end(sto_comments *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->maplock);
}

static size_t
view_bytes(const sto_comment_view *v)
{
	return (v->video_id.n + v->user_id.n + v->content.n + v->origin.n + 4);
}

static const char *
put_span(char **p, sto_span sp)
{
	char *start = *p;

	memcpy(start, sp.p, sp.n);
	start[sp.n] = '\0';
	*p += sp.n + 1;
	return (start);
}

/* Copies views (reversed when they were collected newest first) into one
 * allocation: the list header, the items, then their strings. */
static int
build_list(const sto_comment_view *v, size_t n, bool reverse, bool has_more,
    sto_comment_list **out)
{
	sto_comment_list *l;
	size_t strings = 0;
	char *p;

	for (size_t i = 0; i < n; i++) {
		strings += view_bytes(&v[i]);
	}
	l = malloc(sizeof(*l) + n * sizeof(sto_comment) + strings);
	if (l == NULL) {
		return (PL_ENOMEM);
	}
	l->items = (sto_comment *)(void *)(l + 1);
	l->count = n;
	l->has_more = has_more;
	p = (char *)(l->items + n);
	for (size_t i = 0; i < n; i++) {
		const sto_comment_view *src = &v[reverse ? n - 1 - i : i];
		sto_comment *c = &l->items[i];

		memcpy(c->id, src->id.p, STO_COMMENT_ID_LEN);
		c->id[STO_COMMENT_ID_LEN] = '\0';
		c->video_id = put_span(&p, src->video_id);
		c->user_id = put_span(&p, src->user_id);
		c->content = put_span(&p, src->content);
		c->origin = put_span(&p, src->origin);
		c->inserted_at = src->inserted_at;
		c->seq = src->seq;
	}
	*out = l;
	return (PL_OK);
}

void
sto_comment_list_free(sto_comment_list *l)
{
	free(l);
}

static bool
in_video(const MDB_val *k, const char *video, size_t vlen)
{
	const char *p = k->mv_data;

	return (k->mv_size == vlen + 1 + STO_COMMENT_ID_LEN &&
	    memcmp(p, video, vlen) == 0 && p[vlen] == '\0');
}

static int
decode(const MDB_val *k, const MDB_val *d, sto_comment_view *v)
{
	if (sto_comments_view_decode(k, d, v) != PL_OK) {
		LOG_ERR("STO-BADVALUE",
		    "unreadable comment record (key %zu "
		    "bytes, value %zu bytes)",
		    k->mv_size, d->mv_size);
		return (PL_ECORRUPT);
	}
	return (PL_OK);
}

/* The query shapes over one video's key range. */
enum walk { WALK_LATEST, WALK_BEFORE, WALK_AFTER, WALK_GET };

static int
query(sto_comments *s, const char *video, const char *id, size_t limit,
    enum walk w, sto_comment_list **out)
{
	char kb[STO_CKEY_MAX + 1];
	sto_comment_view *views = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	size_t vlen, n = 0;
	bool has_more = false, back = w == WALK_LATEST || w == WALK_BEFORE;
	int rc, err;

	*out = NULL;
	if (s == NULL || video == NULL ||
	    (vlen = strnlen(video, STO_VIDEO_ID_MAX + 1)) == 0 ||
	    vlen > STO_VIDEO_ID_MAX || limit == 0 ||
	    limit > STO_QUERY_LIMIT_MAX ||
	    (w != WALK_LATEST && !sto_comment_id_valid(id))) {
		return (PL_EINVAL);
	}
	if (w == WALK_LATEST) {
		/* Above every id of the video: ids are hex, below 0xff. */
		memcpy(kb, video, vlen);
		kb[vlen] = '\0';
		kb[vlen + 1] = (char)0xff;
		k.mv_size = vlen + 2;
	} else {
		k.mv_size = sto_comments_ckey(kb, video, vlen, id);
	}
	k.mv_data = kb;
	if ((views = malloc(limit * sizeof(*views))) == NULL) {
		return (PL_ENOMEM);
	}
	if ((err = read_begin(s, &txn)) != PL_OK) {
		goto done;
	}
	if (w == WALK_GET) {
		if ((rc = mdb_get(txn, s->db_comments, &k, &d)) == 0 &&
		    (err = decode(&k, &d, &views[0])) == PL_OK) {
			n = 1;
		}
		goto walked;
	}
	if ((rc = mdb_cursor_open(txn, s->db_comments, &cur)) != 0) {
		goto walked;
	}
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	if (back) {
		/* Step to the last key strictly below the start key. */
		if (rc == MDB_NOTFOUND) {
			rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
		} else if (rc == 0) {
			rc = mdb_cursor_get(cur, &k, &d, MDB_PREV);
		}
	} else if (rc == 0 && k.mv_size == vlen + 1 + STO_COMMENT_ID_LEN &&
	    memcmp(k.mv_data, kb, k.mv_size) == 0) {
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	while (rc == 0 && in_video(&k, video, vlen)) {
		if (n == limit) {
			has_more = true;
			break;
		}
		if ((err = decode(&k, &d, &views[n])) != PL_OK) {
			goto done;
		}
		n++;
		rc = mdb_cursor_get(cur, &k, &d, back ? MDB_PREV : MDB_NEXT);
	}
walked:
	if (err == PL_OK && rc != 0 && rc != MDB_NOTFOUND) {
		LOG_ERR("STO-READ", "comment query: %s", mdb_strerror(rc));
		err = sto_comments_err(rc);
	} else if (err == PL_OK && w == WALK_GET && rc == MDB_NOTFOUND) {
		err = PL_ENOTFOUND;
	}
	if (err == PL_OK) {
		err = build_list(views, n, back, has_more, out);
	}
done:
	if (cur != NULL) {
		mdb_cursor_close(cur);
	}
	if (txn != NULL) {
		read_end(s, txn);
	}
	free(views);
	return (err);
}

int
sto_comments_get(sto_comments *s, const char *video_id, const char *id,
    sto_comment_list **out)
{
	return (query(s, video_id, id, 1, WALK_GET, out));
}

int
sto_comments_latest(
    sto_comments *s, const char *video_id, size_t limit, sto_comment_list **out)
{
	return (query(s, video_id, NULL, limit, WALK_LATEST, out));
}

int
sto_comments_before(sto_comments *s, const char *video_id,
    const char *before_id, size_t limit, sto_comment_list **out)
{
	return (query(s, video_id, before_id, limit, WALK_BEFORE, out));
}

int
sto_comments_after(sto_comments *s, const char *video_id, const char *after_id,
    size_t limit, sto_comment_list **out)
{
	return (query(s, video_id, after_id, limit, WALK_AFTER, out));
}

/* ---- Per-origin walks ---- */

static int
meta_read(sto_comments *s, const char *prefix, const char *name, size_t max,
    uint64_t *v)
{
	MDB_txn *txn;
	size_t n;
	int rc, err;

	if (s == NULL || name == NULL || v == NULL ||
	    (n = strnlen(name, max + 1)) == 0 || n > max) {
		return (PL_EINVAL);
	}
	if ((err = read_begin(s, &txn)) != PL_OK) {
		return (err);
	}
	rc = sto_comments_meta_get_u64(txn, s->db_meta, prefix, name, v);
	read_end(s, txn);
	return (sto_comments_err(rc));
}

int
sto_comments_origin_max(sto_comments *s, const char *origin, uint64_t *seq)
{
	return (meta_read(s, "hw", origin, STO_ORIGIN_MAX, seq));
}

int
sto_comments_watermark(sto_comments *s, const char *name, uint64_t *value)
{
	return (meta_read(s, "wm", name, STO_WATERMARK_NAME_MAX, value));
}

int
sto_comments_origin_after(sto_comments *s, const char *origin,
    uint64_t after_seq, size_t limit, sto_comment_list **out)
{
	char kb[STO_OKEY_MAX];
	sto_comment_view *views = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, d, cv;
	size_t olen, n = 0;
	bool has_more = false;
	int rc = 0, err;

	*out = NULL;
	if (s == NULL || origin == NULL ||
	    (olen = strnlen(origin, STO_ORIGIN_MAX + 1)) == 0 ||
	    olen > STO_ORIGIN_MAX || limit == 0 ||
	    limit > STO_QUERY_LIMIT_MAX) {
		return (PL_EINVAL);
	}
	if (after_seq == UINT64_MAX) {
		return (build_list(NULL, 0, false, false, out));
	}
	k.mv_data = kb;
	k.mv_size = sto_comments_okey(kb, origin, olen, after_seq + 1);
	if ((views = malloc(limit * sizeof(*views))) == NULL) {
		return (PL_ENOMEM);
	}
	if ((err = read_begin(s, &txn)) != PL_OK) {
		goto done;
	}
	if ((rc = mdb_cursor_open(txn, s->db_origin, &cur)) == 0) {
		rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	}
	while (rc == 0 && k.mv_size == olen + 9 &&
	    memcmp(k.mv_data, origin, olen) == 0 &&
	    ((char *)k.mv_data)[olen] == '\0') {
		if (n == limit) {
			has_more = true;
			break;
		}
		if ((rc = mdb_get(txn, s->db_comments, &d, &cv)) != 0) {
			/* The index names a comment that is not there. */
			uint64_t seq = sto_comments_get_u64(
			    (uint8_t *)k.mv_data + olen + 1);

			LOG_ERR("STO-BADINDEX", "origin %s seq %llu: %s",
			    origin, (unsigned long long)seq, mdb_strerror(rc));
			err = PL_ECORRUPT;
			goto done;
		}
		if ((err = decode(&d, &cv, &views[n])) != PL_OK) {
			goto done;
		}
		n++;
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		LOG_ERR("STO-READ", "origin walk: %s", mdb_strerror(rc));
		err = sto_comments_err(rc);
		goto done;
	}
	err = build_list(views, n, false, has_more, out);
done:
	if (cur != NULL) {
		mdb_cursor_close(cur);
	}
	if (txn != NULL) {
		read_end(s, txn);
	}
	free(views);
	return (err);
}

/* Visits the meta `hw \0 origin` range; with v == NULL only counts. */
static int
walk_hw(sto_comments *s, MDB_txn *txn, sto_origin_vec *v, size_t *count,
    size_t *bytes)
{
	MDB_cursor *cur;
	MDB_val k = { 3, "hw" }, d;
	char *p = v != NULL ? (char *)(v->items + v->count) : NULL;
	int rc;

	*count = 0;
	*bytes = 0;
	if ((rc = mdb_cursor_open(txn, s->db_meta, &cur)) != 0) {
		return (rc);
	}
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	for (; rc == 0 && k.mv_size > 3 && memcmp(k.mv_data, "hw", 3) == 0;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		size_t nlen = k.mv_size - 3;

		if (d.mv_size != 8) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (v != NULL && *count < v->count) {
			memcpy(p, (char *)k.mv_data + 3, nlen);
			p[nlen] = '\0';
			v->items[*count].origin = p;
			v->items[*count].seq = sto_comments_get_u64(d.mv_data);
			p += nlen + 1;
		}
		(*count)++;
		*bytes += nlen + 1;
	}
	mdb_cursor_close(cur);
	return (rc == MDB_NOTFOUND ? 0 : rc);
}

int
sto_comments_origin_vector(sto_comments *s, sto_origin_vec **out)
{
	sto_origin_vec *v = NULL;
	MDB_txn *txn;
	size_t count, bytes, again;
	int rc, err;

	*out = NULL;
	if ((err = read_begin(s, &txn)) != PL_OK) {
		return (err);
	}
	if ((rc = walk_hw(s, txn, NULL, &count, &bytes)) != 0) {
		goto done;
	}
	if ((v = malloc(sizeof(*v) + count * sizeof(sto_origin_seq) + bytes)) ==
	    NULL) {
		rc = ENOMEM;
		goto done;
	}
	v->items = (sto_origin_seq *)(void *)(v + 1);
	v->count = count;
	/* Same txn, same snapshot: the second walk sees the same entries. */
	rc = walk_hw(s, txn, v, &again, &bytes);
done:
	read_end(s, txn);
	if (rc != 0) {
		free(v);
		return (sto_comments_err(rc));
	}
	*out = v;
	return (PL_OK);
}

void
sto_origin_vec_free(sto_origin_vec *v)
{
	free(v);
}

int
sto_comments_watermarks(sto_comments *s, const char *prefix,
    void (*fn)(void *arg, const char *name, uint64_t value), void *arg)
{
	char kb[STO_MKEY_MAX], name[STO_WATERMARK_NAME_MAX + 1];
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	size_t plen, klen;
	int rc, err;

	if (s == NULL || prefix == NULL || fn == NULL ||
	    (plen = strnlen(prefix, STO_WATERMARK_NAME_MAX + 1)) >
		STO_WATERMARK_NAME_MAX) {
		return (PL_EINVAL);
	}
	if ((err = read_begin(s, &txn)) != PL_OK) {
		return (err);
	}
	klen = sto_comments_mkey(kb, "wm", prefix, plen);
	k.mv_data = kb;
	k.mv_size = klen;
	if ((rc = mdb_cursor_open(txn, s->db_meta, &cur)) == 0) {
		rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	}
	/* Keys `wm \0 name` sort by name: walk while the prefix holds. */
	while (
	    rc == 0 && k.mv_size >= klen && memcmp(k.mv_data, kb, klen) == 0) {
		size_t nlen = k.mv_size - 3;
		if (d.mv_size != 8 || nlen > STO_WATERMARK_NAME_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(name, (const char *)k.mv_data + 3, nlen);
		name[nlen] = '\0';
		fn(arg, name, sto_comments_get_u64(d.mv_data));
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	if (cur != NULL) {
		mdb_cursor_close(cur);
	}
	read_end(s, txn);
	return (rc == MDB_NOTFOUND ? PL_OK : sto_comments_err(rc));
}
