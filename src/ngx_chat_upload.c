
/*
 * ngx_chat: uploads.  A file comes as the raw body of POST files, or as
 * the file parts of a multipart/form-data body (POST files with one, a
 * message with several).  It is read by nginx's own request body reader:
 * a raw body goes to nginx's temporary file as the DAV module's does; the
 * parts of a multipart body are parsed as they stream (ngx_chat_files.c)
 * and each goes to a temporary file of its own.  Nothing of a file stays
 * in memory but its first bytes, kept to tell what it is, and its SHA-256,
 * computed as it streams: both in the request body filter, before the
 * bytes reach a file.
 *
 * Once the body is in, each file is finished in turn: what its bytes are
 * (ngx_chat_sniff), a thumbnail of an image in a thread pool
 * (ngx_chat_thumb.c), its row in Postgres (within the uploader's quota),
 * and its bytes renamed into the store under their hash: the same bytes
 * uploaded twice are stored once.  The temporary files are in
 * client_body_temp_path, on the store's filesystem (nginx -t checks), so
 * that the move is a rename.  A client that goes away leaves nothing: the
 * temporary files go with the request's pool, and rows are made only for
 * files whole.
 */


#include "ngx_chat.h"

#include <openssl/evp.h>


#define NGX_CHAT_UPLOAD_HEAD       65536     /* bytes kept to sniff */
#define NGX_CHAT_UPLOAD_FIELDS     65536     /* of the text parts, in all */
#define NGX_CHAT_UPLOAD_PART_HEAD  4096      /* one part's header block */
#define NGX_CHAT_UPLOAD_PARTS      24
#define NGX_CHAT_UPLOAD_WRITE      65536     /* gathered for one write */


static ngx_int_t ngx_chat_upload_part(ngx_chat_multipart_t *mp,
    ngx_chat_mp_part_t *part);
static ngx_int_t ngx_chat_upload_part_body(ngx_chat_multipart_t *mp,
    u_char *p, size_t len);
static ngx_int_t ngx_chat_upload_part_end(ngx_chat_multipart_t *mp);
static ngx_chat_upload_file_t *ngx_chat_upload_file_add(ngx_chat_upload_t *up,
    ngx_str_t *name, ngx_str_t *type);
static ngx_int_t ngx_chat_upload_bytes(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f, u_char *p, size_t len);
static ngx_int_t ngx_chat_upload_write(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f, u_char *p, size_t len);
static ngx_int_t ngx_chat_upload_flush(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f);
static void ngx_chat_upload_sha_cleanup(void *data);
static ngx_int_t ngx_chat_upload_fail(ngx_chat_upload_t *up,
    ngx_uint_t status, const char *code, const char *text);
static void ngx_chat_upload_next(ngx_chat_upload_t *up);
static ngx_int_t ngx_chat_upload_sniff(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f);
static ngx_int_t ngx_chat_upload_type_allowed(ngx_str_t *type);
static void ngx_chat_upload_thumbnailed(void *data, ngx_int_t rc);
static void ngx_chat_upload_create(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f);
static void ngx_chat_upload_created(ngx_chat_call_t *call);
static ngx_int_t ngx_chat_upload_store(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f);
static void ngx_chat_upload_discard(ngx_chat_upload_t *up,
    ngx_chat_upload_file_t *f);
static void ngx_chat_upload_discarded(ngx_chat_call_t *call);
static void ngx_chat_upload_discard_next(ngx_chat_upload_t *up);
static void ngx_chat_upload_finish(ngx_chat_upload_t *up);


/*
 * An upload for the request, raw or multipart by its Content-Type.
 * NGX_OK; or NGX_ERROR with up->status and up->error set (a refusal to
 * answer now, before the body is read).
 */

ngx_chat_upload_t *
ngx_chat_upload_create_for(ngx_http_request_t *r, ngx_uint_t files_max,
    ngx_str_t *name, ngx_chat_upload_done_pt done, void *data)
{
    ngx_str_t              type, boundary;
    ngx_int_t              rc;
    ngx_chat_upload_t     *up;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    up = ngx_pcalloc(r->pool, sizeof(ngx_chat_upload_t));
    if (up == NULL) {
        return NULL;
    }

    up->request = r;
    up->conf = &mcf->files;
    up->files_max = files_max;
    up->done = done;
    up->data = data;

    if (ngx_array_init(&up->files, r->pool, 1, sizeof(ngx_chat_upload_file_t))
        != NGX_OK)
    {
        return NULL;
    }

    up->fields = json_object();
    if (up->fields == NULL
        || ngx_chat_json_on_pool(r->pool, up->fields) != NGX_OK)
    {
        json_decref(up->fields);
        return NULL;
    }

    if (r->headers_in.content_length_n > up->conf->max) {
        (void) ngx_chat_upload_fail(up, 413, NULL, "the upload is larger "
                                    "than chat_files_max allows");
        return up;
    }

    ngx_str_null(&type);

    if (r->headers_in.content_type) {
        type = r->headers_in.content_type->value;
    }

    rc = ngx_chat_multipart_boundary(type.data, type.len, &boundary);

    if (rc == NGX_ERROR) {
        (void) ngx_chat_upload_fail(up, 400, NULL, "the multipart body has "
                                    "no boundary, or a bad one, in its "
                                    "Content-Type");
        return up;
    }

    if (rc == NGX_OK) {
        up->multipart = 1;
        up->mp.boundary = boundary;
        up->mp.header_max = NGX_CHAT_UPLOAD_PART_HEAD;
        up->mp.parts_max = NGX_CHAT_UPLOAD_PARTS;
        up->mp.part = ngx_chat_upload_part;
        up->mp.body = ngx_chat_upload_part_body;
        up->mp.end = ngx_chat_upload_part_end;
        up->mp.data = up;
        ngx_chat_multipart_init(&up->mp);
        return up;
    }

    /* a raw body: the file, with the type the client claims */

    if (files_max == 0) {
        (void) ngx_chat_upload_fail(up, 415, NULL, "this route takes a "
                                    "multipart/form-data body");
        return up;
    }

    if (ngx_chat_upload_file_add(up, name, &type) == NULL) {
        return NULL;
    }

    /* nginx's reader writes it to its temporary file, as for DAV */
    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_log_level = 0;

    return up;
}


/*
 * The request body filter's part: every byte of the body passes here
 * before it is written.  Returns what nginx's save filter gets: a raw
 * body's buffers, or of a multipart body only its last, empty, buffer (the
 * parts went to files of their own).
 */

ngx_chain_t *
ngx_chat_upload_filter(ngx_chat_upload_t *up, ngx_chain_t *in)
{
    u_char        *p;
    size_t         len;
    ngx_chain_t   *cl, *last;

    last = NULL;

    for (cl = in; cl; cl = cl->next) {

        if (cl->buf->last_buf) {
            last = cl;
        }

        if (up->status || ngx_buf_special(cl->buf)) {
            continue;
        }

        p = cl->buf->pos;
        len = cl->buf->last - cl->buf->pos;

        up->received += len;

        if (up->received > up->conf->max) {
            (void) ngx_chat_upload_fail(up, 413, NULL, "the upload is larger "
                                        "than chat_files_max allows");
            continue;
        }

        if (!up->multipart) {
            /* hashed and sniffed here; nginx writes it */
            (void) ngx_chat_upload_bytes(up, up->files.elts, p, len);
            continue;
        }

        if (ngx_chat_multipart_feed(&up->mp, p, len) != NGX_OK
            && up->status == 0)
        {
            (void) ngx_chat_upload_fail(up, 400, NULL, up->mp.error);
        }
    }

    if (up->multipart || up->status) {
        /* nothing is kept of what was read: the files have it */
        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
        }

        if (last && up->multipart && up->status == 0
            && ngx_chat_multipart_finish(&up->mp) != NGX_OK)
        {
            (void) ngx_chat_upload_fail(up, 400, NULL, up->mp.error);
        }

        if (last) {
            last->next = NULL;
        }

        return last;
    }

    return in;
}


/* a part's headers: a file part gets a file, a text part a field */

static ngx_int_t
ngx_chat_upload_part(ngx_chat_multipart_t *mp, ngx_chat_mp_part_t *part)
{
    ngx_chat_upload_t  *up = mp->data;

    up->current = NULL;
    ngx_str_null(&up->field);

    if (part->name.len == 4 && ngx_strncmp(part->name.data, "file", 4) == 0)
    {
        if (up->files.nelts >= up->files_max) {
            return ngx_chat_upload_fail(up, 400, NULL, up->files_max == 1
                                        ? "\"file\": one file may be "
                                          "uploaded at a time"
                                        : "\"file\": too many files");
        }

        up->current = ngx_chat_upload_file_add(up, &part->filename,
                                               &part->content_type);

        return up->current ? NGX_OK : ngx_chat_upload_fail(up, 500, NULL,
                                                           "out of memory");
    }

    if (part->is_file || up->files_max <= 1) {
        /* POST files takes its file alone; a message, its text fields */
        (void) ngx_snprintf((u_char *) up->text, sizeof(up->text) - 1,
                            "\"%V\": is not a field of this request%Z",
                            &part->name);
        return ngx_chat_upload_fail(up, 400, NULL, up->text);
    }

    if (part->name.len >= sizeof(up->field_name)) {
        return ngx_chat_upload_fail(up, 400, NULL, "a field's name is too "
                                    "long");
    }

    ngx_memcpy(up->field_name, part->name.data, part->name.len);
    up->field_name[part->name.len] = '\0';

    up->field.data = ngx_pnalloc(up->request->pool, NGX_CHAT_UPLOAD_FIELDS);

    return up->field.data ? NGX_OK : ngx_chat_upload_fail(up, 500, NULL,
                                                          "out of memory");
}


static ngx_int_t
ngx_chat_upload_part_body(ngx_chat_multipart_t *mp, u_char *p, size_t len)
{
    ngx_chat_upload_t  *up = mp->data;

    if (up->current) {
        return ngx_chat_upload_bytes(up, up->current, p, len);
    }

    if (up->fields_bytes + len > NGX_CHAT_UPLOAD_FIELDS) {
        return ngx_chat_upload_fail(up, 413, NULL, "the text fields are "
                                    "larger than 64k");
    }

    ngx_memcpy(up->field.data + up->field.len, p, len);
    up->field.len += len;
    up->fields_bytes += len;

    return NGX_OK;
}


/* a text field is whole: it joins the args as a string, checked later */

static ngx_int_t
ngx_chat_upload_part_end(ngx_chat_multipart_t *mp)
{
    json_t                  *v;
    ngx_chat_upload_file_t  *f;
    ngx_chat_upload_t       *up = mp->data;

    if (up->current) {
        f = up->current;
        up->current = NULL;

        /* the whole part is on disk before the next begins */
        if (f->temp == NULL && ngx_chat_upload_write(up, f, NULL, 0) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_chat_upload_flush(up, f);
    }

    if (up->field.data == NULL) {
        return NGX_OK;
    }

    if (json_object_get(up->fields, up->field_name)) {
        (void) ngx_snprintf((u_char *) up->text, sizeof(up->text) - 1,
                            "\"%s\": is given twice%Z", up->field_name);
        return ngx_chat_upload_fail(up, 400, NULL, up->text);
    }

    if (ngx_chat_utf8_valid(up->field.data, up->field.len) != NGX_OK) {
        (void) ngx_snprintf((u_char *) up->text, sizeof(up->text) - 1,
                            "\"%s\": is not UTF-8%Z", up->field_name);
        return ngx_chat_upload_fail(up, 400, NULL, up->text);
    }

    v = json_stringn((char *) up->field.data, up->field.len);

    if (v == NULL || json_object_set_new(up->fields, up->field_name, v) != 0)
    {
        return ngx_chat_upload_fail(up, 500, NULL, "out of memory");
    }

    ngx_str_null(&up->field);

    return NGX_OK;
}


static ngx_chat_upload_file_t *
ngx_chat_upload_file_add(ngx_chat_upload_t *up, ngx_str_t *name,
    ngx_str_t *type)
{
    size_t                   len;
    ngx_pool_cleanup_t      *cln;
    ngx_chat_upload_file_t  *f;

    f = ngx_array_push(&up->files);
    if (f == NULL) {
        return NULL;
    }

    ngx_memzero(f, sizeof(ngx_chat_upload_file_t));

    /* the name as given, made safe to store and show */
    len = ngx_min(name->len, 4096);
    f->name.data = ngx_pnalloc(up->request->pool, len + 5);
    if (f->name.data == NULL) {
        return NULL;
    }

    f->name.len = ngx_chat_filename_clean(f->name.data, name->data, len);

    if (ngx_chat_copy(up->request->pool, &f->claimed, type->data,
                      ngx_min(type->len, 255))
        != NGX_OK)
    {
        return NULL;
    }

    f->head = ngx_pnalloc(up->request->pool, NGX_CHAT_UPLOAD_HEAD);
    f->sha = EVP_MD_CTX_new();
    cln = ngx_pool_cleanup_add(up->request->pool, 0);

    if (f->head == NULL || f->sha == NULL || cln == NULL
        || EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) != 1)
    {
        if (cln == NULL) {
            EVP_MD_CTX_free(f->sha);
        }
        return NULL;
    }

    cln->handler = ngx_chat_upload_sha_cleanup;
    cln->data = f->sha;

    return f;
}


static void
ngx_chat_upload_sha_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


/* bytes of a file: hashed, the first ones kept; a part's are written */

static ngx_int_t
ngx_chat_upload_bytes(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f,
    u_char *p, size_t len)
{
    size_t  n;

    if (len == 0) {
        return NGX_OK;
    }

    if (EVP_DigestUpdate(f->sha, p, len) != 1) {
        return ngx_chat_upload_fail(up, 500, NULL, "hashing failed");
    }

    if (f->head_len < NGX_CHAT_UPLOAD_HEAD) {
        n = ngx_min(len, NGX_CHAT_UPLOAD_HEAD - f->head_len);
        ngx_memcpy(f->head + f->head_len, p, n);
        f->head_len += n;
    }

    f->size += len;

    return up->multipart ? ngx_chat_upload_write(up, f, p, len) : NGX_OK;
}


/*
 * A part's bytes go to its own temporary file, in the client body temp
 * path, gathered to NGX_CHAT_UPLOAD_WRITE bytes a write (a part's runs
 * between CRs can be a few bytes each); len 0 writes what is gathered,
 * and makes the file of an empty part.
 */

static ngx_int_t
ngx_chat_upload_write(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f,
    u_char *p, size_t len)
{
    size_t                     n;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = up->request;

    if (f->temp == NULL) {
        f->temp = ngx_pcalloc(r->pool, sizeof(ngx_temp_file_t));
        f->wbuf = ngx_pnalloc(r->pool, NGX_CHAT_UPLOAD_WRITE);
        if (f->temp == NULL || f->wbuf == NULL) {
            return ngx_chat_upload_fail(up, 500, NULL, "out of memory");
        }

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        f->temp->file.fd = NGX_INVALID_FILE;
        f->temp->file.log = r->connection->log;
        f->temp->path = clcf->client_body_temp_path;
        f->temp->pool = r->pool;
        f->temp->persistent = 1;
        f->temp->clean = 1;
        f->temp->access = 0600;
    }

    while (len) {
        n = ngx_min(len, NGX_CHAT_UPLOAD_WRITE - f->wlen);
        ngx_memcpy(f->wbuf + f->wlen, p, n);
        f->wlen += n;
        p += n;
        len -= n;

        if (f->wlen == NGX_CHAT_UPLOAD_WRITE
            && ngx_chat_upload_flush(up, f) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_upload_flush(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f)
{
    ngx_temp_file_t  *tf;

    tf = f->temp;

    if (tf->file.fd == NGX_INVALID_FILE
        && ngx_create_temp_file(&tf->file, tf->path, tf->pool, tf->persistent,
                                tf->clean, tf->access)
           != NGX_OK)
    {
        return ngx_chat_upload_fail(up, 507, NULL, "the upload cannot be "
                                    "stored");
    }

    if (f->wlen
        && ngx_write_file(&tf->file, f->wbuf, f->wlen, tf->offset)
           != (ssize_t) f->wlen)
    {
        /* nginx logged why: the disk is full or cannot be written */
        return ngx_chat_upload_fail(up, 507, NULL, "the upload cannot be "
                                    "stored");
    }

    tf->offset += f->wlen;
    f->wlen = 0;

    return NGX_OK;
}


/* the first refusal stands; the rest of the body is read and dropped */

static ngx_int_t
ngx_chat_upload_fail(ngx_chat_upload_t *up, ngx_uint_t status,
    const char *code, const char *text)
{
    if (up->status == 0) {
        up->status = status;
        up->code = code;

        if (text != up->text) {
            ngx_cpystrn((u_char *) up->text, (u_char *) text,
                        sizeof(up->text));
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, up->request->connection->log, 0,
                       "chat upload: refused with %ui: %s", status,
                       up->text);
    }

    return NGX_ERROR;
}


/*
 * The body was read.  The files are finished one after the other; done()
 * is called once, with up->status 0 and every file stored, or a refusal.
 */

void
ngx_chat_upload_start(ngx_chat_upload_t *up)
{
    ngx_chat_upload_file_t  *f;
    ngx_http_request_t      *r;

    r = up->request;

    if (up->status == 0 && !up->multipart) {
        f = up->files.elts;

        if (r->request_body == NULL || r->request_body->temp_file == NULL) {
            (void) ngx_chat_upload_fail(up, 500, NULL, "the upload was not "
                                        "written");

        } else {
            f->temp = r->request_body->temp_file;
        }
    }

    if (up->status == 0 && up->files_min && up->files.nelts == 0) {
        (void) ngx_chat_upload_fail(up, 400, NULL, "\"file\": is required");
    }

    up->next = 0;
    ngx_chat_upload_next(up);
}


static void
ngx_chat_upload_next(ngx_chat_upload_t *up)
{
    u_char                   hash[EVP_MAX_MD_SIZE];
    unsigned int             len;
    ngx_chat_upload_file_t  *f;

    if (up->status || up->next == up->files.nelts) {
        ngx_chat_upload_finish(up);
        return;
    }

    f = (ngx_chat_upload_file_t *) up->files.elts + up->next;


    if (EVP_DigestFinal_ex(f->sha, hash, &len) != 1) {
        (void) ngx_chat_upload_fail(up, 500, NULL, "hashing failed");
        ngx_chat_upload_finish(up);
        return;
    }

    ngx_hex_dump(f->sha256, hash, len);
    f->sha256[2 * len] = '\0';

    if (ngx_chat_upload_sniff(up, f) != NGX_OK) {
        ngx_chat_upload_finish(up);
        return;
    }

    if (f->sniff.decodable && up->conf->thumbnails
        && ngx_chat_thumb_start(up->request->pool, up->conf, &f->temp->file.name,
                                &f->sniff, &f->thumb,
                                ngx_chat_upload_thumbnailed, up)
           == NGX_OK)
    {
        /* the thread pool has it: the row is made when it is back */
        return;
    }

    ngx_chat_upload_create(up, f);
}


/* what the file is, from its bytes; refused if not of an allowed type */

static ngx_int_t
ngx_chat_upload_sniff(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f)
{
    ngx_int_t  rc;

    /* chat_filter: a file's name is read by others too */
    rc = ngx_chat_filter_text(up->request->pool, &up->id->tenant, &f->name);

    if (rc == NGX_DECLINED) {
        return ngx_chat_upload_fail(up, 400, "content_rejected", "the "
                                    "file's name is not allowed here "
                                    "(chat_filter)");
    }

    if (rc != NGX_OK) {
        return ngx_chat_upload_fail(up, 500, NULL, "out of memory");
    }

    ngx_chat_sniff(f->head, f->head_len, f->claimed.data, f->claimed.len,
                   &f->sniff);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, up->request->connection->log, 0,
                   "chat upload: \"%V\", %O bytes, \"%V\" (claimed \"%V\")",
                   &f->name, f->size, &f->sniff.type, &f->claimed);

    if (up->conf->types && !ngx_chat_upload_type_allowed(&f->sniff.type)) {
        (void) ngx_snprintf((u_char *) up->text, sizeof(up->text) - 1,
                            "files of type \"%V\" may not be uploaded here%Z",
                            &f->sniff.type);
        return ngx_chat_upload_fail(up, 415, NULL, up->text);
    }

    return NGX_OK;
}


/* chat_files_types: "image/png", or a whole top level, "image/" and a star */

static ngx_int_t
ngx_chat_upload_type_allowed(ngx_str_t *type)
{
    size_t      n;
    ngx_str_t  *allowed;
    ngx_uint_t  i;

    allowed = ngx_chat_worker.conf->files.types->elts;

    for (i = 0; i < ngx_chat_worker.conf->files.types->nelts; i++) {
        n = allowed[i].len;

        if (n >= 2 && allowed[i].data[n - 1] == '*') {
            if (type->len > n - 1
                && ngx_strncasecmp(type->data, allowed[i].data, n - 1) == 0)
            {
                return 1;
            }
            continue;
        }

        if (type->len == n
            && ngx_strncasecmp(type->data, allowed[i].data, n) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the thread pool made the thumbnail, or could not: the file goes on */

static void
ngx_chat_upload_thumbnailed(void *data, ngx_int_t rc)
{
    ngx_chat_upload_t       *up = data;
    ngx_chat_upload_file_t  *f;

    f = (ngx_chat_upload_file_t *) up->files.elts + up->next;
    f->has_thumb = (rc == NGX_OK);

    ngx_chat_upload_create(up, f);
}


/* the row, within the quota */

static void
ngx_chat_upload_create(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f)
{
    json_t           *args;
    ngx_chat_call_t  *call;

    call = &up->call;
    ngx_memzero(call, sizeof(ngx_chat_call_t));

    args = json_pack("{s:s%, s:I, s:s%, s:s, s:s, s:b}",
                     "name", f->name.data, f->name.len,
                     "size", (json_int_t) f->size,
                     "content_type", f->sniff.type.data, f->sniff.type.len,
                     "kind", ngx_chat_kind_name(f->sniff.kind),
                     "sha256", f->sha256,
                     "has_thumbnail", (int) f->has_thumb);

    if (args == NULL
        || ngx_chat_json_on_pool(up->request->pool, args) != NGX_OK)
    {
        json_decref(args);
        (void) ngx_chat_upload_fail(up, 500, NULL, "out of memory");
        ngx_chat_upload_finish(up);
        return;
    }

    if (f->sniff.width && f->sniff.height) {
        json_object_set_new(args, "width", json_integer(f->sniff.width));
        json_object_set_new(args, "height", json_integer(f->sniff.height));
    }

    if (up->conf->quota) {
        json_object_set_new(args, "quota",
                            json_integer((json_int_t) up->conf->quota));
    }

    call->stmt = NGX_CHAT_SQL_FILE_CREATE;
    call->id = *up->id;
    call->args = args;
    call->pool = up->request->pool;
    call->log = up->request->connection->log;
    call->done = ngx_chat_upload_created;
    call->data = up;

    if (ngx_chat_call_send(call) != NGX_OK) {
        (void) ngx_chat_upload_fail(up, call->status, NULL,
                                    (char *) call->error.data);
        ngx_chat_upload_finish(up);
    }
}


static void
ngx_chat_upload_created(ngx_chat_call_t *call)
{
    json_t                  *file, *id;
    json_error_t             jerr;
    ngx_chat_upload_t       *up = call->data;
    ngx_chat_upload_file_t  *f;

    f = (ngx_chat_upload_file_t *) up->files.elts + up->next;

    if (call->status >= 300) {
        (void) ngx_chat_upload_fail(up, call->status, call->code,
                                    (char *) call->error.data);
        ngx_chat_upload_finish(up);
        return;
    }

    f->json = call->body;

    file = json_loadb((char *) call->body.data, call->body.len, 0, &jerr);
    id = json_object_get(file, "id");
    f->id = json_is_integer(id) ? json_integer_value(id) : 0;
    json_decref(file);

    if (f->id == 0) {
        (void) ngx_chat_upload_fail(up, 500, NULL, "internal error");
        ngx_chat_upload_finish(up);
        return;
    }

    if (ngx_chat_upload_store(up, f) != NGX_OK) {
        ngx_chat_upload_discard(up, f);
        return;
    }

    up->next++;
    ngx_chat_upload_next(up);
}


/*
 * The bytes move into the store under their hash, by rename: the same
 * bytes uploaded again replace themselves.  "<store>/ab/cd/abcd…", and
 * the thumbnail beside them.
 */

static ngx_int_t
ngx_chat_upload_store(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f)
{
    ngx_str_t               path;
    ngx_ext_rename_file_t   ext;

    ngx_memzero(&ext, sizeof(ngx_ext_rename_file_t));
    ext.access = 0644;
    ext.path_access = 0755;
    ext.time = -1;
    ext.create_path = 1;
    ext.delete_file = 1;
    ext.log = up->request->connection->log;

    if (ngx_chat_files_path(up->request->pool, up->conf, f->sha256, 0, &path)
        != NGX_OK
        || ngx_ext_rename_file(&f->temp->file.name, &path, &ext) != NGX_OK)
    {
        /* logged by nginx, with the path and why */
        return ngx_chat_upload_fail(up, 503, NULL, "the upload cannot be "
                                    "stored now");
    }

    if (f->has_thumb) {
        if (ngx_chat_files_path(up->request->pool, up->conf, f->sha256, 1,
                                &path)
            != NGX_OK
            || ngx_ext_rename_file(&f->thumb, &path, &ext) != NGX_OK)
        {
            return ngx_chat_upload_fail(up, 503, NULL, "the upload cannot "
                                        "be stored now");
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, up->request->connection->log, 0,
                   "chat upload: file %L stored as %s", f->id, f->sha256);

    ngx_chat_metric_add(NGX_CHAT_M_UPLOADS, 1);
    ngx_chat_metric_add(NGX_CHAT_M_UPLOAD_BYTES, f->size);

    return NGX_OK;
}


/* the bytes could not be stored: the row goes, the refusal stands */

static void
ngx_chat_upload_discard(ngx_chat_upload_t *up, ngx_chat_upload_file_t *f)
{
    json_t           *args;
    ngx_chat_call_t  *call;

    call = &up->call;
    ngx_memzero(call, sizeof(ngx_chat_call_t));

    args = json_pack("{s:I}", "file_id", (json_int_t) f->id);

    if (args == NULL
        || ngx_chat_json_on_pool(up->request->pool, args) != NGX_OK)
    {
        json_decref(args);
        ngx_chat_upload_finish(up);
        return;
    }

    call->stmt = NGX_CHAT_SQL_FILE_DISCARD;
    call->id = *up->id;
    call->args = args;
    call->pool = up->request->pool;
    call->log = up->request->connection->log;
    call->done = ngx_chat_upload_discarded;
    call->data = up;

    if (ngx_chat_call_send(call) != NGX_OK) {
        /* the files' collection removes it within a day */
        ngx_chat_upload_finish(up);
    }
}


static void
ngx_chat_upload_discarded(ngx_chat_call_t *call)
{
    ngx_chat_upload_t  *up = call->data;

    if (up->discarding) {
        up->next++;
        ngx_chat_upload_discard_next(up);
        return;
    }

    ngx_chat_upload_finish(up);
}


/*
 * What the files were for failed (a message that was refused): their rows
 * go, one after the other, and done() is called again.  The bytes stay
 * for scripts/files-gc, as another row may name them.
 */

void
ngx_chat_upload_discard_all(ngx_chat_upload_t *up)
{
    up->discarding = 1;
    up->next = 0;

    ngx_chat_upload_discard_next(up);
}


static void
ngx_chat_upload_discard_next(ngx_chat_upload_t *up)
{
    ngx_chat_upload_file_t  *f;

    f = up->files.elts;

    while (up->next < up->files.nelts && f[up->next].id == 0) {
        up->next++;
    }

    if (up->next == up->files.nelts) {
        ngx_chat_upload_finish(up);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, up->request->connection->log, 0,
                   "chat upload: file %L discarded", f[up->next].id);

    ngx_chat_upload_discard(up, &f[up->next]);
}


static void
ngx_chat_upload_finish(ngx_chat_upload_t *up)
{
    up->done(up);
}


/* the File object of each stored file, as "[{...},{...}]" ids too */

ngx_int_t
ngx_chat_upload_ids(ngx_chat_upload_t *up, json_t *ids)
{
    ngx_uint_t               i;
    ngx_chat_upload_file_t  *f;

    f = up->files.elts;

    for (i = 0; i < up->files.nelts; i++) {
        if (json_array_append_new(ids, json_integer(f[i].id)) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "<store>/ab/cd/<sha256>[.thumb]", NUL-terminated */

ngx_int_t
ngx_chat_files_path(ngx_pool_t *pool, ngx_chat_files_conf_t *conf,
    u_char *sha256, ngx_uint_t thumb, ngx_str_t *path)
{
    u_char  *p;

    path->data = ngx_pnalloc(pool, conf->store.len + 1 + 6 + 64 + 7);
    if (path->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(path->data, conf->store.data, conf->store.len);
    p = ngx_chat_files_key(p, sha256, thumb);
    *p = '\0';

    path->len = p - path->data;

    return NGX_OK;
}


/* "/ab/cd/<sha256>[.thumb]": where the bytes are below the store */

u_char *
ngx_chat_files_key(u_char *p, u_char *sha256, ngx_uint_t thumb)
{
    p = ngx_sprintf(p, "/%*s/%*s/%s", (size_t) 2, sha256, (size_t) 2,
                    sha256 + 2, sha256);

    if (thumb) {
        p = ngx_cpymem(p, ".thumb", 6);
    }

    return p;
}


const char *
ngx_chat_kind_name(ngx_uint_t kind)
{
    switch (kind) {
    case NGX_CHAT_KIND_IMAGE: return "image";
    case NGX_CHAT_KIND_VIDEO: return "video";
    case NGX_CHAT_KIND_AUDIO: return "audio";
    default:                  return "file";
    }
}
