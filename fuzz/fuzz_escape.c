
/*
 * The small encoders and decoders: JSON string escaping must write exactly
 * ngx_chat_json_escape_len() bytes that jansson reads back as the input;
 * percent-decoding must match a reference decoder; a decimal id must match
 * strtoll() within the id range.
 */


#include "ngx_chat_fuzz.h"


static void ngx_chat_fuzz_escape(const u_char *p, size_t len);
static void ngx_chat_fuzz_unescape(const u_char *p, size_t len);
static void ngx_chat_fuzz_id(const u_char *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_chat_fuzz_escape(data, size);
    ngx_chat_fuzz_unescape(data, size);
    ngx_chat_fuzz_id(data, size);

    return 0;
}


static void
ngx_chat_fuzz_escape(const u_char *p, size_t len)
{
    u_char  *dst, *last;
    size_t   n, i;
    json_t  *back;

    n = ngx_chat_json_escape_len((u_char *) p, len);
    ngx_chat_fuzz_assert(n >= len && n <= 6 * len);

    /* a quote either side, in a block of exactly that size */
    dst = malloc(n + 2);
    ngx_chat_fuzz_assert(dst != NULL);

    dst[0] = '"';
    last = ngx_chat_json_escape(dst + 1, (u_char *) p, len);
    ngx_chat_fuzz_assert((size_t) (last - dst - 1) == n);
    *last = '"';

    for (i = 1; i < n + 1; i++) {
        ngx_chat_fuzz_assert(dst[i] >= 0x20);
    }

    if (ngx_chat_fuzz_utf8_valid(p, len) == NGX_OK) {
        back = json_loadb((char *) dst, n + 2,
                          JSON_DECODE_ANY|JSON_ALLOW_NUL, NULL);

        ngx_chat_fuzz_assert(json_is_string(back));
        ngx_chat_fuzz_assert(json_string_length(back) == len);
        ngx_chat_fuzz_assert(memcmp(json_string_value(back), p, len) == 0);

        json_decref(back);
    }

    free(dst);
}


static int
ngx_chat_fuzz_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


static void
ngx_chat_fuzz_unescape(const u_char *p, size_t len)
{
    u_char  *dst, *ref;
    size_t   i, n, k;

    dst = malloc(len + 1);
    ref = malloc(len + 1);
    ngx_chat_fuzz_assert(dst != NULL && ref != NULL);

    n = ngx_chat_unescape(dst, (u_char *) p, len);
    ngx_chat_fuzz_assert(n <= len);

    for (i = 0, k = 0; i < len; i++) {

        if (p[i] == '%' && i + 2 < len
            && ngx_chat_fuzz_hex(p[i + 1]) >= 0
            && ngx_chat_fuzz_hex(p[i + 2]) >= 0)
        {
            ref[k++] = (u_char) (ngx_chat_fuzz_hex(p[i + 1]) << 4
                                 | ngx_chat_fuzz_hex(p[i + 2]));
            i += 2;

        } else {
            ref[k++] = (p[i] == '+') ? ' ' : p[i];
        }
    }


    ngx_chat_fuzz_assert(n == k);
    ngx_chat_fuzz_assert(memcmp(dst, ref, n) == 0);


    free(dst);
    free(ref);
}


static void
ngx_chat_fuzz_id(const u_char *p, size_t len)
{
    char       *s, *end;
    int64_t     id;
    ngx_int_t   rc;
    long long   ref;

    id = -1;
    rc = ngx_chat_parse_id((u_char *) p, len, &id);

    ngx_chat_fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);

    if (len == 0 || len > 16 || memchr(p, '\0', len) != NULL
        || !isdigit(p[0]))
    {
        ngx_chat_fuzz_assert(rc == NGX_ERROR && id == -1);
        return;
    }

    s = strndup((const char *) p, len);
    ngx_chat_fuzz_assert(s != NULL);

    errno = 0;
    ref = strtoll(s, &end, 10);

    if (*end != '\0' || errno != 0 || ref < 1 || ref > NGX_CHAT_MAX_ID) {
        ngx_chat_fuzz_assert(rc == NGX_ERROR && id == -1);

    } else {
        ngx_chat_fuzz_assert(rc == NGX_OK && id == ref);
    }

    free(s);
}
