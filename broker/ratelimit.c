/* SPDX-License-Identifier: Apache-2.0 */
/* Fixed-window rate limiter behind a small chained hash table keyed by
 * action and user. Each check also sweeps a couple of slots, so counters of
 * ended windows disappear without a full scan; brk_ratelimit_sweep does the
 * full scan (and shrinks) for a periodic timer. */
#include "broker/ratelimit.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/err.h"

#define MIN_SLOTS 64
/* Slots swept per check: above 1 so a full pass completes within one
 * window even when every user acts only once per window (the table holds
 * at most 2 slots per counter). */
#define SWEEP_STEP 2

#define NODES_MAX 64

/* Another node's count for one entry's window. */
struct remote {
	uint8_t node; /* index into the limiter's node names */
	unsigned count;
};

struct entry {
	struct entry *next;
	struct entry *dnext; /* changed since the last take (dirty list) */
	uint64_t hash;
	uint64_t window; /* now_ms / window_ms when counting started */
	unsigned count;  /* this node's */
	unsigned remote; /* the sum of the other nodes' */
	bool dirty;      /* on the dirty list: not purged until taken */
	uint8_t nremotes, capremotes;
	struct remote *remotes;
	size_t keylen; /* action, '\0', user */
	char key[];
};

struct brk_ratelimit {
	unsigned limit;
	unsigned window_ms;
	struct entry **slots;
	size_t nslots; /* power of two */
	size_t count;
	size_t cursor; /* next slot for the amortised sweep */
	uint64_t seed;
	struct entry *dirty;
	void (*notify)(void *arg);
	void *notify_arg;
	char *nodes[NODES_MAX];
	size_t nnodes;
};

static void
entry_free(struct entry *e)
{
	free(e->remotes);
	free(e);
}

/* A new window: every count starts again. */
static void
reset(struct entry *e, uint64_t window)
{
	e->window = window;
	e->count = 0;
	e->remote = 0;
	e->nremotes = 0;
}

/* Changes are tracked only while someone takes them (a cluster). */
static void
mark_dirty(brk_ratelimit *rl, struct entry *e)
{
	if (e->dirty || rl->notify == NULL) {
		return;
	}
	e->dirty = true;
	e->dnext = rl->dirty;
	if (rl->dirty == NULL && rl->notify != NULL) {
		rl->notify(rl->notify_arg);
	}
	rl->dirty = e;
}

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Seeded FNV-1a with a final mix; the seed keeps the bucket layout
 * unpredictable to whoever picks user ids. */
static uint64_t
hash_key(uint64_t seed, const char *a, size_t alen, const char *u, size_t ulen)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < alen; i++) {
		h = (h ^ (unsigned char)a[i]) * 0x100000001b3ULL;
	}
	h = (h ^ 0xff) * 0x100000001b3ULL;
	for (size_t i = 0; i < ulen; i++) {
		h = (h ^ (unsigned char)u[i]) * 0x100000001b3ULL;
	}
	return mix64(h);
}

static bool
key_eq(const struct entry *e, uint64_t h, const char *a, size_t alen,
    const char *u, size_t ulen)
{
	return e->hash == h && e->keylen == alen + 1 + ulen &&
	    memcmp(e->key, a, alen) == 0 && e->key[alen] == '\0' &&
	    memcmp(e->key + alen + 1, u, ulen) == 0;
}

/* Moves every entry into a table of `n` slots; on allocation failure the
 * old table stays (chains just get longer). */
static void
resize(brk_ratelimit *rl, size_t n)
{
	struct entry **slots = calloc(n, sizeof(*slots));

	if (slots == NULL) {
		return;
	}
	for (size_t i = 0; i < rl->nslots; i++) {
		struct entry *e = rl->slots[i];
		while (e != NULL) {
			struct entry *next = e->next;
			size_t j = (size_t)(e->hash & (n - 1));
			e->next = slots[j];
			slots[j] = e;
			e = next;
		}
	}
	free(rl->slots);
	rl->slots = slots;
	rl->nslots = n;
	rl->cursor = 0;
}

/* Frees the entries of slot i whose window ended before `window`. */
static size_t
sweep_slot(brk_ratelimit *rl, size_t i, uint64_t window)
{
	struct entry **pp = &rl->slots[i];
	size_t purged = 0;

	while (*pp != NULL) {
		struct entry *e = *pp;
		if (e->window < window && !e->dirty) {
			*pp = e->next;
			entry_free(e);
			purged++;
		} else {
			pp = &e->next;
		}
	}
	rl->count -= purged;
	return purged;
}

int
brk_ratelimit_parse(const char *spec, unsigned *limit, unsigned *window_ms)
{
	unsigned long long v[2] = { 0, 0 };
	const char *p = spec;

	if (spec == NULL || limit == NULL || window_ms == NULL) {
		return PL_EINVAL;
	}
	for (int part = 0; part < 2; part++) {
		const char *start = p;
		while (*p >= '0' && *p <= '9') {
			v[part] = v[part] * 10 + (unsigned long long)(*p - '0');
			if (v[part] > UINT_MAX) {
				return PL_EINVAL;
			}
			p++;
		}
		if (p == start || v[part] == 0) {
			return PL_EINVAL;
		}
		if (*p != (part == 0 ? '/' : '\0')) {
			return PL_EINVAL;
		}
		p++;
	}
	if (v[1] > UINT_MAX / 1000) {
		return PL_EINVAL;
	}
	*limit = (unsigned)v[0];
	*window_ms = (unsigned)(v[1] * 1000);
	return PL_OK;
}

int
brk_ratelimit_create(brk_ratelimit **out, unsigned limit, unsigned window_ms)
{
	brk_ratelimit *rl;

	if (out == NULL) {
		return PL_EINVAL;
	}
	*out = NULL;
	if (limit == 0 || window_ms == 0) {
		return PL_EINVAL;
	}
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL) {
		return PL_ENOMEM;
	}
	rl->slots = calloc(MIN_SLOTS, sizeof(*rl->slots));
	if (rl->slots == NULL) {
		free(rl);
		return PL_ENOMEM;
	}
	rl->nslots = MIN_SLOTS;
	rl->limit = limit;
	rl->window_ms = window_ms;
	if (getrandom(&rl->seed, sizeof(rl->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(rl->seed)) {
		rl->seed =
		    mix64((uint64_t)(uintptr_t)rl ^ (uint64_t)time(NULL));
	}
	*out = rl;
	return PL_OK;
}

void
brk_ratelimit_destroy(brk_ratelimit *rl)
{
	if (rl == NULL) {
		return;
	}
	for (size_t i = 0; i < rl->nslots; i++) {
		struct entry *e = rl->slots[i];
		while (e != NULL) {
			struct entry *next = e->next;
			entry_free(e);
			e = next;
		}
	}
	for (size_t i = 0; i < rl->nnodes; i++) {
		free(rl->nodes[i]);
	}
	free(rl->slots);
	free(rl);
}

/* The entry of (action, user), made (in `window`) when absent; NULL when
 * out of memory. */
static struct entry *
lookup(brk_ratelimit *rl, const char *action, const char *user, uint64_t window)
{
	size_t alen = strlen(action), ulen = strlen(user), slot;
	uint64_t h = hash_key(rl->seed, action, alen, user, ulen);
	struct entry *e;

	slot = (size_t)(h & (rl->nslots - 1));
	for (e = rl->slots[slot]; e != NULL; e = e->next) {
		if (key_eq(e, h, action, alen, user, ulen)) {
			return e;
		}
	}
	/* calloc's zero after the user ends the key as a string too */
	if ((e = calloc(1, sizeof(*e) + alen + 1 + ulen + 1)) == NULL) {
		return NULL;
	}
	e->hash = h;
	e->window = window;
	e->keylen = alen + 1 + ulen;
	memcpy(e->key, action, alen);
	e->key[alen] = '\0';
	memcpy(e->key + alen + 1, user, ulen);
	if (rl->count >= rl->nslots && rl->nslots <= SIZE_MAX / 2 / sizeof(e)) {
		resize(rl, rl->nslots * 2);
		slot = (size_t)(h & (rl->nslots - 1));
	}
	e->next = rl->slots[slot];
	rl->slots[slot] = e;
	rl->count++;
	return e;
}

int
brk_ratelimit_check(
    brk_ratelimit *rl, const char *action, const char *user, uint64_t now_ms)
{
	uint64_t window;
	struct entry *e;

	if (rl == NULL || action == NULL || user == NULL) {
		return PL_EINVAL;
	}
	window = now_ms / rl->window_ms;
	for (int i = 0; i < SWEEP_STEP; i++) {
		sweep_slot(rl, rl->cursor, window);
		rl->cursor = (rl->cursor + 1) & (rl->nslots - 1);
	}
	if ((e = lookup(rl, action, user, window)) == NULL) {
		return PL_ENOMEM;
	}
	if (e->window != window) {
		reset(e, window);
	}
	if ((uint64_t)e->count + e->remote >= rl->limit) {
		return PL_ELIMIT;
	}
	e->count++;
	mark_dirty(rl, e);
	return PL_OK;
}

void
brk_ratelimit_on_change(brk_ratelimit *rl, void (*notify)(void *arg), void *arg)
{
	rl->notify = notify;
	rl->notify_arg = arg;
}

size_t
brk_ratelimit_take_changes(brk_ratelimit *rl,
    void (*fn)(void *arg, const char *action, const char *user, uint64_t window,
	unsigned count),
    void *arg)
{
	size_t n = 0;

	while (rl->dirty != NULL) {
		struct entry *e = rl->dirty;

		rl->dirty = e->dnext;
		e->dirty = false;
		e->dnext = NULL;
		fn(arg, e->key, e->key + strlen(e->key) + 1, e->window,
		    e->count);
		n++;
	}
	return n;
}

static int
node_index(brk_ratelimit *rl, const char *node)
{
	for (size_t i = 0; i < rl->nnodes; i++) {
		if (strcmp(rl->nodes[i], node) == 0) {
			return (int)i;
		}
	}
	if (rl->nnodes == NODES_MAX) {
		return -PL_EFULL;
	}
	if ((rl->nodes[rl->nnodes] = strdup(node)) == NULL) {
		return -PL_ENOMEM;
	}
	return (int)rl->nnodes++;
}

size_t
brk_ratelimit_touch_all(brk_ratelimit *rl, uint64_t now_ms)
{
	uint64_t window = now_ms / rl->window_ms;
	size_t n = 0;

	for (size_t i = 0; i < rl->nslots; i++) {
		for (struct entry *e = rl->slots[i]; e != NULL; e = e->next) {
			if (e->window == window && e->count > 0 &&
			    rl->notify != NULL) {
				mark_dirty(rl, e);
				n++;
			}
		}
	}
	return n;
}

int
brk_ratelimit_merge(brk_ratelimit *rl, const char *node, const char *action,
    const char *user, uint64_t window, unsigned count, uint64_t now_ms)
{
	struct entry *e;
	int idx;
	size_t k;

	if (node == NULL || node[0] == '\0' || strlen(node) > 64 ||
	    action == NULL || user == NULL) {
		return PL_EINVAL;
	}
	if (window != now_ms / rl->window_ms) {
		return PL_ENOTFOUND;
	}
	if ((idx = node_index(rl, node)) < 0) {
		return -idx;
	}
	if ((e = lookup(rl, action, user, window)) == NULL) {
		return PL_ENOMEM;
	}
	if (e->window != window) {
		reset(e, window);
	}
	for (k = 0; k < e->nremotes && e->remotes[k].node != idx; k++) {
	}
	if (k == e->nremotes) {
		if (e->nremotes == e->capremotes) {
			uint8_t cap = e->capremotes ? e->capremotes * 2 : 2;
			struct remote *p =
			    realloc(e->remotes, cap * sizeof(*p));

			if (p == NULL) {
				return PL_ENOMEM;
			}
			e->remotes = p;
			e->capremotes = cap;
		}
		e->remotes[k] = (struct remote){ (uint8_t)idx, 0 };
		e->nremotes++;
	}
	/* Totals only grow within a window; an older report is stale. */
	if (count > e->remotes[k].count) {
		e->remote += count - e->remotes[k].count;
		e->remotes[k].count = count;
	}
	return PL_OK;
}

unsigned
brk_ratelimit_window_ms(const brk_ratelimit *rl)
{
	return rl->window_ms;
}

size_t
brk_ratelimit_sweep(brk_ratelimit *rl, uint64_t now_ms)
{
	uint64_t window;
	size_t purged = 0, n;

	if (rl == NULL) {
		return 0;
	}
	window = now_ms / rl->window_ms;
	for (size_t i = 0; i < rl->nslots; i++) {
		purged += sweep_slot(rl, i, window);
	}
	/* Shrink to a load of at least 1/8 so a past spike does not pin
	 * memory. */
	n = rl->nslots;
	while (n > MIN_SLOTS && rl->count < n / 8) {
		n /= 2;
	}
	if (n != rl->nslots) {
		resize(rl, n);
	}
	return purged;
}

size_t
brk_ratelimit_count(const brk_ratelimit *rl)
{
	return rl == NULL ? 0 : rl->count;
}
