/* SPDX-License-Identifier: Apache-2.0 */
/* The write side of the comment store: open/close, the operation queue, and
 * the writer thread that commits each batch of queued operations in one
 * LMDB write transaction (group commit) and hands the completions back to
 * the loop thread through an eventfd. Queries are in comments_read.c. */
#include "storage/comments.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "storage/comments_int.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_BATCH_MAX 1024u
#define DEFAULT_QUEUE_MAX 65536u

enum op_kind { OP_APPEND, OP_REPLICA, OP_WATERMARK };

struct sto_op {
	sto_op *next;
	enum op_kind kind;
	int status;
	sto_append_cb cb;
	sto_done_cb done_cb;
	void *arg;
	sto_comment c; /* strings point into buf */
	int64_t id_ms; /* OP_APPEND: generator state after c.id */
	uint32_t id_counter;
	const char *wm_name; /* OP_WATERMARK */
	uint64_t wm_value;
	char buf[];
};

/* ---- Open and close ---- */

static int64_t
realtime_ms(void *arg)
{
	(void)arg;
	return (int64_t)pl_wall_ms();
}

/* mkdir -p: the data dir and its missing parents. */
static int
make_dirs(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST) {
				return (-1);
			}
			*p = '/';
		}
	}
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		return (-1);
	}
	return (0);
}

/* Opens the DBs, checks or stamps the format version, and restores the id
 * generator and local seq. Runs before the writer thread exists. */
static int
init_db(sto_comments *s, char *errbuf, size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_val k, d;
	int rc;
	int64_t last_ms = -1;
	uint32_t last_counter = 0;
	uint64_t hw = 0;
	uint8_t ver = STO_FORMAT_VERSION;
	const char *what = "begin";

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		goto fail;
	}
	what = "open databases";
	if ((rc = mdb_dbi_open(txn, "comments", MDB_CREATE, &s->db_comments)) !=
		0 ||
	    (rc = mdb_dbi_open(txn, "origin", MDB_CREATE, &s->db_origin)) !=
		0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->db_meta)) != 0) {
		goto fail;
	}
	what = "read format version";
	k.mv_data = "v";
	k.mv_size = 1;
	rc = mdb_get(txn, s->db_meta, &k, &d);
	if (rc == MDB_NOTFOUND) {
		d.mv_data = &ver;
		d.mv_size = 1;
		rc = mdb_put(txn, s->db_meta, &k, &d, 0);
	} else if (rc == 0 &&
	    (d.mv_size != 1 || *(uint8_t *)d.mv_data != STO_FORMAT_VERSION)) {
		what = "unsupported storage format version";
		rc = MDB_VERSION_MISMATCH;
	}
	if (rc != 0) {
		goto fail;
	}
	what = "read id state";
	k.mv_data = "id";
	k.mv_size = 2;
	rc = mdb_get(txn, s->db_meta, &k, &d);
	if (rc == 0 && d.mv_size == 12) {
		const uint8_t *c = (const uint8_t *)d.mv_data + 8;

		last_ms = (int64_t)sto_comments_get_u64(d.mv_data);
		last_counter = ((uint32_t)c[0] << 24) | ((uint32_t)c[1] << 16) |
		    ((uint32_t)c[2] << 8) | c[3];
	} else if (rc == 0) {
		rc = MDB_CORRUPTED;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		goto fail;
	}
	what = "read high-water mark";
	rc = sto_comments_meta_get_u64(txn, s->db_meta, "hw", s->node, &hw);
	if (rc != 0) {
		goto fail;
	}
	what = "commit";
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0) {
		goto fail;
	}
	sto_comment_id_gen_init(&s->idgen, s->node, last_ms, last_counter);
	s->next_seq = hw + 1;
	return (PL_OK);
fail:
	if (txn != NULL) {
		mdb_txn_abort(txn);
	}
	snprintf(errbuf, errlen, "%s: %s", what, mdb_strerror(rc));
	return (sto_comments_err(rc));
}

/* LMDB reads pages through a map of data.mdb, so a file cut short (a full
 * disk during a copy, a bad restore) turns the first read past its end into
 * SIGBUS. The meta page, which LMDB reads with pread, says how many pages
 * the file must hold: check that before any page is touched. */
static int
check_file_size(MDB_env *env, char *msg, size_t len)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_filehandle_t fd;
	struct stat sb;
	uint64_t need;
	int rc;

	if ((rc = mdb_env_get_fd(env, &fd)) != 0 ||
	    (rc = mdb_env_info(env, &info)) != 0 ||
	    (rc = mdb_env_stat(env, &st)) != 0) {
		snprintf(msg, len, "inspect data.mdb: %s", mdb_strerror(rc));
		return (sto_comments_err(rc));
	}
	if (fstat(fd, &sb) != 0) {
		snprintf(msg, len, "stat data.mdb: %s", strerror(errno));
		return (PL_EIO);
	}
	need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)sb.st_size < need) {
		snprintf(msg, len,
		    "data.mdb is truncated: %lld bytes, but its meta page "
		    "says it holds %llu pages of %u bytes (%llu bytes); "
		    "restore it from a backup",
		    (long long)sb.st_size,
		    (unsigned long long)info.me_last_pgno + 1, st.ms_psize,
		    (unsigned long long)need);
		return (PL_ECORRUPT);
	}
	return (PL_OK);
}

static void *writer_main(void *arg);

int
sto_comments_open(sto_comments **out, const char *dir,
    const sto_comments_opts *opts, char *errbuf, size_t errlen)
{
	sto_comments *s = NULL;
	char scratch[256];
	char msg[256] = "";
	MDB_envinfo info;
	pthread_rwlockattr_t ra;
	int rc, err = PL_EINVAL, dead = 0;
	bool mu = false, cv = false, rw = false, started;
	sigset_t all, old;

	if (errbuf == NULL || errlen == 0) {
		errbuf = scratch;
		errlen = sizeof(scratch);
	}
	errbuf[0] = '\0';
	*out = NULL;
	if (dir == NULL || opts == NULL || opts->node == NULL ||
	    opts->node[0] == '\0' || strlen(opts->node) > STO_ORIGIN_MAX) {
		snprintf(errbuf, errlen,
		    "comment store: need a directory and "
		    "a node name of 1..%d bytes",
		    STO_ORIGIN_MAX);
		return (PL_EINVAL);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->node = strdup(opts->node)) == NULL) {
		err = PL_ENOMEM;
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	s->efd = -1;
	s->pend_tail = &s->pend_head;
	s->done_tail = &s->done_head;
	s->map_max = opts->map_max;
	s->batch_max = opts->batch_max ? opts->batch_max : DEFAULT_BATCH_MAX;
	s->queue_max = opts->queue_max ? opts->queue_max : DEFAULT_QUEUE_MAX;
	s->clock_ms = opts->clock_ms ? opts->clock_ms : realtime_ms;
	s->clock_arg = opts->clock_arg;
	s->commit_seconds = opts->commit_seconds;
	if (make_dirs(dir) != 0) {
		err = PL_EIO;
		snprintf(
		    msg, sizeof(msg), "create directory: %s", strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env,
		 opts->map_size ? opts->map_size : DEFAULT_MAP_SIZE)) != 0) {
		err = sto_comments_err(rc);
		snprintf(msg, sizeof(msg), "lmdb setup: %s", mdb_strerror(rc));
		goto fail;
	}
	/* MDB_NOTLS: read txns are tied to our rwlock, not to thread slots. */
	if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0644)) != 0) {
		err = sto_comments_err(rc);
		if (err == PL_EINVAL || err == PL_EFULL || err == PL_EAGAIN) {
			err = PL_EIO;
		}
		snprintf(msg, sizeof(msg), "%s%s", mdb_strerror(rc),
		    err == PL_ECORRUPT ? " (data.mdb is not a readable LMDB "
					 "file of a supported version)"
				       : "");
		goto fail;
	}
	if ((err = check_file_size(s->env, msg, sizeof(msg))) != PL_OK) {
		goto fail;
	}
	if (mdb_reader_check(s->env, &dead) == 0 && dead > 0) {
		LOG_WARN("STO-STALEREADER",
		    "cleared %d stale LMDB reader "
		    "slot(s) in %s",
		    dead, dir);
	}
	if ((err = init_db(s, msg, sizeof(msg))) != PL_OK) {
		goto fail;
	}
	mdb_env_info(s->env, &info);
	s->map_size = info.me_mapsize;
	s->st.map_size = info.me_mapsize;
	if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (s->batch = calloc(s->batch_max, sizeof(*s->batch))) == NULL) {
		err = s->efd < 0 ? PL_EIO : PL_ENOMEM;
		snprintf(
		    msg, sizeof(msg), "eventfd or batch: %s", strerror(errno));
		goto fail;
	}
	pthread_rwlockattr_init(&ra);
	/* The writer must not starve behind back-to-back queries. */
	pthread_rwlockattr_setkind_np(
	    &ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rw = pthread_rwlock_init(&s->maplock, &ra) == 0;
	pthread_rwlockattr_destroy(&ra);
	mu = rw && pthread_mutex_init(&s->mu, NULL) == 0;
	cv = mu && pthread_cond_init(&s->cv, NULL) == 0;
	if (cv && pthread_cond_init(&s->backup_cv, NULL) != 0) {
		pthread_cond_destroy(&s->cv);
		cv = false;
	}
	/* The writer blocks every signal so that they reach the loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	started = cv && pthread_create(&s->writer, NULL, writer_main, s) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!started) {
		err = PL_EIO;
		snprintf(msg, sizeof(msg), "start writer thread");
		goto fail;
	}
	*out = s;
	return (PL_OK);
fail:
	snprintf(errbuf, errlen, "comment store %s: %s", dir, msg);
	LOG_ERR("STO-OPEN", "%s", errbuf);
	if (s != NULL) {
		if (cv) {
			pthread_cond_destroy(&s->cv);
			pthread_cond_destroy(&s->backup_cv);
		}
		if (mu) {
			pthread_mutex_destroy(&s->mu);
		}
		if (rw) {
			pthread_rwlock_destroy(&s->maplock);
		}
		if (s->efd >= 0) {
			close(s->efd);
		}
		if (s->env != NULL) {
			mdb_env_close(s->env);
		}
		free(s->batch);
		free(s->node);
		free(s);
	}
	return (err);
}

static void
complete(sto_op *op)
{
	if (op->kind == OP_WATERMARK) {
		if (op->done_cb != NULL) {
			op->done_cb(op->arg, op->status);
		}
	} else if (op->cb != NULL) {
		op->cb(op->arg, op->status, &op->c);
	}
	free(op);
}

static sto_op *
take_done(sto_comments *s)
{
	sto_op *head;

	pthread_mutex_lock(&s->mu);
	head = s->done_head;
	s->done_head = NULL;
	s->done_tail = &s->done_head;
	pthread_mutex_unlock(&s->mu);
	return (head);
}

void
sto_comments_close(sto_comments *s)
{
	sto_op *op, *next;

	if (s == NULL) {
		return;
	}
	s->closed = true;
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->writer, NULL);
	/* The writer drained the queue before exiting: deliver the rest. */
	for (op = take_done(s); op != NULL; op = next) {
		next = op->next;
		complete(op);
	}
	mdb_env_close(s->env);
	close(s->efd);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->backup_cv);
	pthread_mutex_destroy(&s->mu);
	pthread_rwlock_destroy(&s->maplock);
	free(s->batch);
	free(s->node);
	free(s);
}

/* ---- Writer thread ---- */

/* Doubles the map. Only the writer calls this, with no write txn open; the
 * exclusive maplock guarantees no read txn is open either. */
static int
grow_map(sto_comments *s)
{
	size_t cur = s->map_size, next = cur * 2;
	int rc;

	if (s->map_max != 0 && next > s->map_max) {
		if (cur >= s->map_max) {
			LOG_ERR("STO-MAPFULL",
			    "comment store full at map_max "
			    "%zu bytes",
			    s->map_max);
			return (PL_EFULL);
		}
		next = s->map_max;
	}
	/* A backup holds a read txn for its whole copy: wait for it here,
	 * not on the maplock, where waiting would block loop readers. */
	pthread_mutex_lock(&s->mu);
	while (s->backups > 0) {
		pthread_cond_wait(&s->backup_cv, &s->mu);
	}
	s->growing = true;
	pthread_mutex_unlock(&s->mu);
	pthread_rwlock_wrlock(&s->maplock);
	rc = mdb_env_set_mapsize(s->env, next);
	pthread_rwlock_unlock(&s->maplock);
	pthread_mutex_lock(&s->mu);
	s->growing = false;
	pthread_cond_broadcast(&s->backup_cv);
	pthread_mutex_unlock(&s->mu);
	if (rc != 0) {
		LOG_ERR("STO-MAPGROW", "growing map to %zu bytes: %s", next,
		    mdb_strerror(rc));
		return (sto_comments_err(rc));
	}
	LOG_INFO("STO-MAPGROW", "map grown from %zu to %zu bytes", cur, next);
	s->map_size = next;
	pthread_mutex_lock(&s->mu);
	s->st.map_grows++;
	s->st.map_size = next;
	pthread_mutex_unlock(&s->mu);
	return (PL_OK);
}

/* A comment already stored under key k: a duplicate when its bytes are the
 * same (PL_EEXIST), a conflict otherwise (PL_EPROTO: another comment claims
 * the id; the stored one is kept). */
static int
compare_stored(const MDB_val *cur, const sto_comment *c)
{
	size_t n = sto_comments_value_size(c);
	uint8_t *buf;
	int same;

	if (cur->mv_size != n) {
		return (PL_EPROTO);
	}
	if ((buf = malloc(n)) == NULL) {
		return (PL_ENOMEM);
	}
	sto_comments_value_encode(buf, c);
	same = memcmp(buf, cur->mv_data, n) == 0;
	free(buf);
	return (same ? PL_EEXIST : PL_EPROTO);
}

/* Writes one comment (local or replica). Sets op->status for outcomes that
 * concern this op alone (PL_OK, PL_EEXIST for an identical copy, PL_EPROTO
 * when another comment holds its id or its origin+seq: never overwritten);
 * returns an MDB code that aborts the whole txn. */
static int
apply_comment(sto_comments *s, MDB_txn *txn, sto_op *op)
{
	char kb[STO_CKEY_MAX], ob[STO_OKEY_MAX];
	MDB_val k, ok, ov, v;
	size_t olen = strlen(op->c.origin);
	uint64_t hw;
	int rc;

	k.mv_data = kb;
	k.mv_size = sto_comments_ckey(
	    kb, op->c.video_id, strlen(op->c.video_id), op->c.id);
	ok.mv_data = ob;
	ok.mv_size = sto_comments_okey(ob, op->c.origin, olen, op->c.seq);
	rc = mdb_get(txn, s->db_comments, &k, &v);
	if (rc == 0) {
		op->status = compare_stored(&v, &op->c);
		return (0);
	}
	if (rc != MDB_NOTFOUND) {
		return (rc);
	}
	rc = mdb_get(txn, s->db_origin, &ok, &ov);
	if (rc == 0) {
		/* Our key is new, so the seq is another comment's. */
		op->status = PL_EPROTO;
		return (0);
	}
	if (rc != MDB_NOTFOUND) {
		return (rc);
	}
	v.mv_size = sto_comments_value_size(&op->c);
	v.mv_data = NULL;
	rc =
	    mdb_put(txn, s->db_comments, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0) {
		return (rc);
	}
	sto_comments_value_encode(v.mv_data, &op->c);
	if ((rc = mdb_put(txn, s->db_origin, &ok, &k, 0)) != 0) {
		return (rc);
	}
	if ((rc = sto_comments_meta_get_u64(
		 txn, s->db_meta, "hw", op->c.origin, &hw)) != 0) {
		return (rc);
	}
	if (op->c.seq > hw &&
	    (rc = sto_comments_meta_put_u64(
		 txn, s->db_meta, "hw", op->c.origin, olen, op->c.seq)) != 0) {
		return (rc);
	}
	op->status = PL_OK;
	return (0);
}

/* One write transaction for ops[0..n). Returns an MDB code. */
static int
try_batch(sto_comments *s, sto_op **ops, size_t n)
{
	MDB_txn *txn;
	sto_op *last_append = NULL;
	uint64_t t0;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		return (rc);
	}
	for (size_t i = 0; i < n; i++) {
		sto_op *op = ops[i];

		if (op->kind == OP_WATERMARK) {
			rc = sto_comments_meta_put_u64(txn, s->db_meta, "wm",
			    op->wm_name, strlen(op->wm_name), op->wm_value);
			op->status = PL_OK;
		} else {
			rc = apply_comment(s, txn, op);
		}
		if (rc != 0) {
			goto fail;
		}
		if (op->kind == OP_APPEND) {
			last_append = op;
		}
	}
	if (last_append != NULL) {
		/* Ops are in minting order: the last one is the newest. */
		uint8_t st[12];
		MDB_val k = { 2, "id" }, d = { sizeof(st), st };

		sto_comments_put_u64(st, (uint64_t)last_append->id_ms);
		st[8] = (uint8_t)(last_append->id_counter >> 24);
		st[9] = (uint8_t)(last_append->id_counter >> 16);
		st[10] = (uint8_t)(last_append->id_counter >> 8);
		st[11] = (uint8_t)last_append->id_counter;
		if ((rc = mdb_put(txn, s->db_meta, &k, &d, 0)) != 0) {
			goto fail;
		}
	}
	t0 = pl_mono_us();
	rc = mdb_txn_commit(txn);
	pl_histogram_observe(s->commit_seconds, (pl_mono_us() - t0) / 1e6);
	return (rc);
fail:
	mdb_txn_abort(txn);
	return (rc);
}

static void
write_batch(sto_comments *s, sto_op **ops, size_t n)
{
	int rc, err;

	for (;;) {
		rc = try_batch(s, ops, n);
		if (rc == 0) {
			pthread_mutex_lock(&s->mu);
			s->st.commits++;
			s->st.fsyncs++;
			s->st.committed_ops += n;
			if (n > s->st.max_batch) {
				s->st.max_batch = n;
			}
			pthread_mutex_unlock(&s->mu);
			return;
		}
		if (rc == MDB_MAP_FULL) {
			if ((err = grow_map(s)) == PL_OK) {
				continue;
			}
			break;
		}
		if (rc == MDB_TXN_FULL && n > 1) {
			write_batch(s, ops, n / 2);
			write_batch(s, ops + n / 2, n - n / 2);
			return;
		}
		err = sto_comments_err(rc);
		LOG_ERR("STO-COMMIT", "committing %zu comment operation(s): %s",
		    n, mdb_strerror(rc));
		break;
	}
	for (size_t i = 0; i < n; i++) {
		ops[i]->status = err;
	}
	pthread_mutex_lock(&s->mu);
	s->st.failed_ops += n;
	pthread_mutex_unlock(&s->mu);
}

static void *
writer_main(void *arg)
{
	sto_comments *s = arg;
	uint64_t one = 1;
	size_t n;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->pend_head == NULL && !s->closing) {
			pthread_cond_wait(&s->cv, &s->mu);
		}
		if (s->pend_head == NULL) {
			break;
		}
		/* Everything queued while the last commit synced goes in
		 * this one: that is the group commit. */
		for (n = 0; s->pend_head != NULL && n < s->batch_max; n++) {
			s->batch[n] = s->pend_head;
			s->pend_head = s->pend_head->next;
		}
		if (s->pend_head == NULL) {
			s->pend_tail = &s->pend_head;
		}
		s->pend_count -= n;
		s->inflight = n;
		pthread_mutex_unlock(&s->mu);

		write_batch(s, s->batch, n);

		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < n; i++) {
			s->batch[i]->next = NULL;
			*s->done_tail = s->batch[i];
			s->done_tail = &s->batch[i]->next;
		}
		s->inflight = 0;
		pthread_mutex_unlock(&s->mu);
		if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
			LOG_ERR(
			    "STO-NOTIFY", "eventfd write: %s", strerror(errno));
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return (NULL);
}

/* ---- Loop-thread API ---- */

/* Checks a string field: present, nonempty when required, under max. */
static int
check_str(const char *v, size_t max, bool nonempty)
{
	size_t n;

	if (v == NULL) {
		return (PL_EINVAL);
	}
	n = strnlen(v, max + 1);
	if (nonempty && n == 0) {
		return (PL_EINVAL);
	}
	return (n > max ? PL_ETOOBIG : PL_OK);
}

static int
check_room(sto_comments *s)
{
	bool full;

	if (s->closed) {
		return (PL_ECLOSED);
	}
	pthread_mutex_lock(&s->mu);
	full = s->pend_count + s->inflight >= s->queue_max;
	pthread_mutex_unlock(&s->mu);
	return (full ? PL_EAGAIN : PL_OK);
}

/* Allocates an op holding copies of the given strings (NULL = empty). */
static sto_op *
op_new(enum op_kind kind, const char *video, const char *user,
    const char *content, const char *origin)
{
	const char *src[4] = { video, user, content, origin };
	const char **dst[4];
	size_t len[4], total = 0;
	sto_op *op;
	char *p;

	for (int i = 0; i < 4; i++) {
		src[i] = src[i] != NULL ? src[i] : "";
		len[i] = strlen(src[i]) + 1;
		total += len[i];
	}
	if ((op = calloc(1, sizeof(*op) + total)) == NULL) {
		return (NULL);
	}
	op->kind = kind;
	dst[0] = &op->c.video_id;
	dst[1] = &op->c.user_id;
	dst[2] = &op->c.content;
	dst[3] = &op->c.origin;
	p = op->buf;
	for (int i = 0; i < 4; i++) {
		memcpy(p, src[i], len[i]);
		*dst[i] = p;
		p += len[i];
	}
	return (op);
}

static void
enqueue(sto_comments *s, sto_op *op, bool replica)
{
	pthread_mutex_lock(&s->mu);
	*s->pend_tail = op;
	s->pend_tail = &op->next;
	s->pend_count++;
	if (op->kind == OP_WATERMARK) {
		/* not a comment: not counted */
	} else if (replica) {
		s->st.replicas++;
	} else {
		s->st.appends++;
	}
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int
sto_comments_append(sto_comments *s, const sto_comment_in *c, sto_append_cb cb,
    void *arg, sto_assigned *assigned)
{
	sto_op *op;
	int err;

	if (s == NULL || c == NULL) {
		return (PL_EINVAL);
	}
	if ((err = check_str(c->video_id, STO_VIDEO_ID_MAX, true)) != PL_OK ||
	    (err = check_str(c->user_id, STO_USER_ID_MAX, false)) != PL_OK ||
	    (err = check_str(c->content, STO_CONTENT_MAX, false)) != PL_OK ||
	    (err = check_room(s)) != PL_OK) {
		return (err);
	}
	if ((op = op_new(OP_APPEND, c->video_id, c->user_id, c->content,
		 s->node)) == NULL) {
		return (PL_ENOMEM);
	}
	op->cb = cb;
	op->arg = arg;
	sto_comment_id_next(
	    &s->idgen, s->clock_ms(s->clock_arg), op->c.id, &op->c.inserted_at);
	op->id_ms = s->idgen.last_ms;
	op->id_counter = s->idgen.counter;
	op->c.seq = s->next_seq++;
	if (assigned != NULL) {
		memcpy(assigned->id, op->c.id, sizeof(assigned->id));
		assigned->seq = op->c.seq;
		assigned->inserted_at = op->c.inserted_at;
	}
	enqueue(s, op, false);
	return (PL_OK);
}

int
sto_comments_put_replica(
    sto_comments *s, const sto_comment *c, sto_append_cb cb, void *arg)
{
	sto_op *op;
	int err;

	if (s == NULL || c == NULL || !sto_comment_id_valid(c->id) ||
	    c->seq == 0) {
		return (PL_EINVAL);
	}
	if ((err = check_str(c->video_id, STO_VIDEO_ID_MAX, true)) != PL_OK ||
	    (err = check_str(c->user_id, STO_USER_ID_MAX, false)) != PL_OK ||
	    (err = check_str(c->content, STO_CONTENT_MAX, false)) != PL_OK ||
	    (err = check_str(c->origin, STO_ORIGIN_MAX, true)) != PL_OK ||
	    (err = check_room(s)) != PL_OK) {
		return (err);
	}
	if ((op = op_new(OP_REPLICA, c->video_id, c->user_id, c->content,
		 c->origin)) == NULL) {
		return (PL_ENOMEM);
	}
	op->cb = cb;
	op->arg = arg;
	memcpy(op->c.id, c->id, sizeof(op->c.id));
	op->c.inserted_at = c->inserted_at;
	op->c.seq = c->seq;
	if (strcmp(c->origin, s->node) == 0 && c->seq >= s->next_seq) {
		/* Our own comments coming back: never mint their seqs again. */
		s->next_seq = c->seq + 1;
	}
	enqueue(s, op, true);
	return (PL_OK);
}

int
sto_comments_set_watermark(sto_comments *s, const char *name, uint64_t value,
    sto_done_cb cb, void *arg)
{
	sto_op *op;
	int err;

	if (s == NULL) {
		return (PL_EINVAL);
	}
	if ((err = check_str(name, STO_WATERMARK_NAME_MAX, true)) != PL_OK ||
	    (err = check_room(s)) != PL_OK) {
		return (err);
	}
	if ((op = op_new(OP_WATERMARK, name, NULL, NULL, NULL)) == NULL) {
		return (PL_ENOMEM);
	}
	op->wm_name = op->c.video_id;
	op->wm_value = value;
	op->done_cb = cb;
	op->arg = arg;
	enqueue(s, op, false);
	return (PL_OK);
}

int
sto_comments_notify_fd(sto_comments *s)
{
	return (s->efd);
}

void
sto_comments_poll(sto_comments *s)
{
	uint64_t v;
	sto_op *op, *next;

	/* Drain before taking the list: a completion queued after the take
	 * writes the fd again, so none is left unsignalled. */
	while (read(s->efd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
	}
	for (op = take_done(s); op != NULL; op = next) {
		next = op->next;
		complete(op);
	}
}

void
sto_comments_stats_get(sto_comments *s, sto_comments_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	out->queued = s->pend_count + s->inflight;
	pthread_mutex_unlock(&s->mu);
	out->avg_batch = out->commits
	    ? (double)out->committed_ops / (double)out->commits
	    : 0.0;
}
