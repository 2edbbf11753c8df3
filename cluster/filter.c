/* SPDX-License-Identifier: Apache-2.0 */
/* Malformed-input accounting and the fault hook's block list (see
 * filter.h). Small fixed tables: a cluster has few connections and the
 * hook blocks a handful of names. */
#include "cluster/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

#define MAX_BAD_PIPES 256

typedef struct bad_pipe {
	uint32_t pipe;
	uint32_t count;
	uint64_t since;
} bad_pipe;

struct clu_filter {
	uint32_t limit, window_ms;
	bad_pipe bad[MAX_BAD_PIPES];
	size_t n_bad;
	char blocked[PRO_WIRE_SKIP_MAX][PRO_WIRE_NAME_MAX + 1];
	size_t n_blocked;
};

int
clu_filter_create(clu_filter **out, uint32_t limit, uint32_t window_ms)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL) {
		return PL_ENOMEM;
	}
	(*out)->limit = limit;
	(*out)->window_ms = window_ms;
	return PL_OK;
}

void
clu_filter_destroy(clu_filter *f)
{
	free(f);
}

bool
clu_filter_malformed(clu_filter *f, uint32_t pipe, uint64_t now)
{
	bad_pipe *b = NULL;

	for (size_t i = 0; i < f->n_bad && b == NULL; i++) {
		b = f->bad[i].pipe == pipe ? &f->bad[i] : NULL;
	}
	if (b != NULL && now - b->since > f->window_ms) {
		b->count = 0;
		b->since = now;
	}
	if (b == NULL) {
		if (f->n_bad == MAX_BAD_PIPES) {
			f->bad[0] = f->bad[--f->n_bad];
		}
		b = &f->bad[f->n_bad++];
		b->pipe = pipe;
		b->count = 0;
		b->since = now;
		LOG_WARN("CLU-MALFORMED",
		    "malformed cluster message on "
		    "connection %u",
		    pipe);
	}
	if (++b->count <= f->limit) {
		return false;
	}
	LOG_WARN("CLU-PEERCUT",
	    "closing connection %u: %u malformed messages "
	    "within %u ms",
	    pipe, b->count, f->window_ms);
	*b = f->bad[--f->n_bad];
	return true;
}

void
clu_filter_expire(clu_filter *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_bad;) {
		if (now - f->bad[i].since > f->window_ms) {
			f->bad[i] = f->bad[--f->n_bad];
		} else {
			i++;
		}
	}
}

int
clu_filter_block(clu_filter *f, const char *name, bool blocked)
{
	for (size_t i = 0; i < f->n_blocked; i++) {
		if (strcmp(f->blocked[i], name) == 0) {
			if (!blocked) {
				memcpy(f->blocked[i],
				    f->blocked[--f->n_blocked],
				    sizeof(f->blocked[i]));
				LOG_WARN("CLU-FAULT",
				    "traffic with %s restored", name);
			}
			return PL_OK;
		}
	}
	if (!blocked) {
		return PL_OK;
	}
	if (f->n_blocked == PRO_WIRE_SKIP_MAX) {
		return PL_EFULL;
	}
	snprintf(f->blocked[f->n_blocked++], sizeof(f->blocked[0]), "%s", name);
	LOG_WARN("CLU-FAULT", "test hook: dropping all traffic with %s", name);
	return PL_OK;
}

static bool
str_eq(pro_wire_str s, const char *c)
{
	return s.ptr != NULL && strlen(c) == s.len &&
	    memcmp(s.ptr, c, s.len) == 0;
}

bool
clu_filter_drops(const clu_filter *f, const pro_wire_hdr *h, const char *self)
{
	for (size_t i = 0; i < f->n_blocked; i++) {
		if (str_eq(h->sender, f->blocked[i])) {
			return true;
		}
	}
	for (size_t i = 0; i < h->n_skip; i++) {
		if (str_eq(h->skip[i], self)) {
			return true;
		}
	}
	return false;
}

bool
clu_filter_blocked(const clu_filter *f, const char *name)
{
	for (size_t i = 0; i < f->n_blocked; i++) {
		if (strcmp(name, f->blocked[i]) == 0) {
			return true;
		}
	}
	return false;
}

size_t
clu_filter_skip(const clu_filter *f, pro_wire_str *skip)
{
	for (size_t i = 0; i < f->n_blocked; i++) {
		skip[i] = pro_wire_cstr(f->blocked[i]);
	}
	return f->n_blocked;
}
