/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench presence scenario, the coordinator's side: the join phase,
 * then one churn phase at a fixed rate and one as fast as replies allow,
 * each drained until the diffs stop; the figures that show what one join or
 * leave costs each member, the notes that say when the bench was the limit,
 * and the table and JSON output. */
#include "tests/bench/bench_presence.h"
#include "tests/bench/bench_report.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BUSY 0.90
#define DEFAULT_RATE 20.0

typedef struct pphase {
	char name[24];
	double rate;
	int64_t changes, joins, leaves, sent, errors, closed, member_states;
	double changes_ps, j50, j99, l50, l99;
	double dps, dps_member, per_diff, bytes_change, seen;
	double state_avg, diff_max, drain_s;
	double srv, recv, churn, machine, other, behind_ms;
	char notes[400];
} pphase;

/* Appends to a phase's notes (see bench_note_add). */
#define note(p, ...) bench_note_add((p)->notes, sizeof((p)->notes), __VA_ARGS__)

static FILE *
out(const bench_opts *o)
{
	return o->json ? stderr : stdout;
}

static double
pct_ms(const uint64_t *h, double q)
{
	return (double)bench_hist_pct(h, q) / 1e6;
}

/* Waits (up to 15 s) until the server is nearly idle, so that a phase does
 * not pay for the previous one's backlog. */
static void
wait_idle(const bench_opts *o)
{
	int64_t until = bench_now() + 15 * BENCH_NS;
	double cpu[BENCH_MAX_URLS], machine;
	bench_sample a, b;

	if (o->npids == 0) {
		return;
	}
	do {
		bench_sample_take(o, &a);
		bench_sleep_until(a.at + BENCH_NS / 4);
		bench_sample_take(o, &b);
		bench_sample_diff(o, &a, &b, cpu, &machine);
	} while (cpu[0] > 0.15 && bench_now() < until);
}

static int
step(const bench_opts *o, int which, bench_agg *a, double *srv)
{
	bench_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.step = which;
	return bench_step(o, &cmd, a, srv);
}

/* The members join (the churner's sockets only upgrade), then the diffs of
 * the joins drain. */
static int
join_phase(const bench_opts *o, json_t *j, int64_t *members)
{
	FILE *f = out(o);
	bench_agg a, d;
	bench_sample s0, s1;
	double srv[BENCH_MAX_URLS], secs, settle;
	const bench_report *m = &a.k[K_RECV], *dm = &d.k[K_RECV];
	char cpus[96];

	bench_sample_take(o, &s0);
	if (step(o, ST_CONNECT, &a, srv) != 0) {
		return -1;
	}
	bench_sample_take(o, &s1);
	bench_sample_diff(o, &s0, &s1, srv, &a.machine_busy);
	secs = m->last_ns > m->first_ns
	    ? (double)(m->last_ns - m->first_ns) / 1e9
	    : 0;
	/* CPU shares over a very short step are tick noise: leave them out. */
	if (s1.at - s0.at < BENCH_NS / 2) {
		snprintf(cpus, sizeof(cpus), "too short to sample");
	} else {
		snprintf(cpus, sizeof(cpus),
		    "server %.0f%%, busiest bench worker "
		    "%.0f%%",
		    srv[0] * 100, a.cpu_max[K_RECV] * 100);
		if (srv[0] < 0) {
			snprintf(cpus, sizeof(cpus),
			    "busiest bench worker %.0f%%",
			    a.cpu_max[K_RECV] * 100);
		}
	}
	fprintf(f,
	    "members: %lld/%lld joined one topic in %.2f s: %.0f/s "
	    "(failed %lld%s%s); CPU: %s; churner: %lld/%lld sockets upgraded\n",
	    (long long)m->joined, (long long)m->conns, secs,
	    secs > 0 ? (double)m->joined / secs : 0, (long long)m->failed,
	    m->error[0] ? ": " : "", m->error, cpus,
	    (long long)a.k[K_PUB].joined, (long long)a.k[K_PUB].conns);
	*members = m->joined;
	if (m->joined == 0 || a.k[K_PUB].joined == 0) {
		return -1;
	}
	/* The drain's report goes on from the join's: all it caused. */
	if (step(o, ST_DRAIN, &d, srv) != 0) {
		return -1;
	}
	settle = dm->last_rx_ns > m->last_ns
	    ? (double)(dm->last_rx_ns - m->last_ns) / 1e9
	    : 0;
	fprintf(f,
	    "presence while joining: members received %lld "
	    "presence_state (%.1f MB, largest %.1f KB) and %lld presence_diff "
	    "(%.1f MB); the last diff came %.2f s after the last join\n",
	    (long long)dm->states, (double)dm->state_bytes / 1e6,
	    (double)dm->state_max / 1e3, (long long)dm->diffs,
	    (double)dm->diff_bytes / 1e6, settle);
	json_object_set_new(j, "joins",
	    json_pack("{s:I, s:I, s:I, s:f, s:f, "
		      "s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:s}",
		"sockets", (json_int_t)m->conns, "ready", (json_int_t)m->joined,
		"failed", (json_int_t)m->failed, "seconds", secs, "per_s",
		secs > 0 ? (double)m->joined / secs : 0.0, "server_cpu", srv[0],
		"worker_cpu_max", a.cpu_max[K_RECV], "states",
		(json_int_t)dm->states, "state_bytes",
		(json_int_t)dm->state_bytes, "state_max_bytes",
		(json_int_t)dm->state_max, "diffs", (json_int_t)dm->diffs,
		"diff_bytes", (json_int_t)dm->diff_bytes, "settle_s", settle,
		"churn_sockets", (json_int_t)a.k[K_PUB].joined, "error",
		m->error));
	wait_idle(o);
	return 0;
}

static void
add_notes(const bench_opts *o, pphase *p, const bench_agg *m,
    const bench_agg *d, int64_t members)
{
	const bench_report *rx = &m->k[K_RECV];

	if (p->recv >= BUSY) {
		note(p, "BENCH LIMIT: a member worker used %.0f%% CPU",
		    p->recv * 100);
	}
	if (rx->bytes_in > 0) {
		p->behind_ms = (double)rx->rx_backlog /
		    ((double)rx->bytes_in / (o->warmup + o->duration + 0.25)) *
		    1000;
		if (p->behind_ms >= 100) {
			note(p,
			    "BENCH LIMIT: members had %.0f ms of traffic "
			    "unread "
			    "at the window's end",
			    p->behind_ms);
		}
	}
	if (p->churn >= BUSY) {
		note(p, "BENCH LIMIT: the churner used %.0f%% CPU",
		    p->churn * 100);
	}
	if (p->rate > 0 && p->changes_ps < p->rate * 0.95) {
		note(p, "churn fell behind: %.1f/s of %.0f/s", p->changes_ps,
		    p->rate);
	}
	if (p->srv >= BUSY) {
		note(p, "server CPU-bound (%.0f%%)", p->srv * 100);
	}
	if (p->machine >= 0.97) {
		note(p, "all CPUs busy");
	}
	if (p->machine >= 0 && p->other >= 0.25) {
		note(p, "other processes used ~%.0f%% of a core",
		    p->other * 100);
	}
	if (p->seen < 0.999 || p->seen > 1.001) {
		/* Expected at max rate: a join and its leave in one tick
		 * reach members as one leave. */
		note(p, "checked members saw %.3f x the changes made", p->seen);
	}
	if (p->member_states > 0) {
		note(p, "%lld presence_state sent to members already in",
		    (long long)p->member_states);
	}
	if (p->drain_s > 3) {
		note(p, "diffs went on %.1f s after the window", p->drain_s);
	}
	if (p->errors > 0) {
		note(p, "%lld error replies (%s)", (long long)p->errors,
		    d->k[K_PUB].error[0] ? d->k[K_PUB].error
					 : d->k[K_RECV].error);
	}
	if (p->closed > 0 || d->k[K_RECV].joined + members == 0) {
		note(p, "%lld sockets closed (%s)", (long long)p->closed,
		    d->k[K_RECV].error[0] ? d->k[K_RECV].error
					  : d->k[K_PUB].error);
	}
}

/* One churn phase: changes during warm-up and window, counted in the
 * window; then a drain until every member's diffs have stopped, so that
 * bytes and metas are complete for every change made. */
static int
churn_phase(const bench_opts *o, double rate, const char *name, int64_t members,
    pphase *p)
{
	bench_cmd cmd;
	bench_agg m, d;
	double srv[BENCH_MAX_URLS], drain_srv[BENCH_MAX_URLS];
	const bench_report *rx, *drx, *ch;
	double secs = o->duration;
	int i;

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->rate = rate;
	memset(&cmd, 0, sizeof(cmd));
	cmd.step = ST_MEASURE;
	cmd.rate = rate;
	cmd.t_start = bench_now() + BENCH_NS / 4;
	cmd.t_measure = cmd.t_start + (int64_t)(o->warmup * 1e9);
	cmd.t_end = cmd.t_measure + (int64_t)(o->duration * 1e9);
	if (bench_step(o, &cmd, &m, srv) != 0 ||
	    step(o, ST_DRAIN, &d, drain_srv) != 0) {
		return -1;
	}
	rx = &m.k[K_RECV];
	drx = &d.k[K_RECV];
	ch = &d.k[K_PUB];
	p->joins = ch->joins;
	p->leaves = ch->leaves;
	p->changes = ch->joins + ch->leaves;
	p->sent = ch->sent;
	p->changes_ps = (double)ch->sent / secs;
	p->j50 = pct_ms(ch->hist, 0.5);
	p->j99 = pct_ms(ch->hist, 0.99);
	p->l50 = pct_ms(ch->ack_hist, 0.5);
	p->l99 = pct_ms(ch->ack_hist, 0.99);
	p->dps = (double)rx->deliveries / secs;
	p->dps_member = p->dps / (double)members;
	p->per_diff = drx->diffs > 0
	    ? (double)p->changes * (double)members / (double)drx->diffs
	    : 0;
	p->bytes_change = p->changes > 0
	    ? (double)drx->diff_bytes / (double)members / (double)p->changes
	    : 0;
	p->seen = drx->checked > 0 && p->changes > 0
	    ? (double)(drx->diff_joins + drx->diff_leaves) /
		(double)drx->checked / (double)p->changes
	    : 0;
	p->member_states = drx->states;
	p->state_avg =
	    ch->states > 0 ? (double)ch->state_bytes / (double)ch->states : 0;
	p->diff_max = (double)drx->diff_max;
	p->drain_s = drx->last_rx_ns > cmd.t_end
	    ? (double)(drx->last_rx_ns - cmd.t_end) / 1e9
	    : 0;
	p->errors = ch->errors + drx->errors;
	p->closed = ch->closed + drx->closed;
	p->srv = srv[0];
	p->recv = m.cpu_max[K_RECV];
	p->churn = m.cpu_max[K_PUB];
	p->machine = m.machine_busy;
	/* What the machine did beyond the server and the bench. */
	p->other = p->machine * (double)sysconf(_SC_NPROCESSORS_ONLN) -
	    m.cpu_sum[K_RECV] - m.cpu_sum[K_PUB];
	for (i = 0; i < o->npids; i++) {
		p->other -= srv[i] > 0 ? srv[i] : 0;
	}
	add_notes(o, p, &m, &d, members);
	wait_idle(o);
	return 0;
}

static void
print_head(FILE *f)
{
	fprintf(f, "%-11s %6s %9s %15s %9s %8s %7s %8s %6s %7s %6s  %s\n",
	    "phase", "rate/s", "changes/s", "join p50/p99 ms", "diffs/s",
	    "/member", "chg/dif", "B/mbr/ch", "seen", "srv CPU", "bench",
	    "notes");
}

static void
print_phase(FILE *f, const pphase *p)
{
	char rate[16] = "max", lat[32], srv[16] = "-";

	if (p->rate > 0) {
		snprintf(rate, sizeof(rate), "%.0f", p->rate);
	}
	if (p->srv >= 0) {
		snprintf(srv, sizeof(srv), "%.0f%%", p->srv * 100);
	}
	snprintf(lat, sizeof(lat), "%.2f / %.2f", p->j50, p->j99);
	fprintf(f,
	    "%-11s %6s %9.1f %15s %9.0f %8.1f %7.1f %8.1f %6.3f %7s "
	    "%5.0f%%  %s\n",
	    p->name, rate, p->changes_ps, lat, p->dps, p->dps_member,
	    p->per_diff, p->bytes_change, p->seen, srv,
	    (p->recv > p->churn ? p->recv : p->churn) * 100,
	    p->notes[0] ? p->notes : "-");
	fprintf(f,
	    "%-11s %lld joins + %lld leaves; leave p50/p99 %.2f / %.2f "
	    "ms; a joiner's presence_state %.0f B; largest diff %.0f B\n",
	    "", (long long)p->joins, (long long)p->leaves, p->l50, p->l99,
	    p->state_avg, p->diff_max);
}

static json_t *
phase_json(const pphase *p)
{
	return json_pack(
	    "{s:s, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f,"
	    " s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:I, s:I, s:f, s:f,"
	    " s:f, s:f, s:f, s:f, s:s}",
	    "name", p->name, "rate", p->rate, "changes", (json_int_t)p->changes,
	    "joins", (json_int_t)p->joins, "leaves", (json_int_t)p->leaves,
	    "changes_per_s", p->changes_ps, "join_p50_ms", p->j50,
	    "join_p99_ms", p->j99, "leave_p50_ms", p->l50, "leave_p99_ms",
	    p->l99, "diffs_per_s", p->dps, "diffs_per_member_s", p->dps_member,
	    "changes_per_diff", p->per_diff, "bytes_per_member_change",
	    p->bytes_change, "seen", p->seen, "member_states",
	    (json_int_t)p->member_states, "joiner_state_bytes", p->state_avg,
	    "diff_max_bytes", p->diff_max, "drain_s", p->drain_s, "errors",
	    (json_int_t)p->errors, "closed", (json_int_t)p->closed,
	    "server_cpu", p->srv, "receiver_cpu_max", p->recv, "churner_cpu",
	    p->churn, "machine_busy", p->machine, "other_cpu", p->other,
	    "receiver_backlog_ms", p->behind_ms, "notes", p->notes);
}

int
bench_presence_scenario(const bench_opts *o, json_t *j)
{
	FILE *f = out(o);
	json_t *arr = json_array();
	double rate = o->rate > 0 ? o->rate : DEFAULT_RATE;
	char name[24];
	int64_t members = 0;
	pphase fixed, max;

	json_object_set_new(j, "phases", arr);
	fprintf(f,
	    "parley-bench presence: %ld members on one topic at %s, %d "
	    "member workers; a churner's users join and leave it at %.0f "
	    "changes/s, then at max (%ld in flight); %.0f s counted per phase "
	    "after %.0f s warm-up\n",
	    o->connections, o->urls[0].text, o->workers, rate, o->window,
	    o->duration, o->warmup);
	if (join_phase(o, j, &members) != 0) {
		return -1;
	}
	print_head(f);
	snprintf(name, sizeof(name), "churn %.0f/s", rate);
	if (churn_phase(o, rate, name, members, &fixed) != 0) {
		return -1;
	}
	print_phase(f, &fixed);
	json_array_append_new(arr, phase_json(&fixed));
	if (churn_phase(o, 0, "churn max", members, &max) != 0) {
		return -1;
	}
	print_phase(f, &max);
	json_array_append_new(arr, phase_json(&max));
	fprintf(f,
	    "each change cost every member %.1f B at %.0f/s and %.1f B "
	    "at max; members got no presence_state after joining: %s\n",
	    fixed.bytes_change, fixed.changes_ps, max.bytes_change,
	    fixed.member_states + max.member_states == 0 ? "yes" : "NO");
	json_object_set_new(j, "summary",
	    json_pack("{s:I, s:f, s:f, s:b}", "members", (json_int_t)members,
		"bytes_per_member_change_fixed", fixed.bytes_change,
		"bytes_per_member_change_max", max.bytes_change,
		"no_state_resends",
		fixed.member_states + max.member_states == 0));
	return 0;
}
