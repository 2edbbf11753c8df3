/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench helpers every process uses: the clock, own CPU time, the
 * latency histogram, whole-message I/O on the control sockets, and the
 * client-side pieces both kinds of bench connection share. */
#include "tests/bench/bench.h"

#include "proto/ws.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * BENCH_NS + ts.tv_nsec;
}

int64_t
bench_cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * BENCH_NS +
	    ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int
bucket_of(uint64_t v)
{
	int e;

	if (v < BENCH_HIST_SUB) {
		return (int)v;
	}
	e = 63 - __builtin_clzll(v);
	/* e >= 5: the top 6 bits select the sub-bucket of that octave. */
	return (e - 4) * BENCH_HIST_SUB +
	    (int)((v >> (e - 5)) & (BENCH_HIST_SUB - 1));
}

static uint64_t
bucket_mid(int b)
{
	int e;
	uint64_t lo;

	if (b < BENCH_HIST_SUB) {
		return (uint64_t)b;
	}
	e = b / BENCH_HIST_SUB + 4;
	lo = (uint64_t)(BENCH_HIST_SUB + b % BENCH_HIST_SUB) << (e - 5);
	return lo + ((1ULL << (e - 5)) >> 1);
}

void
bench_hist_add(uint64_t *h, int64_t v)
{
	int b = bucket_of(v < 0 ? 0 : (uint64_t)v);

	if (b >= BENCH_HIST_BUCKETS) {
		b = BENCH_HIST_BUCKETS - 1;
	}
	h[b]++;
}

uint64_t
bench_hist_count(const uint64_t *h)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		n += h[i];
	}
	return n;
}

int64_t
bench_hist_pct(const uint64_t *h, double q)
{
	uint64_t n = bench_hist_count(h), want, seen = 0;
	int i;

	if (n == 0) {
		return 0;
	}
	want = (uint64_t)(q * (double)n);
	if (want >= n) {
		want = n - 1;
	}
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen > want) {
			return (int64_t)bucket_mid(i);
		}
	}
	return (int64_t)bucket_mid(BENCH_HIST_BUCKETS - 1);
}

int
bench_write_all(int fd, const void *p, size_t len)
{
	const char *s = p;

	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int
bench_read_all(int fd, void *p, size_t len)
{
	char *s = p;

	while (len > 0) {
		ssize_t n = read(fd, s, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- client-side pieces ---- */

void
bench_arm_at(struct event *ev, int64_t t)
{
	int64_t d = t - bench_now();
	struct timeval tv;

	d = d < 0 ? 0 : d;
	tv.tv_sec = d / BENCH_NS;
	tv.tv_usec = (d % BENCH_NS) / 1000;
	event_add(ev, &tv);
}

void
bench_note_error(bench_report *rep, const char *why, size_t len)
{
	if (rep->error[0] == '\0' && why) {
		snprintf(rep->error, sizeof(rep->error), "%.*s", (int)len, why);
	}
}

void
bench_note_add(char *notes, size_t cap, const char *fmt, ...)
{
	size_t n = strlen(notes);
	va_list ap;

	if (n > 0 && n + 2 < cap) {
		strcpy(notes + n, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(notes + n, cap - n, fmt, ap);
	va_end(ap);
}

size_t
bench_mask_into(uint64_t *rng, const char *payload, size_t len, char *dst)
{
	uint8_t hdr[10], k[4];
	size_t hl = pro_ws_frame_header(hdr, PRO_WS_TEXT, len), i;
	uint32_t key;

	/* xorshift64: mask keys need to be unpredictable to a proxy, not to
	 * an attacker; the server's unmasking cost is the same either way. */
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	key = (uint32_t)*rng;
	memcpy(k, &key, 4);
	hdr[1] |= 0x80;
	memcpy(dst, hdr, hl);
	memcpy(dst + hl, k, 4);
	dst += hl + 4;
	for (i = 0; i < len; i++) {
		dst[i] = (char)(payload[i] ^ k[i & 3]);
	}
	return hl + 4 + len;
}

size_t
bench_pong_into(char *dst, const char *p, size_t n)
{
	uint8_t hdr[10];
	size_t hl = pro_ws_frame_header(hdr, PRO_WS_PONG, n);

	memcpy(dst, hdr, hl);
	dst[1] |= (char)0x80;
	memset(dst + hl, 0, 4); /* a zero key: pongs are rare */
	memcpy(dst + hl + 4, p, n);
	return hl + 4 + n;
}

int
bench_frame_head(
    const uint8_t *b, size_t avail, uint64_t max, uint64_t *plen, size_t *hl)
{
	uint64_t l = b[1] & 0x7f;
	size_t h = 2, i;

	if (b[1] & 0x80) {
		return -1;
	}
	if (l == 126) {
		if (avail < 4) {
			return 0;
		}
		l = ((uint64_t)b[2] << 8) | b[3];
		h = 4;
	} else if (l == 127) {
		if (avail < 10) {
			return 0;
		}
		for (l = 0, i = 2; i < 10; i++) {
			l = (l << 8) | b[i];
		}
		h = 10;
	}
	if (l > max) {
		return -2;
	}
	*plen = l;
	*hl = h;
	return 1;
}

int
bench_carry_begin(char **carry, uint32_t carry_len, uint32_t *carry_cap,
    char **buf, size_t *have, size_t *cap)
{
	if (carry_len == 0) {
		return 0;
	}
	if (*carry_cap - carry_len < 16384) {
		size_t ncap = (size_t)carry_len * 2 + 65536;
		char *q = realloc(*carry, ncap);
		if (q == NULL) {
			return -1;
		}
		*carry = q;
		*carry_cap = (uint32_t)ncap;
	}
	*buf = *carry;
	*have = carry_len;
	*cap = *carry_cap;
	return 0;
}

int
bench_carry_keep(char **carry, uint32_t *carry_len, uint32_t *carry_cap,
    const char *buf, size_t have, size_t used)
{
	size_t rest = have - used;

	if (rest == 0) {
		free(*carry);
		*carry = NULL;
		*carry_len = *carry_cap = 0;
		return 0;
	}
	if (buf == *carry) {
		memmove(*carry, *carry + used, rest);
	} else {
		if ((*carry = malloc(rest + 65536)) == NULL) {
			return -1;
		}
		*carry_cap = (uint32_t)(rest + 65536);
		memcpy(*carry, buf + used, rest);
	}
	*carry_len = (uint32_t)rest;
	return 0;
}

int
bench_connect(const bench_url *u, bool src, uint32_t src_idx)
{
	int fd, one = 1, e;

	fd = socket(
	    u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -1;
	}
	if (src && u->loopback4) {
		struct sockaddr_in sa;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		/* 127.0.0.2..127.0.0.251: each source address has its own
		 * ephemeral port range towards the server's address. */
		sa.sin_addr.s_addr = htonl(0x7f000002u + src_idx % 250);
		setsockopt(
		    fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			goto fail;
		}
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) != 0 &&
	    errno != EINPROGRESS) {
		goto fail;
	}
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int
bench_upgrade_request(char **req, const bench_url *u, const char *token)
{
	return asprintf(req,
	    "GET %svsn=2.0.0&token=%s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n",
	    u->target, token, u->host);
}

int
bench_out_send(int fd, struct event *wev, char **out, uint32_t *out_len,
    uint32_t *out_cap, const char *p, size_t len)
{
	ssize_t n;

	if (*out_len == 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == (ssize_t)len) {
			return 0;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return -1;
		}
		n = n < 0 ? 0 : n;
		p += n;
		len -= (size_t)n;
	}
	if (*out_len + len > *out_cap) {
		size_t cap = (*out_len + len) * 2;
		char *q = realloc(*out, cap);
		if (q == NULL) {
			return -2;
		}
		*out = q;
		*out_cap = (uint32_t)cap;
	}
	memcpy(*out + *out_len, p, len);
	*out_len += (uint32_t)len;
	if (!event_pending(wev, EV_WRITE, NULL)) {
		event_add(wev, NULL);
	}
	return 0;
}

int
bench_out_flush(int fd, struct event *wev, char *out, uint32_t *out_len)
{
	ssize_t n = send(fd, out, *out_len, MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		event_add(wev, NULL);
		return 0;
	}
	if (n < 0) {
		return -1;
	}
	memmove(out, out + n, *out_len - (size_t)n);
	*out_len -= (uint32_t)n;
	if (*out_len > 0) {
		event_add(wev, NULL);
	}
	return 0;
}

const char *
bench_phx_elem(const char *p, const char *end, const char **s, size_t *n)
{
	const char *q;

	if (p < end && *p == '"') {
		q = memchr(p + 1, '"', (size_t)(end - p - 1));
		if (q == NULL) {
			return NULL;
		}
		*s = p + 1;
		*n = (size_t)(q - p - 1);
		q++;
	} else {
		for (q = p; q < end && *q != ',' && *q != ']'; q++) {
		}
		*s = p;
		*n = (size_t)(q - p);
	}
	return q < end && *q == ',' ? q + 1 : NULL;
}
