/* SPDX-License-Identifier: Apache-2.0 */
/* Service-account tokens: the key file is checked field by field (each
 * failure names its field); the assertion is an RS256 JWT that verifies
 * with the key's public half and carries the claims Google wants; tokens
 * are fetched from token_uri (a libevent HTTP server here), refreshed
 * before they expire, fetched again at once after a 401, and retried when
 * the endpoint fails. */
#include "broker/fetch.h"
#include "broker/gauth.h"
#include "common/base64.h"
#include "common/err.h"
#include "tests/unit/test.h"

#include "tests/unit/broker/http_fixture.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static EVP_PKEY *key;
static char dir[64], token_uri[96];
static struct event_base *base;
static struct evhttp *http;
static int token_calls, fail_next, ttl = 3600;
static char last_assertion[4096];

static char *
pem_of(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

/* Writes a key file with the given fields (NULL: left out). */
static void
write_file(
    const char *path, const char *email, const char *pem, const char *uri)
{
	json_t *o = json_object();
	FILE *fp;

	json_object_set_new(o, "type", json_string("service_account"));
	if (email) {
		json_object_set_new(o, "client_email", json_string(email));
	}
	if (pem) {
		json_object_set_new(o, "private_key", json_string(pem));
	}
	if (uri) {
		json_object_set_new(o, "token_uri", json_string(uri));
	}
	fp = fopen(path, "w");
	json_dumpf(o, fp, 0);
	fclose(fp);
	chmod(path, 0600);
	json_decref(o);
}

static void
serve_token(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	size_t n = evbuffer_get_length(in);
	char body[4096];
	const char *a;

	(void)arg;
	token_calls++;
	n = n < sizeof(body) - 1 ? n : sizeof(body) - 1;
	evbuffer_copyout(in, body, n);
	body[n] = '\0';
	a = strstr(body, "&assertion=");
	snprintf(last_assertion, sizeof(last_assertion), "%s", a ? a + 11 : "");
	if (fail_next > 0) {
		fail_next--;
		evbuffer_add_printf(out, "{\"error\":\"server\"}");
		evhttp_send_reply(req, 500, "Err", out);
	} else if (strncmp(body,
		       "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%"
		       "3Ajwt-bearer&assertion=",
		       70) != 0) {
		evhttp_send_reply(req, 400, "Bad", out);
	} else {
		evbuffer_add_printf(out,
		    "{\"access_token\":\"tok-%d\",\"expires_in\":%d,"
		    "\"token_type\":\"Bearer\"}",
		    token_calls, ttl);
		evhttp_send_reply(req, 200, "OK", out);
	}
	evbuffer_free(out);
}

static void
setup(void)
{
	int port;

	snprintf(dir, sizeof(dir), "/tmp/gauth_test.XXXXXX");
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	if (key == NULL) {
		key = EVP_RSA_gen(2048);
	}
	base = event_base_new();
	http = http_serve(base, serve_token, &port);
	snprintf(
	    token_uri, sizeof(token_uri), "http://127.0.0.1:%d/token", port);
	token_calls = fail_next = 0;
	ttl = 3600;
}

static void
teardown(void)
{
	char cmd[96];

	evhttp_free(http);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd));
}

static int
create(const char *path, brk_fetch *f, brk_gauth **g, char *err, size_t n)
{
	brk_gauth_opts o = { 0 };

	o.base = base;
	o.fetch = f;
	o.path = path;
	o.retry_max_ms = 1000;
	return brk_gauth_create(g, &o, err, n);
}

static void
bad_files_name_their_field(void)
{
	char *pem, path[128], err[512];
	brk_gauth *g = NULL;
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	char *ecpem = pem_of(ec);
	struct {
		const char *email, *pem, *uri, *want;
	} cases[] = {
		{ NULL, "PEM", "URI", "field \"client_email\" is missing" },
		{ "a@b", NULL, "URI", "field \"private_key\" is missing" },
		{ "a@b", "PEM", NULL, "field \"token_uri\" is missing" },
		{ "a@b", "not a key", "URI",
		    "\"private_key\" is not a PEM RSA" },
		{ "a@b", "EC", "URI", "\"private_key\" is not a PEM RSA" },
		{ "a@b", "PEM", "file:///etc/passwd",
		    "\"token_uri\" is not an http" },
	};

	setup();
	pem = pem_of(key);
	snprintf(path, sizeof(path), "%s/sa.json", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = cases[i].pem;
		p = p && strcmp(p, "PEM") == 0  ? pem
		    : p && strcmp(p, "EC") == 0 ? ecpem
						: p;
		write_file(path, cases[i].email, p,
		    cases[i].uri && strcmp(cases[i].uri, "URI") == 0
			? token_uri
			: cases[i].uri);
		ASSERT_EQ(create(path, NULL, &g, err, sizeof(err)), PL_EINVAL);
		ASSERT_TRUE(g == NULL);
		if (strstr(err, cases[i].want) == NULL ||
		    strstr(err, path) == NULL) {
			TEST_FAIL_("case %zu: \"%s\"", i, err);
		}
	}
	ASSERT_EQ(create("/nonexistent/sa.json", NULL, &g, err, sizeof(err)),
	    PL_ENOTFOUND);
	ASSERT_TRUE(strstr(err, "--firebase-credentials") != NULL);
	write_file(path, "a@b", pem, token_uri);
	FILE *fp = fopen(path, "w");
	fputs("{\"client_email\": ", fp);
	fclose(fp);
	ASSERT_EQ(create(path, NULL, &g, err, sizeof(err)), PL_EINVAL);
	ASSERT_TRUE(strstr(err, "not a JSON object") != NULL);
	free(pem);
	free(ecpem);
	EVP_PKEY_free(ec);
	teardown();
}

static json_t *
segment(const char *s, size_t n)
{
	uint8_t buf[2048];
	size_t len;

	ASSERT_TRUE(n * 3 / 4 + 2 <= sizeof(buf));
	ASSERT_TRUE(pl_b64url_decode(s, n, buf, &len));
	return json_loadb((const char *)buf, len, 0, NULL);
}

static void
the_assertion_verifies(void)
{
	char *pem, path[128], err[512], *jwt;
	const char *d1, *d2;
	brk_gauth *g = NULL;
	uint8_t sig[512];
	size_t siglen;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	json_t *h, *c;

	setup();
	pem = pem_of(key);
	snprintf(path, sizeof(path), "%s/sa.json", dir);
	write_file(path, "sync@proj.iam.gserviceaccount.com", pem, token_uri);
	ASSERT_OK(create(path, NULL, &g, err, sizeof(err)));
	jwt = brk_gauth_assertion(g, 1700000000);
	ASSERT_TRUE(jwt != NULL);
	d1 = strchr(jwt, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	ASSERT_TRUE(d2 != NULL);
	h = segment(jwt, (size_t)(d1 - jwt));
	c = segment(d1 + 1, (size_t)(d2 - d1 - 1));
	ASSERT_STREQ(json_string_value(json_object_get(h, "alg")), "RS256");
	ASSERT_STREQ(json_string_value(json_object_get(c, "iss")),
	    "sync@proj.iam.gserviceaccount.com");
	ASSERT_STREQ(json_string_value(json_object_get(c, "aud")), token_uri);
	ASSERT_STREQ(
	    json_string_value(json_object_get(c, "scope")), BRK_GAUTH_SCOPES);
	ASSERT_EQ(json_integer_value(json_object_get(c, "iat")), 1700000000);
	ASSERT_EQ(json_integer_value(json_object_get(c, "exp")), 1700003600);
	ASSERT_TRUE(pl_b64url_decode(d2 + 1, strlen(d2 + 1), sig, &siglen));
	ASSERT_EQ(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	ASSERT_EQ(EVP_DigestVerify(md, sig, siglen, (const uint8_t *)jwt,
		      (size_t)(d2 - jwt)),
	    1);
	/* A flipped byte does not verify. */
	jwt[5] ^= 1;
	ASSERT_EQ(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	ASSERT_TRUE(EVP_DigestVerify(md, sig, siglen, (const uint8_t *)jwt,
			(size_t)(d2 - jwt)) != 1);
	EVP_MD_CTX_free(md);
	json_decref(h);
	json_decref(c);
	free(jwt);
	free(pem);
	brk_gauth_destroy(g);
	teardown();
}

static int tokens_seen;

static void
on_token(void *arg)
{
	(void)arg;
	tokens_seen++;
}

static void
run_ms(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
tokens_are_fetched_refreshed_and_retried(void)
{
	char *pem, path[128], err[512];
	brk_fetch_opts fo = { 0 };
	brk_gauth_opts o = { 0 };
	brk_fetch *f = NULL;
	brk_gauth *g = NULL;
	brk_gauth_stats st;
	uint64_t gen, gen2;

	setup();
	pem = pem_of(key);
	snprintf(path, sizeof(path), "%s/sa.json", dir);
	write_file(path, "a@b", pem, token_uri);
	fo.base = base;
	ASSERT_OK(brk_fetch_create(&f, &fo, err, sizeof(err)));
	o.base = base;
	o.fetch = f;
	o.path = path;
	o.retry_max_ms = 1000;
	o.on_token = on_token;
	ASSERT_OK(brk_gauth_create(&g, &o, err, sizeof(err)));
	ASSERT_TRUE(brk_gauth_token(g, NULL) == NULL);
	fail_next = 1; /* the first try fails: retried after 1 s */
	ttl = 2;       /* refreshed a quarter before: after 1.5 s */
	tokens_seen = 0;
	brk_gauth_start(g);
	run_ms(1500);
	ASSERT_EQ(token_calls, 2);
	ASSERT_STREQ(brk_gauth_token(g, &gen), "tok-2");
	ASSERT_EQ(tokens_seen, 1);
	ASSERT_TRUE(last_assertion[0] != '\0');
	run_ms(1700);
	ASSERT_STREQ(brk_gauth_token(g, &gen2), "tok-3");
	ASSERT_EQ(gen2, gen + 1);
	/* A 401 on the current token: a new one at once, and only one. */
	ttl = 3600;
	brk_gauth_refused(g, gen2);
	brk_gauth_refused(g, gen2);
	ASSERT_TRUE(brk_gauth_token(g, NULL) == NULL);
	run_ms(300);
	ASSERT_STREQ(brk_gauth_token(g, &gen), "tok-4");
	ASSERT_EQ(token_calls, 4);
	/* A 401 on an older token changes nothing. */
	brk_gauth_refused(g, gen2);
	run_ms(100);
	ASSERT_EQ(token_calls, 4);
	brk_gauth_stats_get(g, &st);
	ASSERT_EQ(st.fetched, 3);
	ASSERT_EQ(st.failed, 1);
	brk_gauth_destroy(g);
	brk_fetch_destroy(f);
	free(pem);
	teardown();
}

TEST_LIST{
	TEST_ENTRY(bad_files_name_their_field),
	TEST_ENTRY(the_assertion_verifies),
	TEST_ENTRY(tokens_are_fetched_refreshed_and_retried),
};
TEST_MAIN()
