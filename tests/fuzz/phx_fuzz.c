/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the Phoenix message decoder (proto/phx): the first
 * byte picks V1, V2 or a V2 binary frame, the rest is the message. A message
 * that decodes is re-encoded and must decode again to the same topic, event,
 * refs and payload. Any abort or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/phx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
round_trip(int vsn, const pro_phx_msg *m)
{
	char *payload, *enc;
	size_t len;
	pro_phx_msg again;
	const char *why;

	payload = json_dumps(m->payload, JSON_COMPACT | JSON_ENCODE_ANY);
	if (payload == NULL) {
		return;
	}
	enc = pro_phx_encode(vsn, m->join_ref, m->ref, m->topic, m->event,
	    payload, strlen(payload), &len);
	free(payload);
	if (enc == NULL) {
		return;
	}
	if (pro_phx_decode(vsn, 0, enc, len, &again, &why) != 0) {
		abort();
	}
	if (strcmp(again.topic, m->topic) != 0 ||
	    strcmp(again.event, m->event) != 0 ||
	    !json_equal(again.payload, m->payload) ||
	    !json_equal(again.ref, m->ref) ||
	    (vsn == PRO_PHX_V2 && !json_equal(again.join_ref, m->join_ref))) {
		abort();
	}
	pro_phx_msg_clear(&again);
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pro_phx_msg m;
	const char *why = NULL;
	int mode, vsn, binary;

	if (size < 1) {
		return 0;
	}
	mode = data[0] % 3;
	vsn = mode == 0 ? PRO_PHX_V1 : PRO_PHX_V2;
	binary = mode == 2;
	if (pro_phx_decode(
		vsn, binary, (const char *)data + 1, size - 1, &m, &why) == 0) {
		if (!binary && m.payload != NULL) {
			round_trip(vsn, &m);
		}
	} else if (why == NULL || *why == '\0') {
		abort(); /* every refusal carries a reason for the close */
	}
	pro_phx_msg_clear(&m);
	return 0;
}
