
/*
 * ngx_chat: WebSocket connections (RFC 6455), the transport.
 *
 * A handshake is checked (ngx_chat_ws_check()) and answered with a 101
 * through nginx's own header filters (ngx_chat_ws_upgrade()), so that
 * add_header and the access log see it like any answer.  Once the 101 has
 * gone, the connection leaves nginx's HTTP code: the request is freed (an
 * idle connection keeps only its small connection pool) and the
 * connection's events come here.
 *
 * Frames are read into one buffer per worker and parsed by the pure
 * reader (ngx_chat_ws_frame.c), which keeps an incomplete frame in a
 * buffer of its own.  What goes out is a chain of shared frames
 * (ngx_chat_event_t) written with c->send_chain() from a posted write
 * event: frames queued in one turn of the event loop leave in one writev(),
 * or, under TLS, in as few records as fit.  A client that reads too
 * slowly for its queue is closed with 1013.
 *
 * This file knows nothing of chat: a whole message, the upper layer's own
 * timer and the end of the connection are reported through the handlers
 * given to ngx_chat_ws_upgrade().
 */


#include "ngx_chat.h"
#include <ngx_sha1.h>


#define NGX_CHAT_WS_GUID         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NGX_CHAT_WS_CLOSE_WAIT   2000
#define NGX_CHAT_WS_READS        4
#define NGX_CHAT_WS_FREE_OUTS    65536


/* a frame waiting to be written to one connection: a link of its chain */

typedef struct {
    ngx_chain_t                  cl;
    ngx_buf_t                    buf;
    ngx_chat_event_t            *ev;
} ngx_chat_ws_out_t;


static ngx_int_t ngx_chat_ws_origin_allowed(ngx_http_request_t *r,
    ngx_array_t *origins);
static ngx_int_t ngx_chat_ws_has_token(ngx_str_t *value, char *token);
static ngx_int_t ngx_chat_ws_answer(ngx_http_request_t *r,
    ngx_chat_ws_handshake_t *hs);
static void ngx_chat_ws_takeover(ngx_event_t *ev);
static void ngx_chat_ws_header_written(ngx_http_request_t *r);
static void ngx_chat_ws_start(ngx_chat_ws_t *ws);
static void ngx_chat_ws_release_http(ngx_connection_t *c);
static void ngx_chat_ws_read_handler(ngx_event_t *rev);
static void ngx_chat_ws_frame(void *data, ngx_chat_ws_read_t *ev);
static void ngx_chat_ws_control(ngx_chat_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_chat_ws_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_chat_ws_flush(ngx_chat_ws_t *ws);
static void ngx_chat_ws_drop_unsent(ngx_chat_ws_t *ws);
static void ngx_chat_ws_timer_handler(ngx_event_t *ev);
static void ngx_chat_ws_arm(ngx_chat_ws_t *ws);
static void ngx_chat_ws_destroy(ngx_chat_ws_t *ws);
static ngx_chat_ws_out_t *ngx_chat_ws_out_alloc(void);
static void ngx_chat_ws_out_free(ngx_chat_ws_out_t *out);


/* per worker: the read buffer, queue nodes to reuse, every connection */
static u_char       *ngx_chat_ws_rbuf;
static size_t        ngx_chat_ws_rbuf_size;
static ngx_queue_t   ngx_chat_ws_free_outs;
static ngx_uint_t    ngx_chat_ws_nfree_outs;
static ngx_queue_t   ngx_chat_ws_all;
static ngx_uint_t    ngx_chat_ws_count;


ngx_int_t
ngx_chat_ws_init(ngx_cycle_t *cycle, ngx_chat_ws_conf_t *conf)
{
    ngx_queue_init(&ngx_chat_ws_free_outs);
    ngx_queue_init(&ngx_chat_ws_all);

    /* one whole frame fits, with room for what follows it */
    ngx_chat_ws_rbuf_size = ngx_max(65536, conf->message_max + 4096);

    ngx_chat_ws_rbuf = ngx_alloc(ngx_chat_ws_rbuf_size, cycle->log);

    return ngx_chat_ws_rbuf ? NGX_OK : NGX_ERROR;
}


/* the worker exits: connections still open are closed without more ado */

void
ngx_chat_ws_done(void)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&ngx_chat_ws_all)) {
        q = ngx_queue_head(&ngx_chat_ws_all);
        ngx_chat_ws_destroy(ngx_queue_data(q, ngx_chat_ws_t, in_worker));
    }
}


/*
 * Whether the request is a handshake this location takes: NGX_OK with the
 * key and whether the client speaks "chat.v1"; otherwise err says why.
 */

ngx_int_t
ngx_chat_ws_check(ngx_http_request_t *r, ngx_array_t *origins,
    ngx_chat_ws_handshake_t *hs, ngx_chat_error_t *err)
{
    u_char            buf[32];
    ngx_str_t         decoded, value;
    ngx_table_elt_t  *h, *upgrade, *connection;

    if (r->method != NGX_HTTP_GET) {
        ngx_str_set(&value, "GET");

        if (ngx_chat_http_header(r, "Allow", &value) != NGX_OK) {
            return ngx_chat_refuse(err, 500, "internal error");
        }

        return ngx_chat_refuse(err, 405, "a WebSocket handshake is a GET");
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return ngx_chat_refuse(err, 400, "WebSocket needs HTTP/1.1");
    }
#endif

    upgrade = ngx_chat_http_header_in(r, "Upgrade");
    connection = ngx_chat_http_header_in(r, "Connection");

    if (r->http_version < NGX_HTTP_VERSION_11
        || upgrade == NULL
        || !ngx_chat_ws_has_token(&upgrade->value, "websocket")
        || connection == NULL
        || !ngx_chat_ws_has_token(&connection->value, "upgrade")
        || r->headers_in.content_length_n > 0 || r->headers_in.chunked)
    {
        return ngx_chat_refuse(err, 400, "not a WebSocket handshake");
    }

    h = ngx_chat_http_header_in(r, "Sec-WebSocket-Version");

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        ngx_str_set(&value, "13");

        if (ngx_chat_http_header(r, "Sec-WebSocket-Version", &value)
            != NGX_OK)
        {
            return ngx_chat_refuse(err, 500, "internal error");
        }

        return ngx_chat_refuse(err, 426, "WebSocket version 13 is required");
    }

    h = ngx_chat_http_header_in(r, "Sec-WebSocket-Key");
    decoded.data = buf;

    if (h == NULL || h->value.len != 24
        || ngx_decode_base64(&decoded, &h->value) != NGX_OK
        || decoded.len != 16)
    {
        return ngx_chat_refuse(err, 400, "bad Sec-WebSocket-Key");
    }

    hs->key = h->value;

    if (ngx_chat_ws_origin_allowed(r, origins) != NGX_OK) {
        return ngx_chat_refuse(err, 403, "this Origin may not connect");
    }

    h = ngx_chat_http_header_in(r, "Sec-WebSocket-Protocol");
    hs->subprotocol = (h && ngx_chat_ws_has_token(&h->value, "chat.v1"));

    return NGX_OK;
}


/* browsers send Origin; other clients may not, and are let in */

static ngx_int_t
ngx_chat_ws_origin_allowed(ngx_http_request_t *r, ngx_array_t *origins)
{
    ngx_str_t        *origin;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    h = ngx_chat_http_header_in(r, "Origin");

    if (origins == NULL || h == NULL) {
        return NGX_OK;
    }

    origin = origins->elts;

    for (i = 0; i < origins->nelts; i++) {
        if (origin[i].len == h->value.len
            && ngx_strncasecmp(origin[i].data, h->value.data,
                               h->value.len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * The credentials a client can give a handshake: the header, the query's
 * access_token, or the subprotocol "bearer.<jwt>" (browsers cannot set
 * headers on a WebSocket).  The query's token is read before the query is
 * hidden from the logs (in ngx_chat_http_bearer()): it stays valid, in
 * the bytes nginx read, while the logs see "[redacted]".
 */

ngx_int_t
ngx_chat_ws_token(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_int_t  rc;

    rc = ngx_chat_ws_token_peek(r, token);

    ngx_chat_http_hide_token(r);

    return rc;
}


/* the same, hiding nothing: $chat_user reads it before the handler */

ngx_int_t
ngx_chat_ws_token_peek(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char           *p, *last, *start;
    ngx_str_t         arg;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "access_token", 12, &arg) != NGX_OK) {
        arg.len = 0;
    }

    if (ngx_chat_http_bearer_peek(r, token) == NGX_OK) {
        return NGX_OK;
    }

    if (arg.len) {
        *token = arg;
        return NGX_OK;
    }

    h = ngx_chat_http_header_in(r, "Sec-WebSocket-Protocol");
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
            && (p + len == last || p[len] == ' ' || p[len] == ',')
        ) {
            return 1;
        }
    }

    return 0;
}


/*
 * The 101 goes through nginx's header filters; frames queued meanwhile
 * (the upper layer's hello) wait until the connection is taken over, from
 * a posted event, once nginx is done with the request.  The location
 * handler returns NGX_DONE after this.
 */

ngx_chat_ws_t *
ngx_chat_ws_upgrade(ngx_http_request_t *r, ngx_chat_ws_handshake_t *hs,
    ngx_chat_ws_conf_t *conf, const ngx_chat_ws_handlers_t *handlers,
    void *data)
{
    ngx_connection_t  *c;
    ngx_chat_ws_t     *ws;

    c = r->connection;

    ws = ngx_pcalloc(c->pool, sizeof(ngx_chat_ws_t));
    if (ws == NULL) {
        return NULL;
    }

    ws->connection = c;
    ws->request = r;
    ws->conf = conf;
    ws->handlers = handlers;
    ws->data = data;
    ws->out_last = &ws->out;

    ws->reader.max = conf->message_max;
    ws->reader.frame_max = ngx_chat_ws_rbuf_size;
    ws->reader.handler = ngx_chat_ws_frame;
    ws->reader.data = ws;

    if (ngx_http_discard_request_body(r) != NGX_OK
        || ngx_chat_ws_answer(r, hs) != NGX_OK)
    {
        return NULL;
    }

    ngx_http_set_ctx(r, ws, ngx_chat_module);
    r->main->count++;

    ws->timer.handler = ngx_chat_ws_takeover;
    ws->timer.data = ws;
    ws->timer.log = c->log;
    ngx_post_event(&ws->timer, &ngx_posted_events);

    ngx_queue_insert_tail(&ngx_chat_ws_all, &ws->in_worker);
    ngx_chat_ws_count++;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "chat ws: upgraded");

    return ws;
}


static ngx_int_t
ngx_chat_ws_answer(ngx_http_request_t *r, ngx_chat_ws_handshake_t *hs)
{
    u_char      hash[20];
    ngx_int_t   rc;
    ngx_str_t   accept, digest, value;
    ngx_sha1_t  sha1;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, hs->key.data, hs->key.len);
    ngx_sha1_update(&sha1, NGX_CHAT_WS_GUID, sizeof(NGX_CHAT_WS_GUID) - 1);
    ngx_sha1_final(hash, &sha1);

    digest.data = hash;
    digest.len = sizeof(hash);

    accept.data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(20));
    if (accept.data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64(&accept, &digest);

    ngx_str_set(&value, "websocket");

    if (ngx_chat_http_header(r, "Upgrade", &value) != NGX_OK
        || ngx_chat_http_header(r, "Sec-WebSocket-Accept", &accept) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (hs->subprotocol) {
        ngx_str_set(&value, "chat.v1");

        if (ngx_chat_http_header(r, "Sec-WebSocket-Protocol", &value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* the header filter adds "Connection: upgrade" to a 101 */
    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_send_special(r, NGX_HTTP_FLUSH);

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/*
 * Runs after the location handler returned.  A 101 that the socket did
 * not take at once is written first, by the request's own write handler.
 */

static void
ngx_chat_ws_takeover(ngx_event_t *ev)
{
    ngx_chat_ws_t       *ws;
    ngx_http_request_t  *r;

    ws = ev->data;
    r = ws->request;

    if (r->out || (r->connection->buffered & NGX_HTTP_WRITE_BUFFERED)) {
        r->write_event_handler = ngx_chat_ws_header_written;
        r->read_event_handler = ngx_http_block_reading;
        return;
    }

    ngx_chat_ws_start(ws);
}


static void
ngx_chat_ws_header_written(ngx_http_request_t *r)
{
    ngx_chat_ws_t  *ws;

    ws = ngx_http_get_module_ctx(r, ngx_chat_module);

    if (ngx_http_output_filter(r, NULL) == NGX_ERROR
        || r->connection->error)
    {
        /* the 101 cannot reach the client: its connection is ours to end */
        ngx_http_free_request(r, 0);
        ws->request = NULL;
        ngx_chat_ws_destroy(ws);
        return;
    }

    if (r->out || (r->connection->buffered & NGX_HTTP_WRITE_BUFFERED)) {
        if (ngx_handle_write_event(r->connection->write, 0) != NGX_OK) {
            ngx_http_free_request(r, 0);
            ws->request = NULL;
            ngx_chat_ws_destroy(ws);
        }
        return;
    }

    ngx_chat_ws_start(ws);
}


/*
 * The bytes the client sent after its handshake are kept, the request is
 * freed, and the connection is the module's from now on.
 */

static void
ngx_chat_ws_start(ngx_chat_ws_t *ws)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ws->request;
    c = ws->connection;

    b = r->header_in;
    rc = NGX_OK;

    if (b && b->pos < b->last) {
        /* frames the client sent with its handshake, parsed on first read */
        rc = ngx_chat_ws_keep(&ws->reader, b->pos, b->last - b->pos);
        ws->fresh = 1;
    }

    ngx_http_free_request(r, 0);
    ws->request = NULL;

    ngx_chat_ws_release_http(c);

    c->data = ws;
    c->read->handler = ngx_chat_ws_read_handler;
    c->write->handler = ngx_chat_ws_write_handler;
    c->log->action = "serving a WebSocket";

    ws->timer.handler = ngx_chat_ws_timer_handler;
    ws->timer.cancelable = 1;
    ws->last_read = ngx_current_msec;
    ws->last_ping = ngx_current_msec;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "chat ws: connection taken over");

    if (rc != NGX_OK) {
        ngx_chat_ws_destroy(ws);
        return;
    }

    if (ws->closing) {
        /* closed before it started: the close frame goes, and it ends */
        ngx_add_timer(&ws->timer, NGX_CHAT_WS_CLOSE_WAIT);

    } else {
        ngx_chat_ws_arm(ws);
    }

    /* what was queued goes out, and what the client sent is read */

    ngx_post_event(c->write, &ngx_posted_events);

    if (ws->reader.partial_len || c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/*
 * What HTTP leaves on the connection and a WebSocket does not need: the
 * header buffer and the request's timers.  Large header buffers stay in
 * the HTTP connection until it closes (nginx keeps them for the next
 * request of a keep-alive connection, and only its own code frees them).
 */

static void
ngx_chat_ws_release_http(ngx_connection_t *c)
{
    c->destroyed = 0;

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
    u_char            *buf;
    size_t             have, size;
    ssize_t            n;
    ngx_uint_t         reads;
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = rev->data;
    ws = c->data;

    if (ws->fresh) {
        ws->fresh = 0;

        if (ngx_chat_ws_feed(&ws->reader, ws->reader.partial,
                             ws->reader.partial_len)
            != NGX_OK)
        {
            ngx_chat_ws_destroy(ws);
            return;
        }
    }

    for (reads = 0; reads < NGX_CHAT_WS_READS; reads++) {

        /*
         * the rest of an incomplete frame is read into its own buffer,
         * behind what came of it
         */

        have = ws->reader.partial_len;

        if (have) {
            buf = ws->reader.partial;
            size = ws->reader.partial_size;

        } else {
            buf = ngx_chat_ws_rbuf;
            size = ngx_chat_ws_rbuf_size;
        }

        n = c->recv(c, buf + have, size - have);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_chat_ws_destroy(ws);
            }
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            /* the client went away: no close frame can reach it */
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "chat ws: the client went away");
            ngx_chat_ws_destroy(ws);
            return;
        }

        ws->last_read = ngx_current_msec;

        if (ngx_chat_ws_feed(&ws->reader, buf, have + n) != NGX_OK) {
            ngx_chat_ws_destroy(ws);
            return;
        }
    }

    /*
     * others are served, and the sockets polled again, before this
     * connection reads more: a client sending without pause must not keep
     * the worker in its posted events
     */
    ngx_post_event(rev, &ngx_posted_next_events);
}


/* what the reader made of the client's bytes */

static void
ngx_chat_ws_frame(void *data, ngx_chat_ws_read_t *ev)
{
    u_char          echo[2];
    ngx_chat_ws_t  *ws = data;

    switch (ev->what) {

    case NGX_CHAT_WS_READ_MESSAGE:
        if (!ws->closing) {
            ngx_chat_metric_add(NGX_CHAT_M_WS_FRAMES_IN, 1);
            ngx_chat_metric_add(NGX_CHAT_M_WS_BYTES_IN, ev->len);
            ws->handlers->message(ws, ev->data, ev->len);
        }
        return;

    case NGX_CHAT_WS_READ_PING:
        if (!ws->closing) {
            ngx_chat_ws_control(ws, NGX_CHAT_WS_PONG, ev->data, ev->len);
        }
        return;

    case NGX_CHAT_WS_READ_PONG:
        return;

    case NGX_CHAT_WS_READ_CLOSE:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                       "chat ws: the client closed with %ui", ev->code);

        if (!ws->closing) {
            /* the answer echoes the code */
            echo[0] = (u_char) (ev->code >> 8);
            echo[1] = (u_char) ev->code;
            ngx_chat_ws_control(ws, NGX_CHAT_WS_CLOSE, echo,
                                ev->code ? 2 : 0);
            ws->closing = 1;
        }

        /* the connection ends once what is queued has gone */
        ws->close_received = 1;
        ngx_post_event(ws->connection->write, &ngx_posted_events);
        return;

    default: /* NGX_CHAT_WS_READ_FAIL */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                       "chat ws: protocol error %ui: %s", ev->code,
                       ev->reason);

        /* what the client sends after it is not frames to trust */
        ngx_chat_ws_close(ws, ev->code, ev->reason);
    }
}


static void
ngx_chat_ws_control(ngx_chat_ws_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_control(opcode, data, len);
    if (ev == NULL) {
        return;
    }

    ngx_chat_ws_send(ws, ev);
    ngx_chat_event_release(ev);
}


/*
 * Queues a frame.  A client whose queue outgrows chat_ws_send_queue is
 * too slow to keep: what it has not begun to receive is dropped, and it
 * is closed with 1013 to come back and resume.
 */

void
ngx_chat_ws_send(ngx_chat_ws_t *ws, ngx_chat_event_t *ev)
{
    ngx_uint_t          close;
    ngx_connection_t   *c;
    ngx_chat_ws_out_t  *out;

    c = ws->connection;
    close = ((ev->frame[0] & 0x0f) == NGX_CHAT_WS_CLOSE);

    if (ws->closing && !close) {
        return;
    }

    if (ws->out_bytes + ev->len > ws->conf->send_queue && !close) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "chat: client reads too slowly, closing it");
        ngx_chat_ws_drop_unsent(ws);
        ngx_chat_ws_close(ws, NGX_CHAT_WS_TRY_AGAIN, "too slow");
        return;
    }

    out = ngx_chat_ws_out_alloc();
    if (out == NULL) {
        return;
    }

    ngx_memzero(&out->buf, sizeof(ngx_buf_t));
    out->buf.pos = ev->frame;
    out->buf.last = ev->frame + ev->len;
    out->buf.memory = 1;

    /* TLS buffers what it is given until a flush */
    out->buf.flush = 1;

    out->cl.buf = &out->buf;
    out->cl.next = NULL;
    out->ev = ev;
    ev->refs++;

    *ws->out_last = &out->cl;
    ws->out_last = &out->cl.next;
    ws->out_bytes += ev->len;

    ngx_chat_metric_add(NGX_CHAT_M_WS_FRAMES_OUT, 1);
    ngx_chat_metric_add(NGX_CHAT_M_WS_BYTES_OUT, ev->len);

    if (ws->request == NULL && c->write->ready && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


ngx_int_t
ngx_chat_ws_send_text(ngx_chat_ws_t *ws, u_char *json, size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_create(json, len, 0);
    if (ev == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_ws_send(ws, ev);
    ngx_chat_event_release(ev);

    return NGX_OK;
}


/* bytes queued and not sent yet */

size_t
ngx_chat_ws_queued(ngx_chat_ws_t *ws)
{
    return ws->out_bytes;
}


/*
 * The close handshake starts: the close frame goes after what is queued.
 * The connection ends when the client answers it, or after a while.  A
 * close for a protocol error is not answered by a client that broke the
 * protocol: the end comes when the frame has gone (see the write handler).
 */

void
ngx_chat_ws_close(ngx_chat_ws_t *ws, ngx_uint_t code, const char *reason)
{
    u_char  buf[125];
    size_t  len;

    if (ws->closing) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                   "chat ws: closing with %ui: %s", code, reason);

    buf[0] = (u_char) (code >> 8);
    buf[1] = (u_char) code;
    len = ngx_min(ngx_strlen(reason), sizeof(buf) - 2);
    ngx_memcpy(buf + 2, reason, len);

    ngx_chat_ws_control(ws, NGX_CHAT_WS_CLOSE, buf, len + 2);
    ws->closing = 1;

    if (ws->request == NULL) {
        if (ws->timer.timer_set) {
            ngx_del_timer(&ws->timer);
        }

        ngx_add_timer(&ws->timer, NGX_CHAT_WS_CLOSE_WAIT);
    }
}


void
ngx_chat_ws_close_all(ngx_uint_t code, const char *reason)
{
    ngx_queue_t    *q;
    ngx_chat_ws_t  *ws;

    for (q = ngx_queue_head(&ngx_chat_ws_all);
         q != ngx_queue_sentinel(&ngx_chat_ws_all);
         q = ngx_queue_next(q))
    {
        ws = ngx_queue_data(q, ngx_chat_ws_t, in_worker);
        ngx_chat_ws_close(ws, code, reason);
    }
}


ngx_uint_t
ngx_chat_ws_connections(void)
{
    return ngx_chat_ws_count;
}


/* the upper layer's timer: its handler is called after that long */

void
ngx_chat_ws_wake(ngx_chat_ws_t *ws, ngx_msec_t after)
{
    ngx_msec_t  at;

    if (ws->closing) {
        return;
    }

    at = ngx_current_msec + ngx_max(after, 1);

    if (ws->wake && (ngx_msec_int_t) (ws->wake - at) <= 0) {
        return;
    }

    ws->wake = at;

    if (ws->request == NULL) {
        ngx_chat_ws_arm(ws);
    }
}


static void
ngx_chat_ws_write_handler(ngx_event_t *wev)
{
    ngx_int_t          rc;
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = wev->data;
    ws = c->data;

    rc = ngx_chat_ws_flush(ws);

    if (rc == NGX_ERROR) {
        ngx_chat_ws_destroy(ws);
        return;
    }

    if (ws->want_room && ws->out_bytes < ws->conf->send_queue / 4) {
        ws->want_room = 0;
        ws->handlers->drained(ws);
    }

    if (rc == NGX_AGAIN) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_chat_ws_destroy(ws);
        }
        return;
    }

    if (!ws->closing) {
        return;
    }

    if (ws->close_received) {
        /* both close frames went: the handshake is over */
        ngx_chat_ws_destroy(ws);
        return;
    }

    if (ws->reader.done && !ws->lingering) {
        /*
         * ours went to a client that broke the protocol: it is not waited
         * for.  Our side of the TCP connection ends now, and what the
         * client still sends is read and dropped until it ends its side,
         * so that no reset overtakes the close frame.
         */
        ws->lingering = 1;

        if (c->ssl || ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
            ngx_chat_ws_destroy(ws);
            return;
        }

        ngx_post_event(c->read, &ngx_posted_events);
    }
}


static ngx_int_t
ngx_chat_ws_flush(ngx_chat_ws_t *ws)
{
    size_t              left, before;
    ngx_uint_t          first;
    ngx_chain_t        *rest, *cl, *next;
    ngx_connection_t   *c;
    ngx_chat_ws_out_t  *out;

    c = ws->connection;

    if (ws->out == NULL && !(c->buffered & NGX_SSL_BUFFERED)) {
        return NGX_OK;
    }

    /* what is left of the first frame; the others are whole */
    left = ws->out ? (size_t) (ws->out->buf->last - ws->out->buf->pos) : 0;

    rest = c->send_chain(c, ws->out, 0);

    if (rest == NGX_CHAIN_ERROR) {
        c->error = 1;
        return NGX_ERROR;
    }

    first = 1;

    for (cl = ws->out; cl && cl != rest; cl = next) {
        next = cl->next;
        out = (ngx_chat_ws_out_t *) cl;

        ws->out_bytes -= first ? left : out->ev->len;
        first = 0;

        ngx_chat_ws_out_free(out);
    }

    if (rest) {
        /* a frame begun: its buffer tells how much of it went */
        before = first ? left : ((ngx_chat_ws_out_t *) rest)->ev->len;
        ws->out_bytes -= before - (rest->buf->last - rest->buf->pos);
    }

    ws->out = rest;

    if (rest == NULL) {
        ws->out_last = &ws->out;
    }

    if (rest || (c->buffered & NGX_SSL_BUFFERED)) {
        return NGX_AGAIN;
    }

    return NGX_OK;
}


/* keeps only a frame already begun: the byte stream must stay whole */

static void
ngx_chat_ws_drop_unsent(ngx_chat_ws_t *ws)
{
    ngx_chain_t        *cl, *next;
    ngx_chat_ws_out_t  *out;

    if (ws->out == NULL) {
        return;
    }

    out = (ngx_chat_ws_out_t *) ws->out;
    cl = ws->out;

    if (out->buf.pos != out->ev->frame) {
        /* the first frame has begun: it stays */
        cl = ws->out->next;
        ws->out->next = NULL;
        ws->out_last = &ws->out->next;
        ws->out_bytes = out->buf.last - out->buf.pos;

    } else {
        ws->out = NULL;
        ws->out_last = &ws->out;
        ws->out_bytes = 0;
    }

    for ( /* void */ ; cl; cl = next) {
        next = cl->next;
        ngx_chat_ws_out_free((ngx_chat_ws_out_t *) cl);
    }
}


/* heartbeat, idle timeout, the end of the close handshake, the wake */

static void
ngx_chat_ws_timer_handler(ngx_event_t *ev)
{
    ngx_msec_t           now;
    ngx_chat_ws_t       *ws;
    ngx_chat_ws_conf_t  *conf;

    ws = ev->data;
    conf = ws->conf;
    now = ngx_current_msec;

    if (ws->closing) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                       "chat ws: the close handshake timed out");
        ngx_chat_ws_destroy(ws);
        return;
    }

    if (now - ws->last_read >= conf->timeout) {
        ngx_chat_ws_close(ws, NGX_CHAT_WS_GOING_AWAY, "idle");
        return;
    }

    if (now - ws->last_ping >= conf->ping) {
        ngx_chat_ws_control(ws, NGX_CHAT_WS_PING, NULL, 0);
        ws->last_ping = now;

        if (ws->closing) {
            /* the ping filled the send queue: 1013, and its close timer */
            return;
        }
    }

    if (ws->wake && (ngx_msec_int_t) (now - ws->wake) >= 0) {
        ws->wake = 0;
        ws->handlers->timer(ws);

        if (ws->closing) {
            return;
        }
    }

    ngx_chat_ws_arm(ws);
}


/* the timer for the next ping, or the upper layer's wake if sooner */

static void
ngx_chat_ws_arm(ngx_chat_ws_t *ws)
{
    ngx_msec_t  next;

    next = ws->conf->ping - ngx_min(ws->conf->ping,
                                    ngx_current_msec - ws->last_ping);

    if (ws->wake) {
        next = ngx_min(next, (ngx_msec_t) ngx_max(
                   (ngx_msec_int_t) (ws->wake - ngx_current_msec), 0));
    }

    ngx_add_timer(&ws->timer, ngx_max(next, 1));
}


static void
ngx_chat_ws_destroy(ngx_chat_ws_t *ws)
{
    ngx_chain_t       *cl, *next;
    ngx_connection_t  *c;

    c = ws->connection;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "chat ws: destroyed");

    ws->handlers->closed(ws);

    for (cl = ws->out; cl; cl = next) {
        next = cl->next;
        ngx_chat_ws_out_free((ngx_chat_ws_out_t *) cl);
    }

    ws->out = NULL;

    ngx_chat_ws_reader_free(&ws->reader);

    if (ws->timer.timer_set) {
        ngx_del_timer(&ws->timer);
    }

    if (ws->timer.posted) {
        ngx_delete_posted_event(&ws->timer);
    }

    ngx_queue_remove(&ws->in_worker);
    ngx_chat_ws_count--;

    /* ws lives in the connection's pool: it goes with it */
    ngx_http_close_connection(c);
}


static ngx_chat_ws_out_t *
ngx_chat_ws_out_alloc(void)
{
    ngx_queue_t  *q;

    if (ngx_chat_ws_nfree_outs) {
        q = ngx_queue_head(&ngx_chat_ws_free_outs);
        ngx_queue_remove(q);
        ngx_chat_ws_nfree_outs--;
        return (ngx_chat_ws_out_t *) q;
    }

    return ngx_alloc(ngx_max(sizeof(ngx_chat_ws_out_t), sizeof(ngx_queue_t)),
                     ngx_cycle->log);
}


/* a node is kept for reuse as a queue link laid over its first bytes */

static void
ngx_chat_ws_out_free(ngx_chat_ws_out_t *out)
{
    ngx_chat_event_release(out->ev);

    if (ngx_chat_ws_nfree_outs < NGX_CHAT_WS_FREE_OUTS) {
        ngx_queue_insert_head(&ngx_chat_ws_free_outs, (ngx_queue_t *) out);
        ngx_chat_ws_nfree_outs++;
        return;
    }

    ngx_free(out);
}
