/* SPDX-License-Identifier: Apache-2.0 */
/* What parley writes to a Firebase Realtime Database: the key a video id
 * becomes and the body of one multi-path update (design.md, "Firebase").
 *
 * Keys. Firebase refuses keys holding `.` `$` `#` `[` `]` `/` or ASCII
 * control characters (0x00-0x1f, 0x7f). A video id is written as its key
 * with those bytes, `%` itself, and every byte of a video id that is not
 * valid UTF-8 percent-encoded (`%` and two upper-case hex digits), so the
 * encoding is reversible and ids of letters, digits, `-`, `_`, `:` and any
 * other UTF-8 are written unchanged (docs/protocol.md). The longest video id
 * (256 bytes) encodes to at most 768 bytes, Firebase's key limit. */
#ifndef PARLEY_PROTO_FIREBASE_H
#define PARLEY_PROTO_FIREBASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

/* Longest encoded key of an n-byte id (each byte may become three). */
#define PRO_FB_KEY_MAX(n) ((n)*3)

/* Writes the key of id[0..n) into out (PRO_FB_KEY_MAX(n) + 1 bytes, NUL
 * added) and returns its length. */
size_t pro_fb_key_encode(const char *id, size_t n, char *out);

/* Reverses pro_fb_key_encode: key[0..n) into out (n + 1 bytes, NUL added),
 * *outlen its length. False when key is not the encoding of any id (a bad
 * or lower-case escape, an escape of a byte that needs none, or a byte
 * that should have been escaped). */
bool pro_fb_key_decode(const char *key, size_t n, char *out, size_t *outlen);

/* One comment of a multi-path update. Strings are NUL-terminated; content
 * and user_id are valid UTF-8 (they were when accepted). */
typedef struct pro_fb_comment {
	const char *video_id;
	const char *id;
	const char *user_id;
	const char *content;
	int64_t inserted_at; /* unix ms */
} pro_fb_comment;

/* Appends c to a multi-path update body in b:
 * `"<key>/<id>":{"user_id":…,"content":…,"inserted_at":…}`, preceded by `{`
 * when first and by `,` otherwise. Close the body with pro_fb_body_end. */
void pro_fb_body_add(pl_sbuf *b, const pro_fb_comment *c, bool first);
void pro_fb_body_end(pl_sbuf *b);

#endif
