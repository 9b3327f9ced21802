
/*
 * ngx_chat: an HTTP/1.1 POST to a webhook, on nginx's events: the peer
 * is connected with ngx_event_connect_peer(), the request written and the
 * answer's status line and headers read, all within one deadline; then
 * the connection closes (Connection: close) and done() is called once with
 * the status (0: no answer) and the receiver's Retry-After.  The address
 * was resolved when the configuration was read, as proxy_pass does for a
 * name it is given.
 */


#include "ngx_chat.h"


#define NGX_CHAT_HOOK_ANSWER     2048    /* of the answer: status, headers */


struct ngx_chat_hook_s {
    ngx_peer_connection_t        peer;
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;
    ngx_buf_t                   *request;
    ngx_event_t                  deadline;
    u_char                       answer[NGX_CHAT_HOOK_ANSWER];
    size_t                       answer_len;
    ngx_chat_hook_done_pt        done;
    void                        *data;
};


static void ngx_chat_hook_write(ngx_event_t *wev);
static void ngx_chat_hook_read(ngx_event_t *rev);
static void ngx_chat_hook_timeout(ngx_event_t *ev);
static void ngx_chat_hook_idle(ngx_event_t *ev);
static void ngx_chat_hook_finish(ngx_chat_hook_t *hk, ngx_uint_t status,
    const char *error);
static ngx_uint_t ngx_chat_hook_status(ngx_chat_hook_t *hk, time_t *retry);


/*
 * Starts the POST; NGX_OK: done() will be called (never from here).  The
 * hook lives in pool, which the caller keeps until done().
 */

ngx_int_t
ngx_chat_hook_post(ngx_pool_t *pool, ngx_chat_webhook_conf_t *conf,
    ngx_str_t *headers, ngx_str_t *body, ngx_chat_hook_done_pt done,
    void *data)
{
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_chat_hook_t   *hk;
    ngx_connection_t  *c;

    hk = ngx_pcalloc(pool, sizeof(ngx_chat_hook_t));
    if (hk == NULL) {
        return NGX_ERROR;
    }

    b = ngx_create_temp_buf(pool, sizeof("POST  HTTP/1.1" CRLF "Host: " CRLF
                                         "Content-Length: " CRLF CRLF)
                                  + conf->uri.len + conf->host.len
                                  + NGX_OFF_T_LEN + headers->len + body->len
                                  + 128);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "POST %V HTTP/1.1" CRLF "Host: %V" CRLF
                          "Content-Type: application/json" CRLF
                          "Content-Length: %uz" CRLF
                          "User-Agent: ngx_chat/" NGX_CHAT_VERSION CRLF
                          "Connection: close" CRLF "%V" CRLF "%V",
                          &conf->uri, &conf->host, body->len, headers, body);

    hk->pool = pool;
    hk->log = pool->log;
    hk->request = b;
    hk->done = done;
    hk->data = data;

    hk->peer.sockaddr = conf->addr->sockaddr;
    hk->peer.socklen = conf->addr->socklen;
    hk->peer.name = &conf->addr->name;
    hk->peer.get = ngx_event_get_peer;
    hk->peer.log = pool->log;
    hk->peer.log_error = NGX_ERROR_ERR;
    hk->peer.tries = 1;

    rc = ngx_event_connect_peer(&hk->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (hk->peer.connection) {
            ngx_close_connection(hk->peer.connection);
        }
        return NGX_ERROR;
    }

    c = hk->peer.connection;
    c->data = hk;
    c->pool = pool;
    c->read->handler = ngx_chat_hook_read;
    c->write->handler = ngx_chat_hook_write;

    hk->deadline.handler = ngx_chat_hook_timeout;
    hk->deadline.data = hk;
    hk->deadline.log = pool->log;
    ngx_add_timer(&hk->deadline, conf->timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, hk->log, 0,
                   "chat hook: POST to %V, %uz bytes", hk->peer.name,
                   body->len);

    if (rc == NGX_OK) {
        /* connected at once (loopback): the write event is posted */
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_chat_hook_write(ngx_event_t *wev)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;
    ngx_chat_hook_t   *hk;

    c = wev->data;
    hk = c->data;
    b = hk->request;

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_chat_hook_finish(hk, 0, "cannot wait to write");
            }
            return;
        }

        if (n == NGX_ERROR) {
            ngx_chat_hook_finish(hk, 0, "cannot connect or write");
            return;
        }

        b->pos += n;
    }

    /* all written: the answer */
    wev->handler = ngx_chat_hook_idle;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_chat_hook_finish(hk, 0, "cannot wait to read");
        return;
    }

    if (c->read->ready) {
        ngx_chat_hook_read(c->read);
    }
}


static void
ngx_chat_hook_read(ngx_event_t *rev)
{
    ssize_t            n;
    ngx_connection_t  *c;
    ngx_chat_hook_t   *hk;

    c = rev->data;
    hk = c->data;

    if (hk->request->pos < hk->request->last) {
        /* the write event's handler when it fires before all is sent */
        ngx_chat_hook_write(c->write);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, hk->answer + hk->answer_len,
                    NGX_CHAT_HOOK_ANSWER - hk->answer_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_chat_hook_finish(hk, 0, "cannot wait to read");
            }
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            break;
        }

        hk->answer_len += n;

        /* the headers are all we need */
        if (ngx_strlcasestrn(hk->answer, hk->answer + hk->answer_len,
                         (u_char *) CRLF CRLF, 4 - 1)
            || hk->answer_len == NGX_CHAT_HOOK_ANSWER)
        {
            break;
        }
    }

    ngx_chat_hook_finish(hk, 1, NULL);
}


static void
ngx_chat_hook_idle(ngx_event_t *ev)
{
    /* the request is written: nothing more to write */
}


static void
ngx_chat_hook_timeout(ngx_event_t *ev)
{
    ngx_chat_hook_finish(ev->data, 0, "no answer in time");
}


/* the answer is read (answered) or not; the connection goes */

static void
ngx_chat_hook_finish(ngx_chat_hook_t *hk, ngx_uint_t answered,
    const char *error)
{
    time_t      retry;
    ngx_uint_t  status;

    if (hk->deadline.timer_set) {
        ngx_del_timer(&hk->deadline);
    }

    if (hk->peer.connection) {
        ngx_close_connection(hk->peer.connection);
        hk->peer.connection = NULL;
    }

    retry = 0;
    status = answered ? ngx_chat_hook_status(hk, &retry) : 0;

    if (answered && status == 0) {
        error = "the answer is not HTTP";
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, hk->log, 0,
                   "chat hook: %V answered %ui (%s)", hk->peer.name, status,
                   error ? error : "");

    hk->done(hk->data, status, retry, error);
}


/* "HTTP/1.1 200 ..." and a Retry-After in seconds among the headers */

static ngx_uint_t
ngx_chat_hook_status(ngx_chat_hook_t *hk, time_t *retry)
{
    u_char     *p, *last, *eol;
    ngx_int_t   n;

    p = hk->answer;
    last = hk->answer + hk->answer_len;

    if (last - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return 0;
    }

    n = ngx_atoi(p + 9, 3);

    if (n < 100 || n > 599) {
        return 0;
    }

    for ( ;; ) {
        eol = ngx_strlcasestrn(p, last, (u_char *) CRLF, 2 - 1);
        if (eol == NULL) {
            break;
        }

        p = eol + 2;

        if (last - p > 12
            && ngx_strncasecmp(p, (u_char *) "Retry-After:", 12) == 0)
        {
            eol = ngx_strlcasestrn(p, last, (u_char *) CRLF, 2 - 1);
            p += 12;

            while (p < last && *p == ' ') {
                p++;
            }

            if (eol) {
                *retry = ngx_atotm(p, eol - p);
                if (*retry == NGX_ERROR) {
                    *retry = 0;
                }
            }
        }
    }

    return (ngx_uint_t) n;
}
