/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry (see metrics.h): families in registration order,
 * each with its series; owned values are relaxed atomics so any thread may
 * update them, borrowed ones are read when /metrics is rendered. */
#include "common/metrics.h"

#include "common/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double pl_metrics_latency_buckets[] = { 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
const size_t pl_metrics_latency_nbuckets =
    sizeof(pl_metrics_latency_buckets) / sizeof(pl_metrics_latency_buckets[0]);

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype;
typedef enum { SRC_OWNED, SRC_PTR, SRC_FN } msrc;

struct pl_metric {
	char *labels; /* `k="v",k2="v2"` or NULL */
	mtype type;
	msrc src;
	_Atomic uint64_t value; /* counter: count; gauge: double bits */
	const uint64_t *ptr;
	double (*fn)(void *arg);
	void *arg;
	/* histograms */
	double *bounds;
	size_t nbounds;
	_Atomic uint64_t *buckets; /* nbounds + 1, not cumulative */
	_Atomic uint64_t sum;      /* double bits */
	struct pl_metric *next;
};

typedef struct family {
	char *name, *help;
	mtype type;
	pl_metric *head, *tail;
} family;

typedef struct collect_hook {
	void (*fn)(void *arg);
	void *arg;
} collect_hook;

struct pl_metrics {
	family *fam;
	size_t nfam, capfam;
	collect_hook *hooks;
	size_t nhooks;
};

static uint64_t
dbits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double
bitsd(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static void
atomic_add_double(_Atomic uint64_t *a, double d)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(a, &old,
	    dbits(bitsd(old) + d), memory_order_relaxed,
	    memory_order_relaxed)) {
	}
}

/* ---- registration ---- */

static bool
name_ok(const char *s)
{
	if (s == NULL ||
	    !(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') ||
		(*s >= 'A' && *s <= 'Z'))) {
		return false;
	}
	for (; *s; s++) {
		if (!(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') ||
			(*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))) {
			return false;
		}
	}
	return true;
}

/* Formats the NULL-terminated key/value pairs as a label body with escaped
 * values. *out is NULL when there are none. */
static int
labels_fmt(va_list ap, char **out)
{
	pl_sbuf b = PL_SBUF_INIT;
	const char *k;
	size_t n = 0;

	*out = NULL;
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		if (!name_ok(k) || v == NULL) {
			pl_sbuf_free(&b);
			return PL_EINVAL;
		}
		if (n++ > 0) {
			pl_sbuf_add(&b, ",", 1);
		}
		pl_sbuf_str(&b, k);
		pl_sbuf_add(&b, "=\"", 2);
		for (; *v; v++) {
			if (*v == '\\' || *v == '"') {
				pl_sbuf_add(&b, "\\", 1);
				pl_sbuf_add(&b, v, 1);
			} else if (*v == '\n') {
				pl_sbuf_add(&b, "\\n", 2);
			} else {
				pl_sbuf_add(&b, v, 1);
			}
		}
		pl_sbuf_add(&b, "\"", 1);
	}
	if (n == 0) {
		return PL_OK;
	}
	*out = pl_sbuf_take(&b, NULL);
	return *out ? PL_OK : PL_ENOMEM;
}

static family *
family_get(pl_metrics *r, const char *name, const char *help, mtype t)
{
	family *f;

	if (!name_ok(name) || help == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < r->nfam; i++) {
		if (strcmp(r->fam[i].name, name) == 0) {
			return r->fam[i].type == t ? &r->fam[i] : NULL;
		}
	}
	if (r->nfam == r->capfam) {
		size_t cap = r->capfam ? r->capfam * 2 : 32;
		family *p = realloc(r->fam, cap * sizeof(*p));
		if (p == NULL) {
			return NULL;
		}
		r->fam = p;
		r->capfam = cap;
	}
	f = &r->fam[r->nfam];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->help = strdup(help);
	f->type = t;
	if (f->name == NULL || f->help == NULL) {
		free(f->name);
		free(f->help);
		return NULL;
	}
	r->nfam++;
	return f;
}

static void
metric_free(pl_metric *m)
{
	free(m->labels);
	free(m->bounds);
	free((void *)m->buckets);
	free(m);
}

/* Creates a series in family (name, type) with the labels in ap. */
static pl_metric *
add(pl_metrics *r, const char *name, const char *help, mtype t, msrc src,
    va_list ap)
{
	family *f;
	pl_metric *m;

	if (r == NULL || (f = family_get(r, name, help, t)) == NULL) {
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return NULL;
	}
	if (labels_fmt(ap, &m->labels) != PL_OK) {
		free(m);
		return NULL;
	}
	m->type = t;
	m->src = src;
	if (f->tail) {
		f->tail->next = m;
	} else {
		f->head = m;
	}
	f->tail = m;
	return m;
}

int
pl_metrics_create(pl_metrics **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? PL_OK : PL_ENOMEM;
}

void
pl_metrics_destroy(pl_metrics *r)
{
	if (r == NULL) {
		return;
	}
	for (size_t i = 0; i < r->nfam; i++) {
		pl_metric *m = r->fam[i].head, *next;
		for (; m; m = next) {
			next = m->next;
			metric_free(m);
		}
		free(r->fam[i].name);
		free(r->fam[i].help);
	}
	free(r->fam);
	free(r->hooks);
	free(r);
}

pl_metric *
pl_metrics_counter(pl_metrics *r, const char *name, const char *help, ...)
{
	va_list ap;
	pl_metric *m;

	va_start(ap, help);
	m = add(r, name, help, M_COUNTER, SRC_OWNED, ap);
	va_end(ap);
	return m;
}

pl_metric *
pl_metrics_gauge(pl_metrics *r, const char *name, const char *help, ...)
{
	va_list ap;
	pl_metric *m;

	va_start(ap, help);
	m = add(r, name, help, M_GAUGE, SRC_OWNED, ap);
	va_end(ap);
	if (m) {
		atomic_store(&m->value, dbits(0));
	}
	return m;
}

pl_metric *
pl_metrics_histogram(pl_metrics *r, const char *name, const char *help,
    const double *bounds, size_t nbounds, ...)
{
	va_list ap;
	pl_metric *m;

	for (size_t i = 1; i < nbounds; i++) {
		if (!(bounds[i] > bounds[i - 1])) {
			return NULL;
		}
	}
	va_start(ap, nbounds);
	m = add(r, name, help, M_HISTOGRAM, SRC_OWNED, ap);
	va_end(ap);
	if (m == NULL) {
		return NULL;
	}
	m->bounds = malloc((nbounds ? nbounds : 1) * sizeof(double));
	m->buckets = calloc(nbounds + 1, sizeof(*m->buckets));
	if (m->bounds == NULL || m->buckets == NULL) {
		/* The series stays registered but empty: it renders zeros. */
		free(m->bounds);
		free((void *)m->buckets);
		m->bounds = NULL;
		m->buckets = NULL;
		return NULL;
	}
	memcpy(m->bounds, bounds, nbounds * sizeof(double));
	m->nbounds = nbounds;
	atomic_store(&m->sum, dbits(0));
	return m;
}

static int
add_ptr(pl_metrics *r, const char *name, const char *help, mtype t,
    const uint64_t *src, va_list ap)
{
	pl_metric *m;

	if (src == NULL) {
		return PL_EINVAL;
	}
	m = add(r, name, help, t, SRC_PTR, ap);
	if (m == NULL) {
		return PL_EINVAL;
	}
	m->ptr = src;
	return PL_OK;
}

int
pl_metrics_counter_ptr(
    pl_metrics *r, const char *name, const char *help, const uint64_t *src, ...)
{
	va_list ap;
	int rc;

	va_start(ap, src);
	rc = add_ptr(r, name, help, M_COUNTER, src, ap);
	va_end(ap);
	return rc;
}

int
pl_metrics_gauge_ptr(
    pl_metrics *r, const char *name, const char *help, const uint64_t *src, ...)
{
	va_list ap;
	int rc;

	va_start(ap, src);
	rc = add_ptr(r, name, help, M_GAUGE, src, ap);
	va_end(ap);
	return rc;
}

static int
add_fn(pl_metrics *r, const char *name, const char *help, mtype t,
    double (*fn)(void *), void *arg, va_list ap)
{
	pl_metric *m;

	if (fn == NULL) {
		return PL_EINVAL;
	}
	m = add(r, name, help, t, SRC_FN, ap);
	if (m == NULL) {
		return PL_EINVAL;
	}
	m->fn = fn;
	m->arg = arg;
	return PL_OK;
}

int
pl_metrics_gauge_fn(pl_metrics *r, const char *name, const char *help,
    double (*fn)(void *arg), void *arg, ...)
{
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = add_fn(r, name, help, M_GAUGE, fn, arg, ap);
	va_end(ap);
	return rc;
}

int
pl_metrics_counter_fn(pl_metrics *r, const char *name, const char *help,
    double (*fn)(void *arg), void *arg, ...)
{
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = add_fn(r, name, help, M_COUNTER, fn, arg, ap);
	va_end(ap);
	return rc;
}

int
pl_metrics_on_collect(pl_metrics *r, void (*fn)(void *arg), void *arg)
{
	collect_hook *p;

	if (r == NULL || fn == NULL) {
		return PL_EINVAL;
	}
	p = realloc(r->hooks, (r->nhooks + 1) * sizeof(*p));
	if (p == NULL) {
		return PL_ENOMEM;
	}
	r->hooks = p;
	r->hooks[r->nhooks].fn = fn;
	r->hooks[r->nhooks].arg = arg;
	r->nhooks++;
	return PL_OK;
}

/* ---- updates ---- */

void
pl_counter_add(pl_metric *m, uint64_t n)
{
	if (m) {
		atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
	}
}

void
pl_gauge_set(pl_metric *m, double v)
{
	if (m) {
		atomic_store_explicit(
		    &m->value, dbits(v), memory_order_relaxed);
	}
}

void
pl_gauge_add(pl_metric *m, double d)
{
	if (m) {
		atomic_add_double(&m->value, d);
	}
}

void
pl_histogram_observe(pl_metric *m, double v)
{
	size_t i = 0;

	if (m == NULL || m->buckets == NULL || isnan(v)) {
		return;
	}
	/* Bucket i counts values in (bounds[i-1], bounds[i]]. */
	while (i < m->nbounds && v > m->bounds[i]) {
		i++;
	}
	atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&m->sum, v);
}

double
pl_metric_value(const pl_metric *m)
{
	uint64_t n = 0;

	if (m == NULL || m->src != SRC_OWNED) {
		return 0;
	}
	if (m->type == M_HISTOGRAM) {
		for (size_t i = 0; m->buckets && i <= m->nbounds; i++) {
			n += atomic_load(&m->buckets[i]);
		}
		return (double)n;
	}
	if (m->type == M_COUNTER) {
		return (double)atomic_load(&m->value);
	}
	return bitsd(atomic_load(&m->value));
}

/* ---- rendering ---- */

/* A sample value as Prometheus parses it (Go's ParseFloat). */
static void
num_str(char *s, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(s, n, "NaN");
	} else if (isinf(v)) {
		snprintf(s, n, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(s, n, "%.0f", v);
	} else {
		snprintf(s, n, "%.15g", v);
	}
}

static void
put_num(pl_sbuf *b, double v)
{
	char s[64];

	num_str(s, sizeof(s), v);
	pl_sbuf_str(b, s);
}

/* name{labels[,extra]} value\n */
static void
put_sample(pl_sbuf *b, const char *name, const char *suffix, const char *labels,
    const char *extra, double v)
{
	pl_sbuf_str(b, name);
	pl_sbuf_str(b, suffix);
	if (labels || extra) {
		pl_sbuf_add(b, "{", 1);
		if (labels) {
			pl_sbuf_str(b, labels);
		}
		if (labels && extra) {
			pl_sbuf_add(b, ",", 1);
		}
		if (extra) {
			pl_sbuf_str(b, extra);
		}
		pl_sbuf_add(b, "}", 1);
	}
	pl_sbuf_add(b, " ", 1);
	put_num(b, v);
	pl_sbuf_add(b, "\n", 1);
}

static void
put_help(pl_sbuf *b, const family *f)
{
	static const char *types[] = { "counter", "gauge", "histogram" };
	const char *h;

	pl_sbuf_str(b, "# HELP ");
	pl_sbuf_str(b, f->name);
	pl_sbuf_add(b, " ", 1);
	for (h = f->help; *h; h++) {
		if (*h == '\\') {
			pl_sbuf_add(b, "\\\\", 2);
		} else if (*h == '\n') {
			pl_sbuf_add(b, "\\n", 2);
		} else {
			pl_sbuf_add(b, h, 1);
		}
	}
	pl_sbuf_str(b, "\n# TYPE ");
	pl_sbuf_str(b, f->name);
	pl_sbuf_add(b, " ", 1);
	pl_sbuf_str(b, types[f->type]);
	pl_sbuf_add(b, "\n", 1);
}

static void
put_histogram(pl_sbuf *b, const family *f, const pl_metric *m)
{
	uint64_t cum = 0;
	char num[64], le[80];

	for (size_t i = 0; i <= m->nbounds; i++) {
		cum += m->buckets ? atomic_load(&m->buckets[i]) : 0;
		num_str(
		    num, sizeof(num), i < m->nbounds ? m->bounds[i] : INFINITY);
		snprintf(le, sizeof(le), "le=\"%s\"", num);
		put_sample(b, f->name, "_bucket", m->labels, le, (double)cum);
	}
	put_sample(b, f->name, "_sum", m->labels, NULL,
	    m->buckets ? bitsd(atomic_load(&m->sum)) : 0);
	put_sample(b, f->name, "_count", m->labels, NULL, (double)cum);
}

void
pl_metrics_render(pl_metrics *r, pl_sbuf *out)
{
	for (size_t i = 0; i < r->nhooks; i++) {
		r->hooks[i].fn(r->hooks[i].arg);
	}
	for (size_t i = 0; i < r->nfam; i++) {
		const family *f = &r->fam[i];
		put_help(out, f);
		for (const pl_metric *m = f->head; m; m = m->next) {
			double v = 0;
			if (f->type == M_HISTOGRAM) {
				put_histogram(out, f, m);
				continue;
			}
			if (m->src == SRC_PTR) {
				v = (double)*m->ptr;
			} else if (m->src == SRC_FN) {
				v = m->fn(m->arg);
			} else if (f->type == M_COUNTER) {
				v = (double)atomic_load(&m->value);
			} else {
				v = bitsd(atomic_load(&m->value));
			}
			put_sample(out, f->name, "", m->labels, NULL, v);
		}
	}
}
