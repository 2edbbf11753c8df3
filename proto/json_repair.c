/* SPDX-License-Identifier: Apache-2.0 */
/* A JSON scanner (no tree) that finds the values jansson refuses although
 * they are valid JSON, and a rewrite of the text around them. It runs only
 * after jansson has refused a message, so the common path pays nothing. */
#include "proto/json_repair.h"

#include "common/err.h"
#include "common/sbuf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum edit_kind { E_EMPTY, E_FFFD, E_RAW };
enum str_mode { STR_VALUE, STR_KEY, STR_LOSSY };

/* Replace text[off, off + len) by [] (E_EMPTY), \ufffd (E_FFFD, one
 * 6-byte escape) or a PRO_JSON_RAW string of itself (E_RAW). */
typedef struct edit {
	size_t off, len;
	int kind;
} edit;

typedef struct scan {
	const char *p;
	size_t n, i;
	edit *ed; /* in text order */
	size_t ned, cap;
	bool oom;
} scan;

static void
push_edit(scan *s, size_t off, size_t len, int kind)
{
	if (s->ned == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		edit *e = realloc(s->ed, cap * sizeof(*e));

		if (e == NULL) {
			s->oom = true;
			return;
		}
		s->ed = e;
		s->cap = cap;
	}
	s->ed[s->ned++] = (edit){ off, len, kind };
}

static void
skip_ws(scan *s)
{
	while (s->i < s->n &&
	    (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' ||
		s->p[s->i] == '\r')) {
		s->i++;
	}
}

static bool
is_digit(scan *s)
{
	return s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9';
}

/* One or more digits. */
static int
skip_digits(scan *s)
{
	size_t start = s->i;

	while (is_digit(s)) {
		s->i++;
	}
	return s->i > start ? 0 : -1;
}

static int
hex4(const char *p)
{
	int v = 0;

	for (int k = 0; k < 4; k++) {
		char c = p[k];
		int d = c >= '0' && c <= '9' ? c - '0'
		    : c >= 'a' && c <= 'f'   ? c - 'a' + 10
		    : c >= 'A' && c <= 'F'   ? c - 'A' + 10
					     : -1;
		if (d < 0) {
			return -1;
		}
		v = v * 16 + d;
	}
	return v;
}

/* Scans the string token at s->i. Escapes jansson refuses (a surrogate
 * that is not half of a high-low pair; \u0000 in a key) are recorded as
 * the mode says: the whole string becomes [] (a value) or each escape
 * becomes \ufffd (a key, a lossy string). Returns 0, or -1 if invalid. */
static int
scan_string(scan *s, int mode)
{
	size_t start = s->i;
	bool bad = false;

	s->i++;
	for (;;) {
		unsigned char c;
		int cp, lo;

		if (s->i >= s->n) {
			return -1;
		}
		c = (unsigned char)s->p[s->i];
		if (c == '"') {
			s->i++;
			break;
		}
		if (c < 0x20) {
			return -1;
		}
		if (c != '\\') {
			s->i++;
			continue;
		}
		if (s->i + 1 >= s->n) {
			return -1;
		}
		c = (unsigned char)s->p[s->i + 1];
		if (c != 'u') {
			if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
				return -1;
			}
			s->i += 2;
			continue;
		}
		if (s->i + 6 > s->n || (cp = hex4(s->p + s->i + 2)) < 0) {
			return -1;
		}
		if (cp >= 0xd800 && cp <= 0xdbff && s->i + 12 <= s->n &&
		    s->p[s->i + 6] == '\\' && s->p[s->i + 7] == 'u' &&
		    (lo = hex4(s->p + s->i + 8)) >= 0xdc00 && lo <= 0xdfff) {
			s->i += 12;
			continue;
		}
		if ((cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp == 0 && mode == STR_KEY)) {
			bad = true;
			if (mode != STR_VALUE) {
				push_edit(s, s->i, 6, E_FFFD);
			}
		}
		s->i += 6;
	}
	if (bad && mode == STR_VALUE) {
		push_edit(s, start, s->i - start, E_EMPTY);
	}
	return 0;
}

/* jansson reads reals with strtod and refuses an overflow to infinity. */
static bool
real_overflows(scan *s, const char *p, size_t n)
{
	char small[64], *buf = n < sizeof(small) ? small : malloc(n + 1);
	bool inf;

	if (buf == NULL) {
		s->oom = true;
		return false;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	inf = isinf(strtod(buf, NULL));
	if (buf != small) {
		free(buf);
	}
	return inf;
}

/* Scans the number token at s->i; a value jansson refuses (an integer
 * beyond int64, a real beyond double) becomes []. */
static int
scan_number(scan *s)
{
	size_t start = s->i, ds, dn;
	bool integer = true, bad;

	if (s->p[s->i] == '-') {
		s->i++;
	}
	ds = s->i;
	if (s->i < s->n && s->p[s->i] == '0') {
		s->i++;
	} else if (skip_digits(s) != 0) {
		return -1;
	}
	dn = s->i - ds;
	if (s->i < s->n && s->p[s->i] == '.') {
		s->i++;
		if (skip_digits(s) != 0) {
			return -1;
		}
		integer = false;
	}
	if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
		s->i++;
		if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-')) {
			s->i++;
		}
		if (skip_digits(s) != 0) {
			return -1;
		}
		integer = false;
	}
	if (integer) {
		const char *lim = s->p[start] == '-' ? "9223372036854775808"
						     : "9223372036854775807";
		bad = dn > 19 || (dn == 19 && memcmp(s->p + ds, lim, 19) > 0);
	} else {
		bad = real_overflows(s, s->p + start, s->i - start);
	}
	if (bad) {
		push_edit(s, start, s->i - start, E_EMPTY);
	}
	return 0;
}

static int
scan_literal(scan *s)
{
	static const char *const lits[] = { "true", "false", "null" };

	for (size_t k = 0; k < 3; k++) {
		size_t l = strlen(lits[k]);
		if (s->n - s->i >= l && memcmp(s->p + s->i, lits[k], l) == 0) {
			s->i += l;
			return 0;
		}
	}
	return -1;
}

/* Scans `"key" :` at s->i (after optional white space). */
static int
scan_key(scan *s, const char **key, size_t *keylen)
{
	size_t kb;

	skip_ws(s);
	if (s->i >= s->n || s->p[s->i] != '"') {
		return -1;
	}
	kb = s->i + 1;
	if (scan_string(s, STR_KEY) != 0) {
		return -1;
	}
	*key = s->p + kb;
	*keylen = s->i - 1 - kb;
	skip_ws(s);
	if (s->i >= s->n || s->p[s->i] != ':') {
		return -1;
	}
	s->i++;
	return 0;
}

/* Scans the key of an object member at `depth`; only the top-level
 * container's keys (depth 1) are kept, for the policy. */
static int
next_key(scan *s, size_t depth, const char **key, size_t *keylen)
{
	const char *k;
	size_t kl;

	if (scan_key(s, &k, &kl) != 0) {
		return -1;
	}
	if (depth == 1) {
		*key = k;
		*keylen = kl;
	}
	return 0;
}

/* Scans one JSON value (the whole text). Members of the top-level
 * container (depth 1) get their policy from `policy` (NULL: EMPTY). */
static int
scan_json(scan *s, pro_json_policy_fn policy, void *arg)
{
	char stack[PRO_JSON_MAX_DEPTH];
	size_t depth = 0, member = 0, mstart = 0, medits = 0, keylen = 0;
	const char *key = NULL;
	pro_json_policy pol = PRO_JSON_EMPTY;

	for (;;) {
		char c;
		int rc;

		/* A value starts here. */
		skip_ws(s);
		if (s->i >= s->n) {
			return -1;
		}
		if (depth == 1) {
			pol = policy ? policy(member, key, keylen, arg)
				     : PRO_JSON_EMPTY;
			mstart = s->i;
			medits = s->ned;
		}
		c = s->p[s->i];
		if (c == '[' || c == '{') {
			if (depth == PRO_JSON_MAX_DEPTH) {
				return -1;
			}
			stack[depth++] = c;
			s->i++;
			skip_ws(s);
			if (s->i < s->n &&
			    s->p[s->i] == (c == '[' ? ']' : '}')) {
				s->i++;
				depth--;
			} else {
				if (c == '{' &&
				    next_key(s, depth, &key, &keylen) != 0) {
					return -1;
				}
				continue;
			}
		} else {
			if (c == '"') {
				rc = scan_string(s,
				    depth == 1 && pol == PRO_JSON_LOSSY
					? STR_LOSSY
					: STR_VALUE);
			} else if (c == '-' || (c >= '0' && c <= '9')) {
				rc = scan_number(s);
			} else {
				rc = scan_literal(s);
			}
			if (rc != 0) {
				return -1;
			}
		}
		/* A value ended: close what ends with it, then find where the
		 * next one starts. */
		for (;;) {
			char close;

			if (depth == 0) {
				skip_ws(s);
				return s->i == s->n ? 0 : -1;
			}
			if (depth == 1) {
				/* A member ended. */
				if (pol == PRO_JSON_RAW && s->ned > medits) {
					s->ned = medits;
					push_edit(
					    s, mstart, s->i - mstart, E_RAW);
				}
				member++;
			}
			skip_ws(s);
			if (s->i >= s->n) {
				return -1;
			}
			close = stack[depth - 1] == '[' ? ']' : '}';
			if (s->p[s->i] == close) {
				s->i++;
				depth--;
				continue;
			}
			if (s->p[s->i] != ',') {
				return -1;
			}
			s->i++;
			if (stack[depth - 1] == '{' &&
			    next_key(s, depth, &key, &keylen) != 0) {
				return -1;
			}
			break;
		}
	}
}

static void
add_raw_string(pl_sbuf *b, const char *p, size_t n)
{
	char *tmp = malloc(PRO_JSON_RAW_MARK_LEN + n);

	if (tmp == NULL) {
		b->oom = 1;
		return;
	}
	memcpy(tmp, PRO_JSON_RAW_MARK, PRO_JSON_RAW_MARK_LEN);
	memcpy(tmp + PRO_JSON_RAW_MARK_LEN, p, n);
	pl_sbuf_json_strn(b, tmp, PRO_JSON_RAW_MARK_LEN + n);
	free(tmp);
}

int
pro_json_repair(const char *text, size_t len, pro_json_policy_fn policy,
    void *arg, char **out, size_t *out_len)
{
	scan s = { .p = text, .n = len };
	pl_sbuf b = PL_SBUF_INIT;
	size_t pos = 0;
	int rc;

	*out = NULL;
	*out_len = 0;
	rc = scan_json(&s, policy, arg);
	if (s.oom || rc != 0 || s.ned == 0) {
		free(s.ed);
		return s.oom ? PL_ENOMEM : rc != 0 ? PL_EINVAL : PL_ENOTFOUND;
	}
	for (size_t k = 0; k < s.ned; k++) {
		const edit *e = &s.ed[k];

		pl_sbuf_add(&b, text + pos, e->off - pos);
		if (e->kind == E_EMPTY) {
			pl_sbuf_str(&b, "[]");
		} else if (e->kind == E_FFFD) {
			pl_sbuf_str(&b, "\\ufffd");
		} else {
			add_raw_string(&b, text + e->off, e->len);
		}
		pos = e->off + e->len;
	}
	pl_sbuf_add(&b, text + pos, len - pos);
	free(s.ed);
	*out = pl_sbuf_take(&b, out_len);
	return *out != NULL ? PL_OK : PL_ENOMEM;
}

const char *
pro_json_raw(const char *s, size_t n, size_t *rawlen)
{
	scan sc;
	int rc;

	if (n <= PRO_JSON_RAW_MARK_LEN ||
	    memcmp(s, PRO_JSON_RAW_MARK, PRO_JSON_RAW_MARK_LEN) != 0) {
		return NULL;
	}
	/* A kept member starts and ends with its value: white space around
	 * it would not survive another decode, so such text is not ours. */
	if (strchr(" \t\r\n", s[PRO_JSON_RAW_MARK_LEN]) != NULL ||
	    strchr(" \t\r\n", s[n - 1]) != NULL) {
		return NULL;
	}
	memset(&sc, 0, sizeof(sc));
	sc.p = s + PRO_JSON_RAW_MARK_LEN;
	sc.n = n - PRO_JSON_RAW_MARK_LEN;
	rc = scan_json(&sc, NULL, NULL);
	free(sc.ed);
	if (rc != 0 || sc.oom) {
		return NULL;
	}
	*rawlen = sc.n;
	return sc.p;
}
