/* SPDX-License-Identifier: Apache-2.0 */
/* Counts per key with a cap, for the admission limits: handshakes in flight
 * per source address, sockets per user. An entry exists only while its
 * count is above zero, so the table holds what is in use now. */
#ifndef PARLEY_BROKER_TALLY_H
#define PARLEY_BROKER_TALLY_H

#include <stddef.h>

typedef struct brk_tally brk_tally;
typedef struct brk_tally_entry brk_tally_entry;

/* The hash is keyed with a random seed per table: source addresses are
 * chosen by whoever connects. Returns PL_OK or PL_ENOMEM (*out NULL). */
int brk_tally_create(brk_tally **out);
/* Frees the table and every entry still counted. NULL is a no-op. */
void brk_tally_destroy(brk_tally *t);

/* Counts one more for key[0..len) (len <= 65535) unless its count is
 * already `cap` (0 = no cap). Returns PL_OK with *e the handle to release,
 * PL_ELIMIT at the cap, PL_EINVAL (key too long), PL_ENOMEM; *e is NULL
 * unless PL_OK. */
int brk_tally_take(brk_tally *t, const void *key, size_t len, unsigned cap,
    brk_tally_entry **e);
/* Counts one less; at zero the entry is freed and e becomes invalid. */
void brk_tally_release(brk_tally *t, brk_tally_entry *e);

/* The count of key (0 when absent), and the number of keys counted. */
unsigned brk_tally_count(const brk_tally *t, const void *key, size_t len);
size_t brk_tally_keys(const brk_tally *t);

#endif
