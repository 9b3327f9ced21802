
/*
 * ngx_chat: the claims of a verified JWT.  libjwt 1.10 checks only the
 * signature, so the times are ours to check, and it reads a claim that is
 * not an integer as 0: claims are read from the JSON itself, with types.
 *
 * The token is also taken apart here before libjwt sees it, because
 * libjwt is lenient where a token must not be: it keeps the last of two
 * members of the same name (so a "sub" that a reader of the token sees
 * first is not the one we would use), ignores "crit", decodes what is not
 * base64url and takes a fourth part for part of the signature.  What it
 * verifies is then the very text parsed here, and the claims used are
 * the ones parsed here.
 */


#include "ngx_chat_pure.h"


#define NGX_CHAT_SUB_MAX         128
#define NGX_CHAT_TENANT_MAX      128
#define NGX_CHAT_NAME_MAX        200
#define NGX_CHAT_TIME_MAX        (1LL << 40)


static ngx_int_t ngx_chat_claim_time(json_t *claims, const char *name,
    time_t *t);
static ngx_int_t ngx_chat_claim_id(json_t *v, size_t max);
static json_t *ngx_chat_jws_json(u_char *p, size_t len,
    ngx_chat_token_fault_t *fault);
static ngx_int_t ngx_chat_jws_header(json_t *header, const char *alg,
    ngx_chat_token_fault_t *fault);
static ngx_int_t ngx_chat_b64url_valid(u_char *p, size_t len);
static size_t ngx_chat_b64url_decode(u_char *dst, u_char *src, size_t len);
static ngx_uint_t ngx_chat_id_char_refused(uint32_t c);


#define ngx_chat_token_fail(fault, why, msg)                                  \
    ((fault)->reason = (why), (fault)->text = (msg), NGX_ERROR)


ngx_int_t
ngx_chat_claims_check(json_t *claims, const ngx_chat_claims_rules_t *rules,
    ngx_chat_identity_t *id, const char **reason)
{
    ngx_int_t               rc;
    ngx_chat_token_fault_t  fault;

    rc = ngx_chat_claims_verify(claims, rules, id, &fault);

    if (rc != NGX_OK) {
        *reason = fault.text;
    }

    return rc;
}


ngx_int_t
ngx_chat_claims_verify(json_t *claims, const ngx_chat_claims_rules_t *rules,
    ngx_chat_identity_t *id, ngx_chat_token_fault_t *fault)
{
    json_t  *v;
    time_t   exp, nbf;

    if (!json_is_object(claims)) {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MALFORMED,
                                   "claims are not an object");
    }

    /* a token without "exp" would be valid forever once leaked */

    switch (ngx_chat_claim_time(claims, "exp", &exp)) {

    case NGX_DECLINED:
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MISSING_CLAIM,
                                   "no \"exp\" claim");

    case NGX_ERROR:
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_INVALID_CLAIM,
                                   "\"exp\" is not a number of seconds");
    }

    if (exp + rules->leeway <= rules->now) {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_EXPIRED,
                                   "token expired");
    }

    switch (ngx_chat_claim_time(claims, "nbf", &nbf)) {

    case NGX_ERROR:
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_INVALID_CLAIM,
                                   "\"nbf\" is not a number of seconds");

    case NGX_OK:
        if (nbf - rules->leeway > rules->now) {
            return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_NOT_YET_VALID,
                                       "token not yet valid");
        }
    }

    v = json_object_get(claims, "sub");

    if (!ngx_chat_claim_id(v, NGX_CHAT_SUB_MAX)) {
        return ngx_chat_token_fail(fault,
                                   v ? NGX_CHAT_TOKEN_INVALID_CLAIM
                                     : NGX_CHAT_TOKEN_MISSING_CLAIM,
                                   "\"sub\" is missing or not a user id");
    }

    id->user.data = (u_char *) json_string_value(v);
    id->user.len = json_string_length(v);

    v = json_object_get(claims, rules->tenant_claim);

    if (v == NULL) {
        ngx_str_set(&id->tenant, "default");

    } else if (ngx_chat_claim_id(v, NGX_CHAT_TENANT_MAX)) {
        id->tenant.data = (u_char *) json_string_value(v);
        id->tenant.len = json_string_length(v);

    } else {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_INVALID_CLAIM,
                                   "the tenant claim is not a string id");
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
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_INVALID_CLAIM,
                                   "\"name\" is not a string of at most 200 "
                                   "characters");
    }

    /* a bot: true or absent; anything else is a claim we cannot read */
    v = json_object_get(claims, "bot");

    if (v != NULL && !json_is_boolean(v)) {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_INVALID_CLAIM,
                                   "\"bot\" is not true or false");
    }

    id->bot = (v != NULL && json_is_true(v));
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


static ngx_int_t
ngx_chat_claim_id(json_t *v, size_t max)
{
    return json_is_string(v)
           && ngx_chat_token_id_valid((u_char *) json_string_value(v),
                                      json_string_length(v), max);
}


/*
 * A user or tenant id from a token: 1 to max bytes of UTF-8 that people
 * read, in lists and in logs, and must tell apart.  Refused: controls
 * (C0, DEL, C1), white space but U+0020, U+0020 first or last, the
 * default-ignorable code points (zero-width characters, bidirectional
 * controls, the BOM, variation selectors, tags: invisible, they would
 * make ids that look alike or reorder what is shown around them) and
 * noncharacters.  docs/security.md lists them.
 */

ngx_int_t
ngx_chat_token_id_valid(u_char *p, size_t len, size_t max)
{
    u_char    *last;
    uint32_t   c;

    if (len == 0 || len > max || ngx_chat_utf8_valid(p, len) != NGX_OK
        || p[0] == ' ' || p[len - 1] == ' ')
    {
        return 0;
    }

    for (last = p + len; p < last; /* void */ ) {

        /* well-formed, as checked above */

        if (*p < 0x80) {
            c = *p++;

        } else if (*p < 0xe0) {
            c = (uint32_t) (p[0] & 0x1f) << 6 | (p[1] & 0x3f);
            p += 2;

        } else if (*p < 0xf0) {
            c = (uint32_t) (p[0] & 0x0f) << 12 | (uint32_t) (p[1] & 0x3f) << 6
                | (p[2] & 0x3f);
            p += 3;

        } else {
            c = (uint32_t) (p[0] & 0x07) << 18
                | (uint32_t) (p[1] & 0x3f) << 12
                | (uint32_t) (p[2] & 0x3f) << 6 | (p[3] & 0x3f);
            p += 4;
        }

        if (ngx_chat_id_char_refused(c)) {
            return 0;
        }
    }

    return 1;
}


/*
 * Unicode 15: Cc; White_Space but U+0020; Default_Ignorable_Code_Point
 * (DerivedCoreProperties.txt); the 66 noncharacters
 */

static ngx_uint_t
ngx_chat_id_char_refused(uint32_t c)
{
    if (c < 0x20 || (c >= 0x7f && c <= 0xa0)) {
        return 1;
    }

    if (c < 0xad) {
        return 0;
    }

    switch (c) {
    case 0x00ad: case 0x034f: case 0x061c: case 0x115f: case 0x1160:
    case 0x1680: case 0x17b4: case 0x17b5: case 0x3000: case 0x3164:
    case 0xfeff: case 0xffa0:
        return 1;
    }

    return (c >= 0x180b && c <= 0x180f)
           || (c >= 0x2000 && c <= 0x200f)
           || (c >= 0x2028 && c <= 0x202f)
           || (c >= 0x205f && c <= 0x206f)
           || (c >= 0xfdd0 && c <= 0xfdef)
           || (c >= 0xfe00 && c <= 0xfe0f)
           || (c >= 0xfff0 && c <= 0xfff8)
           || (c & 0xfffe) == 0xfffe
           || (c >= 0x1bca0 && c <= 0x1bca3)
           || (c >= 0x1d173 && c <= 0x1d17a)
           || (c >= 0xe0000 && c <= 0xe0fff);
}


/*
 * A compact JWS (RFC 7515 7.1): three base64url parts, a header that
 * names the configured algorithm, no "crit" (4.1.11: an extension that
 * must be understood, and we understand none), and a header and payload
 * that are JSON objects without duplicate member names (RFC 7515 5.2
 * and RFC 7519 4 allow refusing them; jansson keeps the last one
 * silently).  The signature is libjwt's to check.  *claims is the
 * payload, the caller's to free.
 *
 * NGX_OK, NGX_DECLINED with the fault, or NGX_ERROR without memory.
 */

ngx_int_t
ngx_chat_jws_parse(u_char *token, size_t len, const char *alg,
    json_t **claims, ngx_chat_token_fault_t *fault)
{
    u_char     *last, *dot1, *dot2;
    json_t     *header, *payload;
    ngx_int_t   rc;

    *claims = NULL;
    last = token + len;

    dot1 = ngx_strlchr(token, last, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, last, '.') : NULL;

    if (dot2 == NULL || ngx_strlchr(dot2 + 1, last, '.') != NULL
        || !ngx_chat_b64url_valid(token, dot1 - token)
        || !ngx_chat_b64url_valid(dot1 + 1, dot2 - dot1 - 1)
        || !ngx_chat_b64url_valid(dot2 + 1, last - dot2 - 1))
    {
        (void) ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MALFORMED,
                                   "not three base64url parts");
        return NGX_DECLINED;
    }

    fault->reason = NULL;

    header = ngx_chat_jws_json(token, dot1 - token, fault);

    if (header == NULL) {
        return fault->reason ? NGX_DECLINED : NGX_ERROR;
    }

    rc = ngx_chat_jws_header(header, alg, fault);
    json_decref(header);

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    payload = ngx_chat_jws_json(dot1 + 1, dot2 - dot1 - 1, fault);

    if (payload == NULL) {
        return fault->reason ? NGX_DECLINED : NGX_ERROR;
    }

    if (!json_is_object(payload)) {
        json_decref(payload);
        (void) ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MALFORMED,
                                   "the payload is not a JSON object");
        return NGX_DECLINED;
    }

    *claims = payload;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_jws_header(json_t *header, const char *alg,
    ngx_chat_token_fault_t *fault)
{
    u_char  *typ;
    json_t  *v;

    if (!json_is_object(header)) {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MALFORMED,
                                   "the header is not a JSON object");
    }

    v = json_object_get(header, "alg");

    if (!json_is_string(v)) {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MALFORMED,
                                   "the header has no \"alg\"");
    }

    /* case and all, as RFC 7518 names them ("none" is never configured) */

    if (ngx_strcmp(json_string_value(v), alg) != 0
        || json_string_length(v) != ngx_strlen(alg))
    {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_ALGORITHM,
                                   "the algorithm is not the one "
                                   "configured");
    }

    if (json_object_get(header, "crit") != NULL) {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_EXTENSION,
                                   "the header names critical extensions "
                                   "(\"crit\")");
    }

    /* what libjwt refuses itself, refused here for the right reason */

    v = json_object_get(header, "typ");
    typ = json_is_string(v) ? (u_char *) json_string_value(v) : NULL;

    if (v != NULL
        && (typ == NULL || json_string_length(v) != 3
            || ngx_tolower(typ[0]) != 'j' || ngx_tolower(typ[1]) != 'w'
            || ngx_tolower(typ[2]) != 't'))
    {
        return ngx_chat_token_fail(fault, NGX_CHAT_TOKEN_MALFORMED,
                                   "\"typ\" is not JWT");
    }

    return NGX_OK;
}


/* a part decoded and parsed; NULL with fault->reason set when refused */

static json_t *
ngx_chat_jws_json(u_char *p, size_t len, ngx_chat_token_fault_t *fault)
{
    u_char        *buf;
    json_t        *json;
    size_t         n;
    json_error_t   jerr;

    buf = malloc(len / 4 * 3 + 3);
    if (buf == NULL) {
        return NULL;
    }

    n = ngx_chat_b64url_decode(buf, p, len);

    json = json_loadb((char *) buf, n, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);

    if (json == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            return NULL;
        }

        fault->reason = NGX_CHAT_TOKEN_MALFORMED;
        fault->text = (json_error_code(&jerr) == json_error_duplicate_key)
                      ? "a member name occurs twice in the header or "
                        "the payload"
                      : "the header or the payload is not JSON";
    }

    return json;
}


/*
 * base64url without padding (RFC 7515 2): its alphabet only, a length
 * that a whole number of bytes has, and unused bits that are 0, so that
 * one token has one text
 */

static const u_char  ngx_chat_b64url[256] = {
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 62, 77, 77,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 77, 77, 77, 77, 77, 77,
    77,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 77, 77, 77, 77, 63,
    77, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77
};


static ngx_int_t
ngx_chat_b64url_valid(u_char *p, size_t len)
{
    size_t  i;

    if (len % 4 == 1) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (ngx_chat_b64url[p[i]] == 77) {
            return 0;
        }
    }

    switch (len % 4) {
    case 2:
        return (ngx_chat_b64url[p[len - 1]] & 0x0f) == 0;
    case 3:
        return (ngx_chat_b64url[p[len - 1]] & 0x03) == 0;
    }

    return 1;
}


/* of a part that ngx_chat_b64url_valid() passed */

static size_t
ngx_chat_b64url_decode(u_char *dst, u_char *src, size_t len)
{
    u_char  *d;

    d = dst;

    while (len >= 4) {
        *d++ = (u_char) (ngx_chat_b64url[src[0]] << 2
                         | ngx_chat_b64url[src[1]] >> 4);
        *d++ = (u_char) (ngx_chat_b64url[src[1]] << 4
                         | ngx_chat_b64url[src[2]] >> 2);
        *d++ = (u_char) (ngx_chat_b64url[src[2]] << 6
                         | ngx_chat_b64url[src[3]]);
        src += 4;
        len -= 4;
    }

    if (len > 1) {
        *d++ = (u_char) (ngx_chat_b64url[src[0]] << 2
                         | ngx_chat_b64url[src[1]] >> 4);
    }

    if (len > 2) {
        *d++ = (u_char) (ngx_chat_b64url[src[1]] << 4
                         | ngx_chat_b64url[src[2]] >> 2);
    }

    return d - dst;
}
