
/*
 * ngx_chat: answers in the API's shape, for every HTTP request the module
 * handles (REST, and WebSocket handshakes that are refused): a JSON body,
 * or the error object {"error": {"code", "message"}} with the headers its
 * status promises.
 */


#include "ngx_chat.h"


const char *
ngx_chat_error_code(ngx_uint_t status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 410: return "gone";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 416: return "range_not_satisfiable";
    case 426: return "upgrade_required";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    case 507: return "insufficient_storage";
    default:  return "internal";
    }
}


/*
 * The error object, {"code", "message"[, "retry_after"]}, as REST and
 * WebSocket answers carry it: a refusal that will pass says when to try
 * again (seconds), like the Retry-After header.
 */

size_t
ngx_chat_error_object_len(u_char *text, size_t len)
{
    return sizeof("{\"code\":\"\",\"message\":\"\",\"retry_after\":}") - 1
           + NGX_CHAT_CODE_MAX + NGX_TIME_T_LEN
           + ngx_chat_json_escape_len(text, len);
}


u_char *
ngx_chat_error_object(u_char *p, ngx_uint_t status, const char *code,
    u_char *text, size_t len)
{
    time_t  retry;

    p = ngx_sprintf(p, "{\"code\":\"%s\",\"message\":\"",
                    code ? code : ngx_chat_error_code(status));
    p = ngx_chat_json_escape(p, text, len);
    *p++ = '"';

    retry = ngx_chat_retry_after(status);

    if (retry) {
        p = ngx_sprintf(p, ",\"retry_after\":%T", retry);
    }

    *p++ = '}';

    return p;
}


/* seconds after which a refusal of this status may pass; 0: it will not */

time_t
ngx_chat_retry_after(ngx_uint_t status)
{
    return (status == 429 || status == 503) ? 1 : 0;
}


/* the token of "Authorization: Bearer <token>" */

ngx_int_t
ngx_chat_http_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_table_elt_t  *auth;

    auth = r->headers_in.authorization;

    if (auth == NULL
        || auth->value.len < sizeof("Bearer ")
        || ngx_strncasecmp(auth->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return NGX_DECLINED;
    }

    token->data = auth->value.data + 7;
    token->len = auth->value.len - 7;

    while (token->len && token->data[0] == ' ') {
        token->data++;
        token->len--;
    }

    return NGX_OK;
}


/* a JSON body (or none) with its status */

ngx_int_t
ngx_chat_http_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;

    if (body == NULL || body->len == 0 || status == NGX_HTTP_NO_CONTENT) {
        r->header_only = 1;
        r->headers_out.content_length_n = 0;
        return ngx_http_send_header(r);
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = body->len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_chat_http_refuse(ngx_http_request_t *r, ngx_chat_error_t *err)
{
    return ngx_chat_http_error(r, err->status, (u_char *) err->text,
                               ngx_strlen(err->text));
}


ngx_int_t
ngx_chat_http_error(ngx_http_request_t *r, ngx_uint_t status, u_char *text,
    size_t len)
{
    return ngx_chat_http_error_as(r, status, NULL, text, len);
}


/*
 * {"error": {"code": "...", "message": "..."}} with the headers it needs;
 * code NULL: the status's own
 */

ngx_int_t
ngx_chat_http_error_as(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, u_char *text, size_t len)
{
    u_char     *p;
    ngx_str_t   body, value;

    /*
     * A body not read yet must not be taken for the next request of a
     * keep-alive connection: it goes first (a no-op once it was read).
     */
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (status == 401) {
        ngx_str_set(&value, "Bearer realm=\"chat\"");
        if (ngx_chat_http_header(r, "WWW-Authenticate", &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_chat_retry_after(status)) {
        value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.len = ngx_sprintf(value.data, "%T",
                                ngx_chat_retry_after(status))
                    - value.data;

        if (ngx_chat_http_header(r, "Retry-After", &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    body.data = ngx_pnalloc(r->pool, sizeof("{\"error\":}") - 1
                                     + ngx_chat_error_object_len(text, len));
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, "{\"error\":", sizeof("{\"error\":") - 1);
    p = ngx_chat_error_object(p, status, code, text, len);
    *p++ = '}';

    body.len = p - body.data;

    return ngx_chat_http_send(r, status, &body);
}


/* a header of the answer; name and value must outlive the request */

ngx_int_t
ngx_chat_http_header(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    if (ngx_strcmp(name, "WWW-Authenticate") == 0) {
        r->headers_out.www_authenticate = h;
    }

    return NGX_OK;
}


/* a request header by name (1.22 keeps some, like Connection, only here) */

ngx_table_elt_t *
ngx_chat_http_header_in(ngx_http_request_t *r, char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}
