/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry: exact exposition text for each kind of series,
 * label escaping, cumulative histogram buckets, refused registrations, and
 * counts that stay exact when several threads update at once. */
#include "common/metrics.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdlib.h>

static char *
render(pl_metrics *r)
{
	pl_sbuf b = PL_SBUF_INIT;

	pl_metrics_render(r, &b);
	return pl_sbuf_take(&b, NULL);
}

static void
counter_and_gauge_text(void)
{
	pl_metrics *r;
	pl_metric *c, *g;
	char *s;

	ASSERT_OK(pl_metrics_create(&r));
	c = pl_metrics_counter(r, "x_total", "Things done.", NULL);
	g = pl_metrics_gauge(r, "y_bytes", "Bytes held.", NULL);
	ASSERT_TRUE(c && g);
	pl_counter_add(c, 3);
	pl_counter_add(c, 2);
	pl_gauge_set(g, 1.5);
	pl_gauge_add(g, 1);
	s = render(r);
	ASSERT_STREQ(s,
	    "# HELP x_total Things done.\n"
	    "# TYPE x_total counter\n"
	    "x_total 5\n"
	    "# HELP y_bytes Bytes held.\n"
	    "# TYPE y_bytes gauge\n"
	    "y_bytes 2.5\n");
	ASSERT_EQ(pl_metric_value(c), 5);
	free(s);
	pl_metrics_destroy(r);
}

static void
labels_share_one_family(void)
{
	pl_metrics *r;
	pl_metric *a, *b;
	char *s;

	ASSERT_OK(pl_metrics_create(&r));
	a = pl_metrics_counter(
	    r, "refused_total", "Refusals.", "reason", "auth", NULL);
	b = pl_metrics_counter(r, "refused_total", "Refusals.", "reason",
	    "say \"hi\"\\\n", "kind", "x", NULL);
	ASSERT_TRUE(a && b);
	pl_counter_add(b, 7);
	s = render(r);
	ASSERT_STREQ(s,
	    "# HELP refused_total Refusals.\n"
	    "# TYPE refused_total counter\n"
	    "refused_total{reason=\"auth\"} 0\n"
	    "refused_total{reason=\"say \\\"hi\\\"\\\\\\n\",kind=\"x\"} 7\n");
	free(s);
	pl_metrics_destroy(r);
}

static void
histogram_buckets_are_cumulative(void)
{
	static const double bounds[] = { 0.1, 1, 10 };
	pl_metrics *r;
	pl_metric *h;
	char *s;

	ASSERT_OK(pl_metrics_create(&r));
	h = pl_metrics_histogram(
	    r, "lat_seconds", "Latency.", bounds, 3, "op", "w", NULL);
	ASSERT_TRUE(h != NULL);
	pl_histogram_observe(h, 0.05);
	pl_histogram_observe(h, 0.1); /* on the bound: le is inclusive */
	pl_histogram_observe(h, 5);
	pl_histogram_observe(h, 100);
	s = render(r);
	ASSERT_STREQ(s,
	    "# HELP lat_seconds Latency.\n"
	    "# TYPE lat_seconds histogram\n"
	    "lat_seconds_bucket{op=\"w\",le=\"0.1\"} 2\n"
	    "lat_seconds_bucket{op=\"w\",le=\"1\"} 2\n"
	    "lat_seconds_bucket{op=\"w\",le=\"10\"} 3\n"
	    "lat_seconds_bucket{op=\"w\",le=\"+Inf\"} 4\n"
	    "lat_seconds_sum{op=\"w\"} 105.15\n"
	    "lat_seconds_count{op=\"w\"} 4\n");
	ASSERT_EQ(pl_metric_value(h), 4);
	free(s);
	pl_metrics_destroy(r);
}

static uint64_t borrowed = 41;
static int collected;

static void
collect(void *arg)
{
	(void)arg;
	collected++;
	borrowed++;
}

static double
half(void *arg)
{
	return *(double *)arg / 2;
}

static void
borrowed_series_read_at_render(void)
{
	pl_metrics *r;
	double d = 9;
	char *s;

	ASSERT_OK(pl_metrics_create(&r));
	ASSERT_OK(pl_metrics_on_collect(r, collect, NULL));
	ASSERT_OK(
	    pl_metrics_counter_ptr(r, "b_total", "Borrowed.", &borrowed, NULL));
	ASSERT_OK(pl_metrics_gauge_fn(r, "f", "By function.", half, &d, NULL));
	s = render(r);
	ASSERT_STREQ(s,
	    "# HELP b_total Borrowed.\n# TYPE b_total counter\nb_total 42\n"
	    "# HELP f By function.\n# TYPE f gauge\nf 4.5\n");
	ASSERT_EQ(collected, 1);
	free(s);
	pl_metrics_destroy(r);
}

static void
bad_registrations_refused(void)
{
	static const double down[] = { 1, 0.5 };
	pl_metrics *r;

	ASSERT_OK(pl_metrics_create(&r));
	ASSERT_TRUE(pl_metrics_counter(r, "9bad", "x", NULL) == NULL);
	ASSERT_TRUE(pl_metrics_counter(r, "bad-name", "x", NULL) == NULL);
	ASSERT_TRUE(
	    pl_metrics_counter(r, "ok", "x", "bad key", "v", NULL) == NULL);
	ASSERT_TRUE(pl_metrics_counter(r, "same", "x", NULL) != NULL);
	/* One family, one type. */
	ASSERT_TRUE(pl_metrics_gauge(r, "same", "x", NULL) == NULL);
	ASSERT_TRUE(pl_metrics_histogram(r, "h", "x", down, 2, NULL) == NULL);
	ASSERT_NE(pl_metrics_counter_ptr(r, "p", "x", NULL, NULL), 0);
	/* Updating a failed registration is harmless. */
	pl_counter_add(NULL, 1);
	pl_histogram_observe(NULL, 1);
	pl_gauge_set(NULL, 1);
	pl_metrics_destroy(r);
}

static void
process_metrics_present(void)
{
	pl_metrics *r;
	char *s;

	ASSERT_OK(pl_metrics_create(&r));
	ASSERT_OK(pl_metrics_add_process(r));
	s = render(r);
	ASSERT_TRUE(strstr(s, "\nprocess_resident_memory_bytes ") != NULL);
	ASSERT_TRUE(strstr(s, "\nprocess_open_fds ") != NULL);
	ASSERT_TRUE(strstr(s, "\nprocess_cpu_seconds_total ") != NULL);
	ASSERT_TRUE(strstr(s, "\nprocess_start_time_seconds 1") != NULL);
	/* Resident memory is at least a page; stdin/out/err are open. */
	ASSERT_TRUE(strstr(s, "\nprocess_resident_memory_bytes 0\n") == NULL);
	ASSERT_TRUE(strstr(s, "\nprocess_open_fds 0\n") == NULL);
	free(s);
	pl_metrics_destroy(r);
}

#define THREADS 4
#define PER_THREAD 100000

static void *
hammer(void *arg)
{
	pl_metric **m = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		pl_counter_add(m[0], 1);
		pl_histogram_observe(m[1], 0.001);
	}
	return NULL;
}

static void
updates_from_threads_are_exact(void)
{
	pl_metrics *r;
	pl_metric *m[2];
	pthread_t t[THREADS];

	ASSERT_OK(pl_metrics_create(&r));
	m[0] = pl_metrics_counter(r, "n_total", "n", NULL);
	m[1] = pl_metrics_histogram(r, "h_seconds", "h",
	    pl_metrics_latency_buckets, pl_metrics_latency_nbuckets, NULL);
	for (int i = 0; i < THREADS; i++) {
		ASSERT_OK(pthread_create(&t[i], NULL, hammer, m));
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
	}
	ASSERT_EQ(pl_metric_value(m[0]), THREADS * PER_THREAD);
	ASSERT_EQ(pl_metric_value(m[1]), THREADS * PER_THREAD);
	pl_metrics_destroy(r);
}

TEST_LIST{
	TEST_ENTRY(counter_and_gauge_text),
	TEST_ENTRY(labels_share_one_family),
	TEST_ENTRY(histogram_buckets_are_cumulative),
	TEST_ENTRY(borrowed_series_read_at_render),
	TEST_ENTRY(bad_registrations_refused),
	TEST_ENTRY(process_metrics_present),
	TEST_ENTRY(updates_from_threads_are_exact),
};
TEST_MAIN()
