
/*
 * ngx_chat: the pure logic.
 *
 * Everything declared here takes bytes and returns results: it calls no
 * nginx function (only its types and macros), touches no event and
 * allocates only through jansson, libcrypto and malloc().  The module,
 * the unit tests in t/unit/ and the fuzz targets link the same objects.
 */


#ifndef _NGX_CHAT_PURE_H_INCLUDED_
#define _NGX_CHAT_PURE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include <openssl/evp.h>


/* the largest id we hand out or accept: JSON integers stay exact below it */
#define NGX_CHAT_MAX_ID          9007199254740991LL

#define NGX_CHAT_ERR_LEN         200


/* request methods, as a bitmask of our own: nginx's macros are not pure */

#define NGX_CHAT_GET             0x01
#define NGX_CHAT_POST            0x02
#define NGX_CHAT_PUT             0x04
#define NGX_CHAT_PATCH           0x08
#define NGX_CHAT_DELETE          0x10


/* a validation failure: the HTTP status and a message naming the field */

typedef struct {
    ngx_uint_t                   status;
    char                         text[NGX_CHAT_ERR_LEN];
} ngx_chat_error_t;


/* field types of request arguments */

typedef enum {
    NGX_CHAT_T_ID = 1,           /* positive integer id below 2^53 */
    NGX_CHAT_T_SEQ,              /* non-negative integer below 2^53 */
    NGX_CHAT_T_LIMIT,            /* page size: 1 and more, clamped to 100 */
    NGX_CHAT_T_STR,              /* string of at most max characters */
    NGX_CHAT_T_TEXT,             /* message text: at most limits bytes, 413 */
    NGX_CHAT_T_USER,             /* user id: 1-128 bytes, no controls */
    NGX_CHAT_T_BOOL,
    NGX_CHAT_T_ENUM,
    NGX_CHAT_T_TIME,             /* RFC 3339 timestamp */
    NGX_CHAT_T_USERS,            /* array of user ids, at most max */
    NGX_CHAT_T_IDS,              /* array of ids, at most max */
    NGX_CHAT_T_SEQMAP            /* object {"<id>": seq}, at most max */
} ngx_chat_type_e;


#define NGX_CHAT_REQUIRED        0x01
#define NGX_CHAT_NULLABLE        0x02


typedef struct {
    const char                  *name;     /* as the client spells it */
    const char                  *arg;      /* in the args; NULL: name */
    ngx_uint_t                   type;
    ngx_uint_t                   flags;
    size_t                       max;
    const char *const           *values;   /* NGX_CHAT_T_ENUM, NULL-ended */
} ngx_chat_field_t;

#define ngx_chat_null_field      { NULL, NULL, 0, 0, 0, NULL }


/* limits from the configuration that validation needs */

typedef struct {
    size_t                       max_text;     /* chat_message_max */
} ngx_chat_limits_t;


ngx_int_t ngx_chat_args_from_json(json_t *in, const ngx_chat_field_t *fields,
    const ngx_chat_limits_t *limits, json_t *out, ngx_chat_error_t *err);
ngx_int_t ngx_chat_args_from_query(u_char *p, size_t len,
    const ngx_chat_field_t *fields, const ngx_chat_limits_t *limits,
    json_t *out, ngx_chat_error_t *err);
ngx_int_t ngx_chat_args_set_string(json_t *out, const char *name,
    ngx_uint_t type, u_char *p, size_t len, ngx_chat_error_t *err);
ngx_int_t ngx_chat_args_require(json_t *out, const ngx_chat_field_t *fields,
    ngx_chat_error_t *err);

ngx_int_t ngx_chat_id_valid(json_t *v, size_t max);
ngx_int_t ngx_chat_utf8_valid(u_char *p, size_t len);
size_t ngx_chat_utf8_chars(u_char *p, size_t len);
ngx_int_t ngx_chat_rfc3339_valid(u_char *p, size_t len);
ngx_int_t ngx_chat_parse_id(u_char *p, size_t len, int64_t *id);
size_t ngx_chat_unescape(u_char *dst, u_char *src, size_t len);
u_char *ngx_chat_json_escape(u_char *dst, u_char *src, size_t len);
size_t ngx_chat_json_escape_len(u_char *src, size_t len);


/* routing: a path below the chat_api location to a route and captures */

#define NGX_CHAT_MAX_CAPTURES    4

typedef struct {
    ngx_str_t                    name;     /* from the pattern */
    ngx_uint_t                   type;     /* NGX_CHAT_T_ID or _STR */
    ngx_str_t                    value;    /* a slice of the path */
} ngx_chat_capture_t;

typedef struct {
    ngx_chat_capture_t           captures[NGX_CHAT_MAX_CAPTURES];
    ngx_uint_t                   ncaptures;
    ngx_uint_t                   allowed;  /* methods the path takes */
} ngx_chat_match_t;

typedef struct {
    ngx_uint_t                   method;
    /* "conversations/#conversation_id/members/:user_id" */
    const char                  *pattern;
    void                        *data;
} ngx_chat_route_t;

#define NGX_CHAT_NO_ROUTE        (-1)
#define NGX_CHAT_NO_METHOD       (-2)

ngx_int_t ngx_chat_route_find(const ngx_chat_route_t *routes, ngx_uint_t n,
    ngx_uint_t method, u_char *path, size_t len, ngx_chat_match_t *m);


/* JWT claims: the identity they name */

typedef struct {
    ngx_str_t                    tenant;
    ngx_str_t                    user;
    ngx_str_t                    name;     /* empty when the claim is absent */
    time_t                       exp;
    ngx_uint_t                   bot;      /* "bot": true */
    ngx_str_t                    claims;   /* JSON of chat_policy claims= */
} ngx_chat_identity_t;

typedef struct {
    time_t                       now;
    time_t                       leeway;
    const char                  *tenant_claim;
} ngx_chat_claims_rules_t;

ngx_int_t ngx_chat_claims_check(json_t *claims,
    const ngx_chat_claims_rules_t *rules, ngx_chat_identity_t *id,
    const char **reason);


/*
 * Why a token is refused: the class a 401 names ("reason"), and a text
 * for the log.  Neither ever holds a byte of the token or of the key.
 */

#define NGX_CHAT_TOKEN_MISSING        "missing_token"
#define NGX_CHAT_TOKEN_MALFORMED      "malformed"
#define NGX_CHAT_TOKEN_EXTENSION      "unsupported_extension"
#define NGX_CHAT_TOKEN_ALGORITHM      "algorithm_not_allowed"
#define NGX_CHAT_TOKEN_SIGNATURE      "bad_signature"
#define NGX_CHAT_TOKEN_EXPIRED        "expired"
#define NGX_CHAT_TOKEN_NOT_YET_VALID  "not_yet_valid"
#define NGX_CHAT_TOKEN_MISSING_CLAIM  "missing_claim"
#define NGX_CHAT_TOKEN_INVALID_CLAIM  "invalid_claim"

/* the longest of the classes above */
#define NGX_CHAT_TOKEN_REASON_MAX     (sizeof("unsupported_extension") - 1)

typedef struct {
    const char                  *reason;
    const char                  *text;
} ngx_chat_token_fault_t;

ngx_int_t ngx_chat_claims_verify(json_t *claims,
    const ngx_chat_claims_rules_t *rules, ngx_chat_identity_t *id,
    ngx_chat_token_fault_t *fault);
ngx_int_t ngx_chat_jws_parse(u_char *token, size_t len, const char *alg,
    json_t **claims, ngx_chat_token_fault_t *fault);
ngx_int_t ngx_chat_token_id_valid(u_char *p, size_t len, size_t max);


/* RFC 6455 framing */

#define NGX_CHAT_WS_CONT              0x0
#define NGX_CHAT_WS_TEXT              0x1
#define NGX_CHAT_WS_BINARY            0x2
#define NGX_CHAT_WS_CLOSE             0x8
#define NGX_CHAT_WS_PING              0x9
#define NGX_CHAT_WS_PONG              0xa

#define NGX_CHAT_WS_NORMAL            1000
#define NGX_CHAT_WS_GOING_AWAY        1001
#define NGX_CHAT_WS_PROTOCOL_ERROR    1002
#define NGX_CHAT_WS_UNSUPPORTED       1003
#define NGX_CHAT_WS_BAD_DATA          1007
#define NGX_CHAT_WS_POLICY            1008
#define NGX_CHAT_WS_TOO_BIG           1009
#define NGX_CHAT_WS_SERVER_ERROR      1011
#define NGX_CHAT_WS_TRY_AGAIN         1013

/* the longest server frame header */
#define NGX_CHAT_WS_HEADER_MAX        10

/* the longest client frame header: 2 bytes, 8 of length, 4 of mask */
#define NGX_CHAT_WS_CLIENT_HEADER_MAX 14

typedef struct {
    size_t                       len;
    size_t                       header_len;
    u_char                       mask[4];
    unsigned                     fin:1;
    unsigned                     masked:1;
    unsigned                     opcode:4;
} ngx_chat_ws_frame_t;

ngx_int_t ngx_chat_ws_parse_header(u_char *p, size_t len, size_t max,
    ngx_chat_ws_frame_t *f, ngx_uint_t *code);
void ngx_chat_ws_unmask(u_char *p, size_t len, u_char *mask, size_t offset);
ngx_int_t ngx_chat_utf8_step(uint32_t *state, u_char *p, size_t len);
ngx_uint_t ngx_chat_ws_close_code(u_char *p, size_t len, ngx_uint_t *bad);
u_char *ngx_chat_ws_frame_header(u_char *p, ngx_uint_t opcode, size_t len);


/* the reader: a client's bytes to messages and control frames */

typedef enum {
    NGX_CHAT_WS_READ_MESSAGE = 0,    /* a whole text message */
    NGX_CHAT_WS_READ_PING,           /* data: what the pong echoes */
    NGX_CHAT_WS_READ_PONG,
    NGX_CHAT_WS_READ_CLOSE,          /* code: the peer's, 0 if it gave none */
    NGX_CHAT_WS_READ_FAIL            /* code, reason: what to close with */
} ngx_chat_ws_read_e;

typedef struct {
    ngx_uint_t                   what;
    u_char                      *data;
    size_t                       len;
    ngx_uint_t                   code;
    const char                  *reason;
} ngx_chat_ws_read_t;

typedef void (*ngx_chat_ws_read_pt)(void *data, ngx_chat_ws_read_t *ev);

typedef struct {
    size_t                       max;        /* of a message */
    size_t                       frame_max;  /* of a frame kept whole */
    ngx_chat_ws_read_pt          handler;
    void                        *data;

    /* buffers exist only while a frame or a message is incomplete */
    u_char                      *partial;
    size_t                       partial_len;
    size_t                       partial_size;
    u_char                      *message;
    size_t                       message_len;
    size_t                       message_size;
    uint32_t                     utf8;

    unsigned                     in_message:1;
    unsigned                     done:1;     /* failed, or the peer closed */
} ngx_chat_ws_reader_t;

size_t ngx_chat_ws_read(ngx_chat_ws_reader_t *rd, u_char *buf, size_t len);
ngx_int_t ngx_chat_ws_keep(ngx_chat_ws_reader_t *rd, u_char *p, size_t len);
ngx_int_t ngx_chat_ws_feed(ngx_chat_ws_reader_t *rd, u_char *buf,
    size_t have);
void ngx_chat_ws_reader_free(ngx_chat_ws_reader_t *rd);


/* files: what the bytes are (sniffing) */

typedef enum {
    NGX_CHAT_KIND_FILE = 0,      /* sent as an attachment */
    NGX_CHAT_KIND_IMAGE,         /* these three shown inline */
    NGX_CHAT_KIND_VIDEO,
    NGX_CHAT_KIND_AUDIO
} ngx_chat_kind_e;

#define NGX_CHAT_TYPE_MAX        127

typedef struct {
    ngx_str_t                    type;       /* in buf: lowercase, no params */
    ngx_uint_t                   kind;
    uint32_t                     width;      /* 0 where the bytes do not say */
    uint32_t                     height;
    ngx_uint_t                   orientation;  /* EXIF 1-8; 0: none */
    unsigned                     decodable:1;  /* a thumbnail can be made */
    unsigned                     from_bytes:1;
    u_char                       buf[NGX_CHAT_TYPE_MAX + 1];
} ngx_chat_sniff_t;

void ngx_chat_sniff(u_char *head, size_t len, u_char *claimed,
    size_t claimed_len, ngx_chat_sniff_t *s);
ngx_uint_t ngx_chat_type_active(u_char *type, size_t len);
size_t ngx_chat_filename_clean(u_char *dst, u_char *src, size_t len);
size_t ngx_chat_content_disposition_len(ngx_str_t *name);
u_char *ngx_chat_content_disposition(u_char *p, ngx_str_t *name,
    ngx_uint_t show);


/* files: a multipart/form-data body, streamed */

#define NGX_CHAT_MP_HEAD_MAX     4096

typedef struct {
    ngx_str_t                    name;       /* valid in part() only */
    ngx_str_t                    filename;
    ngx_str_t                    content_type;
    unsigned                     is_file:1;  /* a filename was given */
} ngx_chat_mp_part_t;

typedef struct ngx_chat_multipart_s  ngx_chat_multipart_t;

struct ngx_chat_multipart_s {
    /* set by the caller */
    ngx_str_t                    boundary;
    size_t                       header_max;  /* at most NGX_CHAT_MP_HEAD_MAX */
    ngx_uint_t                   parts_max;
    ngx_int_t                  (*part)(ngx_chat_multipart_t *mp,
                                       ngx_chat_mp_part_t *part);
    ngx_int_t                  (*body)(ngx_chat_multipart_t *mp, u_char *p,
                                       size_t len);
    ngx_int_t                  (*end)(ngx_chat_multipart_t *mp);
    void                        *data;

    const char                  *error;      /* why it failed */

    /* the parser's */
    ngx_uint_t                   state;
    ngx_uint_t                   parts;
    u_char                       delim[80];  /* "\r\n--" boundary */
    size_t                       delim_len;
    size_t                       matched;    /* of delim, held back */
    size_t                       head_len;
    u_char                       head[NGX_CHAT_MP_HEAD_MAX];
};

ngx_int_t ngx_chat_multipart_boundary(u_char *type, size_t len,
    ngx_str_t *boundary);
void ngx_chat_multipart_init(ngx_chat_multipart_t *mp);
ngx_int_t ngx_chat_multipart_feed(ngx_chat_multipart_t *mp, u_char *p,
    size_t len);
ngx_int_t ngx_chat_multipart_finish(ngx_chat_multipart_t *mp);


/* Web Push: the encrypted body (RFC 8291) and the VAPID token (RFC 8292) */

#define NGX_CHAT_WEBPUSH_KEY_LEN    65    /* an uncompressed P-256 point */
#define NGX_CHAT_WEBPUSH_AUTH_LEN   16
#define NGX_CHAT_WEBPUSH_SALT_LEN   16
/* what the body adds to the plaintext: header (salt, rs, idlen, key),
   the padding delimiter and the GCM tag */
#define NGX_CHAT_WEBPUSH_OVERHEAD   (16 + 4 + 1 + 65 + 1 + 16)

/* RFC 8291: the aes128gcm body (RFC 8188, one record, rs 4096, keyid =
   the sender's public key) of a push message to the subscription
   (ua_public, auth), from the sender's key as_key (EC P-256 with its
   private part) and salt; out has room for len + OVERHEAD; NGX_OK and
   *out_len, or NGX_ERROR (a ua_public not uncompressed or not on the
   curve, an as_key not P-256 or without its private part, len > 3993 so
   that the body stays within the 4096 bytes every push service takes,
   an OpenSSL failure) */
ngx_int_t ngx_chat_webpush_encrypt(const u_char *ua_public,
    const u_char *auth, EVP_PKEY *as_key, const u_char *salt,
    const u_char *plain, size_t len, u_char *out, size_t *out_len);

/* the uncompressed public point of an EC P-256 key, 65 bytes to out;
   NGX_ERROR for a key of another kind or curve */
ngx_int_t ngx_chat_webpush_public(EVP_PKEY *key, u_char *out);

/* RFC 8292: a VAPID JWT {"typ":"JWT","alg":"ES256"}.{"aud":aud,"exp":exp,
   "sub":sub} signed with key (ES256: the raw 64-byte r||s, base64url, not
   DER), written to out (NUL-terminated, at most size bytes with the NUL);
   NGX_OK and *out_len, or NGX_ERROR (no room, a key not P-256, exp < 0);
   aud is "https://host[:port]" of the push service, sub a "mailto:" or
   https URL; both JSON-escaped as needed */
ngx_int_t ngx_chat_vapid_jwt(EVP_PKEY *key, const u_char *aud,
    size_t aud_len, time_t exp, const u_char *sub, size_t sub_len,
    u_char *out, size_t size, size_t *out_len);

/* base64url without padding of len bytes to out (room: (len + 2) / 3 * 4),
   the length written */
size_t ngx_chat_base64url(u_char *out, const u_char *in, size_t len);
/* and back: NGX_OK with *out_len, or NGX_ERROR on a character outside the
   alphabet (padding '=' included) or a bad length (4n + 1); unused low
   bits of the last character are ignored; out has room for
   len * 3 / 4 + 1 */
ngx_int_t ngx_chat_base64url_decode(u_char *out, const u_char *in,
    size_t len, size_t *out_len);


#endif /* _NGX_CHAT_PURE_H_INCLUDED_ */
