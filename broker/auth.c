/* SPDX-License-Identifier: Apache-2.0 */
/* HS256 JWT verification and minting for client tokens, and the secret they
 * are signed with (flag, environment, or generated once into the data dir).
 * Verification is deliberately strict: one algorithm, canonical unpadded
 * base64url, duplicate JSON keys refused, size capped before any work. */
#include "broker/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"

#define SIG_LEN 32     /* HMAC-SHA256 output */
#define SIG_B64_LEN 43 /* its unpadded base64url length */
#define SECRET_GEN_BYTES 32
#define SECRET_FILE_MAX 4096
#define SECRET_FILE_NAME "jwt_secret"

/* base64url of {"alg":"HS256","typ":"JWT"}, the only header we mint. */
static const char mint_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* ---- JWT ---- */

static bool
hmac_sha256(const uint8_t *key, size_t keylen, const char *data, size_t n,
    uint8_t out[SIG_LEN])
{
	unsigned int mdlen = 0;

	if (keylen > INT32_MAX) {
		return false;
	}
	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, n,
		out, &mdlen) == NULL ||
	    mdlen != SIG_LEN) {
		return false;
	}
	return true;
}

/* A valid `sub`: non-empty, bounded, no control characters (which would
 * end up in logs and topic names) and no embedded NUL. */
static bool
sub_ok(const char *s, size_t n)
{
	if (n == 0 || n > BRK_AUTH_SUB_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			return false;
		}
	}
	return true;
}

/* Parses decoded bytes as a JSON object; NULL if they are not one.
 * Duplicate keys are refused so no two parsers can disagree on a claim. */
static json_t *
parse_object(const uint8_t *buf, size_t len)
{
	json_t *j =
	    json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);

	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool
header_alg_ok(json_t *hdr)
{
	json_t *alg = json_object_get(hdr, "alg");

	return json_is_string(alg) && json_string_length(alg) == 5 &&
	    memcmp(json_string_value(alg), "HS256", 5) == 0;
}

static bool
header_rest_ok(json_t *hdr)
{
	json_t *typ = json_object_get(hdr, "typ");

	/* "crit" names extensions the verifier must understand; we know none. */
	if (json_object_get(hdr, "crit") != NULL) {
		return false;
	}
	if (typ == NULL) {
		return true;
	}
	return json_is_string(typ) && json_string_length(typ) == 3 &&
	    strcasecmp(json_string_value(typ), "JWT") == 0;
}

/* Compares a JSON number with `now`: <0, 0, >0 as the number is below,
 * equal to or above it. */
static int
cmp_number(json_t *num, int64_t now)
{
	if (json_is_integer(num)) {
		json_int_t v = json_integer_value(num);
		return v < now ? -1 : (v > now ? 1 : 0);
	}
	double d = json_real_value(num);
	double n = (double)now;
	return d < n ? -1 : (d > n ? 1 : 0);
}

int
brk_auth_verify(const uint8_t *secret, size_t secret_len, const char *token,
    int64_t now, char **user_out, const char **why)
{
	const char *reason = "malformed";
	const char *d1, *d2;
	size_t tlen, hlen, plen, slen, len = 0, siglen = 0;
	uint8_t *buf = NULL, *sig;
	uint8_t mac[SIG_LEN];
	json_t *hdr = NULL, *pl = NULL, *sub, *exp, *nbf;
	int rc = PL_EAUTH;

	if (why != NULL) {
		*why = NULL;
	}
	if (user_out != NULL) {
		*user_out = NULL;
	}
	if (secret == NULL || secret_len == 0 || token == NULL ||
	    user_out == NULL) {
		return PL_EINVAL;
	}
	tlen = strnlen(token, BRK_AUTH_TOKEN_MAX + 1);
	if (tlen > BRK_AUTH_TOKEN_MAX) {
		reason = "too_long";
		goto fail;
	}
	d1 = memchr(token, '.', tlen);
	if (d1 == NULL) {
		goto fail;
	}
	d2 = memchr(d1 + 1, '.', tlen - (size_t)(d1 + 1 - token));
	if (d2 == NULL ||
	    memchr(d2 + 1, '.', tlen - (size_t)(d2 + 1 - token))) {
		goto fail;
	}
	hlen = (size_t)(d1 - token);
	plen = (size_t)(d2 - d1 - 1);
	slen = tlen - (size_t)(d2 + 1 - token);

	/* The decoded segments together are shorter than the token. */
	buf = malloc(tlen + 8);
	if (buf == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	if (hlen == 0 || !pl_b64url_decode(token, hlen, buf, &len)) {
		goto fail;
	}
	hdr = parse_object(buf, len);
	if (hdr == NULL || !header_rest_ok(hdr)) {
		goto fail;
	}
	if (!header_alg_ok(hdr)) {
		reason = "alg_not_allowed";
		goto fail;
	}
	/* Decode (but do not parse) the payload now so encoding errors are
	 * reported as such; only a signed payload gets parsed. */
	if (plen == 0 || !pl_b64url_decode(d1 + 1, plen, buf, &len)) {
		goto fail;
	}
	sig = buf + len;
	if (!pl_b64url_decode(d2 + 1, slen, sig, &siglen)) {
		goto fail;
	}
	if (siglen != SIG_LEN) {
		reason = "bad_signature";
		goto fail;
	}
	if (!hmac_sha256(
		secret, secret_len, token, (size_t)(d2 - token), mac)) {
		rc = PL_ENOMEM;
		goto fail;
	}
	if (CRYPTO_memcmp(mac, sig, SIG_LEN) != 0) {
		reason = "bad_signature";
		goto fail;
	}
	pl = parse_object(buf, len);
	if (pl == NULL) {
		goto fail;
	}
	sub = json_object_get(pl, "sub");
	if (sub == NULL ||
	    (json_is_string(sub) && json_string_length(sub) == 0)) {
		reason = "missing_sub";
		goto fail;
	}
	if (!json_is_string(sub) ||
	    !sub_ok(json_string_value(sub), json_string_length(sub))) {
		reason = "bad_sub";
		goto fail;
	}
	exp = json_object_get(pl, "exp");
	if (exp == NULL) {
		reason = "missing_exp";
		goto fail;
	}
	if (!json_is_number(exp)) {
		goto fail;
	}
	if (cmp_number(exp, now) <= 0) {
		reason = "expired";
		goto fail;
	}
	nbf = json_object_get(pl, "nbf");
	if (nbf != NULL) {
		if (!json_is_number(nbf)) {
			goto fail;
		}
		if (cmp_number(nbf, now) > 0) {
			reason = "not_yet_valid";
			goto fail;
		}
	}
	*user_out = strndup(json_string_value(sub), json_string_length(sub));
	if (*user_out == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	rc = PL_OK;
	reason = NULL;

fail:
	if (why != NULL && rc == PL_EAUTH) {
		*why = reason;
	}
	json_decref(pl);
	json_decref(hdr);
	free(buf);
	return rc;
}

char *
brk_auth_mint(const uint8_t *secret, size_t len, const char *user, int64_t exp)
{
	json_t *pl = NULL;
	char *pjson = NULL, *tok = NULL;
	size_t hb = sizeof(mint_header) - 1, pjlen, pb, o;
	uint8_t mac[SIG_LEN];

	if (secret == NULL || len == 0 || user == NULL ||
	    !sub_ok(user, strlen(user))) {
		return NULL;
	}
	pl = json_pack("{s:s, s:I}", "sub", user, "exp", (json_int_t)exp);
	if (pl == NULL) {
		goto fail;
	}
	pjson = json_dumps(pl, JSON_COMPACT);
	if (pjson == NULL) {
		goto fail;
	}
	pjlen = strlen(pjson);
	pb = pl_b64_encoded_len(pjlen);
	tok = malloc(hb + 1 + pb + 1 + SIG_B64_LEN + 1);
	if (tok == NULL) {
		goto fail;
	}
	memcpy(tok, mint_header, hb);
	o = hb;
	tok[o++] = '.';
	o += pl_b64url_encode((const uint8_t *)pjson, pjlen, tok + o);
	if (!hmac_sha256(secret, len, tok, o, mac)) {
		free(tok);
		tok = NULL;
		goto fail;
	}
	tok[o++] = '.';
	o += pl_b64url_encode(mac, SIG_LEN, tok + o);
	tok[o] = '\0';

fail:
	free(pjson);
	json_decref(pl);
	return tok;
}

/* ---- secret file ---- */

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

/* Reads the secret file into a fresh buffer with trailing whitespace
 * trimmed. PL_ENOTFOUND if the file does not exist. */
static int
read_secret(
    const char *path, uint8_t **secret, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t n = 0;
	int fd, rc = PL_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			return PL_ENOTFOUND;
		}
		set_err(err, errlen, "open %s: %s", path, strerror(errno));
		return PL_EIO;
	}
	if (fstat(fd, &st) != 0) {
		set_err(err, errlen, "stat %s: %s", path, strerror(errno));
		rc = PL_EIO;
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		LOG_WARN("BRK-SECRETPERM",
		    "%s is readable by group or others "
		    "(mode %03o)",
		    path, (unsigned)(st.st_mode & 0777));
	}
	buf = malloc(SECRET_FILE_MAX + 1);
	if (buf == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	while (n <= SECRET_FILE_MAX) {
		ssize_t r = read(fd, buf + n, SECRET_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			set_err(
			    err, errlen, "read %s: %s", path, strerror(errno));
			rc = PL_EIO;
			goto fail;
		}
		if (r == 0) {
			break;
		}
		n += (size_t)r;
	}
	if (n > SECRET_FILE_MAX) {
		set_err(err, errlen, "%s is larger than %d bytes", path,
		    SECRET_FILE_MAX);
		rc = PL_EINVAL;
		goto fail;
	}
	while (n > 0 && isspace(buf[n - 1])) {
		n--;
	}
	if (n == 0) {
		set_err(err, errlen, "%s is empty", path);
		rc = PL_EINVAL;
		goto fail;
	}
	*secret = buf;
	*len = n;
	buf = NULL;

fail:
	free(buf);
	close(fd);
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

int
brk_auth_load_secret(const char *flag_value, const char *data_dir,
    uint8_t **secret, size_t *len, char *err, size_t errlen)
{
	char *path = NULL;
	int rc;

	if (secret == NULL || len == NULL) {
		set_err(err, errlen, "no output for the secret");
		return PL_EINVAL;
	}
	*secret = NULL;
	*len = 0;
	if (flag_value != NULL && flag_value[0] != '\0') {
		size_t n = strlen(flag_value);
		*secret = malloc(n);
		if (*secret == NULL) {
			return PL_ENOMEM;
		}
		memcpy(*secret, flag_value, n);
		*len = n;
		return PL_OK;
	}
	if (data_dir == NULL || data_dir[0] == '\0') {
		set_err(err, errlen, "no JWT secret and no data directory");
		return PL_EINVAL;
	}
	if (asprintf(&path, "%s/%s", data_dir, SECRET_FILE_NAME) < 0) {
		return PL_ENOMEM;
	}
	rc = read_secret(path, secret, len, err, errlen);
	if (rc != PL_ENOTFOUND) {
		goto done;
	}
	rc = mkdir_p(data_dir, err, errlen);
	if (rc != PL_OK) {
		goto done;
	}
	rc = create_secret(data_dir, path, err, errlen);
	if (rc != PL_OK) {
		goto done;
	}
	rc = read_secret(path, secret, len, err, errlen);
	if (rc == PL_ENOTFOUND) {
		set_err(err, errlen, "%s vanished after creation", path);
		rc = PL_EIO;
	}

done:
	free(path);
	return rc;
}
