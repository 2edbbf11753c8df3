/* SPDX-License-Identifier: Apache-2.0 */
/* SWIM-style membership view: one record per node name (self included) with
 * status alive / suspect / dead / left and an incarnation number. Pure logic
 * without I/O or clocks of its own: the caller feeds what arrived and the
 * current time, and sends what this module says to send. Single-threaded. */
#ifndef PARLEY_CLUSTER_MEMBERSHIP_H
#define PARLEY_CLUSTER_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

/* Member status; the numeric order of the four real states is their
 * precedence at equal incarnation. CLU_NONE means "no record". */
typedef enum clu_status {
	CLU_NONE = -1,
	CLU_ALIVE = PRO_WIRE_ALIVE,
	CLU_SUSPECT = PRO_WIRE_SUSPECT,
	CLU_DEAD = PRO_WIRE_DEAD,
	CLU_LEFT = PRO_WIRE_LEFT,
} clu_status;

/* "alive", "suspect", "dead", "left" or "none"; static. */
const char *clu_status_name(clu_status s);

/* One member as shown to callers. Strings are borrowed: valid until the next
 * call that changes the membership. */
typedef struct clu_member_info {
	const char *name;
	const char *address; /* advertised bus URL; "" until known */
	const char *direct;  /* its addressed-path URL; "" until known */
	clu_status status;
	uint64_t incarnation;
	uint64_t start_id;     /* the instance's start time, unix ms */
	uint64_t last_seen_ms; /* caller's clock at the failure detector's last
	                         * sign of life: a direct message, or a
	                         * refutation or restart learnt by gossip */
	bool self;
} clu_member_info;

typedef struct clu_membership_opts {
	uint32_t suspect_after_ms; /* silence before alive -> suspect */
	uint32_t dead_after_ms;    /* further silence before suspect -> dead */
	uint32_t forget_after_ms; /* dead/left records are dropped after this */
	uint32_t stall_ms;        /* a tick gap over this is our own stall */
	size_t max_members;       /* records kept at most (self included) */
} clu_membership_opts;

/* What to do with a message from a sender (see clu_membership_heard). */
typedef enum clu_verdict {
	CLU_ACCEPT = 0,      /* process it */
	CLU_ACCEPT_RESTART,  /* process it; the sender is a new instance of
	                          * a known name: reset per-sender state first */
	CLU_REFUSE_SELF,     /* our own message came back to us */
	CLU_REFUSE_CONFLICT, /* another live node uses this name */
	CLU_REFUSE_STALE,    /* an older instance of a restarted name */
} clu_verdict;

/* A status change, reported once per change in order. */
typedef struct clu_member_event {
	char name[PRO_WIRE_NAME_MAX + 1];
	clu_status old_status; /* CLU_NONE for a new record */
	clu_status new_status; /* CLU_NONE when a record is forgotten */
	bool restarted;        /* the record now describes a new instance */
} clu_member_event;

typedef struct clu_membership clu_membership;

/* Creates a view holding only self (alive, incarnation = start_id).
 * self_name: 1..PRO_WIRE_NAME_MAX printable bytes; self_addr: this node's
 * advertised URL; both copied. Returns PL_OK, PL_EINVAL, PL_ENOMEM. */
int clu_membership_create(clu_membership **out, const char *self_name,
    const char *self_addr, uint64_t start_id, const clu_membership_opts *o);
void clu_membership_destroy(clu_membership *m);

/* Judges and records a message's sender (its envelope header): refreshes
 * the last-heard time, raises the incarnation (a refutation revives), and
 * accepts a restarted instance over a dead or left record. A sender with no
 * record is added as alive (its address comes with its first ping).
 * Conflicts are logged once per instance ("CLU-DUPNAME"). */
clu_verdict clu_membership_heard(clu_membership *m, pro_wire_str name,
    uint64_t incarnation, uint64_t start_id, uint64_t now_ms);

/* Merges a digest received from `sender` (already accepted by heard()).
 * Claims that self is suspect/dead are refuted by raising our incarnation
 * (then clu_membership_take_urgent() returns true).
 * A claim that a member is dead, when that member itself sent us a message
 * within suspect_after_ms, is taken as a suspicion only (as in SWIM's
 * Lifeguard refinements): the claimant's failure detector is not ours, and
 * typically it is stale news from the far side of a healed partition. The
 * member refutes the suspicion by raising its incarnation when the gossip
 * reaches it; if it really died, our own failure detector declares it dead
 * after its silence (at most suspect_after_ms later than the claim would
 * have). Dead verdicts from our own detector (clu_membership_tick) and
 * left announcements are unaffected. */
void clu_membership_merge(clu_membership *m, pro_wire_str sender,
    const pro_wire_member *members, size_t n, uint64_t now_ms);

/* Records a graceful leave by sender (already accepted by heard()). */
void clu_membership_left(clu_membership *m, pro_wire_str name,
    uint64_t incarnation, uint64_t start_id, uint64_t now_ms);

/* Per-sender delivery state, kept with the sender's record and reset when
 * it restarts. clu_membership_duplicate() is true when message seq of an
 * accepted sender was already seen (a 64-message window: each pair of nodes
 * has two connections, so most messages arrive twice).
 * clu_membership_broadcast_seq() orders a publisher's broadcasts: false for
 * a repeat (seq below the next expected), else true with *gap = how many
 * were skipped. Both answer "new, no gap" for a sender without a record. */
bool
clu_membership_duplicate(clu_membership *m, pro_wire_str name, uint64_t seq);
bool clu_membership_broadcast_seq(
    clu_membership *m, pro_wire_str name, uint64_t seq, uint64_t *gap);

/* Runs the failure detector and forgets old records. */
void clu_membership_tick(clu_membership *m, uint64_t now_ms);

/* Marks self as left (final). */
void clu_membership_leave(clu_membership *m);

/* Pops the oldest pending status change; false when none. */
bool clu_membership_next_event(clu_membership *m, clu_member_event *ev);

/* True once after self's incarnation was raised to refute a suspicion: the
 * caller should send a ping at once. */
bool clu_membership_take_urgent(clu_membership *m);

/* True once after a member's address was first learnt or changed (no status
 * event comes with it): the caller should revisit whom it dials. */
bool clu_membership_take_addr_changed(clu_membership *m);

uint64_t clu_membership_incarnation(const clu_membership *m);
uint64_t clu_membership_start_id(const clu_membership *m);
bool clu_membership_self_left(const clu_membership *m);

/* Fills out[0..max) with the digest to gossip (self first); strings borrow
 * from the view until it changes. Returns the count. */
size_t clu_membership_digest(
    const clu_membership *m, pro_wire_member *out, size_t max);

/* The alive or suspect member (self included) with the oldest start id,
 * ties broken by name, or NULL; borrowed until the view changes. Sticky:
 * it changes only when the leader dies or leaves (or an older live
 * instance is learnt, as when two partitions merge). */
const char *clu_membership_leader(const clu_membership *m);

/* Members other than self that are alive or suspect. */
size_t clu_membership_live_others(const clu_membership *m);

/* Status of name, CLU_NONE if unknown. */
clu_status clu_membership_status(const clu_membership *m, const char *name);

/* The advertised URL recorded for name: "" when unknown or no record.
 * Borrowed until the view changes. */
const char *clu_membership_address(const clu_membership *m, const char *name);
/* The member's addressed-path URL (learnt with its address), "" if
 * unknown. Borrowed until the next change. */
const char *clu_membership_direct(const clu_membership *m, const char *name);
/* Sets our own addressed-path URL, sent in every digest (at most
 * PRO_WIRE_ADDR_MAX bytes; longer is cut). */
void clu_membership_set_direct(clu_membership *m, const char *url);

/* Calls fn for every record in name order; fn must not change the view. */
void clu_membership_foreach(const clu_membership *m,
    void (*fn)(void *arg, const clu_member_info *info), void *arg);

/* True while peers keep reporting an older live node with our name (we
 * are the refused newcomer); clears suspect_after_ms after the last report. */
bool clu_membership_self_refused(const clu_membership *m, uint64_t now);

/* Number of name conflicts detected (messages refused as duplicates). */
uint64_t clu_membership_conflicts(const clu_membership *m);

#endif
