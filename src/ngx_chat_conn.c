
/*
 * ngx_chat: nginx connections around sockets that a client library owns.
 *
 * libpq and hiredis open, read, write and close their sockets themselves;
 * nginx only has to tell them when a socket is ready.  These sockets are
 * registered level-triggered: neither library reads until EAGAIN, so an
 * edge-triggered event could be lost with bytes still in the kernel.  Write
 * interest is added only while a library has bytes it could not send, or a
 * writable socket would wake the worker on every turn of the loop.
 */


#include "ngx_chat.h"


ngx_connection_t *
ngx_chat_conn_wrap(ngx_socket_t fd, void *data, ngx_event_handler_pt read,
    ngx_event_handler_pt write, ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = read;
    c->write->handler = write;

    /* the library closes the socket: ngx_close_connection() must not */
    c->shared = 1;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_close_connection(c);
        return NULL;
    }

    return c;
}


ngx_int_t
ngx_chat_conn_want_write(ngx_connection_t *c, ngx_uint_t want)
{
    if (want && !c->write->active) {
        return ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!want && c->write->active) {
        return ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return NGX_OK;
}


/*
 * The socket leaves epoll here, as ngx_close_connection() skips that for a
 * shared connection.  When the library has closed the socket already (libpq
 * does when the server goes away) its number may belong to another
 * connection by now: epoll forgot it with the close, and is left alone.
 */

void
ngx_chat_conn_release(ngx_connection_t *c, ngx_uint_t closed)
{
    ngx_uint_t  flags;

    flags = closed ? NGX_CLOSE_EVENT : 0;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    ngx_close_connection(c);
}
