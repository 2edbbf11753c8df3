/* SPDX-License-Identifier: Apache-2.0 */
/* Valid JSON (RFC 8259) that jansson cannot hold: strings with a lone UTF-16
 * surrogate escape ("a\ud800b", what a browser's JSON.stringify emits for
 * text cut in the middle of an emoji, or a reversed pair), integers beyond
 * int64, reals beyond double, and \u0000 in object keys. jansson refuses the
 * whole text for one such value; pro_json_repair rewrites those values so
 * that the rest of a message can still be decoded and answered, and the
 * value's owner can refuse it with its own error. */
#ifndef PARLEY_PROTO_JSON_REPAIR_H
#define PARLEY_PROTO_JSON_REPAIR_H

#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting scanned, as jansson's own limit. */
#define PRO_JSON_MAX_DEPTH 2048

/* How the values jansson cannot hold are rewritten inside one member of the
 * top-level array or object. Object keys always become lossy (each bad
 * escape turns into \ufffd) whatever the policy. */
typedef enum pro_json_policy {
	/* Each such value becomes [] (an empty array: no field of ours
	 * accepts one, so the field's owner refuses it as the wrong type). */
	PRO_JSON_EMPTY,
	/* A string member stays a string: each lone surrogate escape turns
	 * into \ufffd. Anything else is rewritten as PRO_JSON_EMPTY. */
	PRO_JSON_LOSSY,
	/* If the member holds any such value, the whole member becomes a
	 * string PRO_JSON_RAW_MARK + the member's JSON text as sent, which
	 * pro_json_raw gives back, so that it can be echoed verbatim. */
	PRO_JSON_RAW,
} pro_json_policy;

/* Picks the policy of one member of the top-level container: its index,
 * and for an object its key as raw bytes between the quotes (escapes not
 * decoded); key is NULL for an array. */
typedef pro_json_policy (*pro_json_policy_fn)(
    size_t index, const char *key, size_t keylen, void *arg);

/* Scans text[0..len). Returns PL_OK with *out (malloc'ed, NUL-terminated,
 * caller frees) and *out_len when at least one value was rewritten;
 * PL_ENOTFOUND when there is nothing to rewrite; PL_EINVAL when the text is
 * not one valid JSON value or nests deeper than PRO_JSON_MAX_DEPTH;
 * PL_ENOMEM. *out is NULL unless PL_OK. */
int pro_json_repair(const char *text, size_t len, pro_json_policy_fn policy,
    void *arg, char **out, size_t *out_len);

/* The prefix of a PRO_JSON_RAW string: a NUL byte, then "json:". */
#define PRO_JSON_RAW_MARK "\0json:"
#define PRO_JSON_RAW_MARK_LEN 6

/* When s[0..n) is PRO_JSON_RAW_MARK followed by exactly one valid JSON
 * value with no white space around it, returns that value's text (inside
 * s) and its length in *rawlen; else NULL. Whoever wrote the string, what it returns is valid JSON. */
const char *pro_json_raw(const char *s, size_t n, size_t *rawlen);

#endif
