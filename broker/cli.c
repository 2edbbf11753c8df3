/* SPDX-License-Identifier: Apache-2.0 */
/* The admin subcommands talk to a node's admin API with libcurl's easy
 * interface (bearer token from --admin-token-file, as `serve` reads it) and
 * print a table, or the JSON body as received with --json. Every HTTP error
 * is printed with its status and body. `parley token` mints a client
 * token from the secret `serve` would use, without ever creating one. */
#include "broker/cli.h"

#include "broker/auth.h"
#include "broker/secrets.h"
#include "common/err.h"
#include "common/file.h"
#include "storage/backup.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_FILE_MAX 4096
#define BODY_MAX (1 << 20) /* a JSON answer larger than this is an error */

typedef struct body {
	char *p;
	size_t len;
	FILE *to; /* stream a 200 body here instead (backup) */
	size_t streamed;
	CURL *h;
} body;

typedef struct admin_opts {
	const char *admin;
	const char *token_file;
	char *token; /* read from token_file */
	bool json;
	bool wait;
	long timeout; /* seconds */
	const char *out;
	const char *level;
	bool parked;       /* sync --parked */
	bool retry_parked; /* sync --retry-parked */
} admin_opts;

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	body *b = arg;
	size_t n = size * nmemb;
	char *np;

	if (b->to) {
		long code = 0;
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &code);
		/* An error's JSON body is read as usual, never into the copy. */
		if (code == 200) {
			if (fwrite(ptr, 1, n, b->to) != n) {
				return 0;
			}
			b->streamed += n;
			return n;
		}
	}
	if (b->len + n > BODY_MAX ||
	    (np = realloc(b->p, b->len + n + 1)) == NULL) {
		return 0;
	}
	b->p = np;
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* One request. Returns 0 with *code set once a response arrived (any
 * status), -1 when the node could not be reached (message printed unless
 * quiet). */
static int
fetch(const char *cmd, const admin_opts *o, const char *path, bool post,
    body *b, long *code, bool quiet)
{
	char url[600], auth[TOKEN_FILE_MAX + 32], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (h == NULL) {
		fprintf(stderr, "parley %s: cannot start libcurl\n", cmd);
		return -1;
	}
	b->h = h;
	snprintf(url, sizeof(url), "http://%s%s", o->admin, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (b->to == NULL) {
		curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout);
	} else {
		/* A backup takes as long as it takes, but not a stalled one. */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->timeout);
	}
	if (o->token) {
		snprintf(
		    auth, sizeof(auth), "Authorization: Bearer %s", o->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (post) {
		/* An empty body, without the form content type curl would
		 * add (the API refuses form types). */
		hdrs = curl_slist_append(hdrs, "Content-Type:");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (rc == CURLE_OK) {
		return 0;
	}
	if (!quiet) {
		if (*code != 0) {
			fprintf(stderr,
			    "parley %s: HTTP %ld from %s, then the transfer "
			    "failed: %s\n",
			    cmd, *code, url,
			    errbuf[0] ? errbuf : curl_easy_strerror(rc));
		} else {
			fprintf(stderr,
			    "parley %s: cannot reach the admin API at %s: %s\n",
			    cmd, o->admin,
			    errbuf[0] ? errbuf : curl_easy_strerror(rc));
		}
	}
	return *code != 0 ? -2 : -1;
}

/* Prints a non-200 answer: status and body, whatever they are. */
static int
http_error(const char *cmd, long code, const body *b)
{
	json_t *v = b->p ? json_loads(b->p, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(v, "message"));

	if (msg) {
		fprintf(stderr, "parley %s: HTTP %ld: %s\n", cmd, code, msg);
	} else {
		fprintf(stderr, "parley %s: HTTP %ld: %s\n", cmd, code,
		    b->len ? b->p : "(empty body)");
	}
	json_decref(v);
	return 1;
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
print_replication(json_t *v)
{
	json_t *o, *p;
	const char *peer;
	size_t i;

	printf("origin %s, %s",
	    json_string_value(json_object_get(v, "origin")) ?: "?",
	    json_is_true(json_object_get(v, "caught_up")) ? "caught up"
							  : "catching up");
	if (!json_is_true(json_object_get(v, "caught_up"))) {
		printf(" (%lld comments left)",
		    (long long)json_integer_value(
			json_object_get(v, "catchup_left")));
	}
	printf("\n%-28s %10s %10s %10s %8s  %s\n", "ORIGIN", "CW", "HW", "LAG",
	    "LAG_S", "PEERS (cw)");
	json_array_foreach(json_object_get(v, "origins"), i, o)
	{
		printf("%-28s %10lld %10lld %10lld %8.1f ",
		    json_string_value(json_object_get(o, "origin")) ?: "?",
		    (long long)json_integer_value(json_object_get(o, "cw")),
		    (long long)json_integer_value(json_object_get(o, "hw")),
		    (long long)json_integer_value(
			json_object_get(o, "lag_comments")),
		    json_number_value(json_object_get(o, "lag_seconds")));
		json_object_foreach(json_object_get(o, "peers"), peer, p)
		{
			printf(" %s=%lld%s", peer,
			    (long long)json_integer_value(
				json_object_get(p, "cw")),
			    json_is_true(json_object_get(p, "alive"))
				? ""
				: "(down)");
		}
		printf("\n");
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

static void
print_sync(json_t *v)
{
	json_t *o, *x;
	const char *k;
	size_t i;

	json_object_foreach(v, k, x)
	{
		if (strcmp(k, "origins") != 0) {
			char *t = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
			printf("%-24s %s\n", k, t ? t : "?");
			free(t);
		}
	}
	printf("\n%-24s %12s %12s %12s\n", "ORIGIN", "HELD", "SYNCED", "SENT");
	json_array_foreach(json_object_get(v, "origins"), i, o)
	{
		printf("%-24s %12lld %12lld %12lld\n",
		    json_string_value(json_object_get(o, "origin")) ?: "?",
		    (long long)json_integer_value(json_object_get(o, "held")),
		    (long long)json_integer_value(json_object_get(o, "synced")),
		    (long long)json_integer_value(json_object_get(o, "sent")));
	}
}

static void
print_parked(json_t *v)
{
	json_t *c;
	size_t i;

	printf("%lld parked, %lld being sent again\n",
	    (long long)json_integer_value(json_object_get(v, "parked")),
	    (long long)json_integer_value(json_object_get(v, "retrying")));
	printf("%-16s %8s %-9s %6s %-40s %s\n", "ORIGIN", "SEQ", "STATE",
	    "HTTP", "PATH", "ANSWER");
	json_array_foreach(json_object_get(v, "comments"), i, c)
	{
		printf("%-16s %8lld %-9s %6lld %-40s %s\n",
		    json_string_value(json_object_get(c, "origin")) ?: "?",
		    (long long)json_integer_value(json_object_get(c, "seq")),
		    json_string_value(json_object_get(c, "state")) ?: "?",
		    (long long)json_integer_value(json_object_get(c, "status")),
		    json_string_value(json_object_get(c, "path"))
			?: "(not held here)",
		    json_string_value(json_object_get(c, "reason")) ?: "");
	}
}

/* ---- help ---- */

static const char admin_flags_help[] =
    "  --admin HOST:PORT         the node's admin API (PARLEY_ADMIN; "
    "default 127.0.0.1:4001)\n"
    "  --admin-token-file FILE   bearer token, the file `serve` reads "
    "(PARLEY_ADMIN_TOKEN_FILE)\n"
    "  --timeout SECONDS         give up after this long (default 10)\n";

typedef struct cmd_help {
	const char *name, *usage, *what;
} cmd_help;

static const cmd_help helps[] = {
	{ "members", "[--json]",
	    "List the cluster's members as this node sees them." },
	{ "leader", "[--json]",
	    "Print the cluster's leader in this node's view." },
	{ "stats", "[--json]", "Print the node's counters." },
	{ "sync", "[--json] [--parked | --retry-parked]",
	    "Show the Firebase sync queue: the leader, whether the sync is "
	    "on,\n"
	    "queue depth, the oldest pending comment's age, the last success,\n"
	    "requests in flight, retries and parked comments. --parked lists\n"
	    "the comments Firebase refused (parked); --retry-parked has the\n"
	    "leader send them again." },
	{ "replication", "[--json]",
	    "Show comment replication: per origin, this node's marks and each\n"
	    "peer's, how far behind it is, and the catch-up state." },
	{ "drain", "[--wait]",
	    "Drain the node: /readyz turns 503, it leaves the cluster, closes\n"
	    "its sockets with 1012 and exits. With --wait, return once the "
	    "node\n"
	    "has exited (exit 0) or --timeout has passed (exit 1)." },
	{ "leave", "",
	    "Leave the cluster without stopping: /readyz turns 503 and new\n"
	    "WebSocket upgrades are refused; open sockets are kept." },
	{ "log-level", "[LEVEL]",
	    "Print the node's log level, or set it (error, warn, notice,\n"
	    "info, debug) until the next restart." },
	{ "backup", "--out FILE",
	    "Stream a consistent, compacted copy of the node's LMDB store to\n"
	    "FILE (written to FILE.partial, then renamed), and check it "
	    "opens.\n"
	    "Restore: stop the node, put FILE at DATA/data.mdb (remove\n"
	    "DATA/lock.mdb), start it (docs/operations.md)." },
};

static const cmd_help *
help_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
		if (strcmp(helps[i].name, cmd) == 0) {
			return &helps[i];
		}
	}
	return NULL;
}

bool
brk_cli_is_admin(const char *cmd)
{
	return help_of(cmd) != NULL;
}

void
brk_cli_admin_usage(const char *cmd)
{
	const cmd_help *h = help_of(cmd);

	if (h == NULL) {
		return;
	}
	printf("usage: parley %s %s [--admin HOST:PORT] [--admin-token-file "
	       "FILE]%s\n\n%s\n\nflags:\n%s",
	    h->name, h->usage,
	    strstr(h->usage, "--json") || strcmp(cmd, "backup") == 0 ||
		    strcmp(cmd, "drain") == 0
		? ""
		: " [--json]",
	    h->what, admin_flags_help);
	if (strcmp(cmd, "backup") != 0) {
		printf("  --json                    print the API's JSON body "
		       "as received\n");
	}
	if (strcmp(cmd, "drain") == 0) {
		printf("  --wait                    wait until the node has "
		       "exited (--timeout default 60)\n");
	}
	if (strcmp(cmd, "sync") == 0) {
		printf("  --parked                  list the parked comments "
		       "(GET /v1/sync/parked)\n"
		       "  --retry-parked            have the leader send them "
		       "again (POST /v1/sync/retry)\n");
	}
}

/* ---- argument parsing ---- */

static bool
takes_value(const char *a)
{
	return strcmp(a, "--admin") == 0 ||
	    strcmp(a, "--admin-token-file") == 0 ||
	    strcmp(a, "--timeout") == 0 || strcmp(a, "--out") == 0;
}

static int
parse_admin_args(const char *cmd, int argc, char **argv, admin_opts *o)
{
	char err[512], name[40];
	size_t len;
	int i;

	o->admin = getenv("PARLEY_ADMIN");
	if (o->admin == NULL || *o->admin == '\0') {
		o->admin = "127.0.0.1:4001";
	}
	o->token_file = getenv("PARLEY_ADMIN_TOKEN_FILE");
	o->timeout = -1;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		const char *eq =
		    strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;

		if (eq && (size_t)(eq - a) < sizeof(name)) {
			snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
			a = name;
			v = eq + 1;
		}
		if (takes_value(a) && v == NULL && i + 1 < argc) {
			v = argv[++i];
		}
		if (takes_value(a) != (v != NULL)) {
			goto bad;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--wait") == 0 &&
		    strcmp(cmd, "drain") == 0) {
			o->wait = true;
		} else if (strcmp(a, "--parked") == 0 &&
		    strcmp(cmd, "sync") == 0 && !o->retry_parked) {
			o->parked = true;
		} else if (strcmp(a, "--retry-parked") == 0 &&
		    strcmp(cmd, "sync") == 0 && !o->parked) {
			o->retry_parked = true;
		} else if (strcmp(a, "--admin") == 0) {
			o->admin = v;
		} else if (strcmp(a, "--admin-token-file") == 0) {
			o->token_file = v;
		} else if (strcmp(a, "--out") == 0 &&
		    strcmp(cmd, "backup") == 0) {
			o->out = v;
		} else if (strcmp(a, "--timeout") == 0) {
			char *end;
			o->timeout = strtol(v, &end, 10);
			if (*end != '\0' || o->timeout <= 0) {
				fprintf(stderr,
				    "parley %s: --timeout needs a positive "
				    "number of seconds, got \"%s\"\n",
				    cmd, v);
				return 2;
			}
		} else if (a[0] != '-' && strcmp(cmd, "log-level") == 0 &&
		    o->level == NULL) {
			o->level = a;
		} else {
			goto bad;
		}
		continue;
	bad:
		fprintf(stderr,
		    "parley %s: unknown or incomplete argument %s (see "
		    "parley %s --help)\n",
		    cmd, argv[i], cmd);
		return 2;
	}
	if (o->timeout < 0) {
		o->timeout = o->wait ? 60 : 10;
	}
	if (strcmp(cmd, "backup") == 0 && o->out == NULL) {
		fprintf(stderr, "parley backup: --out FILE is required\n");
		return 2;
	}
	if (o->token_file && *o->token_file &&
	    pl_file_read_secret(o->token_file, TOKEN_FILE_MAX, NULL, &o->token,
		&len, err, sizeof(err)) != PL_OK) {
		fprintf(stderr, "parley %s: admin token: %s\n", cmd, err);
		return 2;
	}
	return 0;
}

/* ---- commands ---- */

static int
drain_wait(const admin_opts *o)
{
	time_t end = time(NULL) + o->timeout;

	while (time(NULL) < end) {
		body b = { 0 };
		long code = 0;
		admin_opts q = *o;
		int rc;

		q.timeout = 2;
		rc = fetch("drain", &q, "/v1/leader", false, &b, &code, true);
		free(b.p);
		if (rc == -1) {
			printf("drained: the node has exited\n");
			return 0;
		}
		usleep(200 * 1000);
	}
	fprintf(stderr, "parley drain: the node is still running after %ld s\n",
	    o->timeout);
	return 1;
}

/* Writes the copy to FILE.partial, checks it opens as a store, then
 * renames it; with --out - it goes to stdout unchecked (kubectl exec). */
static int
backup(const admin_opts *o)
{
	bool to_stdout = strcmp(o->out, "-") == 0;
	char *tmp = NULL, err[256];
	body b = { 0 };
	long code = 0;
	uint64_t count = 0;
	int fd = -1, rc;

	if (to_stdout) {
		b.to = stdout;
	} else {
		if (asprintf(&tmp, "%s.partial", o->out) < 0) {
			return 1;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || (b.to = fdopen(fd, "w")) == NULL) {
			fprintf(stderr, "parley backup: cannot write %s: %s\n",
			    tmp, strerror(errno));
			if (fd >= 0) {
				close(fd);
			}
			free(tmp);
			return 1;
		}
	}
	rc = fetch("backup", o, "/v1/backup", false, &b, &code, false);
	if (rc == 0 && code != 200) {
		http_error("backup", code, &b);
		rc = -1;
	}
	if (rc == 0 &&
	    (fflush(b.to) != 0 || (!to_stdout && fsync(fileno(b.to)) != 0))) {
		rc = -1;
		fprintf(stderr, "parley backup: writing %s: %s\n",
		    to_stdout ? "stdout" : tmp, strerror(errno));
	}
	if (!to_stdout) {
		fclose(b.to);
	}
	if (rc == 0 && !to_stdout &&
	    sto_backup_verify(tmp, &count, err, sizeof(err)) != PL_OK) {
		fprintf(
		    stderr, "parley backup: the copy does not open: %s\n", err);
		rc = -1;
	}
	if (rc == 0 && !to_stdout && rename(tmp, o->out) != 0) {
		fprintf(stderr, "parley backup: rename %s to %s: %s\n", tmp,
		    o->out, strerror(errno));
		rc = -1;
	}
	if (rc != 0 && tmp) {
		unlink(tmp);
	}
	if (rc == 0 && to_stdout) {
		fprintf(stderr, "backup written to stdout: %zu bytes\n",
		    b.streamed);
	} else if (rc == 0) {
		printf("backup written to %s: %zu bytes, %llu comments\n",
		    o->out, b.streamed, (unsigned long long)count);
	}
	free(b.p);
	free(tmp);
	return rc == 0 ? 0 : 1;
}

int
brk_cli_admin(const char *cmd, int argc, char **argv)
{
	admin_opts o = { 0 };
	char path[96];
	body b = { 0 };
	long code = 0;
	bool post;
	json_t *v;
	int rc;

	if (argc > 0 &&
	    (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
		brk_cli_admin_usage(cmd);
		return 0;
	}
	if ((rc = parse_admin_args(cmd, argc, argv, &o)) != 0) {
		free(o.token);
		return rc;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(cmd, "backup") == 0) {
		rc = backup(&o);
		goto out;
	}
	post = strcmp(cmd, "drain") == 0 || strcmp(cmd, "leave") == 0 ||
	    (strcmp(cmd, "log-level") == 0 && o.level) || o.retry_parked;
	if (strcmp(cmd, "log-level") == 0 && o.level) {
		snprintf(
		    path, sizeof(path), "/v1/log-level?level=%.20s", o.level);
	} else if (o.parked || o.retry_parked) {
		snprintf(path, sizeof(path), "/v1/sync/%s",
		    o.parked ? "parked" : "retry");
	} else {
		snprintf(path, sizeof(path), "/v1/%s", cmd);
	}
	if (fetch(cmd, &o, path, post, &b, &code, false) != 0) {
		rc = 1;
		goto out;
	}
	if (code != 200) {
		rc = http_error(cmd, code, &b);
		goto out;
	}
	v = b.p ? json_loads(b.p, 0, NULL) : NULL;
	if (o.json || v == NULL) {
		fputs(b.p ? b.p : "", stdout);
	} else if (strcmp(cmd, "members") == 0) {
		print_members(v);
	} else if (strcmp(cmd, "replication") == 0) {
		print_replication(v);
	} else if (strcmp(cmd, "leader") == 0) {
		json_t *l = json_object_get(v, "leader");
		printf("%s\n",
		    json_is_string(l) ? json_string_value(l) : "(unknown)");
	} else if (strcmp(cmd, "log-level") == 0) {
		printf("%s\n",
		    json_string_value(json_object_get(v, "level")) ?: "?");
	} else if (o.parked) {
		print_parked(v);
	} else if (o.retry_parked) {
		printf(
		    "%lld parked comments will be sent again by the leader\n",
		    (long long)json_integer_value(
			json_object_get(v, "retrying")));
	} else if (strcmp(cmd, "sync") == 0) {
		print_sync(v);
	} else {
		print_flat("", v);
	}
	json_decref(v);
	rc = 0;
	if (strcmp(cmd, "drain") == 0 && o.wait) {
		rc = drain_wait(&o);
	}
out:
	curl_global_cleanup();
	free(b.p);
	free(o.token);
	return rc;
}

/* ---- token ---- */

static void
token_usage(FILE *f)
{
	fprintf(f,
	    "usage: parley token --user ID [--ttl SECONDS] [--jwt-secret-file "
	    "FILE | --jwt-secret S | --data DIR]\n\n"
	    "Print a client token (HS256 JWT with sub and exp) signed with "
	    "the\n"
	    "first secret serve would use: --jwt-secret (PARLEY_JWT_SECRET),\n"
	    "--jwt-secret-file (PARLEY_JWT_SECRET_FILE), or DIR/jwt_secret of\n"
	    "an existing data dir (--data, PARLEY_DATA, default ./data). "
	    "Nothing\n"
	    "is created: with no secret it fails and says where to put one.\n\n"
	    "flags:\n"
	    "  --user ID               the token's sub (required)\n"
	    "  --ttl SECONDS           lifetime (default 86400)\n"
	    "  --jwt-secret S          the secret itself (visible in ps)\n"
	    "  --jwt-secret-file FILE  secrets file, its first secret signs\n"
	    "  --data DIR              data dir of a node (default ./data)\n");
}

int
brk_cli_token(int argc, char **argv)
{
	const char *user = NULL, *data = getenv("PARLEY_DATA");
	brk_secret_src src = { getenv("PARLEY_JWT_SECRET"),
		getenv("PARLEY_JWT_SECRET_FILE"), NULL, false };
	brk_keyring *ring = NULL;
	const brk_key *keys;
	size_t nkeys;
	long ttl = 86400;
	char err[512], *tok, *end;
	int i;

	if (data == NULL || *data == '\0') {
		data = "./data";
	}
	if (argc > 0 &&
	    (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
		token_usage(stdout);
		return 0;
	}
	for (i = 0; i < argc; i += 2) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--user") == 0 && v) {
			user = v;
		} else if (strcmp(a, "--ttl") == 0 && v) {
			ttl = strtol(v, &end, 10);
			if (*end != '\0') {
				ttl = -1;
			}
		} else if (strcmp(a, "--jwt-secret") == 0 && v) {
			src.value = v;
		} else if (strcmp(a, "--jwt-secret-file") == 0 && v) {
			src.file = v;
		} else if (strcmp(a, "--data") == 0 && v) {
			data = v;
		} else {
			fprintf(stderr,
			    "parley token: unknown or incomplete "
			    "argument %s\n\n",
			    a);
			token_usage(stderr);
			return 2;
		}
	}
	if (user == NULL || ttl <= 0) {
		fprintf(stderr,
		    "parley token: --user ID is required and --ttl "
		    "must be a positive number of seconds\n");
		return 2;
	}
	src.data_dir = data;
	if (brk_keyring_load(&src, &ring, err, sizeof(err)) != PL_OK) {
		fprintf(stderr, "parley token: %s\n", err);
		return 1;
	}
	keys = brk_keyring_keys(ring, &nkeys);
	tok = brk_auth_mint_key(&keys[0], user, (int64_t)time(NULL) + ttl);
	brk_keyring_destroy(ring);
	if (tok == NULL) {
		fprintf(stderr,
		    "parley token: invalid user id (1..%d bytes, no control "
		    "characters)\n",
		    BRK_AUTH_SUB_MAX);
		return 1;
	}
	printf("%s\n", tok);
	free(tok);
	return 0;
}
