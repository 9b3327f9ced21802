
/*
 * ngx_chat: WebSocket connections (RFC 6455), the transport.
 *
 * The handshake is checked in the chat_websocket location handler; then
 * the connection leaves nginx's HTTP code: the request is freed (an idle
 * connection keeps only its small connection pool) and the connection's
 * events come here.  Frames are read into one buffer per worker; a
 * connection holds a buffer of its own only while a frame or a fragmented
 * message is incomplete.  What goes out is a queue of shared frames
 * (ngx_chat_event_t), written with writev() from a posted write event:
 * frames queued in one turn of the event loop leave in one call.  A
 * client that reads too slowly for its queue is closed with 1013.
 */


#include "ngx_chat.h"
#include <ngx_sha1.h>


#define NGX_CHAT_WS_GUID         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NGX_CHAT_WS_CLOSE_WAIT   2000
#define NGX_CHAT_WS_READS        4


static ngx_int_t ngx_chat_ws_check(ngx_http_request_t *r, ngx_str_t *key,
    ngx_uint_t *subprotocol, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_ws_origin_allowed(ngx_http_request_t *r);
static ngx_int_t ngx_chat_ws_token(ngx_http_request_t *r, ngx_str_t *token);
static ngx_table_elt_t *ngx_chat_ws_header(ngx_http_request_t *r,
    char *name);
static ngx_int_t ngx_chat_ws_has_token(ngx_str_t *value, char *token);
static ngx_int_t ngx_chat_ws_accept(ngx_chat_session_t *s, ngx_str_t *key,
    ngx_uint_t subprotocol);
static ngx_int_t ngx_chat_ws_identity(ngx_chat_session_t *s,
    ngx_chat_identity_t *id, ngx_chat_error_t *err);
static void ngx_chat_ws_takeover(ngx_event_t *ev);
static void ngx_chat_ws_release_http(ngx_connection_t *c,
    ngx_http_connection_t *hc);
static void ngx_chat_ws_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_chat_ws_keep_partial(ngx_chat_session_t *s, u_char *p,
    size_t len);
static size_t ngx_chat_ws_frames(ngx_chat_session_t *s, u_char *buf,
    size_t len);
static void ngx_chat_ws_frame(ngx_chat_session_t *s, ngx_chat_ws_frame_t *f,
    u_char *payload);
static void ngx_chat_ws_data(ngx_chat_session_t *s, ngx_chat_ws_frame_t *f,
    u_char *payload);
static void ngx_chat_ws_control(ngx_chat_session_t *s, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_chat_ws_fail(ngx_chat_session_t *s, ngx_uint_t code,
    const char *reason);
static void ngx_chat_ws_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_chat_ws_flush(ngx_chat_session_t *s);
static ssize_t ngx_chat_ws_send_ssl(ngx_chat_session_t *s);
static void ngx_chat_ws_sent(ngx_chat_session_t *s, size_t n);
static void ngx_chat_ws_drop_unsent(ngx_chat_session_t *s);
static void ngx_chat_ws_timer_handler(ngx_event_t *ev);
static void ngx_chat_ws_destroy(ngx_chat_session_t *s);
static ngx_chat_out_t *ngx_chat_ws_out_alloc(void);
static void ngx_chat_ws_out_free(ngx_chat_out_t *out);


/* per worker: the read buffer, and queue nodes to reuse */
static u_char       *ngx_chat_ws_rbuf;
static size_t        ngx_chat_ws_rbuf_size;
static ngx_queue_t   ngx_chat_ws_free_outs;
static ngx_uint_t    ngx_chat_ws_nfree_outs;


ngx_int_t
ngx_chat_ws_handler(ngx_http_request_t *r)
{
    ngx_str_t             key;
    ngx_uint_t            subprotocol;
    ngx_connection_t     *c;
    ngx_chat_error_t      err;
    ngx_chat_session_t   *s;
    ngx_chat_identity_t   id;

    ngx_str_null(&key);
    subprotocol = 0;

    if (ngx_chat_ws_check(r, &key, &subprotocol, &err) != NGX_OK) {
        return ngx_chat_api_refused(r, &err);
    }

    if (ngx_chat_worker.pg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    c = r->connection;

    s = ngx_pcalloc(c->pool, sizeof(ngx_chat_session_t));
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->connection = c;
    s->request = r;
    ngx_queue_init(&s->out);
    ngx_queue_init(&s->subs);
    ngx_queue_init(&s->calls);
    ngx_queue_init(&s->held);

    if (ngx_chat_ws_identity(s, &id, &err) != NGX_OK) {
        return ngx_chat_api_refused(r, &err);
    }

    if (ngx_chat_ws_accept(s, &key, subprotocol) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_discard_request_body(r);

    /*
     * The request is freed once nginx is done with it: after this handler
     * returns, from a posted event.
     */

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    r->main->count++;

    s->timer.handler = ngx_chat_ws_takeover;
    s->timer.data = s;
    s->timer.log = c->log;
    ngx_post_event(&s->timer, &ngx_posted_events);

    return NGX_DONE;
}


static ngx_int_t
ngx_chat_ws_check(ngx_http_request_t *r, ngx_str_t *key,
    ngx_uint_t *subprotocol, ngx_chat_error_t *err)
{
    u_char            buf[32];
    ngx_str_t         decoded, value;
    ngx_table_elt_t  *h, *upgrade, *connection;

    if (r->method != NGX_HTTP_GET) {
        ngx_str_set(&value, "GET");

        if (ngx_chat_api_header(r, "Allow", &value) != NGX_OK) {
            return ngx_chat_refuse(err, 500, "internal error");
        }

        return ngx_chat_refuse(err, 405, "a WebSocket handshake is a GET");
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return ngx_chat_refuse(err, 400, "WebSocket needs HTTP/1.1");
    }
#endif

    /* 1.22 does not keep the Connection header in headers_in: look it up */

    upgrade = ngx_chat_ws_header(r, "Upgrade");
    connection = ngx_chat_ws_header(r, "Connection");

    if (r->http_version < NGX_HTTP_VERSION_11
        || upgrade == NULL
        || !ngx_chat_ws_has_token(&upgrade->value, "websocket")
        || connection == NULL
        || !ngx_chat_ws_has_token(&connection->value, "upgrade")
        || r->headers_in.content_length_n > 0 || r->headers_in.chunked)
    {
        return ngx_chat_refuse(err, 400, "not a WebSocket handshake");
    }

    h = ngx_chat_ws_header(r, "Sec-WebSocket-Version");

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        ngx_str_set(&value, "13");

        if (ngx_chat_api_header(r, "Sec-WebSocket-Version", &value)
            != NGX_OK)
        {
            return ngx_chat_refuse(err, 500, "internal error");
        }

        return ngx_chat_refuse(err, 426, "WebSocket version 13 is required");
    }

    h = ngx_chat_ws_header(r, "Sec-WebSocket-Key");
    decoded.data = buf;

    if (h == NULL || h->value.len != 24
        || ngx_decode_base64(&decoded, &h->value) != NGX_OK
        || decoded.len != 16)
    {
        return ngx_chat_refuse(err, 400, "bad Sec-WebSocket-Key");
    }

    *key = h->value;

    if (ngx_chat_ws_origin_allowed(r) != NGX_OK) {
        return ngx_chat_refuse(err, 403, "this Origin may not connect");
    }

    h = ngx_chat_ws_header(r, "Sec-WebSocket-Protocol");
    *subprotocol = (h && ngx_chat_ws_has_token(&h->value, "chat.v1"));

    return NGX_OK;
}


/* browsers send Origin; other clients may not, and are let in */

static ngx_int_t
ngx_chat_ws_origin_allowed(ngx_http_request_t *r)
{
    ngx_str_t            *origins;
    ngx_uint_t            i;
    ngx_table_elt_t      *h;
    ngx_chat_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);
    h = ngx_chat_ws_header(r, "Origin");

    if (lcf->origins == NULL || h == NULL) {
        return NGX_OK;
    }

    origins = lcf->origins->elts;

    for (i = 0; i < lcf->origins->nelts; i++) {
        if (origins[i].len == h->value.len
            && ngx_strncasecmp(origins[i].data, h->value.data,
                               h->value.len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* the header, ?access_token=, or the subprotocol "bearer.<jwt>" */

static ngx_int_t
ngx_chat_ws_token(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char           *p, *last, *start;
    ngx_table_elt_t  *h;

    if (ngx_chat_api_bearer(r, token) == NGX_OK) {
        return NGX_OK;
    }

    if (ngx_http_arg(r, (u_char *) "access_token", 12, token) == NGX_OK
        && token->len)
    {
        return NGX_OK;
    }

    h = ngx_chat_ws_header(r, "Sec-WebSocket-Protocol");
    if (h == NULL) {
        return NGX_DECLINED;
    }

    last = h->value.data + h->value.len;

    for (p = h->value.data; p < last; p = start + 1) {
        while (p < last && (*p == ' ' || *p == ',')) {
            p++;
        }

        start = ngx_strlchr(p, last, ',');
        if (start == NULL) {
            start = last;
        }

        if (start - p > 7 && ngx_strncmp(p, "bearer.", 7) == 0) {
            token->data = p + 7;
            token->len = start - p - 7;

            while (token->len && token->data[token->len - 1] == ' ') {
                token->len--;
            }

            return NGX_OK;
        }

        if (start == last) {
            break;
        }
    }

    return NGX_DECLINED;
}


static ngx_table_elt_t *
ngx_chat_ws_header(ngx_http_request_t *r, char *name)
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


/* a comma-separated header value holds the token (any case) */

static ngx_int_t
ngx_chat_ws_has_token(ngx_str_t *value, char *token)
{
    size_t   len;
    u_char  *p, *last;

    len = ngx_strlen(token);
    last = value->data + value->len;

    for (p = value->data; p + len <= last; p++) {

        if (ngx_strncasecmp(p, (u_char *) token, len) != 0) {
            continue;
        }

        if ((p == value->data || p[-1] == ' ' || p[-1] == ',')
            && (p + len == last || p[len] == ' ' || p[len] == ','))
        {
            return 1;
        }
    }

    return 0;
}


/* the 101 answer is the first frame of the connection's queue */

static ngx_int_t
ngx_chat_ws_accept(ngx_chat_session_t *s, ngx_str_t *key,
    ngx_uint_t subprotocol)
{
    u_char             hash[20], buf[256], *p;
    ngx_str_t          accept, digest;
    ngx_sha1_t         sha1;
    ngx_chat_out_t    *out;
    ngx_chat_event_t  *ev;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, key->data, key->len);
    ngx_sha1_update(&sha1, NGX_CHAT_WS_GUID, sizeof(NGX_CHAT_WS_GUID) - 1);
    ngx_sha1_final(hash, &sha1);

    digest.data = hash;
    digest.len = sizeof(hash);

    accept.data = buf + 200;
    ngx_encode_base64(&accept, &digest);

    p = ngx_sprintf(buf, "HTTP/1.1 101 Switching Protocols" CRLF
                         "Upgrade: websocket" CRLF
                         "Connection: Upgrade" CRLF
                         "Sec-WebSocket-Accept: %V" CRLF
                         "%s" CRLF,
                    &accept,
                    subprotocol ? "Sec-WebSocket-Protocol: chat.v1" CRLF
                                : "");

    ev = ngx_chat_event_raw(buf, p - buf);
    out = ngx_chat_ws_out_alloc();

    if (ev == NULL || out == NULL) {
        if (ev) {
            ngx_chat_event_release(ev);
        }
        return NGX_ERROR;
    }

    out->ev = ev;
    ngx_queue_insert_tail(&s->out, &out->queue);
    s->out_bytes = ev->len;

    return NGX_OK;
}


/* the identity outlives the request: it goes to the connection's pool */

static ngx_int_t
ngx_chat_ws_identity(ngx_chat_session_t *s, ngx_chat_identity_t *id,
    ngx_chat_error_t *err)
{
    ngx_int_t              rc;
    ngx_str_t              token, *dst[3], *src[3];
    ngx_uint_t             i;
    ngx_http_request_t    *r;
    ngx_chat_main_conf_t  *mcf;

    r = s->request;
    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (ngx_chat_ws_token(r, &token) != NGX_OK) {
        return ngx_chat_refuse(err, 401, "a bearer token is required");
    }

    rc = ngx_chat_auth_token(&mcf->jwt, &token, r->pool, r->connection->log,
                             id);

    if (rc == NGX_ERROR) {
        return ngx_chat_refuse(err, 500, "internal error");
    }

    if (rc != NGX_OK) {
        return ngx_chat_refuse(err, 401, "the token is invalid");
    }

    dst[0] = &s->id.tenant; src[0] = &id->tenant;
    dst[1] = &s->id.user;   src[1] = &id->user;
    dst[2] = &s->id.name;   src[2] = &id->name;

    for (i = 0; i < 3; i++) {
        dst[i]->data = ngx_pnalloc(s->connection->pool, src[i]->len + 1);
        if (dst[i]->data == NULL) {
            return ngx_chat_refuse(err, 500, "internal error");
        }

        ngx_memcpy(dst[i]->data, src[i]->data, src[i]->len + 1);
        dst[i]->len = src[i]->len;
    }

    s->id.exp = id->exp;

    return NGX_OK;
}


/*
 * Runs after the location handler returned: the bytes the client sent
 * after its handshake are kept, the request is freed, and the connection
 * is the module's from now on.
 */

static void
ngx_chat_ws_takeover(ngx_event_t *ev)
{
    ngx_int_t               rc;
    ngx_buf_t              *b;
    ngx_connection_t       *c;
    ngx_chat_session_t     *s;
    ngx_http_request_t     *r;
    ngx_http_connection_t  *hc;

    s = ev->data;
    r = s->request;
    c = s->connection;
    hc = r->http_connection;

    b = r->header_in;
    rc = NGX_OK;

    if (b && b->pos < b->last) {
        /* frames the client sent with its handshake, parsed on first read */
        rc = ngx_chat_ws_keep_partial(s, b->pos, b->last - b->pos);
        s->fresh = 1;
    }

    ngx_http_free_request(r, 0);
    s->request = NULL;

    ngx_chat_ws_release_http(c, hc);

    c->data = s;
    c->read->handler = ngx_chat_ws_read_handler;
    c->write->handler = ngx_chat_ws_write_handler;
    c->log->action = "serving a WebSocket";

    s->timer.handler = ngx_chat_ws_timer_handler;
    s->timer.cancelable = 1;
    s->last_read = ngx_current_msec;
    s->last_ping = ngx_current_msec;

    ngx_queue_insert_tail(&ngx_chat_worker.sessions, &s->in_worker);
    ngx_chat_worker.nsessions++;

    if (rc != NGX_OK || ngx_chat_session_open(s) != NGX_OK) {
        ngx_chat_ws_destroy(s);
        return;
    }

    ngx_add_timer(&s->timer, ngx_min(ngx_chat_worker.conf->ws.ping,
                                     ngx_chat_worker.conf->ws.start_grace));

    /* the 101 and hello go out, and what the client sent is read */

    ngx_post_event(c->write, &ngx_posted_events);

    if (s->partial_len || c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/*
 * What HTTP leaves on the connection and a WebSocket does not need: the
 * header buffers (as ngx_http_set_keepalive() frees them) and timers.
 */

static void
ngx_chat_ws_release_http(ngx_connection_t *c, ngx_http_connection_t *hc)
{
    ngx_chain_t  *cl, *ln, **lists[2];
    ngx_uint_t    i;

    c->destroyed = 0;

    lists[0] = &hc->free;
    lists[1] = &hc->busy;

    for (i = 0; i < 2; i++) {
        for (cl = *lists[i]; cl; /* void */) {
            ln = cl;
            cl = cl->next;
            ngx_pfree(c->pool, ln->buf->start);
            ngx_free_chain(c->pool, ln);
        }

        *lists[i] = NULL;
    }

    hc->nbusy = 0;

    if (c->buffer) {
        (void) ngx_pfree(c->pool, c->buffer->start);
        c->buffer = NULL;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /*
     * Small frames go at once: with Nagle an ack would wait for the
     * client's delayed ACK of the frame before it (nginx sets this itself
     * only for keepalive connections)
     */
    (void) ngx_tcp_nodelay(c);
}


static void
ngx_chat_ws_read_handler(ngx_event_t *rev)
{
    u_char              *buf;
    size_t               have, size, used;
    ssize_t              n;
    ngx_uint_t           reads;
    ngx_connection_t    *c;
    ngx_chat_session_t  *s;

    c = rev->data;
    s = c->data;

    if (s->fresh) {
        s->fresh = 0;
        have = s->partial_len;
        ngx_memcpy(ngx_chat_ws_rbuf, s->partial, have);

        used = ngx_chat_ws_frames(s, ngx_chat_ws_rbuf, have);

        if (ngx_chat_ws_keep_partial(s, ngx_chat_ws_rbuf + used, have - used)
            != NGX_OK)
        {
            ngx_chat_ws_destroy(s);
            return;
        }
    }

    for (reads = 0; reads < NGX_CHAT_WS_READS; reads++) {

        /*
         * the rest of an incomplete frame is read into its own buffer,
         * behind what came of it: a frame sent a byte at a time costs a
         * copy of each byte, not one of the whole frame so far per read
         */

        have = s->partial_len;

        if (have) {
            buf = s->partial;
            size = s->partial_size;

        } else {
            buf = ngx_chat_ws_rbuf;
            size = ngx_chat_ws_rbuf_size;
        }

        n = c->recv(c, buf + have, size - have);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_chat_ws_destroy(s);
            }
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            /* the client went away: no close frame can reach it */
            ngx_chat_ws_destroy(s);
            return;
        }

        have += n;
        s->last_read = ngx_current_msec;

        used = ngx_chat_ws_frames(s, buf, have);

        if (ngx_chat_ws_keep_partial(s, buf + used, have - used) != NGX_OK)
        {
            ngx_chat_ws_destroy(s);
            return;
        }
    }

    /* others are served before this connection reads more */
    ngx_post_event(rev, &ngx_posted_events);
}


/*
 * The bytes of an incomplete frame wait on the connection, in a buffer
 * that holds the whole frame once its header is known (a header not yet
 * whole gets room for the longest one).  p may point into that buffer.
 */

static ngx_int_t
ngx_chat_ws_keep_partial(ngx_chat_session_t *s, u_char *p, size_t len)
{
    u_char               *buf;
    size_t                need;
    ngx_int_t             rc;
    ngx_uint_t            code;
    ngx_chat_ws_frame_t   f;

    if (len == 0) {
        if (s->partial) {
            ngx_free(s->partial);
        }

        s->partial = NULL;
        s->partial_len = 0;
        s->partial_size = 0;
        return NGX_OK;
    }

    rc = ngx_chat_ws_parse_header(p, len, ngx_chat_worker.conf->ws.message_max,
                                  &f, &code);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    need = (rc == NGX_OK) ? f.header_len + f.len
                         : NGX_CHAT_WS_CLIENT_HEADER_MAX;
    need = ngx_max(need, len);

    if (need > ngx_chat_ws_rbuf_size) {
        return NGX_ERROR;
    }

    if (s->partial_size >= need) {
        ngx_memmove(s->partial, p, len);
        s->partial_len = len;
        return NGX_OK;
    }

    buf = ngx_alloc(need, s->connection->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, p, len);

    if (s->partial) {
        ngx_free(s->partial);
    }

    s->partial = buf;
    s->partial_len = len;
    s->partial_size = need;

    return NGX_OK;
}


/* handles every complete frame in buf; returns the bytes it used */

static size_t
ngx_chat_ws_frames(ngx_chat_session_t *s, u_char *buf, size_t len)
{
    u_char               *p, *last;
    ngx_int_t             rc;
    ngx_uint_t            code;
    ngx_chat_ws_frame_t   f;

    /* a failed connection reads on only to let the socket drain */
    if (s->failed) {
        return len;
    }

    p = buf;
    last = buf + len;

    while (p < last) {
        rc = ngx_chat_ws_parse_header(p, last - p,
                                      ngx_chat_worker.conf->ws.message_max,
                                      &f, &code);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_chat_ws_fail(s, code, "bad frame");
            return len;
        }

        if ((size_t) (last - p) < f.header_len + f.len) {
            break;
        }

        p += f.header_len;
        ngx_chat_ws_unmask(p, f.len, f.mask, 0);
        ngx_chat_ws_frame(s, &f, p);
        p += f.len;

        if (s->close_received) {
            return len;
        }
    }

    return p - buf;
}


static void
ngx_chat_ws_frame(ngx_chat_session_t *s, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    u_char      echo[2];
    ngx_uint_t  code, bad;

    switch (f->opcode) {

    case NGX_CHAT_WS_PING:
        if (!s->closing) {
            ngx_chat_ws_control(s, NGX_CHAT_WS_PONG, payload, f->len);
        }
        return;

    case NGX_CHAT_WS_PONG:
        return;

    case NGX_CHAT_WS_CLOSE:
        code = ngx_chat_ws_close_code(payload, f->len, &bad);

        if (code == 0) {
            ngx_chat_ws_fail(s, bad, "bad close frame");

        } else if (!s->closing) {
            /* the answer echoes the code */
            echo[0] = (u_char) (code >> 8);
            echo[1] = (u_char) code;
            ngx_chat_ws_control(s, NGX_CHAT_WS_CLOSE, echo,
                                f->len ? 2 : 0);
            s->closing = 1;
        }

        /* the connection ends once what is queued has gone */
        s->close_received = 1;
        ngx_post_event(s->connection->write, &ngx_posted_events);
        return;

    default:
        if (!s->closing) {
            ngx_chat_ws_data(s, f, payload);
        }
    }
}


/* text messages, whole or in fragments, checked as UTF-8 as they come */

static void
ngx_chat_ws_data(ngx_chat_session_t *s, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    u_char  *p;
    size_t   max, size;

    max = ngx_chat_worker.conf->ws.message_max;

    if (f->opcode == NGX_CHAT_WS_BINARY) {
        ngx_chat_ws_fail(s, NGX_CHAT_WS_UNSUPPORTED,
                         "only text messages are accepted");
        return;
    }

    if ((f->opcode == NGX_CHAT_WS_TEXT) == s->in_message) {
        ngx_chat_ws_fail(s, NGX_CHAT_WS_PROTOCOL_ERROR,
                         s->in_message ? "a message is unfinished"
                                       : "nothing to continue");
        return;
    }

    if (f->opcode == NGX_CHAT_WS_TEXT) {
        s->utf8 = 0;
    }

    if (ngx_chat_utf8_step(&s->utf8, payload, f->len) != NGX_OK
        || (f->fin && s->utf8 != 0))
    {
        ngx_chat_ws_fail(s, NGX_CHAT_WS_BAD_DATA, "invalid UTF-8");
        return;
    }

    if (f->fin && !s->in_message) {
        ngx_chat_session_message(s, payload, f->len);
        return;
    }

    if (s->message_len + f->len > max) {
        ngx_chat_ws_fail(s, NGX_CHAT_WS_TOO_BIG, "message too big");
        return;
    }

    if (s->message_len + f->len > s->message_size) {

        /* doubling: many small fragments cost each byte a few copies */

        size = ngx_max(s->message_len + f->len, 2 * s->message_size);
        size = ngx_min(ngx_max(size, 4096), max);

        p = ngx_alloc(size, s->connection->log);
        if (p == NULL) {
            ngx_chat_ws_close(s, NGX_CHAT_WS_SERVER_ERROR, "out of memory");
            return;
        }

        if (s->message) {
            ngx_memcpy(p, s->message, s->message_len);
            ngx_free(s->message);
        }

        s->message = p;
        s->message_size = size;
    }

    ngx_memcpy(s->message + s->message_len, payload, f->len);
    s->message_len += f->len;
    s->in_message = 1;

    if (!f->fin) {
        return;
    }

    ngx_chat_session_message(s, s->message, s->message_len);

    ngx_free(s->message);
    s->message = NULL;
    s->message_len = 0;
    s->message_size = 0;
    s->in_message = 0;
}


static void
ngx_chat_ws_control(ngx_chat_session_t *s, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_frame(opcode, data, len);
    if (ev == NULL) {
        return;
    }

    ngx_chat_ws_send(s, ev);
    ngx_chat_event_release(ev);
}


/*
 * Queues a frame.  A client whose queue outgrows chat_ws_send_queue is
 * too slow to keep: what it has not begun to receive is dropped, and it
 * is closed with 1013 to come back and resume.
 */

void
ngx_chat_ws_send(ngx_chat_session_t *s, ngx_chat_event_t *ev)
{
    ngx_connection_t  *c;
    ngx_chat_out_t    *out;

    c = s->connection;

    if (s->closing && (ev->frame[0] & 0x0f) != NGX_CHAT_WS_CLOSE) {
        return;
    }

    if (s->out_bytes + ev->len > ngx_chat_worker.conf->ws.send_queue
        && (ev->frame[0] & 0x0f) != NGX_CHAT_WS_CLOSE)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "chat: client reads too slowly, closing it");
        ngx_chat_ws_drop_unsent(s);
        ngx_chat_ws_close(s, NGX_CHAT_WS_TRY_AGAIN, "too slow");
        return;
    }

    out = ngx_chat_ws_out_alloc();
    if (out == NULL) {
        return;
    }

    out->ev = ev;
    ev->refs++;
    ngx_queue_insert_tail(&s->out, &out->queue);
    s->out_bytes += ev->len;

    if (s->request == NULL && c->write->ready && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


ngx_int_t
ngx_chat_ws_send_text(ngx_chat_session_t *s, u_char *json, size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_create(json, len, 0);
    if (ev == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_ws_send(s, ev);
    ngx_chat_event_release(ev);

    return NGX_OK;
}


void
ngx_chat_ws_close(ngx_chat_session_t *s, ngx_uint_t code, const char *reason)
{
    u_char  buf[125];
    size_t  len;

    if (s->closing) {
        return;
    }

    buf[0] = (u_char) (code >> 8);
    buf[1] = (u_char) code;
    len = ngx_min(ngx_strlen(reason), sizeof(buf) - 2);
    ngx_memcpy(buf + 2, reason, len);

    ngx_chat_ws_control(s, NGX_CHAT_WS_CLOSE, buf, len + 2);
    s->closing = 1;

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    if (s->request == NULL) {
        ngx_add_timer(&s->timer, NGX_CHAT_WS_CLOSE_WAIT);
    }
}


/*
 * The client broke the protocol: what it sends after that is not frames
 * to trust (RFC 6455 7.1.7), only the close handshake's end is waited for.
 */

static void
ngx_chat_ws_fail(ngx_chat_session_t *s, ngx_uint_t code, const char *reason)
{
    ngx_chat_ws_close(s, code, reason);
    s->failed = 1;
}


void
ngx_chat_ws_close_all(ngx_uint_t code)
{
    ngx_queue_t         *q;
    ngx_chat_session_t  *s;

    for (q = ngx_queue_head(&ngx_chat_worker.sessions);
         q != ngx_queue_sentinel(&ngx_chat_worker.sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_chat_session_t, in_worker);
        ngx_chat_ws_close(s, code, "server going away");
    }
}


static void
ngx_chat_ws_write_handler(ngx_event_t *wev)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_chat_session_t  *s;

    c = wev->data;
    s = c->data;

    rc = ngx_chat_ws_flush(s);

    if (rc == NGX_ERROR) {
        ngx_chat_ws_destroy(s);
        return;
    }

    if (s->paused
        && s->out_bytes < ngx_chat_worker.conf->ws.send_queue / 4)
    {
        /* a catch-up that waited for room goes on */
        ngx_chat_session_drained(s);
    }

    if (rc == NGX_AGAIN) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_chat_ws_destroy(s);
        }
        return;
    }

    if (s->closing && s->close_received) {
        /* both close frames went: the handshake is over */
        ngx_chat_ws_destroy(s);
    }
}


static ngx_int_t
ngx_chat_ws_flush(ngx_chat_session_t *s)
{
    size_t             total;
    ssize_t            n;
    ngx_err_t          err;
    ngx_uint_t         niov;
    ngx_queue_t       *q;
    struct iovec       iov[NGX_IOVS_PREALLOCATE];
    ngx_chat_out_t    *out;
    ngx_connection_t  *c;

    c = s->connection;

    while (!ngx_queue_empty(&s->out)) {

        if (c->ssl) {
            n = ngx_chat_ws_send_ssl(s);

            if (n == NGX_AGAIN || n == NGX_ERROR) {
                return n;
            }

            continue;
        }

        niov = 0;
        total = 0;

        for (q = ngx_queue_head(&s->out);
             q != ngx_queue_sentinel(&s->out) && niov < NGX_IOVS_PREALLOCATE;
             q = ngx_queue_next(q))
        {
            out = ngx_queue_data(q, ngx_chat_out_t, queue);
            iov[niov].iov_base = out->ev->frame;
            iov[niov].iov_len = out->ev->len;

            if (niov == 0) {
                iov[0].iov_base = out->ev->frame + s->out_sent;
                iov[0].iov_len -= s->out_sent;
            }

            total += iov[niov].iov_len;
            niov++;
        }

        n = writev(c->fd, iov, niov);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                c->write->ready = 0;
                return NGX_AGAIN;
            }

            if (err == NGX_EINTR) {
                continue;
            }

            ngx_connection_error(c, err, "writev() failed");
            c->error = 1;
            return NGX_ERROR;
        }

        c->sent += n;
        ngx_chat_ws_sent(s, n);

        if ((size_t) n < total) {
            c->write->ready = 0;
            return NGX_AGAIN;
        }
    }

    return NGX_OK;
}


/* TLS cannot gather: one frame per call, OpenSSL makes the records */

static ssize_t
ngx_chat_ws_send_ssl(ngx_chat_session_t *s)
{
    ssize_t            n;
    ngx_chat_out_t    *out;
    ngx_connection_t  *c;

    c = s->connection;
    out = ngx_queue_data(ngx_queue_head(&s->out), ngx_chat_out_t, queue);

    n = c->send(c, out->ev->frame + s->out_sent, out->ev->len - s->out_sent);

    if (n > 0) {
        ngx_chat_ws_sent(s, n);
    }

    return n;
}


static void
ngx_chat_ws_sent(ngx_chat_session_t *s, size_t n)
{
    size_t           left;
    ngx_queue_t     *q;
    ngx_chat_out_t  *out;

    while (n && !ngx_queue_empty(&s->out)) {
        q = ngx_queue_head(&s->out);
        out = ngx_queue_data(q, ngx_chat_out_t, queue);
        left = out->ev->len - s->out_sent;

        if (n < left) {
            s->out_sent += n;
            s->out_bytes -= n;
            return;
        }

        n -= left;
        s->out_bytes -= left;
        s->out_sent = 0;

        ngx_queue_remove(q);
        ngx_chat_ws_out_free(out);
    }
}


/* keeps only a frame already begun: the byte stream must stay whole */

static void
ngx_chat_ws_drop_unsent(ngx_chat_session_t *s)
{
    ngx_queue_t     *q;
    ngx_chat_out_t  *out;

    while (!ngx_queue_empty(&s->out)) {
        q = ngx_queue_last(&s->out);

        if (q == ngx_queue_head(&s->out) && s->out_sent) {
            break;
        }

        out = ngx_queue_data(q, ngx_chat_out_t, queue);
        ngx_queue_remove(q);
        s->out_bytes -= out->ev->len;
        ngx_chat_ws_out_free(out);
    }
}


/* heartbeat, idle timeout, the end of the close handshake */

static void
ngx_chat_ws_timer_handler(ngx_event_t *ev)
{
    ngx_msec_t            now, next;
    ngx_chat_session_t   *s;
    ngx_chat_ws_conf_t   *conf;

    s = ev->data;
    conf = &ngx_chat_worker.conf->ws;
    now = ngx_current_msec;

    if (s->closing) {
        ngx_chat_ws_destroy(s);
        return;
    }

    if (now - s->last_read >= conf->timeout) {
        ngx_chat_ws_close(s, NGX_CHAT_WS_GOING_AWAY, "idle");
        return;
    }

    if (ngx_time() > s->id.exp + ngx_chat_worker.conf->jwt.leeway) {
        /* a connection lasts no longer than the token it came with */
        ngx_chat_ws_close(s, NGX_CHAT_WS_POLICY, "token expired");
        return;
    }

    if (now - s->last_ping >= conf->ping) {
        ngx_chat_ws_control(s, NGX_CHAT_WS_PING, NULL, 0);
        s->last_ping = now;

        if (s->closing) {
            /* the ping filled the send queue: 1013, and its close timer */
            return;
        }
    }

    ngx_chat_session_timer(s);

    next = conf->ping - (now - s->last_ping);

    if (!s->started && s->start_by > now) {
        next = ngx_min(next, s->start_by - now);
    }

    if (s->id.exp + ngx_chat_worker.conf->jwt.leeway - ngx_time()
        < (time_t) (next / 1000))
    {
        next = (s->id.exp + ngx_chat_worker.conf->jwt.leeway - ngx_time()
                + 1) * 1000;
    }

    ngx_add_timer(&s->timer, ngx_max(next, 1));
}


static void
ngx_chat_ws_destroy(ngx_chat_session_t *s)
{
    ngx_queue_t       *q;
    ngx_chat_out_t    *out;
    ngx_connection_t  *c;

    c = s->connection;

    ngx_chat_session_close(s);

    while (!ngx_queue_empty(&s->out)) {
        q = ngx_queue_head(&s->out);
        ngx_queue_remove(q);
        out = ngx_queue_data(q, ngx_chat_out_t, queue);
        ngx_chat_ws_out_free(out);
    }

    if (s->partial) {
        ngx_free(s->partial);
    }

    if (s->message) {
        ngx_free(s->message);
    }

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    if (s->timer.posted) {
        ngx_delete_posted_event(&s->timer);
    }

    ngx_queue_remove(&s->in_worker);
    ngx_chat_worker.nsessions--;

    /* the session lives in the connection's pool: it goes with it */
    ngx_http_close_connection(c);
}


static ngx_chat_out_t *
ngx_chat_ws_out_alloc(void)
{
    ngx_queue_t  *q;

    if (ngx_chat_ws_nfree_outs) {
        q = ngx_queue_head(&ngx_chat_ws_free_outs);
        ngx_queue_remove(q);
        ngx_chat_ws_nfree_outs--;
        return ngx_queue_data(q, ngx_chat_out_t, queue);
    }

    return ngx_alloc(sizeof(ngx_chat_out_t), ngx_cycle->log);
}


static void
ngx_chat_ws_out_free(ngx_chat_out_t *out)
{
    ngx_chat_event_release(out->ev);

    if (ngx_chat_ws_nfree_outs < 65536) {
        ngx_queue_insert_head(&ngx_chat_ws_free_outs, &out->queue);
        ngx_chat_ws_nfree_outs++;
        return;
    }

    ngx_free(out);
}


/* the worker exits: connections still open are closed without more ado */

void
ngx_chat_ws_done(void)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&ngx_chat_worker.sessions)) {
        q = ngx_queue_head(&ngx_chat_worker.sessions);
        ngx_chat_ws_destroy(ngx_queue_data(q, ngx_chat_session_t,
                                           in_worker));
    }
}


ngx_int_t
ngx_chat_ws_init(ngx_cycle_t *cycle)
{
    ngx_queue_init(&ngx_chat_ws_free_outs);

    /* one whole frame fits, with room for what follows it */
    ngx_chat_ws_rbuf_size = ngx_max(65536,
                                    ngx_chat_worker.conf->ws.message_max
                                    + 4096);

    ngx_chat_ws_rbuf = ngx_alloc(ngx_chat_ws_rbuf_size, cycle->log);

    return ngx_chat_ws_rbuf ? NGX_OK : NGX_ERROR;
}
