/* SPDX-License-Identifier: Apache-2.0 */
/* Phoenix V1/V2 serializers. Decoding goes through jansson; encoding splices
 * the caller's payload text into a small envelope so that a broadcast payload
 * is never parsed or re-serialized per subscriber. */
#include "proto/phx.h"

#include "common/err.h"
#include "common/sbuf.h"
#include "proto/json_repair.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int
take_str(json_t *v, char **out)
{
	/* Strings may hold NUL (payloads are checked by their channel), but
	 * a topic or event with one would be cut short. */
	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		return PL_EINVAL;
	}
	*out = strndup(json_string_value(v), json_string_length(v));
	return *out ? PL_OK : PL_ENOMEM;
}

/* A ref held as JSON text (load_repaired) is a string with the raw mark.
 * A client may send such a string itself: unless its text is one that
 * jansson refuses (then it reads the same either way), it is wrapped as the
 * JSON text of the string, so that it is echoed as the string it was. */
static json_t *
own_ref(json_t *ref)
{
	const char *s = json_string_value(ref), *raw;
	size_t n = json_string_length(ref), rl;
	json_error_t jerr;
	json_t *probe;
	pl_sbuf b = PL_SBUF_INIT;
	char *text, *wrapped;
	size_t tl, wl;

	if (s == NULL || n == 0 || s[0] != '\0') {
		return ref;
	}
	raw = pro_json_raw(s, n, &rl);
	probe = raw
	    ? json_loadb(raw, rl, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr)
	    : NULL;
	if (raw != NULL && probe == NULL) {
		return ref;
	}
	json_decref(probe);
	text = json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL) {
		return ref;
	}
	tl = strlen(text);
	pl_sbuf_add(&b, PRO_JSON_RAW_MARK, PRO_JSON_RAW_MARK_LEN);
	pl_sbuf_add(&b, text, tl);
	free(text);
	wrapped = pl_sbuf_take(&b, &wl);
	probe = wrapped ? json_stringn(wrapped, wl) : NULL;
	free(wrapped);
	if (probe != NULL) {
		json_decref(ref);
		ref = probe;
	}
	return ref;
}

static int
decode_binary(
    const unsigned char *p, size_t len, pro_phx_msg *m, const char **why)
{
	size_t jl, rl, tl, el, off = 5;

	if (len < 5 || p[0] != 0) {
		*why = "unsupported binary message kind";
		return PL_EINVAL;
	}
	jl = p[1];
	rl = p[2];
	tl = p[3];
	el = p[4];
	if (off + jl + rl + tl + el > len) {
		*why = "truncated binary message";
		return PL_EINVAL;
	}
	m->join_ref =
	    jl ? own_ref(json_stringn((const char *)p + off, jl)) : json_null();
	off += jl;
	m->ref =
	    rl ? own_ref(json_stringn((const char *)p + off, rl)) : json_null();
	off += rl;
	m->topic = strndup((const char *)p + off, tl);
	off += tl;
	m->event = strndup((const char *)p + off, el);
	off += el;
	if (!m->join_ref || !m->ref || !m->topic || !m->event) {
		*why = "invalid binary message";
		return PL_EINVAL;
	}
	m->bin = p + off;
	m->bin_len = len - off;
	return PL_OK;
}

/* Refs are echoed as sent, so a ref jansson cannot hold is kept as its
 * JSON text; a topic or event stays a string (lossy) so that the message
 * can still be answered; anything else jansson cannot hold is refused by
 * the field that reads it. */
static pro_json_policy
member_policy(size_t index, const char *key, size_t keylen, void *arg)
{
	int vsn = *(int *)arg;

	if (vsn == PRO_PHX_V2) {
		return index <= 1 ? PRO_JSON_RAW
		    : index <= 3  ? PRO_JSON_LOSSY
				  : PRO_JSON_EMPTY;
	}
	if ((keylen == 3 && memcmp(key, "ref", 3) == 0) ||
	    (keylen == 8 && memcmp(key, "join_ref", 8) == 0)) {
		return PRO_JSON_RAW;
	}
	if ((keylen == 5 && memcmp(key, "topic", 5) == 0) ||
	    (keylen == 5 && memcmp(key, "event", 5) == 0)) {
		return PRO_JSON_LOSSY;
	}
	return PRO_JSON_EMPTY;
}

/* Valid JSON that jansson refused (see json_repair.h), rewritten. */
static json_t *
load_repaired(int vsn, const char *data, size_t len)
{
	json_error_t jerr;
	json_t *root = NULL;
	size_t fl;
	char *fixed;

	if (pro_json_repair(data, len, member_policy, &vsn, &fixed, &fl) ==
	    PL_OK) {
		root = json_loadb(fixed, fl, JSON_ALLOW_NUL, &jerr);
		free(fixed);
	}
	return root;
}

int
pro_phx_decode(int vsn, int binary, const char *data, size_t len,
    pro_phx_msg *m, const char **why)
{
	json_t *root, *jr, *ref, *topic, *event, *payload;
	json_error_t jerr;
	int rc = PL_EINVAL;

	memset(m, 0, sizeof(*m));
	if (binary) {
		if (vsn != PRO_PHX_V2) {
			*why = "binary frames need vsn 2.0.0";
			return PL_EINVAL;
		}
		return decode_binary((const unsigned char *)data, len, m, why);
	}
	root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
	if (root == NULL) {
		root = load_repaired(vsn, data, len);
	}
	if (root == NULL) {
		*why = "malformed JSON";
		return PL_EINVAL;
	}
	if (vsn == PRO_PHX_V2) {
		/* Phoenix ignores elements past the fifth. */
		if (!json_is_array(root) || json_array_size(root) < 5) {
			*why =
			    "expected [join_ref, ref, topic, event, payload]";
			goto out;
		}
		jr = json_array_get(root, 0);
		ref = json_array_get(root, 1);
		topic = json_array_get(root, 2);
		event = json_array_get(root, 3);
		payload = json_array_get(root, 4);
	} else {
		if (!json_is_object(root)) {
			*why = "expected a JSON object";
			goto out;
		}
		jr = json_object_get(root, "join_ref");
		ref = json_object_get(root, "ref");
		topic = json_object_get(root, "topic");
		event = json_object_get(root, "event");
		payload = json_object_get(root, "payload");
		if (jr == NULL) {
			jr = json_null();
		}
		if (ref == NULL) {
			ref = json_null();
		}
		if (payload == NULL) {
			payload = json_null();
		}
	}
	/* Refs of any JSON type are echoed back unchanged, as Phoenix does. */
	m->ref = own_ref(json_incref(ref));
	m->join_ref = own_ref(json_incref(jr));
	if (take_str(topic, &m->topic) != PL_OK ||
	    take_str(event, &m->event) != PL_OK) {
		*why = "topic and event must be strings";
		goto out;
	}
	m->payload = json_incref(payload);
	rc = PL_OK;
out:
	json_decref(root);
	return rc;
}

void
pro_phx_msg_clear(pro_phx_msg *m)
{
	json_decref(m->join_ref);
	json_decref(m->ref);
	json_decref(m->payload);
	free(m->topic);
	free(m->event);
	memset(m, 0, sizeof(*m));
}

static int
dump_cb(const char *buf, size_t size, void *data)
{
	pl_sbuf_add(data, buf, size);
	return 0;
}

/* Refs are echoed as they came, whatever their JSON type; one jansson
 * could not hold was kept as its text (load_repaired). */
static void
add_json(pl_sbuf *b, const json_t *v)
{
	const char *raw;
	size_t rl;

	if (v == NULL) {
		pl_sbuf_str(b, "null");
		return;
	}
	if (json_is_string(v) &&
	    (raw = pro_json_raw(
		 json_string_value(v), json_string_length(v), &rl)) != NULL) {
		pl_sbuf_add(b, raw, rl);
		return;
	}
	json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The envelope around payload; *at (may be NULL) receives the offset at
 * which the payload starts. */
static char *
encode(int vsn, const json_t *join_ref, const json_t *ref, const char *topic,
    const char *event, const char *payload, size_t payload_len, size_t *at,
    size_t *out_len)
{
	pl_sbuf b = PL_SBUF_INIT;
	size_t pos;

	if (vsn == PRO_PHX_V2) {
		pl_sbuf_str(&b, "[");
		add_json(&b, join_ref);
		pl_sbuf_str(&b, ",");
		add_json(&b, ref);
		pl_sbuf_str(&b, ",");
		pl_sbuf_json_str(&b, topic);
		pl_sbuf_str(&b, ",");
		pl_sbuf_json_str(&b, event);
		pl_sbuf_str(&b, ",");
		pos = b.len;
		pl_sbuf_add(&b, payload, payload_len);
		pl_sbuf_str(&b, "]");
	} else {
		pl_sbuf_str(&b, "{\"topic\":");
		pl_sbuf_json_str(&b, topic);
		pl_sbuf_str(&b, ",\"event\":");
		pl_sbuf_json_str(&b, event);
		pl_sbuf_str(&b, ",\"payload\":");
		pos = b.len;
		pl_sbuf_add(&b, payload, payload_len);
		pl_sbuf_str(&b, ",\"ref\":");
		add_json(&b, ref);
		pl_sbuf_str(&b, "}");
	}
	if (at) {
		*at = pos;
	}
	return pl_sbuf_take(&b, out_len);
}

char *
pro_phx_encode(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *event, const char *payload,
    size_t payload_len, size_t *out_len)
{
	return encode(vsn, join_ref, ref, topic, event, payload, payload_len,
	    NULL, out_len);
}

char *
pro_phx_envelope(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *event, size_t *payload_at, size_t *out_len)
{
	return encode(
	    vsn, join_ref, ref, topic, event, "", 0, payload_at, out_len);
}

char *
pro_phx_encode_reply(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *status, const char *response,
    size_t *out_len)
{
	pl_sbuf p = PL_SBUF_INIT;
	char *out, *payload;
	size_t plen;

	pl_sbuf_str(&p, "{\"status\":");
	pl_sbuf_json_str(&p, status);
	pl_sbuf_str(&p, ",\"response\":");
	pl_sbuf_str(&p, response ? response : "{}");
	pl_sbuf_str(&p, "}");
	payload = pl_sbuf_take(&p, &plen);
	if (payload == NULL) {
		return NULL;
	}
	out = pro_phx_encode(
	    vsn, join_ref, ref, topic, "phx_reply", payload, plen, out_len);
	free(payload);
	return out;
}

int
pro_phx_parse_vsn(const char *vsn)
{
	if (vsn == NULL || strcmp(vsn, "1.0.0") == 0) {
		return PRO_PHX_V1;
	}
	if (strcmp(vsn, "2.0.0") == 0) {
		return PRO_PHX_V2;
	}
	return 0;
}
