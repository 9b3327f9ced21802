
/*
 * ngx_chat: answers in the API's shape, for every HTTP request the module
 * handles (REST, and WebSocket handshakes that are refused): a JSON body,
 * or the error object {"error": {"code", "message"}} with the headers its
 * status promises.
 */


#include "ngx_chat.h"


#define NGX_CHAT_REDACTED        "[redacted]"

/* where the arguments are in a string of the request */
#define NGX_CHAT_HIDE_ARGS       0
#define NGX_CHAT_HIDE_URI        1       /* after "?" */
#define NGX_CHAT_HIDE_LINE       2       /* after "?", up to a space */


static void ngx_chat_http_hide(ngx_pool_t *pool, ngx_str_t *s,
    ngx_uint_t what);


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
 * The error object, {"code", "message"[, "retry_after"][, "reason"]}, as
 * REST and WebSocket answers carry it: a refusal that will pass says when
 * to try again (seconds), like the Retry-After header; a refused token
 * says why (ngx_chat_error_reason()).
 */

size_t
ngx_chat_error_object_len(u_char *text, size_t len)
{
    return sizeof("{\"code\":\"\",\"message\":\"\",\"retry_after\":}") - 1
           + NGX_CHAT_CODE_MAX + NGX_TIME_T_LEN
           + sizeof(",\"reason\":\"\"") - 1 + NGX_CHAT_TOKEN_REASON_MAX
           + ngx_chat_json_escape_len(text, len);
}


/*
 * The class of a refused token, added to an error object that p points
 * at the end of (after its "}"); NULL: no token came.  A class is one of
 * ours (NGX_CHAT_TOKEN_*), never text of the token's.
 */

u_char *
ngx_chat_error_reason(u_char *p, const char *reason)
{
    return ngx_sprintf(p - 1, ",\"reason\":\"%s\"}",
                       reason ? reason : NGX_CHAT_TOKEN_MISSING);
}


u_char *
ngx_chat_error_object(u_char *p, ngx_uint_t status, const char *code,
    u_char *text, size_t len)
{
    return ngx_chat_error_object_retry(p, status, code, 0, text, len);
}


/* retry 0: what the status says (a rate limit knows better) */

u_char *
ngx_chat_error_object_retry(u_char *p, ngx_uint_t status, const char *code,
    time_t retry, u_char *text, size_t len)
{
    p = ngx_sprintf(p, "{\"code\":\"%s\",\"message\":\"",
                    code ? code : ngx_chat_error_code(status));
    p = ngx_chat_json_escape(p, text, len);
    *p++ = '"';

    if (retry == 0) {
        retry = ngx_chat_retry_after(status);
    }

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


/*
 * The token of "Authorization: Bearer <token>".  REST takes no other, and
 * a token sent in the query anyway is hidden from the logs from here on.
 */

ngx_int_t
ngx_chat_http_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_chat_http_hide_token(r);

    return ngx_chat_http_bearer_peek(r, token);
}


/* the same, hiding nothing yet: for who reads it before the handler */

ngx_int_t
ngx_chat_http_bearer_peek(ngx_http_request_t *r, ngx_str_t *token)
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


/*
 * What the logs see of the request ($request, $request_uri, $args, and
 * the "request:" of error log lines) keeps no "access_token" argument's
 * value: each of those strings that holds one is replaced with a copy in
 * the request's pool where the value reads "[redacted]".  The bytes nginx
 * read are left as they are: r->args, r->unparsed_uri and r->request_line
 * point into one buffer over HTTP/1 (but not over HTTP/2, where the
 * request line is built), a token already taken from them stays valid,
 * and a shorter value could not be written in place without moving what
 * other pointers of the request see.
 */

void
ngx_chat_http_hide_token(ngx_http_request_t *r)
{
    ngx_chat_http_hide(r->pool, &r->request_line, NGX_CHAT_HIDE_LINE);
    ngx_chat_http_hide(r->pool, &r->unparsed_uri, NGX_CHAT_HIDE_URI);
    ngx_chat_http_hide(r->pool, &r->args, NGX_CHAT_HIDE_ARGS);
}


/*
 * Arguments are separated by "&" (and ";", which some clients use); a
 * request line's end at the space before the protocol.  The name is
 * matched without case, as ngx_http_arg() matches it.
 */

static void
ngx_chat_http_hide(ngx_pool_t *pool, ngx_str_t *s, ngx_uint_t what)
{
    u_char      *p, *last, *value, *end, *out, *o;
    size_t       len;
    ngx_uint_t   pass, hidden;

    if (s->data == NULL || s->len == 0) {
        return;
    }

    out = NULL;
    o = NULL;
    len = s->len;

    for (pass = 0; pass < 2; pass++) {

        p = s->data;
        last = s->data + s->len;
        hidden = 0;

        if (what != NGX_CHAT_HIDE_ARGS) {
            p = ngx_strlchr(p, last, '?');

            if (p == NULL) {
                return;
            }

            p++;
        }

        if (pass == 1) {
            o = ngx_cpymem(out, s->data, p - s->data);
        }

        for ( ;; ) {

            /* p: where an argument begins */

            value = NULL;
            end = p;

            if ((size_t) (last - p) >= sizeof("access_token=") - 1
                && ngx_strncasecmp(p, (u_char *) "access_token=",
                                   sizeof("access_token=") - 1)
                   == 0)
            {
                value = p + sizeof("access_token=") - 1;
                end = value;
            }

            while (end < last && *end != '&' && *end != ';'
                   && !(what == NGX_CHAT_HIDE_LINE && *end == ' '))
            {
                end++;
            }

            if (value && end > value
                && !((size_t) (end - value) == sizeof(NGX_CHAT_REDACTED) - 1
                     && ngx_strncmp(value, NGX_CHAT_REDACTED,
                                    sizeof(NGX_CHAT_REDACTED) - 1)
                        == 0))
            {
                hidden++;

                if (pass == 0) {
                    len = len - (end - value)
                          + sizeof(NGX_CHAT_REDACTED) - 1;

                } else {
                    o = ngx_cpymem(o, p, value - p);
                    o = ngx_cpymem(o, NGX_CHAT_REDACTED,
                                   sizeof(NGX_CHAT_REDACTED) - 1);
                }

            } else if (pass == 1) {
                o = ngx_cpymem(o, p, end - p);
            }

            if (end == last || *end == ' ') {
                break;
            }

            /* the separator */

            if (pass == 1) {
                *o++ = *end;
            }

            p = end + 1;
        }

        if (hidden == 0) {
            return;
        }

        if (pass == 0) {
            out = ngx_pnalloc(pool, len);
            if (out == NULL) {
                /* the log would hold the token: the request holds none */
                s->len = 0;
                return;
            }

            continue;
        }

        /* what follows the arguments: " HTTP/1.1" */
        o = ngx_cpymem(o, end, last - end);

        s->data = out;
        s->len = o - out;
    }
}


/* a JSON body (or none) with its status */

ngx_int_t
ngx_chat_http_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    /* whatever route answers, the access log follows */
    ngx_chat_http_hide_token(r);

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
    return ngx_chat_http_error_retry(r, status, code, 0, text, len);
}


ngx_int_t
ngx_chat_http_error_retry(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, time_t retry, u_char *text, size_t len)
{
    u_char     *p;
    ngx_str_t   body, value;

    ngx_chat_metrics_status(status);

    /*
     * A body not read yet must not be taken for the next request of a
     * keep-alive connection: it goes first (a no-op once it was read).
     */
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (status == 426) {
        /* nginx's table of status lines has no 426 */
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
    }

    if (status == 401) {
        ngx_str_set(&value, "Bearer realm=\"chat\"");
        if (ngx_chat_http_header(r, "WWW-Authenticate", &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (retry == 0) {
        retry = ngx_chat_retry_after(status);
    }

    if (retry) {
        value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.len = ngx_sprintf(value.data, "%T", retry) - value.data;

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
    p = ngx_chat_error_object_retry(p, status, code, retry, text, len);

    if (status == 401) {
        p = ngx_chat_error_reason(p, ngx_chat_auth_reason(r->pool));
    }

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
