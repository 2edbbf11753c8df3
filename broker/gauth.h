/* SPDX-License-Identifier: Apache-2.0 */
/* OAuth2 access tokens for a Google service account
 * (--firebase-credentials): reads the account's JSON key file (client_email,
 * private_key, token_uri), signs an RS256 JWT-bearer assertion with
 * libcrypto for the Firebase Realtime Database scopes, posts it to
 * token_uri through broker/fetch, and keeps the token fresh: a new one is
 * fetched before expires_in runs out, and at once when Firebase answers 401
 * to the current one. Failures are retried with backoff. Loop thread
 * only. */
#ifndef PARLEY_BROKER_GAUTH_H
#define PARLEY_BROKER_GAUTH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct brk_fetch brk_fetch;
typedef struct brk_gauth brk_gauth;

#define BRK_GAUTH_SCOPES                                                       \
	"https://www.googleapis.com/auth/firebase.database "                   \
	"https://www.googleapis.com/auth/userinfo.email"
#define BRK_GAUTH_FILE_MAX 65536 /* bytes of a key file */

typedef struct brk_gauth_opts {
	struct event_base *base; /* borrowed */
	brk_fetch *fetch;        /* borrowed; outlives the client */
	const char *path;        /* the key file; copied */
	uint32_t retry_max_ms;   /* longest wait between failed fetches;
	                          * 0 = 60000 */
	/* A new token is ready (the queue may send again); may be NULL. */
	void (*on_token)(void *arg);
	void *arg;
} brk_gauth_opts;

/* Reads and checks the key file; starts fetching a token once
 * brk_gauth_start is called. A missing, unreadable or malformed file fails
 * with a message naming the file and the field (PL_ENOTFOUND, PL_EIO,
 * PL_EINVAL); PL_ENOMEM. */
int brk_gauth_create(
    brk_gauth **out, const brk_gauth_opts *o, char *err, size_t errlen);
void brk_gauth_destroy(brk_gauth *g);

/* Fetches the first token (asynchronously). */
void brk_gauth_start(brk_gauth *g);

/* The current access token, NULL while none is valid; borrowed until the
 * next loop callback. *gen (may be NULL) gets its generation, which rises
 * with every new token. */
const char *brk_gauth_token(const brk_gauth *g, uint64_t *gen);

/* Firebase refused the token of generation gen (401): unless a newer one
 * is held or being fetched, fetch one now. */
void brk_gauth_refused(brk_gauth *g, uint64_t gen);

/* The signed assertion for now_s (unix seconds), as posted to token_uri;
 * caller frees. NULL on failure. For tests. */
char *brk_gauth_assertion(const brk_gauth *g, int64_t now_s);

typedef struct brk_gauth_stats {
	uint64_t fetched;      /* tokens obtained */
	uint64_t failed;       /* token requests that failed */
	int64_t expires_at_ms; /* unix ms the current token expires; 0 */
} brk_gauth_stats;

void brk_gauth_stats_get(const brk_gauth *g, brk_gauth_stats *out);
/* The account's client_email; borrowed. */
const char *brk_gauth_email(const brk_gauth *g);

#endif
