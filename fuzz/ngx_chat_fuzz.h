
/*
 * ngx_chat: what the fuzz targets share.  The field lists and the route
 * table are the module's own (src/ngx_chat_requests.c), plus one list with a
 * field of every type.
 *
 * A target checks the invariants of a result with ngx_chat_fuzz_assert(),
 * which aborts, so that libFuzzer keeps the input as a crash.
 */


#ifndef _NGX_CHAT_FUZZ_H_INCLUDED_
#define _NGX_CHAT_FUZZ_H_INCLUDED_


#include "ngx_chat_pure.h"


#define ngx_chat_fuzz_assert(cond)                                            \
    ((cond) ? (void) 0 : ngx_chat_fuzz_fail(__FILE__, __LINE__, #cond))


typedef struct {
    const char                  *name;
    const ngx_chat_field_t      *fields;
} ngx_chat_fuzz_list_t;


/* the module's lists (src/ngx_chat_requests.c), NULL-ended */
const ngx_chat_fuzz_list_t *ngx_chat_fuzz_bodies(void);
const ngx_chat_fuzz_list_t *ngx_chat_fuzz_queries(void);

/* the module's route table */
extern const ngx_chat_route_t      ngx_chat_api_routes[];
extern const ngx_uint_t            ngx_chat_api_nroutes;

extern const ngx_chat_limits_t     ngx_chat_fuzz_limits;


void ngx_chat_fuzz_fail(const char *file, int line, const char *what)
    __attribute__ ((noreturn));

/* the args of a successful validation obey their field list */
void ngx_chat_fuzz_check_args(json_t *out, const ngx_chat_field_t *fields,
    const ngx_chat_limits_t *limits);

/* a failed validation says why, with a status the API can send */
void ngx_chat_fuzz_check_error(ngx_int_t rc, ngx_chat_error_t *err);

/* a user id or tenant: 1 to max bytes, no control characters */
ngx_int_t ngx_chat_fuzz_is_id(u_char *p, size_t len, size_t max);

/*
 * UTF-8 after the Unicode standard's table 3-7, as a reference.  On a
 * prefix of a text: NGX_OK, every character is whole; NGX_AGAIN, the last
 * one is cut but may yet be completed; NGX_ERROR.
 */
ngx_int_t ngx_chat_fuzz_utf8_prefix(const u_char *p, size_t len);
ngx_int_t ngx_chat_fuzz_utf8_valid(const u_char *p, size_t len);
size_t ngx_chat_fuzz_utf8_chars(const u_char *p, size_t len);


#endif /* _NGX_CHAT_FUZZ_H_INCLUDED_ */
