/* SPDX-License-Identifier: Apache-2.0 */
/* Admission: which new socket gets a slot, and the limits behind it
 * (handshakes per node and per source address, probe slots for health
 * checks once every slot is upgraded). */
#include "broker/config.h"
#include "broker/conn_int.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <netinet/in.h>
#include <string.h>

/* The per-address key: an IPv4 address, or an IPv6 /64 (one host usually
 * holds a whole /64); IPv4-mapped IPv6 counts as IPv4. Returns its length,
 * 0 when the socket has no IP address (a socketpair in tests). */
static size_t
addr_key(const struct sockaddr *sa, socklen_t salen, unsigned char key[9])
{
	if (sa != NULL && sa->sa_family == AF_INET &&
	    salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa != NULL && sa->sa_family == AF_INET6 &&
	    salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			key[0] = 4;
			memcpy(key + 1, a->s6_addr + 12, 4);
			return 5;
		}
		key[0] = 6;
		memcpy(key + 1, a->s6_addr, 8);
		return 9;
	}
	return 0;
}

/* The oldest handshake that is (or is not) a probe. Probes are at most
 * BRK_CONN_PROBE_SLOTS, and a probe is looked for only when no other
 * handshake is left, so this looks at a few sockets at most. */
static brk_conn *
oldest_handshake(brk_conn_list *l, int probe)
{
	brk_conn *c;

	for (c = l->hs_head; c != NULL && c->probe != probe; c = c->next) {
	}
	return c;
}

static void
evict(brk_conn *c)
{
	c->list->env.stats->handshakes_evicted++;
	brk_conn_kill(c);
}

/* A handshake this young is not evicted to keep --max-handshakes: in a
 * reconnect storm (a drained node's clients all arriving at once) every
 * pending handshake is honest and only waits its turn on the loop, and
 * evicting it would only make its client come back later. The slots
 * (--max-connections) stay a hard limit. */
#define HS_GRACE_MS 1000
/* ...up to this many times --max-handshakes: a storm as large as half the
 * default slots is served whole, while a flood of new connections (a
 * slowloris opening its sockets) is still cut at a bounded count. */
#define HS_STORM_FACTOR 4

/* Decides whether a new socket from sa gets in. A handshake costs a slot
 * until its deadline, so when the handshakes (older than HS_GRACE_MS) or
 * the slots are all taken the oldest handshake makes room (an honest
 * client's handshake takes a round trip; a slowloris's never ends). When every slot holds an upgraded
 * socket, a few probe slots still let health checks in. Returns 0, with
 * *slot the address's count and *probe set for a probe, or -1 to refuse. */
int
brk_conn_admit(brk_conn_list *l, const struct sockaddr *sa, socklen_t salen,
    brk_tally_entry **slot, uint8_t *probe, brk_node_stats *st)
{
	unsigned char key[9];
	size_t kl = addr_key(sa, salen, key);
	brk_conn *old;
	int rc;

	*slot = NULL;
	*probe = 0;
	if (kl > 0 &&
	    (rc = brk_tally_take(l->addrs, key, kl, l->max_per_addr, slot)) !=
		PL_OK) {
		st->addr_refused += rc == PL_ELIMIT;
		return -1;
	}
	/* Back under the cap, once a storm's excess has gone stale; and
	 * never more than HS_STORM_FACTOR times the cap, young or not. */
	while (l->handshakes - l->probes >= l->max_handshakes &&
	    (old = oldest_handshake(l, 0)) != NULL &&
	    (pl_mono_ms() - old->last_rx_ms >= HS_GRACE_MS ||
		l->handshakes - l->probes >=
		    l->max_handshakes * HS_STORM_FACTOR)) {
		evict(old);
	}
	if (l->count - l->probes < l->max_conns) {
		return 0;
	}
	if ((old = oldest_handshake(l, 0)) != NULL) {
		evict(old);
		return 0;
	}
	if (l->probes >= BRK_CONN_PROBE_SLOTS &&
	    (old = oldest_handshake(l, 1)) != NULL) {
		evict(old);
	}
	if (l->probes < BRK_CONN_PROBE_SLOTS) {
		*probe = 1;
		return 0;
	}
	brk_tally_release(l->addrs, *slot);
	*slot = NULL;
	return -1;
}

size_t
brk_conn_stale_handshakes(const brk_conn_list *l, uint64_t now_ms)
{
	size_t n = 0;

	/* Oldest first: stop at the first young one. */
	for (const brk_conn *c = l->hs_head;
	     c != NULL && now_ms - c->last_rx_ms >= HS_GRACE_MS; c = c->next) {
		n += !c->probe;
	}
	return n;
}

int
brk_conn_unprobe(brk_conn *c)
{
	brk_conn_list *l = c->list;

	/* Counted as an ordinary socket, would it fit now? */
	if (l->count - (l->probes - 1) > l->max_conns) {
		return 0;
	}
	c->probe = 0;
	l->probes--;
	return 1;
}

int
brk_conn_list_init(brk_conn_list *l, const brk_conn_env *env)
{
	const brk_config *cfg = env->cfg;

	l->env = *env;
	l->max_conns = (size_t)cfg->max_connections;
	l->max_handshakes = cfg->max_handshakes > 0
	    ? (size_t)cfg->max_handshakes
	    : l->max_conns / 8 > 0 ? l->max_conns / 8
				   : 1;
	l->max_per_addr = (unsigned)cfg->max_handshakes_per_ip;
	l->max_per_user = (unsigned)cfg->max_sockets_per_user;
	l->handshake_ms = (uint64_t)cfg->handshake_timeout * 1000;
	l->out_budget = cfg->max_queued_bytes > 0
	    ? (size_t)cfg->max_queued_bytes
	    : brk_outq_default_budget();
	if (brk_tally_create(&l->addrs) != PL_OK ||
	    brk_tally_create(&l->users) != PL_OK) {
		brk_conn_list_fini(l);
		return PL_ENOMEM;
	}
	LOG_INFO("BRK-LIMITS",
	    "sockets %zu (handshakes %zu, %u per address, %llu s each), "
	    "%u per user, queued output %zu bytes",
	    l->max_conns, l->max_handshakes, l->max_per_addr,
	    (unsigned long long)(l->handshake_ms / 1000), l->max_per_user,
	    l->out_budget);
	return PL_OK;
}

void
brk_conn_list_fini(brk_conn_list *l)
{
	brk_tally_destroy(l->addrs);
	brk_tally_destroy(l->users);
	l->addrs = l->users = NULL;
}
