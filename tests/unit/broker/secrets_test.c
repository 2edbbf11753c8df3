/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for broker/secrets: the secrets file format (comments, kids,
 * limits), rotation (every secret verifies, the first signs), the
 * fingerprint, the data-dir secret generated once (and never by a caller
 * that may not create), and processes racing to generate it. */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/secrets.h"
#include "common/err.h"
#include "tests/unit/test.h"

#define NOW 1700000000

/* The old single-secret loader's shape over brk_keyring_load, creating the
 * data-dir secret: the signing secret, copied. */
static int
load1(const char *value, const char *dir, uint8_t **s, size_t *len, char *err,
    size_t errlen)
{
	brk_secret_src src = { value, NULL, dir, true };
	brk_keyring *k = NULL;
	const brk_key *keys;
	size_t n;
	int rc = brk_keyring_load(&src, &k, err, errlen);

	*s = NULL;
	*len = 0;
	if (rc != PL_OK) {
		return rc;
	}
	keys = brk_keyring_keys(k, &n);
	*s = malloc(keys[0].len);
	memcpy(*s, keys[0].secret, keys[0].len);
	*len = keys[0].len;
	brk_keyring_destroy(k);
	return PL_OK;
}

static char tmpdir[64];

static void
rm_rf(const char *path)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	ASSERT_EQ(system(cmd), 0);
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}

static void
test_load_secret(void)
{
	char dir[128], file[160], err[256] = "";
	uint8_t *s1 = NULL, *s2 = NULL;
	size_t l1 = 0, l2 = 0;
	struct stat st;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/parley-auth-XXXXXX");
	ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
	/* Nested and missing: both levels get created. */
	snprintf(dir, sizeof(dir), "%s/a/data", tmpdir);
	snprintf(file, sizeof(file), "%s/jwt_secret", dir);

	ASSERT_OK(load1(NULL, dir, &s1, &l1, err, sizeof(err)));
	ASSERT_EQ(l1, 64);
	for (size_t i = 0; i < l1; i++) {
		ASSERT_TRUE(strchr("0123456789abcdef", s1[i]) != NULL);
	}
	ASSERT_OK(stat(file, &st));
	ASSERT_EQ(st.st_mode & 0777, 0600);
	ASSERT_EQ(st.st_size, 64);
	ASSERT_OK(stat(dir, &st));
	ASSERT_EQ(st.st_mode & 0777, 0700);
	ASSERT_EQ(count_entries(dir), 1); /* no temp file left behind */

	/* Second load (and an empty flag) reuses the same secret. */
	ASSERT_OK(load1("", dir, &s2, &l2, err, sizeof(err)));
	ASSERT_EQ(l2, l1);
	ASSERT_MEMEQ(s1, s2, l1);
	free(s2);

	/* What one minted with it, the other verifies. */
	char *tok = brk_auth_mint(s1, l1, "u", NOW + 10);
	char *user = NULL;
	ASSERT_OK(load1(NULL, dir, &s2, &l2, err, sizeof(err)));
	ASSERT_OK(brk_auth_verify(s2, l2, tok, NOW, &user, NULL));
	ASSERT_STREQ(user, "u");
	free(user);
	free(tok);
	free(s2);
	free(s1);

	/* The flag wins and touches no file. */
	char dir2[128];
	snprintf(dir2, sizeof(dir2), "%s/b", tmpdir);
	ASSERT_OK(load1("flag-secret", dir2, &s1, &l1, err, sizeof(err)));
	ASSERT_EQ(l1, 11);
	ASSERT_MEMEQ(s1, "flag-secret", 11);
	free(s1);
	ASSERT_TRUE(stat(dir2, &st) != 0);
	ASSERT_OK(load1("flag-secret", NULL, &s1, &l1, err, sizeof(err)));
	free(s1);

	/* An operator-written file: trailing newline ignored. */
	FILE *f = fopen(file, "w");
	ASSERT_TRUE(f != NULL);
	fputs("hand made secret\n", f);
	fclose(f);
	ASSERT_OK(load1(NULL, dir, &s1, &l1, err, sizeof(err)));
	ASSERT_EQ(l1, 16);
	ASSERT_MEMEQ(s1, "hand made secret", 16);
	free(s1);

	/* An empty file is an error, not an empty key. */
	f = fopen(file, "w");
	ASSERT_TRUE(f != NULL);
	fputs("\n", f);
	fclose(f);
	s1 = (uint8_t *)"x";
	ASSERT_EQ(load1(NULL, dir, &s1, &l1, err, sizeof(err)), PL_EINVAL);
	ASSERT_TRUE(s1 == NULL);
	ASSERT_TRUE(strstr(err, "empty") != NULL);

	/* No flag and no data dir. */
	ASSERT_EQ(load1(NULL, NULL, &s1, &l1, err, sizeof(err)), PL_EINVAL);
	/* A data dir that cannot be created. */
	char dir3[200];
	snprintf(dir3, sizeof(dir3), "%s/data", file);
	ASSERT_EQ(load1(NULL, dir3, &s1, &l1, err, sizeof(err)), PL_EIO);

	rm_rf(tmpdir);
}

/* Processes racing to create the secret all end up with the same one:
 * publication never replaces a file another process published. */
static void
test_load_secret_race(void)
{
	enum { KIDS = 6 };
	char dir[128], got[KIDS][65];
	int fds[KIDS][2];
	pid_t pids[KIDS];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/parley-auth-XXXXXX");
	ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
	snprintf(dir, sizeof(dir), "%s/data", tmpdir);
	for (int i = 0; i < KIDS; i++) {
		ASSERT_OK(pipe(fds[i]));
		pids[i] = fork();
		ASSERT_TRUE(pids[i] >= 0);
		if (pids[i] == 0) {
			uint8_t *sec = NULL;
			size_t len = 0;
			int ok =
			    load1(NULL, dir, &sec, &len, NULL, 0) == PL_OK &&
			    len == 64 && write(fds[i][1], sec, 64) == 64;
			_exit(ok ? 0 : 1);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < KIDS; i++) {
		int status = 0;
		ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		ASSERT_EQ(read(fds[i][0], got[i], 64), 64);
		got[i][64] = '\0';
		close(fds[i][0]);
	}
	for (int i = 1; i < KIDS; i++) {
		ASSERT_STREQ(got[i], got[0]);
	}
	ASSERT_EQ(count_entries(dir), 1);
	rm_rf(tmpdir);
}

static void
test_parse_format(void)
{
	const char *text = "# rotation in progress\n"
			   "  kid=2024b   new-secret  \n"
			   "\n"
			   "old-secret\n"
			   "kid=x y z\n";
	brk_keyring *k = NULL;
	const brk_key *keys;
	size_t n;
	char err[256];

	ASSERT_OK(
	    brk_keyring_parse(text, strlen(text), "f", &k, err, sizeof(err)));
	keys = brk_keyring_keys(k, &n);
	ASSERT_EQ(n, 3);
	ASSERT_STREQ(keys[0].kid, "2024b");
	ASSERT_EQ(keys[0].len, 10);
	ASSERT_MEMEQ(keys[0].secret, "new-secret", 10);
	ASSERT_TRUE(keys[1].kid == NULL);
	ASSERT_MEMEQ(keys[1].secret, "old-secret", 10);
	/* The secret is the rest of the line, inner spaces included. */
	ASSERT_STREQ(keys[2].kid, "x");
	ASSERT_EQ(keys[2].len, 3);
	ASSERT_MEMEQ(keys[2].secret, "y z", 3);
	brk_keyring_destroy(k);

	static const char *bad[] = {
		"# only a comment\n\n",
		"kid=\n",
		"kid=abc\n",
		"kid=a s1\nkid=a s2\n",
		"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k = (brk_keyring *)1;
		ASSERT_EQ(brk_keyring_parse(bad[i], strlen(bad[i]), "f", &k,
			      err, sizeof(err)),
		    PL_EINVAL);
		ASSERT_TRUE(k == NULL);
		ASSERT_TRUE(strstr(err, "f") != NULL);
	}
	ASSERT_EQ(
	    brk_keyring_parse("a\0b", 3, "f", &k, err, sizeof(err)), PL_EINVAL);
}

/* Rotation: tokens signed with any secret of the ring verify; minting
 * uses the first. */
static void
test_rotation(void)
{
	const char *old_ring = "s-old\n";
	const char *new_ring = "s-new\ns-old\n";
	brk_keyring *ko, *kn;
	const brk_key *ok, *nk;
	size_t no, nn;
	char err[256], *user = NULL;
	char *t_old, *t_new;

	ASSERT_OK(brk_keyring_parse(
	    old_ring, strlen(old_ring), "o", &ko, err, sizeof(err)));
	ASSERT_OK(brk_keyring_parse(
	    new_ring, strlen(new_ring), "n", &kn, err, sizeof(err)));
	ok = brk_keyring_keys(ko, &no);
	nk = brk_keyring_keys(kn, &nn);
	t_old = brk_auth_mint_key(&ok[0], "u", NOW + 60);
	t_new = brk_auth_mint_key(&nk[0], "u", NOW + 60);
	/* A node with the new ring accepts both... */
	ASSERT_OK(brk_auth_verify_keys(nk, nn, t_old, NOW, &user, NULL));
	free(user);
	ASSERT_OK(brk_auth_verify_keys(nk, nn, t_new, NOW, &user, NULL));
	free(user);
	/* ...one still on the old ring refuses what the new one signs. */
	ASSERT_EQ(
	    brk_auth_verify_keys(ok, no, t_new, NOW, &user, NULL), PL_EAUTH);
	free(t_old);
	free(t_new);
	brk_keyring_destroy(ko);
	brk_keyring_destroy(kn);
}

static void
test_fingerprint(void)
{
	brk_keyring *a, *b, *c;
	char fa[BRK_FINGERPRINT_LEN + 1], fb[BRK_FINGERPRINT_LEN + 1],
	    fc[BRK_FINGERPRINT_LEN + 1], err[128];

	ASSERT_OK(brk_keyring_parse("one\ntwo", 7, "a", &a, err, sizeof(err)));
	ASSERT_OK(brk_keyring_parse("one", 3, "b", &b, err, sizeof(err)));
	ASSERT_OK(brk_keyring_parse("two\none", 7, "c", &c, err, sizeof(err)));
	brk_keyring_fingerprint(a, fa);
	brk_keyring_fingerprint(b, fb);
	brk_keyring_fingerprint(c, fc);
	/* Only the signing secret counts. */
	ASSERT_STREQ(fa, fb);
	ASSERT_TRUE(strcmp(fa, fc) != 0);
	ASSERT_EQ(strlen(fa), BRK_FINGERPRINT_LEN);
	ASSERT_TRUE(strstr(fa, "one") == NULL);
	brk_keyring_destroy(a);
	brk_keyring_destroy(b);
	brk_keyring_destroy(c);
}

/* `parley token` must not create anything: no data dir, no secret. */
static void
test_no_create(void)
{
	char dir[128], err[512] = "";
	brk_secret_src src = { NULL, NULL, dir, false };
	brk_keyring *k = (brk_keyring *)1;
	struct stat st;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/parley-auth-XXXXXX");
	ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
	snprintf(dir, sizeof(dir), "%s/nonexistent", tmpdir);
	ASSERT_EQ(brk_keyring_load(&src, &k, err, sizeof(err)), PL_ENOTFOUND);
	ASSERT_TRUE(k == NULL);
	ASSERT_TRUE(stat(dir, &st) != 0);
	ASSERT_TRUE(strstr(err, "jwt_secret") != NULL);
	ASSERT_TRUE(strstr(err, "--jwt-secret-file") != NULL);

	/* A secrets file, and the flag/file clash. */
	char file[160];
	snprintf(file, sizeof(file), "%s/keys", tmpdir);
	FILE *f = fopen(file, "w");
	ASSERT_TRUE(f != NULL);
	fputs("kid=k1 abc\n", f);
	fclose(f);
	chmod(file, 0600);
	src.file = file;
	ASSERT_OK(brk_keyring_load(&src, &k, err, sizeof(err)));
	ASSERT_STREQ(brk_keyring_origin(k), file);
	brk_keyring_destroy(k);
	src.value = "flag";
	ASSERT_EQ(brk_keyring_load(&src, &k, err, sizeof(err)), PL_EINVAL);
	ASSERT_TRUE(strstr(err, "not both") != NULL);
	/* A missing file is an error, never a fallback to the data dir. */
	src.value = NULL;
	snprintf(file, sizeof(file), "%s/missing", tmpdir);
	ASSERT_EQ(brk_keyring_load(&src, &k, err, sizeof(err)), PL_ENOTFOUND);
	rm_rf(tmpdir);
}

TEST_LIST{
	TEST_ENTRY(test_parse_format),
	TEST_ENTRY(test_rotation),
	TEST_ENTRY(test_fingerprint),
	TEST_ENTRY(test_no_create),
	TEST_ENTRY(test_load_secret),
	TEST_ENTRY(test_load_secret_race),
};
TEST_MAIN()
