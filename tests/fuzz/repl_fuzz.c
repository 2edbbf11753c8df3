/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for what a peer reaches through comment replication: the
 * replication messages (proto/repl) and the addressed path's request and
 * reply envelopes (proto/wire). Every decoded replication message is
 * encoded again and must decode to the same fields. Any abort or sanitizer
 * report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/repl.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
str_eq(pro_wire_str a, pro_wire_str b)
{
	return a.len == b.len &&
	    (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void
same_comments(const pro_repl_msg *a, const pro_repl_msg *b)
{
	if (a->ncomments != b->ncomments) {
		abort();
	}
	for (size_t i = 0; i < a->ncomments; i++) {
		const pro_repl_comment *x = &a->comments[i],
				       *y = &b->comments[i];

		if (x->seq != y->seq || x->inserted_at != y->inserted_at ||
		    !str_eq(x->id, y->id) ||
		    !str_eq(x->video_id, y->video_id) ||
		    !str_eq(x->user_id, y->user_id) ||
		    !str_eq(x->content, y->content)) {
			abort();
		}
	}
}

static void
round_trip(const pro_repl_msg *m)
{
	pro_wire_buf b;
	pro_repl_msg again;
	int rc = PL_EINVAL;

	pro_wire_buf_init(&b);
	switch (m->type) {
	case PRO_REPL_VEC:
		rc = pro_repl_encode_vec(&b, m->marks, m->nmarks);
		break;
	case PRO_REPL_COMMENTS:
		rc = pro_repl_encode_comments(
		    &b, m->origin, m->flag, m->comments, m->ncomments);
		break;
	case PRO_REPL_ACK:
		rc = pro_repl_encode_ack(&b, m->origin, m->seqs, m->nseqs);
		break;
	case PRO_REPL_PULL:
		rc = pro_repl_encode_pull(&b, m->origin, m->after, m->limit);
		break;
	case PRO_REPL_CHUNK:
		rc = pro_repl_encode_chunk(&b, m->origin, m->through, m->flag,
		    m->comments, m->ncomments);
		break;
	}
	/* Whatever the decoder accepted, the encoder accepts. */
	if (rc != PL_OK || pro_repl_decode(b.data, b.len, &again) != PL_OK) {
		abort();
	}
	if (again.type != m->type || !str_eq(again.origin, m->origin) ||
	    again.after != m->after || again.limit != m->limit ||
	    again.through != m->through || again.flag != m->flag ||
	    again.nmarks != m->nmarks || again.nseqs != m->nseqs) {
		abort();
	}
	for (size_t i = 0; i < m->nmarks; i++) {
		if (!str_eq(again.marks[i].origin, m->marks[i].origin) ||
		    again.marks[i].cw != m->marks[i].cw ||
		    again.marks[i].hw != m->marks[i].hw) {
			abort();
		}
	}
	for (size_t i = 0; i < m->nseqs; i++) {
		if (again.seqs[i] != m->seqs[i]) {
			abort();
		}
	}
	same_comments(m, &again);
	pro_repl_msg_release(&again);
	pro_wire_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pro_repl_msg m;
	pro_wire_str a, b;
	uint32_t k;

	if (pro_repl_decode(data, size, &m) == PL_OK) {
		round_trip(&m);
		pro_repl_msg_release(&m);
	}
	(void)pro_wire_decode_request(data, size, &a, &k, &b);
	(void)pro_wire_decode_reply(data, size, &k, &b);
	return 0;
}
