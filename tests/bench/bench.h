/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench: what its processes share. A coordinator forks receiver
 * workers, a publisher worker and (for the ceiling) a minimal WebSocket
 * server; each runs its own libevent loop and obeys fixed-size commands on a
 * control socket, answering with a report that the coordinator aggregates. */
#ifndef PARLEY_BENCH_H
#define PARLEY_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define BENCH_MAX_URLS 8
/* Latency histogram: 32 linear sub-buckets per power of two (3 % error). */
#define BENCH_HIST_SUB 32
#define BENCH_HIST_BUCKETS (60 * BENCH_HIST_SUB)
/* A publish carries its send time (CLOCK_MONOTONIC ns, zero-padded) at the
 * front of its content, and a fixed-width ref, so that a template frame can
 * be patched in place instead of re-encoded. */
#define BENCH_TS_DIGITS 20
#define BENCH_REF_DIGITS 10
#define BENCH_REF_BASE 1000000000LL
#define BENCH_NS 1000000000LL

enum bench_scenario {
	SC_CONNECT,
	SC_FANOUT,
	SC_TOPICS,
	SC_COMMENTS,
	SC_CLUSTER,
	SC_CEILING,
	SC_PRESENCE,
	SC_RECONNECT,
};

/* Which server a connection or a measurement is about. */
enum bench_target { TGT_NODE = 0, TGT_CEILING = 1, TGT_RESIDENT = 2 };

enum bench_step {
	ST_CONNECT = 1, /* open the target's connections, upgrade, join */
	ST_MEASURE,  /* publish in [t_start, t_end), count [t_measure, t_end) */
	ST_DRAIN,    /* report once deliveries have stopped */
	ST_OVERFLOW, /* open the extra connections (expected to be refused) */
	ST_HEARTBEAT, /* heartbeat every open connection, count the replies */
	ST_REJOIN,    /* reconnect: lost sockets come back to the second URL */
	ST_QUIT,
};

enum bench_kind { K_RECV, K_PUB, K_CEIL };

typedef struct bench_url {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool loopback4;   /* 127/8 IPv4: clients may bind 127.0.0.x sources */
	char text[256];   /* as given */
	char host[256];   /* Host header */
	char target[512]; /* path with "?" or "&" ready for the query */
} bench_url;

typedef struct bench_opts {
	int scenario;
	bench_url urls[BENCH_MAX_URLS];
	int nurls;
	bench_url ceil_url; /* the built-in ceiling server, once listening */
	const char *secret;
	long connections; /* subscribers, idle sockets or posters */
	long topics;
	long publishers;
	long overflow; /* connect: extra sockets beyond the node's limit */
	double rate; /* publishes/s, all publishers; 0 = as fast as acks allow */
	double latency_rate; /* fanout --with-ceiling: the fixed rate; 0 = auto */
	double duration;     /* seconds counted per phase */
	double warmup;       /* seconds published but not counted */
	bool json;
	bool with_ceiling;
	bool src_addrs;   /* bind 127.0.0.2.. before connect */
	int workers;      /* receiver processes */
	long payload;     /* bytes of comment content */
	long frame_bytes; /* ceiling payload size; 0 = as parley's */
	long concurrency; /* handshakes in flight per worker */
	long window;      /* publishes in flight per publisher at rate 0 */
	long join_limit;  /* history `limit` sent with each join */
	long residents;   /* reconnect: sockets on the second node already */
	double heartbeat; /* seconds between heartbeats per socket; 0 = off */
	pid_t server_pids[BENCH_MAX_URLS];
	int npids;
	char nonce[24]; /* makes topics and users unique per run */
} bench_opts;

typedef struct bench_cmd {
	int32_t step;
	int32_t target;
	int64_t t_start, t_measure, t_end; /* CLOCK_MONOTONIC ns */
	double rate; /* publishes (ceiling: rounds) per second; 0 = max */
	int64_t frame_bytes; /* ceiling: payload size to send */
} bench_cmd;

/* One process's answer to one command; the coordinator sums them. */
typedef struct bench_report {
	int32_t kind, step;
	int64_t conns; /* connections this step was about */
	int64_t upgraded, joined, refused, failed, closed;
	int64_t deliveries; /* new_comment counted in the window */
	int64_t stray;      /* new_comment outside the window */
	int64_t presence;   /* presence_state / presence_diff received */
	int64_t sent, acks, errors; /* publishes and their replies */
	int64_t hb_sent, hb_ok;
	int64_t first_ns, last_ns; /* step: first attempt, last completion */
	int64_t last_rx_ns;        /* last new_comment received */
	int64_t cpu_ns, wall_ns;   /* own CPU over the window (or step) */
	int64_t max_lag;       /* publishes due but not yet sent, worst tick */
	int64_t backed_up;     /* ticks with a send queue over its bound */
	int64_t frame_sample;  /* payload bytes of one new_comment seen */
	int64_t rounds, skips; /* ceiling: rounds written, sockets skipped */
	int64_t bytes_in;
	int64_t reads;      /* reads that brought counted deliveries */
	int64_t rx_backlog; /* bytes unread in our sockets at the window end */
	/* presence scenario (bench_presence.c) */
	int64_t diffs, diff_bytes, diff_max; /* presence_diff in, wire bytes */
	int64_t diff_joins, diff_leaves; /* their metas, at checked members */
	int64_t checked;                 /* members that counted metas */
	int64_t states, state_bytes, state_max; /* presence_state in */
	int64_t joins, leaves;                  /* churner: changes sent */
	/* reconnect scenario */
	int64_t moved;     /* sockets lost by the drained node */
	int64_t attempts;  /* reconnect attempts they made */
	int64_t hb_missed; /* heartbeats unanswered when the next was due */
	int64_t hb_max_ns; /* slowest heartbeat reply */
	char error[96];    /* one error reason, for the record */
	uint64_t hist[BENCH_HIST_BUCKETS];     /* publish -> receipt */
	uint64_t ack_hist[BENCH_HIST_BUCKETS]; /* publish -> reply */
} bench_report;

/* CLOCK_MONOTONIC in nanoseconds; the same clock in every process. */
int64_t bench_now(void);

/* CPU time (user + system) this process has used, in nanoseconds. */
int64_t bench_cpu_self(void);

/* Adds one value (ns) to a histogram of BENCH_HIST_BUCKETS counters. */
void bench_hist_add(uint64_t *h, int64_t v);

/* Value (ns) under which a fraction q (0..1) of the recorded values lie;
 * 0 when the histogram is empty. */
int64_t bench_hist_pct(const uint64_t *h, double q);

/* Total number of values recorded. */
uint64_t bench_hist_count(const uint64_t *h);

/* Writes or reads exactly len bytes on a blocking descriptor, retrying on
 * EINTR. Return 0, or -1 on error or end of file. */
int bench_write_all(int fd, const void *p, size_t len);
int bench_read_all(int fd, void *p, size_t len);

/* Runs a receiver (K_RECV, index idx of nworkers) or the publisher worker
 * (K_PUB) until ST_QUIT; returns the process exit status. o: borrowed. */
int
bench_worker_run(const bench_opts *o, int kind, int idx, int nworkers, int ctl);

/* Runs a presence-scenario member worker (K_RECV) or the churner (K_PUB)
 * until ST_QUIT; returns the process exit status. o: borrowed. */
int bench_presence_run(
    const bench_opts *o, int kind, int idx, int nworkers, int ctl);

/* Runs the ceiling server on an already listening socket until ST_QUIT;
 * returns the process exit status. o: borrowed. */
int bench_ceiling_run(const bench_opts *o, int listen_fd, int ctl);

/* ---- shared by the client sides (bench_client.c, bench_presence_conn.c)
 * and the workers; all in bench_util.c ---- */

struct event;

/* Adds ev (already assigned) to fire at CLOCK_MONOTONIC time t (ns), at
 * once when t is past. */
void bench_arm_at(struct event *ev, int64_t t);

/* Keeps the first error reason of a step in rep->error; later ones and a
 * NULL why are dropped. */
void bench_note_error(bench_report *rep, const char *why, size_t len);

/* Appends a printf-formatted note to notes (size cap), "; "-separated. */
void bench_note_add(char *notes, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a masked text frame of payload at dst (room for len + 14 bytes)
 * with a key from the xorshift64 state *rng; returns the frame's length. */
size_t
bench_mask_into(uint64_t *rng, const char *payload, size_t len, char *dst);

/* Writes the masked (zero key) pong answering a ping of n <= 125 bytes at
 * dst (room for n + 14 bytes); returns the frame's length. */
size_t bench_pong_into(char *dst, const char *p, size_t n);

/* Reads the head of an unmasked server frame from the avail bytes at b.
 * Returns 1 with *plen and *hl set, 0 when the head is incomplete, -1 for
 * a masked frame, -2 for a payload over max. */
int bench_frame_head(
    const uint8_t *b, size_t avail, uint64_t max, uint64_t *plen, size_t *hl);

/* A connection's buffer of unparsed bytes (carry) across reads. Before a
 * read: when a carry is held, grows it as needed and points *buf, *have,
 * *cap at it (else leaves them). Returns 0, or -1 out of memory. */
int bench_carry_begin(char **carry, uint32_t carry_len, uint32_t *carry_cap,
    char **buf, size_t *have, size_t *cap);

/* After parsing: keeps buf[used..have) in the carry, freeing it when empty
 * so idle sockets hold no buffer. Returns 0, or -1 out of memory. */
int bench_carry_keep(char **carry, uint32_t *carry_len, uint32_t *carry_cap,
    const char *buf, size_t have, size_t used);

/* Opens a non-blocking TCP socket to u and starts connecting; when src is
 * set and u is 127/8 IPv4, binds source 127.0.0.(2 + src_idx % 250) first.
 * Returns the fd, or -1 with errno set. */
int bench_connect(const bench_url *u, bool src, uint32_t src_idx);

/* Sends p (len bytes) on fd, or appends what the socket does not take to
 * the out buffer (*out, *out_len, *out_cap) and adds wev, once, to flush it
 * later; when the buffer already holds bytes, only appends. Returns 0, -1
 * on a send error, -2 out of memory. */
int bench_out_send(int fd, struct event *wev, char **out, uint32_t *out_len,
    uint32_t *out_cap, const char *p, size_t len);

/* wev fired: sends what it can of the out buffer and re-adds wev while
 * bytes remain. Returns 0, or -1 on a send error. */
int bench_out_flush(int fd, struct event *wev, char *out, uint32_t *out_len);

/* One element of a Phoenix V2 array head in [p, end): a string without
 * escapes (refs, topics and events never need them), null, or a bare
 * number; *s and *n point into the input. Returns the start of the next
 * element, or NULL when this one is the last or malformed. */
const char *
bench_phx_elem(const char *p, const char *end, const char **s, size_t *n);

/* Formats the WebSocket upgrade request for u with token into *req (caller
 * frees). Returns its length, or -1 out of memory. */
int bench_upgrade_request(char **req, const bench_url *u, const char *token);

#endif
