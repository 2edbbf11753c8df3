/* SPDX-License-Identifier: Apache-2.0 */
/* fill_store DIR ORIGIN COUNT VIDEOS: writes COUNT comments into the LMDB
 * store at DIR as origin ORIGIN (round robin over VIDEOS videos named
 * "fill0".."fillN-1", content "fill <i>"), through the store's own append
 * path, then closes it. Tests use it to give a node a large history without
 * posting it over WebSocket first. Prints the count written. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "storage/comments.h"

static long done_ok, done_bad;

static void
on_done(void *arg, int status, const sto_comment *c)
{
	(void)arg;
	(void)c;
	if (status == PL_OK) {
		done_ok++;
	} else {
		done_bad++;
	}
}

static void
drain(sto_comments *s, long want)
{
	struct pollfd p = { sto_comments_notify_fd(s), POLLIN, 0 };

	while (done_ok + done_bad < want) {
		poll(&p, 1, 100);
		sto_comments_poll(s);
	}
}

int
main(int argc, char **argv)
{
	sto_comments_opts o = { 0 };
	sto_comments *s;
	char err[256], video[32], content[64];
	long count, videos;

	if (argc != 5 || (count = atol(argv[3])) <= 0 ||
	    (videos = atol(argv[4])) <= 0) {
		fprintf(stderr, "usage: fill_store DIR ORIGIN COUNT VIDEOS\n");
		return 2;
	}
	o.node = argv[2];
	if (sto_comments_open(&s, argv[1], &o, err, sizeof(err)) != PL_OK) {
		fprintf(stderr, "fill_store: %s\n", err);
		return 1;
	}
	for (long i = 0; i < count; i++) {
		sto_comment_in in = { video, "filler", content };
		int rc;

		snprintf(video, sizeof(video), "fill%ld", i % videos);
		snprintf(content, sizeof(content), "fill %ld", i);
		while ((rc = sto_comments_append(
			    s, &in, on_done, NULL, NULL)) == PL_EAGAIN) {
			drain(s, i - 1000 > 0 ? i - 1000 : 0);
		}
		if (rc != PL_OK) {
			fprintf(stderr, "fill_store: append: %s\n",
			    pl_strerror(rc));
			sto_comments_close(s);
			return 1;
		}
	}
	drain(s, count);
	sto_comments_close(s);
	printf("%ld\n", done_ok);
	return done_bad ? 1 : 0;
}
