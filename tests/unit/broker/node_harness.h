/* SPDX-License-Identifier: Apache-2.0 */
/* Test harness: one real node in the test process, or parts of one (see
 * node_harness.c). */
#ifndef PARLEY_TESTS_NODE_HARNESS_H
#define PARLEY_TESTS_NODE_HARNESS_H

#include <jansson.h>
#include <stddef.h>

typedef struct brk_node brk_node;
typedef struct brk_conn_list brk_conn_list;
typedef struct brk_key brk_key;
struct event_base;

extern brk_node *nh_node;

/* Starts a node with --max-channels max_channels on a temp data dir. */
void nh_start(const char *max_channels);
/* Starts a node with extra flags (argv style) on a temp data dir. */
void nh_start_flags(const char *const *extra, int nextra);
/* Without a node: the client side drives sockets of conns on base (both
 * built by the test) and signs its tokens with key. */
void
nh_attach(struct event_base *base, brk_conn_list *conns, const brk_key *key);
/* Destroys the node and removes its data dir. */
void nh_stop(void);
/* Runs a few non-blocking loop passes. */
void nh_pump(void);
/* Reads exactly n bytes from fd, pumping the loop (2 s at most): 0 or -1. */
int nh_read(int fd, void *buf, size_t n);
/* Connects and upgrades a client for user with vsn ("1.0.0"/"2.0.0"). */
int nh_client(const char *user, const char *vsn);
/* Sends one masked text frame. */
void nh_send(int fd, const char *s);
/* The next text message as JSON (caller decrefs), NULL after 2 s. */
json_t *nh_recv(int fd);
/* Asserts the next V2 message's topic, event and (for replies) status.
 * With nh_skip_presence set, presence_diff and presence_state messages
 * before it are passed by unless they are what is asked for. */
extern int nh_skip_presence;
json_t *
nh_expect(int fd, const char *topic, const char *event, const char *status);
/* The reason of an error reply. */
const char *nh_reason(json_t *m);

#endif
