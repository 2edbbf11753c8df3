/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for cluster/membership: SWIM precedence, the failure detector's
 * timings, refutation, restarts, duplicate names and leader choice, driven
 * with an explicit clock. */
#include <string.h>

#include "cluster/membership.h"
#include "common/err.h"
#include "tests/unit/test.h"

static clu_membership_opts
opts(void)
{
	clu_membership_opts o = { .suspect_after_ms = 1500,
		.dead_after_ms = 3000,
		.forget_after_ms = 600000,
		.stall_ms = 1000,
		.max_members = 64 };
	return o;
}

static pro_wire_member
entry(const char *name, const char *addr, int status, uint64_t inc,
    uint64_t start)
{
	pro_wire_member e = { pro_wire_cstr(name), pro_wire_cstr(addr),
		(uint8_t)status, inc, start, pro_wire_cstr("") };
	return e;
}

/* Pops one event and checks it. */
#define EXPECT_EVENT(m, nm, o, n)                                              \
	do {                                                                   \
		clu_member_event ev_;                                          \
		ASSERT_TRUE(clu_membership_next_event((m), &ev_));             \
		ASSERT_STREQ(ev_.name, (nm));                                  \
		ASSERT_EQ(ev_.old_status, (o));                                \
		ASSERT_EQ(ev_.new_status, (n));                                \
	} while (0)

/* A direct ping from `name`: heard() and its own digest entry. */
static clu_verdict
ping(clu_membership *m, const char *name, uint64_t inc, uint64_t start,
    uint64_t now)
{
	pro_wire_member e =
	    entry(name, "tcp://x:1", PRO_WIRE_ALIVE, inc, start);
	clu_verdict v =
	    clu_membership_heard(m, pro_wire_cstr(name), inc, start, now);

	if (v == CLU_ACCEPT || v == CLU_ACCEPT_RESTART) {
		clu_membership_merge(m, pro_wire_cstr(name), &e, 1, now);
	}
	return v;
}

/* Ticks every 100 ms like the real loop (a jump would look like a stall). */
static void
tick_to(clu_membership *m, uint64_t from, uint64_t to)
{
	for (uint64_t t = from; t <= to; t += 100) {
		clu_membership_tick(m, t);
	}
}

static void
timeouts_and_leader(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	clu_member_event ev;

	ASSERT_OK(clu_membership_create(&m, "n2", "tcp://n2:1", 1000, &o));
	ASSERT_STREQ(clu_membership_leader(m), "n2");
	ASSERT_EQ(clu_membership_incarnation(m), 1000);
	ASSERT_EQ(ping(m, "n1", 10, 10, 100), CLU_ACCEPT);
	ASSERT_EQ(ping(m, "n3", 30, 30, 100), CLU_ACCEPT);
	EXPECT_EVENT(m, "n1", CLU_NONE, CLU_ALIVE);
	EXPECT_EVENT(m, "n3", CLU_NONE, CLU_ALIVE);
	ASSERT_STREQ(clu_membership_leader(m), "n1");
	ASSERT_EQ(clu_membership_live_others(m), 2);

	/* n3 keeps talking, n1 falls silent at t=100. */
	for (uint64_t t = 200; t <= 4500; t += 100) {
		clu_membership_heard(m, pro_wire_cstr("n3"), 30, 30, t);
		clu_membership_tick(m, t);
		if (t < 1600) {
			ASSERT_EQ(clu_membership_status(m, "n1"), CLU_ALIVE);
		} else if (t < 4600) {
			ASSERT_EQ(clu_membership_status(m, "n1"), CLU_SUSPECT);
		}
	}
	EXPECT_EVENT(m, "n1", CLU_ALIVE, CLU_SUSPECT);
	ASSERT_STREQ(clu_membership_leader(m), "n1"); /* suspects still lead */
	clu_membership_tick(m, 4600);
	ASSERT_EQ(clu_membership_status(m, "n1"), CLU_DEAD);
	EXPECT_EVENT(m, "n1", CLU_SUSPECT, CLU_DEAD);
	ASSERT_TRUE(!clu_membership_next_event(m, &ev));
	/* The next oldest live instance (n3 started at 30, n2 at 1000). */
	ASSERT_STREQ(clu_membership_leader(m), "n3");
	ASSERT_EQ(clu_membership_status(m, "n3"), CLU_ALIVE);

	/* Hearing n1 again at the same incarnation does not revive it: only
	 * its refutation (a higher incarnation) does. */
	ASSERT_EQ(ping(m, "n1", 10, 10, 4700), CLU_ACCEPT);
	ASSERT_EQ(clu_membership_status(m, "n1"), CLU_DEAD);
	ASSERT_EQ(ping(m, "n1", 11, 10, 4800), CLU_ACCEPT);
	ASSERT_EQ(clu_membership_status(m, "n1"), CLU_ALIVE);
	EXPECT_EVENT(m, "n1", CLU_DEAD, CLU_ALIVE);
	ASSERT_STREQ(clu_membership_leader(m), "n1");
	clu_membership_destroy(m);
}

/* The oldest live instance leads, whatever its name; a restart makes a
 * node the youngest, so it never takes the role back; equal starts fall
 * back to the name. */
static void
sticky_leader(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	pro_wire_member e;

	ASSERT_OK(clu_membership_create(&m, "b", "tcp://b:1", 200, &o));
	ASSERT_EQ(ping(m, "a", 300, 300, 0), CLU_ACCEPT);
	ASSERT_EQ(ping(m, "c", 100, 100, 0), CLU_ACCEPT);
	ASSERT_STREQ(clu_membership_leader(m), "c");
	/* c leaves: the next oldest is b (200), not a (first by name). */
	clu_membership_left(m, pro_wire_cstr("c"), 100, 100, 10);
	ASSERT_STREQ(clu_membership_leader(m), "b");
	/* c restarts: a new, younger instance does not move the role. */
	ASSERT_EQ(ping(m, "c", 900, 900, 20), CLU_ACCEPT_RESTART);
	ASSERT_EQ(clu_membership_status(m, "c"), CLU_ALIVE);
	ASSERT_STREQ(clu_membership_leader(m), "b");
	/* Gossip of an even younger member changes nothing either. */
	e = entry("d", "tcp://d:1", PRO_WIRE_ALIVE, 950, 950);
	clu_membership_merge(m, pro_wire_cstr("a"), &e, 1, 30);
	ASSERT_STREQ(clu_membership_leader(m), "b");
	clu_membership_destroy(m);

	/* Equal start ids: the name decides. */
	ASSERT_OK(clu_membership_create(&m, "y", "tcp://y:1", 5, &o));
	ASSERT_EQ(ping(m, "x", 5, 5, 0), CLU_ACCEPT);
	ASSERT_STREQ(clu_membership_leader(m), "x");
	clu_membership_destroy(m);
}

static void
precedence(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	pro_wire_member e;
	clu_member_event ev;

	ASSERT_OK(clu_membership_create(&m, "self", "tcp://s:1", 1, &o));
	ASSERT_EQ(ping(m, "a", 5, 5, 0), CLU_ACCEPT);
	/* Equal incarnation: suspect beats alive, dead beats suspect. */
	e = entry("a", "", PRO_WIRE_SUSPECT, 5, 5);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 10);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_SUSPECT);
	e = entry("a", "", PRO_WIRE_ALIVE, 5, 5);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 10);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_SUSPECT);
	/* (Once "a" itself has been silent for suspect_after_ms: see
	 * dead_claims_while_heard.) */
	e = entry("a", "", PRO_WIRE_DEAD, 5, 5);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 1500);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_DEAD);
	/* An older incarnation loses even with a stronger status. */
	e = entry("a", "", PRO_WIRE_LEFT, 4, 5);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 10);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_DEAD);
	/* A higher incarnation wins. */
	e = entry("a", "", PRO_WIRE_ALIVE, 6, 5);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 10);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_ALIVE);
	/* Left is final for the instance. */
	clu_membership_left(m, pro_wire_cstr("a"), 6, 5, 20);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_LEFT);
	e = entry("a", "", PRO_WIRE_ALIVE, 7, 5);
	clu_membership_merge(m, pro_wire_cstr("a"), &e, 1, 30);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_LEFT);
	ASSERT_STREQ(clu_membership_leader(m), "self");
	/* Gossip about a dead node we never knew creates nothing. */
	e = entry("ghost", "tcp://g:1", PRO_WIRE_DEAD, 1, 1);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 30);
	ASSERT_EQ(clu_membership_status(m, "ghost"), CLU_NONE);
	/* Left and dead records are forgotten after forget_after_ms. */
	while (clu_membership_next_event(m, &ev)) {
	}
	clu_membership_tick(m, 20 + 600000);
	ASSERT_EQ(clu_membership_status(m, "a"), CLU_NONE);
	EXPECT_EVENT(m, "a", CLU_LEFT, CLU_NONE);
	clu_membership_destroy(m);
}

static void
refutation(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	pro_wire_member e, d[4];
	size_t n;

	ASSERT_OK(clu_membership_create(&m, "me", "tcp://me:1", 500, &o));
	ASSERT_TRUE(!clu_membership_take_urgent(m));
	e = entry("me", "tcp://me:1", PRO_WIRE_SUSPECT, 500, 500);
	clu_membership_merge(m, pro_wire_cstr("other"), &e, 1, 0);
	ASSERT_EQ(clu_membership_incarnation(m), 501);
	ASSERT_TRUE(clu_membership_take_urgent(m));
	ASSERT_TRUE(!clu_membership_take_urgent(m));
	/* Old news (lower incarnation) is ignored. */
	e = entry("me", "tcp://me:1", PRO_WIRE_DEAD, 500, 500);
	clu_membership_merge(m, pro_wire_cstr("other"), &e, 1, 0);
	ASSERT_EQ(clu_membership_incarnation(m), 501);
	/* Claims about an older instance of us are ignored. */
	e = entry("me", "tcp://me:1", PRO_WIRE_DEAD, 9999, 400);
	clu_membership_merge(m, pro_wire_cstr("other"), &e, 1, 0);
	ASSERT_EQ(clu_membership_incarnation(m), 501);
	ASSERT_EQ(clu_membership_status(m, "me"), CLU_ALIVE);
	/* The digest carries self first with the new incarnation. */
	ASSERT_EQ(ping(m, "zed", 1, 1, 0), CLU_ACCEPT);
	n = clu_membership_digest(m, d, 4);
	ASSERT_EQ(n, 2);
	ASSERT_TRUE(d[0].name.len == 2 && memcmp(d[0].name.ptr, "me", 2) == 0);
	ASSERT_EQ(d[0].incarnation, 501);
	ASSERT_EQ(d[1].start_id, 1);
	clu_membership_leave(m);
	ASSERT_TRUE(clu_membership_self_left(m));
	ASSERT_STREQ(clu_membership_leader(m), "zed");
	clu_membership_destroy(m);
}

static void
restart_and_conflicts(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	clu_member_event ev;
	pro_wire_member e;

	ASSERT_OK(clu_membership_create(&m, "me", "tcp://me:1", 500, &o));
	ASSERT_EQ(ping(m, "b", 100, 100, 0), CLU_ACCEPT);
	/* Our own message echoed back, and a second node using our name. */
	ASSERT_EQ(clu_membership_heard(m, pro_wire_cstr("me"), 500, 500, 0),
	    CLU_REFUSE_SELF);
	ASSERT_EQ(clu_membership_heard(m, pro_wire_cstr("me"), 900, 900, 0),
	    CLU_REFUSE_CONFLICT);
	/* A second live "b" (newer start) is refused; so is an older one. */
	ASSERT_EQ(ping(m, "b", 200, 200, 10), CLU_REFUSE_CONFLICT);
	ASSERT_EQ(ping(m, "b", 50, 50, 10), CLU_REFUSE_STALE);
	e = entry("b", "tcp://other:1", PRO_WIRE_ALIVE, 200, 200);
	clu_membership_merge(m, pro_wire_cstr("c"), &e, 1, 10);
	ASSERT_TRUE(clu_membership_conflicts(m) >= 3);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_ALIVE);
	/* Once the old "b" is dead, its restarted instance is accepted. */
	tick_to(m, 100, 5000);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_DEAD);
	while (clu_membership_next_event(m, &ev)) {
	}
	ASSERT_EQ(ping(m, "b", 200, 200, 5100), CLU_ACCEPT_RESTART);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_ALIVE);
	ASSERT_TRUE(clu_membership_next_event(m, &ev));
	ASSERT_TRUE(ev.restarted);
	ASSERT_EQ(ev.old_status, CLU_DEAD);
	ASSERT_EQ(ev.new_status, CLU_ALIVE);
	/* And now the old instance is the stale one. */
	ASSERT_EQ(ping(m, "b", 100, 100, 5200), CLU_REFUSE_STALE);
	/* A restart learnt through gossip replaces a dead record too. */
	tick_to(m, 5300, 11000);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_DEAD);
	e = entry("b", "tcp://b2:1", PRO_WIRE_ALIVE, 300, 300);
	clu_membership_merge(m, pro_wire_cstr("c"), &e, 1, 11000);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_ALIVE);
	clu_membership_destroy(m);
}

/* A third party's word that a member is dead, while that member itself
 * talked to us within suspect_after_ms, is a suspicion only; the member's
 * refutation clears it. This is the view of n2 when a partition that cut
 * n1 off heals: n1 gossips "n3 dead", but n2 never lost contact with n3. */
static void
dead_claims_while_heard(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	clu_member_event ev;
	pro_wire_member e[2];

	ASSERT_OK(clu_membership_create(&m, "n2", "tcp://n2:1", 20, &o));
	ASSERT_EQ(ping(m, "n1", 10, 10, 1000), CLU_ACCEPT);
	ASSERT_EQ(ping(m, "n3", 30, 30, 1000), CLU_ACCEPT);
	while (clu_membership_next_event(m, &ev)) {
	}
	/* n1 goes silent and dies in our own detector; n3 keeps talking. */
	for (uint64_t t = 1100; t <= 6000; t += 100) {
		ASSERT_EQ(ping(m, "n3", 30, 30, t), CLU_ACCEPT);
		clu_membership_tick(m, t);
	}
	ASSERT_EQ(clu_membership_status(m, "n1"), CLU_DEAD);
	EXPECT_EVENT(m, "n1", CLU_ALIVE, CLU_SUSPECT);
	EXPECT_EVENT(m, "n1", CLU_SUSPECT, CLU_DEAD);
	ASSERT_TRUE(!clu_membership_next_event(m, &ev));

	/* Heal: n1's stale digest says n3 (and we) are dead. n3 becomes
	 * suspect, never dead; we refute. */
	e[0] = entry("n1", "tcp://n1:1", PRO_WIRE_ALIVE, 11, 10);
	e[1] = entry("n3", "tcp://n3:1", PRO_WIRE_DEAD, 30, 30);
	ASSERT_EQ(clu_membership_heard(m, pro_wire_cstr("n1"), 11, 10, 6050),
	    CLU_ACCEPT);
	clu_membership_merge(m, pro_wire_cstr("n1"), e, 2, 6050);
	ASSERT_EQ(clu_membership_status(m, "n1"), CLU_ALIVE);
	ASSERT_EQ(clu_membership_status(m, "n3"), CLU_SUSPECT);
	EXPECT_EVENT(m, "n1", CLU_DEAD, CLU_ALIVE);
	EXPECT_EVENT(m, "n3", CLU_ALIVE, CLU_SUSPECT);
	/* The same claim again, or with a higher incarnation: still no
	 * more than suspect. */
	clu_membership_merge(m, pro_wire_cstr("n1"), &e[1], 1, 6060);
	e[1].incarnation = 31;
	clu_membership_merge(m, pro_wire_cstr("n1"), &e[1], 1, 6070);
	ASSERT_EQ(clu_membership_status(m, "n3"), CLU_SUSPECT);
	ASSERT_TRUE(!clu_membership_next_event(m, &ev));
	/* Our digest spreads the suspicion to n3, which refutes. */
	{
		pro_wire_member d[4];
		size_t n = clu_membership_digest(m, d, 4);

		ASSERT_EQ(n, 3);
		ASSERT_EQ(d[2].status, PRO_WIRE_SUSPECT);
		ASSERT_EQ(d[2].incarnation, 31);
	}
	ASSERT_EQ(ping(m, "n3", 32, 30, 6100), CLU_ACCEPT);
	ASSERT_EQ(clu_membership_status(m, "n3"), CLU_ALIVE);
	EXPECT_EVENT(m, "n3", CLU_SUSPECT, CLU_ALIVE);
	ASSERT_TRUE(!clu_membership_next_event(m, &ev));

	/* Once n3 has been silent for suspect_after_ms, the word of others
	 * is taken as it is: dead. */
	for (uint64_t t = 6200; t <= 7500; t += 100) {
		ASSERT_EQ(ping(m, "n1", 11, 10, t), CLU_ACCEPT);
		clu_membership_tick(m, t);
	}
	ASSERT_EQ(clu_membership_status(m, "n3"), CLU_ALIVE);
	e[1] = entry("n3", "tcp://n3:1", PRO_WIRE_DEAD, 32, 30);
	clu_membership_merge(m, pro_wire_cstr("n1"), &e[1], 1, 7600);
	ASSERT_EQ(clu_membership_status(m, "n3"), CLU_DEAD);
	EXPECT_EVENT(m, "n3", CLU_ALIVE, CLU_DEAD);
	/* Left is announced by the member itself: never downgraded. */
	ASSERT_EQ(ping(m, "n1", 11, 10, 7700), CLU_ACCEPT);
	e[0] = entry("n1", "tcp://n1:1", PRO_WIRE_LEFT, 11, 10);
	clu_membership_merge(m, pro_wire_cstr("n4"), e, 1, 7700);
	ASSERT_EQ(clu_membership_status(m, "n1"), CLU_LEFT);
	clu_membership_destroy(m);
}

/* Addresses learnt or changed by gossip are signalled once, since no status
 * event comes with them. */
static void
address_changes(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;
	pro_wire_member e;

	ASSERT_OK(clu_membership_create(&m, "me", "tcp://me:1", 1, &o));
	ASSERT_TRUE(!clu_membership_take_addr_changed(m));
	/* Heard first through a message that carries no digest. */
	ASSERT_EQ(
	    clu_membership_heard(m, pro_wire_cstr("b"), 5, 5, 10), CLU_ACCEPT);
	ASSERT_TRUE(!clu_membership_take_addr_changed(m));
	ASSERT_STREQ(clu_membership_address(m, "b"), "");
	e = entry("b", "tcp://b:1", PRO_WIRE_ALIVE, 5, 5);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 20);
	ASSERT_TRUE(clu_membership_take_addr_changed(m));
	ASSERT_STREQ(clu_membership_address(m, "b"), "tcp://b:1");
	ASSERT_STREQ(clu_membership_address(m, "me"), "tcp://me:1");
	ASSERT_STREQ(clu_membership_address(m, "nobody"), "");
	ASSERT_TRUE(!clu_membership_take_addr_changed(m));
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 30);
	ASSERT_TRUE(!clu_membership_take_addr_changed(m));
	/* A third party's idea of b's address does not override b's own. */
	e = entry("b", "tcp://elsewhere:1", PRO_WIRE_ALIVE, 5, 5);
	clu_membership_merge(m, pro_wire_cstr("c"), &e, 1, 40);
	ASSERT_TRUE(!clu_membership_take_addr_changed(m));
	/* A member learnt by gossip comes with its address. */
	e = entry("c", "tcp://c:1", PRO_WIRE_ALIVE, 7, 7);
	clu_membership_merge(m, pro_wire_cstr("b"), &e, 1, 50);
	ASSERT_TRUE(clu_membership_take_addr_changed(m));
	clu_membership_destroy(m);
}

/* A long gap between ticks is our own stall, not our peers' silence. */
static void
stall(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;

	ASSERT_OK(clu_membership_create(&m, "me", "tcp://me:1", 1, &o));
	ASSERT_EQ(ping(m, "b", 1, 1, 1000), CLU_ACCEPT);
	clu_membership_tick(m, 1100);
	clu_membership_tick(m, 7000);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_ALIVE);
	clu_membership_tick(m, 7100);
	clu_membership_tick(m, 7200);
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_ALIVE);
	for (uint64_t t = 7300; t <= 9000; t += 100) {
		clu_membership_tick(m, t);
	}
	ASSERT_EQ(clu_membership_status(m, "b"), CLU_SUSPECT);
	clu_membership_destroy(m);
}

static void
bad_args(void)
{
	clu_membership_opts o = opts();
	clu_membership *m;

	ASSERT_EQ(clu_membership_create(&m, "", "tcp://x:1", 1, &o), PL_EINVAL);
	ASSERT_EQ(
	    clu_membership_create(&m, NULL, "tcp://x:1", 1, &o), PL_EINVAL);
	ASSERT_STREQ(clu_status_name(CLU_SUSPECT), "suspect");
	ASSERT_STREQ(clu_status_name(CLU_NONE), "none");
}

TEST_LIST{
	TEST_ENTRY(timeouts_and_leader),
	TEST_ENTRY(sticky_leader),
	TEST_ENTRY(precedence),
	TEST_ENTRY(refutation),
	TEST_ENTRY(restart_and_conflicts),
	TEST_ENTRY(dead_claims_while_heard),
	TEST_ENTRY(address_changes),
	TEST_ENTRY(stall),
	TEST_ENTRY(bad_args),
};

TEST_MAIN()
