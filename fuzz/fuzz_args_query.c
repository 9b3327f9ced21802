
/*
 * A query string, checked against each query field list of the API (and
 * one list with a field of every type).  What passes must obey the list
 * and hold one arg per distinct known parameter; what fails must say why.
 */


#include "ngx_chat_fuzz.h"


static ngx_uint_t ngx_chat_fuzz_known(const u_char *p, size_t len,
    const ngx_chat_field_t *fields);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                      *out;
    ngx_int_t                    rc;
    ngx_chat_error_t             err;
    const ngx_chat_fuzz_list_t  *l;

    for (l = ngx_chat_fuzz_queries(); l->name; l++) {

        out = json_object();
        ngx_chat_fuzz_assert(out != NULL);

        ngx_memset(&err, 0xff, sizeof(ngx_chat_error_t));

        rc = ngx_chat_args_from_query((u_char *) data, size, l->fields,
                                      &ngx_chat_fuzz_limits, out, &err);

        if (rc != NGX_OK) {
            ngx_chat_fuzz_check_error(rc, &err);
            json_decref(out);
            continue;
        }

        ngx_chat_fuzz_check_args(out, l->fields, &ngx_chat_fuzz_limits);

        ngx_chat_fuzz_assert(json_object_size(out)
                             == ngx_chat_fuzz_known(data, size, l->fields));

        json_decref(out);
    }

    return 0;
}


/* the number of distinct known parameter names, decoded independently */

static ngx_uint_t
ngx_chat_fuzz_known(const u_char *p, size_t len,
    const ngx_chat_field_t *fields)
{
    u_char                   key[64];
    size_t                   i, k;
    ngx_uint_t               n, seen;
    const ngx_chat_field_t  *f;

    seen = 0;
    i = 0;

    while (i < len) {

        /* the name: up to "=" or "&"; longer than any field is unknown */
        for (k = 0; i < len && p[i] != '=' && p[i] != '&'; i++) {

            if (k == sizeof(key)) {
                continue;
            }

            if (p[i] == '+') {
                key[k++] = ' ';

            } else if (p[i] == '%' && len - i >= 3 && isxdigit(p[i + 1])
                       && isxdigit(p[i + 2]))
            {
                key[k++] = (u_char) strtol((char []) { (char) p[i + 1],
                                                       (char) p[i + 2], 0 },
                                           NULL, 16);
                i += 2;

            } else {
                key[k++] = p[i];
            }
        }

        while (i < len && p[i] != '&') {
            i++;
        }

        i++;

        for (n = 0, f = fields; f->name; n++, f++) {
            if (k < sizeof(key) && strlen(f->name) == k
                && memcmp(f->name, key, k) == 0)
            {
                seen |= (ngx_uint_t) 1 << n;
            }
        }
    }

    for (n = 0; seen; seen &= seen - 1) {
        n++;
    }

    return n;
}
