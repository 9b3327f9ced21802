
/*
 * Routing.  The first byte is the method bits, the rest the path: matched
 * against the API's route table and compared with a reference matcher
 * written independently.  When the rest holds a newline, what comes before
 * it is also used as a pattern of its own, to fuzz the patterns too.
 */


#include "ngx_chat_fuzz.h"


#define NGX_CHAT_FUZZ_SEGS       64


typedef struct {
    const u_char                *data;
    size_t                       len;
} ngx_chat_fuzz_seg_t;


static void ngx_chat_fuzz_route(const ngx_chat_route_t *routes, ngx_uint_t n,
    ngx_uint_t method, u_char *path, size_t len);
static ngx_int_t ngx_chat_fuzz_match(const char *pattern, const u_char *path,
    size_t len, ngx_chat_match_t *m);
static ngx_uint_t ngx_chat_fuzz_split(const u_char *p, size_t len,
    ngx_chat_fuzz_seg_t *segs);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char              *pattern;
    u_char            *nl;
    ngx_uint_t         method;
    ngx_chat_route_t   route;

    if (size == 0) {
        return 0;
    }

    method = data[0] & 0x1f;
    data++;
    size--;

    ngx_chat_fuzz_route(ngx_chat_api_routes, ngx_chat_api_nroutes, method,
                        (u_char *) data, size);

    nl = memchr(data, '\n', size);

    if (nl == NULL || memchr(data, '\0', nl - data) != NULL) {
        return 0;
    }

    pattern = strndup((const char *) data, nl - data);
    ngx_chat_fuzz_assert(pattern != NULL);

    route.method = NGX_CHAT_GET|NGX_CHAT_PATCH;
    route.pattern = pattern;
    route.data = NULL;

    ngx_chat_fuzz_route(&route, 1, method, nl + 1,
                        size - (nl + 1 - data));

    free(pattern);

    return 0;
}


static void
ngx_chat_fuzz_route(const ngx_chat_route_t *routes, ngx_uint_t n,
    ngx_uint_t method, u_char *path, size_t len)
{
    ngx_int_t         rc, first;
    ngx_uint_t        i, k, allowed;
    ngx_chat_match_t  m, ref, want;

    first = NGX_CHAT_NO_ROUTE;
    allowed = 0;

    ngx_memzero(&want, sizeof(ngx_chat_match_t));

    for (i = 0; i < n; i++) {
        rc = ngx_chat_fuzz_match(routes[i].pattern, path, len, &ref);

        if (rc == NGX_ABORT) {
            /* too many segments for the reference to tell */
            return;
        }

        if (rc != NGX_OK) {
            continue;
        }

        allowed |= routes[i].method;

        if (routes[i].method & method) {
            first = i;
            want = ref;
            break;
        }
    }

    if (first == NGX_CHAT_NO_ROUTE && allowed) {
        first = NGX_CHAT_NO_METHOD;
    }

    ngx_memset(&m, 0xa5, sizeof(ngx_chat_match_t));

    rc = ngx_chat_route_find(routes, n, method, path, len, &m);

    ngx_chat_fuzz_assert(rc == first);
    ngx_chat_fuzz_assert(m.allowed == allowed);

    if (rc < 0) {
        ngx_chat_fuzz_assert(m.ncaptures == 0);
        ngx_chat_fuzz_assert((m.allowed & method) == 0);
        return;
    }

    ngx_chat_fuzz_assert(m.ncaptures == want.ncaptures);

    for (k = 0; k < m.ncaptures; k++) {
        ngx_chat_fuzz_assert(m.captures[k].type == want.captures[k].type);
        ngx_chat_fuzz_assert(m.captures[k].name.len
                             == want.captures[k].name.len);
        ngx_chat_fuzz_assert(memcmp(m.captures[k].name.data,
                                    want.captures[k].name.data,
                                    m.captures[k].name.len) == 0);

        /* a capture is a non-empty slice of the path without "/" */
        ngx_chat_fuzz_assert(m.captures[k].value.data
                             == want.captures[k].value.data);
        ngx_chat_fuzz_assert(m.captures[k].value.len
                             == want.captures[k].value.len);
        ngx_chat_fuzz_assert(m.captures[k].value.len > 0);
        ngx_chat_fuzz_assert(m.captures[k].value.data >= path);
        ngx_chat_fuzz_assert(m.captures[k].value.data
                             + m.captures[k].value.len <= path + len);
        ngx_chat_fuzz_assert(memchr(m.captures[k].value.data, '/',
                                    m.captures[k].value.len) == NULL);
    }
}


/*
 * The reference: both split at every "/", the same number of segments,
 * literals equal, "#name" and ":name" any non-empty segment, at most
 * NGX_CHAT_MAX_CAPTURES of them.
 */

static ngx_int_t
ngx_chat_fuzz_match(const char *pattern, const u_char *path, size_t len,
    ngx_chat_match_t *m)
{
    ngx_uint_t            i, np, ns;
    ngx_chat_capture_t   *cap;
    ngx_chat_fuzz_seg_t   pat[NGX_CHAT_FUZZ_SEGS], seg[NGX_CHAT_FUZZ_SEGS];

    m->ncaptures = 0;

    np = ngx_chat_fuzz_split((const u_char *) pattern, strlen(pattern), pat);
    ns = ngx_chat_fuzz_split(path, len, seg);

    if (np != ns) {
        return NGX_DECLINED;
    }

    if (np > NGX_CHAT_FUZZ_SEGS) {
        return NGX_ABORT;
    }

    for (i = 0; i < np; i++) {

        if (pat[i].len && (pat[i].data[0] == '#' || pat[i].data[0] == ':')) {

            if (seg[i].len == 0
                || m->ncaptures == NGX_CHAT_MAX_CAPTURES)
            {
                return NGX_DECLINED;
            }

            cap = &m->captures[m->ncaptures++];
            cap->name.data = (u_char *) pat[i].data + 1;
            cap->name.len = pat[i].len - 1;
            cap->type = (pat[i].data[0] == '#') ? NGX_CHAT_T_ID
                                                : NGX_CHAT_T_STR;
            cap->value.data = (u_char *) seg[i].data;
            cap->value.len = seg[i].len;
            continue;
        }

        if (pat[i].len != seg[i].len
            || memcmp(pat[i].data, seg[i].data, seg[i].len) != 0)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* the segments between "/"; more than NGX_CHAT_FUZZ_SEGS are only counted */

static ngx_uint_t
ngx_chat_fuzz_split(const u_char *p, size_t len, ngx_chat_fuzz_seg_t *segs)
{
    size_t      i, start;
    ngx_uint_t  n;

    n = 0;
    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && p[i] != '/') {
            continue;
        }

        if (n < NGX_CHAT_FUZZ_SEGS) {
            segs[n].data = p + start;
            segs[n].len = i - start;
        }

        n++;
        start = i + 1;
    }

    return n;
}
