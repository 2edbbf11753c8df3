/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench reconnect scenario, coordinator side: movers join topics of
 * 200 on the first node, residents the same topics on the second; the first
 * node gets SIGTERM (it drains: closes its sockets with 1012 and leaves the
 * cluster); every mover reconnects to the second node as a load balancer
 * would, with phoenix.js's backoff, and rejoins. Reported: the time until
 * all are back, the residents' heartbeats (none may be missed), and
 * whether the second node's presence converged: each topic's
 * presence_state, read by a checker, lists every mover and resident once
 * and nothing else. */
#include "tests/bench/bench_report.h"

#include "broker/auth.h"
#include "proto/phx.h"
#include "proto/ws.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK_TIMEOUT_S 10
#define CONVERGE_MAX_NS (60 * BENCH_NS)
#define CHECK_EVERY_NS (BENCH_NS / 4)

/* ---- the checker: a blocking client that reads presence_state ---- */

typedef struct checker {
	int fd;
	char *buf;
	size_t len, cap;
	uint64_t rng;
} checker;

typedef struct check_result {
	long topics, keys, missing, extra, duplicated;
	json_t *refs; /* key -> phx_ref of its one meta, as read */
} check_result;

static int
chk_fill(checker *k)
{
	ssize_t n;

	if (k->cap - k->len < 65536) {
		size_t cap = k->cap ? k->cap * 2 : 1 << 20;
		char *b = realloc(k->buf, cap);
		if (b == NULL) {
			return -1;
		}
		k->buf = b;
		k->cap = cap;
	}
	n = recv(k->fd, k->buf + k->len, k->cap - k->len, 0);
	if (n <= 0) {
		return -1;
	}
	k->len += (size_t)n;
	return 0;
}

static int
chk_send(checker *k, const char *text)
{
	size_t len = strlen(text), off = 0, n;
	char *f = malloc(len + 14);
	int rc = 0;

	if (f == NULL) {
		return -1;
	}
	n = bench_mask_into(&k->rng, text, len, f);
	while (off < n && rc == 0) {
		ssize_t w = send(k->fd, f + off, n - off, MSG_NOSIGNAL);
		rc = w > 0 ? 0 : -1;
		off += w > 0 ? (size_t)w : 0;
	}
	free(f);
	return rc;
}

/* The next text message, parsed; NULL on a timeout or error. */
static json_t *
chk_next(checker *k)
{
	for (;;) {
		uint64_t plen;
		size_t hl;
		int r = bench_frame_head(
		    (const uint8_t *)k->buf, k->len, 64u << 20, &plen, &hl);
		if (r < 0) {
			return NULL;
		}
		if (r > 0 && k->len >= hl + plen) {
			int op = k->buf[0] & 0x0f;
			json_t *v = op == PRO_WS_TEXT
			    ? json_loadb(k->buf + hl, (size_t)plen, 0, NULL)
			    : NULL;
			memmove(k->buf, k->buf + hl + plen,
			    k->len - hl - (size_t)plen);
			k->len -= hl + (size_t)plen;
			if (op == PRO_WS_CLOSE) {
				return NULL;
			}
			if (v) {
				return v;
			}
			continue;
		}
		if (chk_fill(k) != 0) {
			return NULL;
		}
	}
}

static int
chk_open(checker *k, const bench_opts *o, const bench_url *u)
{
	struct timeval tv = { CHECK_TIMEOUT_S, 0 };
	char user[64], *req = NULL, *tok, *e;
	int len;

	memset(k, 0, sizeof(*k));
	k->rng = (uint64_t)bench_now() | 1;
	snprintf(user, sizeof(user), "b%s-check", o->nonce);
	tok = brk_auth_mint((const uint8_t *)o->secret, strlen(o->secret), user,
	    (int64_t)time(NULL) + 3600);
	k->fd = socket(u->addr.ss_family, SOCK_STREAM, 0);
	if (tok == NULL || k->fd < 0 ||
	    setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(k->fd, (const struct sockaddr *)&u->addr, u->addrlen) ||
	    (len = bench_upgrade_request(&req, u, tok)) < 0 ||
	    send(k->fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
		free(tok);
		free(req);
		return -1;
	}
	free(tok);
	free(req);
	while (k->buf == NULL ||
	    (e = memmem(k->buf, k->len, "\r\n\r\n", 4)) == NULL) {
		if (chk_fill(k) != 0) {
			return -1;
		}
	}
	if (k->len < 12 || memcmp(k->buf, "HTTP/1.1 101", 12) != 0) {
		return -1;
	}
	len = (int)(e + 4 - k->buf);
	memmove(k->buf, k->buf + len, k->len - (size_t)len);
	k->len -= (size_t)len;
	return 0;
}

static void
chk_close(checker *k)
{
	if (k->fd >= 0) {
		close(k->fd);
	}
	free(k->buf);
}

/* Compares one topic's state with who should be there: movers i and
 * residents i with i % topics == t, once each (the checker itself aside).
 * With old (the refs read before the drain), a mover still listed under
 * its old phx_ref is the drained node's entry, left behind: stale. */
static void
expect_key(json_t *state, const char *key, const json_t *old, check_result *res)
{
	json_t *ms = json_object_get(json_object_get(state, key), "metas");
	json_t *ref = json_object_get(json_array_get(ms, 0), "phx_ref");
	size_t n = json_array_size(ms);

	res->missing += n == 0;
	res->duplicated += n > 1;
	if (n == 1 && old &&
	    json_equal(ref, json_object_get((json_t *)old, key))) {
		res->extra++;
	}
	if (n == 1) {
		json_object_set(res->refs, key, ref);
	}
}

static void
compare(const bench_opts *o, long t, json_t *state, const json_t *old,
    check_result *res)
{
	char key[64], self[64];
	const char *k;
	json_t *v;
	long i;

	snprintf(self, sizeof(self), "b%s-check", o->nonce);
	for (i = t; i < o->connections; i += o->topics) {
		snprintf(key, sizeof(key), "b%s-s%ld", o->nonce, i);
		expect_key(state, key, old, res);
	}
	for (i = t; i < o->residents; i += o->topics) {
		snprintf(key, sizeof(key), "b%s-r%ld", o->nonce, i);
		expect_key(state, key, NULL, res);
	}
	json_object_foreach(state, k, v)
	{
		res->keys += strcmp(k, self) != 0;
	}
}

/* Joins every topic on u and compares each presence_state (movers' refs
 * with old's, when given). Returns 0 with *res filled (its refs owned by
 * the caller), or -1 when the checker could not read them all. */
static int
check_presence(const bench_opts *o, const bench_url *u, const json_t *old,
    check_result *res)
{
	checker k;
	char msg[160];
	long t, got = 0, present = 0, stale = 0;
	int rc = -1;

	json_decref(res->refs);
	memset(res, 0, sizeof(*res));
	res->refs = json_object();
	if (chk_open(&k, o, u) != 0) {
		goto out;
	}
	for (t = 0; t < o->topics; t++) {
		snprintf(msg, sizeof(msg),
		    "[\"%ld\",\"%ld\",\"comments:b%s-%ld\",\"phx_join\","
		    "{\"limit\":1}]",
		    t + 1, t + 1, o->nonce, t);
		if (chk_send(&k, msg) != 0) {
			goto out;
		}
	}
	while (got < o->topics) {
		json_t *m = chk_next(&k);
		const char *topic, *ev;
		if (m == NULL) {
			goto out;
		}
		topic = json_string_value(json_array_get(m, 2));
		ev = json_string_value(json_array_get(m, 3));
		if (ev && strcmp(ev, "presence_state") == 0 && topic &&
		    (topic = strrchr(topic, '-')) != NULL) {
			check_result one;
			memset(&one, 0, sizeof(one));
			one.refs = res->refs;
			compare(o, strtol(topic + 1, NULL, 10),
			    json_array_get(m, 4), old, &one);
			res->missing += one.missing;
			res->duplicated += one.duplicated;
			stale += one.extra;
			present += one.keys;
			got++;
		}
		json_decref(m);
	}
	res->topics = got;
	res->keys = present;
	/* Stale: movers listed under the drained node's ref, and keys that
	 * should not be there at all (present = expected - missing +
	 * unexpected). */
	res->extra =
	    stale + present - (o->connections + o->residents - res->missing);
	rc = 0;
out:
	chk_close(&k);
	return rc;
}

/* Checks until the state is exact or the deadline passes; returns when
 * the first exact check completed (0 if none did) and leaves the last
 * result in *res. */
static int64_t
await_exact(const bench_opts *o, const bench_url *u, const json_t *old,
    int64_t deadline, check_result *res)
{
	for (;;) {
		int ok = check_presence(o, u, old, res) == 0;
		int64_t now = bench_now();
		if (ok && res->missing == 0 && res->extra == 0 &&
		    res->duplicated == 0) {
			return now;
		}
		if (now >= deadline) {
			return 0;
		}
		bench_sleep_until(now + CHECK_EVERY_NS);
	}
}

static void
print_check(FILE *f, const char *when, const check_result *r, int64_t dt)
{
	fprintf(f,
	    "presence on node 2 %s: %ld topics, %ld keys; missing %ld, stale "
	    "(the drained node's, or unknown) %ld, duplicated %ld%s",
	    when, r->topics, r->keys, r->missing, r->extra, r->duplicated,
	    r->missing || r->extra || r->duplicated ? " (NOT converged)" : "");
	if (dt > 0) {
		fprintf(f, "; exact %.2f s after SIGTERM", (double)dt / 1e9);
	}
	fputc('\n', f);
}

static json_t *
check_json(const check_result *r, int64_t dt)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:b, s:f}", "topics",
	    (json_int_t)r->topics, "keys", (json_int_t)r->keys, "missing",
	    (json_int_t)r->missing, "stale", (json_int_t)r->extra, "duplicated",
	    (json_int_t)r->duplicated, "exact",
	    !r->missing && !r->extra && !r->duplicated, "seconds_after_sigterm",
	    dt > 0 ? (double)dt / 1e9 : -1.0);
}

int
bench_reconnect_scenario(const bench_opts *o, json_t *j)
{
	FILE *f = o->json ? stderr : stdout;
	const bench_url *u2 = &o->urls[1];
	check_result before = { 0 }, after = { 0 };
	int rc = -1;
	bench_cmd cmd;
	bench_agg a;
	bench_sample s0, s1;
	double srv[BENCH_MAX_URLS], machine;
	const bench_report *r;
	int64_t t_kill, exact_at, all_back;
	double hb_p99;
	int gone;

	fprintf(f,
	    "parley-bench reconnect: %ld movers over %ld topics on %s, "
	    "%ld residents of the same topics on %s; SIGTERM to the first "
	    "node (pid %d), movers come back to the second with phoenix.js's "
	    "backoff\n",
	    o->connections, o->topics, o->urls[0].text, o->residents, u2->text,
	    (int)o->server_pids[0]);
	if (bench_open_all(o, TGT_NODE, "joins", j) != 0 ||
	    (o->residents > 0 &&
		bench_open_all(o, TGT_RESIDENT, "residents", j) != 0)) {
		goto out;
	}
	/* Node 2 must list node 1's presences before the storm starts. */
	if (await_exact(o, u2, NULL, bench_now() + 30 * BENCH_NS, &before) ==
	    0) {
		print_check(f, "before the drain", &before, 0);
		goto out;
	}
	print_check(f, "before the drain", &before, 0);
	json_object_set_new(j, "before", check_json(&before, 0));

	memset(&cmd, 0, sizeof(cmd));
	cmd.step = ST_REJOIN;
	bench_sample_take(o, &s0);
	cmd.t_start = bench_now();
	cmd.t_end = cmd.t_start + 120 * BENCH_NS;
	if (bench_step_send(&cmd) != 0) {
		goto out;
	}
	t_kill = bench_now();
	if (kill(o->server_pids[0], SIGTERM) != 0) {
		fprintf(stderr, "parley-bench: cannot signal pid %d: %s\n",
		    (int)o->server_pids[0], strerror(errno));
		goto out;
	}
	/* Polled while the movers come back; the workers' reports wait. */
	exact_at =
	    await_exact(o, u2, before.refs, t_kill + CONVERGE_MAX_NS, &after);
	if (bench_step_collect(&a) != 0) {
		goto out;
	}
	bench_sample_take(o, &s1);
	bench_sample_diff(o, &s0, &s1, srv, &machine);
	r = &a.k[K_RECV];
	/* The histogram's bucket (3 %) may put p99 past the exact maximum. */
	hb_p99 = (double)bench_hist_pct(r->ack_hist, 0.99);
	hb_p99 = hb_p99 > (double)r->hb_max_ns ? (double)r->hb_max_ns : hb_p99;
	all_back = r->last_ns > t_kill ? r->last_ns - t_kill : 0;
	gone = kill(o->server_pids[0], 0) != 0;
	fprintf(f,
	    "movers: %lld lost by node 1, %lld back on node 2 and rejoined; "
	    "all back %.2f s after SIGTERM (p50 %.2f s, p99 %.2f s); %lld "
	    "attempts, %lld failed%s%s\n",
	    (long long)r->moved, (long long)r->joined, (double)all_back / 1e9,
	    (double)bench_hist_pct(r->hist, 0.5) / 1e9,
	    (double)bench_hist_pct(r->hist, 0.99) / 1e9, (long long)r->attempts,
	    (long long)r->failed, r->error[0] ? ": " : "", r->error);
	fprintf(f,
	    "residents' heartbeats on node 2 (every 1 s each): %lld sent, "
	    "%lld answered, %lld missed; reply p99 %.1f ms, max %.1f ms\n",
	    (long long)r->hb_sent, (long long)r->hb_ok, (long long)r->hb_missed,
	    hb_p99 / 1e6, (double)r->hb_max_ns / 1e6);
	print_check(f, "after", &after, exact_at ? exact_at - t_kill : 0);
	fprintf(f, "node 1 %s; node 2 CPU %.0f%% over the storm\n",
	    gone ? "exited after its drain" : "STILL RUNNING",
	    srv[1] >= 0 ? srv[1] * 100 : -1.0);
	json_object_set_new(j, "reconnect",
	    json_pack("{s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:s, s:I, s:I, "
		      "s:I, s:f, s:f, s:b, s:f}",
		"lost", (json_int_t)r->moved, "rejoined", (json_int_t)r->joined,
		"all_back_s", (double)all_back / 1e9, "p50_s",
		(double)bench_hist_pct(r->hist, 0.5) / 1e9, "p99_s",
		(double)bench_hist_pct(r->hist, 0.99) / 1e9, "attempts",
		(json_int_t)r->attempts, "failed_attempts",
		(json_int_t)r->failed, "error", r->error, "hb_sent",
		(json_int_t)r->hb_sent, "hb_answered", (json_int_t)r->hb_ok,
		"hb_missed", (json_int_t)r->hb_missed, "hb_p99_ms",
		hb_p99 / 1e6, "hb_max_ms", (double)r->hb_max_ns / 1e6,
		"node1_exited", gone, "node2_cpu", srv[1]));
	json_object_set_new(
	    j, "after", check_json(&after, exact_at ? exact_at - t_kill : 0));
	rc = r->joined == r->moved && r->moved == o->connections && exact_at > 0
	    ? 0
	    : -1;
out:
	json_decref(before.refs);
	json_decref(after.refs);
	return rc;
}
