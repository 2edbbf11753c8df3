/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines in the three formats with awkward messages (quotes,
 * backslashes, newlines, control bytes) escaped so each stays one
 * parseable line; the log file reopened after a rename; levels parsed and
 * changed; a burst through one summarised site counted exactly. */
#include "common/log.h"
#include "tests/unit/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static char *
slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *buf = calloc(1, 1 << 16);
	size_t n;

	ASSERT_TRUE(f != NULL && buf != NULL);
	n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
setup(void)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/parley-log-XXXXXX");
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/parley.log", dir);
	ASSERT_OK(pl_log_open(path, err, sizeof(err)));
	pl_log_set_node("n\"1");
	pl_log_set_level(PL_LOG_INFO);
}

static void
teardown(void)
{
	char cmd[160];

	pl_log_close();
	pl_log_set_format("text");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ASSERT_EQ(system(cmd), 0);
}

static void
formats_escape(void)
{
	char *s;

	setup();
	ASSERT_OK(pl_log_set_format("json"));
	LOG_WARN("T-ONE", "say \"hi\" \\ now\nnext\x01 end");
	ASSERT_OK(pl_log_set_format("logfmt"));
	LOG_NOTICE("T-TWO", "a \"b\" c");
	ASSERT_OK(pl_log_set_format("text"));
	LOG_INFO("T-THREE", "plain");
	LOG_DEBUG("T-HIDDEN", "below the level");
	ASSERT_TRUE(pl_log_set_format("xml") != 0);
	s = slurp(path);
	ASSERT_TRUE(strstr(s, "{\"ts\":\"") == s);
	ASSERT_TRUE(strstr(s,
			"\",\"level\":\"warn\",\"node\":\"n\\\"1\","
			"\"id\":\"T-ONE\",\"msg\":\"say \\\"hi\\\" \\\\ "
			"now\\nnext\\u0001 end\"}\n") != NULL);
	ASSERT_TRUE(strstr(s,
			" level=notice node=\"n\\\"1\" id=T-TWO "
			"msg=\"a \\\"b\\\" c\"\n") != NULL);
	ASSERT_TRUE(strstr(s, " n\"1 info [T-THREE] plain\n") != NULL);
	ASSERT_TRUE(strstr(s, "T-HIDDEN") == NULL);
	/* Three lines, each ending once. */
	int lines = 0;
	for (char *p = s; *p; p++) {
		lines += *p == '\n';
	}
	ASSERT_EQ(lines, 3);
	free(s);
	teardown();
}

static void
reopen_after_rename(void)
{
	char moved[160], err[256], *a, *b;

	setup();
	LOG_INFO("T-OLD", "before rotation");
	snprintf(moved, sizeof(moved), "%s.1", path);
	ASSERT_OK(rename(path, moved));
	LOG_INFO("T-OLD", "still the old file");
	ASSERT_OK(pl_log_reopen(err, sizeof(err)));
	LOG_INFO("T-NEW", "after rotation");
	a = slurp(moved);
	b = slurp(path);
	ASSERT_TRUE(strstr(a, "before rotation") && strstr(a, "still the old"));
	ASSERT_TRUE(strstr(a, "after rotation") == NULL);
	ASSERT_TRUE(strstr(b, "after rotation") != NULL);
	free(a);
	free(b);
	/* A path that cannot be opened is an error with a message. */
	ASSERT_TRUE(
	    pl_log_open("/nonexistent-dir/x.log", err, sizeof(err)) != 0);
	ASSERT_TRUE(strstr(err, "/nonexistent-dir/x.log") != NULL);
	teardown();
}

static void
levels(void)
{
	ASSERT_EQ(pl_log_level_parse("debug"), PL_LOG_DEBUG);
	ASSERT_EQ(pl_log_level_parse("error"), PL_LOG_ERR);
	ASSERT_EQ(pl_log_level_parse("loud"), -1);
	ASSERT_EQ(pl_log_level_parse(NULL), -1);
	ASSERT_STREQ(pl_log_level_name(PL_LOG_WARN), "warn");
	pl_log_set_level(99); /* ignored */
	pl_log_set_level(PL_LOG_ERR);
	ASSERT_EQ(pl_log_level, PL_LOG_ERR);
	pl_log_set_level(PL_LOG_INFO);
}

static void
summary_counts(void)
{
	uint64_t before = pl_log_suppressed_total();
	char *s;
	int full = 0;

	setup();
	for (int i = 0; i < 50; i++) {
		LOG_SUMMARY(PL_LOG_INFO, "T-BURST", "refused %d", i);
	}
	/* The count is written once the second is over. */
	ASSERT_EQ(pl_log_flush_summaries(), 0);
	sleep(1);
	usleep(50000);
	ASSERT_EQ(pl_log_flush_summaries(), 49);
	ASSERT_EQ(pl_log_suppressed_total() - before, 49);
	s = slurp(path);
	for (char *p = s; (p = strstr(p, "[T-BURST] refused")); p++) {
		full++;
	}
	ASSERT_EQ(full, 1);
	ASSERT_TRUE(strstr(s,
			"[T-BURST] ... and 49 more like this in the "
			"last second") != NULL);
	free(s);
	teardown();
}

TEST_LIST{
	TEST_ENTRY(formats_escape),
	TEST_ENTRY(reopen_after_rename),
	TEST_ENTRY(levels),
	TEST_ENTRY(summary_counts),
};
TEST_MAIN()
