/* SPDX-License-Identifier: Apache-2.0 */
/* Reading small files whole: secrets (JWT keys, the admin token, the
 * Firebase token), which are re-read on SIGHUP. One helper, so every
 * secret file gets the same size cap, trimming and permission check. */
#ifndef PARLEY_COMMON_FILE_H
#define PARLEY_COMMON_FILE_H

#include <stddef.h>

/* Reads path whole into a malloc'ed, NUL-terminated buffer (*out, length
 * *len) with trailing white space removed. A file larger than max bytes is
 * refused. When the file is readable by others and warn_id is not NULL,
 * logs a warning with that ID (group access is allowed: Kubernetes mounts
 * secrets group-readable for the pod's fsGroup).
 * Returns PL_OK; PL_ENOTFOUND when path does not exist; PL_ETOOBIG;
 * PL_EINVAL when it is empty after trimming; PL_EIO; PL_ENOMEM. On error
 * *out is NULL and err holds a message naming the file. */
int pl_file_read_secret(const char *path, size_t max, const char *warn_id,
    char **out, size_t *len, char *err, size_t errlen);

#endif
