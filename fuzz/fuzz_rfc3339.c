
/*
 * RFC 3339 timestamps, against a reference: a POSIX regular expression for
 * the shape and sscanf() for the ranges, and a day that its month has, an
 * offset within 15:59 and a fraction of at most 9 digits, as Postgres
 * requires.
 */


#include "ngx_chat_fuzz.h"

#include <regex.h>


static ngx_int_t ngx_chat_fuzz_reference(const u_char *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_int_t  rc;

    rc = ngx_chat_rfc3339_valid((u_char *) data, size);

    ngx_chat_fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);
    ngx_chat_fuzz_assert(rc == ngx_chat_fuzz_reference(data, size));

    return 0;
}


static ngx_int_t
ngx_chat_fuzz_reference(const u_char *p, size_t len)
{
    int             y, mo, d, h, mi, s, oh, om;
    char           *t;
    ngx_int_t       rc;
    static int      compiled;
    static regex_t  re;
    static const int  days[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 };

    if (!compiled) {
        ngx_chat_fuzz_assert(
            regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]"
                         "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?"
                         "([Zz]|[+-][0-9]{2}:[0-9]{2})$",
                    REG_EXTENDED|REG_NOSUB)
            == 0);
        compiled = 1;
    }

    if (memchr(p, '\0', len) != NULL) {
        return NGX_ERROR;
    }

    t = strndup((const char *) p, len);
    ngx_chat_fuzz_assert(t != NULL);

    rc = NGX_ERROR;

    if (regexec(&re, t, 0, NULL, 0) != 0) {
        goto done;
    }

    ngx_chat_fuzz_assert(sscanf(t, "%4d-%2d-%2d%*c%2d:%2d:%2d",
                                &y, &mo, &d, &h, &mi, &s) == 6);

    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31
        || h > 23 || mi > 59 || s > 60)
    {
        goto done;
    }

    if (t[len - 1] != 'Z' && t[len - 1] != 'z') {
        ngx_chat_fuzz_assert(sscanf(t + len - 5, "%2d:%2d", &oh, &om) == 2);

        if (oh > 15 || om > 59) {
            goto done;
        }
    }

    if (d > days[mo - 1]
        || (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400))))
    {
        goto done;
    }

    rc = NGX_OK;

done:

    free(t);

    return rc;
}
