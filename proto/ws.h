/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6455 WebSocket, server side: the HTTP/1.1 upgrade request parser and
 * responses, the handshake checks, and frame reading and writing straight on
 * libevent evbuffers, so an idle connection holds no frame buffer at all. */
#ifndef PARLEY_PROTO_WS_H
#define PARLEY_PROTO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* ---- HTTP request ---- */

/* Longest request line plus header block, final empty line included. */
#define PRO_HTTP_MAX_HEADER 8192

/* A parsed request head. Every string is malloc'ed and NUL-terminated, NULL
 * when absent, and owned by the struct: release with pro_http_req_free().
 * Header names match case-insensitively. Upgrade, Connection and
 * Sec-WebSocket-Protocol are lists: repeated lines are joined with ", ".
 * Host, Sec-WebSocket-Key, Sec-WebSocket-Version and Origin must appear at
 * most once (a repeat makes the request malformed). */
typedef struct pro_http_req {
	char *method;      /* e.g. "GET", case-sensitive as sent */
	char *target;      /* request-target as sent, e.g. "/socket?vsn=2.0.0" */
	char *path;        /* target's path, not percent-decoded */
	char *query;       /* after '?', not decoded; NULL when no '?' */
	int version_minor; /* the x of HTTP/1.x */
	bool has_body;     /* Content-Length > 0 or Transfer-Encoding sent */
	char *host;
	char *upgrade;
	char *connection;
	char *ws_key;      /* Sec-WebSocket-Key */
	char *ws_version;  /* Sec-WebSocket-Version */
	char *origin;
	char *ws_protocol; /* Sec-WebSocket-Protocol */
} pro_http_req;

/* Parses one request head from the front of `in`. `req` is overwritten (free
 * an earlier one first). Returns 1 when a whole head was parsed: its bytes
 * are removed from `in` (bytes after it stay) and `req` is filled. Returns 0
 * when more bytes are needed: `in` is untouched. Returns -1 when the request
 * is unacceptable, with *status the HTTP status to answer before closing:
 * 400 malformed (also for an allocation failure), 431 head longer than
 * PRO_HTTP_MAX_HEADER, 505 HTTP major version other than 1. On 0 and -1
 * `req` holds nothing to free. Lines must end in CRLF. */
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

/* ---- Handshake ---- */

/* Checks that `req` is a valid WebSocket opening handshake (RFC 6455 4.2.1).
 * Returns 0 when it is, else the status to refuse it with: 405 method not
 * GET; 400 HTTP/1.0, a body, no Host, no "websocket" in Upgrade, no "upgrade"
 * in Connection, missing Sec-WebSocket-Version, or Sec-WebSocket-Key missing
 * or not the base64 of 16 bytes; 426 Sec-WebSocket-Version other than 13
 * (answer with pro_ws_write_refusal(), which adds the required header). */
int pro_ws_check_upgrade(const pro_http_req *req);

/* Computes Sec-WebSocket-Accept for `key`: base64(SHA-1(key + GUID)), 28
 * characters and a NUL written to `out`. Returns 0, or PL_ENOMEM when
 * libcrypto cannot allocate (out is then ""). */
int pro_ws_accept_key(const char *key, char out[29]);

/* Appends "101 Switching Protocols" for a request that passed
 * pro_ws_check_upgrade(). `protocol` (NULL for none) is echoed in
 * Sec-WebSocket-Protocol and must be one of the client's offers.
 * Returns 0, PL_EINVAL (no key, or CR/LF in protocol) or PL_ENOMEM; nothing
 * is appended on failure. */
int pro_ws_write_accept(struct evbuffer *out, const pro_http_req *req,
    const char *protocol);

/* Appends a plain-text refusal for a status from pro_http_parse() or
 * pro_ws_check_upgrade() (or any other, e.g. 403), with the headers that
 * status requires (426: Sec-WebSocket-Version: 13; 405: Allow: GET).
 * Returns 0 or PL_ENOMEM. */
int pro_ws_write_refusal(struct evbuffer *out, int status);

/* ---- Frames ---- */

enum pro_ws_opcode {
	PRO_WS_CONT = 0x0,
	PRO_WS_TEXT = 0x1,
	PRO_WS_BINARY = 0x2,
	PRO_WS_CLOSE = 0x8,
	PRO_WS_PING = 0x9,
	PRO_WS_PONG = 0xa,
};

enum pro_ws_close_code {
	PRO_WS_CLOSE_NORMAL = 1000,
	PRO_WS_CLOSE_GOING_AWAY = 1001,
	PRO_WS_CLOSE_PROTOCOL = 1002,
	PRO_WS_CLOSE_NO_STATUS = 1005, /* received only: never sent */
	PRO_WS_CLOSE_BAD_DATA = 1007,  /* invalid UTF-8 */
	PRO_WS_CLOSE_POLICY = 1008,
	PRO_WS_CLOSE_TOO_BIG = 1009,
	PRO_WS_CLOSE_INTERNAL = 1011,
};

/* Longest control frame payload, and longest close reason. */
#define PRO_WS_MAX_CONTROL 125
#define PRO_WS_MAX_REASON 123

/* Per-connection reader state, embedded by the caller: a few bytes, plus an
 * evbuffer that exists only while a fragmented message is being assembled.
 * Fields are private. */
typedef struct pro_ws_reader {
	struct evbuffer *frag; /* fragments so far, unmasked; NULL if none */
	size_t max_bytes;      /* message size limit */
	uint64_t checked;      /* UTF-8 checked prefix of an incomplete frame */
	uint16_t fail_code;    /* close code once a violation was reported */
	uint8_t frag_opcode;   /* TEXT/BINARY being assembled, 0 if none */
	uint8_t utf8;          /* validator state for the text in progress */
} pro_ws_reader;

/* One message or control frame read by pro_ws_read(). */
typedef struct pro_ws_msg {
	int opcode;          /* TEXT, BINARY, PING, PONG or CLOSE */
	char *data;          /* malloc'ed, NUL-terminated, caller frees; for
	                      * CLOSE the reason text (without the code) */
	size_t len;          /* bytes in data, NUL excluded */
	uint16_t close_code; /* CLOSE: the peer's code, 1005 if none sent;
	                      * after -1: the code to close with */
	const char *reason;  /* after -1: static text for the close frame */
} pro_ws_msg;

/* Prepares `r`; messages longer than max_message_bytes are refused with
 * 1009 (0 means no limit). */
void pro_ws_reader_init(pro_ws_reader *r, size_t max_message_bytes);

/* Frees what `r` holds. `r` may be initialised again afterwards. */
void pro_ws_reader_fini(pro_ws_reader *r);

/* Reads client frames from the front of `in` (server side: frames must be
 * masked). Returns 1 when a whole message or control frame was consumed and
 * stored in *msg (msg->data is then never NULL and the caller frees it).
 * Fragments of a message are consumed into the reader silently, interleaved
 * control frames are returned as they come. Returns 0 when more bytes are
 * needed: an incomplete frame stays in `in` untouched. Returns -1 on a
 * violation of RFC 6455 section 5, with msg->close_code and msg->reason
 * telling how to close: 1002 protocol error, 1007 invalid UTF-8 (text or
 * close reason; found as soon as the bad byte arrives), 1009 message over
 * the limit (found from the frame header, before anything is allocated),
 * 1011 allocation failure. After -1 the reader stays failed. */
int pro_ws_read(pro_ws_reader *r, struct evbuffer *in, pro_ws_msg *msg);

/* True for a close code a peer may send (Autobahn rule): 1000-1003,
 * 1007-1014, 3000-4999. */
bool pro_ws_close_code_valid(unsigned code);

/* Writes the header of an unmasked final frame of `len` payload bytes into
 * hdr and returns its length (2, 4 or 10). Lets a broadcast build one frame
 * and share the same bytes between connections. */
size_t pro_ws_frame_header(uint8_t hdr[10], int opcode, size_t len);

/* Appends one unmasked final frame to `out`. Returns 0 or PL_ENOMEM; nothing
 * is appended on failure. */
int pro_ws_write_frame(struct evbuffer *out, int opcode, const void *data,
    size_t len);

/* Appends a close frame with `code` and `reason` (NULL for none; cut to
 * PRO_WS_MAX_REASON bytes on a character boundary). Code 0 or 1005 sends an
 * empty payload. Returns 0 or PL_ENOMEM. */
int pro_ws_write_close(struct evbuffer *out, uint16_t code,
    const char *reason);

#endif
