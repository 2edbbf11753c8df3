/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for storage/comments, the hard cases, against real LMDB files
 * in a temp dir: map growth from a tiny map, a map that may not grow,
 * corrupt files, a foreign format version, a process killed holding the
 * locks, idempotent replicas, origin walks and watermarks. */
#include <ftw.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "storage/comments.h"
#include "tests/unit/test.h"

#include "tests/unit/storage/store_fixture.h"

static void
test_map_growth(void)
{
	sto_comments_opts o = { .map_size = 64 << 10, .batch_max = 256 };
	sto_comments_stats st;
	sto_comments *s;
	sto_comment_list *l;
	struct pollfd pfd;
	char text[301], video[16];
	enum { N = 6000 };

	setup();
	s = open_store("n1", &o);
	memset(text, 'x', 300);
	text[300] = '\0';
	for (int i = 0; i < N; i++) {
		snprintf(video, sizeof(video), "v%d", i % 50);
		append(s, video, "user", text, NULL);
	}
	/* Query while the writer grows the map under us. */
	pfd.fd = sto_comments_notify_fd(s);
	pfd.events = POLLIN;
	for (int i = 0; R.n < N && i < 4000; i++) {
		poll(&pfd, 1, 5);
		sto_comments_poll(s);
		ASSERT_OK(sto_comments_latest(s, "v3", 50, &l));
		sto_comment_list_free(l);
	}
	ASSERT_EQ(R.n, N);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(R.status[i], PL_OK);
	}
	sto_comments_stats_get(s, &st);
	ASSERT_TRUE(st.map_grows >= 4);
	ASSERT_TRUE(st.map_size >= (2u << 20));
	ASSERT_EQ(st.failed_ops, 0);
	ASSERT_OK(sto_comments_latest(s, "v7", 1000, &l));
	ASSERT_EQ(l->count, N / 50);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
test_map_max_fails_cleanly(void)
{
	sto_comments_opts o = { .map_size = 64 << 10, .map_max = 128 << 10 };
	sto_comments_stats st;
	sto_comments *s;
	sto_comment_list *l;
	char text[2001];
	int full = 0;

	setup();
	s = open_store("n1", &o);
	memset(text, 'y', 2000);
	text[2000] = '\0';
	for (int i = 0; i < 200; i++) {
		append(s, "v", "u", text, NULL);
	}
	wait_done(s, 200);
	for (int i = 0; i < 200; i++) {
		ASSERT_TRUE(R.status[i] == PL_OK || R.status[i] == PL_EFULL);
		full += R.status[i] == PL_EFULL;
	}
	ASSERT_TRUE(full > 0);
	sto_comments_stats_get(s, &st);
	ASSERT_EQ(st.failed_ops, full);
	ASSERT_EQ(st.map_size, 128 << 10);
	/* Still readable. */
	ASSERT_OK(sto_comments_latest(s, "v", 1, &l));
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
write_file(const char *name, const void *data, size_t n)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ASSERT_TRUE((f = fopen(path, "wb")) != NULL);
	ASSERT_EQ(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void
test_corrupt_open_fails(void)
{
	sto_comments_opts o = { .node = "n1" };
	sto_comments *s = NULL;
	char err[256], *junk = malloc(65536);
	char sub[128];

	setup();
	for (int i = 0; i < 65536; i++) {
		junk[i] = (char)(i * 7 + 13);
	}
	write_file("data.mdb", junk, 65536);
	ASSERT_EQ(
	    sto_comments_open(&s, dir, &o, err, sizeof(err)), PL_ECORRUPT);
	ASSERT_TRUE(s == NULL);
	ASSERT_TRUE(strstr(err, dir) != NULL);
	fprintf(stderr, "  (expected) %s\n", err);
	/* Shorter than one page. */
	write_file("data.mdb", junk, 100);
	ASSERT_EQ(
	    sto_comments_open(&s, dir, &o, err, sizeof(err)), PL_ECORRUPT);
	/* The data dir is a file. */
	snprintf(sub, sizeof(sub), "%s/data.mdb", dir);
	ASSERT_EQ(sto_comments_open(&s, sub, &o, err, sizeof(err)), PL_EIO);
	ASSERT_TRUE(err[0] != '\0');
	free(junk);
	teardown();
}

/* Opens the store in a child so that a crash (SIGBUS from reading past the
 * end of a mapped file) fails the case instead of the runner. Returns the
 * child's open status; its message goes to err. */
static int
open_in_child(char *err, size_t errlen)
{
	int pfd[2], status, rc = -1;
	ssize_t n;
	pid_t pid;

	ASSERT_OK(pipe(pfd));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		sto_comments_opts o = { .node = "n1" };
		sto_comments *s = NULL;
		char msg[256] = "";
		int r = sto_comments_open(&s, dir, &o, msg, sizeof(msg));

		if (s != NULL) {
			sto_comments_close(s);
		}
		if (write(pfd[1], &r, sizeof(r)) != sizeof(r) ||
		    write(pfd[1], msg, strlen(msg) + 1) < 0) {
			_exit(2);
		}
		_exit(0);
	}
	close(pfd[1]);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status)) {
		close(pfd[0]);
		TEST_FAIL_("open crashed with signal %d", WTERMSIG(status));
	}
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(read(pfd[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
	n = read(pfd[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	return rc;
}

/* A data.mdb cut short (a full disk during a copy, a bad restore) must be
 * refused with a message, never crash the node: the sizes are those that
 * crashed with SIGBUS (issue 12). */
static void
test_truncated_open_fails(void)
{
	static const off_t sizes[] = { 5000, 8192, 12288, 65536 };
	char path[128], err[256];
	struct stat sb;
	sto_comments *s;

	setup();
	s = open_store("n1", NULL);
	for (int i = 0; i < 8; i++) {
		char video[16];

		snprintf(video, sizeof(video), "v%d", i);
		fill(s, video, 300, NULL);
	}
	sto_comments_close(s);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	ASSERT_OK(stat(path, &sb));
	ASSERT_TRUE(sb.st_size > 65536);
	for (size_t i = sizeof(sizes) / sizeof(sizes[0]); i-- > 0;) {
		ASSERT_OK(truncate(path, sizes[i]));
		ASSERT_EQ(open_in_child(err, sizeof(err)), PL_ECORRUPT);
		fprintf(stderr, "  (expected, %lld bytes) %s\n",
		    (long long)sizes[i], err);
		ASSERT_TRUE(strstr(err, "truncated") != NULL);
		ASSERT_TRUE(strstr(err, dir) != NULL);
	}
	teardown();
}

static void
test_unknown_format_version(void)
{
	sto_comments *s;
	sto_comments_opts o = { .node = "n1" };
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi db;
	MDB_val k = { 1, "v" }, d = { 1, "\x09" };
	char err[256];

	setup();
	s = open_store("n1", NULL);
	sto_comments_close(s);
	ASSERT_OK(mdb_env_create(&env));
	ASSERT_OK(mdb_env_set_maxdbs(env, 4));
	ASSERT_OK(mdb_env_open(env, dir, 0, 0644));
	ASSERT_OK(mdb_txn_begin(env, NULL, 0, &txn));
	ASSERT_OK(mdb_dbi_open(txn, "meta", 0, &db));
	ASSERT_OK(mdb_put(txn, db, &k, &d, 0));
	ASSERT_OK(mdb_txn_commit(txn));
	mdb_env_close(env);
	ASSERT_EQ(
	    sto_comments_open(&s, dir, &o, err, sizeof(err)), PL_ECORRUPT);
	ASSERT_TRUE(strstr(err, "version") != NULL);
	teardown();
}

static void
test_stale_lock_after_kill(void)
{
	sto_comments *s;
	sto_comment_list *l;
	int pfd[2], status;
	pid_t pid;
	char c;

	setup();
	s = open_store("n1", NULL);
	fill(s, "v", 3, NULL);
	sto_comments_close(s);
	ASSERT_OK(pipe(pfd));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		/* A process that dies holding a reader slot and the writer
		 * lock, as a node killed mid-commit would. */
		MDB_env *env;
		MDB_txn *rtxn, *wtxn;

		if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
		    mdb_env_open(env, dir, MDB_NOTLS, 0644) ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &rtxn) ||
		    mdb_txn_begin(env, NULL, 0, &wtxn)) {
			_exit(1);
		}
		if (write(pfd[1], "x", 1) != 1) {
			_exit(1);
		}
		for (;;) {
			pause();
		}
	}
	close(pfd[1]);
	ASSERT_EQ(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	kill(pid, SIGKILL);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	s = open_store("n1", NULL);
	append(s, "v", "u", "after kill", NULL);
	wait_done(s, 4);
	ASSERT_EQ(R.status[3], PL_OK);
	ASSERT_OK(sto_comments_latest(s, "v", 10, &l));
	ASSERT_EQ(l->count, 4);
	ASSERT_STREQ(l->items[3].content, "after kill");
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
put_replica(sto_comments *s, const char *id, const char *origin, uint64_t seq,
    const char *content)
{
	sto_comment c = { .video_id = "v",
		.user_id = "bob",
		.content = content,
		.origin = origin,
		.inserted_at = 777,
		.seq = seq };

	snprintf(c.id, sizeof(c.id), "%s", id);
	ASSERT_OK(sto_comments_put_replica(
	    s, &c, on_done, (void *)(intptr_t)issued++));
}

static void
test_replica_idempotent(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_assigned a;
	uint64_t max;
	const char *id1 = "00000000100011112222000a";
	const char *id2 = "00000000200011112222000b";

	setup();
	s = open_store("n1", NULL);
	put_replica(s, id1, "n2", 1, "one");
	put_replica(s, id1, "n2", 1, "one"); /* same batch, duplicate */
	wait_done(s, 2);
	ASSERT_EQ(R.status[0], PL_OK);
	ASSERT_EQ(R.status[1], PL_EEXIST);
	put_replica(s, id1, "n2", 1, "one"); /* later batch, duplicate */
	put_replica(s, id2, "n2", 1, "two"); /* seq taken by id1 */
	put_replica(s, id2, "n2", 2, "two");
	/* Same id, other bytes: refused, never overwritten. */
	put_replica(s, id1, "n2", 1, "ONE, rewritten");
	put_replica(s, id1, "n2", 3, "one");
	wait_done(s, 7);
	ASSERT_EQ(R.status[2], PL_EEXIST);
	ASSERT_EQ(R.status[3], PL_EPROTO);
	ASSERT_EQ(R.status[4], PL_OK);
	ASSERT_EQ(R.status[5], PL_EPROTO);
	ASSERT_EQ(R.status[6], PL_EPROTO);
	ASSERT_OK(sto_comments_latest(s, "v", 10, &l));
	ASSERT_EQ(l->count, 2);
	ASSERT_STREQ(l->items[0].id, id1);
	ASSERT_STREQ(l->items[0].content, "one");
	ASSERT_STREQ(l->items[0].origin, "n2");
	ASSERT_EQ(l->items[0].inserted_at, 777);
	ASSERT_STREQ(l->items[1].content, "two");
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_origin_max(s, "n2", &max));
	ASSERT_EQ(max, 2);
	ASSERT_OK(sto_comments_origin_max(s, "n9", &max));
	ASSERT_EQ(max, 0);
	/* Our own comments coming back: local seqs skip past them. */
	put_replica(s, "00000000300011112222000c", "n1", 41, "mine");
	append(s, "v", "u", "new", &a);
	ASSERT_EQ(a.seq, 42);
	wait_done(s, 9);
	ASSERT_EQ(R.status[7], PL_OK);
	ASSERT_EQ(R.status[8], PL_OK);
	sto_comments_close(s);
	teardown();
}

static void
test_origin_iteration(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_origin_vec *v;
	char id[STO_COMMENT_ID_LEN + 1];

	setup();
	s = open_store("n1", NULL);
	for (int i = 1; i <= 20; i++) {
		snprintf(id, sizeof(id), "%012x%08x%04x", 100 + i, 0x22, 0);
		put_replica(s, id, "n2", (uint64_t)i, "r");
		snprintf(id, sizeof(id), "%012x%08x%04x", 100 + i, 0x10, 0);
		put_replica(s, id, "n10", (uint64_t)i * 2, "r");
		append(s, i % 2 ? "a" : "b", "u", "l", NULL);
	}
	wait_done(s, 60);
	ASSERT_OK(sto_comments_origin_after(s, "n2", 0, 8, &l));
	ASSERT_EQ(l->count, 8);
	ASSERT_TRUE(l->has_more);
	for (size_t i = 0; i < l->count; i++) {
		ASSERT_EQ(l->items[i].seq, i + 1);
		ASSERT_STREQ(l->items[i].origin, "n2");
	}
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_origin_after(s, "n2", 12, 8, &l));
	ASSERT_EQ(l->count, 8);
	ASSERT_TRUE(!l->has_more);
	ASSERT_EQ(l->items[0].seq, 13);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_origin_after(s, "n2", 20, 8, &l));
	ASSERT_EQ(l->count, 0);
	ASSERT_TRUE(!l->has_more);
	sto_comment_list_free(l);
	/* Gaps in the seqs are walked over, other origins never show. */
	ASSERT_OK(sto_comments_origin_after(s, "n10", 5, 100, &l));
	ASSERT_EQ(l->count, 18);
	ASSERT_EQ(l->items[0].seq, 6);
	ASSERT_STREQ(l->items[17].origin, "n10");
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_origin_after(s, "n1", 0, 100, &l));
	ASSERT_EQ(l->count, 20);
	ASSERT_STREQ(l->items[0].video_id, "a");
	ASSERT_STREQ(l->items[1].video_id, "b");
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_origin_vector(s, &v));
	ASSERT_EQ(v->count, 3);
	ASSERT_STREQ(v->items[0].origin, "n1");
	ASSERT_EQ(v->items[0].seq, 20);
	ASSERT_STREQ(v->items[1].origin, "n10");
	ASSERT_EQ(v->items[1].seq, 40);
	ASSERT_STREQ(v->items[2].origin, "n2");
	ASSERT_EQ(v->items[2].seq, 20);
	sto_origin_vec_free(v);
	sto_comments_close(s);
	teardown();
}

static int wm_status = -1;

static void
on_wm(void *arg, int status)
{
	(void)arg;
	wm_status = status;
	R.n++;
}

static void
test_watermark(void)
{
	sto_comments *s;
	uint64_t v;

	setup();
	s = open_store("n1", NULL);
	ASSERT_OK(sto_comments_watermark(s, "firebase", &v));
	ASSERT_EQ(v, 0);
	ASSERT_OK(
	    sto_comments_set_watermark(s, "firebase", 12345, on_wm, NULL));
	wait_done(s, 1);
	ASSERT_EQ(wm_status, PL_OK);
	sto_comments_close(s);
	s = open_store("n1", NULL);
	ASSERT_OK(sto_comments_watermark(s, "firebase", &v));
	ASSERT_EQ(v, 12345);
	ASSERT_EQ(sto_comments_watermark(s, "", &v), PL_EINVAL);
	sto_comments_close(s);
	teardown();
}

TEST_LIST{
	TEST_ENTRY(test_map_growth),
	TEST_ENTRY(test_map_max_fails_cleanly),
	TEST_ENTRY(test_corrupt_open_fails),
	TEST_ENTRY(test_truncated_open_fails),
	TEST_ENTRY(test_unknown_format_version),
	TEST_ENTRY(test_stale_lock_after_kill),
	TEST_ENTRY(test_replica_idempotent),
	TEST_ENTRY(test_origin_iteration),
	TEST_ENTRY(test_watermark),
};

TEST_MAIN()
