/* SPDX-License-Identifier: Apache-2.0 */
/* Admin subcommands talk to a node's admin API with libcurl's easy interface
 * and print a table, or the JSON body as received with --json. */
#include "broker/cli.h"

#include "broker/auth.h"
#include "common/err.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct body {
	char *p;
	size_t len;
} body;

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	body *b = arg;
	size_t n = size * nmemb;
	char *np = realloc(b->p, b->len + n + 1);

	if (np == NULL) {
		return 0;
	}
	b->p = np;
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static int
fetch(const char *admin, const char *path, int post, body *b, long *code)
{
	char url[512];
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (h == NULL) {
		return -1;
	}
	snprintf(url, sizeof(url), "http://%s%s", admin, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (post) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		fprintf(stderr,
		    "parley: cannot reach the admin API at %s: %s\n", admin,
		    curl_easy_strerror(rc));
		curl_easy_cleanup(h);
		return -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
	curl_easy_cleanup(h);
	return 0;
}

static void
print_members(json_t *v)
{
	json_t *m;
	size_t i;

	printf("%-24s %-36s %-8s %s\n", "NAME", "ADDRESS", "STATUS",
	    "INCARNATION");
	json_array_foreach(json_object_get(v, "members"), i, m)
	{
		const char *name =
		    json_string_value(json_object_get(m, "name"));
		printf("%-24s %-36s %-8s %lld%s\n", name ? name : "?",
		    json_string_value(json_object_get(m, "address")) ?: "?",
		    json_string_value(json_object_get(m, "status")) ?: "?",
		    (long long)json_integer_value(
			json_object_get(m, "incarnation")),
		    name &&
			    json_equal(json_object_get(v, "self"),
				json_object_get(m, "name"))
			? "  (self)"
			: "");
	}
}

static void
print_flat(const char *prefix, json_t *v)
{
	const char *k;
	json_t *x;
	char name[160];

	json_object_foreach(v, k, x)
	{
		snprintf(name, sizeof(name), "%s%s%s", prefix,
		    *prefix ? "." : "", k);
		if (json_is_object(x)) {
			print_flat(name, x);
		} else {
			char *s = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
			printf("%-32s %s\n", name, s ? s : "?");
			free(s);
		}
	}
}

int
brk_cli_admin(const char *cmd, int argc, char **argv)
{
	const char *admin = getenv("PARLEY_ADMIN");
	int as_json = 0, post, i;
	char path[64];
	body b = { NULL, 0 };
	long code = 0;
	json_t *v;

	if (admin == NULL || *admin == '\0') {
		admin = "127.0.0.1:4001";
	}
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if (strcmp(argv[i], "--admin") == 0 && i + 1 < argc) {
			admin = argv[++i];
		} else if (strncmp(argv[i], "--admin=", 8) == 0) {
			admin = argv[i] + 8;
		} else {
			fprintf(stderr, "parley %s: unknown argument %s\n", cmd,
			    argv[i]);
			return 2;
		}
	}
	post = strcmp(cmd, "drain") == 0 || strcmp(cmd, "leave") == 0;
	snprintf(path, sizeof(path), "/v1/%s", cmd);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fetch(admin, path, post, &b, &code) != 0) {
		curl_global_cleanup();
		free(b.p);
		return 1;
	}
	curl_global_cleanup();
	v = b.p ? json_loads(b.p, 0, NULL) : NULL;
	if (as_json || v == NULL) {
		fputs(b.p ? b.p : "", stdout);
	} else if (strcmp(cmd, "members") == 0) {
		print_members(v);
	} else if (strcmp(cmd, "leader") == 0) {
		json_t *l = json_object_get(v, "leader");
		printf("%s\n",
		    json_is_string(l) ? json_string_value(l) : "(unknown)");
	} else {
		print_flat("", v);
	}
	json_decref(v);
	free(b.p);
	return code == 200 ? 0 : 1;
}

int
brk_cli_token(int argc, char **argv)
{
	const char *user = NULL, *secret_flag = getenv("PARLEY_JWT_SECRET");
	const char *data = getenv("PARLEY_DATA");
	long ttl = 86400;
	uint8_t *secret = NULL;
	size_t slen = 0;
	char err[256], *tok;
	int i;

	if (data == NULL || *data == '\0') {
		data = "./data";
	}
	for (i = 0; i < argc; i += 2) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--user") == 0 && v) {
			user = v;
		} else if (strcmp(a, "--ttl") == 0 && v) {
			ttl = strtol(v, NULL, 10);
		} else if (strcmp(a, "--jwt-secret") == 0 && v) {
			secret_flag = v;
		} else if (strcmp(a, "--data") == 0 && v) {
			data = v;
		} else {
			fprintf(stderr,
			    "usage: parley token --user ID [--ttl SECONDS] "
			    "[--jwt-secret S | --data DIR]\n");
			return 2;
		}
	}
	if (user == NULL || ttl <= 0) {
		fprintf(stderr,
		    "parley token: --user ID is required and --ttl "
		    "must be positive\n");
		return 2;
	}
	if (brk_auth_load_secret(
		secret_flag, data, &secret, &slen, err, sizeof(err)) != PL_OK) {
		fprintf(stderr, "parley token: %s\n", err);
		return 1;
	}
	tok = brk_auth_mint(secret, slen, user, (int64_t)time(NULL) + ttl);
	free(secret);
	if (tok == NULL) {
		fprintf(stderr, "parley token: invalid user id\n");
		return 1;
	}
	printf("%s\n", tok);
	free(tok);
	return 0;
}
