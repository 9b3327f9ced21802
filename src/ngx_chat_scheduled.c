
/*
 * ngx_chat: what the workers do at their tick as actions with no caller:
 * the scheduled messages that are due (chat.api_scheduled_due) and the
 * calls that rang too long (chat.api_calls_expire).  Each function takes
 * its rows FOR UPDATE SKIP LOCKED, so that workers and hosts share the
 * work, and answers the events of what it did, which the call publishes
 * as any action's.  A scheduled message is posted under the client_id
 * "sch_<id>": a worker killed mid-way leaves its transaction undone, and
 * the next tick posts it again, once.  While a run is under way its tick
 * waits.
 */


#include "ngx_chat.h"


#define NGX_CHAT_TICKED_BATCH  50


typedef struct {
    ngx_uint_t                   stmt;
    const char                  *what;
    ngx_uint_t                   running;
} ngx_chat_ticked_t;


static void ngx_chat_ticked_start(ngx_chat_ticked_t *t);
static void ngx_chat_ticked_done(ngx_chat_call_t *call);


static ngx_chat_ticked_t  ngx_chat_ticked[] = {
    { NGX_CHAT_SQL_SCHEDULED_DUE, "scheduled messages", 0 },
    { NGX_CHAT_SQL_CALLS_EXPIRE, "calls that rang too long", 0 },
};


void
ngx_chat_scheduled_tick(void)
{
    ngx_uint_t  i;

    if (ngx_exiting) {
        return;
    }

    for (i = 0; i < sizeof(ngx_chat_ticked) / sizeof(ngx_chat_ticked_t);
         i++)
    {
        if (!ngx_chat_ticked[i].running) {
            ngx_chat_ticked_start(&ngx_chat_ticked[i]);
        }
    }
}


static void
ngx_chat_ticked_start(ngx_chat_ticked_t *t)
{
    ngx_chat_call_t  *call;

    /* no caller: the function reads the rows' own users */
    call = ngx_chat_call_create(NULL, NULL);
    if (call == NULL) {
        return;
    }

    call->args = json_pack("{s:i}", "limit", NGX_CHAT_TICKED_BATCH);
    if (call->args == NULL) {
        ngx_destroy_pool(call->pool);
        return;
    }

    call->stmt = t->stmt;
    call->done = ngx_chat_ticked_done;
    call->data = t;

    t->running = 1;

    if (ngx_chat_call_send(call) != NGX_OK) {
        /* Postgres is away or busy: the next tick tries again */
        t->running = 0;
        json_decref(call->args);
        ngx_destroy_pool(call->pool);
    }
}


static void
ngx_chat_ticked_done(ngx_chat_call_t *call)
{
    ngx_chat_ticked_t  *t = call->data;

    if (call->status != 200) {
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "chat tick: %s were not done (%ui): %V", t->what,
                      call->status, &call->error);

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->log, 0,
                       "chat tick: %s: %V", t->what, &call->body);
    }

    t->running = 0;

    json_decref(call->args);
    ngx_destroy_pool(call->pool);
}
