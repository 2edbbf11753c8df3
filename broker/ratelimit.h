/* SPDX-License-Identifier: Apache-2.0 */
/* Per-user, per-action rate limiting with fixed windows, as Hammer's
 * check_rate("#{action}:#{user_id}", window_ms, limit): the window is
 * now_ms / window_ms and each (action, user) may act `limit` times in it.
 * Counters of past windows are purged so memory follows the active users. */
#ifndef PARLEY_BROKER_RATELIMIT_H
#define PARLEY_BROKER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct brk_ratelimit brk_ratelimit;

/* Parses a --rate-limit value "LIMIT/SECONDS" (e.g. "30/60"): two decimal
 * integers, no signs or spaces, both > 0, SECONDS * 1000 fitting an unsigned.
 * spec: borrowed. On PL_OK stores the limit and the window in milliseconds.
 * Returns PL_OK or PL_EINVAL. */
int brk_ratelimit_parse(const char *spec, unsigned *limit, unsigned *window_ms);

/* Creates a limiter allowing `limit` actions per (action, user) per window of
 * `window_ms` milliseconds. *out: caller destroys with brk_ratelimit_destroy.
 * Returns PL_OK, PL_EINVAL (limit or window 0, out NULL), PL_ENOMEM.
 * A limiter is not thread-safe: use it from one thread (or lock around it). */
int
brk_ratelimit_create(brk_ratelimit **out, unsigned limit, unsigned window_ms);

/* Frees the limiter and all its counters. NULL is fine. */
void brk_ratelimit_destroy(brk_ratelimit *rl);

/* Counts one `action` by `user` at now_ms (any monotonic or wall clock in
 * ms, used consistently). action/user: borrowed, copied if kept.
 * O(1) amortised; also purges a few expired counters per call.
 * Returns PL_OK (allowed and counted), PL_ELIMIT (denied, not counted),
 * PL_EINVAL (NULL args), PL_ENOMEM (could not track a new key; the caller
 * decides, the action was not counted). */
int brk_ratelimit_check(
    brk_ratelimit *rl, const char *action, const char *user, uint64_t now_ms);

/* Purges every counter whose window has ended by now_ms and shrinks the
 * table if it is mostly empty. O(table size): call it from a periodic timer
 * (e.g. once per window), not per action. Returns how many were purged. */
size_t brk_ratelimit_sweep(brk_ratelimit *rl, uint64_t now_ms);

/* Number of counters currently held (live or not yet purged); for stats and
 * tests. */
size_t brk_ratelimit_count(const brk_ratelimit *rl);

/* ---- cluster-wide counting ----
 * Each node counts its own actions; other nodes' counts of the same
 * (action, user) in the same window arrive through brk_ratelimit_merge and
 * count against the limit too. Windows are now_ms / window_ms of the wall
 * clock on every node, so their clocks must agree (NTP). */

/* notify(arg) runs once whenever a counter changes while none was pending
 * (so the caller can schedule one take_changes for a burst). Changes are
 * tracked only once this is set; a changed counter is kept (not purged)
 * until it has been taken. */
void brk_ratelimit_on_change(
    brk_ratelimit *rl, void (*notify)(void *arg), void *arg);

/* Hands every counter changed locally since the last call to fn, with this
 * node's count in its window, and clears the changes. Returns how many. */
size_t brk_ratelimit_take_changes(brk_ratelimit *rl,
    void (*fn)(void *arg, const char *action, const char *user, uint64_t window,
	unsigned count),
    void *arg);

/* Marks every counter of the current window at now_ms with a count of
 * this node's as changed, so the next take_changes hands them all (a node
 * that has just joined learns them). Returns how many. */
size_t brk_ratelimit_touch_all(brk_ratelimit *rl, uint64_t now_ms);

/* node (1..64 printable bytes) counted `count` (its total, not a delta)
 * actions of (action, user) in `window`. Counts of another window than the
 * current one at now_ms are ignored. At most 64 distinct nodes are
 * remembered. Returns PL_OK, PL_EINVAL, PL_ENOMEM, PL_EFULL (too many
 * nodes), PL_ENOTFOUND (another window: ignored). */
int brk_ratelimit_merge(brk_ratelimit *rl, const char *node, const char *action,
    const char *user, uint64_t window, unsigned count, uint64_t now_ms);

unsigned brk_ratelimit_window_ms(const brk_ratelimit *rl);

#endif
