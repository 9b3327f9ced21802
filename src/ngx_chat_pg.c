
/*
 * ngx_chat: a per-worker pool of Postgres connections on nginx's events.
 *
 * Each connection is opened with PQconnectStartParams() and driven by
 * PQconnectPoll() from read and write events, then prepares every
 * statement of ngx_chat_stmts[] in one pipelined round trip and becomes
 * idle.  A query takes an idle connection or waits in a bounded queue for
 * one; it runs with PQsendQueryPrepared() and its result is handed to its
 * handler from the read event.  Nothing here waits: a connection that is
 * lost fails its query, and is opened again after a growing pause.
 *
 * A handler is never called from inside ngx_chat_pg_send(): the caller
 * learns there whether the query was taken, and later what it returned.
 *
 * A query that has no answer within NGX_CHAT_PG_QUERY_TIME fails as if
 * Postgres had gone away, and its connection is replaced: a server that
 * vanished without closing the connection (a half-open TCP connection)
 * would otherwise hold it, and its request, forever.
 */


#include "ngx_chat.h"


#define NGX_CHAT_PG_BACKOFF_MIN  50
#define NGX_CHAT_PG_BACKOFF_MAX  2000

/*
 * Not the pool's timeout=, which bounds the wait for a connection (5 s by
 * default) and may be as short as a few milliseconds: a query may rightly
 * wait much longer in Postgres, for a row lock held by another writer.
 * This only has to end what would otherwise never end.
 */
#define NGX_CHAT_PG_QUERY_TIME   30000


/*
 * TCP keepalives that notice a vanished server within about two minutes
 * on an idle connection (the kernel's default waits two hours before the
 * first probe; libpq turns keepalives on, with the kernel's timings).
 */
static const char  *ngx_chat_pg_keepalives[][2] = {
    { "keepalives_idle", "60" },
    { "keepalives_interval", "10" },
    { "keepalives_count", "6" }
};


typedef enum {
    NGX_CHAT_PG_DOWN = 0,
    NGX_CHAT_PG_CONNECTING,
    NGX_CHAT_PG_PREPARING,
    NGX_CHAT_PG_IDLE,
    NGX_CHAT_PG_BUSY
} ngx_chat_pg_state_e;


struct ngx_chat_pg_conn_s {
    ngx_chat_pg_pool_t          *pool;
    PGconn                      *pg;
    ngx_connection_t            *c;
    ngx_chat_pg_query_t         *query;
    PGresult                    *result;
    ngx_queue_t                  idle;
    ngx_event_t                  timer;     /* reconnect; connect timeout;
                                               the query's deadline */
    ngx_msec_t                   backoff;
    dev_t                        dev;       /* the socket wrapped in c */
    ino_t                        ino;
    ngx_uint_t                   state;
    ngx_uint_t                   pending;   /* prepare results to come */
    unsigned                     failed:1;  /* a prepare failed */
};


struct ngx_chat_pg_pool_s {
    ngx_chat_pg_conf_t          *conf;
    ngx_log_t                   *log;
    ngx_chat_pg_conn_t          *conns;
    ngx_uint_t                   nconns;
    const char                 **keywords;    /* of PQconnectStartParams() */
    const char                 **values;
    ngx_queue_t                  idle;
    ngx_queue_t                  waiting;
    ngx_uint_t                   nwaiting;
    ngx_uint_t                   nready;      /* idle or busy */
    ngx_uint_t                   nconnecting; /* connecting or preparing */
};


static void ngx_chat_pg_connect(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_notice(void *arg, const PGresult *res);
static void ngx_chat_pg_timer_handler(ngx_event_t *ev);
static void ngx_chat_pg_event_handler(ngx_event_t *ev);
static void ngx_chat_pg_poll_connect(ngx_chat_pg_conn_t *pc);
static ngx_int_t ngx_chat_pg_connect_params(ngx_cycle_t *cycle,
    ngx_chat_pg_pool_t *pool);
static ngx_int_t ngx_chat_pg_track_socket(ngx_chat_pg_conn_t *pc);
static ngx_uint_t ngx_chat_pg_same_socket(ngx_chat_pg_conn_t *pc,
    ngx_socket_t fd);
static void ngx_chat_pg_prepare(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_read_prepared(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_ready(ngx_chat_pg_conn_t *pc);
static ngx_int_t ngx_chat_pg_run(ngx_chat_pg_conn_t *pc,
    ngx_chat_pg_query_t *q);
static void ngx_chat_pg_read_result(ngx_chat_pg_conn_t *pc);
static ngx_int_t ngx_chat_pg_flush(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_dispatch(ngx_chat_pg_pool_t *pool);
static void ngx_chat_pg_wait_timeout(ngx_event_t *ev);
static void ngx_chat_pg_broken(ngx_chat_pg_conn_t *pc, const char *what);
static void ngx_chat_pg_lost(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_close(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_fail_waiting(ngx_chat_pg_pool_t *pool);


ngx_chat_pg_pool_t *
ngx_chat_pg_pool_create(ngx_cycle_t *cycle, ngx_chat_pg_conf_t *conf)
{
    ngx_uint_t           i;
    ngx_chat_pg_conn_t  *pc;
    ngx_chat_pg_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_pg_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->conns = ngx_pcalloc(cycle->pool,
                              conf->size * sizeof(ngx_chat_pg_conn_t));
    if (pool->conns == NULL) {
        return NULL;
    }

    pool->conf = conf;
    pool->log = cycle->log;
    pool->nconns = conf->size;
    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->waiting);

    if (ngx_chat_pg_connect_params(cycle, pool) != NGX_OK) {
        return NULL;
    }

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];
        pc->pool = pool;
        pc->timer.handler = ngx_chat_pg_timer_handler;
        pc->timer.data = pc;
        pc->timer.log = pool->log;
        pc->timer.cancelable = 1;

        ngx_chat_pg_connect(pc);
    }

    return pool;
}


void
ngx_chat_pg_pool_destroy(ngx_chat_pg_pool_t *pool)
{
    ngx_uint_t  i;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].timer.timer_set) {
            ngx_del_timer(&pool->conns[i].timer);
        }

        ngx_chat_pg_close(&pool->conns[i]);
    }
}


/*
 * NGX_OK: the handler will be called.  NGX_DECLINED: Postgres is out of
 * reach.  NGX_BUSY: too many queries wait already.
 */

ngx_int_t
ngx_chat_pg_send(ngx_chat_pg_pool_t *pool, ngx_chat_pg_query_t *q)
{
    ngx_queue_t         *link;
    ngx_chat_pg_conn_t  *pc;

    q->pool = pool;
    q->conn = NULL;
    q->waiting = 0;
    q->sent = ngx_current_msec;

    while (!ngx_queue_empty(&pool->idle)) {
        link = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(link, ngx_chat_pg_conn_t, idle);

        if (ngx_chat_pg_run(pc, q) == NGX_OK) {
            return NGX_OK;
        }
    }

    if (pool->nready == 0 && pool->nconnecting == 0) {
        return NGX_DECLINED;
    }

    if (pool->nwaiting >= pool->conf->queue) {
        return NGX_BUSY;
    }

    ngx_queue_insert_tail(&pool->waiting, &q->queue);
    pool->nwaiting++;
    q->waiting = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "chat pg: query \"%s\" waits, %ui waiting",
                   ngx_chat_stmts[q->stmt].name, pool->nwaiting);

    ngx_memzero(&q->timer, sizeof(ngx_event_t));
    q->timer.handler = ngx_chat_pg_wait_timeout;
    q->timer.data = q;
    q->timer.log = pool->log;
    ngx_add_timer(&q->timer, pool->conf->timeout);

    return NGX_OK;
}


/* the query's owner goes away: its handler must not be called */

void
ngx_chat_pg_cancel(ngx_chat_pg_query_t *q)
{
    ngx_chat_pg_pool_t  *pool;

    if (q->waiting) {
        pool = q->pool;

        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->waiting = 0;

        if (q->timer.timer_set) {
            ngx_del_timer(&q->timer);
        }
    }

    if (q->conn) {
        /* the result, when it comes, is dropped */
        q->conn->query = NULL;
        q->conn = NULL;
    }
}


void
ngx_chat_pg_stats(ngx_chat_pg_pool_t *pool, ngx_chat_pg_stats_t *st)
{
    ngx_uint_t  i;

    st->connections = pool->nconns;
    st->ready = pool->nready;
    st->waiting = pool->nwaiting;
    st->queue_max = pool->conf->queue;
    st->busy = 0;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == NGX_CHAT_PG_BUSY) {
            st->busy++;
        }
    }
}


/*
 * The conninfo goes as "dbname", which libpq expands, after keepalive
 * settings of our own: any that the conninfo has wins.  A service file
 * would not (libpq reads it only for what is still unset), so with
 * "service=" the conninfo goes alone.
 */

static ngx_int_t
ngx_chat_pg_connect_params(ngx_cycle_t *cycle, ngx_chat_pg_pool_t *pool)
{
    u_char            *p, *all;
    char              *err, *options;
    size_t             len;
    ngx_uint_t         i, n, service;
    PQconninfoOption  *opts, *o;

    n = sizeof(ngx_chat_pg_keepalives) / sizeof(ngx_chat_pg_keepalives[0]);

    pool->keywords = ngx_pcalloc(cycle->pool, (n + 3) * sizeof(char *));
    pool->values = ngx_pcalloc(cycle->pool, (n + 3) * sizeof(char *));
    if (pool->keywords == NULL || pool->values == NULL) {
        return NGX_ERROR;
    }

    /* checked at load time; this only parses it again */
    opts = PQconninfoParse((char *) pool->conf->conninfo.data, &err);
    if (opts == NULL) {
        if (err) {
            PQfreemem(err);
        }
        return NGX_ERROR;
    }

    service = 0;
    options = NULL;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "service") == 0 && o->val && o->val[0]) {
            service = 1;
        }

        if (ngx_strcmp(o->keyword, "options") == 0 && o->val && o->val[0]) {
            options = o->val;
        }
    }

    /* the module's settings follow the conninfo's own options */
    len = options ? ngx_strlen(options) + 1 : 0;
    all = ngx_pnalloc(cycle->pool, len + pool->conf->options.len + 1);
    p = all;

    if (all == NULL) {
        PQconninfoFree(opts);
        return NGX_ERROR;
    }

    if (options) {
        p = ngx_cpymem(p, options, len - 1);
        *p++ = ' ';
    }

    p = ngx_cpymem(p, pool->conf->options.data, pool->conf->options.len);
    *p = '\0';

    PQconninfoFree(opts);

    i = 0;

    if (!service) {
        for ( /* void */ ; i < n; i++) {
            pool->keywords[i] = ngx_chat_pg_keepalives[i][0];
            pool->values[i] = ngx_chat_pg_keepalives[i][1];
        }
    }

    pool->keywords[i] = "dbname";
    pool->values[i] = (const char *) pool->conf->conninfo.data;

    if (pool->conf->options.len) {
        /* after "dbname": what it expands to is overridden */
        pool->keywords[++i] = "options";
        pool->values[i] = (const char *) all;
    }

    return NGX_OK;
}


static void
ngx_chat_pg_connect(ngx_chat_pg_conn_t *pc)
{
    ngx_chat_pg_pool_t  *pool;

    pool = pc->pool;

    /*
     * The configuration names hosts by address only (checked at load
     * time), so that PQconnectStartParams() does not resolve names: that
     * would block.
     */

    pc->pg = PQconnectStartParams(pool->keywords, pool->values, 1);

    if (pc->pg == NULL || PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_chat_pg_broken(pc, "connect");
        return;
    }

    if (PQsetnonblocking(pc->pg, 1) != 0) {
        ngx_chat_pg_broken(pc, "set non-blocking");
        return;
    }

    (void) PQsetNoticeReceiver(pc->pg, ngx_chat_pg_notice, pc);

    pc->state = NGX_CHAT_PG_CONNECTING;
    pool->nconnecting++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "chat pg: connection %ui connecting",
                   (ngx_uint_t) (pc - pool->conns));

    if (ngx_chat_pg_track_socket(pc) != NGX_OK
        || ngx_chat_conn_want_write(pc->c, 1) != NGX_OK)
    {
        ngx_chat_pg_broken(pc, "register socket");
        return;
    }

    ngx_add_timer(&pc->timer, pool->conf->timeout);
}


/*
 * What the server says besides results (a function's RAISE NOTICE or
 * WARNING, "relation already exists, skipping"): libpq's default prints it
 * to stderr, which reaches the error log as a raw line with no time, level
 * or worker.  Here it goes through nginx's log at the level it names.
 */

static void
ngx_chat_pg_notice(void *arg, const PGresult *res)
{
    char                *severity, *message, *sqlstate;
    size_t               len;
    ngx_uint_t           level;
    ngx_chat_pg_conn_t  *pc;

    pc = arg;
    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (severity == NULL) {
        severity = "NOTICE";
    }

    if (message == NULL) {
        message = PQresultErrorMessage(res);
    }

    len = ngx_strlen(message);
    while (len && (message[len - 1] == '\n' || message[len - 1] == ' ')) {
        len--;
    }

    if (ngx_strcmp(severity, "WARNING") == 0) {
        level = NGX_LOG_WARN;

    } else if (ngx_strncmp(severity, "DEBUG", 5) == 0) {
        level = NGX_LOG_DEBUG;

    } else if (ngx_strcmp(severity, "NOTICE") == 0) {
        level = NGX_LOG_NOTICE;

    } else {
        level = NGX_LOG_INFO;
    }

    ngx_log_error(level, pc->pool->log, 0,
                  "chat pg: connection %ui: postgres %s %s: %*s",
                  (ngx_uint_t) (pc - pc->pool->conns), severity,
                  sqlstate ? sqlstate : "-", len, message);
}


/*
 * The socket may change between PQconnectPoll() calls: libpq closes it and
 * opens another to try the next host or address of the conninfo, or again
 * without SSL or GSS encryption.  The new socket usually gets the number
 * of the old one (the lowest free), and epoll forgot the old one when it
 * was closed: the number does not tell, the socket's inode does.
 */

static ngx_int_t
ngx_chat_pg_track_socket(ngx_chat_pg_conn_t *pc)
{
    ngx_socket_t  fd;
    struct stat   st;

    fd = PQsocket(pc->pg);

    if (pc->c && ngx_chat_pg_same_socket(pc, fd)) {
        return NGX_OK;
    }

    if (pc->c) {
        /* libpq closed the old socket when it opened another */
        ngx_chat_conn_release(pc->c, 1);
        pc->c = NULL;
    }

    if (fd == (ngx_socket_t) -1 || fstat(fd, &st) == -1) {
        return NGX_ERROR;
    }

    pc->c = ngx_chat_conn_wrap(fd, pc, ngx_chat_pg_event_handler,
                               ngx_chat_pg_event_handler, pc->pool->log);
    if (pc->c == NULL) {
        return NGX_ERROR;
    }

    pc->dev = st.st_dev;
    pc->ino = st.st_ino;

    return NGX_OK;
}


/* fd is the socket that pc->c wraps, not another one with its number */

static ngx_uint_t
ngx_chat_pg_same_socket(ngx_chat_pg_conn_t *pc, ngx_socket_t fd)
{
    struct stat  st;

    return fd != (ngx_socket_t) -1 && fd == pc->c->fd
           && fstat(fd, &st) == 0
           && st.st_dev == pc->dev && st.st_ino == pc->ino;
}


static void
ngx_chat_pg_timer_handler(ngx_event_t *ev)
{
    ngx_chat_pg_conn_t  *pc;

    pc = ev->data;

    switch (pc->state) {

    case NGX_CHAT_PG_DOWN:
        ngx_chat_pg_connect(pc);
        return;

    case NGX_CHAT_PG_BUSY:
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "chat: postgres query had no answer in %M ms, "
                      "its connection is replaced", NGX_CHAT_PG_QUERY_TIME);
        ngx_chat_pg_lost(pc);
        return;

    default:
        ngx_chat_pg_broken(pc, "connect timed out");
        return;
    }
}


static void
ngx_chat_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_chat_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    switch (pc->state) {

    case NGX_CHAT_PG_CONNECTING:
        ngx_chat_pg_poll_connect(pc);
        return;

    case NGX_CHAT_PG_PREPARING:
        if (ev->write) {
            (void) ngx_chat_pg_flush(pc);
        } else {
            ngx_chat_pg_read_prepared(pc);
        }
        return;

    case NGX_CHAT_PG_BUSY:
    case NGX_CHAT_PG_IDLE:
        if (ev->write) {
            (void) ngx_chat_pg_flush(pc);
        } else {
            ngx_chat_pg_read_result(pc);
        }
        return;
    }
}


static void
ngx_chat_pg_poll_connect(ngx_chat_pg_conn_t *pc)
{
    PostgresPollingStatusType  st;

    st = PQconnectPoll(pc->pg);

    if (st == PGRES_POLLING_FAILED) {
        ngx_chat_pg_broken(pc, "connect");
        return;
    }

    if (ngx_chat_pg_track_socket(pc) != NGX_OK) {
        ngx_chat_pg_broken(pc, "register socket");
        return;
    }

    switch (st) {

    case PGRES_POLLING_WRITING:
        (void) ngx_chat_conn_want_write(pc->c, 1);
        return;

    case PGRES_POLLING_OK:
        ngx_chat_pg_prepare(pc);
        return;

    default: /* PGRES_POLLING_READING */
        (void) ngx_chat_conn_want_write(pc->c, 0);
        return;
    }
}


/* every statement in one round trip: a pipeline ended by one sync */

static void
ngx_chat_pg_prepare(ngx_chat_pg_conn_t *pc)
{
    ngx_uint_t  i;

    (void) ngx_chat_conn_want_write(pc->c, 0);

    if (PQenterPipelineMode(pc->pg) != 1) {
        ngx_chat_pg_broken(pc, "enter pipeline mode");
        return;
    }

    for (i = 0; i < ngx_chat_nstmts; i++) {
        if (PQsendPrepare(pc->pg, ngx_chat_stmts[i].name,
                          ngx_chat_stmts[i].sql, 0, NULL)
            != 1)
        {
            ngx_chat_pg_broken(pc, "send prepare");
            return;
        }
    }

    if (PQpipelineSync(pc->pg) != 1) {
        ngx_chat_pg_broken(pc, "pipeline sync");
        return;
    }

    pc->state = NGX_CHAT_PG_PREPARING;
    pc->pending = ngx_chat_nstmts + 1;
    pc->failed = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "chat pg: connection %ui preparing %ui statements",
                   (ngx_uint_t) (pc - pc->pool->conns), ngx_chat_nstmts);

    (void) ngx_chat_pg_flush(pc);
}


static void
ngx_chat_pg_read_prepared(ngx_chat_pg_conn_t *pc)
{
    char            *msg;
    PGresult        *res;
    ExecStatusType   st;

    if (PQconsumeInput(pc->pg) != 1) {
        ngx_chat_pg_broken(pc, "read");
        return;
    }

    while (pc->pending && !PQisBusy(pc->pg)) {

        res = PQgetResult(pc->pg);
        if (res == NULL) {
            /* the end of one statement's results */
            continue;
        }

        st = PQresultStatus(res);

        if (st == PGRES_FATAL_ERROR) {
            msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                          "chat: postgres prepare failed (is the schema of "
                          "sql/ applied?): %s", msg ? msg : "no message");
            pc->failed = 1;
        }

        PQclear(res);
        pc->pending--;
    }

    if (pc->pending) {
        return;
    }

    if (pc->failed || PQexitPipelineMode(pc->pg) != 1) {
        ngx_chat_pg_broken(pc, "prepare");
        return;
    }

    ngx_chat_pg_ready(pc);
}


static void
ngx_chat_pg_ready(ngx_chat_pg_conn_t *pc)
{
    ngx_chat_pg_pool_t  *pool;

    pool = pc->pool;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (pc->backoff) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "chat: postgres connection is back");
    }

    pc->backoff = 0;
    pc->state = NGX_CHAT_PG_IDLE;
    pool->nconnecting--;
    pool->nready++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "chat pg: connection %ui ready, %ui of the pool",
                   (ngx_uint_t) (pc - pool->conns), pool->nready);
    ngx_queue_insert_tail(&pool->idle, &pc->idle);

    ngx_chat_pg_dispatch(pool);
}


static ngx_int_t
ngx_chat_pg_run(ngx_chat_pg_conn_t *pc, ngx_chat_pg_query_t *q)
{
    int  rc;

    if (PQsendQueryPrepared(pc->pg, ngx_chat_stmts[q->stmt].name,
                            q->nparams, q->params, NULL, NULL, 0)
        != 1)
    {
        ngx_chat_pg_broken(pc, "send query");
        return NGX_ERROR;
    }

    /* flushed before the query is attached: a failure here is not its */

    rc = PQflush(pc->pg);

    if (rc == -1 || ngx_chat_conn_want_write(pc->c, rc == 1) != NGX_OK) {
        ngx_chat_pg_broken(pc, "write");
        return NGX_ERROR;
    }

    ngx_queue_remove(&pc->idle);
    pc->state = NGX_CHAT_PG_BUSY;
    pc->query = q;
    q->conn = pc;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "chat pg: query \"%s\" runs on connection %ui",
                   ngx_chat_stmts[q->stmt].name,
                   (ngx_uint_t) (pc - pc->pool->conns));

    ngx_add_timer(&pc->timer, NGX_CHAT_PG_QUERY_TIME);

    return NGX_OK;
}


static void
ngx_chat_pg_read_result(ngx_chat_pg_conn_t *pc)
{
    PGresult             *res;
    ngx_chat_pg_query_t  *q;

    if (PQconsumeInput(pc->pg) != 1) {
        ngx_chat_pg_broken(pc, "read");
        return;
    }

    /* libpq may hold bytes it could not send before the read */
    if (ngx_chat_pg_flush(pc) == NGX_ERROR) {
        return;
    }

    for ( ;; ) {
        if (PQisBusy(pc->pg)) {
            return;
        }

        res = PQgetResult(pc->pg);
        if (res == NULL) {
            break;
        }

        /* a single statement makes one result; keep the last */
        if (pc->result) {
            PQclear(pc->result);
        }

        pc->result = res;
    }

    if (pc->state != NGX_CHAT_PG_BUSY) {
        /* an idle connection said something: an error before it closes */
        if (pc->result) {
            PQclear(pc->result);
            pc->result = NULL;
        }

        if (PQstatus(pc->pg) == CONNECTION_BAD) {
            ngx_chat_pg_broken(pc, "idle connection");
        }

        return;
    }

    q = pc->query;
    res = pc->result;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "chat pg: connection %ui answered%s",
                   (ngx_uint_t) (pc - pc->pool->conns),
                   q ? "" : " a query that went away");

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->query = NULL;
    pc->result = NULL;
    pc->state = NGX_CHAT_PG_IDLE;
    ngx_queue_insert_tail(&pc->pool->idle, &pc->idle);

    if (q) {
        q->conn = NULL;
        ngx_chat_metrics_pg_query(ngx_current_msec - q->sent);
        q->handler(q, res);
    }

    if (res) {
        PQclear(res);
    }

    ngx_chat_pg_dispatch(pc->pool);
}


static ngx_int_t
ngx_chat_pg_flush(ngx_chat_pg_conn_t *pc)
{
    switch (PQflush(pc->pg)) {

    case 0:
        (void) ngx_chat_conn_want_write(pc->c, 0);
        return NGX_OK;

    case 1:
        (void) ngx_chat_conn_want_write(pc->c, 1);
        return NGX_AGAIN;

    default:
        ngx_chat_pg_broken(pc, "write");
        return NGX_ERROR;
    }
}


/* pairs waiting queries with idle connections */

static void
ngx_chat_pg_dispatch(ngx_chat_pg_pool_t *pool)
{
    ngx_queue_t          *link;
    ngx_chat_pg_conn_t   *pc;
    ngx_chat_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)
           && !ngx_queue_empty(&pool->idle))
    {
        link = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(link, ngx_chat_pg_conn_t, idle);

        link = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(link, ngx_chat_pg_query_t, queue);

        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->waiting = 0;

        if (q->timer.timer_set) {
            ngx_del_timer(&q->timer);
        }

        if (ngx_chat_pg_run(pc, q) != NGX_OK) {
            /* that connection broke; try the next with the same query */
            ngx_queue_insert_head(&pool->waiting, &q->queue);
            pool->nwaiting++;
            q->waiting = 1;
            ngx_add_timer(&q->timer, pool->conf->timeout);
        }
    }

    if (pool->nready == 0 && pool->nconnecting == 0) {
        ngx_chat_pg_fail_waiting(pool);
    }
}


static void
ngx_chat_pg_wait_timeout(ngx_event_t *ev)
{
    ngx_chat_pg_query_t  *q;

    q = ev->data;

    ngx_queue_remove(&q->queue);
    q->pool->nwaiting--;
    q->waiting = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->pool->log, 0,
                   "chat pg: query \"%s\" waited too long for a connection",
                   ngx_chat_stmts[q->stmt].name);

    q->handler(q, NULL);
}


static void
ngx_chat_pg_broken(ngx_chat_pg_conn_t *pc, const char *what)
{
    size_t       len;
    const char  *msg;

    /* it will be opened again */
    ngx_chat_metric_add(NGX_CHAT_M_PG_RECONNECTS, 1);

    msg = pc->pg ? PQerrorMessage(pc->pg) : "out of memory";
    len = ngx_strlen(msg);

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }

    ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                  "chat: postgres %s failed: %*s", what, len, msg);

    ngx_chat_pg_lost(pc);
}


/* the connection goes, its query fails, another is opened after a pause */

static void
ngx_chat_pg_lost(ngx_chat_pg_conn_t *pc)
{
    ngx_chat_pg_pool_t   *pool;
    ngx_chat_pg_query_t  *q;

    pool = pc->pool;

    q = pc->query;
    pc->query = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "chat pg: connection %ui lost in state %ui",
                   (ngx_uint_t) (pc - pool->conns), pc->state);

    switch (pc->state) {

    case NGX_CHAT_PG_IDLE:
        ngx_queue_remove(&pc->idle);
        pool->nready--;
        break;

    case NGX_CHAT_PG_BUSY:
        pool->nready--;
        break;

    case NGX_CHAT_PG_CONNECTING:
    case NGX_CHAT_PG_PREPARING:
        pool->nconnecting--;
        break;
    }

    ngx_chat_pg_close(pc);

    pc->backoff = pc->backoff ? ngx_min(pc->backoff * 2,
                                        NGX_CHAT_PG_BACKOFF_MAX)
                              : NGX_CHAT_PG_BACKOFF_MIN;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (!ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&pc->timer, pc->backoff);
    }

    if (q) {
        q->conn = NULL;
        q->handler(q, NULL);
    }

    if (pool->nready == 0 && pool->nconnecting == 0) {
        ngx_chat_pg_fail_waiting(pool);
    }
}


static void
ngx_chat_pg_close(ngx_chat_pg_conn_t *pc)
{
    ngx_uint_t  closed;

    if (pc->result) {
        PQclear(pc->result);
        pc->result = NULL;
    }

    if (pc->c) {
        /* libpq closes the socket when the server goes: epoll forgot it */
        closed = pc->pg == NULL
                 || !ngx_chat_pg_same_socket(pc, PQsocket(pc->pg));

        ngx_chat_conn_release(pc->c, closed);
        pc->c = NULL;
    }

    if (pc->pg) {
        PQfinish(pc->pg);
        pc->pg = NULL;
    }

    pc->state = NGX_CHAT_PG_DOWN;
}


static void
ngx_chat_pg_fail_waiting(ngx_chat_pg_pool_t *pool)
{
    ngx_queue_t          *link;
    ngx_chat_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {
        link = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(link, ngx_chat_pg_query_t, queue);

        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->waiting = 0;

        if (q->timer.timer_set) {
            ngx_del_timer(&q->timer);
        }

        q->handler(q, NULL);
    }
}
