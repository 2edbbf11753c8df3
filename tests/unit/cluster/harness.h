/* SPDX-License-Identifier: Apache-2.0 */
/* In-process clusters for the service tests: several real clusters on
 * loopback NNG sockets in one process, driven by one loop that does what a
 * node's loop does (wait on the fds, poll, tick every CLU_CLUSTER_TICK_MS).
 * A slot with c == NULL is not running. */
#ifndef PARLEY_TESTS_UNIT_CLUSTER_HARNESS_H
#define PARLEY_TESTS_UNIT_CLUSTER_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/cluster.h"

#define TH_NODES 6

typedef struct th_node {
	clu_cluster *c;
	char name[16];
	int fd;                  /* another fd its loop waits on, or -1 */
	void (*poll)(void *arg); /* each pass, before the cluster's poll */
	void *arg;
	uint64_t last_tick;
} th_node;

extern th_node th[TH_NODES];

/* Options of a quick cluster named name on a loopback port chosen by the
 * kernel, joining join (NULL: none): heartbeats every 150 ms, suspect after
 * 500, dead after 700, redial within 50..500 ms. */
void th_opts(clu_cluster_opts *o, const char *name, const char *join);

/* Creates the cluster of slot i (name copied). Returns what
 * clu_cluster_create returns. */
int th_start(int i, const clu_cluster_opts *o);

/* Destroys the cluster of slot i (crash: no leave message). */
void th_stop(int i, bool crash);

/* The bus address of slot i, to join it (valid while it runs). */
const char *th_address(int i);

void th_run_once(int wait_ms);
void th_run_for(int ms);
/* Runs until cond() holds; false when timeout_ms passed first. */
bool th_run_until(bool (*cond)(void), int timeout_ms);

/* Every running node sees every running node alive. */
bool th_all_alive(void);

#endif
