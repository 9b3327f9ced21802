
/*
 * JWT claims: libjwt checks only the signature, so expiry, "not before"
 * and the identity claims are checked here, with their JSON types.
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
test_claims_unknown_claims_are_ignored(void)
{
    ngx_chat_expect_int(check(claims("\"iss\": \"x\", \"aud\": [1], "
                                     "\"iat\": \"whenever\"")),
                        NGX_OK);
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
    ngx_chat_test(test_claims_unknown_claims_are_ignored),
    ngx_chat_null_test
};
