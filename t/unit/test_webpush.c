
/*
 * Web Push: the encrypted body against the example of RFC 8291 Appendix A
 * byte for byte, the refusals of what cannot be encrypted, the VAPID token
 * verified with OpenSSL as a push service would, and base64url.
 */


#include "ngx_chat_test.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>


/* RFC 8291 Appendix A */

#define PLAIN      "When I grow up, I want to be a watermelon"
#define AS_PRIV    "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define AS_PUBLIC  "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocI" \
                   "nmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
#define UA_PUBLIC  "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTB" \
                   "Hm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH       "BTBZMqHH6r4Tts7J_aSIgg"
#define SALT       "DGv6ra1nlYgDCS1FRnbzlw"
#define BODY       "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtk" \
                   "gcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A" \
                   "_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGN" \
                   "WQexSgSxsj_Qulcy4a-fN"

#define AUD        "https://push.example.net"
#define SUB        "mailto:ops@example.com"
#define EXP        1700000000


static u_char  zeros[8192];


/* n bytes of room in a block of exactly that size, kept for the test */

static u_char *
room(size_t n)
{
    return ngx_chat_test_bytes(zeros, n);
}


/* a base64url text of the RFC to bytes, kept for the test */

static u_char *
decode(const char *text, size_t *len)
{
    u_char  *out;

    out = room(strlen(text) * 3 / 4 + 1);

    if (ngx_chat_base64url_decode(out, (u_char *) text, strlen(text), len)
        != NGX_OK)
    {
        ngx_chat_expect(!"a test vector is base64url");
        *len = 0;
    }

    return out;
}


/* bytes as base64url, kept for the test, for messages that show them */

static char *
encode(const u_char *p, size_t len)
{
    char  *out;

    out = (char *) room((len + 2) / 3 * 4 + 1);
    out[ngx_chat_base64url((u_char *) out, p, len)] = '\0';

    return out;
}


/*
 * The sender's key of the RFC: a P-256 key from its private scalar and
 * public point, selection EVP_PKEY_KEYPAIR; NULL with a failed check
 */

static EVP_PKEY *
fromdata(const u_char *priv, size_t priv_len, const u_char *pub,
    size_t pub_len, int selection)
{
    BIGNUM          *d;
    EVP_PKEY        *key;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    OSSL_PARAM_BLD  *bld;

    key = NULL;
    d = NULL;
    params = NULL;

    bld = OSSL_PARAM_BLD_new();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    ngx_chat_expect(bld != NULL && ctx != NULL);

    if (bld == NULL || ctx == NULL) {
        goto done;
    }

    if (priv) {
        d = BN_bin2bn(priv, (int) priv_len, NULL);
        ngx_chat_expect(d != NULL);
    }

    if ((priv && (d == NULL
                  || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY,
                                             d)))
        || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                            "prime256v1", 0)
        || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                             pub, pub_len))
    {
        ngx_chat_expect(!"the key's parameters are built");
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);

    if (params == NULL
        || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &key, selection, params) <= 0)
    {
        ngx_chat_expect(!"the key is made from its parameters");
        key = NULL;
    }

done:

    OSSL_PARAM_free(params);
    BN_free(d);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_BLD_free(bld);

    return key;
}


static EVP_PKEY *
rfc_sender_key(void)
{
    size_t   priv_len, pub_len;
    u_char  *priv, *pub;

    priv = decode(AS_PRIV, &priv_len);
    pub = decode(AS_PUBLIC, &pub_len);

    ngx_chat_expect_int(priv_len, 32);
    ngx_chat_expect_int(pub_len, NGX_CHAT_WEBPUSH_KEY_LEN);

    return fromdata(priv, priv_len, pub, pub_len, EVP_PKEY_KEYPAIR);
}


/* the RFC's message with ua_public and len in place of its own */

static ngx_int_t
encrypt_rfc(EVP_PKEY *key, const u_char *ua_public, const u_char *plain,
    size_t len, size_t *out_len)
{
    size_t     n;
    u_char    *auth, *salt, *out;

    auth = decode(AUTH, &n);
    salt = decode(SALT, &n);
    out = room(len + NGX_CHAT_WEBPUSH_OVERHEAD);

    *out_len = 0;

    return ngx_chat_webpush_encrypt(ua_public, auth, key, salt, plain, len,
                                    out, out_len);
}


static void
test_webpush_rfc8291_example_body_is_exact(void)
{
    size_t     n, out_len;
    u_char    *ua_public, *auth, *salt, *out;
    EVP_PKEY  *key;

    key = rfc_sender_key();

    if (key == NULL) {
        return;
    }

    ua_public = decode(UA_PUBLIC, &n);
    ngx_chat_expect_int(n, NGX_CHAT_WEBPUSH_KEY_LEN);
    auth = decode(AUTH, &n);
    ngx_chat_expect_int(n, NGX_CHAT_WEBPUSH_AUTH_LEN);
    salt = decode(SALT, &n);
    ngx_chat_expect_int(n, NGX_CHAT_WEBPUSH_SALT_LEN);

    /* exactly the room the API asks for, so that ASan sees any overrun */

    out = room(sizeof(PLAIN) - 1 + NGX_CHAT_WEBPUSH_OVERHEAD);

    ngx_chat_expect_int(ngx_chat_webpush_encrypt(ua_public, auth, key, salt,
                                                 (u_char *) PLAIN,
                                                 sizeof(PLAIN) - 1, out,
                                                 &out_len),
                        NGX_OK);

    ngx_chat_expect_int(out_len, sizeof(PLAIN) - 1
                                 + NGX_CHAT_WEBPUSH_OVERHEAD);
    ngx_chat_expect_bytes(encode(out, out_len), strlen(encode(out, out_len)),
                          BODY);

    EVP_PKEY_free(key);
}


static void
test_webpush_public_of_the_rfc_key_is_its_point(void)
{
    u_char    *out;
    EVP_PKEY  *key;

    key = rfc_sender_key();

    if (key == NULL) {
        return;
    }

    out = room(NGX_CHAT_WEBPUSH_KEY_LEN);

    ngx_chat_expect_int(ngx_chat_webpush_public(key, out), NGX_OK);
    ngx_chat_expect_bytes(encode(out, NGX_CHAT_WEBPUSH_KEY_LEN),
                          strlen(encode(out, NGX_CHAT_WEBPUSH_KEY_LEN)),
                          AS_PUBLIC);

    EVP_PKEY_free(key);
}


static void
test_webpush_ua_key_off_the_curve_is_refused(void)
{
    size_t     n, out_len;
    u_char    *ua_public;
    EVP_PKEY  *key;

    key = rfc_sender_key();

    if (key == NULL) {
        return;
    }

    /* a flipped bit of y: no longer y^2 = x^3 - 3x + b */

    ua_public = decode(UA_PUBLIC, &n);
    ua_public[64] ^= 0x01;

    ngx_chat_expect_int(encrypt_rfc(key, ua_public, (u_char *) PLAIN,
                                    sizeof(PLAIN) - 1, &out_len),
                        NGX_ERROR);

    /* and of x */

    ua_public = decode(UA_PUBLIC, &n);
    ua_public[10] ^= 0x80;

    ngx_chat_expect_int(encrypt_rfc(key, ua_public, (u_char *) PLAIN,
                                    sizeof(PLAIN) - 1, &out_len),
                        NGX_ERROR);

    EVP_PKEY_free(key);
}


static void
test_webpush_ua_key_not_uncompressed_is_refused(void)
{
    size_t     n, out_len;
    u_char    *ua_public;
    EVP_PKEY  *key;
    u_char     form[] = { 0x00, 0x02, 0x03, 0x05, 0x06, 0x07 };

    key = rfc_sender_key();

    if (key == NULL) {
        return;
    }

    for (n = 0; n < sizeof(form); n++) {
        ua_public = decode(UA_PUBLIC, &out_len);
        ua_public[0] = form[n];

        ngx_chat_expect_int(encrypt_rfc(key, ua_public, (u_char *) PLAIN,
                                        sizeof(PLAIN) - 1, &out_len),
                            NGX_ERROR);
    }

    EVP_PKEY_free(key);
}


static void
test_webpush_plaintext_of_3993_bytes_fits_3994_is_refused(void)
{
    size_t     n, out_len;
    u_char    *ua_public, *plain;
    EVP_PKEY  *key;

    key = rfc_sender_key();

    if (key == NULL) {
        return;
    }

    ua_public = decode(UA_PUBLIC, &n);
    plain = (u_char *) ngx_chat_test_repeat("x", 3994);

    ngx_chat_expect_int(encrypt_rfc(key, ua_public, plain, 3993, &out_len),
                        NGX_OK);
    ngx_chat_expect_int(out_len, 4096);

    ngx_chat_expect_int(encrypt_rfc(key, ua_public, plain, 3994, &out_len),
                        NGX_ERROR);

    /* and the empty message is a body of the overhead alone */

    ngx_chat_expect_int(encrypt_rfc(key, ua_public, plain, 0, &out_len),
                        NGX_OK);
    ngx_chat_expect_int(out_len, NGX_CHAT_WEBPUSH_OVERHEAD);

    EVP_PKEY_free(key);
}


static void
test_webpush_sender_key_without_private_part_is_refused(void)
{
    size_t     n, out_len;
    u_char    *ua_public, *pub;
    EVP_PKEY  *key;

    pub = decode(AS_PUBLIC, &n);
    key = fromdata(NULL, 0, pub, n, EVP_PKEY_PUBLIC_KEY);

    if (key == NULL) {
        return;
    }

    ua_public = decode(UA_PUBLIC, &n);

    ngx_chat_expect_int(encrypt_rfc(key, ua_public, (u_char *) PLAIN,
                                    sizeof(PLAIN) - 1, &out_len),
                        NGX_ERROR);

    EVP_PKEY_free(key);
}


static void
test_webpush_keys_of_another_curve_are_refused(void)
{
    size_t     n, out_len;
    u_char    *ua_public, *out;
    EVP_PKEY  *key;

    key = EVP_EC_gen("P-384");
    ngx_chat_expect(key != NULL);

    if (key == NULL) {
        return;
    }

    out = room(512);
    ua_public = decode(UA_PUBLIC, &n);

    ngx_chat_expect_int(ngx_chat_webpush_public(key, out), NGX_ERROR);
    ngx_chat_expect_int(encrypt_rfc(key, ua_public, (u_char *) PLAIN,
                                    sizeof(PLAIN) - 1, &out_len),
                        NGX_ERROR);
    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, EXP,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           out, 512, &n),
                        NGX_ERROR);

    EVP_PKEY_free(key);
}


/* the JWT's three parts; 0 unless there are exactly three */

static ngx_uint_t
split(u_char *jwt, size_t len, ngx_str_t *part)
{
    u_char      *p, *last, *dot;
    ngx_uint_t   i;

    p = jwt;
    last = jwt + len;

    for (i = 0; i < 3; i++) {
        dot = memchr(p, '.', last - p);

        if ((dot == NULL) != (i == 2)) {
            return 0;
        }

        part[i].data = p;
        part[i].len = (dot ? dot : last) - p;
        p = dot + 1;
    }

    return 1;
}


/* whether the ES256 signature rs verifies over data with key */

static int
verify(EVP_PKEY *key, u_char *data, size_t len, u_char *rs)
{
    int          ok, n;
    u_char      *der;
    BIGNUM      *r, *s;
    ECDSA_SIG   *sig;
    EVP_MD_CTX  *ctx;

    sig = ECDSA_SIG_new();
    r = BN_bin2bn(rs, 32, NULL);
    s = BN_bin2bn(rs + 32, 32, NULL);

    if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
        ngx_chat_expect(!"the signature is made an ECDSA_SIG");
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }

    der = NULL;
    n = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);

    ctx = EVP_MD_CTX_new();

    ok = (n > 0 && ctx != NULL
          && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1)
         ? EVP_DigestVerify(ctx, der, n, data, len) : -1;

    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);

    return ok;
}


static void
test_webpush_vapid_jwt_is_es256_over_its_claims(void)
{
    size_t      n, len;
    u_char     *jwt, *p;
    char       *payload;
    EVP_PKEY   *key;
    ngx_str_t   part[3];

    key = EVP_EC_gen("P-256");
    ngx_chat_expect(key != NULL);

    if (key == NULL) {
        return;
    }

    jwt = room(512);

    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, EXP,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           jwt, 512, &len),
                        NGX_OK);

    ngx_chat_expect_int(strlen((char *) jwt), len);

    if (!split(jwt, len, part)) {
        ngx_chat_expect(!"the JWT is three parts");
        EVP_PKEY_free(key);
        return;
    }

    p = decode(ngx_chat_test_sprintf("%.*s", (int) part[0].len,
                                     part[0].data), &n);
    ngx_chat_expect_bytes(p, n, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}");

    p = decode(ngx_chat_test_sprintf("%.*s", (int) part[1].len,
                                     part[1].data), &n);
    ngx_chat_expect_bytes(p, n, "{\"aud\":\"" AUD "\",\"exp\":1700000000,"
                                "\"sub\":\"" SUB "\"}");

    p = decode(ngx_chat_test_sprintf("%.*s", (int) part[2].len,
                                     part[2].data), &n);
    ngx_chat_expect_int(n, 64);

    if (n == 64) {
        ngx_chat_expect_int(verify(key, jwt, part[2].data - 1 - jwt, p), 1);

        /* another payload under the same signature */

        payload = ngx_chat_test_sprintf("%.*s.%s", (int) part[0].len,
                                        part[0].data,
                                        encode((u_char *) "{\"aud\":\"x\"}",
                                               sizeof("{\"aud\":\"x\"}")
                                               - 1));
        ngx_chat_expect_int(verify(key, (u_char *) payload, strlen(payload),
                                   p),
                            0);

        /* one bit of the signed text */

        jwt[part[1].len / 2 + part[1].data - jwt] ^= 0x01;
        ngx_chat_expect_int(verify(key, jwt, part[2].data - 1 - jwt, p), 0);
    }

    EVP_PKEY_free(key);
}


static void
test_webpush_vapid_claims_are_json_escaped(void)
{
    size_t      n, len;
    u_char     *jwt, *p;
    EVP_PKEY   *key;
    ngx_str_t   part[3];

    static const char  sub[] = "mailto:\"ops\"\\\n@example.com";

    key = EVP_EC_gen("P-256");
    ngx_chat_expect(key != NULL);

    if (key == NULL) {
        return;
    }

    jwt = room(512);

    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, 0,
                                           (u_char *) sub, sizeof(sub) - 1,
                                           jwt, 512, &len),
                        NGX_OK);

    if (!split(jwt, len, part)) {
        ngx_chat_expect(!"the JWT is three parts");
        EVP_PKEY_free(key);
        return;
    }

    p = decode(ngx_chat_test_sprintf("%.*s", (int) part[1].len,
                                     part[1].data), &n);
    ngx_chat_expect_bytes(p, n, "{\"aud\":\"" AUD "\",\"exp\":0,"
                          "\"sub\":\"mailto:\\\"ops\\\"\\\\\\u000a"
                          "@example.com\"}");

    EVP_PKEY_free(key);
}


static void
test_webpush_vapid_jwt_needs_room_for_all_and_its_nul(void)
{
    size_t     len, n;
    u_char    *jwt;
    EVP_PKEY  *key;

    key = EVP_EC_gen("P-256");
    ngx_chat_expect(key != NULL);

    if (key == NULL) {
        return;
    }

    jwt = room(512);

    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, EXP,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           jwt, 512, &len),
                        NGX_OK);

    /* heap blocks of exactly the size given: ASan sees a byte past it */

    jwt = room(len + 1);
    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, EXP,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           jwt, len + 1, &n),
                        NGX_OK);
    ngx_chat_expect_int(n, len);

    jwt = room(len);
    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, EXP,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           jwt, len, &n),
                        NGX_ERROR);

    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, EXP,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           jwt, 0, &n),
                        NGX_ERROR);

    EVP_PKEY_free(key);
}


static void
test_webpush_vapid_exp_before_1970_is_refused(void)
{
    size_t     n;
    u_char    *jwt;
    EVP_PKEY  *key;

    key = EVP_EC_gen("P-256");
    ngx_chat_expect(key != NULL);

    if (key == NULL) {
        return;
    }

    jwt = room(512);

    ngx_chat_expect_int(ngx_chat_vapid_jwt(key, (u_char *) AUD,
                                           sizeof(AUD) - 1, -1,
                                           (u_char *) SUB, sizeof(SUB) - 1,
                                           jwt, 512, &n),
                        NGX_ERROR);

    EVP_PKEY_free(key);
}


static void
test_webpush_base64url_round_trips(void)
{
    size_t   len, n, m;
    u_char  *in, *text, *out;

    in = room(256);

    for (n = 0; n < 256; n++) {
        in[n] = (u_char) (255 - n);
    }

    /* blocks of exactly the documented room, many more than tests keep */

    for (len = 0; len <= 256; len++) {
        text = malloc((len + 2) / 3 * 4 + 1);
        out = malloc((len + 2) / 3 * 3 + 1);

        if (text == NULL || out == NULL) {
            ngx_chat_expect(!"malloc");
            free(text);
            free(out);
            return;
        }

        n = ngx_chat_base64url(text, in, len);

        ngx_chat_expect_int(n, (len * 4 + 2) / 3);
        ngx_chat_expect(memchr(text, '=', n) == NULL);

        ngx_chat_expect_int(ngx_chat_base64url_decode(out, text, n, &m),
                            NGX_OK);
        ngx_chat_expect_int(m, len);
        ngx_chat_expect(ngx_memcmp(out, in, len) == 0);

        free(text);
        free(out);
    }

    ngx_chat_expect_bytes(encode((u_char *) "\xfb\xff\xbf", 3), 4, "-_-_");
    ngx_chat_expect_bytes(encode((u_char *) "f", 1), 2, "Zg");
    ngx_chat_expect_bytes(encode((u_char *) "fo", 2), 3, "Zm8");
    ngx_chat_expect_bytes(encode((u_char *) "foo", 3), 4, "Zm9v");
}


static void
test_webpush_base64url_decode_refuses_other_alphabets(void)
{
    size_t       n;
    u_char      *out;
    ngx_uint_t   i;

    static const ngx_str_t  bad[] = {
        ngx_string("Zm9v+A"),           /* base64's own alphabet */
        ngx_string("Zm9v/A"),
        ngx_string("Zm8="),             /* padding */
        ngx_string("Zg=="),
        ngx_string("Zm 9v"),
        ngx_string("Zm9v\n"),
        ngx_string("Zm\0v"),
        ngx_string("Zm\xc3\xa9"),
        ngx_string("Z"),                /* 4n + 1: no whole byte */
        ngx_string("Zm9vZ"),
        ngx_string("Zm9vYmFyZ")
    };

    out = room(16);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ngx_chat_expect_int(ngx_chat_base64url_decode(out, bad[i].data,
                                                      bad[i].len, &n),
                            NGX_ERROR);
    }

    ngx_chat_expect_int(ngx_chat_base64url_decode(out, (u_char *) "", 0, &n),
                        NGX_OK);
    ngx_chat_expect_int(n, 0);

    ngx_chat_expect_int(ngx_chat_base64url_decode(out, (u_char *) "-_-_", 4,
                                                  &n),
                        NGX_OK);
    ngx_chat_expect_bytes(out, n, "\xfb\xff\xbf");
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_webpush_rfc8291_example_body_is_exact),
    ngx_chat_test(test_webpush_public_of_the_rfc_key_is_its_point),
    ngx_chat_test(test_webpush_ua_key_off_the_curve_is_refused),
    ngx_chat_test(test_webpush_ua_key_not_uncompressed_is_refused),
    ngx_chat_test(test_webpush_plaintext_of_3993_bytes_fits_3994_is_refused),
    ngx_chat_test(test_webpush_sender_key_without_private_part_is_refused),
    ngx_chat_test(test_webpush_keys_of_another_curve_are_refused),
    ngx_chat_test(test_webpush_vapid_jwt_is_es256_over_its_claims),
    ngx_chat_test(test_webpush_vapid_claims_are_json_escaped),
    ngx_chat_test(test_webpush_vapid_jwt_needs_room_for_all_and_its_nul),
    ngx_chat_test(test_webpush_vapid_exp_before_1970_is_refused),
    ngx_chat_test(test_webpush_base64url_round_trips),
    ngx_chat_test(test_webpush_base64url_decode_refuses_other_alphabets),
    ngx_chat_null_test
};
