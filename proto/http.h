/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 for the listener: a request-head parser working straight on a
 * libevent evbuffer (it keeps the headers the WebSocket upgrade needs), query
 * parameter lookup, and complete "Connection: close" responses. */
#ifndef PARLEY_PROTO_HTTP_H
#define PARLEY_PROTO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Longest request line plus header block, final empty line included. */
#define PRO_HTTP_MAX_HEADER 8192

/* A parsed request head. Every string is malloc'ed and NUL-terminated, NULL
 * when absent, and owned by the struct: release with pro_http_req_free().
 * Header names match case-insensitively. Upgrade, Connection and
 * Sec-WebSocket-Protocol are lists: repeated lines are joined with ", ".
 * Host, Sec-WebSocket-Key, Sec-WebSocket-Version, Origin, Authorization,
 * Content-Type and Content-Length must appear at most once (a repeat makes
 * the request malformed). */
typedef struct pro_http_req {
	char *method; /* e.g. "GET", case-sensitive as sent */
	char *target; /* request-target as sent, e.g. "/socket?vsn=2.0.0" */
	char *path;   /* target's path, not percent-decoded */
	char *query;  /* after '?', not decoded; NULL when no '?' */
	int version_minor; /* the x of HTTP/1.x */
	bool has_body;     /* Content-Length > 0 or Transfer-Encoding sent */
	char *host;
	char *upgrade;
	char *connection;
	char *ws_key;     /* Sec-WebSocket-Key */
	char *ws_version; /* Sec-WebSocket-Version */
	char *origin;
	char *ws_protocol; /* Sec-WebSocket-Protocol */
	char *authorization;
	char *content_type;
	bool has_length;         /* Content-Length sent (at most once) */
	uint64_t content_length; /* its value */
	bool has_te;             /* Transfer-Encoding sent */
} pro_http_req;

/* Parses one request head from the front of `in`. `req` is overwritten (free
 * an earlier one first). Returns 1 when a whole head was parsed: its bytes
 * are removed from `in` (bytes after it stay) and `req` is filled. Returns 0
 * when more bytes are needed: `in` is untouched. Returns -1 when the request
 * is unacceptable, with *status the HTTP status to answer before closing:
 * 400 malformed (also for an allocation failure), 431 head longer than
 * PRO_HTTP_MAX_HEADER, 505 HTTP major version other than 1. On 0 and -1
 * `req` holds nothing to free. Lines must end in CRLF: a bare LF is
 * refused (400) as soon as it arrives. */
int pro_http_parse(struct evbuffer *in, pro_http_req *req, int *status);

/* Frees the strings of `req` and zeroes it; safe on a zeroed struct. */
void pro_http_req_free(pro_http_req *req);

/* True when the comma-separated header list `list` holds `token`
 * (case-insensitive, optional whitespace around items). NULL list: false. */
bool pro_http_list_has(const char *list, const char *token);

/* Value of the first `name` parameter of a raw query string ("a=1&b=x%20y"),
 * percent-decoded ('+' as space); a name without '=' has value "". Returns a
 * malloc'ed string the caller frees, or NULL when absent, when query is NULL
 * or name empty, when the value decodes to a NUL byte, or when allocation
 * fails. */
char *pro_http_query_get(const char *query, const char *name);

/* Standard reason phrase for an HTTP status; never NULL. */
const char *pro_http_reason(int status);

/* Appends a complete response to `out`: status line, `extra_headers`
 * (verbatim, each line CRLF-terminated; may be NULL), Content-Type when
 * `content_type` is not NULL, Content-Length, "Connection: close", then
 * `body` (NULL means empty). Nothing is appended on failure.
 * Returns 0 or PL_ENOMEM. */
int pro_http_write_response(struct evbuffer *out, int status,
    const char *extra_headers, const char *content_type, const char *body);

#endif
