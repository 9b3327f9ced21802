
/*
 * ngx_chat: the cryptography of Web Push.  A push message goes to the
 * push service of a browser encrypted to that browser's subscription
 * (RFC 8291, the aes128gcm encoding of RFC 8188), and the request carries
 * a VAPID token (RFC 8292) signed with the server's key, so that the push
 * service knows who sends.  Both are bytes in, bytes out: the module
 * holds the keys and does the HTTP.
 */


#include "ngx_chat_pure.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>


#define NGX_CHAT_WEBPUSH_RS        4096
#define NGX_CHAT_WEBPUSH_SECRET    32
#define NGX_CHAT_WEBPUSH_CEK_LEN   16
#define NGX_CHAT_WEBPUSH_NONCE_LEN 12
#define NGX_CHAT_WEBPUSH_TAG_LEN   16

/*
 * RFC 8291 4: push services need take no body past 4096 bytes, and the
 * header, the delimiter and the tag leave 3993 of them to the plaintext
 */
#define NGX_CHAT_WEBPUSH_PLAIN_MAX                                            \
    (NGX_CHAT_WEBPUSH_RS - NGX_CHAT_WEBPUSH_OVERHEAD)

/* ES256: r and s of 32 bytes each */
#define NGX_CHAT_ES256_LEN         64

#define ngx_chat_base64url_len(n)  ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))


static ngx_int_t ngx_chat_webpush_p256(EVP_PKEY *key);
static EVP_PKEY *ngx_chat_webpush_peer(const u_char *point);
static ngx_int_t ngx_chat_webpush_ecdh(EVP_PKEY *key, EVP_PKEY *peer,
    u_char *secret);
static ngx_int_t ngx_chat_webpush_keys(const u_char *secret,
    const u_char *auth, const u_char *ua_public, const u_char *as_public,
    const u_char *salt, u_char *cek, u_char *nonce);
static ngx_int_t ngx_chat_webpush_hmac(const u_char *key, size_t key_len,
    const u_char *data, size_t len, u_char *md);
static ngx_int_t ngx_chat_webpush_seal(const u_char *cek,
    const u_char *nonce, const u_char *plain, size_t len, u_char *out);
static ngx_int_t ngx_chat_es256_sign(EVP_PKEY *key, const u_char *data,
    size_t len, u_char *rs);


static const char  ngx_chat_jwt_header[] =
    "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";

static char  ngx_chat_p256[] = "prime256v1";


ngx_int_t
ngx_chat_webpush_encrypt(const u_char *ua_public, const u_char *auth,
    EVP_PKEY *as_key, const u_char *salt, const u_char *plain, size_t len,
    u_char *out, size_t *out_len)
{
    u_char     *p;
    ngx_int_t   rc;
    EVP_PKEY   *peer;
    u_char      as_public[NGX_CHAT_WEBPUSH_KEY_LEN];
    u_char      secret[NGX_CHAT_WEBPUSH_SECRET];
    u_char      cek[NGX_CHAT_WEBPUSH_CEK_LEN];
    u_char      nonce[NGX_CHAT_WEBPUSH_NONCE_LEN];

    if (len > NGX_CHAT_WEBPUSH_PLAIN_MAX) {
        return NGX_ERROR;
    }

    if (ngx_chat_webpush_public(as_key, as_public) != NGX_OK) {
        return NGX_ERROR;
    }

    peer = ngx_chat_webpush_peer(ua_public);

    if (peer == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_webpush_ecdh(as_key, peer, secret);
    EVP_PKEY_free(peer);

    if (rc == NGX_OK) {
        rc = ngx_chat_webpush_keys(secret, auth, ua_public, as_public, salt,
                                   cek, nonce);
    }

    OPENSSL_cleanse(secret, sizeof(secret));

    if (rc != NGX_OK) {
        OPENSSL_cleanse(cek, sizeof(cek));
        return NGX_ERROR;
    }

    /* the RFC 8188 header: salt, rs, idlen and the keyid */

    p = ngx_cpymem(out, salt, NGX_CHAT_WEBPUSH_SALT_LEN);

    *p++ = (u_char) (NGX_CHAT_WEBPUSH_RS >> 24);
    *p++ = (u_char) (NGX_CHAT_WEBPUSH_RS >> 16);
    *p++ = (u_char) (NGX_CHAT_WEBPUSH_RS >> 8);
    *p++ = (u_char) NGX_CHAT_WEBPUSH_RS;

    *p++ = NGX_CHAT_WEBPUSH_KEY_LEN;
    p = ngx_cpymem(p, as_public, NGX_CHAT_WEBPUSH_KEY_LEN);

    rc = ngx_chat_webpush_seal(cek, nonce, plain, len, p);
    OPENSSL_cleanse(cek, sizeof(cek));

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    *out_len = len + NGX_CHAT_WEBPUSH_OVERHEAD;

    return NGX_OK;
}


ngx_int_t
ngx_chat_webpush_public(EVP_PKEY *key, u_char *out)
{
    size_t  n;
    u_char  buf[2 * NGX_CHAT_WEBPUSH_KEY_LEN];

    if (ngx_chat_webpush_p256(key) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * the key gives its point in the form it was made or read with: only
     * the uncompressed one (0x04, x, y) is what a subscriber expects
     */

    if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, buf,
                                         sizeof(buf), &n)
        || n != NGX_CHAT_WEBPUSH_KEY_LEN
        || buf[0] != 0x04)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(out, buf, NGX_CHAT_WEBPUSH_KEY_LEN);

    return NGX_OK;
}


ngx_int_t
ngx_chat_vapid_jwt(EVP_PKEY *key, const u_char *aud, size_t aud_len,
    time_t exp, const u_char *sub, size_t sub_len, u_char *out, size_t size,
    size_t *out_len)
{
    int        nexp;
    char       num[NGX_INT64_LEN + 1];
    size_t     json_len, input_len, need;
    u_char    *json, *p;
    ngx_int_t  rc;
    u_char     rs[NGX_CHAT_ES256_LEN];

    /* a time before 1970 is a caller's bug, not a token */

    if (exp < 0 || ngx_chat_webpush_p256(key) != NGX_OK) {
        return NGX_ERROR;
    }

    nexp = snprintf(num, sizeof(num), "%lld", (long long) exp);

    if (nexp <= 0 || (size_t) nexp >= sizeof(num)) {
        return NGX_ERROR;
    }

    json_len = sizeof("{\"aud\":\"") - 1
               + ngx_chat_json_escape_len((u_char *) aud, aud_len)
               + sizeof("\",\"exp\":") - 1 + nexp
               + sizeof(",\"sub\":\"") - 1
               + ngx_chat_json_escape_len((u_char *) sub, sub_len)
               + sizeof("\"}") - 1;

    input_len = ngx_chat_base64url_len(sizeof(ngx_chat_jwt_header) - 1)
                + 1 + ngx_chat_base64url_len(json_len);

    need = input_len + 1 + ngx_chat_base64url_len(NGX_CHAT_ES256_LEN) + 1;

    if (need > size) {
        return NGX_ERROR;
    }

    json = malloc(json_len);

    if (json == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(json, "{\"aud\":\"", sizeof("{\"aud\":\"") - 1);
    p = ngx_chat_json_escape(p, (u_char *) aud, aud_len);
    p = ngx_cpymem(p, "\",\"exp\":", sizeof("\",\"exp\":") - 1);
    p = ngx_cpymem(p, num, nexp);
    p = ngx_cpymem(p, ",\"sub\":\"", sizeof(",\"sub\":\"") - 1);
    p = ngx_chat_json_escape(p, (u_char *) sub, sub_len);
    ngx_memcpy(p, "\"}", sizeof("\"}") - 1);

    p = out + ngx_chat_base64url(out, (u_char *) ngx_chat_jwt_header,
                                 sizeof(ngx_chat_jwt_header) - 1);
    *p++ = '.';
    p += ngx_chat_base64url(p, json, json_len);

    free(json);

    rc = ngx_chat_es256_sign(key, out, input_len, rs);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    *p++ = '.';
    p += ngx_chat_base64url(p, rs, NGX_CHAT_ES256_LEN);
    *p = '\0';

    *out_len = p - out;

    return NGX_OK;
}


static const u_char  ngx_chat_base64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


size_t
ngx_chat_base64url(u_char *out, const u_char *in, size_t len)
{
    u_char        *p;
    const u_char  *t;

    t = ngx_chat_base64url_alphabet;
    p = out;

    while (len >= 3) {
        *p++ = t[in[0] >> 2];
        *p++ = t[((in[0] & 0x03) << 4) | (in[1] >> 4)];
        *p++ = t[((in[1] & 0x0f) << 2) | (in[2] >> 6)];
        *p++ = t[in[2] & 0x3f];
        in += 3;
        len -= 3;
    }

    if (len == 1) {
        *p++ = t[in[0] >> 2];
        *p++ = t[(in[0] & 0x03) << 4];

    } else if (len == 2) {
        *p++ = t[in[0] >> 2];
        *p++ = t[((in[0] & 0x03) << 4) | (in[1] >> 4)];
        *p++ = t[(in[1] & 0x0f) << 2];
    }

    return p - out;
}


/* 64 marks a byte outside the alphabet */

static const u_char  ngx_chat_base64url_values[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64
};


/*
 * Padding ('=') is refused with the rest: subscriptions and VAPID keys
 * come without it.  Unused low bits of the last character are ignored,
 * as browsers' decoders do: what is decoded here is a key, never a text
 * that a signature covers.
 */

ngx_int_t
ngx_chat_base64url_decode(u_char *out, const u_char *in, size_t len,
    size_t *out_len)
{
    size_t         i;
    u_char        *p;
    uint32_t       v;
    const u_char  *t;

    t = ngx_chat_base64url_values;

    if (len % 4 == 1) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        if (t[in[i]] == 64) {
            return NGX_ERROR;
        }
    }

    p = out;

    for ( /* void */ ; len >= 4; in += 4, len -= 4) {
        v = (uint32_t) t[in[0]] << 18 | (uint32_t) t[in[1]] << 12
            | (uint32_t) t[in[2]] << 6 | t[in[3]];

        *p++ = (u_char) (v >> 16);
        *p++ = (u_char) (v >> 8);
        *p++ = (u_char) v;
    }

    if (len >= 2) {
        v = (uint32_t) t[in[0]] << 18 | (uint32_t) t[in[1]] << 12;

        if (len == 3) {
            v |= (uint32_t) t[in[2]] << 6;
        }

        *p++ = (u_char) (v >> 16);

        if (len == 3) {
            *p++ = (u_char) (v >> 8);
        }
    }

    *out_len = p - out;

    return NGX_OK;
}


/* ES256 and RFC 8291 are both of P-256: a key of another curve is a bug */

static ngx_int_t
ngx_chat_webpush_p256(EVP_PKEY *key)
{
    char  name[64];

    if (key == NULL
        || !EVP_PKEY_is_a(key, "EC")
        || !EVP_PKEY_get_group_name(key, name, sizeof(name), NULL)
        || ngx_strcmp(name, ngx_chat_p256) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The subscription's key as an EVP_PKEY.  Only the uncompressed form is
 * taken: 0x02 and 0x03 are shorter, and 0x06 and 0x07 (hybrid) would pass
 * OpenSSL though no browser sends them.  OpenSSL refuses a point off the
 * curve here: ECDH with a point of another curve, chosen by whoever wrote
 * the subscription, would give away bits of our private key.
 */

static EVP_PKEY *
ngx_chat_webpush_peer(const u_char *point)
{
    EVP_PKEY      *peer;
    OSSL_PARAM     params[3];
    EVP_PKEY_CTX  *ctx;

    if (point[0] != 0x04) {
        return NULL;
    }

    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    if (ctx == NULL) {
        return NULL;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 ngx_chat_p256, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  (void *) point,
                                                  NGX_CHAT_WEBPUSH_KEY_LEN);
    params[2] = OSSL_PARAM_construct_end();

    peer = NULL;

    if (EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) <= 0)
    {
        peer = NULL;
    }

    EVP_PKEY_CTX_free(ctx);

    return peer;
}


static ngx_int_t
ngx_chat_webpush_ecdh(EVP_PKEY *key, EVP_PKEY *peer, u_char *secret)
{
    size_t         n;
    ngx_int_t      rc;
    EVP_PKEY_CTX  *ctx;

    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    n = NGX_CHAT_WEBPUSH_SECRET;

    /* EVP_PKEY_derive_set_peer() checks the peer's key as well */

    rc = (EVP_PKEY_derive_init(ctx) > 0
          && EVP_PKEY_derive_set_peer(ctx, peer) > 0
          && EVP_PKEY_derive(ctx, secret, &n) > 0
          && n == NGX_CHAT_WEBPUSH_SECRET)
         ? NGX_OK : NGX_ERROR;

    EVP_PKEY_CTX_free(ctx);

    return rc;
}


/* RFC 8291 3.4 and RFC 8188 2.2: the content key and the nonce */

static ngx_int_t
ngx_chat_webpush_keys(const u_char *secret, const u_char *auth,
    const u_char *ua_public, const u_char *as_public, const u_char *salt,
    u_char *cek, u_char *nonce)
{
    u_char     *p;
    ngx_int_t   rc;
    u_char      prk_key[SHA256_DIGEST_LENGTH];
    u_char      ikm[SHA256_DIGEST_LENGTH];
    u_char      prk[SHA256_DIGEST_LENGTH];
    u_char      md[SHA256_DIGEST_LENGTH];
    u_char      info[sizeof("WebPush: info") + 2 * NGX_CHAT_WEBPUSH_KEY_LEN
                     + 1];

    static const u_char  cek_info[] = "Content-Encoding: aes128gcm\0\1";
    static const u_char  nonce_info[] = "Content-Encoding: nonce\0\1";

    /* key_info || 0x01: the HKDF expand of one block, whose first 32 */

    p = ngx_cpymem(info, "WebPush: info", sizeof("WebPush: info"));
    p = ngx_cpymem(p, ua_public, NGX_CHAT_WEBPUSH_KEY_LEN);
    p = ngx_cpymem(p, as_public, NGX_CHAT_WEBPUSH_KEY_LEN);
    *p++ = 0x01;

    rc = NGX_ERROR;

    if (ngx_chat_webpush_hmac(auth, NGX_CHAT_WEBPUSH_AUTH_LEN, secret,
                              NGX_CHAT_WEBPUSH_SECRET, prk_key) != NGX_OK
        || ngx_chat_webpush_hmac(prk_key, sizeof(prk_key), info, p - info,
                                 ikm) != NGX_OK
        || ngx_chat_webpush_hmac(salt, NGX_CHAT_WEBPUSH_SALT_LEN, ikm,
                                 sizeof(ikm), prk) != NGX_OK)
    {
        goto done;
    }

    if (ngx_chat_webpush_hmac(prk, sizeof(prk), cek_info,
                              sizeof(cek_info) - 1, md) != NGX_OK)
    {
        goto done;
    }

    ngx_memcpy(cek, md, NGX_CHAT_WEBPUSH_CEK_LEN);

    if (ngx_chat_webpush_hmac(prk, sizeof(prk), nonce_info,
                              sizeof(nonce_info) - 1, md) != NGX_OK)
    {
        goto done;
    }

    ngx_memcpy(nonce, md, NGX_CHAT_WEBPUSH_NONCE_LEN);

    rc = NGX_OK;

done:

    OPENSSL_cleanse(prk_key, sizeof(prk_key));
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(md, sizeof(md));

    return rc;
}


static ngx_int_t
ngx_chat_webpush_hmac(const u_char *key, size_t key_len, const u_char *data,
    size_t len, u_char *md)
{
    unsigned int  n;

    if (HMAC(EVP_sha256(), key, (int) key_len, data, len, md, &n) == NULL
        || n != SHA256_DIGEST_LENGTH)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* one record, the last: the plaintext, the delimiter 0x02, no padding */

static ngx_int_t
ngx_chat_webpush_seal(const u_char *cek, const u_char *nonce,
    const u_char *plain, size_t len, u_char *out)
{
    int              n, m;
    ngx_int_t        rc;
    EVP_CIPHER_CTX  *ctx;

    static const u_char  delimiter = 0x02;

    ctx = EVP_CIPHER_CTX_new();

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, cek, nonce) != 1
        || EVP_EncryptUpdate(ctx, out, &n, plain, (int) len) != 1
        || EVP_EncryptUpdate(ctx, out + n, &m, &delimiter, 1) != 1)
    {
        goto done;
    }

    n += m;

    if (EVP_EncryptFinal_ex(ctx, out + n, &m) != 1) {
        goto done;
    }

    n += m;

    if ((size_t) n != len + 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                               NGX_CHAT_WEBPUSH_TAG_LEN, out + n) != 1)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


/*
 * JWS ES256 (RFC 7518 3.4) is r and s as two 32-byte big-endian numbers;
 * OpenSSL gives the DER of RFC 3279, of 70 to 72 bytes
 */

static ngx_int_t
ngx_chat_es256_sign(EVP_PKEY *key, const u_char *data, size_t len,
    u_char *rs)
{
    size_t          n;
    u_char         *der;
    ngx_int_t       rc;
    ECDSA_SIG      *sig;
    EVP_MD_CTX     *ctx;
    const BIGNUM   *r, *s;
    const u_char   *q;

    ctx = EVP_MD_CTX_new();

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    der = NULL;
    sig = NULL;
    rc = NGX_ERROR;

    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1
        || EVP_DigestSign(ctx, NULL, &n, data, len) != 1)
    {
        goto done;
    }

    der = malloc(n);

    if (der == NULL) {
        goto done;
    }

    if (EVP_DigestSign(ctx, der, &n, data, len) != 1) {
        goto done;
    }

    q = der;
    sig = d2i_ECDSA_SIG(NULL, &q, (long) n);

    if (sig == NULL || q != der + n) {
        goto done;
    }

    ECDSA_SIG_get0(sig, &r, &s);

    if (BN_bn2binpad(r, rs, 32) != 32 || BN_bn2binpad(s, rs + 32, 32) != 32) {
        goto done;
    }

    rc = NGX_OK;

done:

    ECDSA_SIG_free(sig);
    free(der);
    EVP_MD_CTX_free(ctx);

    return rc;
}
