
/*
 * JWT claims: bytes parsed as src/ngx_chat_auth.c parses the claims of a
 * verified token, then checked under a few rules and compared with a
 * reference verdict written from the rules as documented.
 *
 * The same bytes also go to the strict parser of compact JWS
 * (ngx_chat_jws_parse) three ways: as a whole token, as the JSON of a
 * token's payload and as the JSON of its header, each compared with a
 * verdict of jansson's own (JSON_REJECT_DUPLICATES) and the header rules.
 */


#include "ngx_chat_fuzz.h"


#define NGX_CHAT_FUZZ_TIME_MAX   (1LL << 40)
#define NGX_CHAT_FUZZ_ID_MAX     128
#define NGX_CHAT_FUZZ_HS256      "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"


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
static ngx_int_t ngx_chat_fuzz_token_id(json_t *v);
static ngx_int_t ngx_chat_fuzz_id_char(uint32_t c);
static void ngx_chat_fuzz_jws_token(const uint8_t *data, size_t size);
static void ngx_chat_fuzz_jws_part(const uint8_t *data, size_t size,
    ngx_uint_t header);
static ngx_int_t ngx_chat_fuzz_header_verdict(json_t *header);
static void ngx_chat_fuzz_fault(ngx_chat_token_fault_t *fault);
static u_char *ngx_chat_fuzz_b64url(u_char *dst, const u_char *src,
    size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t      *claims;
    ngx_uint_t   i;

    ngx_chat_fuzz_jws_token(data, size);
    ngx_chat_fuzz_jws_part(data, size, 0);
    ngx_chat_fuzz_jws_part(data, size, 1);

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
    json_t                  *v;
    ngx_int_t                rc;
    const char              *reason;
    ngx_chat_identity_t      id;
    ngx_chat_token_fault_t   fault;

    ngx_memset(&id, 0xa5, sizeof(ngx_chat_identity_t));
    reason = NULL;

    rc = ngx_chat_claims_check(claims, rules, &id, &reason);

    ngx_chat_fuzz_assert(rc == ngx_chat_fuzz_verdict(claims, rules));

    /* the classed check says the same */
    ngx_chat_fuzz_assert(ngx_chat_claims_verify(claims, rules, &id, &fault)
                         == rc);

    if (rc != NGX_OK) {
        ngx_chat_fuzz_assert(reason != NULL && reason[0] != '\0');
        ngx_chat_fuzz_fault(&fault);
        return;
    }

    ngx_chat_fuzz_assert(id.exp + rules->leeway > rules->now);

    v = json_object_get(claims, "sub");
    ngx_chat_fuzz_assert(id.user.data == (u_char *) json_string_value(v));
    ngx_chat_fuzz_assert(ngx_chat_fuzz_is_id(id.user.data, id.user.len, 128));
    ngx_chat_fuzz_assert(ngx_chat_fuzz_token_id(v));

    v = json_object_get(claims, rules->tenant_claim);

    if (v == NULL) {
        ngx_chat_fuzz_assert(id.tenant.len == 7
                             && memcmp(id.tenant.data, "default", 7) == 0);

    } else {
        ngx_chat_fuzz_assert(id.tenant.data
                             == (u_char *) json_string_value(v));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_is_id(id.tenant.data,
                                                 id.tenant.len, 128));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_token_id(v));
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
 * (docs/security.md: 1-128 bytes of UTF-8 without controls, white space
 * but inner spaces, default-ignorable code points or noncharacters); the
 * tenant claim is absent ("default") or such an id; "name" is absent,
 * null or a string of at most 200 characters.
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

    if (!ngx_chat_fuzz_token_id(json_object_get(claims, "sub"))) {
        return NGX_ERROR;
    }

    v = json_object_get(claims, rules->tenant_claim);

    if (v != NULL && !ngx_chat_fuzz_token_id(v)) {
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


/* a user or tenant id of a token, character by character */

static ngx_int_t
ngx_chat_fuzz_token_id(json_t *v)
{
    u_char    *p;
    size_t     len, i, n;
    uint32_t   c;

    if (!json_is_string(v)) {
        return 0;
    }

    p = (u_char *) json_string_value(v);
    len = json_string_length(v);

    if (len == 0 || len > NGX_CHAT_FUZZ_ID_MAX
        || ngx_chat_fuzz_utf8_valid(p, len) != NGX_OK
        || p[0] == ' ' || p[len - 1] == ' ')
    {
        return 0;
    }

    for (i = 0; i < len; i += n) {
        n = (p[i] < 0x80) ? 1 : (p[i] < 0xe0) ? 2 : (p[i] < 0xf0) ? 3 : 4;
        c = (n == 1) ? p[i] : (uint32_t) (p[i] & (0x7f >> n));

        while (--n) {
            c = c << 6 | (p[++i] & 0x3f);
        }

        n = 1;

        if (!ngx_chat_fuzz_id_char(c)) {
            return 0;
        }
    }

    return 1;
}


/* the list of docs/security.md, as written there */

static ngx_int_t
ngx_chat_fuzz_id_char(uint32_t c)
{
    static const uint32_t  refused[][2] = {
        /* controls */
        { 0x0000, 0x001f }, { 0x007f, 0x009f },
        /* white space but U+0020 */
        { 0x00a0, 0x00a0 }, { 0x1680, 0x1680 }, { 0x2000, 0x200a },
        { 0x2028, 0x2029 }, { 0x202f, 0x202f }, { 0x205f, 0x205f },
        { 0x3000, 0x3000 },
        /* default-ignorable */
        { 0x00ad, 0x00ad }, { 0x034f, 0x034f }, { 0x061c, 0x061c },
        { 0x115f, 0x1160 }, { 0x17b4, 0x17b5 }, { 0x180b, 0x180f },
        { 0x200b, 0x200f }, { 0x202a, 0x202e }, { 0x2060, 0x206f },
        { 0x3164, 0x3164 }, { 0xfe00, 0xfe0f }, { 0xfeff, 0xfeff },
        { 0xffa0, 0xffa0 }, { 0xfff0, 0xfff8 }, { 0x1bca0, 0x1bca3 },
        { 0x1d173, 0x1d17a }, { 0xe0000, 0xe0fff },
        /* noncharacters */
        { 0xfdd0, 0xfdef }
    };

    ngx_uint_t  i;

    if ((c & 0xffff) >= 0xfffe) {
        return 0;
    }

    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (c >= refused[i][0] && c <= refused[i][1]) {
            return 0;
        }
    }

    return 1;
}


/* the bytes as a token: what passes is three parts of base64url */

static void
ngx_chat_fuzz_jws_token(const uint8_t *data, size_t size)
{
    size_t                   i, dots;
    json_t                  *claims;
    ngx_int_t                rc;
    ngx_chat_token_fault_t   fault;

    rc = ngx_chat_jws_parse((u_char *) data, size, "HS256", &claims, &fault);

    if (rc != NGX_OK) {
        ngx_chat_fuzz_assert(rc == NGX_DECLINED && claims == NULL);
        ngx_chat_fuzz_fault(&fault);
        return;
    }

    ngx_chat_fuzz_assert(json_is_object(claims));
    json_decref(claims);

    for (i = 0, dots = 0; i < size; i++) {
        if (data[i] == '.') {
            dots++;
            continue;
        }

        ngx_chat_fuzz_assert((data[i] >= 'A' && data[i] <= 'Z')
                             || (data[i] >= 'a' && data[i] <= 'z')
                             || (data[i] >= '0' && data[i] <= '9')
                             || data[i] == '-' || data[i] == '_');
    }

    ngx_chat_fuzz_assert(dots == 2);
}


/*
 * The bytes as the JSON of a payload (header 0) or of a header, in a
 * token made around them: it passes when jansson, refusing duplicates,
 * reads an object, and for a header when that names HS256 without "crit"
 */

static void
ngx_chat_fuzz_jws_part(const uint8_t *data, size_t size, ngx_uint_t header)
{
    u_char                  *token, *p;
    json_t                  *claims, *ref;
    ngx_int_t                rc, expected;
    ngx_chat_token_fault_t   fault;

    token = malloc((size + sizeof(NGX_CHAT_FUZZ_HS256)) / 3 * 4 + 16);
    if (token == NULL) {
        return;
    }

    if (header) {
        p = ngx_chat_fuzz_b64url(token, data, size);
        *p++ = '.';
        p = ngx_chat_fuzz_b64url(p, (u_char *) "{}", 2);

    } else {
        p = ngx_chat_fuzz_b64url(token, (u_char *) NGX_CHAT_FUZZ_HS256,
                                 sizeof(NGX_CHAT_FUZZ_HS256) - 1);
        *p++ = '.';
        p = ngx_chat_fuzz_b64url(p, data, size);
    }

    p = ngx_cpymem(p, ".c2ln", 5);

    ref = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES,
                     NULL);

    expected = (json_is_object(ref)
                && (!header || ngx_chat_fuzz_header_verdict(ref) == NGX_OK))
               ? NGX_OK : NGX_DECLINED;

    rc = ngx_chat_jws_parse(token, p - token, "HS256", &claims, &fault);

    ngx_chat_fuzz_assert(rc == expected);

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(json_is_object(claims));

        if (!header) {
            ngx_chat_fuzz_assert(json_equal(claims, ref));
        }

        json_decref(claims);

    } else {
        ngx_chat_fuzz_fault(&fault);
    }

    json_decref(ref);
    free(token);
}


/* "alg" exactly HS256, no "crit", "typ" absent or JWT in any case */

static ngx_int_t
ngx_chat_fuzz_header_verdict(json_t *header)
{
    json_t      *v;
    const char  *typ;

    v = json_object_get(header, "alg");

    if (!json_is_string(v) || json_string_length(v) != 5
        || memcmp(json_string_value(v), "HS256", 5) != 0
        || json_object_get(header, "crit") != NULL)
    {
        return NGX_DECLINED;
    }

    v = json_object_get(header, "typ");

    if (v == NULL) {
        return NGX_OK;
    }

    typ = json_string_value(v);

    return (typ != NULL && json_string_length(v) == 3
            && (typ[0] == 'j' || typ[0] == 'J')
            && (typ[1] == 'w' || typ[1] == 'W')
            && (typ[2] == 't' || typ[2] == 'T'))
           ? NGX_OK : NGX_DECLINED;
}


/* a refusal names one of the documented classes, and says why */

static void
ngx_chat_fuzz_fault(ngx_chat_token_fault_t *fault)
{
    static const char *const  classes[] = {
        NGX_CHAT_TOKEN_MALFORMED, NGX_CHAT_TOKEN_EXTENSION,
        NGX_CHAT_TOKEN_ALGORITHM, NGX_CHAT_TOKEN_EXPIRED,
        NGX_CHAT_TOKEN_NOT_YET_VALID, NGX_CHAT_TOKEN_MISSING_CLAIM,
        NGX_CHAT_TOKEN_INVALID_CLAIM, NULL
    };

    ngx_uint_t  i;

    ngx_chat_fuzz_assert(fault->text != NULL && fault->text[0] != '\0');
    ngx_chat_fuzz_assert(fault->reason != NULL);
    ngx_chat_fuzz_assert(strlen(fault->reason) <= NGX_CHAT_TOKEN_REASON_MAX);

    for (i = 0; classes[i]; i++) {
        if (strcmp(fault->reason, classes[i]) == 0) {
            return;
        }
    }

    ngx_chat_fuzz_assert(0 && "a class of its own");
}


static u_char *
ngx_chat_fuzz_b64url(u_char *dst, const u_char *src, size_t len)
{
    static const char  alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "abcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t    i;
    uint32_t  n;

    for (i = 0; i + 2 < len; i += 3) {
        n = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        *dst++ = alphabet[n >> 18 & 63];
        *dst++ = alphabet[n >> 12 & 63];
        *dst++ = alphabet[n >> 6 & 63];
        *dst++ = alphabet[n & 63];
    }

    if (len - i == 1) {
        n = (uint32_t) src[i] << 16;
        *dst++ = alphabet[n >> 18 & 63];
        *dst++ = alphabet[n >> 12 & 63];

    } else if (len - i == 2) {
        n = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        *dst++ = alphabet[n >> 18 & 63];
        *dst++ = alphabet[n >> 12 & 63];
        *dst++ = alphabet[n >> 6 & 63];
    }

    return dst;
}
