/* SPDX-License-Identifier: Apache-2.0 */
#include "common/file.h"

#include "common/err.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
pl_file_read_secret(const char *path, size_t max, const char *warn_id,
    char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, rc = PL_OK;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(
		    err, errlen, "cannot open %s: %s", path, strerror(errno));
		return errno == ENOENT ? PL_ENOTFOUND : PL_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		rc = PL_EIO;
		goto done;
	}
	/* Group access is how Kubernetes (fsGroup) and ssl-cert style setups
	 * share a secret with one service; others never need it. */
	if (warn_id && (st.st_mode & 007) != 0) {
		LOG_WARN(warn_id,
		    "%s is readable by others (mode %03o); chmod o-rwx it",
		    path, (unsigned)(st.st_mode & 0777));
	}
	if ((buf = malloc(max + 2)) == NULL) {
		rc = PL_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	/* Reads one byte past max to tell "exactly max" from "larger". */
	while (n <= max) {
		ssize_t r = read(fd, buf + n, max + 1 - n);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			snprintf(err, errlen, "cannot read %s: %s", path,
			    strerror(errno));
			rc = PL_EIO;
			goto done;
		}
		if (r == 0) {
			break;
		}
		n += (size_t)r;
	}
	if (n > max) {
		snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
		rc = PL_ETOOBIG;
		goto done;
	}
	while (n > 0 && isspace((unsigned char)buf[n - 1])) {
		n--;
	}
	if (n == 0) {
		snprintf(err, errlen, "%s is empty", path);
		rc = PL_EINVAL;
		goto done;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
done:
	free(buf);
	close(fd);
	return rc;
}
