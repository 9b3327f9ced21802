
/*
 * ngx_chat: the REST routes of files.  POST files stores one file (a raw
 * body, or a multipart body with one "file" part) and answers its File;
 * POST conversations/{id}/messages as multipart/form-data stores its
 * "file" parts and sends the message with them as attachments.  A
 * download (GET files/{id}, its thumbnail) is checked in Postgres and
 * then internal-redirected to the chat_files location, so that nginx
 * itself sends the bytes: sendfile, ranges, conditional requests.
 */


#include "ngx_chat.h"


#define NGX_CHAT_MESSAGE_FILES   10


static void ngx_chat_api_upload_read(ngx_http_request_t *r);
static void ngx_chat_api_uploaded(ngx_chat_upload_t *up);
static void ngx_chat_api_refused(ngx_chat_upload_t *up);
static ngx_int_t ngx_chat_api_form_args(ngx_chat_api_ctx_t *ctx,
    ngx_chat_upload_t *up, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_api_download_headers(ngx_http_request_t *r,
    json_t *file, ngx_uint_t thumb);


/*
 * POST files always uploads; a message is an upload when it comes as
 * multipart/form-data (else it is JSON, as any body)
 */

ngx_uint_t
ngx_chat_api_is_upload(ngx_http_request_t *r, const ngx_chat_api_route_t *rt)
{
    ngx_table_elt_t  *type;

    if (rt->flags & NGX_CHAT_R_UPLOAD) {
        return 1;
    }

    if (!(rt->flags & NGX_CHAT_R_FORM)) {
        return 0;
    }

    type = r->headers_in.content_type;

    return type && type->value.len >= 19
           && ngx_strncasecmp(type->value.data,
                              (u_char *) "multipart/form-data", 19) == 0;
}


ngx_int_t
ngx_chat_api_upload(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_str_t              name;
    json_t                *v;
    ngx_chat_upload_t     *up;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (mcf->files.store.data == NULL) {
        return ngx_chat_http_error(r, 404, (u_char *) "files are not "
                                   "served here (no chat_files)", 37);
    }

    ngx_str_null(&name);
    v = json_object_get(ctx->args, "name");

    if (json_is_string(v)) {
        name.data = (u_char *) json_string_value(v);
        name.len = json_string_length(v);
    }

    up = ngx_chat_upload_create_for(r, (ctx->route->flags & NGX_CHAT_R_FORM)
                                       ? NGX_CHAT_MESSAGE_FILES : 1,
                                    &name, ngx_chat_api_uploaded, ctx);
    if (up == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    up->id = &ctx->call.id;
    up->files_min = (ctx->route->flags & NGX_CHAT_R_UPLOAD) ? 1 : 0;

    if (up->status) {
        return ngx_chat_http_error_as(r, up->status, up->code,
                                      (u_char *) up->text,
                                      ngx_strlen(up->text));
    }

    ctx->upload = up;

    rc = ngx_http_read_client_request_body(r, ngx_chat_api_upload_read);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* the body is in: the files are finished; the request waits for them */

static void
ngx_chat_api_upload_read(ngx_http_request_t *r)
{
    ngx_chat_api_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_chat_module);

    /* the body reader's reference is finalized when the files are done */
    ngx_chat_upload_start(ctx->upload);
}


/* the files are stored (or refused): POST files answers, a message goes */

static void
ngx_chat_api_uploaded(ngx_chat_upload_t *up)
{
    ngx_int_t                rc;
    ngx_str_t                body;
    ngx_chat_error_t         err;
    ngx_connection_t        *c;
    ngx_chat_api_ctx_t      *ctx;
    ngx_http_request_t      *r;
    ngx_chat_upload_file_t  *f;

    ctx = up->data;
    r = up->request;
    c = r->connection;

    if (up->status) {
        rc = ngx_chat_http_error_as(r, up->status, up->code,
                                    (u_char *) up->text,
                                    ngx_strlen(up->text));

    } else if (ctx->route->flags & NGX_CHAT_R_UPLOAD) {
        f = up->files.elts;
        body = f->json;
        rc = ngx_chat_http_send(r, 201, &body);

    } else if (ngx_chat_api_form_args(ctx, up, &err) != NGX_OK) {
        /* the files stored for the message go before the answer */
        ctx->call.status = err.status;

        if (ngx_chat_copy(r->pool, &ctx->call.error, (u_char *) err.text,
                          ngx_strlen(err.text))
            == NGX_OK
            && ngx_chat_api_upload_failed(r, ctx) == NGX_DONE)
        {
            return;
        }

        rc = ngx_chat_http_refuse(r, &err);

    } else {
        /* the message, with its files as attachments */
        ngx_chat_api_run(r, ctx);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * A multipart message was refused: the files stored for it go, and then
 * the refusal is answered.  NGX_DONE while they go.
 */

ngx_int_t
ngx_chat_api_upload_failed(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx)
{
    if (ctx == NULL || ctx->upload == NULL || ctx->upload->discarding
        || ctx->upload->files.nelts == 0)
    {
        return NGX_OK;
    }

    ctx->upload->done = ngx_chat_api_refused;
    ngx_chat_upload_discard_all(ctx->upload);

    return NGX_DONE;
}


static void
ngx_chat_api_refused(ngx_chat_upload_t *up)
{
    ngx_chat_api_ctx_t  *ctx = up->data;

    ngx_chat_call_t     *call;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = up->request;
    c = r->connection;
    call = &ctx->call;

    ngx_http_finalize_request(r, ngx_chat_http_error_retry(r, call->status,
                                                        call->code, call->retry,
                                                        call->error.data,
                                                        call->error.len));
    ngx_http_run_posted_requests(c);
}


/*
 * The text parts of a multipart message are its fields, as a JSON body
 * names them: each is typed by the route's field list and checked like
 * one; the attachments are the files just stored.
 */

static ngx_int_t
ngx_chat_api_form_args(ngx_chat_api_ctx_t *ctx, ngx_chat_upload_t *up,
    ngx_chat_error_t *err)
{
    json_t                  *body, *v, *ids;
    int64_t                  id;
    const char              *key;
    const ngx_chat_field_t  *f;

    body = json_object();
    ids = json_array();

    if (body == NULL || ids == NULL) {
        json_decref(body);
        json_decref(ids);
        return ngx_chat_refuse(err, 500, "out of memory");
    }

    json_object_foreach(up->fields, key, v) {

        for (f = ctx->route->body; f->name; f++) {
            if (ngx_strcmp(f->name, key) == 0) {
                break;
            }
        }

        if (f->name == NULL || ngx_strcmp(key, "attachments") == 0) {
            json_decref(body);
            json_decref(ids);
            (void) ngx_snprintf((u_char *) err->text, sizeof(err->text) - 1,
                                "\"%s\": is not a field of this request%Z",
                                key);
            err->status = 400;
            return NGX_ERROR;
        }

        if (f->type == NGX_CHAT_T_ID) {
            if (ngx_chat_parse_id((u_char *) json_string_value(v),
                                  json_string_length(v), &id)
                != NGX_OK)
            {
                json_decref(body);
                json_decref(ids);
                (void) ngx_snprintf((u_char *) err->text,
                                    sizeof(err->text) - 1,
                                    "\"%s\": must be a positive integer "
                                    "below 2^53%Z", key);
                err->status = 400;
                return NGX_ERROR;
            }

            json_object_set_new(body, key, json_integer(id));
            continue;
        }

        json_object_set(body, key, v);
    }

    if (ngx_chat_upload_ids(up, ids) != NGX_OK) {
        json_decref(body);
        json_decref(ids);
        return ngx_chat_refuse(err, 500, "out of memory");
    }

    json_object_set_new(body, "attachments", ids);

    if (ngx_chat_args_from_json(body, ctx->route->body,
                                &ngx_chat_worker.conf->limits, ctx->args,
                                err)
        != NGX_OK)
    {
        json_decref(body);
        return NGX_ERROR;
    }

    json_decref(body);

    return NGX_OK;
}


/*
 * The file may be seen: nginx sends its bytes from the chat_files
 * location, with the headers set here.  Returns what the request is
 * finalized with.
 */

ngx_int_t
ngx_chat_api_download(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                *p;
    json_t                *file, *key;
    ngx_str_t              uri;
    ngx_uint_t             thumb;
    json_error_t           jerr;
    ngx_chat_api_ctx_t    *ctx;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);
    ctx = ngx_http_get_module_ctx(r, ngx_chat_module);

    thumb = json_is_true(json_object_get(ctx->args, "thumbnail"));

    file = json_loadb((char *) body->data, body->len, 0, &jerr);
    key = json_object_get(file, "storage_key");

    if (!json_is_string(key) || json_string_length(key) != 64
        || mcf->files.uri.len == 0)
    {
        json_decref(file);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    uri.data = ngx_pnalloc(r->pool, mcf->files.uri.len + 6 + 64 + 6);
    if (uri.data == NULL
        || ngx_chat_api_download_headers(r, file, thumb) != NGX_OK)
    {
        json_decref(file);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* "<uri>ab/cd/<sha256>[.thumb]": the key's path below the store */
    p = ngx_cpymem(uri.data, mcf->files.uri.data, mcf->files.uri.len - 1);
    p = ngx_chat_files_key(p, (u_char *) json_string_value(key), thumb);
    uri.len = p - uri.data;

    json_decref(file);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "chat download: \"%V\"", &uri);

    /* the module's context goes with the redirect; the request goes on */
    (void) ngx_http_internal_redirect(r, &uri, NULL);

    return NGX_DONE;
}


/*
 * What the answer says of the bytes: their type, as stored (never
 * sniffed again by the browser), inline for what a browser shows (images,
 * video, audio) and as an attachment with its name otherwise, an ETag from
 * their hash, private caching, and a sandbox for anything that would run.
 */

static ngx_int_t
ngx_chat_api_download_headers(ngx_http_request_t *r, json_t *file,
    ngx_uint_t thumb)
{
    u_char           *p;
    json_t           *type, *name, *kind, *sha;
    ngx_str_t         v, fname;
    ngx_uint_t        show;
    ngx_table_elt_t  *h;

    type = json_object_get(file, "content_type");
    name = json_object_get(file, "name");
    kind = json_object_get(file, "kind");
    sha = json_object_get(file, "sha256");

    if (!json_is_string(type) || !json_is_string(name)
        || !json_is_string(kind) || !json_is_string(sha))
    {
        return NGX_ERROR;
    }

    if (thumb) {
        ngx_str_set(&v, "image/jpeg");

    } else if (ngx_chat_copy(r->pool, &v, (u_char *) json_string_value(type),
                             json_string_length(type))
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.content_type = v;
    r->headers_out.content_type_len = v.len;
    r->headers_out.content_type_lowcase = NULL;

    show = thumb || ngx_strcmp(json_string_value(kind), "file") != 0;

    fname.data = (u_char *) json_string_value(name);
    fname.len = json_string_length(name);

    v.data = ngx_pnalloc(r->pool, ngx_chat_content_disposition_len(&fname));
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_chat_content_disposition(v.data, &fname, show) - v.data;

    if (ngx_chat_http_header(r, "Content-Disposition", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the hash names the bytes: the same ETag on every host */
    v.data = ngx_pnalloc(r->pool, 64 + 5);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(v.data, "\"%s%s\"", json_string_value(sha),
                    thumb ? "-t" : "");
    v.len = p - v.data;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value = v;
    r->headers_out.etag = h;

    ngx_str_set(&v, "nosniff");
    if (ngx_chat_http_header(r, "X-Content-Type-Options", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "sandbox");
    if (ngx_chat_http_header(r, "Content-Security-Policy", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "private, max-age=86400");
    if (ngx_chat_http_header(r, "Cache-Control", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}
