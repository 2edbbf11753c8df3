/* SPDX-License-Identifier: Apache-2.0 */
/* msgpack codec for presence CRDT messages (delta, full state, clocks).
 * Layout: [version, kind, sender, replicas, topics, entries] with
 * replica = [name, vsn, lo, hi, [dot..]] and
 * entry = [replica, topic, clock, owner, key, ref(bin12), prev(bin12|nil),
 * meta]. Strings and arrays live in a per-message arena. */
#include "proto/presence_codec.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

#define TOP_FIELDS 6
#define REPLICA_FIELDS 5
#define ENTRY_FIELDS 8
#define BLK_MIN 16384
#define MAX_DEPTH 8 /* the format nests 4 deep */

struct pro_presence_blk {
	struct pro_presence_blk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

/* ---- Arena and builder ---- */

static void *
arena_alloc(pro_presence_msg *m, size_t n)
{
	struct pro_presence_blk *b = m->arena;
	n = (n + 15) & ~(size_t)15;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = b != NULL ? b->cap * 2 : BLK_MIN;
		if (cap > (1u << 20)) {
			cap = 1u << 20;
		}
		if (cap < n) {
			cap = n;
		}
		b = malloc(sizeof(*b) + cap);
		if (b == NULL) {
			return NULL;
		}
		b->next = m->arena;
		b->used = 0;
		b->cap = cap;
		m->arena = b;
	}
	void *p = b->data + b->used;
	b->used += n;
	return p;
}

static char *
arena_strdup(pro_presence_msg *m, const char *s, size_t len)
{
	char *d = arena_alloc(m, len + 1);
	if (d != NULL) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

/* Grows an array to hold one more element; the cap doubles. */
static int
grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap) {
		return PL_OK;
	}
	size_t ncap = *cap != 0 ? *cap * 2 : 8;
	void *p = realloc(*arr, ncap * elem);
	if (p == NULL) {
		return PL_ENOMEM;
	}
	*arr = p;
	*cap = ncap;
	return PL_OK;
}

int
pro_presence_msg_create(pro_presence_msg **out, pro_presence_kind kind)
{
	pro_presence_msg *m;

	*out = NULL;
	if (kind < PRO_PRESENCE_DELTA || kind > PRO_PRESENCE_CLOCKS) {
		return PL_EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return PL_ENOMEM;
	}
	m->kind = kind;
	*out = m;
	return PL_OK;
}

void
pro_presence_msg_destroy(pro_presence_msg *m)
{
	if (m == NULL) {
		return;
	}
	while (m->arena != NULL) {
		struct pro_presence_blk *next = m->arena->next;
		free(m->arena);
		m->arena = next;
	}
	free(m->replicas);
	free(m->topics);
	free(m->entries);
	free(m);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int
pro_presence_msg_add_replica(pro_presence_msg *m, const char *name,
    uint64_t vsn, uint64_t lo, uint64_t hi, const uint64_t *dots, size_t ndots,
    uint32_t *idx)
{
	size_t nlen = name != NULL ? strlen(name) : 0;
	if (nlen == 0 || lo > hi || (ndots > 0 && dots == NULL)) {
		return PL_EINVAL;
	}
	if (nlen > PRO_PRESENCE_MAX_NAME || ndots > PRO_PRESENCE_MAX_DOTS ||
	    m->nreplicas >= PRO_PRESENCE_MAX_REPLICAS) {
		return PL_ETOOBIG;
	}
	if (grow((void **)&m->replicas, &m->cap_replicas, m->nreplicas,
		sizeof(*m->replicas)) != PL_OK) {
		return PL_ENOMEM;
	}
	uint64_t *d = NULL;
	size_t nd = 0;
	if (ndots > 0) {
		d = arena_alloc(m, ndots * sizeof(*d));
		if (d == NULL) {
			return PL_ENOMEM;
		}
		memcpy(d, dots, ndots * sizeof(*d));
		qsort(d, ndots, sizeof(*d), cmp_u64);
		for (size_t i = 0; i < ndots; i++) {
			if (d[i] == 0) {
				return PL_EINVAL;
			}
			if (nd == 0 || d[nd - 1] != d[i]) {
				d[nd++] = d[i];
			}
		}
	}
	char *n = arena_strdup(m, name, nlen);
	if (n == NULL) {
		return PL_ENOMEM;
	}
	m->replicas[m->nreplicas] = (pro_presence_replica){
		.name = n, .vsn = vsn, .lo = lo, .hi = hi, .dots = d, .ndots = nd
	};
	if (idx != NULL) {
		*idx = (uint32_t)m->nreplicas;
	}
	m->nreplicas++;
	return PL_OK;
}

int
pro_presence_msg_add_topic(
    pro_presence_msg *m, const char *topic, uint32_t *idx)
{
	size_t len = topic != NULL ? strlen(topic) : 0;
	if (len == 0 || len > PRO_PRESENCE_MAX_TOPIC) {
		return PL_EINVAL;
	}
	if (m->ntopics >= PRO_PRESENCE_MAX_TOPICS) {
		return PL_ETOOBIG;
	}
	if (grow((void **)&m->topics, &m->cap_topics, m->ntopics,
		sizeof(*m->topics)) != PL_OK) {
		return PL_ENOMEM;
	}
	char *t = arena_strdup(m, topic, len);
	if (t == NULL) {
		return PL_ENOMEM;
	}
	m->topics[m->ntopics] = t;
	if (idx != NULL) {
		*idx = (uint32_t)m->ntopics;
	}
	m->ntopics++;
	return PL_OK;
}

int
pro_presence_msg_add_entry(pro_presence_msg *m, const pro_presence_entry *e)
{
	size_t klen = e->key != NULL ? strlen(e->key) : 0;
	if (e->replica >= m->nreplicas || e->topic >= m->ntopics ||
	    e->clock == 0 || klen == 0 || klen > PRO_PRESENCE_MAX_KEY ||
	    (e->meta == NULL && e->meta_len > 0)) {
		return PL_EINVAL;
	}
	if (e->meta_len > PRO_PRESENCE_MAX_META ||
	    m->nentries >= PRO_PRESENCE_MAX_ENTRIES) {
		return PL_ETOOBIG;
	}
	if (grow((void **)&m->entries, &m->cap_entries, m->nentries,
		sizeof(*m->entries)) != PL_OK) {
		return PL_ENOMEM;
	}
	pro_presence_entry c = *e;
	c.key = arena_strdup(m, e->key, klen);
	c.meta = arena_strdup(m, e->meta != NULL ? e->meta : "", e->meta_len);
	if (c.key == NULL || c.meta == NULL) {
		return PL_ENOMEM;
	}
	if (!c.has_prev) {
		memset(c.prev_ref, 0, sizeof(c.prev_ref));
	}
	m->entries[m->nentries++] = c;
	return PL_OK;
}

/* ---- Encoding ---- */

static int
pack_str(msgpack_packer *pk, const char *s, size_t len)
{
	return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, s, len);
}

static int
pack_bin(msgpack_packer *pk, const uint8_t *b, size_t len)
{
	return msgpack_pack_bin(pk, len) | msgpack_pack_bin_body(pk, b, len);
}

int
pro_presence_encode(const pro_presence_msg *m, char **out, size_t *len)
{
	if (m->nreplicas > 0 && m->sender >= m->nreplicas) {
		return PL_EINVAL;
	}
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	int rc = msgpack_pack_array(&pk, TOP_FIELDS);
	rc |= msgpack_pack_uint32(&pk, PRO_PRESENCE_VERSION);
	rc |= msgpack_pack_uint32(&pk, (uint32_t)m->kind);
	rc |= msgpack_pack_uint32(&pk, m->sender);
	rc |= msgpack_pack_array(&pk, m->nreplicas);
	for (size_t i = 0; i < m->nreplicas && rc == 0; i++) {
		const pro_presence_replica *r = &m->replicas[i];
		rc |= msgpack_pack_array(&pk, REPLICA_FIELDS);
		rc |= pack_str(&pk, r->name, strlen(r->name));
		rc |= msgpack_pack_uint64(&pk, r->vsn);
		rc |= msgpack_pack_uint64(&pk, r->lo);
		rc |= msgpack_pack_uint64(&pk, r->hi);
		rc |= msgpack_pack_array(&pk, r->ndots);
		for (size_t j = 0; j < r->ndots; j++) {
			rc |= msgpack_pack_uint64(&pk, r->dots[j]);
		}
	}
	rc |= msgpack_pack_array(&pk, m->ntopics);
	for (size_t i = 0; i < m->ntopics && rc == 0; i++) {
		rc |= pack_str(&pk, m->topics[i], strlen(m->topics[i]));
	}
	rc |= msgpack_pack_array(&pk, m->nentries);
	for (size_t i = 0; i < m->nentries && rc == 0; i++) {
		const pro_presence_entry *e = &m->entries[i];
		rc |= msgpack_pack_array(&pk, ENTRY_FIELDS);
		rc |= msgpack_pack_uint32(&pk, e->replica);
		rc |= msgpack_pack_uint32(&pk, e->topic);
		rc |= msgpack_pack_uint64(&pk, e->clock);
		rc |= msgpack_pack_uint64(&pk, e->owner);
		rc |= pack_str(&pk, e->key, strlen(e->key));
		rc |= pack_bin(&pk, e->ref, sizeof(e->ref));
		if (e->has_prev) {
			rc |= pack_bin(&pk, e->prev_ref, sizeof(e->prev_ref));
		} else {
			rc |= msgpack_pack_nil(&pk);
		}
		rc |= pack_str(&pk, e->meta, e->meta_len);
	}
	if (rc != 0) {
		msgpack_sbuffer_destroy(&sb);
		return PL_ENOMEM;
	}
	*len = sb.size;
	*out = msgpack_sbuffer_release(&sb);
	return PL_OK;
}

/* ---- Decoding ---- */

/* Walks raw msgpack without allocating and checks that every declared
 * container count fits in the bytes that remain (each item needs at least
 * one byte) and that nesting stays within MAX_DEPTH. This bounds what
 * msgpack_unpack may allocate to a small multiple of the input size,
 * however large the counts claim to be. */
static int
prescan(const uint8_t *p, size_t len)
{
	uint64_t left[MAX_DEPTH + 1]; /* items still to read per level */
	uint64_t pending = 1;         /* sum of left[] */
	size_t pos = 0;
	int d = 0;
	left[0] = 1;
	while (pending > 0) {
		if (left[d] == 0) {
			d--;
			continue;
		}
		if (pos >= len) {
			return -1;
		}
		uint8_t b = p[pos++];
		uint64_t n = 0, skip = 0;
		size_t w = 0; /* width of a length field that follows */
		int kind = 0; /* 1 payload, 2 array, 3 map, 4 ext */
		left[d]--;
		pending--;
		if (b <= 0x7f || b >= 0xe0) {
			/* fixint */
		} else if (b <= 0x8f) {
			n = 2u * (b & 0x0f);
		} else if (b <= 0x9f) {
			n = b & 0x0f;
		} else if (b <= 0xbf) {
			skip = b & 0x1f;
		} else {
			switch (b) {
			case 0xc0:
			case 0xc2:
			case 0xc3: break;
			case 0xc4:
			case 0xd9:
				w = 1;
				kind = 1;
				break;
			case 0xc5:
			case 0xda:
				w = 2;
				kind = 1;
				break;
			case 0xc6:
			case 0xdb:
				w = 4;
				kind = 1;
				break;
			case 0xc7:
				w = 1;
				kind = 4;
				break;
			case 0xc8:
				w = 2;
				kind = 4;
				break;
			case 0xc9:
				w = 4;
				kind = 4;
				break;
			case 0xca: skip = 4; break;
			case 0xcb: skip = 8; break;
			case 0xcc:
			case 0xd0: skip = 1; break;
			case 0xcd:
			case 0xd1: skip = 2; break;
			case 0xce:
			case 0xd2: skip = 4; break;
			case 0xcf:
			case 0xd3: skip = 8; break;
			case 0xd4: skip = 2; break;
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc:
				w = 2;
				kind = 2;
				break;
			case 0xdd:
				w = 4;
				kind = 2;
				break;
			case 0xde:
				w = 2;
				kind = 3;
				break;
			case 0xdf:
				w = 4;
				kind = 3;
				break;
			default: return -1; /* 0xc1 is never used */
			}
		}
		if (w > 0) {
			uint64_t v = 0;
			if (len - pos < w) {
				return -1;
			}
			for (size_t i = 0; i < w; i++) {
				v = (v << 8) | p[pos++];
			}
			if (kind == 1) {
				skip = v;
			} else if (kind == 4) {
				skip = v + 1;
			} else {
				n = kind == 2 ? v : 2 * v;
			}
		}
		if (skip > len - pos) {
			return -1;
		}
		pos += (size_t)skip;
		if (pending > len - pos) {
			return -1;
		}
		if (n > 0) {
			if (d == MAX_DEPTH || n > len - pos - pending) {
				return -1;
			}
			left[++d] = n;
			pending += n;
		}
	}
	return pos == len ? 0 : -1;
}

static bool
get_u64(const msgpack_object *o, uint64_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		return false;
	}
	*v = o->via.u64;
	return true;
}

static bool
get_arr(const msgpack_object *o, size_t min, const msgpack_object **items,
    size_t *n)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < min) {
		return false;
	}
	*items = o->via.array.ptr;
	*n = o->via.array.size;
	return true;
}

/* Copies a msgpack string into the arena; rejects empty, over-long and
 * NUL-containing strings because they are used as C strings. */
static int
get_str(
    pro_presence_msg *m, const msgpack_object *o, size_t max, const char **out)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
		return PL_EPROTO;
	}
	if (o->via.str.size > max) {
		return PL_ETOOBIG;
	}
	*out = arena_strdup(m, o->via.str.ptr, o->via.str.size);
	return *out != NULL ? PL_OK : PL_ENOMEM;
}

static int
decode_replica(
    pro_presence_msg *m, const msgpack_object *o, pro_presence_replica *r)
{
	const msgpack_object *f, *dv;
	size_t nf, nd;
	int rc;
	if (!get_arr(o, REPLICA_FIELDS, &f, &nf) || !get_u64(&f[1], &r->vsn) ||
	    !get_u64(&f[2], &r->lo) || !get_u64(&f[3], &r->hi) ||
	    r->lo > r->hi || !get_arr(&f[4], 0, &dv, &nd)) {
		return PL_EPROTO;
	}
	if ((rc = get_str(m, &f[0], PRO_PRESENCE_MAX_NAME, &r->name)) !=
	    PL_OK) {
		return rc;
	}
	if (nd > PRO_PRESENCE_MAX_DOTS) {
		return PL_ETOOBIG;
	}
	uint64_t *d = NULL;
	if (nd > 0 && (d = arena_alloc(m, nd * sizeof(*d))) == NULL) {
		return PL_ENOMEM;
	}
	for (size_t i = 0; i < nd; i++) {
		if (!get_u64(&dv[i], &d[i]) || d[i] == 0) {
			return PL_EPROTO;
		}
	}
	/* Sorted, unique dots let the merge use binary search. */
	if (nd > 1) {
		qsort(d, nd, sizeof(*d), cmp_u64);
	}
	size_t k = 0;
	for (size_t i = 0; i < nd; i++) {
		if (k == 0 || d[k - 1] != d[i]) {
			d[k++] = d[i];
		}
	}
	r->dots = d;
	r->ndots = k;
	return PL_OK;
}

static int
decode_entry(
    pro_presence_msg *m, const msgpack_object *o, pro_presence_entry *e)
{
	const msgpack_object *f;
	size_t nf;
	uint64_t rep, top;
	int rc;
	memset(e, 0, sizeof(*e));
	if (!get_arr(o, ENTRY_FIELDS, &f, &nf) || !get_u64(&f[0], &rep) ||
	    !get_u64(&f[1], &top) || !get_u64(&f[2], &e->clock) ||
	    !get_u64(&f[3], &e->owner) || rep >= m->nreplicas ||
	    top >= m->ntopics || e->clock == 0) {
		return PL_EPROTO;
	}
	e->replica = (uint32_t)rep;
	e->topic = (uint32_t)top;
	if ((rc = get_str(m, &f[4], PRO_PRESENCE_MAX_KEY, &e->key)) != PL_OK) {
		return rc;
	}
	if (f[5].type != MSGPACK_OBJECT_BIN ||
	    f[5].via.bin.size != PRO_PRESENCE_REF_BYTES) {
		return PL_EPROTO;
	}
	memcpy(e->ref, f[5].via.bin.ptr, PRO_PRESENCE_REF_BYTES);
	if (f[6].type == MSGPACK_OBJECT_BIN &&
	    f[6].via.bin.size == PRO_PRESENCE_REF_BYTES) {
		memcpy(e->prev_ref, f[6].via.bin.ptr, PRO_PRESENCE_REF_BYTES);
		e->has_prev = true;
	} else if (f[6].type != MSGPACK_OBJECT_NIL) {
		return PL_EPROTO;
	}
	/* The meta is JSON text and may legitimately be anything but huge. */
	if (f[7].type != MSGPACK_OBJECT_STR) {
		return PL_EPROTO;
	}
	if (f[7].via.str.size > PRO_PRESENCE_MAX_META) {
		return PL_ETOOBIG;
	}
	e->meta_len = f[7].via.str.size;
	e->meta = arena_strdup(m, f[7].via.str.ptr, e->meta_len);
	return e->meta != NULL ? PL_OK : PL_ENOMEM;
}

static int
decode_obj(pro_presence_msg *m, const msgpack_object *root)
{
	const msgpack_object *top, *rv, *tv, *ev;
	size_t ntop, nr, nt, ne;
	uint64_t ver, kind, sender;
	int rc;
	if (!get_arr(root, TOP_FIELDS, &top, &ntop) ||
	    !get_u64(&top[0], &ver) || ver != PRO_PRESENCE_VERSION ||
	    !get_u64(&top[1], &kind) || kind < PRO_PRESENCE_DELTA ||
	    kind > PRO_PRESENCE_CLOCKS || !get_u64(&top[2], &sender) ||
	    !get_arr(&top[3], 0, &rv, &nr) || !get_arr(&top[4], 0, &tv, &nt) ||
	    !get_arr(&top[5], 0, &ev, &ne)) {
		return PL_EPROTO;
	}
	if (nr > PRO_PRESENCE_MAX_REPLICAS || nt > PRO_PRESENCE_MAX_TOPICS ||
	    ne > PRO_PRESENCE_MAX_ENTRIES) {
		return PL_ETOOBIG;
	}
	if ((nr > 0 || sender != 0) && sender >= nr) {
		return PL_EPROTO;
	}
	m->kind = (pro_presence_kind)kind;
	m->sender = (uint32_t)sender;
	m->replicas = calloc(nr > 0 ? nr : 1, sizeof(*m->replicas));
	m->topics = calloc(nt > 0 ? nt : 1, sizeof(*m->topics));
	m->entries = calloc(ne > 0 ? ne : 1, sizeof(*m->entries));
	if (m->replicas == NULL || m->topics == NULL || m->entries == NULL) {
		return PL_ENOMEM;
	}
	m->cap_replicas = nr;
	m->cap_topics = nt;
	m->cap_entries = ne;
	for (size_t i = 0; i < nr; i++) {
		if ((rc = decode_replica(m, &rv[i], &m->replicas[i])) !=
		    PL_OK) {
			return rc;
		}
		m->nreplicas++;
	}
	for (size_t i = 0; i < nt; i++) {
		if ((rc = get_str(m, &tv[i], PRO_PRESENCE_MAX_TOPIC,
			 &m->topics[i])) != PL_OK) {
			return rc;
		}
		m->ntopics++;
	}
	for (size_t i = 0; i < ne; i++) {
		if ((rc = decode_entry(m, &ev[i], &m->entries[i])) != PL_OK) {
			return rc;
		}
		m->nentries++;
	}
	return PL_OK;
}

int
pro_presence_decode(const void *buf, size_t len, pro_presence_msg **out)
{
	pro_presence_msg *m = NULL;
	msgpack_unpacked up;
	size_t off = 0;
	int rc;
	*out = NULL;
	if (buf == NULL || len == 0) {
		return PL_EPROTO;
	}
	if (len > PRO_PRESENCE_MAX_BYTES) {
		LOG_WARN("PRO-PRESBIG", "presence message of %zu bytes refused",
		    len);
		return PL_ETOOBIG;
	}
	if (prescan(buf, len) != 0) {
		return PL_EPROTO;
	}
	msgpack_unpacked_init(&up);
	msgpack_unpack_return ur = msgpack_unpack_next(&up, buf, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		rc = ur == MSGPACK_UNPACK_NOMEM_ERROR ? PL_ENOMEM : PL_EPROTO;
		goto fail;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	if ((rc = decode_obj(m, &up.data)) != PL_OK) {
		goto fail;
	}
	msgpack_unpacked_destroy(&up);
	*out = m;
	return PL_OK;
fail:
	pro_presence_msg_destroy(m);
	msgpack_unpacked_destroy(&up);
	return rc;
}
