/* SPDX-License-Identifier: Apache-2.0 */
/* Firebase keys and multi-path update bodies (see firebase.h). */
#include "proto/firebase.h"

#include "proto/utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char hex[] = "0123456789ABCDEF";

/* Bytes Firebase refuses in a key, and '%', our escape character. */
static bool
forbidden(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '.' || c == '$' || c == '#' ||
	    c == '[' || c == ']' || c == '/' || c == '%';
}

size_t
pro_fb_key_encode(const char *id, size_t n, char *out)
{
	/* Invalid UTF-8 cannot travel in JSON: then every byte >= 0x80 is
	 * escaped, which keeps the key ASCII and the mapping reversible. */
	bool raw_high = pro_utf8_valid(id, n);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		if (forbidden(c) || (c >= 0x80 && !raw_high)) {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}

static int
unhex(char c)
{
	const char *p = c ? strchr(hex, c) : NULL;

	return p ? (int)(p - hex) : -1;
}

bool
pro_fb_key_decode(const char *key, size_t n, char *out, size_t *outlen)
{
	bool escaped_high = false, raw_high = false;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		int a, b, h;

		if (c != '%') {
			if (forbidden(c)) {
				return false;
			}
			raw_high |= c >= 0x80;
			out[o++] = (char)c;
			continue;
		}
		if (n - i < 3 || (a = unhex(key[i + 1])) < 0 ||
		    (b = unhex(key[i + 2])) < 0) {
			return false;
		}
		h = a * 16 + b;
		if (h < 0x80 && !forbidden((unsigned char)h)) {
			return false; /* escaped without need: not ours */
		}
		escaped_high |= h >= 0x80;
		out[o++] = (char)h;
		i += 2;
	}
	out[o] = '\0';
	/* High bytes are all raw (the id is valid UTF-8) or all escaped (it
	 * is not): anything else has no id that encodes to it. */
	if (raw_high && (escaped_high || !pro_utf8_valid(out, o))) {
		return false;
	}
	if (escaped_high && pro_utf8_valid(out, o)) {
		return false;
	}
	*outlen = o;
	return true;
}

/* Appends the key of s, escaped for JSON too: the encoded key holds no
 * control characters, so only quotes and backslashes need it. */
static void
add_key(pl_sbuf *b, const char *s)
{
	size_t n = strlen(s);
	bool raw_high = pro_utf8_valid(s, n);
	char e[3] = { '%', 0, 0 };

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (forbidden(c) || (c >= 0x80 && !raw_high)) {
			e[1] = hex[c >> 4];
			e[2] = hex[c & 15];
			pl_sbuf_add(b, e, 3);
		} else if (c == '"' || c == '\\') {
			pl_sbuf_add(b, "\\", 1);
			pl_sbuf_add(b, &s[i], 1);
		} else {
			pl_sbuf_add(b, &s[i], 1);
		}
	}
}

void
pro_fb_body_add(pl_sbuf *b, const pro_fb_comment *c, bool first)
{
	char num[48];

	pl_sbuf_add(b, first ? "{" : ",", 1);
	/* Comment ids are hex; escaping them too costs nothing and keeps a
	 * replica with an odd id from breaking the batch. */
	pl_sbuf_add(b, "\"", 1);
	add_key(b, c->video_id);
	pl_sbuf_add(b, "/", 1);
	add_key(b, c->id);
	pl_sbuf_add(b, "\"", 1);
	pl_sbuf_str(b, ":{\"user_id\":");
	pl_sbuf_json_str(b, c->user_id);
	pl_sbuf_str(b, ",\"content\":");
	pl_sbuf_json_str(b, c->content);
	snprintf(
	    num, sizeof(num), ",\"inserted_at\":%" PRId64 "}", c->inserted_at);
	pl_sbuf_str(b, num);
}

void
pro_fb_body_end(pl_sbuf *b)
{
	pl_sbuf_add(b, "}", 1);
}
