
/*
 * ngx_chat: $chat_user and $chat_tenant, the identity of the request's
 * token, for log_format, map and limit_req_zone.  The token is verified
 * when the variable is first asked for (limit_req asks before the content
 * handler runs) and the value is kept for the rest of the request, as
 * nginx keeps a cacheable variable; empty without a valid token.
 */


#include "ngx_chat.h"


static ngx_int_t ngx_chat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_chat_variables[] = {

    { ngx_string("chat_user"), NULL, ngx_chat_variable,
      offsetof(ngx_chat_identity_t, user), 0, 0 },

    { ngx_string("chat_tenant"), NULL, ngx_chat_variable,
      offsetof(ngx_chat_identity_t, tenant), 0, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_chat_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_chat_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t             *value, token;
    ngx_chat_main_conf_t  *mcf;
    ngx_chat_identity_t    id;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    v->not_found = 1;

    if (mcf == NULL || mcf->jwt.key.data == NULL) {
        return NGX_OK;
    }

    /*
     * the header, else what a WebSocket handshake may carry; peeked, for
     * the handler still has to read it (once the logs see "[redacted]"
     * for the query's token, only a value kept from before tells it)
     */
    if (ngx_chat_ws_token_peek(r, &token) != NGX_OK) {
        return NGX_OK;
    }

    if (ngx_chat_auth_token(&mcf->jwt, &token, r->pool, r->connection->log,
                            &id)
        != NGX_OK)
    {
        return NGX_OK;
    }

    value = (ngx_str_t *) ((char *) &id + data);

    v->data = value->data;
    v->len = value->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
