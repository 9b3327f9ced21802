
/*
 * UTF-8: ngx_chat_utf8_valid() against two references, the well-formed
 * sequences of the Unicode standard (table 3-7) and jansson's own check,
 * which decides what a JSON string may hold; ngx_chat_utf8_chars() against
 * a count of the characters of valid text.
 */


#include "ngx_chat_fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t     *s;
    ngx_int_t   rc;
    size_t      n;

    rc = ngx_chat_utf8_valid((u_char *) data, size);

    ngx_chat_fuzz_assert(rc == ngx_chat_fuzz_utf8_valid(data, size));

    s = json_stringn((const char *) data, size);
    ngx_chat_fuzz_assert((rc == NGX_OK) == (s != NULL));
    json_decref(s);

    n = ngx_chat_utf8_chars((u_char *) data, size);
    ngx_chat_fuzz_assert(n <= size);

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(n == ngx_chat_fuzz_utf8_chars(data, size));
        ngx_chat_fuzz_assert(n * 4 >= size);
    }

    return 0;
}
