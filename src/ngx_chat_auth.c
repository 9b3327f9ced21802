
/*
 * ngx_chat: a bearer token to an identity (tenant, user, display name).
 *
 * libjwt 1.10 verifies with whatever algorithm the token names, so the
 * algorithm is compared with the configured one, in the header before
 * libjwt reads it and again after: an HS256 token signed with the text of
 * our RS256 public key verifies in libjwt and must still be refused.  The
 * key is never empty, or libjwt would accept an unsigned token.  What
 * libjwt is lenient about (duplicate members, "crit", loose base64) is
 * refused before it runs (ngx_chat_claims.c).
 */


#include "ngx_chat.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>


#define NGX_CHAT_TOKEN_MAX       8192


static ngx_int_t ngx_chat_auth_key_type(ngx_conf_t *cf,
    ngx_chat_jwt_conf_t *jcf);
static ngx_int_t ngx_chat_auth_keep(ngx_chat_jwt_conf_t *jcf, json_t *claims,
    ngx_pool_t *pool, ngx_str_t *kept);


/*
 * The class of the last refusal, for the 401 that answers it
 * (ngx_chat_http_error_as()).  The REST and WebSocket handlers answer a
 * refused token at once, in the same turn of the event loop, for the
 * request whose pool the token was checked with: the pool says that the
 * refusal is this request's, and the class is taken once.
 */
static ngx_pool_t  *ngx_chat_auth_refused_pool;
static const char  *ngx_chat_auth_refused_reason;


ngx_int_t
ngx_chat_auth_token(ngx_chat_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_pool_t *pool, ngx_log_t *log, ngx_chat_identity_t *id)
{
    ngx_int_t    rc;
    const char  *reason;

    rc = ngx_chat_auth_check(jcf, token, pool, log, id, &reason);

    ngx_chat_auth_refused_pool = (rc == NGX_DECLINED) ? pool : NULL;
    ngx_chat_auth_refused_reason = reason;

    return rc;
}


/* the class of the request's refused token; NULL: no token was refused */

const char *
ngx_chat_auth_reason(ngx_pool_t *pool)
{
    if (pool != ngx_chat_auth_refused_pool || pool == NULL) {
        return NULL;
    }

    ngx_chat_auth_refused_pool = NULL;

    return ngx_chat_auth_refused_reason;
}


/*
 * NGX_OK with the identity (its strings in the pool), NGX_DECLINED with
 * the class of the refusal in *reason, NGX_ERROR.  The header and the
 * payload are taken apart strictly first (ngx_chat_jws_parse()), then
 * libjwt checks the signature of that same text.
 */

ngx_int_t
ngx_chat_auth_check(ngx_chat_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_pool_t *pool, ngx_log_t *log, ngx_chat_identity_t *id,
    const char **reason)
{
    int                       err;
    char                     *text;
    json_t                   *claims;
    jwt_t                    *jwt;
    ngx_int_t                 rc;
    ngx_chat_identity_t       found;
    ngx_chat_claims_rules_t   rules;
    ngx_chat_token_fault_t    fault;

    *reason = NGX_CHAT_TOKEN_MALFORMED;

    if (token->len == 0 || token->len > NGX_CHAT_TOKEN_MAX) {
        ngx_log_error(NGX_LOG_INFO, log, 0, "chat: token has a bad length");
        return NGX_DECLINED;
    }

    rc = ngx_chat_jws_parse(token->data, token->len, jwt_alg_str(jcf->alg),
                            &claims, &fault);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "chat: token rejected: %s (the key is %s)",
                      fault.text, jwt_alg_str(jcf->alg));
        *reason = fault.reason;
        return NGX_DECLINED;
    }

    text = ngx_pnalloc(pool, token->len + 1);
    if (text == NULL) {
        json_decref(claims);
        return NGX_ERROR;
    }

    ngx_memcpy(text, token->data, token->len);
    text[token->len] = '\0';

    /* an empty key would let libjwt take an unsigned token */

    err = (jcf->key.len == 0) ? EINVAL
                              : jwt_decode(&jwt, text, jcf->key.data,
                                           (int) jcf->key.len);

    if (err == ENOMEM) {
        json_decref(claims);
        return NGX_ERROR;
    }

    if (err != 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "chat: token rejected: bad signature");
        json_decref(claims);
        *reason = NGX_CHAT_TOKEN_SIGNATURE;
        return NGX_DECLINED;
    }

    /* the header said so already: this guards against libjwt's reading */

    if (jwt_get_alg(jwt) != jcf->alg) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "chat: token rejected: algorithm %s is not %s",
                      jwt_alg_str(jwt_get_alg(jwt)), jwt_alg_str(jcf->alg));
        jwt_free(jwt);
        json_decref(claims);
        *reason = NGX_CHAT_TOKEN_ALGORITHM;
        return NGX_DECLINED;
    }

    jwt_free(jwt);

    rules.now = ngx_time();
    rules.leeway = jcf->leeway;
    rules.tenant_claim = (const char *) jcf->tenant_claim.data;

    if (ngx_chat_claims_verify(claims, &rules, &found, &fault) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, log, 0, "chat: token rejected: %s",
                      fault.text);
        json_decref(claims);
        *reason = fault.reason;
        return NGX_DECLINED;
    }

    /* the strings of "found" live in "claims": copy them out */

    if (ngx_chat_copy(pool, &id->tenant, found.tenant.data, found.tenant.len)
        != NGX_OK
        || ngx_chat_copy(pool, &id->user, found.user.data, found.user.len)
           != NGX_OK
        || ngx_chat_copy(pool, &id->name, found.name.data, found.name.len)
           != NGX_OK)
    {
        json_decref(claims);
        return NGX_ERROR;
    }

    id->exp = found.exp;
    id->bot = found.bot;

    if (ngx_chat_auth_keep(jcf, claims, pool, &id->claims) != NGX_OK) {
        json_decref(claims);
        return NGX_ERROR;
    }

    json_decref(claims);

    *reason = NULL;

    return NGX_OK;
}


/* loads and checks the key of "chat_jwt_key" */

ngx_int_t
ngx_chat_auth_init(ngx_conf_t *cf, ngx_chat_jwt_conf_t *jcf)
{
    u_char  *p;
    size_t   len;

    p = jcf->key.data;
    len = jcf->key.len;

    switch (jcf->alg) {

    case JWT_ALG_HS256:
    case JWT_ALG_HS384:
    case JWT_ALG_HS512:
        if (len < 32) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_jwt_key\": an HMAC secret must be at "
                               "least 32 bytes");
            return NGX_ERROR;
        }
        return NGX_OK;

    default:
        if (ngx_strlcasestrn(p, p + len, (u_char *) "-----BEGIN PUBLIC KEY",
                             sizeof("-----BEGIN PUBLIC KEY") - 2)
            == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_jwt_key\": the key file of %s must be "
                               "a \"BEGIN PUBLIC KEY\" PEM",
                               jwt_alg_str(jcf->alg));
            return NGX_ERROR;
        }
        return ngx_chat_auth_key_type(cf, jcf);
    }
}


/*
 * libjwt takes any public key and then fails every token whose algorithm
 * the key cannot verify, so an EC key under alg=RS256 would refuse
 * everybody at run time: it is refused here, by nginx -t, instead
 */

static ngx_int_t
ngx_chat_auth_key_type(ngx_conf_t *cf, ngx_chat_jwt_conf_t *jcf)
{
    int         type, bits, want_type, want_bits;
    BIO        *bio;
    EVP_PKEY   *pkey;
    const char *want;

    switch (jcf->alg) {

    case JWT_ALG_ES256:
        want_type = EVP_PKEY_EC;
        want_bits = 256;
        want = "an EC key on P-256";
        break;

    case JWT_ALG_ES384:
        want_type = EVP_PKEY_EC;
        want_bits = 384;
        want = "an EC key on P-384";
        break;

    case JWT_ALG_ES512:
        want_type = EVP_PKEY_EC;
        want_bits = 521;
        want = "an EC key on P-521";
        break;

    default:
        want_type = EVP_PKEY_RSA;
        want_bits = 0;
        want = "an RSA key";
    }

    bio = BIO_new_mem_buf(jcf->key.data, (int) jcf->key.len);
    if (bio == NULL) {
        return NGX_ERROR;
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        ERR_clear_error();
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_key\": the key file does not hold "
                           "a public key that can be read");
        return NGX_ERROR;
    }

    type = EVP_PKEY_base_id(pkey);
    bits = EVP_PKEY_bits(pkey);
    EVP_PKEY_free(pkey);

    if (type != want_type || (want_bits && bits != want_bits)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_key\": alg=%s needs %s, the key file "
                           "holds another", jwt_alg_str(jcf->alg), want);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The claims chat_policy names (claims=), as a JSON object for the site's
 * function; those the token lacks are left out.  Empty without any.
 */

static ngx_int_t
ngx_chat_auth_keep(ngx_chat_jwt_conf_t *jcf, json_t *claims,
    ngx_pool_t *pool, ngx_str_t *kept)
{
    char        *text;
    json_t      *out, *v;
    ngx_int_t    rc;
    ngx_str_t   *names;
    ngx_uint_t   i;

    ngx_str_null(kept);

    if (jcf->keep == NULL) {
        return NGX_OK;
    }

    out = json_object();
    if (out == NULL) {
        return NGX_ERROR;
    }

    names = jcf->keep->elts;

    for (i = 0; i < jcf->keep->nelts; i++) {
        v = json_object_get(claims, (const char *) names[i].data);

        if (v && json_object_set(out, (const char *) names[i].data, v) != 0) {
            json_decref(out);
            return NGX_ERROR;
        }
    }

    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);

    if (text == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_copy(pool, kept, text, ngx_strlen(text));
    free(text);

    return rc;
}
