/* SPDX-License-Identifier: Apache-2.0 */
/* The router owns topics and channel instances. Topics are a chained hash of
 * name to a subscriber array (swap-remove keeps leave O(1)); channels are also
 * hashed by id so work that finishes later can find out whether its channel
 * still exists. Control events follow Phoenix (phoenix.md section 2). */
#include "broker/router.h"

#include "broker/conn.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct brk_topic {
	char *name;
	brk_channel **subs;
	uint32_t n, cap;
	struct brk_topic *hnext;
} brk_topic;

struct brk_channel {
	brk_router *router;
	brk_conn *conn;
	brk_topic *topic;
	const brk_channel_ops *ops;
	void *module; /* the arg its ops were registered with */
	json_t *join_ref;
	uint64_t id;
	uint32_t sub_index;
	int joined; /* the module accepted the join: terminate runs */
	brk_channel *next_in_conn;
	brk_channel *id_next;
	void *state;
};

struct brk_reply {
	brk_conn *conn;
	json_t *join_ref;
	json_t *ref;
	char *topic;
};

#define MAX_OPS 8

struct brk_router {
	pl_metrics *metrics;
	uint32_t max_channels;
	const brk_channel_ops *ops[MAX_OPS];
	void *args[MAX_OPS];
	size_t nops;
	brk_topic **topics;
	size_t tcap, ntopics;
	brk_channel **chans;
	size_t ccap, nchans;
	uint64_t next_id;
	uint64_t broadcasts, deliveries;
	uint64_t joins[MAX_OPS]; /* successful joins per channel module */
	brk_forward_fn forward;
	void *forward_arg;
};

static double
topics_now(void *arg)
{
	return (double)((brk_router *)arg)->ntopics;
}

static double
channels_now(void *arg)
{
	return (double)brk_router_channel_count(arg);
}

static int
register_metrics(brk_router *r)
{
	pl_metrics *m = r->metrics;
	int rc;

	if ((rc = pl_metrics_gauge_fn(m, "parley_topics",
		 "Topics with at least one local subscriber.", topics_now, r,
		 NULL)) != PL_OK ||
	    (rc = pl_metrics_gauge_fn(m, "parley_channels_joined",
		 "Channels joined on this node (all sockets).", channels_now, r,
		 NULL)) != PL_OK ||
	    (rc = pl_metrics_counter_ptr(m, "parley_broadcasts_total",
		 "Broadcasts fanned out to local subscribers.", &r->broadcasts,
		 NULL)) != PL_OK) {
		return rc;
	}
	return pl_metrics_counter_ptr(m, "parley_deliveries_total",
	    "Messages delivered to local subscribers by broadcasts.",
	    &r->deliveries, NULL);
}

int
brk_router_create(brk_router **out, pl_metrics *metrics, uint32_t max_channels)
{
	brk_router *r = calloc(1, sizeof(*r));
	int rc = PL_ENOMEM;

	*out = NULL;
	if (r == NULL) {
		return PL_ENOMEM;
	}
	r->metrics = metrics;
	r->max_channels = max_channels;
	r->tcap = 1024;
	r->ccap = 1024;
	r->topics = calloc(r->tcap, sizeof(*r->topics));
	r->chans = calloc(r->ccap, sizeof(*r->chans));
	r->next_id = 1;
	if (r->topics == NULL || r->chans == NULL ||
	    (rc = register_metrics(r)) != PL_OK) {
		goto fail;
	}
	*out = r;
	return PL_OK;
fail:
	brk_router_destroy(r);
	return rc;
}

void
brk_router_destroy(brk_router *r)
{
	size_t i;

	if (r == NULL) {
		return;
	}
	for (i = 0; r->topics && i < r->tcap; i++) {
		brk_topic *t = r->topics[i], *nx;
		for (; t; t = nx) {
			nx = t->hnext;
			free(t->subs);
			free(t->name);
			free(t);
		}
	}
	free(r->topics);
	free(r->chans);
	free(r);
}

int
brk_router_register(brk_router *r, const brk_channel_ops *ops, void *arg)
{
	char kind[32];
	size_t n;
	int rc;

	if (r->nops >= MAX_OPS) {
		return PL_EFULL;
	}
	/* The kind label is the topic prefix without its colon. */
	n = strcspn(ops->prefix, ":");
	snprintf(kind, sizeof(kind), "%.*s", (int)n, ops->prefix);
	if ((rc = pl_metrics_counter_ptr(r->metrics,
		 "parley_channel_joins_total",
		 "Channel joins accepted, by channel kind.", &r->joins[r->nops],
		 "kind", kind, NULL)) != PL_OK) {
		return rc;
	}
	r->args[r->nops] = arg;
	r->ops[r->nops++] = ops;
	return PL_OK;
}

void
brk_router_set_forward(brk_router *r, brk_forward_fn fn, void *arg)
{
	r->forward = fn;
	r->forward_arg = arg;
}

/* ---- hash tables ---- */

static void
rehash_topics(brk_router *r)
{
	size_t ncap = r->tcap * 2, i;
	brk_topic **nt = calloc(ncap, sizeof(*nt));

	if (nt == NULL) {
		return;
	}
	for (i = 0; i < r->tcap; i++) {
		brk_topic *t = r->topics[i], *nx;
		for (; t; t = nx) {
			size_t b = pl_hash_str(t->name) & (ncap - 1);
			nx = t->hnext;
			t->hnext = nt[b];
			nt[b] = t;
		}
	}
	free(r->topics);
	r->topics = nt;
	r->tcap = ncap;
}

static brk_topic *
topic_find(brk_router *r, const char *name)
{
	brk_topic *t = r->topics[pl_hash_str(name) & (r->tcap - 1)];

	while (t && strcmp(t->name, name) != 0) {
		t = t->hnext;
	}
	return t;
}

static brk_topic *
topic_get(brk_router *r, const char *name)
{
	brk_topic *t = topic_find(r, name);
	size_t b;

	if (t) {
		return t;
	}
	if (r->ntopics >= r->tcap) {
		rehash_topics(r);
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		return NULL;
	}
	b = pl_hash_str(name) & (r->tcap - 1);
	t->hnext = r->topics[b];
	r->topics[b] = t;
	r->ntopics++;
	return t;
}

static void
topic_drop_if_empty(brk_router *r, brk_topic *t)
{
	brk_topic **pp;

	if (t->n > 0) {
		return;
	}
	pp = &r->topics[pl_hash_str(t->name) & (r->tcap - 1)];
	while (*pp && *pp != t) {
		pp = &(*pp)->hnext;
	}
	if (*pp) {
		*pp = t->hnext;
	}
	r->ntopics--;
	free(t->subs);
	free(t->name);
	free(t);
}

static void
rehash_chans(brk_router *r)
{
	size_t ncap = r->ccap * 2, i;
	brk_channel **nt = calloc(ncap, sizeof(*nt));

	if (nt == NULL) {
		return;
	}
	for (i = 0; i < r->ccap; i++) {
		brk_channel *c = r->chans[i], *nx;
		for (; c; c = nx) {
			size_t b = pl_hash_u64(c->id) & (ncap - 1);
			nx = c->id_next;
			c->id_next = nt[b];
			nt[b] = c;
		}
	}
	free(r->chans);
	r->chans = nt;
	r->ccap = ncap;
}

brk_channel *
brk_router_find_channel(brk_router *r, uint64_t id)
{
	brk_channel *c = r->chans[pl_hash_u64(id) & (r->ccap - 1)];

	while (c && c->id != id) {
		c = c->id_next;
	}
	return c;
}

/* ---- channels ---- */

static brk_channel *
channel_add(brk_router *r, brk_conn *conn, brk_topic *t,
    const brk_channel_ops *ops, json_t *join_ref)
{
	brk_channel *ch;
	size_t b;
	void *module = NULL;

	for (size_t i = 0; i < r->nops; i++) {
		if (r->ops[i] == ops) {
			module = r->args[i];
		}
	}

	if (t->n == t->cap) {
		uint32_t ncap = t->cap ? t->cap * 2 : 4;
		brk_channel **ns = realloc(t->subs, ncap * sizeof(*ns));
		if (ns == NULL) {
			return NULL;
		}
		t->subs = ns;
		t->cap = ncap;
	}
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		return NULL;
	}
	if (r->nchans >= r->ccap) {
		rehash_chans(r);
	}
	ch->router = r;
	ch->conn = conn;
	ch->topic = t;
	ch->ops = ops;
	ch->module = module;
	ch->join_ref = json_incref(join_ref);
	ch->id = r->next_id++;
	ch->sub_index = t->n;
	t->subs[t->n++] = ch;
	ch->next_in_conn = *brk_conn_channels(conn);
	*brk_conn_channels(conn) = ch;
	b = pl_hash_u64(ch->id) & (r->ccap - 1);
	ch->id_next = r->chans[b];
	r->chans[b] = ch;
	r->nchans++;
	brk_conn_ref(conn);
	return ch;
}

/* Unlinks and frees a channel after its module's terminate hook. */
static void
channel_remove(brk_router *r, brk_channel *ch)
{
	brk_topic *t = ch->topic;
	brk_channel **pp;

	if (ch->joined && ch->ops->terminate) {
		ch->ops->terminate(ch);
	}
	t->subs[ch->sub_index] = t->subs[t->n - 1];
	t->subs[ch->sub_index]->sub_index = ch->sub_index;
	t->n--;
	for (pp = brk_conn_channels(ch->conn); *pp && *pp != ch;
	     pp = &(*pp)->next_in_conn) {
	}
	if (*pp) {
		*pp = ch->next_in_conn;
	}
	for (pp = &r->chans[pl_hash_u64(ch->id) & (r->ccap - 1)];
	     *pp && *pp != ch; pp = &(*pp)->id_next) {
	}
	if (*pp) {
		*pp = ch->id_next;
	}
	r->nchans--;
	topic_drop_if_empty(r, t);
	brk_conn_unref(ch->conn);
	json_decref(ch->join_ref);
	free(ch);
}

static brk_channel *
conn_channel(brk_conn *c, const char *topic)
{
	brk_channel *ch = *brk_conn_channels(c);

	while (ch && strcmp(ch->topic->name, topic) != 0) {
		ch = ch->next_in_conn;
	}
	return ch;
}

void
brk_router_conn_closed(brk_router *r, brk_conn *c)
{
	while (*brk_conn_channels(c)) {
		channel_remove(r, *brk_conn_channels(c));
	}
}

/* ---- sending ---- */

static void
send_msg(brk_conn *c, const json_t *jr, const json_t *ref, const char *topic,
    const char *event, const char *payload)
{
	size_t len;
	char *s = pro_phx_encode(brk_conn_vsn(c), jr, ref, topic, event,
	    payload, strlen(payload), &len);

	if (s) {
		brk_conn_send_text(c, s, len);
		free(s);
	}
}

static void
send_reply(brk_conn *c, const json_t *jr, const json_t *ref, const char *topic,
    const char *status, const char *response)
{
	size_t len;
	char *s = pro_phx_encode_reply(
	    brk_conn_vsn(c), jr, ref, topic, status, response, &len);

	if (s) {
		brk_conn_send_text(c, s, len);
		free(s);
	}
}

static void
send_error(brk_conn *c, const json_t *jr, const json_t *ref, const char *topic,
    const char *reason)
{
	json_t *o = json_pack("{s:s}", "reason", reason);
	char *resp = o ? json_dumps(o, JSON_COMPACT) : NULL;

	send_reply(c, jr, ref, topic, "error", resp ? resp : "{}");
	free(resp);
	json_decref(o);
}

void
brk_channel_push(brk_channel *ch, const char *event, const char *payload)
{
	send_msg(ch->conn, ch->join_ref, NULL, ch->topic->name, event, payload);
}

void
brk_channel_push_slices(
    brk_channel *ch, const char *event, const pl_slice *payload, size_t n)
{
	pl_slice local[16], *all = local;
	size_t at, len;
	char *env = pro_phx_envelope(brk_conn_vsn(ch->conn), ch->join_ref, NULL,
	    ch->topic->name, event, &at, &len);

	if (env && n + 2 > sizeof(local) / sizeof(*local)) {
		all = malloc((n + 2) * sizeof(*all));
	}
	if (env && all) {
		all[0] = (pl_slice){ env, at, NULL };
		memcpy(all + 1, payload, n * sizeof(*payload));
		all[n + 1] = (pl_slice){ env + at, len - at, NULL };
		brk_conn_send_slices(ch->conn, all, n + 2);
	}
	if (all != local) {
		free(all);
	}
	free(env);
}

void
brk_channel_close(brk_channel *ch, const char *event)
{
	brk_router *r = ch->router;
	brk_conn *c = ch->conn;
	json_t *jr = json_incref(ch->join_ref);
	char *topic = strdup(ch->topic->name);

	if (event) {
		brk_channel_push(ch, event, "{}");
	}
	channel_remove(r, ch);
	if (topic) {
		send_msg(c, jr, jr, topic, "phx_close", "{}");
	}
	free(topic);
	json_decref(jr);
}

static size_t
fanout(brk_router *r, brk_topic *t, const char *event, const char *payload,
    size_t len)
{
	brk_frame *frames[3] = { NULL, NULL, NULL };
	uint32_t i;
	size_t n = 0;

	for (i = 0; i < t->n; i++) {
		brk_conn *c = t->subs[i]->conn;
		int v = brk_conn_vsn(c);
		if (!brk_conn_is_open(c) || v < 1 || v > 2) {
			continue;
		}
		if (frames[v] == NULL) {
			size_t ml;
			char *m = pro_phx_encode(
			    v, NULL, NULL, t->name, event, payload, len, &ml);
			if (m == NULL) {
				continue;
			}
			frames[v] = brk_frame_text(m, ml);
			free(m);
			if (frames[v] == NULL) {
				continue;
			}
		}
		brk_conn_send_frame(c, frames[v]);
		n++;
	}
	brk_frame_unref(frames[1]);
	brk_frame_unref(frames[2]);
	r->deliveries += n;
	return n;
}

size_t
brk_router_local_broadcast(brk_router *r, const char *topic, const char *event,
    const char *payload, size_t len)
{
	brk_topic *t = topic_find(r, topic);

	r->broadcasts++;
	return t ? fanout(r, t, event, payload, len) : 0;
}

void
brk_router_broadcast(brk_router *r, const char *topic, const char *event,
    const char *payload, size_t len)
{
	brk_router_local_broadcast(r, topic, event, payload, len);
	if (r->forward) {
		r->forward(r->forward_arg, topic, event, payload, len);
	}
}

/* ---- replies ---- */

static brk_reply *
reply_new(brk_conn *c, const pro_phx_msg *m, const json_t *jr)
{
	brk_reply *rp = calloc(1, sizeof(*rp));

	if (rp == NULL || (rp->topic = strdup(m->topic)) == NULL) {
		free(rp);
		return NULL;
	}
	rp->conn = c;
	rp->join_ref = json_incref((json_t *)jr);
	rp->ref = json_incref(m->ref);
	brk_conn_ref(c);
	return rp;
}

static void
reply_free(brk_reply *rp)
{
	brk_conn_unref(rp->conn);
	json_decref(rp->join_ref);
	json_decref(rp->ref);
	free(rp->topic);
	free(rp);
}

void
brk_reply_ok(brk_reply *rp, const char *response)
{
	send_reply(rp->conn, rp->join_ref, rp->ref, rp->topic, "ok", response);
	reply_free(rp);
}

void
brk_reply_error(brk_reply *rp, const char *reason)
{
	send_error(rp->conn, rp->join_ref, rp->ref, rp->topic, reason);
	reply_free(rp);
}

void
brk_reply_error_json(brk_reply *rp, const char *response)
{
	send_reply(
	    rp->conn, rp->join_ref, rp->ref, rp->topic, "error", response);
	reply_free(rp);
}

/* ---- dispatch ---- */

static const brk_channel_ops *
route(brk_router *r, const char *topic)
{
	size_t i;

	for (i = 0; i < r->nops; i++) {
		size_t pl = strlen(r->ops[i]->prefix);
		if (strncmp(topic, r->ops[i]->prefix, pl) == 0 && topic[pl]) {
			return r->ops[i];
		}
	}
	return NULL;
}

static size_t
channel_count(brk_conn *c)
{
	size_t n = 0;
	brk_channel *ch;

	for (ch = *brk_conn_channels(c); ch; ch = ch->next_in_conn) {
		n++;
	}
	return n;
}

static void
do_join(brk_router *r, brk_conn *c, pro_phx_msg *m)
{
	const brk_channel_ops *ops = route(r, m->topic);
	brk_channel *old, *ch;
	json_t *old_jr = NULL;
	/* A join sent with a null join_ref is answered with null, but the
	 * channel then stamps the join's ref on everything it sends. */
	json_t *jr = json_is_null(m->join_ref) ? m->ref : m->join_ref;
	json_t *rjr = m->join_ref;
	const char *reason = NULL;
	char *reply = NULL;
	brk_topic *t;

	if (ops == NULL) {
		send_error(c, NULL, m->ref, m->topic, "unmatched topic");
		return;
	}
	old = conn_channel(c, m->topic);
	if (old) {
		/* Phoenix answers the new join first and then closes the old
		 * instance; the client drops the stale phx_close. */
		old_jr = json_incref(old->join_ref);
		channel_remove(r, old);
	} else if (channel_count(c) >= (size_t)r->max_channels) {
		send_error(
		    c, rjr, m->ref, m->topic, "too many channels joined");
		return;
	}
	if (!json_is_object(m->payload)) {
		send_error(c, rjr, m->ref, m->topic, "invalid_params");
		goto close_old;
	}
	t = topic_get(r, m->topic);
	ch = t ? channel_add(r, c, t, ops, jr) : NULL;
	if (ch == NULL) {
		if (t) {
			topic_drop_if_empty(r, t);
		}
		send_error(c, rjr, m->ref, m->topic, "internal_error");
		goto close_old;
	}
	if (ops->join(ch, m->payload, &reply, &reason) != 0) {
		/* Not joined: the module's terminate hook does not run. */
		channel_remove(r, ch);
		send_error(
		    c, rjr, m->ref, m->topic, reason ? reason : "join refused");
		goto close_old;
	}
	ch->joined = 1;
	for (size_t i = 0; i < r->nops; i++) {
		r->joins[i] += r->ops[i] == ops;
	}
	send_reply(c, rjr, m->ref, m->topic, "ok", reply ? reply : "{}");
	free(reply);
	if (ops->after_join) {
		ops->after_join(ch);
	}
close_old:
	if (old_jr) {
		send_msg(c, old_jr, old_jr, m->topic, "phx_close", "{}");
		json_decref(old_jr);
	}
}

static int
ref_matches(const json_t *msg_jr, const json_t *ch_jr)
{
	return json_is_null(msg_jr) ||
	    json_equal((json_t *)msg_jr, (json_t *)ch_jr);
}

static void
do_leave(brk_router *r, brk_conn *c, pro_phx_msg *m)
{
	brk_channel *ch = conn_channel(c, m->topic);
	json_t *jr;

	if (ch == NULL) {
		send_reply(c, m->join_ref, m->ref, m->topic, "ok", "{}");
		return;
	}
	if (!ref_matches(m->join_ref, ch->join_ref)) {
		return;
	}
	jr = json_incref(ch->join_ref);
	send_reply(c, jr, m->ref, m->topic, "ok", "{}");
	channel_remove(r, ch);
	send_msg(c, jr, jr, m->topic, "phx_close", "{}");
	json_decref(jr);
}

void
brk_router_dispatch(brk_router *r, brk_conn *c, pro_phx_msg *m)
{
	brk_channel *ch;
	brk_reply *rp;

	if (strcmp(m->topic, "phoenix") == 0) {
		if (strcmp(m->event, "heartbeat") == 0) {
			send_reply(c, NULL, m->ref, "phoenix", "ok", "{}");
		} else {
			send_error(
			    c, NULL, m->ref, m->topic, "unmatched topic");
		}
		return;
	}
	if (strcmp(m->event, "phx_join") == 0) {
		do_join(r, c, m);
		return;
	}
	if (strcmp(m->event, "phx_leave") == 0) {
		do_leave(r, c, m);
		return;
	}
	ch = conn_channel(c, m->topic);
	if (ch == NULL) {
		send_error(c, NULL, m->ref, m->topic, "unmatched topic");
		return;
	}
	if (!ref_matches(m->join_ref, ch->join_ref)) {
		return;
	}
	if (m->payload == NULL) {
		send_error(c, ch->join_ref, m->ref, m->topic,
		    "binary payloads are not supported on this topic");
		return;
	}
	rp = reply_new(c, m, ch->join_ref);
	if (rp == NULL) {
		return;
	}
	ch->ops->handle_in(ch, m->event, m->payload, rp);
}

/* ---- accessors ---- */

const char *
brk_channel_topic(const brk_channel *ch)
{
	return ch->topic->name;
}

const char *
brk_channel_user(const brk_channel *ch)
{
	return brk_conn_user(ch->conn);
}

brk_conn *
brk_channel_conn(brk_channel *ch)
{
	return ch->conn;
}

void *
brk_channel_module(const brk_channel *ch)
{
	return ch->module;
}

uint64_t
brk_channel_id(const brk_channel *ch)
{
	return ch->id;
}

void *
brk_channel_state(brk_channel *ch)
{
	return ch->state;
}

void
brk_channel_set_state(brk_channel *ch, void *state)
{
	ch->state = state;
}

size_t
brk_router_topic_count(const brk_router *r)
{
	return r->ntopics;
}

size_t
brk_router_channel_count(const brk_router *r)
{
	return r->nchans;
}

uint64_t
brk_router_broadcasts(const brk_router *r)
{
	return r->broadcasts;
}

uint64_t
brk_router_deliveries(const brk_router *r)
{
	return r->deliveries;
}
