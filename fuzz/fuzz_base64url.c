
/*
 * base64url, as Web Push keys come (ngx_chat_base64url_decode), against a
 * reference: the alphabet and lengths it may take, and that what it gives
 * is encoded back (ngx_chat_base64url) to text that decodes to the same
 * bytes; a length of 4n+1 or a character outside A-Z a-z 0-9 - _ is
 * refused.
 */


#include "ngx_chat_fuzz.h"


static int
ngx_chat_fuzz_b64url_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_';
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *out, *text, *again;
    size_t      i, len, tlen, alen;
    ngx_int_t   rc, want;

    want = (size % 4 == 1) ? NGX_ERROR : NGX_OK;

    for (i = 0; i < size && want == NGX_OK; i++) {
        if (!ngx_chat_fuzz_b64url_char(data[i])) {
            want = NGX_ERROR;
        }
    }

    out = malloc(size * 3 / 4 + 1);
    ngx_chat_fuzz_assert(out != NULL);

    rc = ngx_chat_base64url_decode(out, (u_char *) data, size, &len);
    ngx_chat_fuzz_assert(rc == want);

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(len == size * 3 / 4);

        text = malloc((len + 2) / 3 * 4 + 1);
        again = malloc(len + 1);
        ngx_chat_fuzz_assert(text != NULL && again != NULL);

        tlen = ngx_chat_base64url(text, out, len);
        ngx_chat_fuzz_assert(tlen == size);

        ngx_chat_fuzz_assert(ngx_chat_base64url_decode(again, text, tlen,
                                                       &alen)
                             == NGX_OK);
        ngx_chat_fuzz_assert(alen == len && memcmp(again, out, len) == 0);

        free(text);
        free(again);
    }

    free(out);

    return 0;
}
