/* SPDX-License-Identifier: Apache-2.0 */
/* The presence_state cache of one topic. The base text is a run of entries,
 * each `,"key":{"metas":[...]}` (the leading comma is dropped from the first
 * one sent), indexed by key so that a touched key's old entry can be skipped
 * without scanning the text. */
#include "broker/presence_state.h"

#include "common/err.h"
#include "common/hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The base is rebuilt when the touched keys exceed an eighth of its keys,
 * and never for fewer than this many. */
#define REBUILD_MIN 32

/* An entry of the base text. */
typedef struct bkey {
	uint64_t h;        /* pl_hash_str of the key */
	uint32_t off, len; /* the entry, leading comma included */
	uint32_t klen; /* the key's JSON literal (quotes included) at off+1 */
} bkey;

/* A key touched since the base was built, with its current entry. */
typedef struct tkey {
	char *key;
	uint64_t h;
	int64_t in_base; /* index in bk, or -1 */
	char *text;      /* current entry; NULL when not rendered yet */
	size_t tlen;     /* 0: no visible meta left */
	int dirty;       /* changed since text was rendered */
} tkey;

/* Open addressing over indexes + 1 (0 is an empty slot). */
typedef struct idx {
	uint32_t *v;
	size_t mask;
} idx;

struct brk_pstate {
	clu_presence *crdt;
	char *topic;
	pl_rcbuf *base;
	int stale; /* a touch was lost: rebuild before the next answer */
	bkey *bk;
	size_t nbk, capbk;
	idx bidx;
	tkey *tk;
	size_t ntk, captk;
	idx tidx;
	pl_slice *sl; /* the last answer */
	size_t capsl;
	uint64_t *skips; /* scratch: base entries left out, offset << 32 | len */
	size_t capskips;
	size_t text_bytes; /* touched keys' rendered text */
};

/* ---- meta text ---- */

void
brk_pstate_add_meta(pl_sbuf *b, const clu_presence_meta *m)
{
	size_t len = m->meta_len;
	size_t i;
	int empty = 1;

	while (len > 0 && m->meta[len - 1] != '}') {
		len--;
	}
	if (len == 0 || m->meta[0] != '{') {
		pl_sbuf_str(b, "{");
		len = 1;
	} else {
		len--;
		pl_sbuf_add(b, m->meta, len);
	}
	for (i = 1; i < len && empty; i++) {
		empty = m->meta[i] == ' ' || m->meta[i] == '\t' ||
		    m->meta[i] == '\n' || m->meta[i] == '\r';
	}
	pl_sbuf_str(b, empty ? "\"phx_ref\":\"" : ",\"phx_ref\":\"");
	pl_sbuf_str(b, m->phx_ref);
	if (m->phx_ref_prev[0]) {
		pl_sbuf_str(b, "\",\"phx_ref_prev\":\"");
		pl_sbuf_str(b, m->phx_ref_prev);
	}
	pl_sbuf_str(b, "\"}");
}

/* `,"key":{"metas":[m1,m2]}`; *klen receives the key literal's length. */
static void
add_entry(pl_sbuf *b, const char *key, const clu_presence_meta *ms, size_t n,
    size_t *klen)
{
	size_t at, i;

	pl_sbuf_str(b, ",");
	at = b->len;
	pl_sbuf_json_str(b, key);
	if (klen) {
		*klen = b->len - at;
	}
	pl_sbuf_str(b, ":{\"metas\":[");
	for (i = 0; i < n; i++) {
		if (i > 0) {
			pl_sbuf_str(b, ",");
		}
		brk_pstate_add_meta(b, &ms[i]);
	}
	pl_sbuf_str(b, "]}");
}

/* ---- indexes ---- */

static int
idx_reset(idx *x, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2) {
		cap *= 2;
	}
	if (x->v == NULL || x->mask + 1 != cap) {
		uint32_t *v = calloc(cap, sizeof(*v));
		if (v == NULL) {
			return PL_ENOMEM;
		}
		free(x->v);
		x->v = v;
		x->mask = cap - 1;
	} else {
		memset(x->v, 0, cap * sizeof(*x->v));
	}
	return PL_OK;
}

static void
idx_put(idx *x, uint64_t h, uint32_t i)
{
	size_t at = (size_t)h & x->mask;

	while (x->v[at] != 0) {
		at = (at + 1) & x->mask;
	}
	x->v[at] = i + 1;
}

/* True when the JSON literal lit (lit_len bytes, quotes included) encodes
 * key. Keys are user ids and device ids: escapes are rare, so the plain
 * comparison comes first and the escaped form is built only when needed. */
static int
literal_is(const char *lit, size_t lit_len, const char *key)
{
	size_t kl = strlen(key);
	pl_sbuf b = PL_SBUF_INIT;
	int eq;

	if (lit_len == kl + 2 && memcmp(lit + 1, key, kl) == 0) {
		return 1;
	}
	if (memchr(lit, '\\', lit_len) == NULL) {
		return 0;
	}
	pl_sbuf_json_str(&b, key);
	eq = !b.oom && b.len == lit_len && memcmp(b.p, lit, lit_len) == 0;
	pl_sbuf_free(&b);
	return eq;
}

static int64_t
base_find(const brk_pstate *s, const char *key, uint64_t h)
{
	size_t at;

	if (s->bidx.v == NULL) {
		return -1;
	}
	for (at = (size_t)h & s->bidx.mask; s->bidx.v[at] != 0;
	     at = (at + 1) & s->bidx.mask) {
		const bkey *b = &s->bk[s->bidx.v[at] - 1];
		if (b->h == h &&
		    literal_is(s->base->data + b->off + 1, b->klen, key)) {
			return s->bidx.v[at] - 1;
		}
	}
	return -1;
}

static tkey *
touched_find(const brk_pstate *s, const char *key, uint64_t h)
{
	size_t at;

	if (s->tidx.v == NULL) {
		return NULL;
	}
	for (at = (size_t)h & s->tidx.mask; s->tidx.v[at] != 0;
	     at = (at + 1) & s->tidx.mask) {
		tkey *t = &s->tk[s->tidx.v[at] - 1];
		if (t->h == h && strcmp(t->key, key) == 0) {
			return t;
		}
	}
	return NULL;
}

/* ---- lifecycle ---- */

static void
clear_touched(brk_pstate *s)
{
	size_t i;

	for (i = 0; i < s->ntk; i++) {
		free(s->tk[i].key);
		free(s->tk[i].text);
	}
	s->ntk = 0;
	s->text_bytes = 0;
	if (s->tidx.v) {
		memset(s->tidx.v, 0, (s->tidx.mask + 1) * sizeof(*s->tidx.v));
	}
}

int
brk_pstate_create(brk_pstate **out, clu_presence *crdt, const char *topic)
{
	brk_pstate *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL || (s->topic = strdup(topic)) == NULL) {
		free(s);
		return PL_ENOMEM;
	}
	s->crdt = crdt;
	*out = s;
	return PL_OK;
}

void
brk_pstate_destroy(brk_pstate *s)
{
	if (s == NULL) {
		return;
	}
	clear_touched(s);
	pl_rcbuf_unref(s->base);
	free(s->bk);
	free(s->bidx.v);
	free(s->tk);
	free(s->tidx.v);
	free(s->sl);
	free(s->skips);
	free(s->topic);
	free(s);
}

size_t
brk_pstate_bytes(const brk_pstate *s)
{
	return (s->base ? s->base->len : 0) + s->text_bytes;
}

void
brk_pstate_touch(brk_pstate *s, const char *key)
{
	uint64_t h = pl_hash_str(key);
	tkey *t;

	if (s->base == NULL || s->stale) {
		return; /* rebuilt from the CRDT on the next get anyway */
	}
	if ((t = touched_find(s, key, h)) != NULL) {
		t->dirty = 1;
		return;
	}
	if (s->ntk == s->captk) {
		size_t cap = s->captk ? s->captk * 2 : 16;
		tkey *nt = realloc(s->tk, cap * sizeof(*nt));
		if (nt == NULL) {
			s->stale = 1;
			return;
		}
		s->tk = nt;
		s->captk = cap;
	}
	if ((s->ntk + 1) * 2 > s->tidx.mask + 1 || s->tidx.v == NULL) {
		size_t i;
		if (idx_reset(&s->tidx, s->ntk + 1) != PL_OK) {
			s->stale = 1;
			return;
		}
		for (i = 0; i < s->ntk; i++) {
			idx_put(&s->tidx, s->tk[i].h, (uint32_t)i);
		}
	}
	t = &s->tk[s->ntk];
	memset(t, 0, sizeof(*t));
	if ((t->key = strdup(key)) == NULL) {
		s->stale = 1;
		return;
	}
	t->h = h;
	t->in_base = base_find(s, key, h);
	t->dirty = 1;
	idx_put(&s->tidx, h, (uint32_t)s->ntk++);
}

/* ---- building ---- */

typedef struct build {
	brk_pstate *s;
	pl_sbuf b;
	int oom;
} build;

static void
build_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	build *bd = arg;
	brk_pstate *s = bd->s;
	size_t at = bd->b.len, klen = 0;

	(void)topic;
	if (s->nbk == s->capbk) {
		size_t cap = s->capbk ? s->capbk * 2 : 64;
		bkey *nb = realloc(s->bk, cap * sizeof(*nb));
		if (nb == NULL) {
			bd->oom = 1;
			return;
		}
		s->bk = nb;
		s->capbk = cap;
	}
	add_entry(&bd->b, key, ms, n, &klen);
	s->bk[s->nbk].h = pl_hash_str(key);
	s->bk[s->nbk].off = (uint32_t)at;
	s->bk[s->nbk].len = (uint32_t)(bd->b.len - at);
	s->bk[s->nbk].klen = (uint32_t)klen;
	s->nbk++;
}

static int
rebuild(brk_pstate *s)
{
	build bd = { s, PL_SBUF_INIT, 0 };
	size_t i, len;
	char *text;

	clear_touched(s);
	s->nbk = 0;
	pl_rcbuf_unref(s->base);
	s->base = NULL;
	s->stale = 0;
	if (clu_presence_list(s->crdt, s->topic, build_key, &bd) != PL_OK ||
	    bd.oom || bd.b.len > UINT32_MAX) {
		pl_sbuf_free(&bd.b);
		return PL_ENOMEM;
	}
	text = pl_sbuf_take(&bd.b, &len);
	if (text == NULL || (s->base = pl_rcbuf_adopt(text, len)) == NULL ||
	    idx_reset(&s->bidx, s->nbk) != PL_OK) {
		pl_rcbuf_unref(s->base);
		s->base = NULL;
		return PL_ENOMEM;
	}
	for (i = 0; i < s->nbk; i++) {
		idx_put(&s->bidx, s->bk[i].h, (uint32_t)i);
	}
	return PL_OK;
}

static void
render_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	(void)topic;
	add_entry(arg, key, ms, n, NULL);
}

static int
render(brk_pstate *s, tkey *t)
{
	pl_sbuf b = PL_SBUF_INIT;
	int rc = clu_presence_get(s->crdt, s->topic, t->key, render_key, &b);
	char *text;
	size_t len = 0;

	if (rc != PL_OK && rc != PL_ENOTFOUND) {
		pl_sbuf_free(&b);
		return rc;
	}
	text = pl_sbuf_take(&b, &len);
	if (text == NULL) {
		return PL_ENOMEM;
	}
	s->text_bytes -= t->tlen;
	free(t->text);
	t->text = text;
	t->tlen = len;
	t->dirty = 0;
	s->text_bytes += len;
	return PL_OK;
}

static int
by_offset(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Makes room for the answer's slices and its scratch of skipped entries:
 * at most one of each per touched key, plus the braces and the tail. */
static int
reserve(brk_pstate *s)
{
	size_t nsl = 2 * s->ntk + 3, nsk = s->ntk + 1;

	if (nsl > s->capsl) {
		pl_slice *sl = realloc(s->sl, nsl * sizeof(*sl));
		if (sl == NULL) {
			return PL_ENOMEM;
		}
		s->sl = sl;
		s->capsl = nsl;
	}
	if (nsk > s->capskips) {
		uint64_t *sk = realloc(s->skips, nsk * sizeof(*sk));
		if (sk == NULL) {
			return PL_ENOMEM;
		}
		s->skips = sk;
		s->capskips = nsk;
	}
	return PL_OK;
}

/* Adds a run of text to the answer; the first run loses its leading comma
 * (every entry starts with one). */
static void
put(brk_pstate *s, size_t *n, const char *p, size_t len, pl_rcbuf *hold,
    int *first)
{
	if (len == 0) {
		return;
	}
	if (*first) {
		p++;
		len--;
		*first = 0;
		if (len == 0) {
			return;
		}
	}
	s->sl[(*n)++] = (pl_slice){ p, len, hold };
}

int
brk_pstate_get(brk_pstate *s, const pl_slice **out, size_t *n)
{
	size_t i, nskip = 0, k = 0, pos = 0, limit = s->nbk / 8;
	int first = 1;

	if (limit < REBUILD_MIN) {
		limit = REBUILD_MIN;
	}
	if ((s->base == NULL || s->stale || s->ntk > limit) &&
	    rebuild(s) != PL_OK) {
		return PL_ENOMEM;
	}
	for (i = 0; i < s->ntk; i++) {
		if (s->tk[i].dirty && render(s, &s->tk[i]) != PL_OK) {
			return PL_ENOMEM;
		}
	}
	/* {, base runs between skipped entries, touched entries, } */
	if (reserve(s) != PL_OK) {
		return PL_ENOMEM;
	}
	for (i = 0; i < s->ntk; i++) {
		const bkey *b =
		    s->tk[i].in_base >= 0 ? &s->bk[s->tk[i].in_base] : NULL;
		if (b) {
			s->skips[nskip++] = (uint64_t)b->off << 32 | b->len;
		}
	}
	qsort(s->skips, nskip, sizeof(*s->skips), by_offset);
	s->sl[k++] = (pl_slice){ "{", 1, NULL };
	for (i = 0; i < nskip; i++) {
		size_t off = (size_t)(s->skips[i] >> 32);
		put(s, &k, s->base->data + pos, off - pos, s->base, &first);
		pos = off + (uint32_t)s->skips[i];
	}
	put(s, &k, s->base->data + pos, s->base->len - pos, s->base, &first);
	for (i = 0; i < s->ntk; i++) {
		put(s, &k, s->tk[i].text, s->tk[i].tlen, NULL, &first);
	}
	s->sl[k++] = (pl_slice){ "}", 1, NULL };
	*out = s->sl;
	*n = k;
	return PL_OK;
}
