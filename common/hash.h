/* SPDX-License-Identifier: Apache-2.0 */
/* Small hash functions for the in-memory tables (topics, channels, presence
 * changes). Not for anything an attacker could exploit beyond slowing one
 * bucket: tables resize, and keys come from authenticated clients. */
#ifndef PARLEY_COMMON_HASH_H
#define PARLEY_COMMON_HASH_H

#include <stdint.h>

/* FNV-1a over a NUL-terminated string. */
static inline uint64_t
pl_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	}
	return h;
}

/* The murmur3 finalizer: spreads sequential ids over the buckets. */
static inline uint64_t
pl_hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

#endif
