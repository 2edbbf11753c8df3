/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench scenarios: the order of steps for each one, the figures
 * derived from the summed reports, the notes that say when the bench itself
 * (not the server) was the limit, and the table and JSON output. */
#include "tests/bench/bench_report.h"
#include "tests/bench/bench_presence.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUSY 0.90

typedef struct phase {
	char name[40];
	int target;
	double rate;
	double dps, p50, p99, p999; /* deliveries/s, latency in ms */
	double sent_ps, acks_ps, a50, a99, a999;
	int64_t deliveries, sent, acks, errors, skips, backed_up, max_lag,
	    closed;
	int64_t frame_sample;
	double srv_cpu, recv_cpu, pub_cpu, machine, drain_s;
	double other;        /* cores used by everything else */
	double rx_behind_ms; /* receivers' unread data, in time */
	double fpr;          /* deliveries per read that had any */
	char notes[400];
} phase;

/* ---- sums and samples ---- */

void
bench_agg_add(bench_agg *agg, const bench_report *r)
{
	bench_report *a = &agg->k[r->kind];
	double cpu =
	    r->wall_ns > 0 ? (double)r->cpu_ns / (double)r->wall_ns : 0;
	int i;

	agg->nproc[r->kind]++;
	agg->cpu_sum[r->kind] += cpu;
	if (cpu > agg->cpu_max[r->kind]) {
		agg->cpu_max[r->kind] = cpu;
	}
#define SUM(f) a->f += r->f
	SUM(conns);
	SUM(upgraded);
	SUM(joined);
	SUM(refused);
	SUM(failed);
	SUM(closed);
	SUM(deliveries);
	SUM(stray);
	SUM(presence);
	SUM(sent);
	SUM(acks);
	SUM(errors);
	SUM(hb_sent);
	SUM(hb_ok);
	SUM(backed_up);
	SUM(rounds);
	SUM(skips);
	SUM(bytes_in);
	SUM(reads);
	SUM(rx_backlog);
	SUM(diffs);
	SUM(diff_bytes);
	SUM(diff_joins);
	SUM(diff_leaves);
	SUM(checked);
	SUM(states);
	SUM(state_bytes);
	SUM(joins);
	SUM(leaves);
	SUM(moved);
	SUM(attempts);
	SUM(hb_missed);
#undef SUM
	a->diff_max = r->diff_max > a->diff_max ? r->diff_max : a->diff_max;
	a->hb_max_ns =
	    r->hb_max_ns > a->hb_max_ns ? r->hb_max_ns : a->hb_max_ns;
	a->state_max =
	    r->state_max > a->state_max ? r->state_max : a->state_max;
	if (r->max_lag > a->max_lag) {
		a->max_lag = r->max_lag;
	}
	if (r->first_ns && (a->first_ns == 0 || r->first_ns < a->first_ns)) {
		a->first_ns = r->first_ns;
	}
	a->last_ns = r->last_ns > a->last_ns ? r->last_ns : a->last_ns;
	a->wall_ns = r->wall_ns > a->wall_ns ? r->wall_ns : a->wall_ns;
	a->last_rx_ns =
	    r->last_rx_ns > a->last_rx_ns ? r->last_rx_ns : a->last_rx_ns;
	if (a->frame_sample == 0) {
		a->frame_sample = r->frame_sample;
	}
	if (a->error[0] == '\0') {
		memcpy(a->error, r->error, sizeof(a->error));
	}
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		a->hist[i] += r->hist[i];
		a->ack_hist[i] += r->ack_hist[i];
	}
}

void
bench_sleep_until(int64_t t)
{
	struct timespec ts = { (time_t)(t / BENCH_NS), (long)(t % BENCH_NS) };

	while (
	    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
	}
}

/* CPU time pid has used, in ns, from the scheduler's per-thread counters
 * (every thread of the node: its loop, the storage writer, NNG's); /proc's
 * clock ticks (10 ms) would blur a short step. -1 when unknown. */
static long long
proc_cpu_ns(pid_t pid)
{
	char path[64], buf[320];
	long long total = 0, v;
	struct dirent *d;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((dir = opendir(path)) == NULL) {
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.') {
			continue;
		}
		snprintf(buf, sizeof(buf), "/proc/%d/task/%s/schedstat",
		    (int)pid, d->d_name);
		if ((f = fopen(buf, "r")) == NULL) {
			continue; /* a thread that just ended */
		}
		if (fscanf(f, "%lld", &v) == 1) {
			total += v;
		}
		fclose(f);
	}
	closedir(dir);
	return total;
}

void
bench_sample_take(const bench_opts *o, bench_sample *s)
{
	long long v[10] = { 0 };
	FILE *f;
	int i;

	s->at = bench_now();
	for (i = 0; i < BENCH_MAX_URLS; i++) {
		s->srv[i] = i < o->npids ? proc_cpu_ns(o->server_pids[i]) : -1;
	}
	s->busy = s->total = 0;
	f = fopen("/proc/stat", "r");
	if (f &&
	    fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0],
		&v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (i = 0; i < 8; i++) {
			s->total += v[i];
		}
		s->busy = s->total - v[3] - v[4];
	}
	if (f) {
		fclose(f);
	}
}

void
bench_sample_diff(const bench_opts *o, const bench_sample *a,
    const bench_sample *b, double *server_cpu, double *machine)
{
	double secs = (double)(b->at - a->at) / 1e9;
	int i;

	for (i = 0; i < BENCH_MAX_URLS; i++) {
		server_cpu[i] =
		    i < o->npids && a->srv[i] >= 0 && b->srv[i] >= 0 && secs > 0
		    ? (double)(b->srv[i] - a->srv[i]) / 1e9 / secs
		    : -1;
	}
	*machine = b->total > a->total
	    ? (double)(b->busy - a->busy) / (double)(b->total - a->total)
	    : -1;
}

long
bench_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
			break;
		}
	}
	fclose(f);
	return kib;
}

/* ---- phases ---- */

/* Appends to a phase's notes (see bench_note_add). */
#define note(p, ...) bench_note_add((p)->notes, sizeof((p)->notes), __VA_ARGS__)

static double
ms(int64_t ns)
{
	return (double)ns / 1e6;
}

/* Waits (up to 15 s) until every known server is nearly idle, so that a
 * phase does not pay for the previous one's backlog. */
static void
quiesce(const bench_opts *o)
{
	int64_t until = bench_now() + 15 * BENCH_NS;
	bench_sample a, b;
	double cpu[BENCH_MAX_URLS], machine;
	int i, busy;

	if (o->npids == 0) {
		return;
	}
	do {
		bench_sample_take(o, &a);
		bench_sleep_until(a.at + BENCH_NS / 4);
		bench_sample_take(o, &b);
		bench_sample_diff(o, &a, &b, cpu, &machine);
		for (busy = 0, i = 0; i < o->npids; i++) {
			busy |= cpu[i] > 0.15;
		}
	} while (busy && bench_now() < until);
}

static int
measure(const bench_opts *o, int target, double rate, int64_t frame_bytes,
    const char *name, phase *p)
{
	bench_cmd cmd;
	bench_agg a;
	double srv[BENCH_MAX_URLS], secs = o->duration;
	const bench_report *rx, *pub;
	static uint64_t acks[BENCH_HIST_BUCKETS];
	int64_t t_end;
	int i;

	memset(p, 0, sizeof(*p));
	memset(&cmd, 0, sizeof(cmd));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->target = target;
	p->rate = rate;
	cmd.step = ST_MEASURE;
	cmd.target = target;
	cmd.rate = rate;
	cmd.frame_bytes = frame_bytes;
	cmd.t_start = bench_now() + BENCH_NS / 4;
	cmd.t_measure = cmd.t_start + (int64_t)(o->warmup * 1e9);
	cmd.t_end = cmd.t_measure + (int64_t)(o->duration * 1e9);
	if (bench_step(o, &cmd, &a, srv) != 0) {
		return -1;
	}
	rx = &a.k[K_RECV];
	pub = &a.k[K_PUB];
	p->deliveries = rx->deliveries;
	p->dps = (double)rx->deliveries / secs;
	p->p50 = ms(bench_hist_pct(rx->hist, 0.50));
	p->p99 = ms(bench_hist_pct(rx->hist, 0.99));
	p->p999 = ms(bench_hist_pct(rx->hist, 0.999));
	p->frame_sample = rx->frame_sample;
	p->fpr = rx->reads > 0 ? (double)rx->deliveries / (double)rx->reads : 0;
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		acks[i] = rx->ack_hist[i] + pub->ack_hist[i];
	}
	p->sent = rx->sent + pub->sent;
	p->acks = rx->acks + pub->acks;
	p->sent_ps = (double)p->sent / secs;
	p->acks_ps = (double)p->acks / secs;
	p->a50 = ms(bench_hist_pct(acks, 0.50));
	p->a99 = ms(bench_hist_pct(acks, 0.99));
	p->a999 = ms(bench_hist_pct(acks, 0.999));
	p->errors = rx->errors + pub->errors;
	p->backed_up = rx->backed_up + pub->backed_up;
	p->max_lag = rx->max_lag > pub->max_lag ? rx->max_lag : pub->max_lag;
	p->closed = rx->closed + pub->closed;
	p->recv_cpu = a.cpu_max[K_RECV];
	p->pub_cpu = o->scenario == SC_COMMENTS ? 0 : a.cpu_max[K_PUB];
	p->machine = a.machine_busy;
	if (target == TGT_CEILING) {
		p->srv_cpu = a.cpu_max[K_CEIL];
		p->skips = a.k[K_CEIL].skips;
		p->sent = a.k[K_CEIL].rounds;
		p->sent_ps = (double)p->sent / secs;
	} else {
		p->srv_cpu = -1;
		for (i = 0; i < o->npids; i++) {
			p->srv_cpu = srv[i] > p->srv_cpu ? srv[i] : p->srv_cpu;
		}
	}
	/* Who was the limit: these notes keep a figure from passing for the
	 * server's when the bench could not keep up. */
	if (p->recv_cpu >= BUSY) {
		note(p, "BENCH LIMIT: a receiver worker used %.0f%% CPU",
		    p->recv_cpu * 100);
	}
	if (rx->bytes_in > 0) {
		double rate =
		    (double)rx->bytes_in / (o->warmup + o->duration + 0.25);
		p->rx_behind_ms = (double)rx->rx_backlog / rate * 1000;
		if (p->rx_behind_ms >= 100) {
			note(p,
			    "BENCH LIMIT: receivers had %.0f ms of traffic "
			    "unread at the window's end",
			    p->rx_behind_ms);
		}
	}
	if (p->pub_cpu >= BUSY) {
		note(p, "BENCH LIMIT: the publisher used %.0f%% CPU",
		    p->pub_cpu * 100);
	}
	if (rate > 0 && p->sent_ps < rate * 0.95) {
		note(p, "publishing fell behind: %.0f/s of %.0f/s", p->sent_ps,
		    rate);
	}
	if (p->backed_up > 0) {
		note(p,
		    "publish queue backed up (server not reading) in %lld "
		    "ticks, up to %lld publishes late",
		    (long long)p->backed_up, (long long)p->max_lag);
	}
	if (p->srv_cpu >= BUSY) {
		note(p, "server CPU-bound (%.0f%%)", p->srv_cpu * 100);
	}
	/* What the machine did beyond the servers and the bench (whose CPU
	 * times include the softirq work run on their behalf): another
	 * tenant's work skews every figure of the phase. */
	p->other = p->machine * (double)sysconf(_SC_NPROCESSORS_ONLN) -
	    a.cpu_sum[K_RECV] - a.cpu_sum[K_PUB] - a.cpu_sum[K_CEIL];
	for (i = 0; i < o->npids; i++) {
		p->other -= srv[i] > 0 ? srv[i] : 0;
	}
	if (p->machine >= 0.97) {
		note(p, "all CPUs busy");
	}
	if (p->machine >= 0 && p->other >= 0.25) {
		note(p, "other processes used ~%.0f%% of a core",
		    p->other * 100);
	}
	if (p->skips > 0) {
		note(p, "ceiling skipped %lld sends on full sockets",
		    (long long)p->skips);
	}
	if (p->errors > 0) {
		note(p, "%lld error replies (%s)", (long long)p->errors,
		    rx->error[0] ? rx->error : pub->error);
	}
	if (p->closed > 0) {
		note(p, "%lld sockets closed (%s)", (long long)p->closed,
		    rx->error[0] ? rx->error : pub->error);
	}
	t_end = cmd.t_end;
	memset(&cmd, 0, sizeof(cmd));
	cmd.step = ST_DRAIN;
	if (bench_step(o, &cmd, &a, srv) != 0) {
		return -1;
	}
	if (a.k[K_RECV].last_rx_ns > t_end) {
		p->drain_s = (double)(a.k[K_RECV].last_rx_ns - t_end) / 1e9;
	}
	if (p->drain_s > 1) {
		note(p, "deliveries went on %.1f s after the window (backlog)",
		    p->drain_s);
	}
	quiesce(o);
	return 0;
}

/* ---- output ---- */

static FILE *
out(const bench_opts *o)
{
	return o->json ? stderr : stdout;
}

static void
print_head(FILE *f)
{
	fprintf(f, "%-16s %7s %10s %7s %8s %8s %8s %7s %6s  %s\n", "phase",
	    "rate/s", "deliver/s", "fr/read", "p50 ms", "p99 ms", "p99.9ms",
	    "srv CPU", "bench", "notes");
}

static void
print_phase(FILE *f, const phase *p)
{
	char rate[16] = "max", srv[16] = "-";
	double bench = p->recv_cpu > p->pub_cpu ? p->recv_cpu : p->pub_cpu;

	if (p->rate > 0) {
		snprintf(rate, sizeof(rate), "%.0f", p->rate);
	}
	if (p->srv_cpu >= 0) {
		snprintf(srv, sizeof(srv), "%.0f%%", p->srv_cpu * 100);
	}
	fprintf(f, "%-16s %7s %10.0f %7.1f %8.2f %8.2f %8.2f %7s %5.0f%%  %s\n",
	    p->name, rate, p->dps, p->fpr, p->p50, p->p99, p->p999, srv,
	    bench * 100, p->notes[0] ? p->notes : "-");
	if (p->acks > 0 || p->target == TGT_CEILING) {
		fprintf(f, "%-16s %s %.0f/s", "",
		    p->target == TGT_CEILING ? "rounds" : "replies",
		    p->target == TGT_CEILING ? p->sent_ps : p->acks_ps);
	}
	if (p->acks > 0) {
		fprintf(f,
		    ", reply latency p50 %.2f ms, p99 %.2f ms, "
		    "p99.9 %.2f ms",
		    p->a50, p->a99, p->a999);
	}
	if (p->acks > 0 || p->target == TGT_CEILING) {
		fputc('\n', f);
	}
}

static json_t *
phase_json(const phase *p)
{
	return json_pack(
	    "{s:s, s:s, s:f, s:I, s:f, s:f, s:f, s:f, s:I, s:f,"
	    " s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f,"
	    " s:f, s:I, s:f, s:f, s:f, s:s}",
	    "name", p->name, "server",
	    p->target == TGT_CEILING ? "ceiling" : "node", "rate", p->rate,
	    "deliveries", (json_int_t)p->deliveries, "deliveries_per_s", p->dps,
	    "p50_ms", p->p50, "p99_ms", p->p99, "p999_ms", p->p999, "sent",
	    (json_int_t)p->sent, "sent_per_s", p->sent_ps, "replies",
	    (json_int_t)p->acks, "replies_per_s", p->acks_ps, "reply_p50_ms",
	    p->a50, "reply_p99_ms", p->a99, "reply_p999_ms", p->a999, "errors",
	    (json_int_t)p->errors, "closed", (json_int_t)p->closed, "skips",
	    (json_int_t)p->skips, "backed_up", (json_int_t)p->backed_up,
	    "server_cpu", p->srv_cpu, "receiver_cpu_max", p->recv_cpu,
	    "publisher_cpu", p->pub_cpu, "machine_busy", p->machine, "drain_s",
	    p->drain_s, "frame_bytes", (json_int_t)p->frame_sample,
	    "frames_per_read", p->fpr, "other_cpu", p->other,
	    "receiver_backlog_ms", p->rx_behind_ms, "notes", p->notes);
}

static void
emit_json(const bench_opts *o, json_t *j)
{
	if (o->json) {
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	}
}

/* ---- scenarios ---- */

/* Opens the target's sockets on every worker; prints and records the rate
 * at which they became ready (upgraded and joined, presence_state in). */
int
bench_open_all(const bench_opts *o, int target, const char *label, json_t *j)
{
	bench_cmd cmd;
	bench_agg a;
	double srv[BENCH_MAX_URLS], secs, cpu;
	int64_t conns, ready, refused, failed, first, last;
	const bench_report *r = &a.k[K_RECV], *p = &a.k[K_PUB];

	bench_sample s0, s1;
	char cpus[160], pct[16];
	double node_ns = 0, per_join;
	int i;

	memset(&cmd, 0, sizeof(cmd));
	cmd.step = ST_CONNECT;
	cmd.target = target;
	bench_sample_take(o, &s0);
	if (bench_step(o, &cmd, &a, srv) != 0) {
		return -1;
	}
	bench_sample_take(o, &s1);
	bench_sample_diff(o, &s0, &s1, srv, &a.machine_busy);
	for (i = 0; i < o->npids; i++) {
		node_ns += s1.srv[i] >= 0 && s0.srv[i] >= 0
		    ? (double)(s1.srv[i] - s0.srv[i])
		    : 0;
		srv[0] = srv[i] > srv[0] ? srv[i] : srv[0];
	}
	snprintf(pct, sizeof(pct), "%.0f%%", srv[0] * 100);
	conns = r->conns + p->conns;
	ready = r->joined + p->joined;
	refused = r->refused + p->refused;
	failed = r->failed + p->failed;
	first = r->first_ns && (!p->first_ns || r->first_ns < p->first_ns)
	    ? r->first_ns
	    : p->first_ns;
	last = r->last_ns > p->last_ns ? r->last_ns : p->last_ns;
	secs = last > first ? (double)(last - first) / 1e9 : 0;
	cpu = a.cpu_max[K_RECV];
	per_join = ready > 0 ? node_ns / 1e3 / (double)ready : 0;
	/* The servers' CPU is read in ns; the workers' and the machine's in
	 * clock ticks, noise over a very short step: left out then. */
	if (o->npids == 0) {
		snprintf(cpus, sizeof(cpus), "server not sampled");
	} else if (s1.at - s0.at < BENCH_NS / 2) {
		snprintf(cpus, sizeof(cpus), "server %s, %.0f us per join", pct,
		    per_join);
	} else {
		snprintf(cpus, sizeof(cpus),
		    "server %s, %.0f us per join, busiest bench worker "
		    "%.0f%%, machine %.0f%%",
		    srv[0] < 0 ? "-" : pct, per_join, cpu * 100,
		    a.machine_busy * 100);
	}
	fprintf(out(o),
	    "%s: %lld/%lld sockets ready in %.2f s: %.0f/s "
	    "(refused %lld, failed %lld%s%s); %.1f KiB received per socket; "
	    "CPU: %s%s\n",
	    label, (long long)ready, (long long)conns, secs,
	    secs > 0 ? (double)ready / secs : 0, (long long)refused,
	    (long long)failed, r->error[0] || p->error[0] ? ": " : "",
	    r->error[0] ? r->error : p->error,
	    ready > 0
		? (double)(r->bytes_in + p->bytes_in) / 1024 / (double)ready
		: 0.0,
	    cpus,
	    cpu >= BUSY && s1.at - s0.at >= BENCH_NS / 2
		? " BENCH LIMIT: a worker's CPU was saturated"
		: "");
	json_object_set_new(j, label,
	    json_pack("{s:I, s:I, s:I, s:I, s:f, "
		      "s:f, s:f, s:f, s:f, s:f, s:f, s:s}",
		"sockets", (json_int_t)conns, "ready", (json_int_t)ready,
		"refused", (json_int_t)refused, "failed", (json_int_t)failed,
		"seconds", secs, "per_s", secs > 0 ? (double)ready / secs : 0.0,
		"worker_cpu_max", cpu, "server_cpu", srv[0],
		"server_us_per_join", per_join, "bytes_in_per_socket",
		ready > 0 ? (double)(r->bytes_in + p->bytes_in) / (double)ready
			  : 0.0,
		"machine_busy", a.machine_busy, "error",
		r->error[0] ? r->error : p->error));
	return ready > 0 ? 0 : -1;
}

static int
connect_scenario(const bench_opts *o, json_t *j)
{
	FILE *f = out(o);
	pid_t pid = o->npids > 0 ? o->server_pids[0] : 0;
	long rss0 = pid ? bench_rss_kib(pid) : -1, rss1;
	bench_cmd cmd;
	bench_agg a;
	double srv[BENCH_MAX_URLS], machine;
	int64_t joined;
	json_t *ready;
	bench_sample s0, s1;

	fprintf(f,
	    "parley-bench connect: %ld sockets over %ld topics (%ld "
	    "members each) on %s, %d workers\n",
	    o->connections, o->topics,
	    (o->connections + o->topics - 1) / o->topics, o->urls[0].text,
	    o->workers);
	bench_sample_take(o, &s0);
	if (bench_open_all(o, TGT_NODE, "joins", j) != 0) {
		return -1;
	}
	ready = json_object_get(j, "joins");
	joined = json_integer_value(json_object_get(ready, "ready"));
	/* Let presence ticks (the last diffs of the storm) and lazily freed
	 * buffers settle. */
	bench_sleep_until(bench_now() + 2 * BENCH_NS);
	bench_sample_take(o, &s1);
	bench_sample_diff(o, &s0, &s1, srv, &machine);
	if (pid && s0.srv[0] >= 0 && s1.srv[0] >= 0 && joined > 0) {
		double us =
		    (double)(s1.srv[0] - s0.srv[0]) / 1e3 / (double)joined;
		fprintf(f,
		    "server CPU per join with the diffs that follow (2 s "
		    "after the last): %.0f us\n",
		    us);
		json_object_set_new(
		    ready, "server_us_per_join_settled", json_real(us));
	}
	rss1 = pid ? bench_rss_kib(pid) : -1;
	if (rss0 >= 0 && rss1 >= 0 && joined > 0) {
		double per = (double)(rss1 - rss0) * 1024 / (double)joined;
		fprintf(f,
		    "server RSS: %.1f MiB before, %.1f MiB with %lld "
		    "joined sockets: %.0f bytes (%.2f KiB) per socket\n",
		    rss0 / 1024.0, rss1 / 1024.0, (long long)joined, per,
		    per / 1024);
		json_object_set_new(j, "rss",
		    json_pack("{s:I, s:I, s:f}", "before_kib", (json_int_t)rss0,
			"after_kib", (json_int_t)rss1, "bytes_per_socket",
			per));
	}
	memset(&cmd, 0, sizeof(cmd));
	if (o->overflow > 0) {
		cmd.step = ST_OVERFLOW;
		if (bench_step(o, &cmd, &a, srv) != 0) {
			return -1;
		}
		fprintf(f,
		    "overflow: %lld more sockets: %lld refused, %lld "
		    "accepted and joined, %lld failed otherwise%s%s\n",
		    (long long)a.k[K_RECV].conns,
		    (long long)a.k[K_RECV].refused,
		    (long long)a.k[K_RECV].joined,
		    (long long)a.k[K_RECV].failed,
		    a.k[K_RECV].error[0] ? ": " : "", a.k[K_RECV].error);
		json_object_set_new(j, "overflow",
		    json_pack("{s:I, s:I, s:I, "
			      "s:I, s:s}",
			"sockets", (json_int_t)a.k[K_RECV].conns, "refused",
			(json_int_t)a.k[K_RECV].refused, "accepted",
			(json_int_t)a.k[K_RECV].joined, "failed",
			(json_int_t)a.k[K_RECV].failed, "error",
			a.k[K_RECV].error));
	}
	cmd.step = ST_HEARTBEAT;
	if (bench_step(o, &cmd, &a, srv) != 0) {
		return -1;
	}
	fprintf(f,
	    "heartbeat sweep: %lld/%lld open sockets answered in %.2f s, "
	    "%lld closed by the server\n",
	    (long long)a.k[K_RECV].hb_ok, (long long)a.k[K_RECV].hb_sent,
	    (double)a.k[K_RECV].wall_ns / 1e9, (long long)a.k[K_RECV].closed);
	json_object_set_new(j, "heartbeat",
	    json_pack("{s:I, s:I, s:I}", "sent",
		(json_int_t)a.k[K_RECV].hb_sent, "answered",
		(json_int_t)a.k[K_RECV].hb_ok, "closed",
		(json_int_t)a.k[K_RECV].closed));
	return 0;
}

static int
run_phase(const bench_opts *o, int target, double rate, int64_t frame,
    const char *name, phase *p, json_t *arr)
{
	if (measure(o, target, rate, frame, name, p) != 0) {
		return -1;
	}
	print_phase(out(o), p);
	json_array_append_new(arr, phase_json(p));
	return 0;
}

static void
ratio_line(const bench_opts *o, json_t *sum, const char *key, const char *what,
    const phase *a, const phase *b, const char *target)
{
	double r = b->dps > 0 ? a->dps / b->dps : 0;

	fprintf(out(o),
	    "%s: parley %.0f/s (%.1f frames per read) / ceiling "
	    "%.0f/s (%.1f) = %.2f%s\n",
	    what, a->dps, a->fpr, b->dps, b->fpr, r, target);
	json_object_set_new(sum, key, json_real(r));
}

static int
phases_scenario(const bench_opts *o, json_t *j)
{
	FILE *f = out(o);
	json_t *arr = json_array(), *sum = json_object();
	phase pm, cm, pc, pf, cf;
	const char *what =
	    o->scenario == SC_COMMENTS ? "posters" : "subscribers";
	char name[40];
	double lr;
	int64_t frame = o->frame_bytes;
	int i;

	json_object_set_new(j, "phases", arr);
	json_object_set_new(j, "summary", sum);
	fprintf(f, "parley-bench %s: %ld %s over %ld topic(s)",
	    o->scenario == SC_CEILING        ? "ceiling"
		: o->scenario == SC_FANOUT   ? "fanout"
		: o->scenario == SC_TOPICS   ? "topics"
		: o->scenario == SC_COMMENTS ? "comments"
					     : "cluster",
	    o->connections, what, o->topics);
	for (i = 0; i < o->nurls && o->scenario != SC_CEILING; i++) {
		fprintf(f, "%s%s", i ? ", " : " on ", o->urls[i].text);
	}
	fprintf(f,
	    "; %ld publisher(s), %ld-byte content, %d receiver "
	    "workers, %.0f s counted per phase after %.0f s warm-up\n",
	    o->scenario == SC_COMMENTS ? o->connections : o->publishers,
	    o->payload, o->workers, o->duration, o->warmup);
	if (o->scenario != SC_CEILING &&
	    bench_open_all(o, TGT_NODE, "joins", j) != 0) {
		return -1;
	}
	if (o->with_ceiling &&
	    bench_open_all(o, TGT_CEILING, "ceiling_sockets", j) != 0) {
		return -1;
	}
	bench_sleep_until(bench_now() + BENCH_NS);
	print_head(f);
	if (o->scenario == SC_CEILING) {
		return run_phase(
		    o, TGT_CEILING, o->rate, frame, "ceiling", &cm, arr);
	}
	snprintf(
	    name, sizeof(name), "parley %s", o->rate > 0 ? "fixed" : "max");
	if (run_phase(o, TGT_NODE, o->rate, 0, name, &pm, arr) != 0) {
		return -1;
	}
	if (!o->with_ceiling) {
		return 0;
	}
	/* The ceiling sends parley's frame size, as observed. */
	frame = frame ? frame : pm.frame_sample;
	if (run_phase(o, TGT_CEILING, 0, frame, "ceiling max", &cm, arr) != 0) {
		return -1;
	}
	if (o->scenario == SC_TOPICS) {
		ratio_line(o, sum, "throughput_ratio",
		    "deliveries/s, parley "
		    "topics vs ceiling max",
		    &pm, &cm,
		    " (> 1: beyond the one-send-per-delivery ceiling)");
		return 0;
	}
	if (o->rate > 0) {
		ratio_line(
		    o, sum, "throughput_ratio", "deliveries/s", &pm, &cm, "");
		return 0;
	}
	/* One publish at a time at the ceiling's own pace: the figure to hold
	 * against the ceiling, as parley has no queue to coalesce from unless
	 * it falls behind (frames per read shows whether it did). */
	if (run_phase(o, TGT_NODE, (double)(long)cm.sent_ps, 0,
		"parley @ceiling", &pc, arr) != 0) {
		return -1;
	}
	lr = o->latency_rate;
	if (lr <= 0) {
		lr = (double)(long)(0.5 * (pm.dps < cm.dps ? pm.dps : cm.dps) /
		    (double)o->connections);
		lr = lr < 1 ? 1 : lr;
	}
	if (run_phase(o, TGT_NODE, lr, 0, "parley fixed", &pf, arr) != 0 ||
	    run_phase(o, TGT_CEILING, lr, frame, "ceiling fixed", &cf, arr) !=
		0) {
		return -1;
	}
	ratio_line(o, sum, "throughput_ratio",
	    "deliveries/s at the ceiling's "
	    "pace",
	    &pc, &cm, " (target >= 0.80)");
	ratio_line(
	    o, sum, "max_ratio", "deliveries/s at max rate", &pm, &cm, "");
	fprintf(f,
	    "p99 latency at %.0f publishes/s: parley %.2f ms, ceiling "
	    "%.2f ms = %.2fx (target <= 1.5x); parley's includes the durable "
	    "write (reply p50 %.2f ms)\n",
	    lr, pf.p99, cf.p99, cf.p99 > 0 ? pf.p99 / cf.p99 : 0, pf.a50);
	json_object_set_new(sum, "latency_rate", json_real(lr));
	json_object_set_new(
	    sum, "p99_ratio", json_real(cf.p99 > 0 ? pf.p99 / cf.p99 : 0));
	return 0;
}

int
bench_run_scenario(const bench_opts *o, const char *name)
{
	json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:i}",
	    "scenario", name, "connections", (json_int_t)o->connections,
	    "topics", (json_int_t)o->topics, "publishers",
	    (json_int_t)o->publishers, "payload_bytes", (json_int_t)o->payload,
	    "rate", o->rate, "duration_s", o->duration, "warmup_s", o->warmup,
	    "workers", o->workers);
	json_t *urls = json_array();
	int i, rc;

	for (i = 0; i < o->nurls; i++) {
		json_array_append_new(urls, json_string(o->urls[i].text));
	}
	json_object_set_new(j, "urls", urls);
	rc = o->scenario == SC_CONNECT    ? connect_scenario(o, j)
	    : o->scenario == SC_PRESENCE  ? bench_presence_scenario(o, j)
	    : o->scenario == SC_RECONNECT ? bench_reconnect_scenario(o, j)
					  : phases_scenario(o, j);
	json_object_set_new(j, "ok", json_boolean(rc == 0));
	emit_json(o, j);
	json_decref(j);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
