/* SPDX-License-Identifier: Apache-2.0 */
/* The presence hub alone, on a libevent loop of its own, with its real
 * CRDT: no sockets, storage or cluster. What a joiner's presence_state
 * holds (everyone tracked before it, itself included, within one tick, after
 * leaves, through the cache's rebuilds, with a remote replica merged in),
 * the coalesced presence_diff per tick, a remote node flapping within one
 * tick, tick pacing under a flood of deliveries, the device limit after a
 * merge, and a constructor that leaves nothing behind. */
#include "broker/presence.h"
#include "cluster/presence.h"
#include "common/err.h"
#include "tests/unit/test.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* What the hub sent through its callbacks. */
typedef struct sink {
	json_t *states;    /* [[to, payload], ...] */
	json_t *diffs;     /* [[topic, payload], ...] */
	json_t *closed;    /* [[owner, event|null], ...] */
	size_t fake_reach; /* sockets a diff "reached", 0 = one */
	brk_presence *hub; /* for close: untrack as a channel's end would */
} sink;

static sink out;
static struct event_base *base;

static json_t *
parse(const char *text, size_t len)
{
	json_error_t e;
	json_t *v = json_loadb(text, len, 0, &e);

	if (v == NULL) {
		fprintf(stderr, "  unparsable: %.*s (%s)\n", (int)len, text,
		    e.text);
	}
	return v;
}

static void
on_push(void *arg, void *to, const pl_slice *payload, size_t n)
{
	sink *s = arg;
	size_t i, len = 0;
	char *text;
	json_t *v;

	for (i = 0; i < n; i++) {
		len += payload[i].len;
	}
	text = malloc(len + 1);
	for (len = 0, i = 0; i < n; i++) {
		memcpy(text + len, payload[i].p, payload[i].len);
		len += payload[i].len;
	}
	v = parse(text, len);
	free(text);
	json_array_append_new(s->states,
	    json_pack("[s, o]", (const char *)to, v ? v : json_null()));
}

static size_t
on_broadcast(void *arg, const char *topic, const char *payload, size_t len)
{
	sink *s = arg;
	json_t *v = parse(payload, len);

	json_array_append_new(
	    s->diffs, json_pack("[s, o]", topic, v ? v : json_null()));
	return s->fake_reach ? s->fake_reach : 1;
}

static void
on_close(void *arg, uint64_t owner, const char *event)
{
	sink *s = arg;

	json_array_append_new(
	    s->closed, json_pack("[I, s?]", (json_int_t)owner, event));
	brk_presence_untrack(s->hub, owner);
}

static brk_presence_env
env_for(const char *node, long tick_ms, long max_devices)
{
	brk_presence_env env;

	memset(&env, 0, sizeof(env));
	env.base = base;
	env.node = node;
	env.vsn = 1;
	env.tick_ms = tick_ms;
	env.max_devices = max_devices;
	env.push = on_push;
	env.broadcast = on_broadcast;
	env.close = on_close;
	env.arg = &out;
	return env;
}

static brk_presence *
start(long tick_ms, long max_devices)
{
	brk_presence_env env = env_for("n1", tick_ms, max_devices);
	brk_presence *p = NULL;

	base = event_base_new();
	memset(&out, 0, sizeof(out));
	out.states = json_array();
	out.diffs = json_array();
	out.closed = json_array();
	env.base = base;
	ASSERT_OK(brk_presence_create(&p, &env));
	out.hub = p;
	return p;
}

static void
stop(brk_presence *p)
{
	brk_presence_destroy(p);
	event_base_free(base);
	json_decref(out.states);
	json_decref(out.diffs);
	json_decref(out.closed);
}

/* Runs the loop until the pending tick has gone by (or its period, with
 * some slack, when none is pending). */
static void
wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void
run_tick(brk_presence *p)
{
	long ms = brk_presence_tick_period(p) + 20;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *guard = evtimer_new(base, wake, NULL);

	evtimer_add(guard, &tv);
	event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
}

static void
track(brk_presence *p, uint64_t owner, const char *topic, const char *key)
{
	ASSERT_OK(brk_presence_track(
	    p, owner, topic, key, "{\"online_at\":1700000000}"));
}

/* Tracks key for owner and pushes its state, as a channel's after_join. */
static json_t *
join(brk_presence *p, uint64_t owner, const char *topic, const char *key)
{
	track(p, owner, topic, key);
	ASSERT_OK(brk_presence_push_state(p, topic, (void *)key));
	return json_array_get(
	    json_array_get(out.states, json_array_size(out.states) - 1), 1);
}

static size_t
metas(json_t *obj, const char *key)
{
	return json_array_size(
	    json_object_get(json_object_get(obj, key), "metas"));
}

/* The state as the CRDT holds it now, key -> number of metas. */
static void
truth_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	(void)topic;
	(void)ms;
	json_object_set_new(arg, key, json_integer((json_int_t)n));
}

/* Asserts that state lists exactly what the CRDT holds on topic, each meta
 * with its 16-character phx_ref. */
static void
assert_exact(brk_presence *p, const char *topic, json_t *state)
{
	json_t *truth = json_object(), *v;
	const char *k;

	ASSERT_OK(
	    clu_presence_list(brk_presence_crdt(p), topic, truth_key, truth));
	ASSERT_TRUE(json_is_object(state));
	ASSERT_EQ(json_object_size(state), json_object_size(truth));
	json_object_foreach(truth, k, v)
	{
		json_t *ms =
		    json_object_get(json_object_get(state, k), "metas");
		size_t i;
		if (json_array_size(ms) != (size_t)json_integer_value(v)) {
			TEST_FAIL_("key %s: %zu metas, want %lld", k,
			    json_array_size(ms), json_integer_value(v));
		}
		for (i = 0; i < json_array_size(ms); i++) {
			json_t *ref =
			    json_object_get(json_array_get(ms, i), "phx_ref");
			ASSERT_EQ(json_string_length(ref), 16);
		}
	}
	json_decref(truth);
}

/* A second node, n9, tracks key on topic; its delta merges here. */
static void
merge_remote(brk_presence *p, const char *topic, const char *key)
{
	clu_presence *remote = NULL, *local = brk_presence_crdt(p);
	pro_presence_msg *delta = NULL;

	ASSERT_OK(clu_presence_create(&remote, "n9", 42, NULL, NULL));
	ASSERT_OK(clu_presence_join(
	    remote, 7, topic, key, "{\"online_at\":1}", 15, NULL));
	ASSERT_OK(clu_presence_take_delta(remote, &delta));
	ASSERT_OK(clu_presence_replica_up(local, "n9", 42));
	ASSERT_OK(clu_presence_merge(local, delta));
	pro_presence_msg_destroy(delta);
	clu_presence_destroy(remote);
}

/* ---- cases ---- */

static void
joiners_in_one_tick_see_themselves(void)
{
	brk_presence *p = start(50, 1);
	json_t *s;

	s = join(p, 1, "comments:v", "alice");
	ASSERT_EQ(json_object_size(s), 1);
	ASSERT_EQ(metas(s, "alice"), 1);
	/* bob and carol within the same tick as alice: the old per-tick
	 * cache served them alice's state, without themselves. */
	s = join(p, 2, "comments:v", "bob");
	ASSERT_EQ(json_object_size(s), 2);
	ASSERT_EQ(metas(s, "bob"), 1);
	s = join(p, 3, "comments:v", "carol");
	ASSERT_EQ(json_object_size(s), 3);
	ASSERT_EQ(metas(s, "alice") + metas(s, "bob") + metas(s, "carol"), 3);
	ASSERT_EQ(json_array_size(out.diffs), 0);
	/* The tick sends one diff with the three joins. */
	run_tick(p);
	ASSERT_EQ(json_array_size(out.diffs), 1);
	s = json_object_get(
	    json_array_get(json_array_get(out.diffs, 0), 1), "joins");
	ASSERT_EQ(json_object_size(s), 3);
	/* After the tick the cached text still answers exactly. */
	s = join(p, 4, "comments:v", "dave");
	ASSERT_EQ(json_object_size(s), 4);
	assert_exact(p, "comments:v", s);
	stop(p);
}

static void
join_right_after_a_leave(void)
{
	brk_presence *p = start(50, 1);
	json_t *s;

	join(p, 1, "comments:v", "alice");
	join(p, 2, "comments:v", "bob");
	run_tick(p);
	/* The cache was built with alice and bob; bob leaves and carol joins
	 * within one tick. */
	brk_presence_untrack(p, 2);
	s = join(p, 3, "comments:v", "carol");
	ASSERT_EQ(json_object_size(s), 2);
	ASSERT_EQ(metas(s, "alice"), 1);
	ASSERT_EQ(metas(s, "carol"), 1);
	ASSERT_TRUE(json_object_get(s, "bob") == NULL);
	/* And bob coming back on another socket, still in the tick. */
	s = join(p, 4, "comments:v", "bob");
	ASSERT_EQ(json_object_size(s), 3);
	assert_exact(p, "comments:v", s);
	stop(p);
}

static void
one_key_two_sockets(void)
{
	brk_presence *p = start(50, 1);
	json_t *s, *d;

	join(p, 1, "comments:v", "alice");
	join(p, 2, "comments:v", "bob");
	run_tick(p);
	s = join(p, 3, "comments:v", "bob");
	ASSERT_EQ(metas(s, "bob"), 2);
	ASSERT_TRUE(
	    strcmp(
		json_string_value(json_object_get(
		    json_array_get(
			json_object_get(json_object_get(s, "bob"), "metas"), 0),
		    "phx_ref")),
		json_string_value(json_object_get(
		    json_array_get(
			json_object_get(json_object_get(s, "bob"), "metas"), 1),
		    "phx_ref"))) != 0);
	run_tick(p);
	/* One socket of bob's leaves: one meta left, and a diff leaving
	 * exactly that one. */
	brk_presence_untrack(p, 2);
	s = join(p, 4, "comments:v", "carol");
	ASSERT_EQ(metas(s, "bob"), 1);
	assert_exact(p, "comments:v", s);
	run_tick(p);
	d = json_array_get(json_array_get(out.diffs, 2), 1);
	ASSERT_EQ(metas(json_object_get(d, "leaves"), "bob"), 1);
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 1);
	stop(p);
}

static void
burst_of_200_in_one_tick(void)
{
	brk_presence *p = start(50, 1);
	char key[32];
	int i;

	for (i = 0; i < 200; i++) {
		json_t *s;
		snprintf(key, sizeof(key), "user%03d", i);
		s = join(p, (uint64_t)i + 1, "comments:big", key);
		if (json_object_size(s) != (size_t)i + 1 ||
		    metas(s, key) != 1) {
			TEST_FAIL_(
			    "joiner %d got %zu keys", i, json_object_size(s));
		}
		if (i % 37 == 0) {
			assert_exact(p, "comments:big", s);
		}
	}
	run_tick(p);
	ASSERT_EQ(json_array_size(out.diffs), 1);
	ASSERT_EQ(
	    json_object_size(json_object_get(
		json_array_get(json_array_get(out.diffs, 0), 1), "joins")),
	    200);
	stop(p);
}

/* Random tracks, untracks and ticks on two topics, with awkward keys: every
 * state pushed must equal the CRDT's, whatever the cache went through. */
static void
random_churn_states_exact(void)
{
	static const char *keys[] = { "a", "b", "c\"q", "d\\e", "e\n", "f", "g",
		"h", "ü", "j" };
	brk_presence *p = start(5, 1);
	uint64_t owner = 1, live[64] = { 0 };
	unsigned seed = 12345;
	int i;

	for (i = 0; i < 4000; i++) {
		unsigned r = (seed = seed * 1103515245 + 12345) >> 8;
		const char *topic = r & 1 ? "comments:x" : "comments:y";
		unsigned slot = (r >> 1) % 64, op = (r >> 7) % 20;
		if (op < 12 && live[slot] == 0) {
			char key[32];
			/* Many distinct keys too, so the cache rebuilds. */
			snprintf(key, sizeof(key), "%s%u", keys[(r >> 11) % 10],
			    (r >> 15) % 7);
			live[slot] = owner;
			track(p, owner++, topic, key);
		} else if (op < 19 && live[slot] != 0) {
			brk_presence_untrack(p, live[slot]);
			live[slot] = 0;
		} else if (op == 19) {
			run_tick(p);
		}
		ASSERT_OK(brk_presence_push_state(p, topic, "x"));
		assert_exact(p, topic,
		    json_array_get(json_array_get(out.states,
				       json_array_size(out.states) - 1),
			1));
		json_array_clear(out.states);
	}
	stop(p);
}

static void
remote_presences_in_the_state(void)
{
	brk_presence *p = start(50, 1);
	json_t *s;

	join(p, 1, "comments:f", "alice");
	merge_remote(p, "comments:f", "carol");
	s = join(p, 2, "comments:f", "bob");
	ASSERT_EQ(json_object_size(s), 3);
	ASSERT_EQ(metas(s, "carol"), 1);
	/* n9 declared dead: carol is hidden from the next joiner. */
	ASSERT_OK(clu_presence_replica_down(brk_presence_crdt(p), "n9"));
	s = join(p, 3, "comments:f", "dave");
	ASSERT_TRUE(json_object_get(s, "carol") == NULL);
	assert_exact(p, "comments:f", s);
	stop(p);
}

static void
remote_flap_within_tick(void)
{
	brk_presence *p = start(50, 1);
	clu_presence *local = brk_presence_crdt(p);
	json_t *d;

	join(p, 1, "comments:f", "alice");
	run_tick(p);
	merge_remote(p, "comments:f", "carol");
	run_tick(p);
	d = json_array_get(json_array_get(out.diffs, 1), 1);
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 1);
	/* n9 is declared dead and comes back within one tick: carol must
	 * not be reported as a leave (phoenix.js applies joins first). */
	ASSERT_OK(clu_presence_replica_down(local, "n9"));
	ASSERT_OK(clu_presence_replica_up(local, "n9", 42));
	run_tick(p);
	d = json_array_get(json_array_get(out.diffs, 2), 1);
	ASSERT_EQ(metas(json_object_get(d, "leaves"), "carol"), 0);
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 1);
	/* And a real departure is a leave. */
	ASSERT_OK(clu_presence_replica_permdown(local, "n9"));
	run_tick(p);
	d = json_array_get(json_array_get(out.diffs, 3), 1);
	ASSERT_EQ(metas(json_object_get(d, "leaves"), "carol"), 1);
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 0);
	stop(p);
}

static void
ticks_stretch_under_a_flood(void)
{
	brk_presence *p = start(20, 1);
	char key[16];
	int i;

	/* A topic whose diff reaches 100,000 sockets for one change a tick
	 * costs far more writes than a tick may: the period stretches. */
	out.fake_reach = 100000;
	track(p, 1, "comments:v", "alice");
	run_tick(p);
	ASSERT_TRUE(brk_presence_tick_period(p) >= 200);
	ASSERT_TRUE(brk_presence_tick_period(p) <= 1000);
	/* Joins that each reach few sockets keep the shortest tick. */
	out.fake_reach = 0;
	for (i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "u%d", i);
		track(p, (uint64_t)i + 2, "comments:v", key);
		run_tick(p);
	}
	ASSERT_EQ(brk_presence_tick_period(p), 20);
	stop(p);
}

static void
device_limit_after_merge(void)
{
	brk_presence *p = start(20, 1);

	/* This node admitted device d1 of user u; n9 admitted d2 later. */
	track(p, 1, "presence:u", "d1");
	run_tick(p);
	merge_remote(p, "presence:u", "d2");
	brk_presence_after_merge(p);
	run_tick(p);
	/* The older device stays: nothing of ours is closed. */
	ASSERT_EQ(json_array_size(out.closed), 0);
	stop(p);

	/* Now ours is the newer one: it is closed with the event. */
	p = start(20, 1);
	merge_remote(p, "presence:u", "d2");
	track(p, 1, "presence:u", "d1");
	run_tick(p);
	ASSERT_EQ(json_array_size(out.closed), 1);
	ASSERT_EQ(json_integer_value(
		      json_array_get(json_array_get(out.closed, 0), 0)),
	    1);
	ASSERT_STREQ(
	    json_string_value(json_array_get(json_array_get(out.closed, 0), 1)),
	    "device_limit_reached");
	ASSERT_EQ(brk_presence_key_count(p, "presence:u"), 1);
	stop(p);
}

static void
failed_create_leaves_nothing(void)
{
	brk_presence_env env;
	brk_presence *p = (brk_presence *)&env;

	base = event_base_new();
	env = env_for("n1", 0, 1);
	ASSERT_EQ(brk_presence_create(&p, &env), PL_EINVAL);
	ASSERT_TRUE(p == NULL);
	/* An empty replica name fails in the CRDT, after the timers were
	 * made: they are freed (ASan's leak check holds us to it). */
	env = env_for("", 50, 1);
	p = (brk_presence *)&env;
	ASSERT_EQ(brk_presence_create(&p, &env), PL_EINVAL);
	ASSERT_TRUE(p == NULL);
	event_base_free(base);
}

TEST_LIST{
	TEST_ENTRY(joiners_in_one_tick_see_themselves),
	TEST_ENTRY(join_right_after_a_leave),
	TEST_ENTRY(one_key_two_sockets),
	TEST_ENTRY(burst_of_200_in_one_tick),
	TEST_ENTRY(random_churn_states_exact),
	TEST_ENTRY(remote_presences_in_the_state),
	TEST_ENTRY(remote_flap_within_tick),
	TEST_ENTRY(ticks_stretch_under_a_flood),
	TEST_ENTRY(device_limit_after_merge),
	TEST_ENTRY(failed_create_leaves_nothing),
};
TEST_MAIN()
