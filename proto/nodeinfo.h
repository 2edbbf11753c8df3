/* SPDX-License-Identifier: Apache-2.0 */
/* The node-facts message nodes exchange over the cluster bus: for now the
 * fingerprint of the secret a node signs client tokens with (a keyed hash,
 * never the secret), so a node started with another secret is noticed at
 * once. msgpack array [version, fingerprint]; decoders ignore trailing
 * elements, so a later version can append facts. */
#ifndef PARLEY_PROTO_NODEINFO_H
#define PARLEY_PROTO_NODEINFO_H

#include <stddef.h>

#define PRO_NODEINFO_VERSION 1
#define PRO_NODEINFO_FP_MAX 64 /* fingerprint bytes */
#define PRO_NODEINFO_MAX_BYTES 1024

/* Encodes [version, fp] into a malloc'ed buffer (*buf, *len; caller
 * frees). fp: 1..PRO_NODEINFO_FP_MAX printable ASCII bytes. Returns PL_OK,
 * PL_EINVAL, PL_ENOMEM. */
int pro_nodeinfo_encode(const char *fp, char **buf, size_t *len);

/* Decodes into fp (NUL-terminated, PRO_NODEINFO_FP_MAX + 1 bytes). Returns
 * PL_OK; PL_EPROTO (malformed, other version, bad fingerprint); PL_ETOOBIG
 * (over PRO_NODEINFO_MAX_BYTES); PL_ENOMEM. */
int pro_nodeinfo_decode(
    const void *buf, size_t len, char fp[PRO_NODEINFO_FP_MAX + 1]);

#endif
