
/*
 * ngx_chat: an HTTP/1.1 POST to a webhook, on nginx's events: the peer
 * is connected with ngx_event_connect_peer(), the request written and the
 * answer's status line and headers read, all within one deadline; then
 * the connection closes (Connection: close) and done() is called once with
 * the status (0: no answer) and the receiver's Retry-After.  The address
 * was resolved when the configuration was read, as proxy_pass does for a
 * name it is given.
 *
 * To an https receiver the request goes after a TLS handshake (ngx_ssl,
 * as upstream's), and only when the receiver's certificate is trusted and
 * bears the URL's host: a name (SNI is sent), or an address.
 */


#include "ngx_chat.h"


#define NGX_CHAT_HOOK_ANSWER     2048    /* of the answer: status, headers */


struct ngx_chat_hook_s {
    ngx_peer_connection_t        peer;
    ngx_chat_hook_target_t      *to;
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
#if (NGX_SSL)
static void ngx_chat_hook_ssl_start(ngx_chat_hook_t *hk);
static void ngx_chat_hook_ssl_done(ngx_connection_t *c);
static const char *ngx_chat_hook_ssl_check(ngx_chat_hook_t *hk);
#endif


/*
 * Starts the POST; NGX_OK: done() will be called (never from here).  The
 * hook lives in pool, which the caller keeps until done().
 */

ngx_int_t
ngx_chat_hook_post(ngx_pool_t *pool, ngx_chat_hook_target_t *to,
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
                                  + to->uri.len + to->host.len
                                  + NGX_OFF_T_LEN + headers->len + body->len
                                  + 128);
    if (b == NULL) {
        return NGX_ERROR;
    }

    /* headers: the caller's, Content-Type among them */
    b->last = ngx_sprintf(b->last, "POST %V HTTP/1.1" CRLF "Host: %V" CRLF
                          "Content-Length: %uz" CRLF
                          "User-Agent: ngx_chat/" NGX_CHAT_VERSION CRLF
                          "Connection: close" CRLF "%V" CRLF "%V",
                          &to->uri, &to->host, body->len, headers, body);

    hk->to = to;
    hk->pool = pool;
    hk->log = pool->log;
    hk->request = b;
    hk->done = done;
    hk->data = data;

    hk->peer.sockaddr = to->addr->sockaddr;
    hk->peer.socklen = to->addr->socklen;
    hk->peer.name = &to->addr->name;
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
    ngx_add_timer(&hk->deadline, to->timeout);

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

#if (NGX_SSL)
    if (hk->to->ssl && c->ssl == NULL) {
        /* connected: the handshake comes first */
        ngx_chat_hook_ssl_start(hk);
        return;
    }
#endif

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

    if (hk->request->pos < hk->request->last
#if (NGX_SSL)
        || (hk->to->ssl && c->ssl == NULL)
#endif
       )
    {
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
#if (NGX_SSL)
        if (hk->peer.connection->ssl) {
            /* Connection: close; nothing is waited for */
            hk->peer.connection->ssl->no_wait_shutdown = 1;
            hk->peer.connection->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(hk->peer.connection);
        }
#endif
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


#if (NGX_SSL)

static void
ngx_chat_hook_ssl_start(ngx_chat_hook_t *hk)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = hk->peer.connection;

    if (ngx_ssl_create_connection(hk->to->ssl, c, NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_chat_hook_finish(hk, 0, "cannot start TLS");
        return;
    }

    /* RFC 6066: no address as a server name */
    if (!hk->to->ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) hk->to->name.data)
           != 1)
    {
        ngx_chat_hook_finish(hk, 0, "cannot name the receiver to TLS");
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, hk->log, 0,
                   "chat hook: TLS handshake with %V", hk->peer.name);

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_chat_hook_ssl_done;
        return;
    }

    ngx_chat_hook_ssl_done(c);
}


static void
ngx_chat_hook_ssl_done(ngx_connection_t *c)
{
    const char       *error;
    ngx_chat_hook_t  *hk;

    hk = c->data;

    if (!c->ssl->handshaked) {
        ngx_chat_hook_finish(hk, 0, "the TLS handshake failed");
        return;
    }

    error = ngx_chat_hook_ssl_check(hk);

    if (error) {
        ngx_chat_hook_finish(hk, 0, error);
        return;
    }

    c->read->handler = ngx_chat_hook_read;
    c->write->handler = ngx_chat_hook_write;

    ngx_chat_hook_write(c->write);
}


/* the certificate is trusted and is the URL host's, or the error */

static const char *
ngx_chat_hook_ssl_check(ngx_chat_hook_t *hk)
{
    int                 rc;
    long                verified;
    X509               *cert;
    ngx_connection_t   *c;

    c = hk->peer.connection;

    cert = SSL_get1_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return "the receiver shows no certificate";
    }

    verified = SSL_get_verify_result(c->ssl->connection);

    if (verified != X509_V_OK) {
        X509_free(cert);
        ngx_log_error(NGX_LOG_ERR, hk->log, 0,
                      "chat hook: the certificate of %V is not trusted: "
                      "(%l) %s", hk->peer.name, verified,
                      X509_verify_cert_error_string(verified));
        return "the receiver's certificate is not trusted";
    }

    if (hk->to->ip) {
        rc = X509_check_ip_asc(cert, (char *) hk->to->name.data, 0);

    } else {
        rc = X509_check_host(cert, (char *) hk->to->name.data,
                             hk->to->name.len, 0, NULL);
    }

    X509_free(cert);

    if (rc != 1) {
        ngx_log_error(NGX_LOG_ERR, hk->log, 0,
                      "chat hook: the certificate of %V is not for \"%V\"",
                      hk->peer.name, &hk->to->name);
        return "the receiver's certificate is not for its host";
    }

    return NULL;
}

#endif


/*
 * A target read from the configuration: u has been parsed (and its name
 * resolved) by ngx_parse_url(); the name the certificate must bear is
 * kept NUL-terminated for OpenSSL.
 */

char *
ngx_chat_hook_target(ngx_conf_t *cf, ngx_chat_hook_target_t *to,
    ngx_url_t *u, ngx_uint_t https)
{
    to->addr = &u->addrs[0];
    to->uri = u->uri;

    if (to->uri.len == 0) {
        ngx_str_set(&to->uri, "/");
    }

    /* Host: with the port where it is not the scheme's */
    if (u->no_port || u->port == (https ? 443 : 80)) {
        to->host = u->host;

    } else {
        to->host.data = ngx_pnalloc(cf->pool, u->host.len + 1 + NGX_INT_T_LEN);
        if (to->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        to->host.len = ngx_sprintf(to->host.data, "%V:%d", &u->host, u->port)
                       - to->host.data;
    }

    return ngx_chat_hook_name(cf->pool, to, &u->host) == NGX_OK
           ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/* the name of the host as TLS checks it: an IPv6 literal without [] */

ngx_int_t
ngx_chat_hook_name(ngx_pool_t *pool, ngx_chat_hook_target_t *to,
    ngx_str_t *host)
{
    ngx_uint_t  bracketed;

    bracketed = (host->len > 2 && host->data[0] == '[');

    to->name.len = bracketed ? host->len - 2 : host->len;
    to->name.data = ngx_pnalloc(pool, to->name.len + 1);
    if (to->name.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(to->name.data, host->data + bracketed,
                       to->name.len + 1);

    to->ip = bracketed
             || ngx_inet_addr(to->name.data, to->name.len) != INADDR_NONE;

    return NGX_OK;
}


/*
 * The TLS of https targets: 1.2 or 1.3, the certificate checked against
 * ca (a PEM file of trusted certificates) or else the system's store, and
 * against the target's host after the handshake.
 */

#if (NGX_SSL)

char *
ngx_chat_hook_ssl(ngx_conf_t *cf, ngx_ssl_t **sslp, ngx_str_t *ca)
{
    ngx_ssl_t           *ssl;
    ngx_pool_cleanup_t  *cln;

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    *sslp = ssl;

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (ca->len) {
        if (ngx_ssl_trusted_certificate(cf, ssl, ca, 5) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (SSL_CTX_set_default_verify_paths(ssl->ctx) != 1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "the system's trusted certificates cannot be read");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

#endif
