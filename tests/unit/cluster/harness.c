/* SPDX-License-Identifier: Apache-2.0 */
/* In-process clusters for the service tests (see harness.h). */
#include "tests/unit/cluster/harness.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"

th_node th[TH_NODES];

void
th_opts(clu_cluster_opts *o, const char *name, const char *join)
{
	clu_cluster_opts_init(o);
	o->node_name = name;
	o->listen_url = "tcp://127.0.0.1:0";
	o->join = join;
	o->heartbeat_ms = 150;
	o->suspect_after_ms = 500;
	o->dead_after_ms = 700;
	o->reconnect_min_ms = 50;
	o->reconnect_max_ms = 500;
}

int
th_start(int i, const clu_cluster_opts *o)
{
	th_node *t = &th[i];

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	snprintf(t->name, sizeof(t->name), "%s", o->node_name);
	return clu_cluster_create(&t->c, o);
}

void
th_stop(int i, bool crash)
{
	clu_cluster_destroy(th[i].c, crash);
	th[i].c = NULL;
}

const char *
th_address(int i)
{
	return clu_cluster_self_address(th[i].c);
}

void
th_run_once(int wait_ms)
{
	struct pollfd p[2 * TH_NODES];
	nfds_t n = 0;
	uint64_t now;

	for (int i = 0; i < TH_NODES; i++) {
		if (th[i].c == NULL) {
			continue;
		}
		p[n++] = (struct pollfd){ clu_cluster_fd(th[i].c), POLLIN, 0 };
		if (th[i].fd >= 0) {
			p[n++] = (struct pollfd){ th[i].fd, POLLIN, 0 };
		}
	}
	poll(p, n, wait_ms);
	now = pl_mono_ms();
	for (int i = 0; i < TH_NODES; i++) {
		th_node *t = &th[i];

		if (t->c == NULL) {
			continue;
		}
		if (t->poll != NULL) {
			t->poll(t->arg);
		}
		clu_cluster_poll(t->c, now);
		if (now - t->last_tick >= CLU_CLUSTER_TICK_MS) {
			clu_cluster_tick(t->c, now);
			t->last_tick = now;
		}
	}
}

void
th_run_for(int ms)
{
	uint64_t end = pl_mono_ms() + (uint64_t)ms;

	while (pl_mono_ms() < end) {
		th_run_once(10);
	}
}

bool
th_run_until(bool (*cond)(void), int timeout_ms)
{
	uint64_t end = pl_mono_ms() + (uint64_t)timeout_ms;

	while (pl_mono_ms() < end) {
		if (cond()) {
			return true;
		}
		th_run_once(10);
	}
	return cond();
}

bool
th_all_alive(void)
{
	for (int i = 0; i < TH_NODES; i++) {
		for (int j = 0; th[i].c != NULL && j < TH_NODES; j++) {
			if (j != i && th[j].c != NULL &&
			    clu_cluster_member_status(th[i].c, th[j].name) !=
				CLU_ALIVE) {
				return false;
			}
		}
	}
	return true;
}
