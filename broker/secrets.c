/* SPDX-License-Identifier: Apache-2.0 */
/* The JWT keyring (see secrets.h): parsing the secrets file format,
 * loading from flag, file or data dir, generating the data-dir secret
 * once, and the fingerprint nodes compare. */
#include "broker/secrets.h"

#include "common/err.h"
#include "common/file.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SECRET_GEN_BYTES 32
#define SECRET_FILE_NAME "jwt_secret"
#define FINGERPRINT_LABEL "parley jwt secret fingerprint v1"

struct brk_keyring {
	brk_key keys[BRK_KEYRING_MAX];
	size_t n;
	char *origin;
	char *text; /* one allocation the keys point into */
};

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* mkdir -p; directories it creates get mode 0700, existing ones are left
 * alone. */
static int
mkdir_p(const char *dir, char *err, size_t errlen)
{
	char *p = strdup(dir);
	int rc = PL_OK;

	if (p == NULL) {
		return PL_ENOMEM;
	}
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0') {
			continue;
		}
		char save = *s;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			set_err(
			    err, errlen, "mkdir %s: %s", p, strerror(errno));
			rc = PL_EIO;
			break;
		}
		*s = save;
		if (save == '\0') {
			break;
		}
	}
	free(p);
	return rc;
}

static bool
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Generates a hex secret into a temporary file, then publishes it with
 * link(), which unlike rename() never replaces a secret another process
 * published meanwhile; either way the caller re-reads the published file. */
static int
create_secret(const char *dir, const char *path, char *err, size_t errlen)
{
	uint8_t raw[SECRET_GEN_BYTES];
	char hex[SECRET_GEN_BYTES * 2];
	char *tmp = NULL;
	int fd = -1, dfd, rc = PL_OK;

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		set_err(err, errlen, "RAND_bytes failed");
		return PL_EIO;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		hex[2 * i] = "0123456789abcdef"[raw[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	if (asprintf(&tmp, "%s/.%s.tmp.%ld", dir, SECRET_FILE_NAME,
		(long)getpid()) < 0) {
		tmp = NULL;
		rc = PL_ENOMEM;
		goto fail;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* Left behind by a crashed process that had our pid. */
		unlink(tmp);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		set_err(err, errlen, "create %s: %s", tmp, strerror(errno));
		rc = PL_EIO;
		goto fail;
	}
	/* The umask can only remove bits; this makes 0600 exact. */
	if (fchmod(fd, 0600) != 0 || !write_all(fd, hex, sizeof(hex)) ||
	    fsync(fd) != 0) {
		set_err(err, errlen, "write %s: %s", tmp, strerror(errno));
		rc = PL_EIO;
		goto fail_unlink;
	}
	if (close(fd) != 0) {
		fd = -1;
		set_err(err, errlen, "close %s: %s", tmp, strerror(errno));
		rc = PL_EIO;
		goto fail_unlink;
	}
	fd = -1;
	if (link(tmp, path) != 0) {
		if (errno == EEXIST) {
			/* Another process won the race; the caller reads its secret. */
			goto fail_unlink;
		}
		/* Filesystems without hard links: fall back to rename. */
		if (rename(tmp, path) != 0) {
			set_err(err, errlen, "publish %s: %s", path,
			    strerror(errno));
			rc = PL_EIO;
			goto fail_unlink;
		}
	}
	LOG_INFO("BRK-SECRETGEN", "generated a new JWT secret in %s", path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}

fail_unlink:
	unlink(tmp);
fail:
	if (fd >= 0) {
		close(fd);
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	free(tmp);
	return rc;
}

/* ---- parsing ---- */

void
brk_keyring_destroy(brk_keyring *k)
{
	if (k == NULL) {
		return;
	}
	if (k->text) {
		OPENSSL_cleanse(k->text, strlen(k->text));
	}
	free(k->text);
	free(k->origin);
	free(k);
}

static bool
kid_ok(const char *s, size_t n)
{
	if (n == 0 || n > BRK_AUTH_KID_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isgraph((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/* Parses one trimmed, NUL-terminated line into k->keys[k->n]. */
static int
parse_line(brk_keyring *k, char *line, size_t lineno, char *err, size_t errlen)
{
	brk_key *key = &k->keys[k->n];
	char *sp;

	if (k->n == BRK_KEYRING_MAX) {
		set_err(err, errlen, "%s: more than %d secrets", k->origin,
		    BRK_KEYRING_MAX);
		return PL_EINVAL;
	}
	key->kid = NULL;
	if (strncmp(line, "kid=", 4) == 0) {
		sp = line + 4 + strcspn(line + 4, " \t");
		if (*sp == '\0' || !kid_ok(line + 4, (size_t)(sp - line - 4))) {
			set_err(err, errlen,
			    "%s line %zu: expected \"kid=ID SECRET\" with an "
			    "ID of 1..%d printable characters",
			    k->origin, lineno, BRK_AUTH_KID_MAX);
			return PL_EINVAL;
		}
		*sp++ = '\0';
		key->kid = line + 4;
		line = sp + strspn(sp, " \t");
		for (size_t i = 0; i < k->n; i++) {
			if (k->keys[i].kid &&
			    strcmp(k->keys[i].kid, key->kid) == 0) {
				set_err(err, errlen,
				    "%s line %zu: kid %s twice", k->origin,
				    lineno, key->kid);
				return PL_EINVAL;
			}
		}
	}
	key->secret = (const uint8_t *)line;
	key->len = strlen(line);
	k->n++;
	return PL_OK;
}

int
brk_keyring_parse(const char *text, size_t len, const char *origin,
    brk_keyring **out, char *err, size_t errlen)
{
	brk_keyring *k = calloc(1, sizeof(*k));
	char *line, *next;
	size_t lineno = 0;
	int rc = PL_OK;

	*out = NULL;
	if (k == NULL || (k->origin = strdup(origin)) == NULL ||
	    (k->text = malloc(len + 1)) == NULL) {
		brk_keyring_destroy(k);
		return PL_ENOMEM;
	}
	memcpy(k->text, text, len);
	k->text[len] = '\0';
	if (strlen(k->text) != len) {
		set_err(err, errlen, "%s holds a NUL byte", origin);
		rc = PL_EINVAL;
		goto done;
	}
	for (line = k->text; line != NULL && rc == PL_OK; line = next) {
		char *end;
		next = strchr(line, '\n');
		if (next) {
			*next++ = '\0';
		}
		lineno++;
		while (isspace((unsigned char)*line)) {
			line++;
		}
		end = line + strlen(line);
		while (end > line && isspace((unsigned char)end[-1])) {
			*--end = '\0';
		}
		if (*line == '\0' || *line == '#') {
			continue;
		}
		rc = parse_line(k, line, lineno, err, errlen);
	}
	if (rc == PL_OK && k->n == 0) {
		set_err(err, errlen, "%s holds no secret", origin);
		rc = PL_EINVAL;
	}
done:
	if (rc != PL_OK) {
		brk_keyring_destroy(k);
		return rc;
	}
	*out = k;
	return PL_OK;
}

/* A flag's value is one secret, byte for byte (no trimming, no kid). */
static int
single(const char *value, brk_keyring **out)
{
	brk_keyring *k = calloc(1, sizeof(*k));

	if (k == NULL || (k->origin = strdup("--jwt-secret")) == NULL ||
	    (k->text = strdup(value)) == NULL) {
		brk_keyring_destroy(k);
		return PL_ENOMEM;
	}
	k->keys[0].secret = (const uint8_t *)k->text;
	k->keys[0].len = strlen(k->text);
	k->n = 1;
	*out = k;
	return PL_OK;
}

const brk_key *
brk_keyring_keys(const brk_keyring *k, size_t *n)
{
	*n = k->n;
	return k->keys;
}

const char *
brk_keyring_origin(const brk_keyring *k)
{
	return k->origin;
}

void
brk_keyring_fingerprint(const brk_keyring *k, char out[BRK_FINGERPRINT_LEN + 1])
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (k->keys[0].len > INT32_MAX ||
	    HMAC(EVP_sha256(), k->keys[0].secret, (int)k->keys[0].len,
		(const unsigned char *)FINGERPRINT_LABEL,
		sizeof(FINGERPRINT_LABEL) - 1, mac, &n) == NULL ||
	    n < BRK_FINGERPRINT_LEN / 2) {
		return;
	}
	for (size_t i = 0; i < BRK_FINGERPRINT_LEN / 2; i++) {
		out[2 * i] = "0123456789abcdef"[mac[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[mac[i] & 15];
	}
	out[BRK_FINGERPRINT_LEN] = '\0';
}

/* ---- loading ---- */

static int
load_file(const char *path, brk_keyring **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc = pl_file_read_secret(path, BRK_SECRET_FILE_MAX,
	    "BRK-SECRETPERM", &text, &len, err, errlen);

	if (rc == PL_OK) {
		rc = brk_keyring_parse(text, len, path, out, err, errlen);
		OPENSSL_cleanse(text, len);
	}
	free(text);
	return rc;
}

int
brk_keyring_load(
    const brk_secret_src *src, brk_keyring **out, char *err, size_t errlen)
{
	char *path = NULL;
	struct stat st;
	int rc;

	*out = NULL;
	if (src->value && *src->value && src->file && *src->file) {
		set_err(err, errlen,
		    "give --jwt-secret or --jwt-secret-file, not both");
		return PL_EINVAL;
	}
	if (src->value && *src->value) {
		return single(src->value, out);
	}
	if (src->file && *src->file) {
		return load_file(src->file, out, err, errlen);
	}
	if (src->data_dir == NULL || *src->data_dir == '\0') {
		set_err(err, errlen, "no JWT secret and no data directory");
		return PL_EINVAL;
	}
	if (asprintf(&path, "%s/%s", src->data_dir, SECRET_FILE_NAME) < 0) {
		return PL_ENOMEM;
	}
	rc = load_file(path, out, err, errlen);
	if (rc != PL_ENOTFOUND) {
		goto done;
	}
	if (!src->create) {
		set_err(err, errlen,
		    "no JWT secret: %s %s; give --jwt-secret-file FILE "
		    "(or PARLEY_JWT_SECRET_FILE), --jwt-secret, "
		    "PARLEY_JWT_SECRET, or --data DIR of a node that has "
		    "generated one",
		    path,
		    stat(src->data_dir, &st) == 0
			? "does not exist"
			: "does not exist (nor its directory)");
		goto done;
	}
	rc = mkdir_p(src->data_dir, err, errlen);
	if (rc == PL_OK) {
		rc = create_secret(src->data_dir, path, err, errlen);
	}
	if (rc == PL_OK) {
		rc = load_file(path, out, err, errlen);
		if (rc == PL_ENOTFOUND) {
			set_err(
			    err, errlen, "%s vanished after creation", path);
			rc = PL_EIO;
		}
	}
done:
	free(path);
	return rc;
}
