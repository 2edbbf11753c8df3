/* SPDX-License-Identifier: Apache-2.0 */
/* Google service-account tokens (see gauth.h): RFC 7523 JWT-bearer grant
 * with an RS256 assertion, the way Google's client libraries do it. */
#include "broker/gauth.h"

#include "broker/fetch.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ASSERTION_TTL_S 3600 /* the longest Google accepts */
#define RETRY_MIN_MS 1000
#define TOKEN_MAX 8192

struct brk_gauth {
	struct event_base *base;
	brk_fetch *fetch;
	char *path;
	char *email, *token_uri, *key_id;
	EVP_PKEY *key;
	void (*on_token)(void *arg);
	void *arg;
	uint32_t retry_max_ms;
	struct event *timer; /* next refresh, or the retry of a failed one */
	brk_fetch_job *job;  /* the token request in flight */
	char *token;
	uint64_t gen;
	uint64_t expires_mono_ms; /* the token is refused from then on */
	uint32_t backoff_ms;
	brk_gauth_stats st;
};

/* ---- the key file ---- */

/* A string field of the key file, or NULL with a message naming it. */
static const char *
field(
    json_t *root, const char *name, const char *path, char *err, size_t errlen)
{
	const char *v = json_string_value(json_object_get(root, name));

	if (v == NULL || *v == '\0') {
		snprintf(err, errlen,
		    "--firebase-credentials %s: field \"%s\" is missing or "
		    "not a non-empty string (a Google service-account key "
		    "file has client_email, private_key and token_uri)",
		    path, name);
	}
	return v;
}

static int
load(brk_gauth *g, char *err, size_t errlen)
{
	char msg[400], *text = NULL;
	const char *email, *pem, *uri, *kid;
	json_error_t je;
	json_t *root = NULL;
	BIO *bio = NULL;
	size_t len;
	int rc;

	if ((rc = pl_file_read_secret(g->path, BRK_GAUTH_FILE_MAX,
		 "BRK-SECRETPERM", &text, &len, msg, sizeof(msg))) != PL_OK) {
		snprintf(err, errlen, "--firebase-credentials: %s", msg);
		return rc;
	}
	rc = PL_EINVAL;
	if ((root = json_loadb(text, len, 0, &je)) == NULL ||
	    !json_is_object(root)) {
		snprintf(err, errlen,
		    "--firebase-credentials %s: not a JSON object (%s at line "
		    "%d)",
		    g->path, root ? "another JSON value" : je.text, je.line);
		goto out;
	}
	if ((email = field(root, "client_email", g->path, err, errlen)) ==
		NULL ||
	    (pem = field(root, "private_key", g->path, err, errlen)) == NULL ||
	    (uri = field(root, "token_uri", g->path, err, errlen)) == NULL) {
		goto out;
	}
	if (strncmp(uri, "https://", 8) != 0 &&
	    strncmp(uri, "http://", 7) != 0) {
		snprintf(err, errlen,
		    "--firebase-credentials %s: field \"token_uri\" is not an "
		    "http(s) URL",
		    g->path);
		goto out;
	}
	bio = BIO_new_mem_buf(pem, -1);
	g->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (g->key == NULL || EVP_PKEY_base_id(g->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen,
		    "--firebase-credentials %s: field \"private_key\" is not "
		    "a PEM RSA private key",
		    g->path);
		goto out;
	}
	kid = json_string_value(json_object_get(root, "private_key_id"));
	g->email = strdup(email);
	g->token_uri = strdup(uri);
	g->key_id = kid ? strdup(kid) : NULL;
	if (g->email == NULL || g->token_uri == NULL ||
	    (kid != NULL && g->key_id == NULL)) {
		snprintf(err, errlen, "out of memory");
		rc = PL_ENOMEM;
		goto out;
	}
	rc = PL_OK;
out:
	BIO_free(bio);
	json_decref(root);
	if (text) {
		OPENSSL_cleanse(text, len);
	}
	free(text);
	return rc;
}

/* ---- the assertion ---- */

/* Appends the base64url of s[0..n) at *o in buf. */
static void
put_b64(char *buf, size_t *o, const void *s, size_t n)
{
	*o += pl_b64url_encode(s, n, buf + *o);
}

char *
brk_gauth_assertion(const brk_gauth *g, int64_t now_s)
{
	json_t *h = NULL, *c = NULL;
	char *hj = NULL, *cj = NULL, *out = NULL;
	unsigned char *sig = NULL;
	EVP_MD_CTX *md = NULL;
	size_t siglen = 0, o = 0, cap;

	h = g->key_id ? json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ",
			    "JWT", "kid", g->key_id)
		      : json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", g->email, "scope",
	    BRK_GAUTH_SCOPES, "aud", g->token_uri, "iat", (json_int_t)now_s,
	    "exp", (json_int_t)(now_s + ASSERTION_TTL_S));
	hj = h ? json_dumps(h, JSON_COMPACT) : NULL;
	cj = c ? json_dumps(c, JSON_COMPACT) : NULL;
	if (hj == NULL || cj == NULL || (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g->key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, NULL, 0) != 1 ||
	    (sig = malloc(siglen)) == NULL) {
		goto out;
	}
	cap = pl_b64_encoded_len(strlen(hj)) + pl_b64_encoded_len(strlen(cj)) +
	    pl_b64_encoded_len(siglen) + 3;
	if ((out = malloc(cap)) == NULL) {
		goto out;
	}
	put_b64(out, &o, hj, strlen(hj));
	out[o++] = '.';
	put_b64(out, &o, cj, strlen(cj));
	if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out, o) !=
	    1) {
		free(out);
		out = NULL;
		goto out;
	}
	out[o++] = '.';
	put_b64(out, &o, sig, siglen);
	out[o] = '\0';
out:
	EVP_MD_CTX_free(md);
	free(sig);
	free(hj);
	free(cj);
	json_decref(h);
	json_decref(c);
	return out;
}

/* ---- fetching ---- */

static void fetch_token(brk_gauth *g);

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fetch_token(arg);
}

static void
arm(brk_gauth *g, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
		(suseconds_t)(ms % 1000) * 1000 };

	event_add(g->timer, &tv);
}

static void
failed(brk_gauth *g, const char *why)
{
	g->st.failed++;
	g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : RETRY_MIN_MS;
	if (g->backoff_ms > g->retry_max_ms) {
		g->backoff_ms = g->retry_max_ms;
	}
	LOG_SUMMARY(PL_LOG_ERR, "BRK-FBTOKEN",
	    "no Firebase access token for %s from %s: %s; trying again in "
	    "%u ms",
	    g->email, g->token_uri, why, g->backoff_ms);
	arm(g, g->backoff_ms);
}

static void
on_answer(void *arg, const brk_fetch_resp *r)
{
	brk_gauth *g = arg;
	json_t *v = NULL;
	const char *tok;
	json_int_t ttl;
	char why[300];
	uint64_t margin;

	g->job = NULL;
	if (r->err != PL_OK) {
		failed(g, r->error);
		return;
	}
	v = json_loadb(r->body, r->body_len, 0, NULL);
	tok = json_string_value(json_object_get(v, "access_token"));
	ttl = json_integer_value(json_object_get(v, "expires_in"));
	if (r->status != 200 || tok == NULL || *tok == '\0' ||
	    strlen(tok) > TOKEN_MAX || ttl <= 0) {
		snprintf(why, sizeof(why), "HTTP %ld: %.200s", r->status,
		    r->body_len ? r->body : "(empty answer)");
		json_decref(v);
		failed(g, why);
		return;
	}
	free(g->token);
	g->token = strdup(tok);
	json_decref(v);
	if (g->token == NULL) {
		failed(g, "out of memory");
		return;
	}
	g->gen++;
	g->backoff_ms = 0;
	g->st.fetched++;
	g->expires_mono_ms = pl_mono_ms() + (uint64_t)ttl * 1000;
	g->st.expires_at_ms = (int64_t)pl_wall_ms() + (int64_t)ttl * 1000;
	/* Refresh a quarter before the end (at most five minutes early),
	 * so a slow token endpoint never leaves us without one. */
	margin = (uint64_t)ttl * 1000 / 4;
	if (margin > 300000) {
		margin = 300000;
	}
	arm(g, (uint64_t)ttl * 1000 - margin);
	LOG_INFO("BRK-FBTOKEN",
	    "Firebase access token for %s obtained, valid %lld s", g->email,
	    (long long)ttl);
	if (g->on_token) {
		g->on_token(g->arg);
	}
}

static void
fetch_token(brk_gauth *g)
{
	static const char prefix[] =
	    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
	    "&assertion=";
	const char *hdrs[] = {
		"Content-Type: application/x-www-form-urlencoded", NULL
	};
	char *assertion, *body = NULL;
	brk_fetch_req req;
	int rc;

	if (g->job != NULL) {
		return;
	}
	event_del(g->timer);
	assertion = brk_gauth_assertion(g, (int64_t)time(NULL));
	if (assertion == NULL ||
	    asprintf(&body, "%s%s", prefix, assertion) < 0) {
		free(assertion);
		failed(g, "cannot sign the assertion");
		return;
	}
	free(assertion);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = g->token_uri;
	req.headers = hdrs;
	req.body = body;
	req.body_len = strlen(body);
	req.timeout_ms = 30000;
	rc = brk_fetch_start(g->fetch, &req, on_answer, g, &g->job);
	free(body);
	if (rc != PL_OK) {
		failed(g, pl_strerror(rc));
	}
}

/* ---- API ---- */

int
brk_gauth_create(
    brk_gauth **out, const brk_gauth_opts *o, char *err, size_t errlen)
{
	brk_gauth *g = calloc(1, sizeof(*g));
	int rc;

	*out = NULL;
	if (g == NULL || (g->path = strdup(o->path)) == NULL) {
		free(g);
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	g->base = o->base;
	g->fetch = o->fetch;
	g->on_token = o->on_token;
	g->arg = o->arg;
	g->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : 60000;
	if ((rc = load(g, err, errlen)) != PL_OK) {
		brk_gauth_destroy(g);
		return rc;
	}
	if ((g->timer = evtimer_new(o->base, on_timer, g)) == NULL) {
		brk_gauth_destroy(g);
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	*out = g;
	return PL_OK;
}

void
brk_gauth_destroy(brk_gauth *g)
{
	if (g == NULL) {
		return;
	}
	brk_fetch_cancel(g->job);
	if (g->timer) {
		event_free(g->timer);
	}
	EVP_PKEY_free(g->key);
	if (g->token) {
		OPENSSL_cleanse(g->token, strlen(g->token));
	}
	free(g->token);
	free(g->email);
	free(g->token_uri);
	free(g->key_id);
	free(g->path);
	free(g);
}

void
brk_gauth_start(brk_gauth *g)
{
	fetch_token(g);
}

const char *
brk_gauth_token(const brk_gauth *g, uint64_t *gen)
{
	if (gen) {
		*gen = g->gen;
	}
	if (g->token == NULL || pl_mono_ms() >= g->expires_mono_ms) {
		return NULL;
	}
	return g->token;
}

void
brk_gauth_refused(brk_gauth *g, uint64_t gen)
{
	if (gen != g->gen || g->job != NULL) {
		return; /* a newer token is held or on its way */
	}
	LOG_NOTICE("BRK-FBTOKEN",
	    "Firebase refused the access token (401): fetching a new one");
	/* The refused token must not be sent again. */
	g->expires_mono_ms = 0;
	fetch_token(g);
}

void
brk_gauth_stats_get(const brk_gauth *g, brk_gauth_stats *out)
{
	*out = g->st;
}

const char *
brk_gauth_email(const brk_gauth *g)
{
	return g->email;
}
