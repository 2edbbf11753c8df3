/* SPDX-License-Identifier: Apache-2.0 */
/* Private to broker/fbsync*.c: the queue's state, shared by the dispatcher
 * (fbsync.c), the replicated state and its persistence (fbsync_state.c)
 * and the operator view (fbsync_view.c). */
#ifndef PARLEY_BROKER_FBSYNC_INT_H
#define PARLEY_BROKER_FBSYNC_INT_H

#include "broker/fbsync.h"
#include "proto/syncstate.h"
#include "storage/comments.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct pl_metric;
typedef struct brk_fetch_job brk_fetch_job;

/* One comment origin as this node sees it. The array only grows, so an
 * index stays valid for the node's life. */
typedef struct fb_origin {
	char name[STO_ORIGIN_MAX + 1];
	uint64_t held;       /* highest seq in the store */
	uint64_t next;       /* leader: last seq put in a batch this term */
	uint64_t known_sent; /* leader: highest seq another leader sent */
	uint64_t gap_since;  /* mono ms a hole after `next` was first seen */
	uint64_t saved_synced, saved_sent; /* handed to the store */
	uint64_t durable_sent; /* the sent mark the store has made durable */
	bool unsaved;          /* marks to persist (the store was busy) */
} fb_origin;

/* A sent mark on its way to disk; the store calls back when it is durable.
 * Detached (s NULL) when the queue goes first. */
typedef struct fb_ticket {
	struct brk_fbsync *s;
	uint32_t origin;
	uint64_t value;
	struct fb_ticket *next, *prev;
} fb_ticket;

/* Highest seq of one origin in a batch. */
typedef struct fb_span {
	uint32_t origin;
	uint64_t max;
} fb_span;

typedef struct fb_item {
	uint32_t origin; /* index into origins */
	uint64_t seq;
	int64_t inserted_at;
	bool retry;      /* a parked comment sent again */
	size_t off, len; /* its `"path":{...}` in the batch's body */
} fb_item;

typedef enum fb_bstate {
	FB_READY,    /* made, never sent */
	FB_INFLIGHT, /* a request is out */
	FB_WAITING,  /* failed; goes again at due_ms */
	FB_DONE,     /* written (or parked): waits for the batches before it */
} fb_bstate;

typedef struct fb_batch {
	struct fb_batch *next, *prev;
	struct brk_fbsync *s;
	fb_item *items;
	size_t n;
	char *body;
	size_t body_len;
	fb_bstate state;
	uint64_t due_ms;
	brk_fetch_job *job;
	uint64_t token_gen; /* the OAuth token it was last sent with */
	unsigned tries;
	fb_span *spans; /* per origin in the batch (not retries) */
	size_t nspans;
} fb_batch;

/* Request outcomes counted in parley_firebase_requests_total. */
enum {
	FB_R_2XX,
	FB_R_401,
	FB_R_403,
	FB_R_429,
	FB_R_4XX,
	FB_R_5XX,
	FB_R_TIMEOUT,
	FB_R_CONN,
	FB_R_N
};

typedef struct fb_stats {
	uint64_t requests[FB_R_N];
	uint64_t batches; /* requests that wrote a batch */
	uint64_t synced;  /* comments written by this node */
	uint64_t retries; /* requests sent again after a failure */
	uint64_t parked;  /* comments this node parked */
	uint64_t resent;  /* comments another leader had already sent */
	uint64_t splits;  /* batches split to find a refused comment */
	uint64_t token_ok, token_failed;      /* snapshot of gauth */
	uint64_t depth, inflight, parked_now; /* gauges, at collect */
	uint64_t leading;
	double lag_s;
} fb_stats;

struct brk_fbsync {
	brk_fbsync_env env; /* strings below replace the borrowed ones */
	char *self, *url;
	struct event *poll_ev;
	fb_origin *origins;
	size_t norigins, cap_origins;
	uint64_t *scratch; /* per origin, for advance() */
	fb_batch *head, *tail;
	unsigned inflight;
	size_t inflight_comments;
	unsigned retry_items; /* parked comments in unfinished batches */
	unsigned rr;          /* origin the next batch starts with */
	bool leading;
	bool restart;        /* start over from the marks (out of memory) */
	unsigned failures;   /* consecutive failed requests */
	uint64_t backoff_ms; /* the last backoff chosen */
	bool refreshed_401;  /* a 401 fetched a new token, no success since */
	int64_t last_success_ms; /* unix ms; 0 */
	uint64_t leading_since_ms;
	bool logged_auth; /* an auth failure was logged */
	bool logged_parkfull;
	fb_stats st;
	struct pl_metric *sync_seconds;
	fb_ticket *tickets; /* sent marks not yet durable */
};

/* fbsync_state.c: origins, marks, parked comments, leadership. */
fb_origin *fb_origin_get(brk_fbsync *s, const char *name, uint32_t *idx);
int fb_refresh_origins(brk_fbsync *s);
void fb_raise(brk_fbsync *s, uint32_t idx, uint64_t synced, uint64_t sent);
void fb_save_pending(brk_fbsync *s);
void fb_detach_tickets(brk_fbsync *s);
int fb_load(brk_fbsync *s);
void fb_listen(brk_fbsync *s);
/* Parks origin/seq with status and reason (gen + 1); returns PL_EFULL when
 * --parked_max is reached (nothing changed). */
int fb_park(brk_fbsync *s, const char *origin, uint64_t seq, uint32_t status,
    const char *reason);
void fb_parked_done(brk_fbsync *s, const char *origin, uint64_t seq);
size_t fb_parked_count(brk_fbsync *s, uint32_t state);
void fb_save_parked(brk_fbsync *s, const pro_sync_parked *p);

/* fbsync_batch.c: making batches. */
fb_batch *fb_build(brk_fbsync *s); /* NULL: nothing to send (or no memory) */
/* A batch of items [from, to) of b, its body made of their slices. */
fb_batch *fb_slice(const fb_batch *b, size_t from, size_t to);
void fb_batch_free(fb_batch *b);

/* fbsync.c: the dispatcher. */
void fb_pump(brk_fbsync *s);
void fb_lead(brk_fbsync *s, bool lead);
uint64_t fb_depth(brk_fbsync *s, int64_t *oldest_ms);

/* fbsync_view.c */
int fb_register_metrics(brk_fbsync *s);

#endif
