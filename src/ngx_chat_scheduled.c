
/*
 * ngx_chat: scheduled messages go at their time.  Each worker, at its
 * tick, calls chat.api_scheduled_due as an action with no caller: it takes
 * what is due (FOR UPDATE SKIP LOCKED, so that workers and hosts share the
 * work), posts each as its user would, under the client_id "sch_<id>",
 * and answers the events of those messages, which the call publishes as
 * any action's.  A worker killed mid-way leaves its transaction undone:
 * the next tick posts them again, once.  While a run is under way the
 * tick waits.
 */


#include "ngx_chat.h"


#define NGX_CHAT_SCHEDULED_BATCH  50


typedef struct {
    ngx_uint_t                   running;
} ngx_chat_scheduled_t;


static void ngx_chat_scheduled_done(ngx_chat_call_t *call);


static ngx_chat_scheduled_t  ngx_chat_scheduled;


void
ngx_chat_scheduled_tick(void)
{
    ngx_pool_t       *pool;
    ngx_chat_call_t  *call;

    if (ngx_chat_scheduled.running || ngx_exiting) {
        return;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    call = ngx_pcalloc(pool, sizeof(ngx_chat_call_t));

    /* no caller: the function reads the rows' own users */
    if (call == NULL
        || ngx_chat_copy(pool, &call->id.tenant, NULL, 0) != NGX_OK
        || ngx_chat_copy(pool, &call->id.user, NULL, 0) != NGX_OK
        || ngx_chat_copy(pool, &call->id.name, NULL, 0) != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    call->args = json_pack("{s:i}", "limit", NGX_CHAT_SCHEDULED_BATCH);
    if (call->args == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    call->stmt = NGX_CHAT_SQL_SCHEDULED_DUE;
    call->pool = pool;
    call->log = ngx_cycle->log;
    call->done = ngx_chat_scheduled_done;

    ngx_chat_scheduled.running = 1;

    if (ngx_chat_call_send(call) != NGX_OK) {
        /* Postgres is away or busy: the next tick tries again */
        ngx_chat_scheduled.running = 0;
        json_decref(call->args);
        ngx_destroy_pool(pool);
    }
}


static void
ngx_chat_scheduled_done(ngx_chat_call_t *call)
{
    if (call->status != 200) {
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "chat scheduled: the due messages were not sent "
                      "(%ui): %V", call->status, &call->error);

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, call->log, 0,
                       "chat scheduled: %V", &call->body);
    }

    ngx_chat_scheduled.running = 0;

    json_decref(call->args);
    ngx_destroy_pool(call->pool);
}
