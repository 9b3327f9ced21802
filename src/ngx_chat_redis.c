
/*
 * ngx_chat: Redis, the bus between workers and hosts.
 *
 * Each worker keeps two hiredis asynchronous contexts, driven by nginx
 * events through the adapter below: one publishes the events that actions
 * produce, one subscribes to the channels this worker's connections need
 * (a context in subscribe mode takes no other command).  Both reconnect
 * after a growing pause when Redis goes away; publications made meanwhile
 * wait in a bounded queue.  Postgres is the source of truth: what Redis
 * loses, the fan-out reads back from there (ngx_chat_fanout.c).
 *
 * This file knows nothing of what it carries: messages, confirmations
 * and the links' coming and going are reported through the handlers the
 * module gives at init (ngx_chat_module.c wires them to the fan-out and
 * to presence).
 *
 * hiredis owns the sockets: the adapter never closes one, and a context
 * is never touched after hiredis may have freed it (the disconnect
 * callback clears the link's pointer first).
 *
 * hiredis 0.14 has no timeouts: a Redis that stops answering without
 * closing the connection (stopped, or a half-open TCP connection) would
 * hold a link forever.  Each link counts the replies it is owed; when the
 * oldest has been owed for NGX_CHAT_REDIS_REPLY_TIME with nothing heard
 * meanwhile, the link is dropped from its timer (never from inside a
 * hiredis callback) and connected again after the usual pause.
 */


#include "ngx_chat.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>
#include <sys/ioctl.h>


#define NGX_CHAT_REDIS_BACKOFF_MIN   100
#define NGX_CHAT_REDIS_BACKOFF_MAX   2000
#define NGX_CHAT_REDIS_CONNECT_TIME  3000
#define NGX_CHAT_REDIS_REPLY_TIME    5000
#define NGX_CHAT_REDIS_QUEUE_MAX     (64 * 1024 * 1024)
#define NGX_CHAT_REDIS_READS         64      /* 1 MiB a turn, at most */


typedef struct {
    redisAsyncContext           *ac;
    ngx_connection_t            *c;
    ngx_event_t                  timer;      /* reconnect; connect timeout;
                                                the replies' deadline */
    ngx_msec_t                   backoff;
    ngx_uint_t                   owed;       /* replies to come */
    ngx_msec_t                   heard;      /* the last reply, or the
                                                command that began a wait */
    const char                  *name;
    unsigned                     subscriber:1;
    unsigned                     connected:1;
} ngx_chat_redis_link_t;


typedef struct {
    ngx_queue_t                  queue;
    size_t                       channel_len;
    size_t                       len;
    u_char                       data[1];    /* channel, then message */
} ngx_chat_redis_pending_t;


typedef struct {
    ngx_chat_redis_reply_pt      handler;
    void                        *data;
} ngx_chat_redis_waiter_t;


typedef struct {
    ngx_chat_redis_conf_t       *conf;
    const ngx_chat_redis_handlers_t  *handlers;
    ngx_log_t                   *log;
    ngx_chat_redis_link_t        pub;
    ngx_chat_redis_link_t        sub;
    ngx_queue_t                  pending;
    size_t                       pending_bytes;
} ngx_chat_redis_t;


static void ngx_chat_redis_connect(ngx_chat_redis_link_t *link);
static void ngx_chat_redis_retry(ngx_chat_redis_link_t *link);
static void ngx_chat_redis_lost(ngx_chat_redis_link_t *link);
static void ngx_chat_redis_sent(ngx_chat_redis_link_t *link);
static void ngx_chat_redis_heard(ngx_chat_redis_link_t *link,
    ngx_uint_t answer);
static void ngx_chat_redis_overdue(ngx_chat_redis_link_t *link);
static void ngx_chat_redis_timer_handler(ngx_event_t *ev);
static void ngx_chat_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_on_subscribed(redisAsyncContext *ac, void *r,
    void *data);
static void ngx_chat_redis_flush_pending(void);
static ngx_int_t ngx_chat_redis_send_publish(u_char *channel,
    size_t channel_len, u_char *msg, size_t len);
static void ngx_chat_redis_on_reply(redisAsyncContext *ac, void *r,
    void *data);
static void ngx_chat_redis_on_done(redisAsyncContext *ac, void *r,
    void *data);
static void ngx_chat_redis_read_handler(ngx_event_t *ev);
static void ngx_chat_redis_write_handler(ngx_event_t *ev);
static void ngx_chat_redis_add_read(void *data);
static void ngx_chat_redis_del_read(void *data);
static void ngx_chat_redis_add_write(void *data);
static void ngx_chat_redis_del_write(void *data);
static void ngx_chat_redis_cleanup(void *data);


static ngx_chat_redis_t  ngx_chat_redis;


ngx_int_t
ngx_chat_redis_init(ngx_cycle_t *cycle, ngx_chat_redis_conf_t *conf,
    const ngx_chat_redis_handlers_t *handlers)
{
    ngx_chat_redis_t  *rd = &ngx_chat_redis;

    rd->conf = conf;
    rd->handlers = handlers;
    rd->log = cycle->log;
    ngx_queue_init(&rd->pending);

    rd->pub.name = "publishing";
    rd->sub.name = "subscribing";
    rd->sub.subscriber = 1;

    ngx_chat_redis_connect(&rd->pub);
    ngx_chat_redis_connect(&rd->sub);

    return NGX_OK;
}


void
ngx_chat_redis_done(void)
{
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    redisAsyncContext         *ac;
    ngx_chat_redis_link_t     *links[2];
    ngx_chat_redis_pending_t  *p;

    links[0] = &ngx_chat_redis.pub;
    links[1] = &ngx_chat_redis.sub;

    for (i = 0; i < 2; i++) {
        if (links[i]->timer.timer_set) {
            ngx_del_timer(&links[i]->timer);
        }

        ac = links[i]->ac;

        if (ac) {
            /* the disconnect callback sees the link closed on purpose */
            links[i]->ac = NULL;
            links[i]->connected = 0;
            redisAsyncFree(ac);
        }
    }

    while (!ngx_queue_empty(&ngx_chat_redis.pending)) {
        q = ngx_queue_head(&ngx_chat_redis.pending);
        ngx_queue_remove(q);
        p = ngx_queue_data(q, ngx_chat_redis_pending_t, queue);
        ngx_free(p);
    }
}


/*
 * Whether ngx_chat_redis_command() can send now: it asks about the
 * publishing connection, where commands go.  The subscribing one tells
 * the fan-out itself when it comes and goes.
 */

ngx_uint_t
ngx_chat_redis_up(void)
{
    return ngx_chat_redis.pub.connected;
}


/* whether each link is up, for GET health */

void
ngx_chat_redis_links(ngx_uint_t *publisher, ngx_uint_t *subscriber)
{
    *publisher = ngx_chat_redis.pub.connected;
    *subscriber = ngx_chat_redis.sub.connected;
}


/*
 * Bytes that wait for Redis, for the metrics: the queue of publishes
 * kept while it is away, and what the publishing connection has not
 * written yet (a Redis that reads slowly).
 */

size_t
ngx_chat_redis_pending(void)
{
    size_t              n;
    redisAsyncContext  *ac;

    n = ngx_chat_redis.pending_bytes;
    ac = ngx_chat_redis.pub.ac;

    if (ac && ac->c.obuf) {
        n += sdslen(ac->c.obuf);
    }

    return n;
}


/*
 * PUBLISH <prefix><channel> <msg>; queued while Redis is away.  What waits
 * goes first, so that events of a channel keep their order.
 */

void
ngx_chat_redis_publish(u_char *channel, size_t channel_len, u_char *msg,
    size_t len)
{
    ngx_chat_redis_t          *rd = &ngx_chat_redis;
    ngx_chat_redis_pending_t  *p;

    if (rd->pub.connected) {
        ngx_chat_redis_flush_pending();

        if (ngx_queue_empty(&rd->pending)
            && ngx_chat_redis_send_publish(channel, channel_len, msg, len)
               == NGX_OK)
        {
            return;
        }
    }

    if (rd->pending_bytes + len > NGX_CHAT_REDIS_QUEUE_MAX) {
        /* readers find the event in Postgres at their next gap check */
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "chat: redis is away and its queue is full, "
                      "an event on \"%*s\" is left to Postgres",
                      channel_len, channel);
        return;
    }

    p = ngx_alloc(sizeof(ngx_chat_redis_pending_t) + channel_len + len,
                  rd->log);
    if (p == NULL) {
        return;
    }

    p->channel_len = channel_len;
    p->len = len;
    ngx_memcpy(ngx_cpymem(p->data, channel, channel_len), msg, len);

    ngx_queue_insert_tail(&rd->pending, &p->queue);
    rd->pending_bytes += len;
}


/*
 * Any other command, on the publishing connection.  NGX_OK: the handler
 * (if any) is called with the reply, or with NULL when the connection
 * goes first.  NGX_DECLINED: Redis is away, nothing was sent.
 */

ngx_int_t
ngx_chat_redis_command(int argc, const char **argv, const size_t *lens,
    ngx_chat_redis_reply_pt handler, void *data)
{
    ngx_chat_redis_t         *rd = &ngx_chat_redis;
    ngx_chat_redis_waiter_t  *w;

    if (!rd->pub.connected) {
        return NGX_DECLINED;
    }

    if (handler == NULL) {
        if (redisAsyncCommandArgv(rd->pub.ac, ngx_chat_redis_on_done, NULL,
                                  argc, argv, lens)
            != REDIS_OK)
        {
            return NGX_DECLINED;
        }

        ngx_chat_redis_sent(&rd->pub);
        return NGX_OK;
    }

    w = ngx_alloc(sizeof(ngx_chat_redis_waiter_t), rd->log);
    if (w == NULL) {
        return NGX_DECLINED;
    }

    w->handler = handler;
    w->data = data;

    if (redisAsyncCommandArgv(rd->pub.ac, ngx_chat_redis_on_reply, w, argc,
                              argv, lens)
        != REDIS_OK)
    {
        ngx_free(w);
        return NGX_DECLINED;
    }

    ngx_chat_redis_sent(&rd->pub);

    return NGX_OK;
}


static void
ngx_chat_redis_on_reply(redisAsyncContext *ac, void *r, void *data)
{
    ngx_chat_redis_waiter_t  *w = data;

    if (r) {
        ngx_chat_redis_heard(ac->data, 1);
    }

    w->handler(r, w->data);
    ngx_free(w);
}


/* the reply to a command nobody waits for: only the count goes down */

static void
ngx_chat_redis_on_done(redisAsyncContext *ac, void *r, void *data)
{
    if (r) {
        ngx_chat_redis_heard(ac->data, 1);
    }
}


/*
 * SUBSCRIBE or UNSUBSCRIBE <prefix><channel> ... in one command: each
 * channel is confirmed by a reply of its own, which goes to the handlers.
 */

ngx_int_t
ngx_chat_redis_subscribe(ngx_str_t *channels, ngx_uint_t n, ngx_uint_t on)
{
    u_char            *p, *buf;
    size_t            *lens, size;
    ngx_int_t          rc;
    ngx_uint_t         i;
    const char       **argv;
    ngx_chat_redis_t  *rd = &ngx_chat_redis;

    if (!rd->sub.connected) {
        return NGX_DECLINED;
    }

    size = (n + 1) * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < n; i++) {
        size += rd->conf->prefix.len + channels[i].len;
    }

    argv = ngx_alloc(size, rd->log);
    if (argv == NULL) {
        return NGX_ERROR;
    }

    lens = (size_t *) (argv + n + 1);
    buf = (u_char *) (lens + n + 1);

    argv[0] = on ? "SUBSCRIBE" : "UNSUBSCRIBE";
    lens[0] = ngx_strlen(argv[0]);

    for (i = 0, p = buf; i < n; i++) {
        argv[i + 1] = (char *) p;
        p = ngx_cpymem(p, rd->conf->prefix.data, rd->conf->prefix.len);
        p = ngx_cpymem(p, channels[i].data, channels[i].len);
        lens[i + 1] = p - (u_char *) argv[i + 1];
    }

    rc = redisAsyncCommandArgv(rd->sub.ac, ngx_chat_redis_on_subscribed, NULL,
                               (int) n + 1, argv, lens);

    /* hiredis has copied the command */
    ngx_free(argv);

    if (rc != REDIS_OK) {
        return NGX_ERROR;
    }

    /* one confirmation per channel */
    for (i = 0; i < n; i++) {
        ngx_chat_redis_sent(&rd->sub);
    }

    return NGX_OK;
}


static void
ngx_chat_redis_flush_pending(void)
{
    ngx_queue_t               *q;
    ngx_chat_redis_t          *rd = &ngx_chat_redis;
    ngx_chat_redis_pending_t  *p;

    while (rd->pub.connected && !ngx_queue_empty(&rd->pending)) {
        q = ngx_queue_head(&rd->pending);
        p = ngx_queue_data(q, ngx_chat_redis_pending_t, queue);

        if (ngx_chat_redis_send_publish(p->data, p->channel_len,
                                        p->data + p->channel_len, p->len)
            != NGX_OK)
        {
            return;
        }

        ngx_queue_remove(q);
        rd->pending_bytes -= p->len;
        ngx_free(p);
    }
}


static ngx_int_t
ngx_chat_redis_send_publish(u_char *channel, size_t channel_len, u_char *msg,
    size_t len)
{
    ngx_chat_redis_t  *rd = &ngx_chat_redis;

    if (redisAsyncCommand(rd->pub.ac, ngx_chat_redis_on_done, NULL,
                          "PUBLISH %b%b %b",
                          rd->conf->prefix.data, rd->conf->prefix.len,
                          channel, channel_len, msg, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_chat_redis_sent(&rd->pub);

    return NGX_OK;
}


static void
ngx_chat_redis_connect(ngx_chat_redis_link_t *link)
{
    redisAsyncContext      *ac;
    ngx_chat_redis_conf_t  *conf;

    conf = ngx_chat_redis.conf;

    link->timer.handler = ngx_chat_redis_timer_handler;
    link->timer.data = link;
    link->timer.log = ngx_chat_redis.log;
    link->timer.cancelable = 1;

    /* an address, checked at load: hiredis does not resolve it */
    ac = conf->port ? redisAsyncConnect((char *) conf->host.data,
                                        (int) conf->port)
                    : redisAsyncConnectUnix((char *) conf->host.data);

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_redis.log, 0,
                      "chat: redis %s connect to \"%V\" failed: %s",
                      link->name, &conf->host,
                      ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_chat_redis_retry(link);
        return;
    }

    link->c = ngx_chat_conn_wrap(ac->c.fd, link, ngx_chat_redis_read_handler,
                                 ngx_chat_redis_write_handler,
                                 ngx_chat_redis.log);
    if (link->c == NULL) {
        redisAsyncFree(ac);
        ngx_chat_redis_retry(link);
        return;
    }

    ac->data = link;
    ac->ev.data = link;
    ac->ev.addRead = ngx_chat_redis_add_read;
    ac->ev.delRead = ngx_chat_redis_del_read;
    ac->ev.addWrite = ngx_chat_redis_add_write;
    ac->ev.delWrite = ngx_chat_redis_del_write;
    ac->ev.cleanup = ngx_chat_redis_cleanup;

    link->ac = ac;

    /* this asks for the write event that tells the connect is done */
    redisAsyncSetConnectCallback(ac, ngx_chat_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_chat_redis_on_disconnect);

    ngx_add_timer(&link->timer, NGX_CHAT_REDIS_CONNECT_TIME);
}


static void
ngx_chat_redis_retry(ngx_chat_redis_link_t *link)
{
    link->backoff = link->backoff ? ngx_min(link->backoff * 2,
                                            NGX_CHAT_REDIS_BACKOFF_MAX)
                                  : NGX_CHAT_REDIS_BACKOFF_MIN;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (!ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&link->timer, link->backoff);
    }
}


static void
ngx_chat_redis_timer_handler(ngx_event_t *ev)
{
    redisAsyncContext      *ac;
    ngx_chat_redis_link_t  *link = ev->data;

    if (link->ac == NULL) {
        ngx_chat_redis_connect(link);
        return;
    }

    if (link->connected) {
        ngx_chat_redis_overdue(link);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_chat_redis.log, 0,
                  "chat: redis %s connect timed out", link->name);
    ac = link->ac;
    link->ac = NULL;
    redisAsyncFree(ac);
    ngx_chat_redis_retry(link);
}


/* a command went out: a reply is owed, and the deadline runs */

static void
ngx_chat_redis_sent(ngx_chat_redis_link_t *link)
{
    if (link->owed++ == 0) {
        link->heard = ngx_current_msec;
    }

    if (!link->timer.timer_set) {
        ngx_add_timer(&link->timer, NGX_CHAT_REDIS_REPLY_TIME);
    }
}


/*
 * Redis said something on the link: it is alive.  An answer settles the
 * oldest reply owed (replies come in the order of the commands).
 */

static void
ngx_chat_redis_heard(ngx_chat_redis_link_t *link, ngx_uint_t answer)
{
    link->heard = ngx_current_msec;

    if (answer && link->owed) {
        link->owed--;
    }
}


/*
 * The deadline's timer: it is not moved on every reply, but looked at
 * when it fires.  Nothing heard for NGX_CHAT_REDIS_REPLY_TIME while a
 * reply is owed drops the link: hiredis calls every pending callback with
 * no reply, and the link connects again after the usual pause.
 */

static void
ngx_chat_redis_overdue(ngx_chat_redis_link_t *link)
{
    redisAsyncContext  *ac;
    ngx_msec_int_t      silent;

    if (link->owed == 0) {
        /* the next command sets the timer again */
        return;
    }

    silent = (ngx_msec_int_t) (ngx_current_msec - link->heard);

    if (silent < NGX_CHAT_REDIS_REPLY_TIME) {
        ngx_add_timer(&link->timer, NGX_CHAT_REDIS_REPLY_TIME - silent);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_chat_redis.log, 0,
                  "chat: redis %s connection has owed %ui replies for "
                  "%M ms, it is dropped", link->name, link->owed,
                  (ngx_msec_t) silent);

    ac = link->ac;

    /* the disconnect callback sees a link closed on purpose */
    link->ac = NULL;
    link->connected = 0;

    /* commands from the callbacks that run here are refused: not connected */
    redisAsyncFree(ac);

    ngx_chat_redis_lost(link);
}


static void
ngx_chat_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_chat_redis_link_t  *link = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns */
        ngx_log_error(NGX_LOG_ERR, ngx_chat_redis.log, 0,
                      "chat: redis %s connect failed: %s", link->name,
                      ac->errstr);
        link->ac = NULL;
        ngx_chat_redis_retry(link);
        return;
    }

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (link->backoff) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_chat_redis.log, 0,
                      "chat: redis %s connection is back", link->name);
    }

    link->backoff = 0;
    link->connected = 1;
    link->owed = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_redis.log, 0,
                   "chat redis: %s link up", link->name);

    if (link->subscriber) {
        ngx_chat_redis.handlers->subscriber(1);

    } else {
        ngx_chat_redis_flush_pending();
        ngx_chat_redis.handlers->publisher_up();
    }
}


static void
ngx_chat_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_chat_redis_link_t  *link = ac->data;

    if (link->ac == NULL) {
        /* closed on purpose, by ngx_chat_redis_done() */
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_chat_redis.log, 0,
                  "chat: redis %s connection lost: %s", link->name,
                  ac->err ? ac->errstr : "closed");

    link->ac = NULL;
    link->connected = 0;

    ngx_chat_redis_lost(link);
}


/* the link is down: another connection after a pause */

static void
ngx_chat_redis_lost(ngx_chat_redis_link_t *link)
{
    link->owed = 0;

    /* it will be connected again */
    ngx_chat_metric_add(NGX_CHAT_M_REDIS_RECONNECTS, 1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_chat_redis.log, 0,
                   "chat redis: %s link down, retry in %M ms", link->name,
                   link->backoff ? ngx_min(link->backoff * 2,
                                           NGX_CHAT_REDIS_BACKOFF_MAX)
                                 : NGX_CHAT_REDIS_BACKOFF_MIN);

    ngx_chat_redis_retry(link);

    if (link->subscriber) {
        ngx_chat_redis.handlers->subscriber(0);
    }
}


/*
 * Every subscription of the subscribing context lands here: messages, and
 * the replies that confirm a SUBSCRIBE or an UNSUBSCRIBE.  A dropped
 * connection calls it once per channel with no reply.
 */

static void
ngx_chat_redis_on_subscribed(redisAsyncContext *ac, void *r, void *data)
{
    size_t       skip;
    redisReply  *reply, *kind, *channel;

    reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3)
    {
        return;
    }

    kind = reply->element[0];
    channel = reply->element[1];
    skip = ngx_chat_redis.conf->prefix.len;

    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING
        || (size_t) channel->len < skip)
    {
        return;
    }

    if (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0) {
        ngx_chat_redis_heard(ac->data, 0);

        if (reply->element[2]->type == REDIS_REPLY_STRING) {
            ngx_chat_redis.handlers->message((u_char *) channel->str + skip,
                                             channel->len - skip,
                                             (u_char *) reply->element[2]->str,
                                             reply->element[2]->len);
        }
        return;
    }

    /* a confirmation settles what ngx_chat_redis_subscribe() sent */

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {
        ngx_chat_redis_heard(ac->data, 1);
        ngx_chat_redis.handlers->confirmed((u_char *) channel->str + skip,
                                           channel->len - skip, 1);
        return;
    }

    if (kind->len == 11 && ngx_strncmp(kind->str, "unsubscribe", 11) == 0) {
        ngx_chat_redis_heard(ac->data, 1);
        ngx_chat_redis.handlers->confirmed((u_char *) channel->str + skip,
                                           channel->len - skip, 0);
    }
}


/* the adapter: hiredis asks, nginx's events answer */

/*
 * hiredis reads at most 16 KiB a call.  The subscribing link is read
 * until the socket is empty (or NGX_CHAT_REDIS_READS calls): under a burst
 * of events Redis fills its output buffer for this link faster than one
 * read a turn of the event loop takes it away, and drops the link past
 * client-output-buffer-limit pubsub.  The link may go while a callback
 * runs: the loop stops then.
 */

static void
ngx_chat_redis_read_handler(ngx_event_t *ev)
{
    int                     n;
    ngx_uint_t              reads;
    ngx_socket_t            fd;
    ngx_connection_t       *c = ev->data;
    ngx_chat_redis_link_t  *link = c->data;

    fd = c->fd;

    for (reads = 0; link->ac && reads < NGX_CHAT_REDIS_READS; reads++) {
        redisAsyncHandleRead(link->ac);

        if (link->ac == NULL || link->c == NULL || link->c->fd != fd
            || ioctl(fd, FIONREAD, &n) == -1 || n <= 0)
        {
            return;
        }
    }
}


static void
ngx_chat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_chat_redis_link_t  *link = c->data;

    if (link->ac) {
        redisAsyncHandleWrite(link->ac);
    }
}


static void
ngx_chat_redis_add_read(void *data)
{
    ngx_chat_redis_link_t  *link = data;

    if (link->c && !link->c->read->active) {
        (void) ngx_add_event(link->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_chat_redis_del_read(void *data)
{
    ngx_chat_redis_link_t  *link = data;

    if (link->c && link->c->read->active) {
        (void) ngx_del_event(link->c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_chat_redis_add_write(void *data)
{
    ngx_chat_redis_link_t  *link = data;

    if (link->c) {
        (void) ngx_chat_conn_want_write(link->c, 1);
    }
}


static void
ngx_chat_redis_del_write(void *data)
{
    ngx_chat_redis_link_t  *link = data;

    if (link->c) {
        (void) ngx_chat_conn_want_write(link->c, 0);
    }
}


/* hiredis is about to close the socket: it leaves nginx first */

static void
ngx_chat_redis_cleanup(void *data)
{
    ngx_chat_redis_link_t  *link = data;

    if (link->c) {
        ngx_chat_conn_release(link->c, 0);
        link->c = NULL;
    }
}
