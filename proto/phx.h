/* SPDX-License-Identifier: Apache-2.0 */
/* Phoenix Channels message serializers: V1 (JSON objects) and V2 (JSON arrays
 * and the binary push frame), as phoenix.md section 1 describes. Decoding
 * validates shape and types; encoding takes payloads as ready JSON text so a
 * broadcast is serialized once per serializer version. */
#ifndef PARLEY_PROTO_PHX_H
#define PARLEY_PROTO_PHX_H

#include <jansson.h>
#include <stddef.h>

enum { PRO_PHX_V1 = 1, PRO_PHX_V2 = 2 };

/* A decoded client message. join_ref and ref are JSON values (string, number
 * or null) so replies can echo them with their original type. */
typedef struct pro_phx_msg {
	json_t *join_ref; /* never NULL after a successful decode (json null) */
	json_t *ref;      /* idem */
	char *topic;
	char *event;
	json_t *payload; /* any JSON value; NULL for a binary payload */
	const unsigned char *bin; /* binary payload: points into the frame */
	size_t bin_len;
} pro_phx_msg;

/* Decodes one WebSocket message. `binary` is non-zero for a binary frame
 * (V2 only: kind 0 push). On success returns 0 and fills *m (release with
 * pro_phx_msg_clear; m->bin borrows `data`). On failure returns PL_EINVAL,
 * sets *why to a static reason, and *m holds whatever refs could be read
 * (so an error reply can still echo them) — clear it either way. */
int pro_phx_decode(int vsn, int binary, const char *data, size_t len,
    pro_phx_msg *m, const char **why);

void pro_phx_msg_clear(pro_phx_msg *m);

/* Encodes a message with a payload given as JSON text. join_ref/ref may be
 * NULL (encoded as null). Returns a malloc'ed string (caller frees) and its
 * length in *out_len, or NULL on allocation failure. */
char *pro_phx_encode(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *event, const char *payload,
    size_t payload_len, size_t *out_len);

/* The envelope of a message whose payload the caller sends itself (in
 * pieces): the text before the payload is [0, *payload_at), the text after
 * it [*payload_at, *out_len). Same ownership as pro_phx_encode. */
char *pro_phx_envelope(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *event, size_t *payload_at, size_t *out_len);

/* Encodes a phx_reply: payload {"status": status, "response": response}.
 * response is JSON text (NULL means {}). Same ownership as pro_phx_encode. */
char *pro_phx_encode_reply(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *status, const char *response,
    size_t *out_len);

/* Parses the `vsn` query value: "1.0.0" (or absent) → V1, "2.0.0" → V2,
 * anything else → 0 (refused with 403 as Phoenix does). */
int pro_phx_parse_vsn(const char *vsn);

#endif
