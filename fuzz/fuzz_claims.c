
/*
 * JWT claims: bytes parsed as src/ngx_chat_auth.c parses the claims of a
 * verified token, then checked under a few rules and compared with a
 * reference verdict written from the rules as documented.
 */


#include "ngx_chat_fuzz.h"


#define NGX_CHAT_FUZZ_TIME_MAX   (1LL << 40)


static const ngx_chat_claims_rules_t  ngx_chat_fuzz_rules[] = {
    { 1700000000, 30, "tid" },
    { 0, 0, "org" },
    { NGX_CHAT_FUZZ_TIME_MAX - 1, NGX_CHAT_FUZZ_TIME_MAX - 1, "sub" },
    { -1, 5, "" },
};


static void ngx_chat_fuzz_claims(json_t *claims,
    const ngx_chat_claims_rules_t *rules);
static ngx_int_t ngx_chat_fuzz_verdict(json_t *claims,
    const ngx_chat_claims_rules_t *rules);
static ngx_int_t ngx_chat_fuzz_time(json_t *v, time_t *t);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t      *claims;
    ngx_uint_t   i;

    claims = json_loadb((const char *) data, size, 0, NULL);
    if (claims == NULL) {
        return 0;
    }

    for (i = 0; i < sizeof(ngx_chat_fuzz_rules)
                    / sizeof(ngx_chat_claims_rules_t); i++)
    {
        ngx_chat_fuzz_claims(claims, &ngx_chat_fuzz_rules[i]);
    }

    json_decref(claims);

    return 0;
}


static void
ngx_chat_fuzz_claims(json_t *claims, const ngx_chat_claims_rules_t *rules)
{
    json_t               *v;
    ngx_int_t             rc;
    const char           *reason;
    ngx_chat_identity_t   id;

    ngx_memset(&id, 0xa5, sizeof(ngx_chat_identity_t));
    reason = NULL;

    rc = ngx_chat_claims_check(claims, rules, &id, &reason);

    ngx_chat_fuzz_assert(rc == ngx_chat_fuzz_verdict(claims, rules));

    if (rc != NGX_OK) {
        ngx_chat_fuzz_assert(reason != NULL && reason[0] != '\0');
        return;
    }

    ngx_chat_fuzz_assert(id.exp + rules->leeway > rules->now);

    v = json_object_get(claims, "sub");
    ngx_chat_fuzz_assert(id.user.data == (u_char *) json_string_value(v));
    ngx_chat_fuzz_assert(ngx_chat_fuzz_is_id(id.user.data, id.user.len, 128));

    v = json_object_get(claims, rules->tenant_claim);

    if (v == NULL) {
        ngx_chat_fuzz_assert(id.tenant.len == 7
                             && memcmp(id.tenant.data, "default", 7) == 0);

    } else {
        ngx_chat_fuzz_assert(id.tenant.data
                             == (u_char *) json_string_value(v));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_is_id(id.tenant.data,
                                                 id.tenant.len, 128));
    }

    v = json_object_get(claims, "name");

    if (v == NULL || json_is_null(v)) {
        ngx_chat_fuzz_assert(id.name.data == NULL && id.name.len == 0);

    } else {
        ngx_chat_fuzz_assert(id.name.data == (u_char *) json_string_value(v));
        ngx_chat_fuzz_assert(id.name.len == json_string_length(v));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_chars(id.name.data,
                                                      id.name.len)
                             <= 200);
    }
}


/*
 * The rules: "exp" is required, "exp" and "nbf" are numbers of seconds
 * below 2^40 in magnitude, checked with the leeway; "sub" is a user id
 * (1-128 bytes, no controls); the tenant claim is absent ("default") or
 * such an id; "name" is absent, null or a string of at most 200 characters.
 */

static ngx_int_t
ngx_chat_fuzz_verdict(json_t *claims, const ngx_chat_claims_rules_t *rules)
{
    time_t   exp, nbf;
    json_t  *v;

    if (!json_is_object(claims)) {
        return NGX_ERROR;
    }

    v = json_object_get(claims, "exp");

    if (ngx_chat_fuzz_time(v, &exp) != NGX_OK
        || exp + rules->leeway <= rules->now)
    {
        return NGX_ERROR;
    }

    v = json_object_get(claims, "nbf");

    if (v != NULL
        && (ngx_chat_fuzz_time(v, &nbf) != NGX_OK
            || nbf - rules->leeway > rules->now))
    {
        return NGX_ERROR;
    }

    v = json_object_get(claims, "sub");

    if (!json_is_string(v)
        || !ngx_chat_fuzz_is_id((u_char *) json_string_value(v),
                                json_string_length(v), 128))
    {
        return NGX_ERROR;
    }

    v = json_object_get(claims, rules->tenant_claim);

    if (v != NULL
        && (!json_is_string(v)
            || !ngx_chat_fuzz_is_id((u_char *) json_string_value(v),
                                    json_string_length(v), 128)))
    {
        return NGX_ERROR;
    }

    v = json_object_get(claims, "name");

    if (v != NULL && !json_is_null(v)
        && (!json_is_string(v)
            || ngx_chat_fuzz_utf8_chars((u_char *) json_string_value(v),
                                        json_string_length(v))
               > 200))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_fuzz_time(json_t *v, time_t *t)
{
    double  d;

    if (json_is_integer(v)) {
        if (json_integer_value(v) <= -NGX_CHAT_FUZZ_TIME_MAX
            || json_integer_value(v) >= NGX_CHAT_FUZZ_TIME_MAX)
        {
            return NGX_ERROR;
        }

        *t = json_integer_value(v);
        return NGX_OK;
    }

    if (json_is_real(v)) {
        d = json_real_value(v);

        if (!(d > -NGX_CHAT_FUZZ_TIME_MAX && d < NGX_CHAT_FUZZ_TIME_MAX)) {
            return NGX_ERROR;
        }

        *t = (time_t) d;
        return NGX_OK;
    }

    return NGX_ERROR;
}
