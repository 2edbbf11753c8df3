/* SPDX-License-Identifier: Apache-2.0 */
/* Benchmark of the comment store's write path: appends/s and completion
 * latency (append -> callback on the loop thread) with 1, 10 and 100
 * concurrent posters, each appending again as soon as its previous append
 * completes. Group commit (default) against a baseline of one transaction
 * and one sync per comment (batch_max = 1).
 * Usage: comments_store_bench [dir] [seconds per run]; dir defaults to a
 * fresh directory under the current one (use a real disk, not tmpfs). */
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/comments.h"

typedef struct bench bench;

typedef struct poster {
	bench *b;
	int idx;
	int64_t started_ns;
	int active;
} poster;

struct bench {
	sto_comments *s;
	int64_t end_ns;
	int64_t *lat; /* completion latencies, ns */
	size_t nlat, caplat;
	int active;
	int errors;
};

static const char content[] =
    "a comment of about a hundred bytes, which "
    "is what people type under a video when something happens";

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static void on_done(void *arg, int status, const sto_comment *c);

static void
post(poster *p)
{
	char video[16];
	sto_comment_in in = { video, "user", content };

	snprintf(video, sizeof(video), "video%d", p->idx % 100);
	p->started_ns = now_ns();
	if (sto_comments_append(p->b->s, &in, on_done, p, NULL) != PL_OK) {
		p->b->errors++;
		p->active = 0;
		p->b->active--;
	}
}

static void
on_done(void *arg, int status, const sto_comment *c)
{
	poster *p = arg;
	bench *b = p->b;
	int64_t t = now_ns();

	(void)c;
	if (status != PL_OK) {
		b->errors++;
	}
	if (b->nlat == b->caplat) {
		b->caplat = b->caplat ? b->caplat * 2 : 4096;
		b->lat = realloc(b->lat, b->caplat * sizeof(*b->lat));
		if (b->lat == NULL) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
	}
	b->lat[b->nlat++] = t - p->started_ns;
	if (t < b->end_ns) {
		post(p);
	} else {
		p->active = 0;
		b->active--;
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return ((x > y) - (x < y));
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return (remove(p));
}

static int
run(const char *base, int run_no, const char *mode, unsigned batch_max,
    int posters, double seconds)
{
	sto_comments_opts o = { .node = "bench", .batch_max = batch_max };
	sto_comments_stats st;
	bench b = { 0 };
	poster *ps;
	char dir[512], err[256];
	struct pollfd pfd;
	int64_t t0, elapsed;

	snprintf(dir, sizeof(dir), "%s/run%d", base, run_no);
	if (sto_comments_open(&b.s, dir, &o, err, sizeof(err)) != PL_OK) {
		fprintf(stderr, "%s\n", err);
		return (1);
	}
	ps = calloc((size_t)posters, sizeof(*ps));
	t0 = now_ns();
	b.end_ns = t0 + (int64_t)(seconds * 1e9);
	for (int i = 0; i < posters; i++) {
		ps[i] = (poster){ .b = &b, .idx = i, .active = 1 };
		b.active++;
		post(&ps[i]);
	}
	pfd.fd = sto_comments_notify_fd(b.s);
	pfd.events = POLLIN;
	while (b.active > 0) {
		poll(&pfd, 1, 100);
		sto_comments_poll(b.s);
	}
	elapsed = now_ns() - t0;
	sto_comments_stats_get(b.s, &st);
	qsort(b.lat, b.nlat, sizeof(*b.lat), cmp_i64);
	printf("%-9s %7d %11.0f %9.2f %9.2f %9llu %9.1f %6d\n", mode, posters,
	    (double)b.nlat / ((double)elapsed / 1e9),
	    b.nlat ? (double)b.lat[b.nlat / 2] / 1e6 : 0.0,
	    b.nlat ? (double)b.lat[b.nlat * 99 / 100] / 1e6 : 0.0,
	    (unsigned long long)st.commits, st.avg_batch, b.errors);
	fflush(stdout);
	sto_comments_close(b.s);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(ps);
	free(b.lat);
	return (b.errors != 0);
}

int
main(int argc, char **argv)
{
	char tmpl[] = "./comments_bench.XXXXXX";
	const char *base = argc > 1 && argv[1][0] != '\0' ? argv[1] : NULL;
	double seconds = argc > 2 ? atof(argv[2]) : 2.0;
	int counts[] = { 1, 10, 100 }, rc = 0, n = 0;
	bool made = false;

	if (base == NULL) {
		if ((base = mkdtemp(tmpl)) == NULL) {
			perror("mkdtemp");
			return (1);
		}
		made = true;
	}
	if (seconds <= 0) {
		seconds = 2.0;
	}
	printf("comment store write path, %.1f s per run, dir %s\n", seconds,
	    base);
	printf("%-9s %7s %11s %9s %9s %9s %9s %6s\n", "mode", "posters",
	    "appends/s", "p50 ms", "p99 ms", "commits", "avg batch", "errors");
	for (int i = 0; i < 3; i++) {
		rc |= run(base, n++, "group", 0, counts[i], seconds);
	}
	for (int i = 0; i < 3; i++) {
		rc |= run(base, n++, "per-op", 1, counts[i], seconds);
	}
	if (made) {
		nftw(base, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	}
	return (rc);
}
