/* SPDX-License-Identifier: Apache-2.0 */
/* Where a node finds its cluster: the --join list (bus URLs and
 * `dns:NAME:PORT` names, the latter resolved on a helper thread so that no
 * lookup ever blocks the loop), the URL to advertise, and the URLs found to
 * reach this node itself, which are never dialled. A clu_seeds is used from
 * one loop thread; its helper thread only wakes that loop through an fd. */
#ifndef PARLEY_CLUSTER_SEEDS_H
#define PARLEY_CLUSTER_SEEDS_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster/bus.h"

typedef struct clu_seeds clu_seeds;

/* Parses join (see clu_seeds_parse_join; NULL: no seeds). self_url is this
 * node's advertised URL, never dialled (copied). Finished DNS lookups are
 * signalled by writing an eventfd increment (8 bytes) to wake_fd, which is
 * dup()ed; the caller keeps its own fd. No thread runs until the first
 * lookup. Returns PL_OK and *out (caller destroys), PL_EINVAL (a bad join
 * entry; logged "CLU-JOIN"), PL_EIO (dup failed), PL_ENOMEM. */
int clu_seeds_create(
    clu_seeds **out, const char *join, const char *self_url, int wake_fd);

/* Frees the seeds without waiting for a lookup still running: that one
 * finishes on its helper thread, which then frees what it shares. NULL is
 * ignored. */
void clu_seeds_destroy(clu_seeds *s);

/* True when the join list named at least one seed (URL or DNS name). */
bool clu_seeds_configured(const clu_seeds *s);

/* Starts resolving the DNS names again (getaddrinfo on the helper thread,
 * started on first use). Returns PL_OK (also when there are no names:
 * nothing to do), PL_EAGAIN (a lookup is still running; ignored),
 * PL_ENOMEM, PL_EIO (thread not started). */
int clu_seeds_resolve(clu_seeds *s);

/* Takes the finished lookup, if any: its tcp:// URLs (every address every
 * name resolved to, deduplicated; names that failed contribute nothing)
 * replace the previous answer. Returns true when that happened. */
bool clu_seeds_take_resolved(clu_seeds *s);

/* Calls clu_bus_dial() for every seed URL and every resolved address that
 * is not known to be ourselves (a URL NNG rejects is logged by the bus). */
void clu_seeds_dial(const clu_seeds *s, clu_bus *b);

/* True when url is our advertised URL or one found to reach us. */
bool clu_seeds_is_self(const clu_seeds *s, const char *url);

/* Records that url reaches this node itself (our own message came back
 * over it). Returns true when it was new (logged "CLU-SELFDIAL"). */
bool clu_seeds_add_self(clu_seeds *s, const char *url);

/* Splits a --join list (comma-separated, blanks trimmed, empty entries
 * ignored, duplicates dropped) into bus URLs and "NAME:PORT" strings from
 * dns:NAME:PORT entries. join may be NULL. Returns PL_OK with both arrays
 * set (caller frees each with clu_seeds_strv_free; NULL when empty),
 * PL_EINVAL (an entry is neither; logged "CLU-JOIN"), PL_ENOMEM. */
int clu_seeds_parse_join(
    const char *join, char ***urls, size_t *n_urls, char ***dns, size_t *n_dns);

/* The URL peers should dial when none is configured: tcp://HOST:PORT with
 * the listen host (the hostname when listening on every interface) and the
 * bound port (the listen URL's own port when bound_port <= 0). Non-tcp URLs
 * are returned as they are. Caller frees; NULL when out of memory. */
char *clu_seeds_derive_advertise(const char *listen_url, int bound_port);

/* The addressed path's default listen URL beside the bus listen URL
 * tcp://HOST:PORT: tcp://HOST:PORT+1, or port 0 (any) when PORT is 0.
 * Caller frees; NULL when the bus URL is not tcp://HOST:PORT or out of
 * memory. */
char *clu_seeds_direct_listen(const char *bus_listen_url);

/* Frees n strings and the array; NULL is fine. */
void clu_seeds_strv_free(char **v, size_t n);

#endif
