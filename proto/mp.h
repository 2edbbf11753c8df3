/* SPDX-License-Identifier: Apache-2.0 */
/* msgpack helpers shared by the cluster codecs: a packer appending to a
 * growable buffer, a pre-scan that bounds what msgpack-c may allocate for
 * peer input before anything is unpacked, and typed getters that check each
 * field. */
#ifndef PARLEY_PROTO_MP_H
#define PARLEY_PROTO_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define PRO_MP_DEPTH_MAX 16

/* Packing state: msgpack-c's pack calls return the write callback's result,
 * which we would have to check after every field; instead the first failed
 * write sets `fail` and later writes are refused. */
typedef struct pro_mp_enc {
	msgpack_packer pk;
	pro_wire_buf *out;
	size_t start; /* out->len before this message */
	int fail;
} pro_mp_enc;

/* Starts appending one message to out (pack into e->pk). */
void pro_mp_enc_begin(pro_mp_enc *e, pro_wire_buf *out);
/* PL_OK, or PL_ENOMEM with out back as it was before begin. */
int pro_mp_enc_end(pro_mp_enc *e);
void pro_mp_pack_str(msgpack_packer *pk, pro_wire_str s);
void pro_mp_pack_bin(msgpack_packer *pk, const void *p, size_t len);

/* Walks the msgpack bytes of the first object in buf[0..len) without
 * allocating: at most max_objects objects nested at most max_depth deep
 * (capped at PRO_MP_DEPTH_MAX), and every container count no larger than the
 * bytes left (each element takes at least one byte). Sets *end to the
 * object's length. False on anything malformed or over a bound. */
bool pro_mp_scan(const void *buf, size_t len, size_t max_objects, int max_depth,
    size_t *end);

/* Unpacks buf[0..len) as exactly one object into up, which this
 * initialises (destroy it after, whatever the result). Returns PL_OK,
 * PL_ENOMEM, PL_EPROTO (malformed, or bytes after the object). Pre-scan
 * peer input with pro_mp_scan first. */
int pro_mp_unpack_one(msgpack_unpacked *up, const void *buf, size_t len);

/* A non-negative integer no larger than max. */
bool pro_mp_uint(const msgpack_object *o, uint64_t max, uint64_t *out);
/* A str; *out borrows the unpacked bytes ("" for an empty one). */
bool pro_mp_str(const msgpack_object *o, pro_wire_str *out);
/* A bin, or a str. */
bool pro_mp_bytes(const msgpack_object *o, pro_wire_str *out);

#endif
