/* SPDX-License-Identifier: Apache-2.0 */
/* libcurl's multi interface on libevent (see fetch.h). curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); each socket event and the timer call
 * curl_multi_socket_action, after which finished transfers are collected
 * and their callbacks run, outside every curl callback. */
#include "broker/fetch.h"

#include "common/err.h"
#include "common/log.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX_DEFAULT 65536

struct brk_fetch_job {
	brk_fetch *f;
	CURL *easy;
	struct curl_slist *headers;
	brk_fetch_cb cb;
	void *arg;
	char *answer;
	size_t answer_len, answer_max;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode result;
	bool done;      /* collected, its callback pending */
	bool cancelled; /* cancelled while its callback was pending */
	brk_fetch_job *next, *prev; /* active list */
};

struct brk_fetch {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	brk_fetch_job *jobs; /* active: started, callback not yet run */
	size_t active;
	char *user_agent;
	long connect_timeout_ms;
	bool global_init;
};

/* ---- the job list ---- */

static void
unlink_job(brk_fetch_job *j)
{
	if (j->prev) {
		j->prev->next = j->next;
	} else {
		j->f->jobs = j->next;
	}
	if (j->next) {
		j->next->prev = j->prev;
	}
	j->next = j->prev = NULL;
	j->f->active--;
}

static void
free_job(brk_fetch_job *j)
{
	if (j->easy) {
		curl_easy_cleanup(j->easy);
	}
	curl_slist_free_all(j->headers);
	free(j->answer);
	free(j);
}

/* ---- finished transfers ---- */

static int
translate(CURLcode c)
{
	switch (c) {
	case CURLE_OK: return PL_OK;
	case CURLE_OPERATION_TIMEDOUT: return PL_EAGAIN;
	case CURLE_OUT_OF_MEMORY: return PL_ENOMEM;
	default: return PL_EIO;
	}
}

static void
finish(brk_fetch_job *j, CURLcode code)
{
	brk_fetch_resp r;
	curl_off_t ra = -1;

	memset(&r, 0, sizeof(r));
	r.err = translate(code);
	r.error = r.err == PL_OK ? ""
	    : j->errbuf[0]       ? j->errbuf
				 : curl_easy_strerror(code);
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &r.status);
	if (curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK ||
	    ra <= 0) {
		ra = -1;
	}
	r.retry_after_s = (long)ra;
	curl_easy_getinfo(j->easy, CURLINFO_TOTAL_TIME, &r.seconds);
	r.body = j->answer ? j->answer : "";
	r.body_len = j->answer_len;
	j->cb(j->arg, &r);
}

/* Takes every finished transfer out of the multi handle first, then runs
 * the callbacks: a callback may cancel a job whose message was already
 * read (it is then skipped) or start new ones. */
static void
collect(brk_fetch *f)
{
	brk_fetch_job *ready = NULL, **tail = &ready, *j;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE) {
			continue;
		}
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &j);
		curl_multi_remove_handle(f->multi, m->easy_handle);
		unlink_job(j);
		j->done = true;
		j->result = m->data.result;
		*tail = j;
		tail = &j->next;
	}
	while ((j = ready) != NULL) {
		ready = j->next;
		if (!j->cancelled) {
			finish(j, j->result);
		}
		free_job(j);
	}
}

/* ---- curl -> libevent ---- */

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	brk_fetch *f = arg;
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) |
	    (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(f->multi, fd, flags, &running);
	collect(f);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	brk_fetch *f = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect(f);
}

/* curl asks to watch s for `what` (or to stop); the socket's event lives
 * in curl's per-socket pointer. */
static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	brk_fetch *f = userp;
	struct event *ev = socketp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL) {
			event_free(ev);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	kind = (short)(EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	    (what & CURL_POLL_OUT ? EV_WRITE : 0));
	if (ev != NULL) {
		event_del(ev);
		event_assign(ev, f->base, s, kind, on_socket_event, f);
	} else if ((ev = event_new(f->base, s, kind, on_socket_event, f)) ==
	    NULL) {
		return -1;
	}
	curl_multi_assign(f->multi, s, ev);
	return event_add(ev, NULL) == 0 ? 0 : -1;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	brk_fetch *f = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		event_del(f->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return event_add(f->timer, &tv) == 0 ? 0 : -1;
}

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	brk_fetch_job *j = arg;
	size_t n = size * nmemb, keep = n;
	char *p;

	if (j->answer_len + keep > j->answer_max) {
		keep = j->answer_max - j->answer_len;
	}
	if (keep > 0) {
		if ((p = realloc(j->answer, j->answer_len + keep + 1)) ==
		    NULL) {
			return 0; /* aborts the transfer: out of memory */
		}
		j->answer = p;
		memcpy(p + j->answer_len, ptr, keep);
		j->answer_len += keep;
		p[j->answer_len] = '\0';
	}
	return n;
}

/* ---- API ---- */

int
brk_fetch_create(
    brk_fetch **out, const brk_fetch_opts *o, char *err, size_t errlen)
{
	curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	brk_fetch *f;

	*out = NULL;
	if (!(v->features & CURL_VERSION_ASYNCHDNS)) {
		snprintf(err, errlen,
		    "libcurl %s resolves names synchronously, which would "
		    "block the event loop: install a libcurl built with the "
		    "threaded resolver or c-ares (Debian's is)",
		    v->version);
		return PL_EINVAL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	f->base = o->base;
	f->connect_timeout_ms =
	    o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	f->global_init = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	f->user_agent = strdup(o->user_agent ? o->user_agent : "parley");
	f->multi = f->global_init ? curl_multi_init() : NULL;
	f->timer = evtimer_new(o->base, on_timer, f);
	if (f->user_agent == NULL || f->multi == NULL || f->timer == NULL) {
		snprintf(err, errlen, "cannot start libcurl");
		brk_fetch_destroy(f);
		return PL_ENOMEM;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)(o->max_host_conns ? o->max_host_conns : 8));
	*out = f;
	return PL_OK;
}

void
brk_fetch_destroy(brk_fetch *f)
{
	if (f == NULL) {
		return;
	}
	while (f->jobs != NULL) {
		brk_fetch_cancel(f->jobs);
	}
	if (f->multi) {
		/* Closes the cached connections: curl removes their sockets
		 * through socket_cb, which frees their events. */
		curl_multi_cleanup(f->multi);
	}
	if (f->timer) {
		event_free(f->timer);
	}
	if (f->global_init) {
		curl_global_cleanup();
	}
	free(f->user_agent);
	free(f);
}

static int
setup(brk_fetch_job *j, const brk_fetch_req *req)
{
	brk_fetch *f = j->f;
	CURL *e = j->easy;
	int rc = 0;

	for (const char *const *h = req->headers; h && *h; h++) {
		struct curl_slist *l = curl_slist_append(j->headers, *h);
		if (l == NULL) {
			return PL_ENOMEM;
		}
		j->headers = l;
	}
	rc |= curl_easy_setopt(e, CURLOPT_URL, req->url);
	rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent);
	rc |= curl_easy_setopt(
	    e, CURLOPT_CONNECTTIMEOUT_MS, f->connect_timeout_ms);
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    req->timeout_ms > 0 ? req->timeout_ms : 30000L);
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
	if (strcmp(req->method, "GET") != 0) {
		rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	}
	if (req->body != NULL) {
		rc |= curl_easy_setopt(
		    e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		rc |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
	}
	return rc == 0 ? PL_OK : PL_EINVAL;
}

int
brk_fetch_start(brk_fetch *f, const brk_fetch_req *req, brk_fetch_cb cb,
    void *arg, brk_fetch_job **job)
{
	brk_fetch_job *j;
	int rc;

	if (job) {
		*job = NULL;
	}
	if (req == NULL || req->url == NULL || req->method == NULL ||
	    cb == NULL) {
		return PL_EINVAL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		return PL_ENOMEM;
	}
	j->f = f;
	j->cb = cb;
	j->arg = arg;
	j->answer_max = req->max_answer ? req->max_answer : ANSWER_MAX_DEFAULT;
	if ((j->easy = curl_easy_init()) == NULL) {
		free_job(j);
		return PL_ENOMEM;
	}
	if ((rc = setup(j, req)) != PL_OK) {
		free_job(j);
		return rc;
	}
	if (curl_multi_add_handle(f->multi, j->easy) != CURLM_OK) {
		free_job(j);
		return PL_ENOMEM;
	}
	j->next = f->jobs;
	if (f->jobs) {
		f->jobs->prev = j;
	}
	f->jobs = j;
	f->active++;
	if (job) {
		*job = j;
	}
	return PL_OK;
}

void
brk_fetch_cancel(brk_fetch_job *j)
{
	if (j == NULL) {
		return;
	}
	if (j->done) {
		j->cancelled = true; /* collect() frees it */
		return;
	}
	curl_multi_remove_handle(j->f->multi, j->easy);
	unlink_job(j);
	free_job(j);
}

size_t
brk_fetch_active(const brk_fetch *f)
{
	return f ? f->active : 0;
}
