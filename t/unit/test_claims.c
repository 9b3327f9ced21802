
/*
 * JWT claims: libjwt checks only the signature, so expiry, "not before"
 * and the identity claims are checked here, with their JSON types; and the
 * token is taken apart strictly before libjwt reads it (ngx_chat_jws_parse).
 */


#include "ngx_chat_test.h"


#define NOW      1700000000
#define LEEWAY   30


static ngx_chat_identity_t  id;
static const char          *reason;


static ngx_int_t
check_with(const char *claims, time_t now, time_t leeway,
    const char *tenant_claim)
{
    ngx_chat_claims_rules_t  rules;

    rules.now = now;
    rules.leeway = leeway;
    rules.tenant_claim = tenant_claim;

    ngx_memset(&id, 0xa5, sizeof(ngx_chat_identity_t));
    reason = NULL;

    return ngx_chat_claims_check(ngx_chat_test_json(claims), &rules, &id,
                                 &reason);
}


/* with the module's defaults: 30 s leeway, tenant in "tid" */

static ngx_int_t
check(const char *claims)
{
    return check_with(claims, NOW, LEEWAY, "tid");
}


/* a claims object: "sub" and a valid "exp" followed by "more" */

static const char *
claims(const char *more)
{
    return ngx_chat_test_sprintf("{\"sub\": \"alice\", \"exp\": %d%s%s}",
                                 NOW + 3600, *more ? ", " : "", more);
}


#define refused(claims, why)                                                  \
    do {                                                                      \
        ngx_chat_expect_int(check(claims), NGX_ERROR);                        \
        ngx_chat_expect_has(reason, why);                                     \
    } while (0)


static void
test_claims_valid_token_gives_its_identity(void)
{
    ngx_chat_expect_int(check(claims("\"tid\": \"acme\", \"name\": \"Alice\"")),
                        NGX_OK);

    ngx_chat_expect_bytes(id.user.data, id.user.len, "alice");
    ngx_chat_expect_bytes(id.tenant.data, id.tenant.len, "acme");
    ngx_chat_expect_bytes(id.name.data, id.name.len, "Alice");
    ngx_chat_expect_int(id.exp, NOW + 3600);
}


static void
test_claims_that_are_not_an_object_are_refused(void)
{
    refused("[]", "claims are not an object");
    refused("\"alice\"", "claims are not an object");
    refused("null", "claims are not an object");
}


static void
test_claims_without_exp_are_refused(void)
{
    refused("{\"sub\": \"alice\"}", "no \"exp\" claim");
}


static void
test_claims_with_non_numeric_exp_are_refused(void)
{
    refused("{\"sub\": \"alice\", \"exp\": \"1800000000\"}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"alice\", \"exp\": null}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"alice\", \"exp\": true}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"alice\", \"exp\": [1800000000]}",
            "\"exp\" is not a number of seconds");
}


static void
test_claims_exp_within_leeway_passes_beyond_is_expired(void)
{
    /* valid while now < exp + leeway */
    ngx_chat_expect_int(check(ngx_chat_test_sprintf(
                            "{\"sub\": \"a\", \"exp\": %d}", NOW - LEEWAY + 1)),
                        NGX_OK);

    refused(ngx_chat_test_sprintf("{\"sub\": \"a\", \"exp\": %d}",
                                  NOW - LEEWAY),
            "token expired");
    refused(ngx_chat_test_sprintf("{\"sub\": \"a\", \"exp\": %d}", 0),
            "token expired");
    refused(ngx_chat_test_sprintf("{\"sub\": \"a\", \"exp\": %d}", -1),
            "token expired");
}


static void
test_claims_exp_without_leeway_expires_at_exp(void)
{
    ngx_chat_expect_int(check_with(ngx_chat_test_sprintf(
                            "{\"sub\": \"a\", \"exp\": %d}", NOW + 1),
                                   NOW, 0, "tid"),
                        NGX_OK);
    ngx_chat_expect_int(check_with(ngx_chat_test_sprintf(
                            "{\"sub\": \"a\", \"exp\": %d}", NOW),
                                   NOW, 0, "tid"),
                        NGX_ERROR);
    ngx_chat_expect_has(reason, "token expired");
}


static void
test_claims_exp_may_be_a_fraction_of_seconds(void)
{
    ngx_chat_expect_int(check(ngx_chat_test_sprintf(
                            "{\"sub\": \"a\", \"exp\": %d.75}", NOW + 10)),
                        NGX_OK);
    ngx_chat_expect_int(id.exp, NOW + 10);

    refused(ngx_chat_test_sprintf("{\"sub\": \"a\", \"exp\": %d.5}",
                                  NOW - LEEWAY - 1),
            "token expired");
}


static void
test_claims_huge_exp_is_not_a_number_of_seconds(void)
{
    /* 2^40 - 1 is the largest accepted: sums with it cannot overflow */
    ngx_chat_expect_int(check("{\"sub\": \"a\", \"exp\": 1099511627775}"),
                        NGX_OK);
    ngx_chat_expect_int(id.exp, 1099511627775LL);

    refused("{\"sub\": \"a\", \"exp\": 1099511627776}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"a\", \"exp\": 9223372036854775807}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"a\", \"exp\": -9223372036854775807}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"a\", \"exp\": 1e300}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"a\", \"exp\": -1e300}",
            "\"exp\" is not a number of seconds");
    refused("{\"sub\": \"a\", \"exp\": 1.2e12}",
            "\"exp\" is not a number of seconds");
}


static void
test_claims_huge_exp_with_huge_leeway_does_not_overflow(void)
{
    ngx_chat_expect_int(check_with("{\"sub\": \"a\", \"exp\": 1099511627775}",
                                   NOW, 1099511627775LL, "tid"),
                        NGX_OK);
    ngx_chat_expect_int(check_with("{\"sub\": \"a\", \"exp\": -1099511627775,"
                                   " \"nbf\": 1099511627775}",
                                   NOW, 1099511627775LL, "tid"),
                        NGX_ERROR);
}


static void
test_claims_nbf_within_leeway_passes_beyond_is_not_yet_valid(void)
{
    ngx_chat_expect_int(check(claims(ngx_chat_test_sprintf(
                            "\"nbf\": %d", NOW + LEEWAY))),
                        NGX_OK);
    ngx_chat_expect_int(check(claims(ngx_chat_test_sprintf(
                            "\"nbf\": %d", NOW - 100000))),
                        NGX_OK);

    refused(claims(ngx_chat_test_sprintf("\"nbf\": %d", NOW + LEEWAY + 1)),
            "token not yet valid");
    refused(claims("\"nbf\": 1099511627775"), "token not yet valid");
}


static void
test_claims_with_non_numeric_nbf_are_refused(void)
{
    refused(claims("\"nbf\": \"0\""), "\"nbf\" is not a number of seconds");
    refused(claims("\"nbf\": null"), "\"nbf\" is not a number of seconds");
    refused(claims("\"nbf\": 1099511627776"),
            "\"nbf\" is not a number of seconds");
}


static void
test_claims_sub_must_be_a_user_id_of_1_to_128_bytes(void)
{
    ngx_chat_expect_int(check(ngx_chat_test_sprintf(
                            "{\"sub\": \"%s\", \"exp\": %d}",
                            ngx_chat_test_repeat("s", 128), NOW + 60)),
                        NGX_OK);
    ngx_chat_expect_int(id.user.len, 128);

    refused(ngx_chat_test_sprintf("{\"exp\": %d}", NOW + 60),
            "\"sub\" is missing or not a user id");
    refused(ngx_chat_test_sprintf("{\"sub\": \"\", \"exp\": %d}", NOW + 60),
            "\"sub\" is missing or not a user id");
    refused(ngx_chat_test_sprintf("{\"sub\": \"%s\", \"exp\": %d}",
                                  ngx_chat_test_repeat("s", 129), NOW + 60),
            "\"sub\" is missing or not a user id");
}


static void
test_claims_sub_that_is_not_a_clean_string_is_refused(void)
{
    refused(ngx_chat_test_sprintf("{\"sub\": 42, \"exp\": %d}", NOW + 60),
            "\"sub\" is missing or not a user id");
    refused(ngx_chat_test_sprintf("{\"sub\": null, \"exp\": %d}", NOW + 60),
            "\"sub\" is missing or not a user id");
    refused(ngx_chat_test_sprintf("{\"sub\": \"a\\nb\", \"exp\": %d}",
                                  NOW + 60),
            "\"sub\" is missing or not a user id");
    refused(ngx_chat_test_sprintf("{\"sub\": \"a\\u007f\", \"exp\": %d}",
                                  NOW + 60),
            "\"sub\" is missing or not a user id");
}


static void
test_claims_without_tenant_claim_are_in_tenant_default(void)
{
    ngx_chat_expect_int(check(claims("")), NGX_OK);
    ngx_chat_expect_bytes(id.tenant.data, id.tenant.len, "default");
}


static void
test_claims_tenant_comes_from_the_configured_claim(void)
{
    ngx_chat_expect_int(check_with(claims("\"tid\": \"acme\", \"org\": \"x\""),
                                   NOW, LEEWAY, "org"),
                        NGX_OK);
    ngx_chat_expect_bytes(id.tenant.data, id.tenant.len, "x");

    /* "tid" means nothing when the tenant claim is "org" */
    ngx_chat_expect_int(check_with(claims("\"tid\": \"acme\""), NOW, LEEWAY,
                                   "org"),
                        NGX_OK);
    ngx_chat_expect_bytes(id.tenant.data, id.tenant.len, "default");
}


static void
test_claims_tenant_that_is_not_a_string_id_is_refused(void)
{
    const char  *why;

    why = "the tenant claim is not a string id";

    refused(claims("\"tid\": \"\""), why);
    refused(claims("\"tid\": null"), why);
    refused(claims("\"tid\": 7"), why);
    refused(claims("\"tid\": [\"acme\"]"), why);
    refused(claims("\"tid\": \"a\\tb\""), why);
    refused(claims(ngx_chat_test_sprintf("\"tid\": \"%s\"",
                                         ngx_chat_test_repeat("t", 129))),
            why);

    ngx_chat_expect_int(check(claims(ngx_chat_test_sprintf(
                            "\"tid\": \"%s\"",
                            ngx_chat_test_repeat("t", 128)))),
                        NGX_OK);
    ngx_chat_expect_int(id.tenant.len, 128);
}


static void
test_claims_name_absent_or_null_is_empty(void)
{
    ngx_chat_expect_int(check(claims("")), NGX_OK);
    ngx_chat_expect(id.name.data == NULL);
    ngx_chat_expect_int(id.name.len, 0);

    ngx_chat_expect_int(check(claims("\"name\": null")), NGX_OK);
    ngx_chat_expect(id.name.data == NULL);
    ngx_chat_expect_int(id.name.len, 0);

    ngx_chat_expect_int(check(claims("\"name\": \"\"")), NGX_OK);
    ngx_chat_expect_int(id.name.len, 0);
}


static void
test_claims_name_of_200_characters_passes_201_is_refused(void)
{
    /* characters, not bytes: 200 of them are 800 bytes here */
    ngx_chat_expect_int(check(claims(ngx_chat_test_sprintf(
                            "\"name\": \"%s\"",
                            ngx_chat_test_repeat("\xf0\x9f\x98\x80", 200)))),
                        NGX_OK);
    ngx_chat_expect_int(id.name.len, 800);

    refused(claims(ngx_chat_test_sprintf("\"name\": \"%s\"",
                                         ngx_chat_test_repeat("n", 201))),
            "\"name\" is not a string of at most 200 characters");
}


static void
test_claims_name_that_is_not_a_string_is_refused(void)
{
    const char  *why;

    why = "\"name\" is not a string";

    refused(claims("\"name\": 1"), why);
    refused(claims("\"name\": true"), why);
    refused(claims("\"name\": [\"Alice\"]"), why);
    refused(claims("\"name\": {\"first\": \"Alice\"}"), why);
}


static void
test_claims_bot_is_true_false_or_absent(void)
{
    const char  *why;

    ngx_chat_expect_int(check(claims("\"bot\": true")), NGX_OK);
    ngx_chat_expect_int(id.bot, 1);
    ngx_chat_expect_int(check(claims("\"bot\": false")), NGX_OK);
    ngx_chat_expect_int(id.bot, 0);
    ngx_chat_expect_int(check(claims("")), NGX_OK);
    ngx_chat_expect_int(id.bot, 0);

    why = "\"bot\" is not true or false";

    refused(claims("\"bot\": 1"), why);
    refused(claims("\"bot\": \"true\""), why);
    refused(claims("\"bot\": null"), why);
    refused(claims("\"bot\": [true]"), why);
}


static void
test_claims_unknown_claims_are_ignored(void)
{
    ngx_chat_expect_int(check(claims("\"iss\": \"x\", \"aud\": [1], "
                                     "\"iat\": \"whenever\"")),
                        NGX_OK);
}


/* the class of the last refusal of check_with() */

static const char *
reason_class(const char *claims)
{
    ngx_chat_claims_rules_t  rules;
    ngx_chat_token_fault_t   fault;

    rules.now = NOW;
    rules.leeway = LEEWAY;
    rules.tenant_claim = "tid";

    fault.reason = NULL;
    fault.text = NULL;

    if (ngx_chat_claims_verify(ngx_chat_test_json(claims), &rules, &id,
                               &fault)
        == NGX_OK)
    {
        return "ok";
    }

    ngx_chat_expect(fault.text != NULL && fault.text[0] != '\0');

    return fault.reason;
}


#define classed(claims, class)                                                \
    ngx_chat_expect_bytes(reason_class(claims),                               \
                          ngx_strlen(reason_class(claims)), class)


static void
test_claims_refusals_name_their_class(void)
{
    classed("[]", "malformed");
    classed("{\"sub\": \"a\"}", "missing_claim");
    classed("{\"sub\": \"a\", \"exp\": \"soon\"}", "invalid_claim");
    classed(ngx_chat_test_sprintf("{\"sub\": \"a\", \"exp\": %d}",
                                  NOW - LEEWAY),
            "expired");
    classed(claims(ngx_chat_test_sprintf("\"nbf\": %d", NOW + LEEWAY + 1)),
            "not_yet_valid");
    classed(claims("\"nbf\": \"0\""), "invalid_claim");
    classed(ngx_chat_test_sprintf("{\"exp\": %d}", NOW + 60),
            "missing_claim");
    classed(ngx_chat_test_sprintf("{\"sub\": 7, \"exp\": %d}", NOW + 60),
            "invalid_claim");
    classed(claims("\"tid\": \"\""), "invalid_claim");
    classed(claims("\"name\": 1"), "invalid_claim");
    classed(claims("\"tid\": \"acme\""), "ok");
}


/* a sub and a tid: both ids, under the same rules */

static void
id_refused(const char *json_string)
{
    refused(ngx_chat_test_sprintf("{\"sub\": \"%s\", \"exp\": %d}",
                                  json_string, NOW + 60),
            "\"sub\" is missing or not a user id");
    refused(claims(ngx_chat_test_sprintf("\"tid\": \"%s\"", json_string)),
            "the tenant claim is not a string id");
}


static void
id_accepted(const char *json_string, const char *utf8)
{
    ngx_chat_expect_int(check(ngx_chat_test_sprintf(
                            "{\"sub\": \"%s\", \"exp\": %d, \"tid\": \"%s\"}",
                            json_string, NOW + 60, json_string)),
                        NGX_OK);
    ngx_chat_expect_bytes(id.user.data, id.user.len, utf8);
    ngx_chat_expect_bytes(id.tenant.data, id.tenant.len, utf8);
}


static void
test_claims_ids_with_c1_controls_are_refused(void)
{
    /* U+0085 (NEL) was accepted as a user id */
    id_refused("al\\u0085ice");
    id_refused("\\u0080");
    id_refused("x\\u009f");
    id_refused("a\\u001bb");
    id_refused("a\\u007f");
}


static void
test_claims_ids_with_invisible_or_bidi_chars_are_refused(void)
{
    /* zero-width, direction marks and overrides, isolates, the BOM */
    id_refused("ali\\u200bce");
    id_refused("ali\\u200dce");
    id_refused("\\u200ealice");
    id_refused("\\u202eecila");
    id_refused("a\\u2066b\\u2069");
    id_refused("\\ufeffalice");
    id_refused("ali\\u00adce");
    id_refused("a\\u061cb");
    id_refused("a\\u2060b");
    id_refused("\\u3164");
    id_refused("a\\ufe0f");
    /* a tag character, U+E0041 */
    id_refused("a\\udb40\\udc41");
}


static void
test_claims_ids_with_white_space_but_inner_spaces_refused(void)
{
    id_refused("a\\u00a0b");
    id_refused("a\\u2003b");
    id_refused("a\\u2028b");
    id_refused("a\\u3000b");
    id_refused("a\\tb");
    id_refused(" alice");
    id_refused("alice ");
    id_refused(" ");

    id_accepted("Alice Smith", "Alice Smith");
}


static void
test_claims_ids_with_noncharacters_are_refused(void)
{
    id_refused("a\\ufffe");
    id_refused("a\\uffff");
    id_refused("a\\ufdd0");
    /* U+1FFFF */
    id_refused("a\\ud83f\\udfff");
}


static void
test_claims_ids_of_any_script_are_accepted(void)
{
    id_accepted("alice@example.com", "alice@example.com");
    id_accepted("Zo\\u00eb", "Zo\xc3\xab");
    id_accepted("\\u7528\\u6237", "\xe7\x94\xa8\xe6\x88\xb7");
    id_accepted("\\ud83d\\ude00", "\xf0\x9f\x98\x80");
    id_accepted("a-b_c.d:e/f", "a-b_c.d:e/f");

    /* bytes, not characters: 64 two-byte characters, then one more byte */
    id_accepted(ngx_chat_test_repeat("\\u00e9", 64),
                ngx_chat_test_repeat("\xc3\xa9", 64));
    id_refused(ngx_chat_test_sprintf("%sa",
                                     ngx_chat_test_repeat("\\u00e9", 64)));
}


static void
test_claims_id_check_refuses_bytes_that_are_not_utf8(void)
{
    ngx_chat_expect(ngx_chat_token_id_valid(ngx_chat_test_literal("abc"),
                                            3, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(ngx_chat_test_literal("a\xc3"),
                                             2, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(ngx_chat_test_literal("\xc0\xaf"),
                                             2, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(
                        ngx_chat_test_literal("\xed\xa0\x80"), 3, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(ngx_chat_test_literal("\xff"),
                                             1, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(ngx_chat_test_literal("a\0b"),
                                             3, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(ngx_chat_test_literal("abc"),
                                             0, 128));
    ngx_chat_expect(!ngx_chat_token_id_valid(ngx_chat_test_literal("abc"),
                                             3, 2));
}


/* compact JWS: base64url of the header and the payload, then "sig" */

static char *
b64url(const char *s)
{
    static const char  alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "abcdefghijklmnopqrstuvwxyz0123456789-_";
    char      *out, *o;
    size_t     len, i;
    uint32_t   n;

    len = ngx_strlen(s);
    out = ngx_chat_test_repeat(" ", len / 3 * 4 + 4);
    o = out;

    for (i = 0; i + 2 < len; i += 3) {
        n = (u_char) s[i] << 16 | (u_char) s[i + 1] << 8 | (u_char) s[i + 2];
        *o++ = alphabet[n >> 18 & 63];
        *o++ = alphabet[n >> 12 & 63];
        *o++ = alphabet[n >> 6 & 63];
        *o++ = alphabet[n & 63];
    }

    if (len - i == 1) {
        n = (u_char) s[i] << 16;
        *o++ = alphabet[n >> 18 & 63];
        *o++ = alphabet[n >> 12 & 63];

    } else if (len - i == 2) {
        n = (u_char) s[i] << 16 | (u_char) s[i + 1] << 8;
        *o++ = alphabet[n >> 18 & 63];
        *o++ = alphabet[n >> 12 & 63];
        *o++ = alphabet[n >> 6 & 63];
    }

    *o = '\0';

    return out;
}


#define HS256    "{\"alg\": \"HS256\", \"typ\": \"JWT\"}"
#define PAYLOAD  "{\"sub\": \"alice\", \"exp\": 1800000000}"


static char *
jws(const char *header, const char *payload)
{
    return ngx_chat_test_sprintf("%s.%s.c2ln", b64url(header),
                                 b64url(payload));
}


static json_t                  *parsed;
static ngx_chat_token_fault_t   fault;


static ngx_int_t
parse(const char *token)
{
    ngx_int_t  rc;

    fault.reason = NULL;
    fault.text = NULL;
    parsed = NULL;

    rc = ngx_chat_jws_parse(ngx_chat_test_bytes(token, ngx_strlen(token)),
                            ngx_strlen(token), "HS256", &parsed, &fault);

    if (rc == NGX_OK) {
        ngx_chat_test_keep(parsed);
        ngx_chat_expect(json_is_object(parsed));

    } else {
        ngx_chat_expect(parsed == NULL);
        ngx_chat_expect(fault.reason != NULL && fault.text != NULL);
    }

    return rc;
}


#define jws_refused(token, class, why)                                        \
    do {                                                                      \
        ngx_chat_expect_int(parse(token), NGX_DECLINED);                      \
        ngx_chat_expect_bytes(fault.reason, ngx_strlen(fault.reason),         \
                              class);                                         \
        ngx_chat_expect_has(fault.text, why);                                 \
    } while (0)


static void
test_jws_a_plain_token_gives_its_payload(void)
{
    ngx_chat_expect_int(parse(jws(HS256, PAYLOAD)), NGX_OK);
    ngx_chat_expect_json(parsed, PAYLOAD);

    /* typ is optional, and its case is free (as libjwt has it) */
    ngx_chat_expect_int(parse(jws("{\"alg\": \"HS256\"}", PAYLOAD)), NGX_OK);
    ngx_chat_expect_int(parse(jws("{\"typ\": \"jwt\", \"alg\": \"HS256\", "
                                  "\"kid\": \"k1\"}", PAYLOAD)),
                        NGX_OK);

    /* the signature is libjwt's to check, even an empty one */
    ngx_chat_expect_int(parse(ngx_chat_test_sprintf("%s.%s.", b64url(HS256),
                                                    b64url(PAYLOAD))),
                        NGX_OK);
}


static void
test_jws_a_header_with_crit_is_refused(void)
{
    const char  *why;

    why = "critical extensions";

    jws_refused(jws("{\"alg\": \"HS256\", \"crit\": [\"exp\"], \"exp\": 1}",
                    PAYLOAD),
                "unsupported_extension", why);
    jws_refused(jws("{\"alg\": \"HS256\", \"crit\": [\"b64\"], "
                    "\"b64\": false}", PAYLOAD),
                "unsupported_extension", why);
    jws_refused(jws("{\"alg\": \"HS256\", \"crit\": []}", PAYLOAD),
                "unsupported_extension", why);
    jws_refused(jws("{\"alg\": \"HS256\", \"crit\": null}", PAYLOAD),
                "unsupported_extension", why);
}


static void
test_jws_duplicate_member_names_are_refused(void)
{
    const char  *why;

    why = "occurs twice";

    /* jansson would keep the last one: "mallory" */
    jws_refused(jws(HS256, "{\"sub\": \"alice\", \"exp\": 1800000000, "
                           "\"sub\": \"mallory\"}"),
                "malformed", why);
    jws_refused(jws(HS256, "{\"sub\": \"alice\", \"tid\": \"a\", "
                           "\"exp\": 1800000000, \"tid\": \"b\"}"),
                "malformed", why);
    jws_refused(jws(HS256, "{\"sub\": \"alice\", \"exp\": 1800000000, "
                           "\"x\": {\"y\": 1, \"y\": 2}}"),
                "malformed", why);
    jws_refused(jws("{\"alg\": \"HS256\", \"alg\": \"none\"}", PAYLOAD),
                "malformed", why);
    jws_refused(jws("{\"alg\": \"none\", \"alg\": \"HS256\"}", PAYLOAD),
                "malformed", why);
}


static void
test_jws_another_algorithm_is_refused_as_such(void)
{
    const char  *why;

    why = "not the one configured";

    jws_refused(jws("{\"alg\": \"none\"}", PAYLOAD),
                "algorithm_not_allowed", why);
    jws_refused(jws("{\"alg\": \"HS512\"}", PAYLOAD),
                "algorithm_not_allowed", why);
    jws_refused(jws("{\"alg\": \"hs256\"}", PAYLOAD),
                "algorithm_not_allowed", why);
    jws_refused(jws("{\"alg\": \"RS256\"}", PAYLOAD),
                "algorithm_not_allowed", why);
    jws_refused(jws("{\"alg\": \"HS256 \"}", PAYLOAD),
                "algorithm_not_allowed", why);

    jws_refused(jws("{\"typ\": \"JWT\"}", PAYLOAD), "malformed",
                "no \"alg\"");
    jws_refused(jws("{\"alg\": 256}", PAYLOAD), "malformed", "no \"alg\"");
    jws_refused(jws("{\"alg\": \"HS256\", \"typ\": \"at+jwt\"}", PAYLOAD),
                "malformed", "\"typ\" is not JWT");
    jws_refused(jws("{\"alg\": \"HS256\", \"typ\": 1}", PAYLOAD),
                "malformed", "\"typ\" is not JWT");
}


static void
test_jws_that_is_not_three_base64url_parts_is_refused(void)
{
    const char  *why, *h, *p;

    why = "not three base64url parts";
    h = b64url(HS256);
    p = b64url(PAYLOAD);

    jws_refused("", "malformed", why);
    jws_refused("garbage", "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2ln.c2ln", h, p),
                "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2l+", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2l/", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2g=", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2ln ", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s=.%s.c2ln", h, p), "malformed", why);

    /* one character more than whole bytes, and unused bits that are not 0 */
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2lnA", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c2h", h, p), "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s.%s.c3", h, p), "malformed", why);
    ngx_chat_expect_int(parse(ngx_chat_test_sprintf("%s.%s.c2g", h, p)),
                        NGX_OK);
    ngx_chat_expect_int(parse(ngx_chat_test_sprintf("%s.%s.cw", h, p)),
                        NGX_OK);
}


static void
test_jws_header_and_payload_must_be_json_objects(void)
{
    const char  *why;

    why = "is not JSON";

    jws_refused(ngx_chat_test_sprintf(".%s.c2ln", b64url(PAYLOAD)),
                "malformed", why);
    jws_refused(ngx_chat_test_sprintf("%s..c2ln", b64url(HS256)),
                "malformed", why);
    jws_refused(jws("{\"alg\": \"HS256\"", PAYLOAD), "malformed", why);
    jws_refused(jws(HS256, "{\"sub\": \"a\"} x"), "malformed", why);
    jws_refused(jws(HS256, "\"alice\""), "malformed", why);
    jws_refused(jws(HS256, "{\"sub\": \"a\\u0000b\"}"), "malformed", why);

    jws_refused(jws("[\"HS256\"]", PAYLOAD), "malformed",
                "the header is not a JSON object");
    jws_refused(jws(HS256, "[1]"), "malformed",
                "the payload is not a JSON object");
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_claims_valid_token_gives_its_identity),
    ngx_chat_test(test_claims_that_are_not_an_object_are_refused),
    ngx_chat_test(test_claims_without_exp_are_refused),
    ngx_chat_test(test_claims_with_non_numeric_exp_are_refused),
    ngx_chat_test(test_claims_exp_within_leeway_passes_beyond_is_expired),
    ngx_chat_test(test_claims_exp_without_leeway_expires_at_exp),
    ngx_chat_test(test_claims_exp_may_be_a_fraction_of_seconds),
    ngx_chat_test(test_claims_huge_exp_is_not_a_number_of_seconds),
    ngx_chat_test(test_claims_huge_exp_with_huge_leeway_does_not_overflow),
    ngx_chat_test(test_claims_nbf_within_leeway_passes_beyond_is_not_yet_valid),
    ngx_chat_test(test_claims_with_non_numeric_nbf_are_refused),
    ngx_chat_test(test_claims_sub_must_be_a_user_id_of_1_to_128_bytes),
    ngx_chat_test(test_claims_sub_that_is_not_a_clean_string_is_refused),
    ngx_chat_test(test_claims_without_tenant_claim_are_in_tenant_default),
    ngx_chat_test(test_claims_tenant_comes_from_the_configured_claim),
    ngx_chat_test(test_claims_tenant_that_is_not_a_string_id_is_refused),
    ngx_chat_test(test_claims_name_absent_or_null_is_empty),
    ngx_chat_test(test_claims_name_of_200_characters_passes_201_is_refused),
    ngx_chat_test(test_claims_name_that_is_not_a_string_is_refused),
    ngx_chat_test(test_claims_bot_is_true_false_or_absent),
    ngx_chat_test(test_claims_unknown_claims_are_ignored),
    ngx_chat_test(test_claims_refusals_name_their_class),
    ngx_chat_test(test_claims_ids_with_c1_controls_are_refused),
    ngx_chat_test(test_claims_ids_with_invisible_or_bidi_chars_are_refused),
    ngx_chat_test(test_claims_ids_with_white_space_but_inner_spaces_refused),
    ngx_chat_test(test_claims_ids_with_noncharacters_are_refused),
    ngx_chat_test(test_claims_ids_of_any_script_are_accepted),
    ngx_chat_test(test_claims_id_check_refuses_bytes_that_are_not_utf8),
    ngx_chat_test(test_jws_a_plain_token_gives_its_payload),
    ngx_chat_test(test_jws_a_header_with_crit_is_refused),
    ngx_chat_test(test_jws_duplicate_member_names_are_refused),
    ngx_chat_test(test_jws_another_algorithm_is_refused_as_such),
    ngx_chat_test(test_jws_that_is_not_three_base64url_parts_is_refused),
    ngx_chat_test(test_jws_header_and_payload_must_be_json_objects),
    ngx_chat_null_test
};
