/* SPDX-License-Identifier: Apache-2.0 */
/* parley-seed-store DIR ORIGIN: appends comments to the store in DIR as if
 * node ORIGIN had accepted them, one per stdin line, a JSON array
 * [video_id, user_id, content], and prints each stored comment as a JSON
 * line {"id", "video_id", "inserted_at", "seq"}. For the end-to-end tests
 * that need data no client may post any more (video ids from before the
 * join rules), written through the store's own API. */
#include "common/err.h"
#include "storage/comments.h"

#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int done, failed;

static void
on_done(void *arg, int status, const sto_comment *c)
{
	json_t *o;
	char *s;

	(void)arg;
	done++;
	if (status != PL_OK) {
		failed++;
		return;
	}
	o = json_pack("{s:s, s:s, s:I, s:I}", "id", c->id, "video_id",
	    c->video_id, "inserted_at", (json_int_t)c->inserted_at, "seq",
	    (json_int_t)c->seq);
	s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

int
main(int argc, char **argv)
{
	sto_comments_opts o;
	sto_comments *s = NULL;
	char err[256], line[70000];
	int sent = 0;

	if (argc != 3) {
		fprintf(
		    stderr, "usage: parley-seed-store DIR ORIGIN < lines\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.node = argv[2];
	if (sto_comments_open(&s, argv[1], &o, err, sizeof(err)) != PL_OK) {
		fprintf(stderr, "seed-store: %s\n", err);
		return 1;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		json_t *v = json_loads(line, JSON_ALLOW_NUL, NULL);
		sto_comment_in c = { json_string_value(json_array_get(v, 0)),
			json_string_value(json_array_get(v, 1)),
			json_string_value(json_array_get(v, 2)) };
		if (c.video_id == NULL || c.user_id == NULL ||
		    c.content == NULL ||
		    sto_comments_append(s, &c, on_done, NULL, NULL) != PL_OK) {
			fprintf(stderr, "seed-store: refused: %s", line);
			failed++;
		} else {
			sent++;
		}
		json_decref(v);
	}
	while (done < sent) {
		struct pollfd p = { sto_comments_notify_fd(s), POLLIN, 0 };
		poll(&p, 1, 1000);
		sto_comments_poll(s);
	}
	sto_comments_close(s);
	return failed ? 1 : 0;
}
