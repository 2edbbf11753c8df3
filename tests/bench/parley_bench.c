/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench: a load generator for any server speaking the Phoenix
 * Channels V2 protocol (parley or Phoenix itself). This coordinator parses
 * the options, forks the worker processes, runs a scenario's steps in lock
 * step and prints the figures; see usage() and docs/benchmarks.md. */
#include "tests/bench/bench.h"
#include "tests/bench/bench_report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 128

static const char *const scenario_names[] = {
	"connect",
	"fanout",
	"topics",
	"comments",
	"cluster",
	"ceiling",
	"presence",
	"reconnect",
};

typedef struct proc {
	pid_t pid;
	int ctl, kind;
} proc;

static proc procs[MAX_PROCS];
static int nprocs;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: parley-bench SCENARIO [options]\n"
	    "scenarios:\n"
	    "  connect   open --connections sockets, each joined to a comments "
	    "topic\n"
	    "            of connections/topics members; join rate, server RSS "
	    "per\n"
	    "            socket (--server-pid), --overflow refusals, heartbeat "
	    "sweep\n"
	    "  fanout    --connections subscribers on one topic, one "
	    "publisher;\n"
	    "            deliveries/s and publish-to-receipt latency\n"
	    "            (--with-ceiling: side by side with the built-in "
	    "ceiling)\n"
	    "  topics    --connections subscribers over --topics topics\n"
	    "  comments  --connections posters, each posting again when acked\n"
	    "  cluster   publish on the first --url, subscribe on the others\n"
	    "  ceiling   the built-in minimal fan-out server alone\n"
	    "  presence  --connections members on one topic, then users "
	    "joining\n"
	    "            and leaving it at --rate (default 20/s), then as fast "
	    "as\n"
	    "            --window changes in flight allow; diffs/s, bytes per "
	    "change\n"
	    "  reconnect --connections sockets on the first --url (topics of "
	    "200) and\n"
	    "            --residents on the second; SIGTERM to the first "
	    "--server-pid;\n"
	    "            the lost sockets come back to the second URL with "
	    "phoenix.js's\n"
	    "            backoff; time until all rejoined, residents' "
	    "heartbeats,\n"
	    "            presence on the second node checked exact\n"
	    "options:\n"
	    "  --url ws://HOST:PORT[/PATH]  server (repeat for cluster); "
	    "default\n"
	    "                        ws://127.0.0.1:4000/socket/websocket\n"
	    "  --secret S            HS256 secret: tokens are minted per user\n"
	    "  --connections N       default 1000\n"
	    "  --topics T            default: connect N/200, topics N/10, "
	    "comments N, else 1\n"
	    "  --publishers P        default 1 (topics: one per 100 topics)\n"
	    "  --rate R              publishes/s over all publishers; 0 = as "
	    "fast as\n"
	    "                        replies allow (--window per publisher)\n"
	    "  --latency-rate R      fanout --with-ceiling: fixed rate for the "
	    "latency\n"
	    "                        comparison; default half the lower "
	    "maximum\n"
	    "  --duration S          counted seconds per phase (default 5)\n"
	    "  --warmup S            published, not counted (default 1)\n"
	    "  --with-ceiling        fanout, topics: also measure the ceiling\n"
	    "  --server-pid PID      node to sample RSS and CPU from "
	    "(repeatable)\n"
	    "  --overflow K          connect: K more sockets, expected "
	    "refused\n"
	    "  --workers W           receiver processes (default: 2, more for "
	    ">30k fds)\n"
	    "  --payload B           comment content bytes (default 100)\n"
	    "  --frame-bytes B       ceiling payload size (default: as "
	    "parley's)\n"
	    "  --concurrency N       handshakes in flight per worker (default "
	    "500)\n"
	    "  --window N            unanswered publishes per publisher at "
	    "rate 0\n"
	    "                        (default 64; comments 1)\n"
	    "  --join-limit N        history `limit` in each join (default 1)\n"
	    "  --residents N         reconnect: sockets on the second node "
	    "(1000)\n"
	    "  --heartbeat S         seconds between heartbeats per socket "
	    "(25; 0 off)\n"
	    "  --no-src-addrs        do not bind clients to 127.0.0.2..251\n"
	    "  --json                JSON on stdout, the table on stderr\n");
}

/* ---- options ---- */

static int
parse_url(const char *text, bench_url *u)
{
	char host[256], port[16] = "80", path[400] = "/socket/websocket";
	const char *p = text, *slash, *colon;
	struct addrinfo hints, *res = NULL;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (strncmp(p, "ws://", 5) == 0) {
		p += 5;
	} else if (strstr(p, "://")) {
		fprintf(stderr, "parley-bench: only ws:// URLs: %s\n", text);
		return -1;
	}
	slash = strchr(p, '/');
	hl = slash ? (size_t)(slash - p) : strlen(p);
	if (hl == 0 || hl >= sizeof(host)) {
		return -1;
	}
	memcpy(host, p, hl);
	host[hl] = '\0';
	snprintf(u->host, sizeof(u->host), "%s", host);
	if (slash && slash[1] != '\0') {
		snprintf(path, sizeof(path), "%s", slash);
	}
	colon = strrchr(host, ':');
	if (colon && !strchr(colon, ']')) {
		snprintf(port, sizeof(port), "%s", colon + 1);
		host[colon - host] = '\0';
	}
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
		fprintf(stderr, "parley-bench: cannot resolve %s\n", text);
		return -1;
	}
	memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
	u->addrlen = res->ai_addrlen;
	u->loopback4 = res->ai_family == AF_INET &&
	    (ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr) >>
		24) == 127;
	freeaddrinfo(res);
	snprintf(u->text, sizeof(u->text), "%s", text);
	snprintf(u->target, sizeof(u->target), "%s%c", path,
	    strchr(path, '?') ? '&' : '?');
	return 0;
}

static int
num(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out < 0 ? -1 : 0;
}

static int
parse_opts(int argc, char **argv, bench_opts *o)
{
	enum {
		O_URL = 256,
		O_SECRET,
		O_CONN,
		O_TOPICS,
		O_PUBS,
		O_RATE,
		O_LRATE,
		O_DUR,
		O_WARM,
		O_JSON,
		O_CEIL,
		O_PID,
		O_OVF,
		O_WORKERS,
		O_PAYLOAD,
		O_FRAME,
		O_CONC,
		O_WINDOW,
		O_JLIMIT,
		O_HB,
		O_RES,
		O_NOSRC,
		O_HELP
	};
	static const struct option lo[] = {
		{ "url", 1, 0, O_URL },
		{ "secret", 1, 0, O_SECRET },
		{ "connections", 1, 0, O_CONN },
		{ "topics", 1, 0, O_TOPICS },
		{ "publishers", 1, 0, O_PUBS },
		{ "rate", 1, 0, O_RATE },
		{ "latency-rate", 1, 0, O_LRATE },
		{ "duration", 1, 0, O_DUR },
		{ "warmup", 1, 0, O_WARM },
		{ "json", 0, 0, O_JSON },
		{ "with-ceiling", 0, 0, O_CEIL },
		{ "server-pid", 1, 0, O_PID },
		{ "overflow", 1, 0, O_OVF },
		{ "workers", 1, 0, O_WORKERS },
		{ "payload", 1, 0, O_PAYLOAD },
		{ "frame-bytes", 1, 0, O_FRAME },
		{ "concurrency", 1, 0, O_CONC },
		{ "window", 1, 0, O_WINDOW },
		{ "join-limit", 1, 0, O_JLIMIT },
		{ "heartbeat", 1, 0, O_HB },
		{ "residents", 1, 0, O_RES },
		{ "no-src-addrs", 0, 0, O_NOSRC },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	double v = 0;
	int c, i;

	memset(o, 0, sizeof(*o));
	o->scenario = -1;
	o->connections = 1000;
	o->topics = -1;
	o->publishers = -1;
	o->duration = 5;
	o->warmup = 1;
	o->payload = 100;
	o->concurrency = 500;
	o->window = -1;
	o->join_limit = 1;
	o->heartbeat = 25;
	o->residents = -1;
	o->src_addrs = true;
	if (argc < 2 || argv[1][0] == '-') {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? -1 : 1;
	}
	for (i = 0; i < (int)(sizeof(scenario_names) / sizeof(*scenario_names));
	     i++) {
		if (strcmp(argv[1], scenario_names[i]) == 0) {
			o->scenario = i;
		}
	}
	if (o->scenario < 0) {
		fprintf(stderr, "parley-bench: unknown scenario %s\n", argv[1]);
		return -1;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (optarg && c != O_URL && c != O_SECRET &&
		    num(optarg, &v) != 0) {
			fprintf(
			    stderr, "parley-bench: bad number: %s\n", optarg);
			return -1;
		}
		switch (c) {
		case O_URL:
			if (o->nurls == BENCH_MAX_URLS ||
			    parse_url(optarg, &o->urls[o->nurls]) != 0) {
				return -1;
			}
			o->nurls++;
			break;
		case O_SECRET: o->secret = optarg; break;
		case O_CONN: o->connections = (long)v; break;
		case O_TOPICS: o->topics = (long)v; break;
		case O_PUBS: o->publishers = (long)v; break;
		case O_RATE: o->rate = v; break;
		case O_LRATE: o->latency_rate = v; break;
		case O_DUR: o->duration = v; break;
		case O_WARM: o->warmup = v; break;
		case O_JSON: o->json = true; break;
		case O_CEIL: o->with_ceiling = true; break;
		case O_PID:
			if (o->npids < BENCH_MAX_URLS) {
				o->server_pids[o->npids++] = (pid_t)v;
			}
			break;
		case O_OVF: o->overflow = (long)v; break;
		case O_WORKERS: o->workers = (int)v; break;
		case O_PAYLOAD: o->payload = (long)v; break;
		case O_FRAME: o->frame_bytes = (long)v; break;
		case O_CONC: o->concurrency = (long)v; break;
		case O_WINDOW: o->window = (long)v; break;
		case O_JLIMIT: o->join_limit = (long)v; break;
		case O_HB: o->heartbeat = v; break;
		case O_RES: o->residents = (long)v; break;
		case O_NOSRC: o->src_addrs = false; break;
		case O_HELP: usage(stdout); return 1;
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "parley-bench: unexpected argument %s\n",
		    argv[optind]);
		return -1;
	}
	return 0;
}

/* Fills the defaults that depend on the scenario and checks the rest. */
static int
settle_opts(bench_opts *o)
{
	long n = o->connections;

	if (o->nurls == 0 && o->scenario != SC_CEILING &&
	    parse_url("ws://127.0.0.1:4000/socket/websocket", &o->urls[0]) ==
		0) {
		o->nurls = 1;
	}
	if (o->scenario == SC_CLUSTER && o->nurls < 2) {
		fprintf(stderr,
		    "parley-bench: cluster needs --url twice or more\n");
		return -1;
	}
	if (o->scenario == SC_RECONNECT && (o->nurls != 2 || o->npids < 1)) {
		fprintf(stderr,
		    "parley-bench: reconnect needs --url twice (the node to "
		    "drain first) and the first node's --server-pid\n");
		return -1;
	}
	if (o->residents < 0) {
		o->residents = o->scenario == SC_RECONNECT ? 1000 : 0;
	}
	if (o->scenario != SC_CEILING && (o->secret == NULL || !*o->secret)) {
		fprintf(stderr,
		    "parley-bench: --secret is required (or "
		    "PARLEY_JWT_SECRET)\n");
		return -1;
	}
	if (n < 1 || o->duration <= 0 || o->payload < BENCH_TS_DIGITS + 2 ||
	    o->concurrency < 1) {
		fprintf(stderr,
		    "parley-bench: --connections, --duration, "
		    "--concurrency must be positive, --payload >= %d\n",
		    BENCH_TS_DIGITS + 2);
		return -1;
	}
	if (o->topics < 1) {
		o->topics =
		    o->scenario == SC_CONNECT || o->scenario == SC_RECONNECT
		    ? (n + 199) / 200
		    : o->scenario == SC_TOPICS   ? (n + 9) / 10
		    : o->scenario == SC_COMMENTS ? n
						 : 1;
	}
	if (o->scenario == SC_FANOUT || o->scenario == SC_CLUSTER ||
	    o->scenario == SC_CEILING || o->scenario == SC_PRESENCE) {
		o->topics = 1;
	}
	if (o->topics > n && o->scenario != SC_COMMENTS) {
		o->topics = n;
	}
	if (o->publishers < 1) {
		o->publishers = (o->topics + 99) / 100;
	}
	if (o->publishers > o->topics) {
		o->publishers = o->topics;
	}
	if ((o->topics + o->publishers - 1) / o->publishers > 100) {
		fprintf(stderr,
		    "parley-bench: a publisher may join 100 topics: "
		    "raise --publishers\n");
		return -1;
	}
	if (o->window < 1) {
		o->window = o->scenario == SC_COMMENTS ? 1 : 64;
	}
	if (o->workers < 1) {
		long fds = n *
			(o->scenario == SC_CEILING || !o->with_ceiling ? 1
								       : 2) +
		    o->overflow + o->residents;
		o->workers = (int)((fds + 14999) / 15000);
		o->workers = o->workers < 2 ? 2 : o->workers;
	}
	if (o->workers > MAX_PROCS - 4) {
		o->workers = MAX_PROCS - 4;
	}
	snprintf(o->nonce, sizeof(o->nonce), "%lx%04x",
	    (unsigned long)time(NULL) & 0xffffff, (unsigned)getpid() & 0xffff);
	return 0;
}

/* ---- processes ---- */

static int
ceiling_listen(bench_opts *o)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
	    one = 1;
	char url[64];

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(fd, 65535) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		perror("parley-bench: ceiling listener");
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	snprintf(url, sizeof(url), "ws://127.0.0.1:%u/socket/websocket",
	    ntohs(sa.sin_port));
	if (parse_url(url, &o->ceil_url) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
spawn(const bench_opts *o, int kind, int idx, int nworkers, int lfd)
{
	int sv[2], i, rc;
	pid_t pid;

	if (nprocs == MAX_PROCS ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		for (i = 0; i < nprocs; i++) {
			close(procs[i].ctl);
		}
		if (kind != K_CEIL && lfd >= 0) {
			close(lfd);
		}
		rc = kind == K_CEIL ? bench_ceiling_run(o, lfd, sv[1])
		    : o->scenario == SC_PRESENCE
		    ? bench_presence_run(o, kind, idx, nworkers, sv[1])
		    : bench_worker_run(o, kind, idx, nworkers, sv[1]);
		exit(rc);
	}
	close(sv[1]);
	procs[nprocs].pid = pid;
	procs[nprocs].ctl = sv[0];
	procs[nprocs].kind = kind;
	nprocs++;
	return 0;
}

static void
stop_all(void)
{
	bench_cmd q;
	int i;

	memset(&q, 0, sizeof(q));
	q.step = ST_QUIT;
	for (i = 0; i < nprocs; i++) {
		bench_write_all(procs[i].ctl, &q, sizeof(q));
	}
	for (i = 0; i < nprocs; i++) {
		close(procs[i].ctl);
		waitpid(procs[i].pid, NULL, 0);
	}
	nprocs = 0;
}

int
bench_step_send(const bench_cmd *cmd)
{
	int i;

	for (i = 0; i < nprocs; i++) {
		if (bench_write_all(procs[i].ctl, cmd, sizeof(*cmd)) != 0) {
			fprintf(stderr, "parley-bench: a worker died\n");
			return -1;
		}
	}
	return 0;
}

int
bench_step_collect(bench_agg *agg)
{
	static bench_report r;
	int i;

	memset(agg, 0, sizeof(*agg));
	for (i = 0; i < nprocs; i++) {
		if (bench_read_all(procs[i].ctl, &r, sizeof(r)) != 0) {
			fprintf(stderr, "parley-bench: a worker died\n");
			return -1;
		}
		bench_agg_add(agg, &r);
	}
	return 0;
}

/* Sends cmd to every process and sums their reports into agg[kind]. During
 * a measure the coordinator samples the servers' CPU at the window edges. */
int
bench_step(const bench_opts *o, const bench_cmd *cmd, bench_agg *agg,
    double *server_cpu)
{
	double busy = 0;

	if (bench_step_send(cmd) != 0) {
		return -1;
	}
	if (cmd->step == ST_MEASURE) {
		bench_sample s0, s1;
		bench_sleep_until(cmd->t_measure);
		bench_sample_take(o, &s0);
		bench_sleep_until(cmd->t_end);
		bench_sample_take(o, &s1);
		bench_sample_diff(o, &s0, &s1, server_cpu, &busy);
	}
	if (bench_step_collect(agg) != 0) {
		return -1;
	}
	agg->machine_busy = busy;
	return 0;
}

int
main(int argc, char **argv)
{
	bench_opts o;
	struct rlimit rl;
	int rc, i, lfd = -1, pubs, ceiling;

	rc = parse_opts(argc, argv, &o);
	if (rc != 0) {
		return rc < 0 ? 2 : 0;
	}
	if (o.secret == NULL) {
		o.secret = getenv("PARLEY_JWT_SECRET");
	}
	if (settle_opts(&o) != 0) {
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Each line as it is made: a script watching the output (the
	 * profiler stops at the joins line) must see it then. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Each worker may hold up to the hard limit of descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ceiling = o.scenario == SC_CEILING ||
	    (o.with_ceiling &&
		(o.scenario == SC_FANOUT || o.scenario == SC_TOPICS));
	o.with_ceiling = ceiling;
	pubs = o.scenario == SC_FANOUT || o.scenario == SC_TOPICS ||
	    o.scenario == SC_CLUSTER || o.scenario == SC_PRESENCE;
	if (ceiling && (lfd = ceiling_listen(&o)) < 0) {
		return 1;
	}
	for (i = 0; i < o.workers; i++) {
		if (spawn(&o, K_RECV, i, o.workers, lfd) != 0) {
			goto fail;
		}
	}
	if (pubs && spawn(&o, K_PUB, 0, 1, lfd) != 0) {
		goto fail;
	}
	if (ceiling && spawn(&o, K_CEIL, 0, 1, lfd) != 0) {
		goto fail;
	}
	if (lfd >= 0) {
		close(lfd);
	}
	rc = bench_run_scenario(&o, scenario_names[o.scenario]);
	stop_all();
	return rc == 0 ? 0 : 1;
fail:
	perror("parley-bench: fork");
	if (lfd >= 0) {
		close(lfd);
	}
	stop_all();
	return 1;
}
