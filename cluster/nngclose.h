/* SPDX-License-Identifier: Apache-2.0 */
/* Closing an NNG socket without risking the caller. nng_close() in NNG 1.5.2
 * can hang for ever when the socket's connections are still receiving (NNG
 * issue #1543: the reaper thread waits for an aio task that was prepared
 * but never started, and from then on no close in the process completes).
 * The close therefore runs on a helper thread: the caller waits for it a
 * bounded time (or not at all), and a close that never finishes is left
 * behind on a list (still reachable, not a leak) with its cleanup, which
 * runs if it ever does finish. Quiesce the socket before (stop receiving,
 * NNG_OPT_RECVBUF 0, a few ms): that makes the hang rare. */
#ifndef PARLEY_CLUSTER_NNGCLOSE_H
#define PARLEY_CLUSTER_NNGCLOSE_H

#include <nng/nng.h>
#include <stdbool.h>

/* Closes sock on a helper thread, then runs done(arg) (may be NULL) on that
 * thread, or on the caller's if no thread can be made. Waits at most
 * wait_ms for it (0: returns at once); once one close in the process has
 * hung, waits at most 100 ms. Returns true when the close (and done) has
 * run by the time it returns. The first close that times out is logged
 * (CLU-CLOSEHANG). */
bool
clu_nng_close(nng_socket sock, void (*done)(void *arg), void *arg, int wait_ms);

#endif
