/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync queue's dispatcher (see fbsync.h): builds batches from
 * the store, sends them through broker/fetch, sorts out the answers and
 * moves the synced marks over the prefix of batches that are done. */
#include "broker/fbsync_int.h"

#include "broker/fetch.h"
#include "broker/gauth.h"
#include "cluster/syncmarks.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sbuf.h"
#include "proto/firebase.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 200 /* bytes of Firebase's answer kept */
#define RETRY_AFTER_MAX_MS 600000u

/* ---- the batch list ---- */

static void
batch_unlink(brk_fbsync *s, fb_batch *b)
{
	if (b->prev) {
		b->prev->next = b->next;
	} else {
		s->head = b->next;
	}
	if (b->next) {
		b->next->prev = b->prev;
	} else {
		s->tail = b->prev;
	}
	b->next = b->prev = NULL;
}

/* Puts b before `at`, or last when at is NULL. */
static void
batch_insert(brk_fbsync *s, fb_batch *at, fb_batch *b)
{
	b->next = at;
	b->prev = at ? at->prev : s->tail;
	if (b->prev) {
		b->prev->next = b;
	} else {
		s->head = b;
	}
	if (at) {
		at->prev = b;
	} else {
		s->tail = b;
	}
}

static void
drop_all(brk_fbsync *s)
{
	fb_batch *b;

	while ((b = s->head) != NULL) {
		brk_fetch_cancel(b->job);
		batch_unlink(s, b);
		fb_batch_free(b);
	}
	s->inflight = 0;
	s->inflight_comments = 0;
	s->retry_items = 0;
}

/* ---- sending ---- */

/* Percent-encodes s for a query string into a new string. */
static char *
query_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *o = out;

	if (out == NULL) {
		return NULL;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

static void on_done(void *arg, const brk_fetch_resp *r);

/* Raises the sent marks of b's origins as it is made, counts what another
 * leader had sent already, and keeps the per-origin maxima: the batch goes
 * out once those marks are durable, so after a crash the next leader
 * knows (and counts) every comment that may be in Firebase twice. */
static bool
mark_sent(brk_fbsync *s, fb_batch *b)
{
	size_t k = 0;

	for (size_t i = 0; i < s->norigins; i++) {
		s->scratch[i] = 0;
	}
	for (size_t i = 0; i < b->n; i++) {
		fb_item *it = &b->items[i];
		if (it->retry) {
			continue;
		}
		if (it->seq <= s->origins[it->origin].known_sent) {
			s->st.resent++;
		}
		if (it->seq > s->scratch[it->origin]) {
			k += s->scratch[it->origin] == 0;
			s->scratch[it->origin] = it->seq;
		}
	}
	if (k > 0 && (b->spans = calloc(k, sizeof(*b->spans))) == NULL) {
		return false;
	}
	for (size_t i = 0; i < s->norigins; i++) {
		if (s->scratch[i] > 0) {
			b->spans[b->nspans].origin = (uint32_t)i;
			b->spans[b->nspans++].max = s->scratch[i];
		}
	}
	for (size_t i = 0; i < b->nspans; i++) {
		fb_raise(s, b->spans[i].origin, 0, b->spans[i].max);
	}
	return true;
}

/* True once every sent mark b needs is on disk. */
static bool
marks_durable(const brk_fbsync *s, const fb_batch *b)
{
	for (size_t i = 0; i < b->nspans; i++) {
		if (s->origins[b->spans[i].origin].durable_sent <
		    b->spans[i].max) {
			return false;
		}
	}
	return true;
}

static bool
send_batch(brk_fbsync *s, fb_batch *b)
{
	const char *secret =
	    s->env.auth_secret ? s->env.auth_secret(s->env.auth_arg) : NULL;
	const char *token = NULL;
	char *url = NULL, *esc = NULL, *bearer = NULL;
	const char *hdrs[3] = { "Content-Type: application/json", NULL, NULL };
	brk_fetch_req req;
	uint64_t gen = 0;
	int rc;

	if (s->env.gauth != NULL &&
	    (token = brk_gauth_token(s->env.gauth, &gen)) == NULL) {
		return false; /* on_token kicks us once one is here */
	}
	if (secret != NULL && (esc = query_escape(secret)) == NULL) {
		return false;
	}
	if (asprintf(&url, "%s/comments.json?print=silent%s%s", s->url,
		esc ? "&auth=" : "", esc ? esc : "") < 0) {
		url = NULL;
	}
	if (token != NULL &&
	    asprintf(&bearer, "Authorization: Bearer %s", token) < 0) {
		bearer = NULL;
	}
	hdrs[1] = bearer;
	memset(&req, 0, sizeof(req));
	req.method = "PATCH";
	req.url = url;
	req.headers = hdrs;
	req.body = b->body;
	req.body_len = b->body_len;
	req.timeout_ms = s->env.timeout_ms;
	req.max_answer = 4096;
	rc = url == NULL || (token != NULL && bearer == NULL)
	    ? PL_ENOMEM
	    : brk_fetch_start(s->env.fetch, &req, on_done, b, &b->job);
	free(url);
	free(esc);
	free(bearer);
	if (rc != PL_OK) {
		LOG_SUMMARY(PL_LOG_ERR, "BRK-FBSEND",
		    "cannot start a Firebase request: %s", pl_strerror(rc));
		return false;
	}
	b->token_gen = gen;
	b->state = FB_INFLIGHT;
	if (++b->tries > 1) {
		s->st.retries++;
	}
	s->inflight++;
	s->inflight_comments += b->n;
	return true;
}

/* ---- answers ---- */

static void
backoff(brk_fbsync *s, fb_batch *b, const brk_fetch_resp *r, const char *what)
{
	uint64_t exp = s->env.retry_min_ms, delay;
	unsigned shift = s->failures < 20 ? s->failures : 20;

	s->failures++;
	exp <<= shift;
	if (exp > s->env.retry_max_ms) {
		exp = s->env.retry_max_ms;
	}
	/* Half fixed, half random ("equal jitter"): never a hammering
	 * retry, and leaders of a partition do not retry in step. */
	delay = exp / 2 + arc4random_uniform((uint32_t)(exp / 2 + 1));
	if (r != NULL && r->retry_after_s > 0) {
		uint64_t ra = (uint64_t)r->retry_after_s * 1000;
		ra = ra < RETRY_AFTER_MAX_MS ? ra : RETRY_AFTER_MAX_MS;
		delay = delay > ra ? delay : ra;
	}
	s->backoff_ms = delay;
	b->state = FB_WAITING;
	b->due_ms = pl_mono_ms() + delay;
	LOG_SUMMARY(PL_LOG_WARN, "BRK-FBRETRY",
	    "Firebase write of %zu comments failed (%s); retrying in %" PRIu64
	    " ms (attempt %u)",
	    b->n, what, delay, b->tries + 1);
}

static void
succeeded(brk_fbsync *s, fb_batch *b)
{
	double now = (double)pl_wall_ms();

	s->st.requests[FB_R_2XX]++;
	s->st.batches++;
	s->st.synced += b->n;
	for (size_t i = 0; i < b->n; i++) {
		fb_item *it = &b->items[i];
		double lag = (now - (double)it->inserted_at) / 1000.0;
		pl_histogram_observe(s->sync_seconds, lag > 0 ? lag : 0);
		if (it->retry) {
			fb_parked_done(s, s->origins[it->origin].name, it->seq);
			s->retry_items--;
		}
	}
	if (s->failures > 0 || s->logged_auth) {
		LOG_NOTICE("BRK-FBRETRY",
		    "Firebase writes succeed again after %u failed requests",
		    s->failures);
	}
	s->failures = 0;
	s->backoff_ms = 0;
	s->refreshed_401 = false;
	s->logged_auth = false;
	s->logged_parkfull = false;
	s->last_success_ms = (int64_t)pl_wall_ms();
	b->state = FB_DONE;
}

/* The path of item it, as it appears in the body, into out. */
static void
item_path(const fb_batch *b, const fb_item *it, char *out, size_t len)
{
	const char *p = b->body + it->off + 1; /* past the opening quote */
	const char *q = memchr(p, '"', it->len - 1);
	size_t n = q ? (size_t)(q - p) : 0;

	snprintf(out, len, "%.*s", (int)n, p);
}

/* An answer Firebase will give again (a 4xx other than 401/403/429): halve
 * the batch until the refused comment is alone, then park it. */
static void
refused(brk_fbsync *s, fb_batch *b, const brk_fetch_resp *r)
{
	char reason[REASON_MAX + 1], path[900];
	fb_item *it = &b->items[0];
	fb_batch *h1, *h2;
	int rc;

	s->st.requests[FB_R_4XX]++;
	if (b->n > 1) {
		h1 = fb_slice(b, 0, b->n / 2);
		h2 = h1 ? fb_slice(b, b->n / 2, b->n) : NULL;
		if (h2 == NULL) {
			fb_batch_free(h1);
			backoff(s, b, NULL, "out of memory splitting a batch");
			return;
		}
		s->st.splits++;
		batch_insert(s, b, h1);
		batch_insert(s, b, h2);
		batch_unlink(s, b);
		fb_batch_free(b);
		return;
	}
	snprintf(reason, sizeof(reason), "%.*s",
	    (int)(r->body_len < REASON_MAX ? r->body_len : REASON_MAX),
	    r->body);
	item_path(b, it, path, sizeof(path));
	rc = fb_park(s, s->origins[it->origin].name, it->seq,
	    (uint32_t)r->status, reason);
	if (rc == PL_EFULL) {
		if (!s->logged_parkfull) {
			LOG_ERR("BRK-FBPARKFULL",
			    "Firebase refused comments/%s (HTTP %ld: %s) but "
			    "%u "
			    "comments are parked already: the queue waits "
			    "instead; see parley sync --parked, fix the cause, "
			    "then parley sync --retry-parked",
			    path, r->status, reason, s->env.parked_max);
			s->logged_parkfull = true;
		}
		backoff(s, b, r, "parked comments at their limit");
		return;
	}
	LOG_WARN("BRK-FBPARKED",
	    "Firebase refused comments/%s (HTTP %ld: %s): parked, the queue "
	    "goes on (parley sync --parked; --retry-parked sends it again)",
	    path, r->status, reason[0] ? reason : "(empty answer)");
	if (it->retry) {
		s->retry_items--;
	}
	b->state = FB_DONE;
}

static void
unauthorized(brk_fbsync *s, fb_batch *b, const brk_fetch_resp *r)
{
	char what[300];

	if (r->status == 401 && s->env.gauth != NULL && !s->refreshed_401) {
		/* Expired or revoked: one new token, then the batch again. */
		s->refreshed_401 = true;
		brk_gauth_refused(s->env.gauth, b->token_gen);
		b->state = FB_WAITING;
		b->due_ms = pl_mono_ms();
		return;
	}
	snprintf(what, sizeof(what), "HTTP %ld: %.200s", r->status,
	    r->body_len ? r->body : "(empty answer)");
	if (!s->logged_auth) {
		LOG_ERR("BRK-FBAUTH",
		    "Firebase refuses this node's writes (%s): check "
		    "--firebase-auth / --firebase-credentials and the "
		    "database's rules; retrying with backoff",
		    what);
		s->logged_auth = true;
	}
	backoff(s, b, r, what);
}

static void
on_done(void *arg, const brk_fetch_resp *r)
{
	fb_batch *b = arg;
	brk_fbsync *s = b->s;
	char what[300];

	b->job = NULL;
	s->inflight--;
	s->inflight_comments -= b->n;
	if (r->err != PL_OK) {
		s->st.requests[r->err == PL_EAGAIN ? FB_R_TIMEOUT : FB_R_CONN]++;
		backoff(s, b, NULL, r->error);
	} else if (r->status >= 200 && r->status < 300) {
		succeeded(s, b);
	} else if (r->status == 401 || r->status == 403) {
		s->st.requests[r->status == 401 ? FB_R_401 : FB_R_403]++;
		unauthorized(s, b, r);
	} else if (r->status == 429 || r->status >= 500 || r->status < 400) {
		s->st.requests[r->status == 429 ? FB_R_429 : FB_R_5XX]++;
		snprintf(what, sizeof(what), "HTTP %ld: %.120s", r->status,
		    r->body_len ? r->body : "(empty answer)");
		backoff(s, b, r, what);
	} else {
		refused(s, b, r);
	}
	fb_pump(s);
}

/* ---- the pump ---- */

/* Pops the batches that are done from the head and raises the synced
 * marks over them: only a done prefix, so every seq below a mark is
 * written. */
static void
advance(brk_fbsync *s)
{
	bool any = false;
	fb_batch *b;

	for (size_t i = 0; i < s->norigins; i++) {
		s->scratch[i] = 0;
	}
	while ((b = s->head) != NULL && b->state == FB_DONE) {
		for (size_t i = 0; i < b->n; i++) {
			fb_item *it = &b->items[i];
			if (!it->retry && it->seq > s->scratch[it->origin]) {
				s->scratch[it->origin] = it->seq;
				any = true;
			}
		}
		batch_unlink(s, b);
		fb_batch_free(b);
	}
	for (size_t i = 0; any && i < s->norigins; i++) {
		if (s->scratch[i] > 0) {
			fb_raise(s, (uint32_t)i, s->scratch[i], 0);
		}
	}
}

static uint64_t
pending(brk_fbsync *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->norigins; i++) {
		fb_origin *o = &s->origins[i];
		n += o->held > o->next ? o->held - o->next : 0;
	}
	if (s->retry_items == 0) {
		n += fb_parked_count(s, PRO_SYNC_RETRY);
	}
	return n;
}

static void start_term(brk_fbsync *s);

void
fb_pump(brk_fbsync *s)
{
	uint64_t now;
	fb_batch *b;

	if (s->url == NULL || !s->leading) {
		return;
	}
	if (fb_refresh_origins(s) != PL_OK) {
		return;
	}
	advance(s);
	now = pl_mono_ms();
	/* Batches that went out before, oldest first; none is passed by
	 * a newer one while it waits for its backoff. */
	for (b = s->head; b != NULL; b = b->next) {
		if (b->state == FB_DONE || b->state == FB_INFLIGHT) {
			continue;
		}
		if (s->inflight >= s->env.inflight_max ||
		    (b->state == FB_WAITING && now < b->due_ms) ||
		    !marks_durable(s, b) || !send_batch(s, b)) {
			return;
		}
	}
	while (s->inflight < s->env.inflight_max) {
		uint64_t p = pending(s);
		/* One request out and less than a batch waiting: gather
		 * more while it is answered. */
		if (p == 0 || (s->inflight > 0 && p < s->env.batch_max)) {
			return;
		}
		if ((b = fb_build(s)) == NULL) {
			if (s->restart) {
				start_term(s);
			}
			return;
		}
		batch_insert(s, NULL, b);
		if (!mark_sent(s, b)) {
			s->restart = true; /* out of memory: start over */
			start_term(s);
			return;
		}
		if (!marks_durable(s, b) || !send_batch(s, b)) {
			return;
		}
	}
}

/* Forgets every batch and starts from the replicated marks. */
static void
start_term(brk_fbsync *s)
{
	drop_all(s);
	s->restart = false;
	s->failures = 0;
	s->backoff_ms = 0;
	s->refreshed_401 = false;
	fb_refresh_origins(s);
	for (size_t i = 0; i < s->norigins; i++) {
		fb_origin *o = &s->origins[i];
		uint64_t synced, sent;
		clu_syncmarks_get(s->env.marks, o->name, &synced, &sent);
		o->next = synced;
		o->known_sent = sent;
		o->gap_since = 0;
	}
}

void
fb_lead(brk_fbsync *s, bool lead)
{
	size_t cancelled = s->inflight;

	if (lead == s->leading) {
		return;
	}
	s->leading = lead;
	if (!lead) {
		drop_all(s);
		if (s->url != NULL) {
			LOG_NOTICE("BRK-FBSYNC",
			    "no longer the leader: Firebase sync stopped (%zu "
			    "requests cancelled; the next leader sends them "
			    "again)",
			    cancelled);
		}
		return;
	}
	s->leading_since_ms = pl_wall_ms();
	start_term(s);
	if (s->url != NULL) {
		LOG_NOTICE("BRK-FBSYNC",
		    "this node leads: syncing comments to %s from the "
		    "replicated marks (%zu origins)",
		    s->url, s->norigins);
		fb_pump(s);
	}
}

uint64_t
fb_depth(brk_fbsync *s, int64_t *oldest_ms)
{
	uint64_t n = 0;

	*oldest_ms = 0;
	if (fb_refresh_origins(s) != PL_OK) {
		return 0;
	}
	for (size_t i = 0; i < s->norigins; i++) {
		fb_origin *o = &s->origins[i];
		sto_comment_list *l = NULL;
		uint64_t synced, sent;

		clu_syncmarks_get(s->env.marks, o->name, &synced, &sent);
		if (o->held <= synced) {
			continue;
		}
		n += o->held - synced;
		if (sto_comments_origin_after(
			s->env.store, o->name, synced, 1, &l) == PL_OK &&
		    l->count > 0 &&
		    (*oldest_ms == 0 || l->items[0].inserted_at < *oldest_ms)) {
			*oldest_ms = l->items[0].inserted_at;
		}
		sto_comment_list_free(l);
	}
	return n + fb_parked_count(s, PRO_SYNC_RETRY);
}

/* ---- life ---- */

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	brk_fbsync *s = arg;

	(void)fd;
	(void)what;
	fb_save_pending(s);
	fb_pump(s);
}

void
brk_fbsync_kick(brk_fbsync *s)
{
	if (s != NULL && s->poll_ev != NULL) {
		event_active(s->poll_ev, EV_TIMEOUT, 0);
	}
}

static int
check_url(const char *url, char **out, char *err, size_t errlen)
{
	size_t n;

	*out = NULL;
	if (url == NULL) {
		return PL_OK;
	}
	if ((strncmp(url, "https://", 8) != 0 &&
		strncmp(url, "http://", 7) != 0) ||
	    strpbrk(url, "?# \t\r\n") != NULL) {
		snprintf(err, errlen,
		    "--firebase-url: expected the database's base URL, such as "
		    "https://NAME.firebaseio.com, got \"%s\"",
		    url);
		return PL_EINVAL;
	}
	if ((*out = strdup(url)) == NULL) {
		return PL_ENOMEM;
	}
	n = strlen(*out);
	while (n > 0 && (*out)[n - 1] == '/') {
		(*out)[--n] = '\0';
	}
	return PL_OK;
}

static void
defaults(brk_fbsync_env *e)
{
	e->batch_max = e->batch_max ? e->batch_max : 500;
	e->batch_bytes = e->batch_bytes ? e->batch_bytes : (1u << 20);
	e->inflight_max = e->inflight_max ? e->inflight_max : 4;
	e->timeout_ms = e->timeout_ms ? e->timeout_ms : 30000;
	e->retry_min_ms = e->retry_min_ms ? e->retry_min_ms : 500;
	e->retry_max_ms = e->retry_max_ms ? e->retry_max_ms : 30000;
	if (e->retry_max_ms < e->retry_min_ms) {
		e->retry_min_ms = e->retry_max_ms;
	}
	e->poll_ms = e->poll_ms ? e->poll_ms : 20;
	e->gap_wait_ms = e->gap_wait_ms ? e->gap_wait_ms : 60000;
	e->parked_max = e->parked_max ? e->parked_max : 1000;
}

int
brk_fbsync_create(
    brk_fbsync **out, const brk_fbsync_env *env, char *err, size_t errlen)
{
	brk_fbsync *s = calloc(1, sizeof(*s));
	struct timeval tv;
	int rc;

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	s->env = *env;
	defaults(&s->env);
	if ((rc = check_url(env->url, &s->url, err, errlen)) != PL_OK) {
		goto fail;
	}
	if (s->url != NULL && env->fetch == NULL) {
		snprintf(err, errlen, "Firebase sync needs an HTTP client");
		rc = PL_EINVAL;
		goto fail;
	}
	rc = PL_ENOMEM;
	snprintf(err, errlen, "out of memory");
	if ((s->self = strdup(env->self)) == NULL) {
		goto fail;
	}
	s->env.self = s->self;
	s->env.url = s->url;
	/* Without sync, the loop only persists what peers tell us. */
	tv.tv_sec = s->url ? s->env.poll_ms / 1000 : 1;
	tv.tv_usec = s->url ? (s->env.poll_ms % 1000) * 1000 : 0;
	s->poll_ev = event_new(env->base, -1, EV_PERSIST, on_poll, s);
	if (s->poll_ev == NULL || event_add(s->poll_ev, &tv) != 0) {
		goto fail;
	}
	if ((rc = fb_load(s)) != PL_OK) {
		snprintf(err, errlen, "cannot read the sync state: %s",
		    pl_strerror(rc));
		goto fail;
	}
	if (env->metrics != NULL && (rc = fb_register_metrics(s)) != PL_OK) {
		goto fail;
	}
	fb_listen(s);
	if (s->url != NULL) {
		LOG_NOTICE("BRK-FBSYNC",
		    "Firebase sync to %s (%s): batches of up to %u comments "
		    "and %zu bytes, %u requests at once; the leader sends",
		    s->url,
		    env->gauth ? "service account"
			: env->auth_secret && env->auth_secret(env->auth_arg)
			? "auth= token"
			: "no credentials",
		    s->env.batch_max, s->env.batch_bytes, s->env.inflight_max);
	}
	*out = s;
	return PL_OK;
fail:
	brk_fbsync_destroy(s);
	return rc;
}

void
brk_fbsync_destroy(brk_fbsync *s)
{
	if (s == NULL) {
		return;
	}
	if (s->env.marks != NULL) {
		clu_syncmarks_set_listener(s->env.marks, NULL);
	}
	drop_all(s);
	fb_detach_tickets(s);
	if (s->poll_ev) {
		event_free(s->poll_ev);
	}
	free(s->origins);
	free(s->scratch);
	free(s->self);
	free(s->url);
	free(s);
}
