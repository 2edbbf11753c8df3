/* SPDX-License-Identifier: Apache-2.0 */
/* Phoenix V1/V2 serializers. Decoding goes through jansson; encoding splices
 * the caller's payload text into a small envelope so that a broadcast payload
 * is never parsed or re-serialized per subscriber. */
#include "proto/phx.h"

#include "common/err.h"

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

static int
decode_binary(const unsigned char *p, size_t len, pro_phx_msg *m,
    const char **why)
{
	size_t jl, rl, tl, el, off = 5;

	if (len < 5 || p[0] != 0) {
		*why = "unsupported binary message kind";
		return PL_EINVAL;
	}
	jl = p[1]; rl = p[2]; tl = p[3]; el = p[4];
	if (off + jl + rl + tl + el > len) {
		*why = "truncated binary message";
		return PL_EINVAL;
	}
	m->join_ref = jl ? json_stringn((const char *)p + off, jl) : json_null();
	off += jl;
	m->ref = rl ? json_stringn((const char *)p + off, rl) : json_null();
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
		*why = "malformed JSON";
		return PL_EINVAL;
	}
	if (vsn == PRO_PHX_V2) {
		/* Phoenix ignores elements past the fifth. */
		if (!json_is_array(root) || json_array_size(root) < 5) {
			*why = "expected [join_ref, ref, topic, event, payload]";
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
	m->ref = json_incref(ref);
	m->join_ref = json_incref(jr);
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

/* A growable string; encoding is a handful of appends. */
typedef struct sbuf { char *p; size_t len, cap; int oom; } sbuf;

static void
sb_add(sbuf *b, const char *s, size_t n)
{
	if (b->oom) {
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *np;
		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int
dump_cb(const char *buf, size_t size, void *data)
{
	sb_add(data, buf, size);
	return 0;
}

static void
sb_json(sbuf *b, const json_t *v)
{
	if (v == NULL) {
		sb_str(b, "null");
		return;
	}
	json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Strings are escaped by jansson so topics and events with quotes or control
 * characters still produce valid JSON. */
static void
sb_jstr(sbuf *b, const char *s)
{
	json_t *v = json_string(s);

	if (v == NULL) {
		sb_str(b, "null");
		return;
	}
	sb_json(b, v);
	json_decref(v);
}

static char *
sb_finish(sbuf *b, size_t *out_len)
{
	if (b->oom) {
		free(b->p);
		return NULL;
	}
	*out_len = b->len;
	return b->p;
}

char *
pro_phx_encode(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *event, const char *payload,
    size_t payload_len, size_t *out_len)
{
	sbuf b = { 0 };

	if (vsn == PRO_PHX_V2) {
		sb_str(&b, "[");
		sb_json(&b, join_ref);
		sb_str(&b, ",");
		sb_json(&b, ref);
		sb_str(&b, ",");
		sb_jstr(&b, topic);
		sb_str(&b, ",");
		sb_jstr(&b, event);
		sb_str(&b, ",");
		sb_add(&b, payload, payload_len);
		sb_str(&b, "]");
	} else {
		sb_str(&b, "{\"topic\":");
		sb_jstr(&b, topic);
		sb_str(&b, ",\"event\":");
		sb_jstr(&b, event);
		sb_str(&b, ",\"payload\":");
		sb_add(&b, payload, payload_len);
		sb_str(&b, ",\"ref\":");
		sb_json(&b, ref);
		sb_str(&b, "}");
	}
	return sb_finish(&b, out_len);
}

char *
pro_phx_encode_reply(int vsn, const json_t *join_ref, const json_t *ref,
    const char *topic, const char *status, const char *response,
    size_t *out_len)
{
	sbuf p = { 0 };
	char *out;

	sb_str(&p, "{\"status\":");
	sb_jstr(&p, status);
	sb_str(&p, ",\"response\":");
	sb_str(&p, response ? response : "{}");
	sb_str(&p, "}");
	if (p.oom) {
		free(p.p);
		return NULL;
	}
	out = pro_phx_encode(vsn, join_ref, ref, topic, "phx_reply", p.p, p.len,
	    out_len);
	free(p.p);
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
