
/*
 * ngx_chat: the REST API.  A request is routed, authenticated, its path,
 * query and JSON body are checked against the route's fields into one
 * args object, and the route's action runs in Postgres.  The request waits
 * on nginx's events meanwhile; its answer is what the action returned.
 */


#include "ngx_chat.h"


static ngx_int_t ngx_chat_api_prepare(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, ngx_chat_match_t *m, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_api_identity(ngx_http_request_t *r,
    ngx_chat_identity_t *id, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_api_read_body(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx);
static void ngx_chat_api_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_chat_api_body_args(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_api_body_bytes(ngx_http_request_t *r, u_char **p,
    size_t *len);
static ngx_int_t ngx_chat_api_limited(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx);
static void ngx_chat_api_done(ngx_chat_call_t *call);
static ngx_int_t ngx_chat_api_health(ngx_http_request_t *r);
static ngx_int_t ngx_chat_api_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_chat_api_is_json(ngx_str_t *type);


static ngx_http_request_body_filter_pt  ngx_chat_api_next_body_filter;




ngx_int_t
ngx_chat_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc, i;
    ngx_chat_error_t           err;
    ngx_str_t                  allow;
    ngx_uint_t                 method;
    ngx_chat_match_t           m;
    ngx_chat_api_ctx_t        *ctx;
    ngx_chat_loc_conf_t       *lcf;
    ngx_http_core_loc_conf_t  *clcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    ngx_chat_metric_add(NGX_CHAT_M_REST_REQUESTS, 1);

    /* chat_cors_origins: the headers of any answer, or the preflight's */
    rc = ngx_chat_cors(r, lcf->cors);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* WebSocket over HTTP/2 cannot be, and REST needs no more than 1.1 */

    switch (r->method) {
    case NGX_HTTP_HEAD:
    case NGX_HTTP_GET:    method = NGX_CHAT_GET; break;
    case NGX_HTTP_POST:   method = NGX_CHAT_POST; break;
    case NGX_HTTP_PUT:    method = NGX_CHAT_PUT; break;
    case NGX_HTTP_PATCH:  method = NGX_CHAT_PATCH; break;
    case NGX_HTTP_DELETE: method = NGX_CHAT_DELETE; break;
    default:              method = 0;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->uri.len < clcf->name.len
        || ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) != 0)
    {
        return ngx_chat_http_error(r, 404, (u_char *) "no such route", 13);
    }

    i = ngx_chat_route_find(ngx_chat_api_routes, ngx_chat_api_nroutes,
                            method, r->uri.data + clcf->name.len,
                            r->uri.len - clcf->name.len, &m);

    if (i == NGX_CHAT_NO_ROUTE) {
        return ngx_chat_http_error(r, 404, (u_char *) "no such route", 13);
    }

    if (i == NGX_CHAT_NO_METHOD) {
        ngx_str_null(&allow);
        allow.data = ngx_pnalloc(r->pool, sizeof("GET, POST, PUT, PATCH, "
                                                 "DELETE"));
        if (allow.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        allow.len = ngx_sprintf(allow.data, "%s%s%s%s%s",
                        (m.allowed & NGX_CHAT_GET) ? "GET, " : "",
                        (m.allowed & NGX_CHAT_POST) ? "POST, " : "",
                        (m.allowed & NGX_CHAT_PUT) ? "PUT, " : "",
                        (m.allowed & NGX_CHAT_PATCH) ? "PATCH, " : "",
                        (m.allowed & NGX_CHAT_DELETE) ? "DELETE, " : "")
                    - allow.data - 2;

        if (ngx_chat_http_header(r, "Allow", &allow) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_chat_http_error(r, 405,
                                  (u_char *) "method not allowed here", 23);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->route = ngx_chat_api_routes[i].data;

    if (ctx->route->flags & NGX_CHAT_R_HEALTH) {
        return ngx_chat_api_health(r);
    }

    ctx->args = json_object();

    if (ctx->args == NULL || ngx_chat_json_on_pool(r->pool, ctx->args)
                             != NGX_OK)
    {
        json_decref(ctx->args);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_chat_module);

    if (ngx_chat_api_prepare(r, ctx, &m, &err) != NGX_OK) {
        return ngx_chat_http_refuse(r, &err);
    }

    rc = ngx_chat_api_limited(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_chat_api_is_upload(r, ctx->route)) {
        return ngx_chat_api_upload(r, ctx);
    }

    if (ctx->route->body) {
        return ngx_chat_api_read_body(r, ctx);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* ngx_chat_api_run() finalizes the request once, now or later */
    r->main->count++;
    ngx_chat_api_run(r, ctx);

    return NGX_DONE;
}


/*
 * chat_limit requests, and uploads: before the body is read.  NGX_DECLINED:
 * within them; else the refusal was sent and this is the handler's rc.
 */

static ngx_int_t
ngx_chat_api_limited(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx)
{
    time_t       retry;
    const char  *why;

    if (ngx_chat_limit_user(NGX_CHAT_LIMIT_REQUESTS, &ctx->call.id, &retry)
        != NGX_OK)
    {
        why = "too many requests (chat_limit requests)";

    } else if (ngx_chat_api_is_upload(r, ctx->route)
               && ngx_chat_limit_user(NGX_CHAT_LIMIT_UPLOADS, &ctx->call.id,
                                      &retry)
                  != NGX_OK)
    {
        why = "too many uploads (chat_limit uploads)";

    } else {
        return NGX_DECLINED;
    }

    return ngx_chat_http_error_retry(r, 429, NULL, retry, (u_char *) why,
                                     ngx_strlen(why));
}


/* the token, the path and the query: what can be checked before the body */

static ngx_int_t
ngx_chat_api_prepare(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx,
    ngx_chat_match_t *m, ngx_chat_error_t *err)
{
    char                  name[32];
    ngx_uint_t            i;
    ngx_chat_capture_t   *cap;
    ngx_chat_main_conf_t *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (ngx_chat_api_identity(r, &ctx->call.id, err) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < m->ncaptures; i++) {
        cap = &m->captures[i];

        ngx_cpystrn((u_char *) name, cap->name.data,
                    ngx_min(cap->name.len + 1, sizeof(name)));

        if (ngx_chat_args_set_string(ctx->args, name, cap->type,
                                     cap->value.data, cap->value.len, err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx->route->query
        && ngx_chat_args_from_query(r->args.data, r->args.len,
                                    ctx->route->query, &mcf->limits,
                                    ctx->args, err)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->route->flags & NGX_CHAT_R_THUMB) {
        json_object_set_new(ctx->args, "thumbnail", json_true());
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_api_identity(ngx_http_request_t *r, ngx_chat_identity_t *id,
    ngx_chat_error_t *err)
{
    ngx_int_t              rc;
    ngx_str_t              token;
    ngx_chat_main_conf_t  *mcf;

    if (ngx_chat_http_bearer(r, &token) != NGX_OK) {
        return ngx_chat_refuse(err, 401, "a bearer token is required");
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    rc = ngx_chat_auth_token(&mcf->jwt, &token, r->pool,
                             r->connection->log, id);

    if (rc == NGX_ERROR) {
        return ngx_chat_refuse(err, 500, "internal error");
    }

    if (rc != NGX_OK) {
        return ngx_chat_refuse(err, 401, "the token is invalid");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_api_read_body(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_table_elt_t       *type;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (r->headers_in.content_length_n > (off_t) mcf->body_max) {
        return ngx_chat_http_error(r, 413,
                                  (u_char *) "the body is too large", 21);
    }

    type = r->headers_in.content_type;

    if ((r->headers_in.content_length_n > 0 || r->headers_in.chunked)
        && (type == NULL || !ngx_chat_api_is_json(&type->value)))
    {
        return ngx_chat_http_error(r, 415,
                                  (u_char *) "the body must be "
                                  "application/json", 33);
    }

    /* one buffer for the JSON parser, in memory up to chat_body_max */
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_chat_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* "application/json", alone or with parameters ("; charset=utf-8") */

static ngx_uint_t
ngx_chat_api_is_json(ngx_str_t *type)
{
    size_t  n;

    n = sizeof("application/json") - 1;

    if (type->len < n
        || ngx_strncasecmp(type->data, (u_char *) "application/json", n) != 0)
    {
        return 0;
    }

    return type->len == n
           || type->data[n] == ';' || type->data[n] == ' '
           || type->data[n] == '\t';
}


static void
ngx_chat_api_body_handler(ngx_http_request_t *r)
{
    ngx_chat_error_t     err;
    ngx_chat_api_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_chat_module);

    if (ngx_chat_api_body_args(r, ctx, &err) != NGX_OK) {
        ngx_http_finalize_request(r, ngx_chat_http_refuse(r, &err));
        return;
    }

    ngx_chat_api_run(r, ctx);
}


static ngx_int_t
ngx_chat_api_body_args(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx,
    ngx_chat_error_t *err)
{
    u_char                *p;
    size_t                 len;
    json_t                *body;
    ngx_int_t              rc;
    json_error_t           jerr;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    err->status = 400;
    p = NULL;

    if (ctx->body_too_large) {
        return ngx_chat_refuse(err, 413, "the body is too large");
    }

    if (ngx_chat_api_body_bytes(r, &p, &len) != NGX_OK) {
        return ngx_chat_refuse(err, 500, "the body cannot be read");
    }

    if (len > mcf->body_max) {
        return ngx_chat_refuse(err, 413, "the body is too large");
    }

    if (len == 0) {
        /* an empty body is an empty object: "POST .../read" takes none */
        return NGX_OK;
    }

    body = json_loadb((char *) p, len, JSON_REJECT_DUPLICATES, &jerr);

    if (body == NULL) {
        /* in our words where jansson's would name its own flags */
        (void) ngx_snprintf((u_char *) err->text, sizeof(err->text) - 1,
                            "the body is not valid JSON: %s at "
                            "line %d column %d%Z",
                            json_error_code(&jerr) == json_error_null_character
                            ? "a string holds \\u0000, which is not allowed"
                            : jerr.text,
                            jerr.line, jerr.column);
        err->text[sizeof(err->text) - 1] = '\0';
        return NGX_ERROR;
    }

    rc = ngx_chat_args_from_json(body, ctx->route->body, &mcf->limits,
                                 ctx->args, err);
    json_decref(body);

    return rc;
}


/*
 * The body in one piece.  chat_api locations buffer up to chat_body_max
 * in memory (ngx_chat_merge_loc_conf()): a body that nginx wrote to a file
 * is larger, and is refused unread.
 */

static ngx_int_t
ngx_chat_api_body_bytes(ngx_http_request_t *r, u_char **p, size_t *len)
{
    u_char       *dst;
    size_t        size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);

        if (cl->buf->in_file) {
            size = (size_t) -1;
            break;
        }
    }

    *len = size;

    if (size == 0 || size == (size_t) -1) {
        return NGX_OK;
    }

    b = r->request_body->bufs->buf;

    if (r->request_body->bufs->next == NULL) {
        /* in one buffer already: the parser reads it where it is */
        *p = b->pos;
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, size);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    *p = dst;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (ngx_buf_size(cl->buf)) {
            dst = ngx_cpymem(dst, cl->buf->pos,
                             cl->buf->last - cl->buf->pos);
        }
    }

    return NGX_OK;
}


/* owns one reference to the request and finalizes it exactly once */

void
ngx_chat_api_run(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx)
{
    ngx_chat_error_t   err;
    ngx_chat_call_t   *call;

    if ((ctx->route->query
         && ngx_chat_args_require(ctx->args, ctx->route->query, &err)
            != NGX_OK)
        || (ctx->route->body
            && ngx_chat_args_require(ctx->args, ctx->route->body, &err)
               != NGX_OK))
    {
        /* kept for the answer, which may come after the files went */
        call = &ctx->call;
        call->status = err.status;
        call->code = NULL;

        if (ngx_chat_copy(r->pool, &call->error, (u_char *) err.text,
                          ngx_strlen(err.text))
            != NGX_OK
            || ngx_chat_api_upload_failed(r, ctx) != NGX_DONE)
        {
            ngx_http_finalize_request(r, ngx_chat_http_refuse(r, &err));
        }
        return;
    }

    call = &ctx->call;
    call->stmt = ctx->route->stmt;
    call->flags = ctx->route->flags;
    call->args = ctx->args;
    call->pool = r->pool;
    call->log = r->connection->log;
    call->done = ngx_chat_api_done;
    call->data = r;

    if (ngx_chat_action_start(call) != NGX_OK
        && ngx_chat_api_upload_failed(r, ctx) != NGX_DONE)
    {
        ngx_http_finalize_request(r,
                                  ngx_chat_http_error_retry(r, call->status,
                                                         call->code, call->retry,
                                                         call->error.data,
                                                         call->error.len));
    }
}


static void
ngx_chat_api_done(ngx_chat_call_t *call)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = call->data;
    c = r->connection;

    if (call->status >= 300
        && ngx_chat_api_upload_failed(r, ngx_http_get_module_ctx(r,
                                                              ngx_chat_module))
           == NGX_DONE)
    {
        /* the files uploaded with it go first; then the refusal */
        return;
    }

    if (call->status == 200
        && (((ngx_chat_api_ctx_t *) ngx_http_get_module_ctx(r,
                                                           ngx_chat_module))
            ->route->flags & NGX_CHAT_R_DOWNLOAD))
    {
        /* nginx sends the bytes: the request goes on elsewhere */
        rc = ngx_chat_api_download(r, &call->body);

    } else if (call->body.data) {
        rc = ngx_chat_http_send(r, call->status, &call->body);

    } else if (call->status < 300) {
        rc = ngx_chat_http_send(r, call->status, NULL);

    } else {
        rc = ngx_chat_http_error_retry(r, call->status, call->code, call->retry,
                                    call->error.data, call->error.len);
    }

    ngx_http_finalize_request(r, rc);

    /* called from a Postgres event, not from nginx's request handler */
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_chat_api_health(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            body;
    ngx_uint_t           pub, sub, redis;
    const char          *status;
    ngx_chat_pg_stats_t  st;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_worker.pg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_chat_pg_stats(ngx_chat_worker.pg, &st);

    /*
     * Without Postgres nothing can be served: 503.  Without Redis the REST
     * API works and live delivery waits for it: "degraded", still 200.
     */
    redis = (ngx_chat_worker.conf->redis.host.data != NULL);
    pub = 0;
    sub = 0;

    if (redis) {
        ngx_chat_redis_links(&pub, &sub);
    }

    status = !st.ready ? "unavailable"
             : (redis && !(pub && sub)) ? "degraded" : "ok";

    body.data = ngx_pnalloc(r->pool, 320);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = ngx_sprintf(body.data,
                           "{\"status\":\"%s\",\"version\":\"%s\","
                           "\"pid\":%P,\"postgres\":{\"connections\":%ui,"
                           "\"ready\":%ui,\"busy\":%ui,\"waiting\":%ui,"
                           "\"queue_max\":%ui},\"redis\":%s%s%s%s%s}",
                           status, NGX_CHAT_VERSION,
                           ngx_pid, st.connections, st.ready, st.busy,
                           st.waiting, st.queue_max,
                           redis ? "{\"publisher\":\"" : "null",
                           redis ? (pub ? "up" : "down") : "",
                           redis ? "\",\"subscriber\":\"" : "",
                           redis ? (sub ? "up" : "down") : "",
                           redis ? "\"}" : "")
               - body.data;

    return ngx_chat_http_send(r, st.ready ? 200 : 503, &body);
}


/*
 * A chunked body announces no length, so chat_api locations (where
 * client_max_body_size is 0, for the JSON 413 of ngx_chat_api_read_body())
 * count it here: past chat_body_max the rest is read and dropped rather
 * than kept in memory or spooled to disk, and the body handler answers 413.
 * The last buffer still goes on, or nginx would wait for it.
 */

ngx_int_t
ngx_chat_api_init_body_filter(ngx_conf_t *cf)
{
    ngx_chat_api_next_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_chat_api_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_api_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t           *cl, *last;
    ngx_chat_api_ctx_t    *ctx;
    ngx_chat_loc_conf_t   *lcf;
    ngx_chat_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);
    ctx = ngx_http_get_module_ctx(r, ngx_chat_module);

    /* the module's context of a chat_websocket location is another */
    if (ctx == NULL || lcf->kind != NGX_CHAT_LOC_API) {
        return ngx_chat_api_next_body_filter(r, in);
    }

    if (ctx->upload) {
        in = ngx_chat_upload_filter(ctx->upload, in);
        return in ? ngx_chat_api_next_body_filter(r, in) : NGX_OK;
    }

    if (!ctx->body_too_large) {
        mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

        for (cl = in; cl; cl = cl->next) {
            ctx->body_received += ngx_buf_size(cl->buf);
        }

        if (ctx->body_received <= (off_t) mcf->body_max) {
            return ngx_chat_api_next_body_filter(r, in);
        }

        ctx->body_too_large = 1;

        /*
         * what was kept is dropped too, marked written as a write to the
         * temporary file would, or nginx finds busy buffers at its flush
         */

        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
        }

        r->request_body->bufs = NULL;
    }

    last = NULL;

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;

        if (cl->buf->last_buf) {
            last = cl;
        }
    }

    if (last == NULL) {
        return NGX_OK;
    }

    return ngx_chat_api_next_body_filter(r, last);
}
