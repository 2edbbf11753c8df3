/* SPDX-License-Identifier: Apache-2.0 */
/* Online backup of the comment store: LMDB's own copy function
 * (mdb_env_copyfd2 with MDB_CP_COMPACT) writes a consistent, compacted
 * snapshot to a descriptor from a thread of its own, so the loop only
 * reads the other end of a pipe. The snapshot is one read transaction:
 * writes go on meanwhile; a map resize waits until the copy ends (see
 * comments_int.h). The copy is a complete data.mdb: restore by putting it
 * at <data>/data.mdb while the node is stopped. */
#ifndef PARLEY_STORAGE_BACKUP_H
#define PARLEY_STORAGE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sto_comments sto_comments;
typedef struct sto_backup sto_backup;

/* Starts a copy into fd, which the backup takes over and closes when the
 * copy ends (the reader then sees end of file). Loop thread; never blocks.
 * Returns PL_OK and *out; PL_EAGAIN while another backup of s runs;
 * PL_EIO or PL_ENOMEM (fd closed then too). */
int sto_backup_start(sto_comments *s, int fd, sto_backup **out);

/* Waits for the copy thread and frees b; returns the copy's result:
 * PL_OK, or PL_EIO (a write failed, e.g. the reader went away: close the
 * reading end first to abort a copy). Call after the reader saw end of
 * file (returns at once), or to abort; always before closing s. */
int sto_backup_finish(sto_backup *b);

/* Opens a backup file read-only (nothing written next to it) and counts
 * its comments: proof that the copy is a usable store. Returns PL_OK,
 * PL_ECORRUPT or PL_EIO with a message in err. */
int sto_backup_verify(
    const char *path, uint64_t *comments, char *err, size_t errlen);

#endif
