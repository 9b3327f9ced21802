
/*
 * A request body: bytes parsed as src/ngx_chat_api.c parses them, then
 * checked against each field list of the API.  What passes must obey the
 * list; what fails must say why with 400 or 413.
 */


#include "ngx_chat_fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                      *in, *out;
    ngx_int_t                    rc;
    json_error_t                 jerr;
    ngx_chat_error_t             err;
    const ngx_chat_fuzz_list_t  *l;

    in = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (in == NULL) {
        return 0;
    }

    for (l = ngx_chat_fuzz_bodies(); l->name; l++) {

        out = json_object();
        ngx_chat_fuzz_assert(out != NULL);

        ngx_memset(&err, 0xff, sizeof(ngx_chat_error_t));

        rc = ngx_chat_args_from_json(in, l->fields, &ngx_chat_fuzz_limits,
                                     out, &err);

        if (rc != NGX_OK) {
            ngx_chat_fuzz_check_error(rc, &err);
            json_decref(out);
            continue;
        }

        /* every field of the body is in the args, under its arg name */
        ngx_chat_fuzz_assert(json_is_object(in));
        ngx_chat_fuzz_assert(json_object_size(out) == json_object_size(in));

        ngx_chat_fuzz_check_args(out, l->fields, &ngx_chat_fuzz_limits);

        ngx_memset(&err, 0xff, sizeof(ngx_chat_error_t));

        rc = ngx_chat_args_require(out, l->fields, &err);

        if (rc != NGX_OK) {
            ngx_chat_fuzz_check_error(rc, &err);
            ngx_chat_fuzz_assert(err.status == 400);
        }

        json_decref(out);
    }

    json_decref(in);

    return 0;
}
