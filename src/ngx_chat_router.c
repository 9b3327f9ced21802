
/*
 * ngx_chat: matching a path below the chat_api location against the route
 * table.  A pattern is a list of segments separated by "/": a literal, a
 * "#name" that captures an integer id or a ":name" that captures a string.
 * Validation of what was captured is left to the caller, so that a bad id
 * is a 400 naming the parameter rather than a 404.
 */


#include "ngx_chat_pure.h"


static ngx_int_t ngx_chat_route_match(const char *pattern, u_char *path,
    size_t len, ngx_chat_match_t *m);


ngx_int_t
ngx_chat_route_find(const ngx_chat_route_t *routes, ngx_uint_t n,
    ngx_uint_t method, u_char *path, size_t len, ngx_chat_match_t *m)
{
    ngx_uint_t        i;
    ngx_chat_match_t  try;

    m->allowed = 0;
    m->ncaptures = 0;

    for (i = 0; i < n; i++) {

        if (ngx_chat_route_match(routes[i].pattern, path, len, &try)
            != NGX_OK)
        {
            continue;
        }

        if (routes[i].method & method) {
            ngx_memcpy(m->captures, try.captures, sizeof(try.captures));
            m->ncaptures = try.ncaptures;
            m->allowed |= routes[i].method;
            return i;
        }

        m->allowed |= routes[i].method;
    }

    return m->allowed ? NGX_CHAT_NO_METHOD : NGX_CHAT_NO_ROUTE;
}


static ngx_int_t
ngx_chat_route_match(const char *pattern, u_char *path, size_t len,
    ngx_chat_match_t *m)
{
    u_char              *seg, *end, *last;
    size_t               plen, slen;
    const char          *pat, *pend;
    ngx_chat_capture_t  *cap;

    m->ncaptures = 0;

    pat = pattern;
    seg = path;
    last = path + len;

    for ( ;; ) {
        pend = strchr(pat, '/');
        plen = pend ? (size_t) (pend - pat) : strlen(pat);

        end = ngx_strlchr(seg, last, '/');
        if (end == NULL) {
            end = last;
        }

        slen = end - seg;

        if (pat[0] == '#' || pat[0] == ':') {

            if (slen == 0 || m->ncaptures == NGX_CHAT_MAX_CAPTURES) {
                return NGX_DECLINED;
            }

            cap = &m->captures[m->ncaptures++];
            cap->name.data = (u_char *) pat + 1;
            cap->name.len = plen - 1;
            cap->type = (pat[0] == '#') ? NGX_CHAT_T_ID : NGX_CHAT_T_STR;
            cap->value.data = seg;
            cap->value.len = slen;

        } else if (slen != plen || ngx_strncmp(seg, pat, plen) != 0) {
            return NGX_DECLINED;
        }

        if (pend == NULL || end == last) {
            /* both must end together */
            return (pend == NULL && end == last) ? NGX_OK : NGX_DECLINED;
        }

        pat = pend + 1;
        seg = end + 1;
    }
}
