/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6455 WebSocket, server side: the handshake checks and responses for a
 * request parsed by proto/http, and frame reading and writing straight on
 * libevent evbuffers, so an idle connection holds no frame buffer at all. */
#ifndef PARLEY_PROTO_WS_H
#define PARLEY_PROTO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/http.h"

struct evbuffer;

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
int pro_ws_write_accept(
    struct evbuffer *out, const pro_http_req *req, const char *protocol);

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
int pro_ws_write_frame(
    struct evbuffer *out, int opcode, const void *data, size_t len);

/* Appends a close frame with `code` and `reason` (NULL for none; cut to
 * PRO_WS_MAX_REASON bytes on a character boundary). Code 0 or 1005 sends an
 * empty payload. Returns 0 or PL_ENOMEM. */
int pro_ws_write_close(struct evbuffer *out, uint16_t code, const char *reason);

#endif
