/* SPDX-License-Identifier: Apache-2.0 */
/* Seeds (see seeds.h): --join parsing, the advertised URL, the URLs that
 * reach ourselves, and the DNS resolver, whose helper thread is detached
 * and shares its state with the seeds by reference count, so destroy never
 * waits for a slow lookup. */
#include "cluster/seeds.h"

#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "common/err.h"
#include "common/log.h"

/* Shared between the seeds and the helper thread; freed by the last of the
 * two to let go. */
typedef struct resolver {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool closed; /* the seeds let go */
	char **job;  /* "NAME:PORT" strings of the pending lookup */
	size_t n_job;
	bool busy; /* a job is queued or running */
	char **result;
	size_t n_result;
	bool have_result;
	int wake_fd; /* our own dup of the owner's eventfd */
} resolver;

struct clu_seeds {
	char **urls, **dns; /* --join: URLs and "NAME:PORT" */
	size_t n_urls, n_dns;
	char **resolved; /* latest DNS answer */
	size_t n_resolved;
	char **self; /* our advertised URL, then URLs found to
	                         * reach us */
	size_t n_self, cap_self;
	int wake_fd;   /* the owner's; dup()ed by the resolver */
	resolver *res; /* NULL until the first lookup */
};

void
clu_seeds_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]);
	}
	free(v);
}

static void
wake(int fd)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(fd, &one, sizeof(one)) < 0) {
		return;
	}
}

/* Appends a copy of url unless already present. Returns 0 or -1 (ENOMEM). */
static int
add_url(char ***v, size_t *n, size_t *cap, const char *url)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*v)[i], url) == 0) {
			return 0;
		}
	}
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		char **p = realloc(*v, c * sizeof(*p));
		if (p == NULL) {
			return -1;
		}
		*v = p;
		*cap = c;
	}
	if (((*v)[*n] = strdup(url)) == NULL) {
		return -1;
	}
	(*n)++;
	return 0;
}

/* ---- resolver ---- */

static void
release(resolver *r)
{
	bool last;

	pthread_mutex_lock(&r->mu);
	r->closed = true;
	last = --r->refs == 0;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (!last) {
		return;
	}
	clu_seeds_strv_free(r->job, r->n_job);
	clu_seeds_strv_free(r->result, r->n_result);
	close(r->wake_fd);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
/* Resolves one "NAME:PORT" and appends tcp:// URLs. */
static void
resolve_one(const char *hostport, char ***v, size_t *n, size_t *cap)
{
	char host[256], url[320], addr[INET6_ADDRSTRLEN];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints, *res = NULL, *ai;
	size_t hl;
	int rv;

	if (colon == NULL || (hl = (size_t)(colon - hostport)) == 0 ||
	    hl >= sizeof(host) || colon[1] == '\0') {
		return;
	}
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rv = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		LOG_DEBUG(
		    "CLU-DNS", "cannot resolve %s: %s", host, gai_strerror(rv));
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			struct sockaddr_in *sa =
			    (struct sockaddr_in *)ai->ai_addr;
			inet_ntop(AF_INET, &sa->sin_addr, addr, sizeof(addr));
			snprintf(url, sizeof(url), "tcp://%s:%u", addr,
			    (unsigned)ntohs(sa->sin_port));
		} else if (ai->ai_family == AF_INET6) {
			struct sockaddr_in6 *sa =
			    (struct sockaddr_in6 *)ai->ai_addr;
			inet_ntop(AF_INET6, &sa->sin6_addr, addr, sizeof(addr));
			snprintf(url, sizeof(url), "tcp://[%s]:%u", addr,
			    (unsigned)ntohs(sa->sin6_port));
		} else {
			continue;
		}
		if (add_url(v, n, cap, url) != 0) {
			break;
		}
	}
	freeaddrinfo(res);
}

static void *
resolver_main(void *arg)
{
	resolver *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		char **job, **out = NULL;
		size_t n_job, n_out = 0, cap = 0;

		while (!r->closed && r->job == NULL) {
			pthread_cond_wait(&r->cv, &r->mu);
		}
		if (r->closed) {
			break;
		}
		job = r->job;
		n_job = r->n_job;
		r->job = NULL;
		r->n_job = 0;
		pthread_mutex_unlock(&r->mu);

		for (size_t i = 0; i < n_job; i++) {
			resolve_one(job[i], &out, &n_out, &cap);
		}
		clu_seeds_strv_free(job, n_job);

		pthread_mutex_lock(&r->mu);
		clu_seeds_strv_free(r->result, r->n_result);
		r->result = out;
		r->n_result = n_out;
		r->have_result = true;
		r->busy = false;
		if (!r->closed) {
			wake(r->wake_fd);
		}
	}
	pthread_mutex_unlock(&r->mu);
	release(r);
	return NULL;
}

static int
resolver_start(clu_seeds *s)
{
	resolver *r;
	pthread_attr_t attr;
	pthread_t th;
	int rv;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return PL_ENOMEM;
	}
	if ((r->wake_fd = dup(s->wake_fd)) < 0) {
		free(r);
		return PL_EIO;
	}
	r->refs = 2;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rv = pthread_create(&th, &attr, resolver_main, r);
	pthread_attr_destroy(&attr);
	if (rv != 0) {
		r->refs = 1;
		release(r);
		return PL_EIO;
	}
	s->res = r;
	return PL_OK;
}

int
clu_seeds_resolve(clu_seeds *s)
{
	char **job;
	int rc;

	if (s->n_dns == 0) {
		return PL_OK;
	}
	if (s->res == NULL && (rc = resolver_start(s)) != PL_OK) {
		return rc;
	}
	if ((job = calloc(s->n_dns, sizeof(*job))) == NULL) {
		return PL_ENOMEM;
	}
	for (size_t i = 0; i < s->n_dns; i++) {
		if ((job[i] = strdup(s->dns[i])) == NULL) {
			clu_seeds_strv_free(job, i);
			return PL_ENOMEM;
		}
	}
	pthread_mutex_lock(&s->res->mu);
	if (s->res->busy) {
		pthread_mutex_unlock(&s->res->mu);
		clu_seeds_strv_free(job, s->n_dns);
		return PL_EAGAIN;
	}
	s->res->job = job;
	s->res->n_job = s->n_dns;
	s->res->busy = true;
	pthread_cond_signal(&s->res->cv);
	pthread_mutex_unlock(&s->res->mu);
	return PL_OK;
}

bool
clu_seeds_take_resolved(clu_seeds *s)
{
	bool got = false;

	if (s->res == NULL) {
		return false;
	}
	pthread_mutex_lock(&s->res->mu);
	if (s->res->have_result) {
		clu_seeds_strv_free(s->resolved, s->n_resolved);
		s->resolved = s->res->result;
		s->n_resolved = s->res->n_result;
		s->res->result = NULL;
		s->res->n_result = 0;
		s->res->have_result = false;
		got = true;
	}
	pthread_mutex_unlock(&s->res->mu);
	return got;
}

/* ---- the seed set ---- */

int
clu_seeds_create(
    clu_seeds **out, const char *join, const char *self_url, int wake_fd)
{
	clu_seeds *s;
	int rc;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return PL_ENOMEM;
	}
	s->wake_fd = wake_fd;
	if ((rc = clu_seeds_parse_join(
		 join, &s->urls, &s->n_urls, &s->dns, &s->n_dns)) != PL_OK) {
		free(s);
		return rc;
	}
	if (add_url(&s->self, &s->n_self, &s->cap_self, self_url) != 0) {
		clu_seeds_destroy(s);
		return PL_ENOMEM;
	}
	*out = s;
	return PL_OK;
}

void
clu_seeds_destroy(clu_seeds *s)
{
	if (s == NULL) {
		return;
	}
	if (s->res != NULL) {
		release(s->res);
	}
	clu_seeds_strv_free(s->urls, s->n_urls);
	clu_seeds_strv_free(s->dns, s->n_dns);
	clu_seeds_strv_free(s->resolved, s->n_resolved);
	clu_seeds_strv_free(s->self, s->n_self);
	free(s);
}

bool
clu_seeds_configured(const clu_seeds *s)
{
	return s->n_urls > 0 || s->n_dns > 0;
}

bool
clu_seeds_is_self(const clu_seeds *s, const char *url)
{
	for (size_t i = 0; i < s->n_self; i++) {
		if (strcmp(s->self[i], url) == 0) {
			return true;
		}
	}
	return false;
}

bool
clu_seeds_add_self(clu_seeds *s, const char *url)
{
	if (clu_seeds_is_self(s, url) ||
	    add_url(&s->self, &s->n_self, &s->cap_self, url) != 0) {
		return false;
	}
	LOG_INFO(
	    "CLU-SELFDIAL", "%s reaches this node itself; not dialing it", url);
	return true;
}

void
clu_seeds_dial(const clu_seeds *s, clu_bus *b)
{
	for (size_t i = 0; i < s->n_urls; i++) {
		if (!clu_seeds_is_self(s, s->urls[i])) {
			clu_bus_dial(b, s->urls[i]);
		}
	}
	for (size_t i = 0; i < s->n_resolved; i++) {
		if (!clu_seeds_is_self(s, s->resolved[i])) {
			clu_bus_dial(b, s->resolved[i]);
		}
	}
}

/* ---- addresses ---- */

int
clu_seeds_parse_join(
    const char *join, char ***urls, size_t *n_urls, char ***dns, size_t *n_dns)
{
	const char *p = join;
	size_t cap_u = 0, cap_d = 0;

	*urls = *dns = NULL;
	*n_urls = *n_dns = 0;
	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char item[320];
		bool is_dns;
		int rc;

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
			n--;
		}
		if (n >= sizeof(item)) {
			goto bad;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		is_dns = strncmp(item, "dns:", 4) == 0;
		if (n == 0) {
			/* an empty entry (",,") is ignored */
		} else if (is_dns ? (strchr(item + 4, ':') == NULL ||
					item[4] == ':' || item[n - 1] == ':')
				  : strstr(item, "://") == NULL) {
			goto bad;
		} else if ((rc = is_dns ? add_url(dns, n_dns, &cap_d, item + 4)
					: add_url(urls, n_urls, &cap_u,
					      item)) != 0) {
			clu_seeds_strv_free(*urls, *n_urls);
			clu_seeds_strv_free(*dns, *n_dns);
			*urls = *dns = NULL;
			*n_urls = *n_dns = 0;
			return PL_ENOMEM;
		}
		p = end ? end + 1 : NULL;
		continue;
	bad:
		LOG_ERR("CLU-JOIN",
		    "bad join entry \"%.*s\": want tcp://HOST:PORT "
		    "or dns:NAME:PORT",
		    (int)(n > 200 ? 200 : n), p);
		clu_seeds_strv_free(*urls, *n_urls);
		clu_seeds_strv_free(*dns, *n_dns);
		*urls = *dns = NULL;
		*n_urls = *n_dns = 0;
		return PL_EINVAL;
	}
	return PL_OK;
}

char *
clu_seeds_derive_advertise(const char *listen, int bound_port)
{
	char url[320], host[256], out[400];
	const char *h, *colon;
	size_t hl;

	if (strncmp(listen, "tcp://", 6) != 0 ||
	    strlen(listen) >= sizeof(url)) {
		return strdup(listen);
	}
	memcpy(url, listen, strlen(listen) + 1);
	h = url + 6;
	colon = strrchr(h, ':');
	if (colon == NULL || (h[0] == '[' && strchr(h, ']') > colon)) {
		return strdup(listen);
	}
	hl = (size_t)(colon - h);
	if (hl == 0 || (hl == 1 && h[0] == '*') ||
	    (hl == 7 && strncmp(h, "0.0.0.0", 7) == 0) ||
	    (hl == 4 && strncmp(h, "[::]", 4) == 0)) {
		if (gethostname(host, sizeof(host)) != 0) {
			snprintf(host, sizeof(host), "localhost");
		}
		host[sizeof(host) - 1] = '\0';
	} else {
		snprintf(host, sizeof(host), "%.*s", (int)hl, h);
	}
	if (bound_port > 0) {
		snprintf(out, sizeof(out), "tcp://%s:%d", host, bound_port);
	} else {
		snprintf(out, sizeof(out), "tcp://%s%s", host, colon);
	}
	return strdup(out);
}

char *
clu_seeds_direct_listen(const char *bus)
{
	const char *colon = bus ? strrchr(bus, ':') : NULL;
	char out[400];
	char *end;
	long port;

	if (bus == NULL || strncmp(bus, "tcp://", 6) != 0 || colon == NULL ||
	    colon < bus + 6 || strlen(bus) >= sizeof(out) - 8) {
		return NULL;
	}
	port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535) {
		return NULL;
	}
	snprintf(out, sizeof(out), "%.*s:%ld", (int)(colon - bus), bus,
	    port == 0 ? 0 : (port + 1) % 65536);
	return strdup(out);
}
