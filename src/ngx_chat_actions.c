
/*
 * ngx_chat: running an action.  The caller (a REST request or a WebSocket
 * message) has checked the arguments; a call sends them with the identity
 * to the action's function in Postgres and turns what comes back into a
 * status with a JSON body, or a status with an error message.  Events the
 * action produced are published here, once, whoever asked for it.
 */


#include "ngx_chat.h"


static void ngx_chat_call_looked_up(ngx_chat_call_t *call);
static void ngx_chat_call_result(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_call_typing(ngx_chat_call_t *call);
static void ngx_chat_call_rows(ngx_chat_call_t *call, PGresult *res);
static void ngx_chat_call_sql_error(ngx_chat_call_t *call, PGresult *res);
static void ngx_chat_call_cleanup(void *data);
static void ngx_chat_json_cleanup(void *data);


/*
 * NGX_OK: call->done will be called.  Otherwise call->status and
 * call->error say why the call could not start.
 */

ngx_int_t
ngx_chat_call_start(ngx_chat_call_t *call)
{
    json_t     *users;
    ngx_int_t   rc;

    if ((call->flags & NGX_CHAT_A_TYPING)
        && ngx_chat_presence_may_type(&call->id) != NGX_OK)
    {
        ngx_chat_call_fail(call, 429, "typing too often");
        return NGX_ERROR;
    }

    if (!(call->flags & (NGX_CHAT_A_LIVENESS|NGX_CHAT_A_SELF_LIVENESS))) {
        return ngx_chat_call_send(call);
    }

    /* presence: who is online is known here and in Redis, not Postgres */

    if (call->flags & NGX_CHAT_A_LIVENESS) {
        users = json_incref(json_object_get(call->args, "user_ids"));

    } else {
        users = json_array();
        json_array_append_new(users, json_string((char *)
                                                 call->id.user.data));
    }

    rc = ngx_chat_presence_lookup(call, users, ngx_chat_call_looked_up);
    json_decref(users);

    if (rc == NGX_DONE) {
        return ngx_chat_call_send(call);
    }

    if (rc == NGX_ERROR) {
        ngx_chat_call_fail(call, 500, "internal error");
    }

    return rc;
}


static void
ngx_chat_call_looked_up(ngx_chat_call_t *call)
{
    if (ngx_chat_call_send(call) != NGX_OK) {
        call->done(call);
    }
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

    if (call->flags & NGX_CHAT_A_EDIT_WINDOW) {
        json_object_set_new(call->args, "edit_window_ms",
                            json_integer(ngx_chat_worker.conf->edit_window));
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
    call->error.data = (u_char *) text;
    call->error.len = ngx_strlen(text);
    ngx_str_null(&call->body);
}


const char *
ngx_chat_error_code(ngx_uint_t status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 410: return "gone";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 426: return "upgrade_required";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default:  return "internal";
    }
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

        if ((call->flags & NGX_CHAT_A_TYPING) && call->status < 300) {
            ngx_chat_call_typing(call);
        }

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
 * HTTP status) and the message for the client.  Other states are faults
 * of the data or of the server.
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


/* the member checked, the typing signal goes out, from here alone */

static void
ngx_chat_call_typing(ngx_chat_call_t *call)
{
    json_t  *conversation;

    conversation = json_object_get(call->args, "conversation_id");

    ngx_chat_typing_set(&call->id, json_integer_value(conversation),
                        json_is_true(json_object_get(call->args,
                                                     "is_typing")));
}


/* a NUL-terminated copy: libpq and jansson take C strings */

ngx_int_t
ngx_chat_copy(ngx_pool_t *pool, ngx_str_t *dst, void *src, size_t len)
{
    dst->data = ngx_pnalloc(pool, len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        ngx_memcpy(dst->data, src, len);
    }

    dst->data[len] = '\0';
    dst->len = len;

    return NGX_OK;
}


/* a JSON value that lives as long as a pool */

ngx_int_t
ngx_chat_json_on_pool(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_chat_json_cleanup;
    cln->data = json;

    return NGX_OK;
}


static void
ngx_chat_json_cleanup(void *data)
{
    json_decref(data);
}
