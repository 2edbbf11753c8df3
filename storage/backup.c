/* SPDX-License-Identifier: Apache-2.0 */
/* Online backup (see backup.h): one thread per copy, coordinated with the
 * writer's map resizes through the store's backup count. */
#include "storage/backup.h"

#include "common/err.h"
#include "common/log.h"
#include "storage/comments_int.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sto_backup {
	sto_comments *s;
	int fd;
	int rc; /* MDB or errno code of the copy */
	pthread_t thread;
};

static void *
copy_main(void *arg)
{
	sto_backup *b = arg;
	sto_comments *s = b->s;

	/* The read txn inside the copy must not meet a resize (the count
	 * taken in start keeps the writer from starting one), and the
	 * maplock's shared side is what every reader holds. */
	pthread_rwlock_rdlock(&s->maplock);
	b->rc = mdb_env_copyfd2(s->env, b->fd, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&s->maplock);
	close(b->fd);
	b->fd = -1;
	pthread_mutex_lock(&s->mu);
	s->backups--;
	pthread_cond_broadcast(&s->backup_cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
sto_backup_start(sto_comments *s, int fd, sto_backup **out)
{
	sto_backup *b = calloc(1, sizeof(*b));
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (b == NULL) {
		close(fd);
		return PL_ENOMEM;
	}
	pthread_mutex_lock(&s->mu);
	if (s->backups > 0) {
		pthread_mutex_unlock(&s->mu);
		free(b);
		close(fd);
		return PL_EAGAIN;
	}
	s->backups++;
	pthread_mutex_unlock(&s->mu);
	b->s = s;
	b->fd = fd;
	/* Signals belong to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&b->thread, NULL, copy_main, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_mutex_lock(&s->mu);
		s->backups--;
		pthread_cond_broadcast(&s->backup_cv);
		pthread_mutex_unlock(&s->mu);
		close(fd);
		free(b);
		return PL_EIO;
	}
	*out = b;
	return PL_OK;
}

int
sto_backup_finish(sto_backup *b)
{
	int rc;

	if (b == NULL) {
		return PL_OK;
	}
	pthread_join(b->thread, NULL);
	rc = b->rc;
	if (rc != 0) {
		LOG_WARN(
		    "STO-BACKUP", "backup copy failed: %s", mdb_strerror(rc));
	}
	free(b);
	return rc == 0 ? PL_OK : PL_EIO;
}

int
sto_backup_verify(
    const char *path, uint64_t *comments, char *err, size_t errlen)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_stat st;
	int rc;

	*comments = 0;
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, 4)) != 0 ||
	    (rc = mdb_env_open(
		 env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "comments", 0, &dbi)) != 0 ||
	    (rc = mdb_stat(txn, dbi, &st)) != 0) {
		snprintf(err, errlen, "%s: %s", path, mdb_strerror(rc));
		if (txn) {
			mdb_txn_abort(txn);
		}
		if (env) {
			mdb_env_close(env);
		}
		return rc == MDB_INVALID || rc == MDB_NOTFOUND ||
			rc == MDB_VERSION_MISMATCH
		    ? PL_ECORRUPT
		    : PL_EIO;
	}
	*comments = st.ms_entries;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return PL_OK;
}
