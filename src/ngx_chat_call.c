
/*
 * ngx_chat: a call of one action's function in Postgres.  The caller (an
 * action started by a REST request or a WebSocket message, or presence
 * announcing a user) has checked the arguments; a call sends them with the
 * identity to the function and turns what comes back into a status with a
 * JSON body, or a status with an error message.  Events the function
 * produced are published here, once, whoever asked for it: they are
 * serialized in Postgres and every subscriber gets those bytes.
 */


#include "ngx_chat.h"


static void ngx_chat_call_result(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_call_rows(ngx_chat_call_t *call, PGresult *res);
static void ngx_chat_call_sql_error(ngx_chat_call_t *call, PGresult *res);
static void ngx_chat_call_cleanup(void *data);


/*
 * A call of the module's own, not a client's, on a pool of its own: for
 * (tenant, user), or nobody (NULL: the tick's).  The caller sets stmt,
 * args and done, and destroys call->pool after done.
 */

ngx_chat_call_t *
ngx_chat_call_create(ngx_str_t *tenant, ngx_str_t *user)
{
    ngx_pool_t       *pool;
    ngx_chat_call_t  *call;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    call = ngx_pcalloc(pool, sizeof(ngx_chat_call_t));

    if (call == NULL
        || ngx_chat_copy(pool, &call->id.tenant, tenant ? tenant->data : NULL,
                         tenant ? tenant->len : 0)
           != NGX_OK
        || ngx_chat_copy(pool, &call->id.user, user ? user->data : NULL,
                         user ? user->len : 0)
           != NGX_OK
        || ngx_chat_copy(pool, &call->id.name, NULL, 0) != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NULL;
    }

    call->pool = pool;
    call->log = ngx_cycle->log;

    return call;
}


/* the arguments go to the action's function in Postgres */

ngx_int_t
ngx_chat_call_send(ngx_chat_call_t *call)
{
    char                *args;
    ngx_int_t            rc;
    ngx_str_t            text;
    ngx_pool_cleanup_t  *cln;
    ngx_chat_pg_query_t *q;

    /* a bot's token: the functions know the actor by "$bot" (sql/) */
    if (call->id.bot
        && json_object_set_new(call->args, "$bot", json_true()) != 0)
    {
        ngx_chat_call_fail(call, 500, "out of memory");
        return NGX_ERROR;
    }

    /* and the claims chat_policy keeps, for the site's function */
    if (call->id.claims.len
        && json_object_set_new(call->args, "$claims",
                               json_loadb((char *) call->id.claims.data,
                                          call->id.claims.len, 0, NULL))
           != 0)
    {
        ngx_chat_call_fail(call, 500, "out of memory");
        return NGX_ERROR;
    }

    args = json_dumps(call->args, JSON_COMPACT);
    if (args == NULL) {
        ngx_chat_call_fail(call, 500, "out of memory");
        return NGX_ERROR;
    }

    rc = ngx_chat_copy(call->pool, &text, args, ngx_strlen(args));
    free(args);

    if (rc != NGX_OK) {
        ngx_chat_call_fail(call, 500, "out of memory");
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(call->pool, 0);
    if (cln == NULL) {
        ngx_chat_call_fail(call, 500, "out of memory");
        return NGX_ERROR;
    }

    q = &call->query;
    q->stmt = call->stmt;
    q->nparams = 4;
    q->params[0] = (char *) call->id.tenant.data;
    q->params[1] = (char *) call->id.user.data;
    q->params[2] = call->id.name.len ? (char *) call->id.name.data : NULL;
    q->params[3] = (char *) text.data;
    q->handler = ngx_chat_call_result;
    q->data = call;

    rc = ngx_chat_pg_send(ngx_chat_worker.pg, q);

    if (rc != NGX_OK) {
        cln->handler = NULL;
        ngx_chat_call_fail(call, 503, (rc == NGX_BUSY)
                                      ? "too many requests wait for the "
                                        "database"
                                      : "the database is unavailable");
        return NGX_ERROR;
    }

    /* if the owner goes away first, its query must forget it */
    cln->handler = ngx_chat_call_cleanup;
    cln->data = q;

    return NGX_OK;
}


void
ngx_chat_call_fail(ngx_chat_call_t *call, ngx_uint_t status, const char *text)
{
    call->status = status;
    call->code = NULL;
    call->retry = 0;
    call->error.data = (u_char *) text;
    call->error.len = ngx_strlen(text);
    ngx_str_null(&call->body);
}


static void
ngx_chat_call_result(ngx_chat_pg_query_t *q, PGresult *res)
{
    ngx_chat_call_t  *call;

    call = q->data;

    if (res == NULL) {
        ngx_chat_call_fail(call, 503, "the database is unavailable");

    } else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        ngx_chat_call_rows(call, res);

    } else {
        ngx_chat_call_sql_error(call, res);
    }

    call->done(call);
}


/* one row is the answer (a status); the others are events to publish */

static void
ngx_chat_call_rows(ngx_chat_call_t *call, PGresult *res)
{
    int        i, n, answer;
    ngx_int_t  status;

    n = PQntuples(res);
    answer = -1;

    for (i = 0; i < n && PQnfields(res) == 3; i++) {

        if (!PQgetisnull(res, i, 0)) {
            answer = i;
            continue;
        }

        /* serialized once, in Postgres: every subscriber gets these bytes */
        if (ngx_chat_worker.conf->redis.host.data && !PQgetisnull(res, i, 1)) {
            ngx_chat_redis_publish((u_char *) PQgetvalue(res, i, 1),
                                   PQgetlength(res, i, 1),
                                   (u_char *) PQgetvalue(res, i, 2),
                                   PQgetlength(res, i, 2));
        }
    }

    i = answer;

    if (i < 0) {
        ngx_log_error(NGX_LOG_ALERT, call->log, 0,
                      "chat: statement \"%s\" returned no status",
                      ngx_chat_stmts[call->stmt].name);
        ngx_chat_call_fail(call, 500, "internal error");
        return;
    }

    status = ngx_atoi((u_char *) PQgetvalue(res, i, 0),
                      PQgetlength(res, i, 0));

    /* it becomes the HTTP status line: a fault in sql/ must not */
    if (status < 100 || status > 599) {
        ngx_log_error(NGX_LOG_ALERT, call->log, 0,
                      "chat: statement \"%s\" returned an invalid status "
                      "\"%*s\"", ngx_chat_stmts[call->stmt].name,
                      (size_t) ngx_min(PQgetlength(res, i, 0), 16),
                      PQgetvalue(res, i, 0));
        ngx_chat_call_fail(call, 500, "internal error");
        return;
    }

    call->status = status;

    if (PQgetisnull(res, i, 2)) {
        ngx_str_null(&call->body);
        return;
    }

    if (ngx_chat_copy(call->pool, &call->body, PQgetvalue(res, i, 2),
                      PQgetlength(res, i, 2))
        != NGX_OK)
    {
        ngx_chat_call_fail(call, 500, "out of memory");
        return;
    }
}


/*
 * Action functions raise their refusals with SQLSTATE "CHnnn" (nnn is the
 * HTTP status) and the message for the client; "CQnnn" is a refusal of
 * the storage quota (the code "quota_exceeded"), "CLnnn" one of chat_max
 * ("limit_reached").  Other states are faults of the data or the server.
 */

static void
ngx_chat_call_sql_error(ngx_chat_call_t *call, PGresult *res)
{
    char        *state, *msg;
    ngx_str_t    text;
    ngx_uint_t   status;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (state == NULL || msg == NULL) {
        ngx_chat_call_fail(call, 500, "internal error");
        return;
    }

    if (state[0] == 'C' && state[1] == 'H') {
        status = ngx_atoi((u_char *) state + 2, 3);

    } else if (state[0] == 'C' && state[1] == 'Q') {
        /* a refusal with a code of its own: the quota */
        status = ngx_atoi((u_char *) state + 2, 3);
        call->code = "quota_exceeded";

    } else if (state[0] == 'C' && state[1] == 'L') {
        status = ngx_atoi((u_char *) state + 2, 3);
        call->code = "limit_reached";

    } else if (ngx_strncmp(state, "22", 2) == 0
               || ngx_strncmp(state, "23", 2) == 0)
    {
        /* data exceptions and integrity violations: the input was bad */
        status = (ngx_strcmp(state, "23505") == 0) ? 409 : 400;

    } else if (ngx_strncmp(state, "40", 2) == 0
               || ngx_strncmp(state, "08", 2) == 0
               || ngx_strncmp(state, "53", 2) == 0
               || ngx_strncmp(state, "57", 2) == 0)
    {
        /* deadlock, serialization, connection, resources, shutdown */
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "chat: \"%s\" failed with %s: %s",
                      ngx_chat_stmts[call->stmt].name, state, msg);
        ngx_chat_call_fail(call, 503, "the database is busy, retry");
        return;

    } else {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "chat: \"%s\" failed with %s: %s",
                      ngx_chat_stmts[call->stmt].name, state, msg);
        ngx_chat_call_fail(call, 500, "internal error");
        return;
    }

    if (status < 400 || status > 599
        || ngx_chat_copy(call->pool, &text, msg, ngx_strlen(msg)) != NGX_OK)
    {
        ngx_chat_call_fail(call, 500, "internal error");
        return;
    }

    call->status = status;
    call->error = text;
    ngx_str_null(&call->body);
}


static void
ngx_chat_call_cleanup(void *data)
{
    ngx_chat_pg_query_t  *q = data;

    ngx_chat_pg_cancel(q);
}
