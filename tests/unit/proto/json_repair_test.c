/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON repair scanner: valid JSON that jansson refuses is rewritten so
 * that jansson parses it, each value by its member's policy; invalid JSON is
 * refused, and valid JSON jansson holds needs nothing. */
#include "proto/json_repair.h"

#include "common/err.h"
#include "tests/unit/test.h"

#include <jansson.h>
#include <stdlib.h>

static pro_json_policy
first_raw_second_lossy(size_t index, const char *key, size_t keylen, void *arg)
{
	(void)key;
	(void)keylen;
	(void)arg;
	return index == 0 ? PRO_JSON_RAW
	    : index == 1  ? PRO_JSON_LOSSY
			  : PRO_JSON_EMPTY;
}

/* Repairs in and expects exactly want; jansson must parse the result. */
static void
repaired(const char *in, const char *want)
{
	json_error_t jerr;
	json_t *j;
	char *out;
	size_t len;

	ASSERT_TRUE(json_loadb(in, strlen(in), JSON_ALLOW_NUL, &jerr) == NULL);
	ASSERT_OK(pro_json_repair(
	    in, strlen(in), first_raw_second_lossy, NULL, &out, &len));
	ASSERT_EQ(len, strlen(out));
	ASSERT_STREQ(out, want);
	j = json_loadb(out, len, JSON_ALLOW_NUL, &jerr);
	ASSERT_TRUE(j != NULL);
	json_decref(j);
	free(out);
}

static void
status_of(const char *in, int want)
{
	char *out = (char *)1;
	size_t len;

	ASSERT_EQ(
	    pro_json_repair(in, strlen(in), NULL, NULL, &out, &len), want);
	ASSERT_TRUE(out == NULL);
}

static void
nothing_to_repair(void)
{
	status_of("[1,\"a\",{\"b\":null},true,false,-0.5e-3]", PL_ENOTFOUND);
	status_of("{\"k\":[\"\\ud83d\\ude00\",\"\\u0000\"]}", PL_ENOTFOUND);
	status_of(
	    "[9223372036854775807,-9223372036854775808,1e-999]", PL_ENOTFOUND);
	status_of(" [ ] ", PL_ENOTFOUND);
	status_of("\"scalar\"", PL_ENOTFOUND);
}

static void
invalid_json(void)
{
	static const char *const bad[] = { "", "[", "[1,", "[1,]", "{\"a\"}",
		"{\"a\":}", "{1:2}", "[01]", "[1.]", "[-]", "[.5]", "[1e]",
		"[tru]", "[] x", "[\"\\x\"]", "[\"\\u12\"]", "[\"a]",
		"[\"\x01\"]", "[nul]", "{\"a\":1,}", "[1 2]", "[\"\\ud800\"" };
	char *deep = malloc(2 * PRO_JSON_MAX_DEPTH + 3);
	json_error_t jerr;
	json_t *j;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		status_of(bad[i], PL_EINVAL);
	}
	/* As deep as jansson goes, then one level deeper. */
	memset(deep, '[', PRO_JSON_MAX_DEPTH);
	memset(deep + PRO_JSON_MAX_DEPTH, ']', PRO_JSON_MAX_DEPTH);
	deep[2 * PRO_JSON_MAX_DEPTH] = '\0';
	status_of(deep, PL_ENOTFOUND);
	json_decref(j = json_loads(deep, 0, &jerr));
	ASSERT_TRUE(j != NULL);
	memset(deep, '[', PRO_JSON_MAX_DEPTH + 1);
	memset(deep + PRO_JSON_MAX_DEPTH + 1, ']', PRO_JSON_MAX_DEPTH + 1);
	deep[2 * PRO_JSON_MAX_DEPTH + 2] = '\0';
	status_of(deep, PL_EINVAL);
	free(deep);
}

static void
values_become_empty(void)
{
	repaired("[0,0,\"a\\ud800b\"]", "[0,0,[]]");
	repaired("[0,0,{\"c\":\"\\udc00\\ud800\",\"d\":1}]",
	    "[0,0,{\"c\":[],\"d\":1}]");
	repaired("[0,0,99999999999999999999]", "[0,0,[]]");
	repaired(
	    "[0,0,9223372036854775808,-9223372036854775809]", "[0,0,[],[]]");
	repaired("[0,0,{\"limit\":1e999,\"x\":-1E+400}]",
	    "[0,0,{\"limit\":[],\"x\":[]}]");
	repaired("[0,0,[\"\\ud800\\u0041\"]]", "[0,0,[[]]]");
}

static void
keys_become_lossy(void)
{
	repaired("[0,0,{\"a\\u0000\":1}]", "[0,0,{\"a\\ufffd\":1}]");
	repaired(
	    "[0,0,{\"\\ud800x\\udfff\":1}]", "[0,0,{\"\\ufffdx\\ufffd\":1}]");
	repaired("{\"\\u0000\":1}", "{\"\\ufffd\":1}");
}

static void
raw_and_lossy_members(void)
{
	const char *raw;
	size_t rl;
	json_error_t jerr;
	json_t *j;
	char *out;
	size_t len;

	repaired("[99999999999999999999,0]",
	    "[\"\\u0000json:99999999999999999999\",0]");
	repaired(
	    "[ \"a\\ud800\" ,0]", "[ \"\\u0000json:\\\"a\\\\ud800\\\"\" ,0]");
	repaired("[[1, 1e999],0]", "[\"\\u0000json:[1, 1e999]\",0]");
	repaired("[0,\"top\\ud800ic\"]", "[0,\"top\\ufffdic\"]");
	repaired("[0,[\"\\ud800\"]]", "[0,[[]]]");
	/* The raw text comes back out of the parsed string. */
	ASSERT_OK(pro_json_repair(
	    "[-1e999]", 8, first_raw_second_lossy, NULL, &out, &len));
	j = json_loadb(out, len, JSON_ALLOW_NUL, &jerr);
	ASSERT_TRUE(j != NULL);
	raw = pro_json_raw(json_string_value(json_array_get(j, 0)),
	    json_string_length(json_array_get(j, 0)), &rl);
	ASSERT_TRUE(raw != NULL);
	ASSERT_EQ(rl, 6);
	ASSERT_TRUE(memcmp(raw, "-1e999", 6) == 0);
	json_decref(j);
	free(out);
}

static void
raw_mark_checked(void)
{
	size_t rl = 0;

	ASSERT_TRUE(pro_json_raw("\0json:5", 7, &rl) != NULL);
	ASSERT_EQ(rl, 1);
	ASSERT_TRUE(pro_json_raw("\0json:", 6, &rl) == NULL);
	ASSERT_TRUE(pro_json_raw("\0json:[1,", 9, &rl) == NULL);
	ASSERT_TRUE(pro_json_raw("\0json:1]", 8, &rl) == NULL);
	ASSERT_TRUE(pro_json_raw("\0jsom:1", 7, &rl) == NULL);
	ASSERT_TRUE(pro_json_raw("json:1", 6, &rl) == NULL);
	/* White space around the value (found by phx_fuzz). */
	ASSERT_TRUE(pro_json_raw("\0json: 9e999", 12, &rl) == NULL);
	ASSERT_TRUE(pro_json_raw("\0json:9e999\n", 12, &rl) == NULL);
}

TEST_LIST{
	TEST_ENTRY(nothing_to_repair),
	TEST_ENTRY(invalid_json),
	TEST_ENTRY(values_become_empty),
	TEST_ENTRY(keys_become_lossy),
	TEST_ENTRY(raw_and_lossy_members),
	TEST_ENTRY(raw_mark_checked),
};

TEST_MAIN()
