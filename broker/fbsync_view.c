/* SPDX-License-Identifier: Apache-2.0 */
/* What an operator sees of the Firebase sync: GET /v1/sync and
 * /v1/sync/parked, POST /v1/sync/retry, and the parley_firebase_* metrics. */
#include "broker/fbsync_int.h"

#include "broker/fetch.h"
#include "broker/gauth.h"
#include "cluster/syncmarks.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proto/firebase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const outcome_names[FB_R_N] = { "2xx", "401", "403", "429",
	"4xx", "5xx", "timeout", "connection" };

static const char *
auth_kind(brk_fbsync *s)
{
	if (s->env.gauth != NULL) {
		return "service_account";
	}
	if (s->env.auth_secret != NULL &&
	    s->env.auth_secret(s->env.auth_arg) != NULL) {
		return "auth_token";
	}
	return "none";
}

json_t *
brk_fbsync_status_json(brk_fbsync *s)
{
	const char *leader = clu_syncmarks_leader(s->env.marks);
	json_t *o = json_object(), *req = json_object(), *orig = json_array();
	int64_t oldest = 0;
	uint64_t depth = fb_depth(s, &oldest);

	json_object_set_new(o, "self", json_string(s->self));
	json_object_set_new(
	    o, "leader", leader ? json_string(leader) : json_null());
	json_object_set_new(o, "is_leader", json_boolean(s->leading));
	json_object_set_new(o, "enabled", json_boolean(s->url != NULL));
	if (s->url == NULL) {
		json_object_set_new(o, "reason",
		    json_string("no --firebase-url: this node keeps the "
				"replicated sync marks only"));
	} else {
		json_object_set_new(o, "url", json_string(s->url));
		json_object_set_new(o, "auth", json_string(auth_kind(s)));
	}
	json_object_set_new(o, "queue_depth", json_integer((json_int_t)depth));
	json_object_set_new(o, "oldest_pending_age_s",
	    oldest > 0
		? json_real((double)((int64_t)pl_wall_ms() - oldest) / 1000.0)
		: json_null());
	json_object_set_new(o, "last_success",
	    s->last_success_ms ? json_integer(s->last_success_ms)
			       : json_null());
	json_object_set_new(o, "in_flight", json_integer(s->inflight));
	json_object_set_new(o, "in_flight_comments",
	    json_integer((json_int_t)s->inflight_comments));
	json_object_set_new(
	    o, "retries", json_integer((json_int_t)s->st.retries));
	json_object_set_new(
	    o, "backoff_ms", json_integer((json_int_t)s->backoff_ms));
	json_object_set_new(o, "parked",
	    json_integer((json_int_t)fb_parked_count(s, PRO_SYNC_PARKED)));
	json_object_set_new(o, "retrying",
	    json_integer((json_int_t)fb_parked_count(s, PRO_SYNC_RETRY)));
	json_object_set_new(
	    o, "comments_synced", json_integer((json_int_t)s->st.synced));
	json_object_set_new(
	    o, "batches", json_integer((json_int_t)s->st.batches));
	json_object_set_new(
	    o, "resent", json_integer((json_int_t)s->st.resent));
	for (int i = 0; i < FB_R_N; i++) {
		json_object_set_new(req, outcome_names[i],
		    json_integer((json_int_t)s->st.requests[i]));
	}
	json_object_set_new(o, "requests", req);
	for (size_t i = 0; i < s->norigins; i++) {
		uint64_t synced, sent;
		clu_syncmarks_get(
		    s->env.marks, s->origins[i].name, &synced, &sent);
		json_array_append_new(orig,
		    json_pack("{s:s, s:I, s:I, s:I}", "origin",
			s->origins[i].name, "held",
			(json_int_t)s->origins[i].held, "synced",
			(json_int_t)synced, "sent", (json_int_t)sent));
	}
	json_object_set_new(o, "origins", orig);
	return o;
}

static const char *
state_name(uint32_t st)
{
	return st == PRO_SYNC_PARKED ? "parked"
	    : st == PRO_SYNC_RETRY   ? "retrying"
				     : "done";
}

typedef struct list_ctx {
	brk_fbsync *s;
	json_t *arr;
	size_t limit;
} list_ctx;

static void
list_one(void *arg, const pro_sync_parked *p)
{
	list_ctx *x = arg;
	sto_comment_list *l = NULL;
	json_t *e;

	if (p->state == PRO_SYNC_DONE || json_array_size(x->arr) >= x->limit) {
		return;
	}
	e = json_pack("{s:s, s:I, s:s, s:i, s:s}", "origin", p->origin, "seq",
	    (json_int_t)p->seq, "state", state_name(p->state), "status",
	    (int)p->status, "reason", p->reason);
	if (e != NULL &&
	    sto_comments_origin_after(
		x->s->env.store, p->origin, p->seq - 1, 1, &l) == PL_OK &&
	    l->count > 0 && l->items[0].seq == p->seq) {
		const sto_comment *c = &l->items[0];
		size_t vlen = strlen(c->video_id);
		char *key = malloc(PRO_FB_KEY_MAX(vlen) + 1);
		if (key != NULL) {
			pro_fb_key_encode(c->video_id, vlen, key);
			json_object_set_new(e, "path",
			    json_sprintf("comments/%s/%s", key, c->id));
			free(key);
		}
		json_object_set_new(e, "video_id", json_string(c->video_id));
		json_object_set_new(e, "id", json_string(c->id));
		json_object_set_new(e, "user_id", json_string(c->user_id));
		json_object_set_new(
		    e, "inserted_at", json_integer(c->inserted_at));
	}
	sto_comment_list_free(l);
	json_array_append_new(x->arr, e);
}

json_t *
brk_fbsync_parked_json(brk_fbsync *s, size_t limit)
{
	list_ctx x = { s, json_array(), limit };

	clu_syncmarks_parked_each(s->env.marks, 0, list_one, &x);
	return json_pack("{s:I, s:I, s:o}", "parked",
	    (json_int_t)fb_parked_count(s, PRO_SYNC_PARKED), "retrying",
	    (json_int_t)fb_parked_count(s, PRO_SYNC_RETRY), "comments", x.arr);
}

typedef struct retry_ctx {
	pro_sync_parked *v;
	size_t n, cap;
	char (*origins)[STO_ORIGIN_MAX + 1];
} retry_ctx;

static void
collect_parked(void *arg, const pro_sync_parked *p)
{
	retry_ctx *x = arg;

	if (p->state == PRO_SYNC_PARKED && x->n < x->cap) {
		snprintf(x->origins[x->n], sizeof(x->origins[x->n]), "%s",
		    p->origin);
		x->v[x->n] = *p;
		x->v[x->n].origin = x->origins[x->n];
		x->n++;
	}
}

size_t
brk_fbsync_retry_parked(brk_fbsync *s)
{
	size_t cap = fb_parked_count(s, PRO_SYNC_PARKED), done = 0;
	retry_ctx x = { NULL, 0, cap, NULL };

	if (cap == 0) {
		return 0;
	}
	/* Copied first: changing an entry reorders nothing, but the table
	 * must not change while it is walked. */
	x.v = calloc(cap, sizeof(*x.v));
	x.origins = calloc(cap, sizeof(*x.origins));
	if (x.v != NULL && x.origins != NULL) {
		clu_syncmarks_parked_each(s->env.marks, 0, collect_parked, &x);
	}
	for (size_t i = 0; i < x.n; i++) {
		x.v[i].gen++;
		x.v[i].state = PRO_SYNC_RETRY;
		if (clu_syncmarks_put_parked(s->env.marks, &x.v[i], true) ==
		    PL_OK) {
			fb_save_parked(s, &x.v[i]);
			done++;
		}
	}
	free(x.v);
	free(x.origins);
	if (done > 0) {
		LOG_NOTICE("BRK-FBRETRYPARKED",
		    "%zu parked comments are to be sent to Firebase again "
		    "(admin request)",
		    done);
		brk_fbsync_kick(s);
	}
	return done;
}

/* ---- metrics ---- */

static void
collect(void *arg)
{
	brk_fbsync *s = arg;
	int64_t oldest = 0;
	brk_gauth_stats gs;

	s->st.depth = fb_depth(s, &oldest);
	s->st.lag_s =
	    oldest > 0 ? (double)((int64_t)pl_wall_ms() - oldest) / 1000.0 : 0;
	s->st.inflight = s->inflight;
	s->st.parked_now = fb_parked_count(s, PRO_SYNC_PARKED);
	if (s->env.gauth != NULL) {
		brk_gauth_stats_get(s->env.gauth, &gs);
		s->st.token_ok = gs.fetched;
		s->st.token_failed = gs.failed;
	}
}

static double
lag(void *arg)
{
	return ((brk_fbsync *)arg)->st.lag_s;
}

int
fb_register_metrics(brk_fbsync *s)
{
	pl_metrics *r = s->env.metrics;
	fb_stats *st = &s->st;
	const char *tok = "parley_firebase_token_refreshes_total";
	const char *tok_help = "OAuth access tokens fetched for Firebase, by "
			       "result.";
	int rc = 0;

	rc |= pl_metrics_on_collect(r, collect, s);
	for (int i = 0; i < FB_R_N; i++) {
		rc |= pl_metrics_counter_ptr(r,
		    "parley_firebase_requests_total",
		    "Firebase write requests answered, by status (timeout and "
		    "connection: no answer).",
		    &st->requests[i], "status", outcome_names[i], NULL);
	}
	rc |= pl_metrics_counter_ptr(r, "parley_firebase_batches_total",
	    "Batches written to Firebase (one multi-path update each).",
	    &st->batches, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_firebase_comments_synced_total",
	    "Comments written to Firebase by this node.", &st->synced, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_firebase_retries_total",
	    "Firebase requests sent again after a failure.", &st->retries,
	    NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_firebase_parked_total",
	    "Comments this node parked after Firebase refused them.",
	    &st->parked, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_firebase_parked_comments",
	    "Comments parked now (cluster-wide, as this node knows).",
	    &st->parked_now, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_firebase_resent_comments_total",
	    "Comments this node wrote that another leader had already sent "
	    "(duplicate writes after a failover or a partition).",
	    &st->resent, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_firebase_batch_splits_total",
	    "Batches split to find the comment Firebase refused.", &st->splits,
	    NULL);
	rc |= pl_metrics_counter_ptr(
	    r, tok, tok_help, &st->token_ok, "result", "ok", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, tok, tok_help, &st->token_failed, "result", "failed", NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_firebase_queue_depth",
	    "Comments held here and not yet synced.", &st->depth, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_firebase_inflight_requests",
	    "Firebase requests in flight.", &st->inflight, NULL);
	rc |= pl_metrics_gauge_fn(r, "parley_firebase_lag_seconds",
	    "Age of the oldest comment not yet synced (0 when none).", lag, s,
	    NULL);
	s->sync_seconds = pl_metrics_histogram(r,
	    "parley_firebase_sync_seconds",
	    "From a comment's acceptance to its write confirmed by Firebase "
	    "(needs synchronised clocks).",
	    pl_metrics_latency_buckets, pl_metrics_latency_nbuckets, NULL);
	return rc ? PL_ENOMEM : PL_OK;
}
