/* SPDX-License-Identifier: Apache-2.0 */
/* The two channel modules of the contract: `comments:<video_id>` (history,
 * durable new comments, live broadcast, presence by user) and
 * `presence:<user_id>` (one user's devices, with the device limit). */
#include "broker/channels.h"

#include "broker/conn.h"
#include "broker/node.h"
#include "broker/presence.h"
#include "broker/ratelimit.h"
#include "broker/router.h"
#include "cluster/replication.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proto/utf8.h"
#include "storage/comments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMMENTS_PREFIX "comments:"
#define PRESENCE_PREFIX "presence:"
#define DEFAULT_LIMIT 50
#define MAX_LIMIT 200
#define MAX_ID_BYTES 128

struct brk_channels {
	brk_channels_deps d;
	clu_replication *repl; /* NULL without a cluster */
};

static brk_channels *
mod(brk_channel *ch)
{
	return brk_channel_module(ch);
}

/* ---- shared helpers ---- */

static char *
dumps(json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;

	json_decref(v);
	return s;
}

static char *
online_meta(void)
{
	return dumps(json_pack("{s:I}", "online_at", (json_int_t)time(NULL)));
}

static json_t *
comment_json(const sto_comment *c)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", c->id, "video_id",
	    c->video_id, "user_id", c->user_id, "content", c->content,
	    "inserted_at", (json_int_t)c->inserted_at);
}

static char *
list_json(const sto_comment_list *l)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < l->count; i++) {
		json_array_append_new(arr, comment_json(&l->items[i]));
	}
	return dumps(
	    json_pack("{s:o, s:b}", "comments", arr, "has_more", l->has_more));
}

static const char *
video_of(brk_channel *ch)
{
	return brk_channel_topic(ch) + strlen(COMMENTS_PREFIX);
}

/* A video id goes into storage keys, Firebase paths (whose keys refuse
 * . $ # [ ] / and control characters) and log lines, so it is kept to
 * 1..STO_VIDEO_ID_MAX bytes of ASCII letters, digits, '-', '_' and ':'. */
static bool
video_id_ok(const char *v)
{
	size_t n = strspn(
	    v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:");

	return n > 0 && v[n] == '\0' && n <= STO_VIDEO_ID_MAX;
}

/* Reads `limit`: absent → default; an integer is clamped to [1, MAX]. */
static int
read_limit(json_t *params, size_t *limit)
{
	json_t *v = json_object_get(params, "limit");
	json_int_t n;

	*limit = DEFAULT_LIMIT;
	if (v == NULL || json_is_null(v)) {
		return 0;
	}
	if (!json_is_integer(v)) {
		return -1;
	}
	n = json_integer_value(v);
	*limit = n < 1 ? 1 : n > MAX_LIMIT ? MAX_LIMIT : (size_t)n;
	return 0;
}

/* Reads an optional comment-id parameter (`since`, `before`). */
static int
read_id(json_t *params, const char *name, const char **id)
{
	json_t *v = json_object_get(params, name);

	*id = NULL;
	if (v == NULL || json_is_null(v)) {
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > MAX_ID_BYTES ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		return -1;
	}
	*id = json_string_value(v);
	return 0;
}

/* ---- comments:<video_id> ---- */

static int
comments_join(
    brk_channel *ch, json_t *params, char **reply, const char **reason)
{
	sto_comments *st = mod(ch)->d.comments;
	const char *video = video_of(ch), *since;
	sto_comment_list *l = NULL;
	size_t limit;
	int rc;

	if (!video_id_ok(video)) {
		*reason = "invalid_topic";
		return -1;
	}
	if (read_limit(params, &limit) || read_id(params, "since", &since)) {
		*reason = "invalid_params";
		return -1;
	}
	rc = since ? sto_comments_after(st, video, since, limit, &l)
		   : sto_comments_latest(st, video, limit, &l);
	if (rc == PL_EINVAL) {
		*reason = "invalid_params";
		return -1;
	}
	if (rc != PL_OK) {
		LOG_ERR("BRK-HISTORY", "history of %s failed: %s", video,
		    pl_strerror(rc));
		*reason = "internal_error";
		return -1;
	}
	*reply = list_json(l);
	sto_comment_list_free(l);
	return 0;
}

static void
comments_after_join(brk_channel *ch)
{
	brk_presence *p = mod(ch)->d.presence;
	char *meta = online_meta();

	if (meta) {
		brk_presence_track(p, brk_channel_id(ch), brk_channel_topic(ch),
		    brk_channel_user(ch), meta);
	}
	free(meta);
	brk_presence_push_state(p, brk_channel_topic(ch), ch);
}

typedef struct post_ctx {
	brk_channels *cs;
	brk_reply *reply;
	char *topic;
	uint64_t t0_us; /* when the push arrived, for the ack histogram */
	char id[STO_COMMENT_ID_LEN + 1];
} post_ctx;

/* The comment is durable on as many nodes as --ack-replicas asks (status
 * PL_OK), or could not be within the ack timeout: never a false ok. */
static void
on_replicated(void *arg, int status)
{
	post_ctx *pc = arg;
	brk_node_stats *stats = pc->cs->d.stats;
	char *resp;

	if (status != PL_OK) {
		stats->comments_refused++;
		stats->comments_refused_by[BRK_CREFUSE_UNAVAILABLE]++;
		brk_reply_error(pc->reply, "unavailable");
	} else {
		stats->comments_ok++;
		pl_histogram_observe(
		    stats->ack_seconds, (pl_mono_us() - pc->t0_us) / 1e6);
		resp = dumps(json_pack("{s:s}", "id", pc->id));
		brk_reply_ok(pc->reply, resp ? resp : "{}");
		free(resp);
	}
	free(pc->topic);
	free(pc);
}

static void
on_durable(void *arg, int status, const sto_comment *c)
{
	post_ctx *pc = arg;
	brk_node_stats *stats = pc->cs->d.stats;
	clu_replication *repl = pc->cs->repl;
	char *body;

	if (status != PL_OK) {
		LOG_ERR("BRK-STORE", "comment on %s not stored: %s", pc->topic,
		    pl_strerror(status));
		stats->comments_refused++;
		stats->comments_refused_by[BRK_CREFUSE_STORAGE]++;
		brk_reply_error(pc->reply, "internal_error");
		goto out;
	}
	body = dumps(comment_json(c));
	if (body) {
		brk_router_broadcast(pc->cs->d.router, pc->topic, "new_comment",
		    body, strlen(body));
	}
	free(body);
	snprintf(pc->id, sizeof(pc->id), "%s", c->id);
	if (repl != NULL && pc->cs->d.ack_replicas > 1) {
		/* The ok waits until enough nodes hold it (on_replicated). */
		if (clu_replication_publish(repl, c, on_replicated, pc) ==
		    PL_OK) {
			return;
		}
		on_replicated(pc, PL_EAGAIN);
		return;
	}
	if (repl != NULL) {
		clu_replication_publish(repl, c, NULL, NULL);
	}
	on_replicated(pc, PL_OK);
	return;
out:
	free(pc->topic);
	free(pc);
}

/* A comment must be a string with something besides Unicode White_Space
 * (U+00A0, U+3000, ...) and no NUL; the frame was valid UTF-8, and a lone
 * surrogate escape never reaches here as a string (proto/json_repair.h). */
static const char *
check_content(json_t *payload, long max_bytes, const char **text)
{
	json_t *v = json_is_object(payload)
	    ? json_object_get(payload, "content")
	    : NULL;
	const char *s;
	size_t len;

	if (!json_is_string(v)) {
		return "invalid_content";
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len) {
		return "invalid_content";
	}
	if (pro_utf8_blank(s, len)) {
		return "invalid_content";
	}
	if (len > (size_t)max_bytes) {
		return "content_too_long";
	}
	*text = s;
	return NULL;
}

static void
new_comment(brk_channel *ch, json_t *payload, brk_reply *r)
{
	brk_channels *cs = mod(ch);
	brk_node_stats *st = cs->d.stats;
	const char *why, *text = NULL;
	sto_comment_in in;
	post_ctx *pc;
	int rc;

	why = check_content(payload, cs->d.max_comment_bytes, &text);
	if (why == NULL &&
	    brk_ratelimit_check(cs->d.ratelimit, "new_comment",
		brk_channel_user(ch), (uint64_t)time(NULL) * 1000) != PL_OK) {
		why = "rate_limit_exceeded";
	}
	if (why) {
		st->comments_refused++;
		st->comments_refused_by[strcmp(why, "rate_limit_exceeded") == 0
			? BRK_CREFUSE_RATE_LIMIT
			: strcmp(why, "content_too_long") == 0
			? BRK_CREFUSE_TOO_LONG
			: BRK_CREFUSE_INVALID]++;
		brk_reply_error(r, why);
		return;
	}
	if (cs->repl != NULL && !clu_replication_can_ack(cs->repl)) {
		/* Fewer nodes alive than --ack-replicas: an ok could not be
		 * true, so say so before anything is stored. */
		st->comments_refused++;
		st->comments_refused_by[BRK_CREFUSE_UNAVAILABLE]++;
		brk_reply_error(r, "unavailable");
		return;
	}
	pc = calloc(1, sizeof(*pc));
	if (pc == NULL || (pc->topic = strdup(brk_channel_topic(ch))) == NULL) {
		free(pc);
		brk_reply_error(r, "internal_error");
		return;
	}
	pc->cs = cs;
	pc->reply = r;
	pc->t0_us = pl_mono_us();
	in.video_id = video_of(ch);
	in.user_id = brk_channel_user(ch);
	in.content = text;
	rc = sto_comments_append(cs->d.comments, &in, on_durable, pc, NULL);
	if (rc != PL_OK) {
		LOG_WARN("BRK-STORE", "comment on %s refused by storage: %s",
		    pc->topic, pl_strerror(rc));
		st->comments_refused++;
		st->comments_refused_by[rc == PL_EAGAIN ? BRK_CREFUSE_OVERLOADED
							: BRK_CREFUSE_STORAGE]++;
		brk_reply_error(
		    r, rc == PL_EAGAIN ? "overloaded" : "internal_error");
		free(pc->topic);
		free(pc);
	}
}

static void
list_comments(brk_channel *ch, json_t *payload, brk_reply *r)
{
	sto_comments *st = mod(ch)->d.comments;
	sto_comment_list *l = NULL;
	const char *before;
	size_t limit;
	char *body;
	int rc;

	if (!json_is_object(payload) || read_limit(payload, &limit) ||
	    read_id(payload, "before", &before)) {
		brk_reply_error(r, "invalid_params");
		return;
	}
	rc = before ? sto_comments_before(st, video_of(ch), before, limit, &l)
		    : sto_comments_latest(st, video_of(ch), limit, &l);
	if (rc == PL_EINVAL) {
		brk_reply_error(r, "invalid_params");
		return;
	}
	if (rc != PL_OK) {
		brk_reply_error(r, "internal_error");
		return;
	}
	body = list_json(l);
	sto_comment_list_free(l);
	if (body == NULL) {
		brk_reply_error(r, "internal_error");
		return;
	}
	brk_reply_ok(r, body);
	free(body);
}

static void
comments_in(brk_channel *ch, const char *event, json_t *payload, brk_reply *r)
{
	if (strcmp(event, "new_comment") == 0) {
		new_comment(ch, payload, r);
	} else if (strcmp(event, "list_comments") == 0) {
		list_comments(ch, payload, r);
	} else {
		brk_reply_error(r, "unknown_event");
	}
}

static void
untrack(brk_channel *ch)
{
	brk_presence_untrack(mod(ch)->d.presence, brk_channel_id(ch));
}

static const brk_channel_ops comments_ops = {
	.prefix = COMMENTS_PREFIX,
	.join = comments_join,
	.after_join = comments_after_join,
	.handle_in = comments_in,
	.terminate = untrack,
};

/* ---- presence:<user_id> ---- */

static int
presence_join(
    brk_channel *ch, json_t *params, char **reply, const char **reason)
{
	brk_channels *cs = mod(ch);
	brk_presence *p = cs->d.presence;
	const char *topic = brk_channel_topic(ch);
	const char *owner = topic + strlen(PRESENCE_PREFIX);
	json_t *dev = json_object_get(params, "device_id");
	const char *device;

	(void)reply;
	if (strcmp(owner, brk_channel_user(ch)) != 0) {
		*reason = "unauthorized";
		return -1;
	}
	if (!json_is_string(dev) || json_string_length(dev) == 0 ||
	    json_string_length(dev) > MAX_ID_BYTES ||
	    strlen(json_string_value(dev)) != json_string_length(dev)) {
		*reason = "invalid_params";
		return -1;
	}
	device = json_string_value(dev);
	if (!brk_presence_has_key(p, topic, device) &&
	    brk_presence_key_count(p, topic) >= (size_t)cs->d.max_devices) {
		*reason = "device_limit_reached";
		return -1;
	}
	brk_channel_set_state(ch, strdup(device));
	return brk_channel_state(ch) ? 0 : -1;
}

static void
presence_after_join(brk_channel *ch)
{
	brk_presence *p = mod(ch)->d.presence;
	const char *device = brk_channel_state(ch);
	char *meta = online_meta();

	/* A reconnecting device replaces its older sessions, here and, once
	 * the state merges, on other nodes. */
	brk_presence_replace_key(
	    p, brk_channel_id(ch), brk_channel_topic(ch), device);
	if (meta) {
		brk_presence_track(
		    p, brk_channel_id(ch), brk_channel_topic(ch), device, meta);
	}
	free(meta);
	brk_presence_push_state(p, brk_channel_topic(ch), ch);
}

static void
presence_in(brk_channel *ch, const char *event, json_t *payload, brk_reply *r)
{
	(void)ch;
	(void)event;
	(void)payload;
	brk_reply_error(r, "unknown_event");
}

static void
presence_terminate(brk_channel *ch)
{
	untrack(ch);
	free(brk_channel_state(ch));
	brk_channel_set_state(ch, NULL);
}

static const brk_channel_ops presence_ops = {
	.prefix = PRESENCE_PREFIX,
	.join = presence_join,
	.after_join = presence_after_join,
	.handle_in = presence_in,
	.terminate = presence_terminate,
};

int
brk_channels_create(brk_channels **out, const brk_channels_deps *d)
{
	brk_channels *cs = calloc(1, sizeof(*cs));
	int rc;

	*out = NULL;
	if (cs == NULL) {
		return PL_ENOMEM;
	}
	cs->d = *d;
	if ((rc = brk_router_register(d->router, &comments_ops, cs)) != PL_OK ||
	    (rc = brk_router_register(d->router, &presence_ops, cs)) != PL_OK) {
		free(cs);
		return rc;
	}
	*out = cs;
	return PL_OK;
}

void
brk_channels_destroy(brk_channels *cs)
{
	free(cs);
}

void
brk_channels_set_replication(brk_channels *cs, clu_replication *r)
{
	cs->repl = r;
}

/* ---- the presence hub's outputs ---- */

static void
presence_push(void *arg, void *to, const pl_slice *payload, size_t n)
{
	(void)arg;
	brk_channel_push_slices(to, "presence_state", payload, n);
}

static size_t
presence_broadcast(
    void *arg, const char *topic, const char *payload, size_t len)
{
	return brk_router_local_broadcast(
	    arg, topic, "presence_diff", payload, len);
}

static void
presence_close(void *arg, uint64_t owner, const char *event)
{
	brk_channel *ch = brk_router_find_channel(arg, owner);

	if (ch) {
		brk_channel_close(ch, event);
	}
}

void
brk_channels_presence_env(brk_presence_env *env, brk_router *r)
{
	env->push = presence_push;
	env->broadcast = presence_broadcast;
	env->close = presence_close;
	env->arg = r;
}
