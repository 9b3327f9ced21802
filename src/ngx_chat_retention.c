
/*
 * ngx_chat: how long Postgres keeps events (chat_events_retention).  Every
 * event is kept so that a client that reconnects is replayed what it
 * missed; past the retention they are deleted in bounded batches
 * (chat.events_prune), by whichever worker of any host takes the advisory
 * lock, once a minute, or again at the next tick while batches come back
 * full.  A resume from before what is kept is answered with "reload": the
 * client loads that conversation from history (ngx_chat_session.c).
 */


#include "ngx_chat.h"


#define NGX_CHAT_RETENTION_EVERY  60000
#define NGX_CHAT_RETENTION_BATCH  10000


typedef struct {
    ngx_chat_pg_query_t          query;
    u_char                       keep[NGX_TIME_T_LEN + 1];
    ngx_msec_t                   next;
    unsigned                     running:1;
} ngx_chat_retention_t;


static void ngx_chat_retention_done(ngx_chat_pg_query_t *q, PGresult *res);


static ngx_chat_retention_t  ngx_chat_retention;


/* the worker's tick: a batch is due */

void
ngx_chat_retention_tick(void)
{
    time_t                 keep;
    ngx_chat_retention_t  *rt = &ngx_chat_retention;

    keep = ngx_chat_worker.conf->events_retention;

    if (keep == 0 || rt->running
        || (ngx_msec_int_t) (ngx_current_msec - rt->next) < 0)
    {
        return;
    }

    *ngx_sprintf(rt->keep, "%T", keep) = '\0';

    rt->query.stmt = NGX_CHAT_SQL_EVENTS_PRUNE;
    rt->query.nparams = 2;
    rt->query.params[0] = (char *) rt->keep;
    rt->query.params[1] = ngx_value(NGX_CHAT_RETENTION_BATCH);
    rt->query.handler = ngx_chat_retention_done;
    rt->query.data = rt;

    rt->next = ngx_current_msec + NGX_CHAT_RETENTION_EVERY;

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &rt->query) == NGX_OK) {
        rt->running = 1;
    }
}


static void
ngx_chat_retention_done(ngx_chat_pg_query_t *q, PGresult *res)
{
    int64_t                deleted;
    ngx_chat_retention_t  *rt = q->data;

    rt->running = 0;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat: deleting events past retention failed: %s",
                      res ? PQresultErrorMessage(res) : "no database");
        return;
    }

    /* -1: another worker holds the lock and does it */
    deleted = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat retention: %L events deleted", deleted);

    if (deleted >= NGX_CHAT_RETENTION_BATCH) {
        /* more are due: the next batch at the next tick */
        rt->next = ngx_current_msec;
    }
}
