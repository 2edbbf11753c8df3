/* SPDX-License-Identifier: Apache-2.0 */
/* Fixture shared by the storage tests: a temp data dir, a store opened on
 * it, and completions recorded in the order they ran. Included (not linked)
 * by each test file: its helpers are static to that test. */
#ifndef PARLEY_TESTS_STORE_FIXTURE_H
#define PARLEY_TESTS_STORE_FIXTURE_H

#define MAXREC 8192

/* Completions, recorded in the order they ran. */
static struct {
	int n;
	int status[MAXREC];
	long arg[MAXREC];
	char id[MAXREC][STO_COMMENT_ID_LEN + 1];
	uint64_t seq[MAXREC];
	int off_thread; /* callbacks that ran off the main thread */
} R;
static int issued; /* appends made; the arg of each */
static pthread_t main_thread;
static char dir[64];

static void
on_done(void *arg, int status, const sto_comment *c)
{
	if (!pthread_equal(pthread_self(), main_thread)) {
		R.off_thread++;
	}
	if (R.n < MAXREC) {
		R.status[R.n] = status;
		R.arg[R.n] = (long)(intptr_t)arg;
		memcpy(R.id[R.n], c->id, sizeof(R.id[0]));
		R.seq[R.n] = c->seq;
	}
	R.n++;
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return (remove(p));
}

static void
setup(void)
{
	memset(&R, 0, sizeof(R));
	issued = 0;
	main_thread = pthread_self();
	snprintf(dir, sizeof(dir), "/tmp/sto_comments_test.XXXXXX");
	ASSERT_TRUE(mkdtemp(dir) != NULL);
}

static void
teardown(void)
{
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static sto_comments *
open_store(const char *node, sto_comments_opts *o)
{
	sto_comments_opts def = { 0 };
	sto_comments *s = NULL;
	char err[256];
	int rc;

	if (o == NULL) {
		o = &def;
	}
	o->node = node;
	rc = sto_comments_open(&s, dir, o, err, sizeof(err));
	if (rc != PL_OK) {
		fprintf(stderr, "  open: %s\n", err);
	}
	ASSERT_OK(rc);
	return (s);
}

/* Polls the store until `target` completions ran (or ~20 s passed). */
static void
wait_done(sto_comments *s, int target)
{
	struct pollfd pfd = { .fd = sto_comments_notify_fd(s),
		.events = POLLIN };

	for (int i = 0; R.n < target && i < 2000; i++) {
		poll(&pfd, 1, 10);
		sto_comments_poll(s);
	}
	ASSERT_EQ(R.n, target);
}

static void
append(sto_comments *s, const char *video, const char *user,
    const char *content, sto_assigned *a)
{
	sto_comment_in in = { video, user, content };

	ASSERT_OK(sto_comments_append(
	    s, &in, on_done, (void *)(intptr_t)issued++, a));
}

/* Appends n comments "c0".."c<n-1>" to video and waits for them. */
static void
fill(sto_comments *s, const char *video, int n, sto_assigned *ids)
{
	int base = R.n;
	char text[32];

	for (int i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "c%d", i);
		append(s, video, "u", text, ids != NULL ? &ids[i] : NULL);
	}
	wait_done(s, base + n);
	for (int i = base; i < base + n; i++) {
		ASSERT_EQ(R.status[i], PL_OK);
	}
}

#endif
