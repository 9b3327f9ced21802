
/*
 * ngx_chat: the claims of a verified JWT.  libjwt 1.10 checks only the
 * signature, so the times are ours to check, and it reads a claim that is
 * not an integer as 0: claims are read from the JSON itself, with types.
 */


#include "ngx_chat_pure.h"


#define NGX_CHAT_TENANT_MAX      128
#define NGX_CHAT_NAME_MAX        200
#define NGX_CHAT_TIME_MAX        (1LL << 40)


static ngx_int_t ngx_chat_claim_time(json_t *claims, const char *name,
    time_t *t);


ngx_int_t
ngx_chat_claims_check(json_t *claims, const ngx_chat_claims_rules_t *rules,
    ngx_chat_identity_t *id, const char **reason)
{
    json_t  *v;
    time_t   exp, nbf;

    if (!json_is_object(claims)) {
        *reason = "claims are not an object";
        return NGX_ERROR;
    }

    /* a token without "exp" would be valid forever once leaked */

    switch (ngx_chat_claim_time(claims, "exp", &exp)) {

    case NGX_DECLINED:
        *reason = "no \"exp\" claim";
        return NGX_ERROR;

    case NGX_ERROR:
        *reason = "\"exp\" is not a number of seconds";
        return NGX_ERROR;
    }

    if (exp + rules->leeway <= rules->now) {
        *reason = "token expired";
        return NGX_ERROR;
    }

    switch (ngx_chat_claim_time(claims, "nbf", &nbf)) {

    case NGX_ERROR:
        *reason = "\"nbf\" is not a number of seconds";
        return NGX_ERROR;

    case NGX_OK:
        if (nbf - rules->leeway > rules->now) {
            *reason = "token not yet valid";
            return NGX_ERROR;
        }
    }

    v = json_object_get(claims, "sub");
    if (!ngx_chat_id_valid(v, 128)) {
        *reason = "\"sub\" is missing or not a user id";
        return NGX_ERROR;
    }

    id->user.data = (u_char *) json_string_value(v);
    id->user.len = json_string_length(v);

    v = json_object_get(claims, rules->tenant_claim);

    if (v == NULL) {
        ngx_str_set(&id->tenant, "default");

    } else if (ngx_chat_id_valid(v, NGX_CHAT_TENANT_MAX)) {
        id->tenant.data = (u_char *) json_string_value(v);
        id->tenant.len = json_string_length(v);

    } else {
        *reason = "the tenant claim is not a string id";
        return NGX_ERROR;
    }

    v = json_object_get(claims, "name");

    if (v == NULL || json_is_null(v)) {
        ngx_str_null(&id->name);

    } else if (json_is_string(v)
               && ngx_chat_utf8_chars((u_char *) json_string_value(v),
                                      json_string_length(v))
                  <= NGX_CHAT_NAME_MAX)
    {
        id->name.data = (u_char *) json_string_value(v);
        id->name.len = json_string_length(v);

    } else {
        *reason = "\"name\" is not a string of at most 200 characters";
        return NGX_ERROR;
    }

    id->exp = exp;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_claim_time(json_t *claims, const char *name, time_t *t)
{
    json_t  *v;

    v = json_object_get(claims, name);

    if (v == NULL) {
        return NGX_DECLINED;
    }

    /* NumericDate may carry a fraction; bound it so that sums stay exact */

    if (json_is_integer(v)
        && json_integer_value(v) > -NGX_CHAT_TIME_MAX
        && json_integer_value(v) < NGX_CHAT_TIME_MAX)
    {
        *t = (time_t) json_integer_value(v);
        return NGX_OK;
    }

    if (json_is_real(v)
        && json_real_value(v) > -NGX_CHAT_TIME_MAX
        && json_real_value(v) < NGX_CHAT_TIME_MAX)
    {
        *t = (time_t) json_real_value(v);
        return NGX_OK;
    }

    return NGX_ERROR;
}
