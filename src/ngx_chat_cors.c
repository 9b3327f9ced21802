
/*
 * ngx_chat: CORS for pages of other origins (chat_cors_origins).  Tokens
 * are bearer tokens, never cookies, so no credentials are allowed: an
 * allowed origin may read the answers and send the headers the API takes.
 * An origin not in the list gets no CORS headers (the browser keeps the
 * answer from the page) and a preflight of it is refused.
 */


#include "ngx_chat.h"


static ngx_int_t ngx_chat_cors_allowed(ngx_array_t *origins,
    ngx_str_t *origin);
static ngx_int_t ngx_chat_cors_preflight(ngx_http_request_t *r);


/*
 * NGX_DECLINED: the request goes on (with the CORS headers when allowed);
 * otherwise the handler's rc: a preflight was answered.
 */

ngx_int_t
ngx_chat_cors(ngx_http_request_t *r, ngx_array_t *origins)
{
    ngx_str_t         value;
    ngx_table_elt_t  *origin;

    static const char  refused[] = "this origin may not call the API "
                                   "(chat_cors_origins)";

    if (origins == NULL) {
        return NGX_DECLINED;
    }

    origin = ngx_chat_http_header_in(r, "Origin");

    if (origin == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_chat_cors_allowed(origins, &origin->value) != NGX_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "chat cors: origin \"%V\" not allowed",
                       &origin->value);

        if (r->method == NGX_HTTP_OPTIONS) {
            return ngx_chat_http_error(r, 403, (u_char *) refused,
                                       sizeof(refused) - 1);
        }

        return NGX_DECLINED;
    }

    /* each origin has an answer of its own for caches */
    ngx_str_set(&value, "Origin");

    if (ngx_chat_http_header(r, "Access-Control-Allow-Origin",
                             &origin->value)
        != NGX_OK
        || ngx_chat_http_header(r, "Vary", &value) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_chat_cors_preflight(r);
    }

    /* what a page needs to read of answers besides the simple headers */
    ngx_str_set(&value, "Retry-After, ETag, Content-Disposition, "
                        "Content-Range, Content-Length, WWW-Authenticate");

    if (ngx_chat_http_header(r, "Access-Control-Expose-Headers", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_chat_cors_allowed(ngx_array_t *origins, ngx_str_t *origin)
{
    ngx_str_t   *allowed;
    ngx_uint_t   i;

    allowed = origins->elts;

    for (i = 0; i < origins->nelts; i++) {
        if ((allowed[i].len == 1 && allowed[i].data[0] == '*')
            || (allowed[i].len == origin->len
                && ngx_strncasecmp(allowed[i].data, origin->data,
                                   origin->len) == 0))
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* OPTIONS with Access-Control-Request-Method: 204 and what is allowed */

static ngx_int_t
ngx_chat_cors_preflight(ngx_http_request_t *r)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_str_set(&value, "GET, HEAD, POST, PUT, PATCH, DELETE");

    if (ngx_chat_http_header(r, "Access-Control-Allow-Methods", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "Authorization, Content-Type, If-None-Match, "
                        "If-Modified-Since, Range");

    if (ngx_chat_http_header(r, "Access-Control-Allow-Headers", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "600");

    if (ngx_chat_http_header(r, "Access-Control-Max-Age", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_http_send(r, NGX_HTTP_NO_CONTENT, NULL);
}
