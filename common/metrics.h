/* SPDX-License-Identifier: Apache-2.0 */
/* A metrics registry rendered in the Prometheus text exposition format
 * (version 0.0.4): counters, gauges and histograms with fixed buckets, each
 * series registered once with its name, help text and labels, so a module
 * adds a metric with one line and /metrics lists it with HELP and TYPE.
 *
 * Two kinds of series. Owned series keep their value here and are updated
 * with pl_counter_add / pl_gauge_set / pl_histogram_observe, from any
 * thread (relaxed atomics). Borrowed series read a variable their module
 * already keeps (a stats struct field) or call a function at render time;
 * they are read on the rendering thread only, so they suit counters kept
 * by the loop thread. Collect hooks run first at each render, to refresh a
 * snapshot that borrowed series point into.
 *
 * Registration and rendering belong to one thread (the loop). Names follow
 * Prometheus conventions: counters end in _total, units are base units
 * (_seconds, _bytes). Labels are given as key, value pairs ending in NULL;
 * values are escaped. A series with a malformed name, or whose type
 * disagrees with its family, is refused (NULL / PL_EINVAL) and updating a
 * NULL series does nothing, so a failed registration only loses a metric. */
#ifndef PARLEY_COMMON_METRICS_H
#define PARLEY_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

typedef struct pl_metrics pl_metrics;
typedef struct pl_metric pl_metric;

/* Buckets for latencies in seconds: 0.5 ms to 10 s. */
extern const double pl_metrics_latency_buckets[];
extern const size_t pl_metrics_latency_nbuckets;

int pl_metrics_create(pl_metrics **out);
/* Frees the registry and every owned series (NULL is ignored). */
void pl_metrics_destroy(pl_metrics *r);

/* Owned series; the registry owns the returned handle. Label pairs follow
 * help and end with NULL. NULL on a bad name, a type clash or no memory. */
pl_metric *pl_metrics_counter(pl_metrics *r, const char *name, const char *help,
    ...) __attribute__((sentinel));
pl_metric *pl_metrics_gauge(pl_metrics *r, const char *name, const char *help,
    ...) __attribute__((sentinel));
/* bounds: nbounds strictly increasing upper bounds (copied); +Inf is
 * implicit. */
pl_metric *
pl_metrics_histogram(pl_metrics *r, const char *name, const char *help,
    const double *bounds, size_t nbounds, ...) __attribute__((sentinel));

/* Borrowed series: *src is read at render time (src must outlive the
 * registry, or the series must be unused after the owner goes). */
int pl_metrics_counter_ptr(pl_metrics *r, const char *name, const char *help,
    const uint64_t *src, ...) __attribute__((sentinel));
int pl_metrics_gauge_ptr(pl_metrics *r, const char *name, const char *help,
    const uint64_t *src, ...) __attribute__((sentinel));
/* fn(arg) is called at render time for the value. */
int pl_metrics_gauge_fn(pl_metrics *r, const char *name, const char *help,
    double (*fn)(void *arg), void *arg, ...) __attribute__((sentinel));
int pl_metrics_counter_fn(pl_metrics *r, const char *name, const char *help,
    double (*fn)(void *arg), void *arg, ...) __attribute__((sentinel));

/* fn(arg) runs at the start of every render, in registration order. */
int pl_metrics_on_collect(pl_metrics *r, void (*fn)(void *arg), void *arg);

/* The process_* metrics of the Prometheus client libraries: resident and
 * virtual memory, open and max file descriptors, CPU seconds, start time
 * (read from /proc/self at render time). */
int pl_metrics_add_process(pl_metrics *r);

void pl_counter_add(pl_metric *m, uint64_t n);
void pl_gauge_set(pl_metric *m, double v);
void pl_gauge_add(pl_metric *m, double d);
/* Adds one observation (in the histogram's unit, seconds for latencies). */
void pl_histogram_observe(pl_metric *m, double v);

/* Current value of an owned counter or gauge (histograms: the count). */
double pl_metric_value(const pl_metric *m);

/* Appends the whole exposition to out: per family one HELP and one TYPE
 * line, then its series in registration order. */
void pl_metrics_render(pl_metrics *r, pl_sbuf *out);

#endif
