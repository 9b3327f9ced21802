
/*
 * ngx_chat: one action, for REST and WebSocket alike.  Most actions are a
 * call of their function in Postgres (ngx_chat_call.c) and nothing more;
 * some need what only this host knows first, or do something after:
 *
 *   NGX_CHAT_A_EDIT_WINDOW    the configured edit window goes with the args
 *   NGX_CHAT_A_LIVENESS       who of args.user_ids is online (presence)
 *   NGX_CHAT_A_SELF_LIVENESS  whether the caller is online
 *   NGX_CHAT_A_TYPING         a typing signal: rate-limited before, sent
 *                             after the function checked the member
 *
 * and a message sent is counted by chat_limit messages first.
 */


#include "ngx_chat.h"


static ngx_int_t ngx_chat_action_filter(ngx_chat_call_t *call);
static void ngx_chat_action_looked_up(ngx_chat_call_t *call);
static void ngx_chat_action_typed(ngx_chat_call_t *call);


/*
 * NGX_OK: call->done will be called.  Otherwise call->status and
 * call->error say why the action could not start.
 */

ngx_int_t
ngx_chat_action_start(ngx_chat_call_t *call)
{
    time_t      retry;
    json_t     *users;
    ngx_int_t   rc;

    /* chat_limit messages, over REST and WebSocket alike */
    if ((call->stmt == NGX_CHAT_SQL_MESSAGE_SEND
         || call->stmt == NGX_CHAT_SQL_MESSAGE_FORWARD)
        && ngx_chat_limit_user(NGX_CHAT_LIMIT_MESSAGES, &call->id, &retry)
           != NGX_OK)
    {
        ngx_chat_call_fail(call, 429, "too many messages (chat_limit "
                           "messages)");
        call->retry = retry;
        return NGX_ERROR;
    }

    if (call->stmt == NGX_CHAT_SQL_MESSAGE_SEND
        || call->stmt == NGX_CHAT_SQL_MESSAGE_FORWARD)
    {
        ngx_chat_metric_add(NGX_CHAT_M_MESSAGES, 1);
    }

    if (ngx_chat_worker.conf->filters
        && ngx_chat_action_filter(call) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (call->flags & NGX_CHAT_A_EDIT_WINDOW) {
        json_object_set_new(call->args, "edit_window_ms",
                            json_integer(ngx_chat_worker.conf->edit_window));
    }

    if (call->flags & NGX_CHAT_A_TYPING) {
        if (ngx_chat_typing_allowed(&call->id) != NGX_OK) {
            ngx_chat_call_fail(call, 429, "typing too often");
            return NGX_ERROR;
        }

        /* the signal goes once the function has checked the member */
        call->then = call->done;
        call->done = ngx_chat_action_typed;
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

    rc = ngx_chat_presence_lookup(call, users, ngx_chat_action_looked_up);
    json_decref(users);

    if (rc == NGX_DONE) {
        return ngx_chat_call_send(call);
    }

    if (rc == NGX_ERROR) {
        ngx_chat_call_fail(call, 500, "internal error");
    }

    return rc;
}


/*
 * chat_filter: the texts people write for others, masked where a pattern
 * says so, or the action refused.
 */

static ngx_int_t
ngx_chat_action_filter(ngx_chat_call_t *call)
{
    json_t      *v;
    ngx_int_t    rc;
    ngx_str_t    text;
    ngx_uint_t   i;

    static const char  *fields[] = { "content", "title", "description", NULL };

    switch (call->stmt) {
    case NGX_CHAT_SQL_MESSAGE_SEND:
    case NGX_CHAT_SQL_MESSAGE_EDIT:
    case NGX_CHAT_SQL_SCHEDULED_CREATE:
    case NGX_CHAT_SQL_TEMPLATE_SAVE:
    case NGX_CHAT_SQL_CONVERSATION_CREATE:
    case NGX_CHAT_SQL_CONVERSATION_UPDATE:
        break;
    default:
        return NGX_OK;
    }

    for (i = 0; fields[i]; i++) {
        v = json_object_get(call->args, fields[i]);

        if (!json_is_string(v)) {
            continue;
        }

        text.data = (u_char *) json_string_value(v);
        text.len = json_string_length(v);

        rc = ngx_chat_filter_text(call->pool, &call->id.tenant, &text);

        if (rc == NGX_DECLINED) {
            ngx_chat_call_fail(call, 400, "the text is not allowed here "
                               "(chat_filter)");
            call->code = "content_rejected";
            return NGX_ERROR;
        }

        if (rc != NGX_OK
            || (text.data != (u_char *) json_string_value(v)
                && json_object_set_new(call->args, fields[i],
                                       json_stringn((char *) text.data,
                                                    text.len))
                   != 0))
        {
            ngx_chat_call_fail(call, 500, "internal error");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_chat_action_looked_up(ngx_chat_call_t *call)
{
    if (ngx_chat_call_send(call) != NGX_OK) {
        call->done(call);
    }
}


/* the member checked, the typing signal goes out, from here alone */

static void
ngx_chat_action_typed(ngx_chat_call_t *call)
{
    json_t  *conversation;

    if (call->status < 300) {
        conversation = json_object_get(call->args, "conversation_id");

        ngx_chat_typing_set(&call->id, json_integer_value(conversation),
                            json_is_true(json_object_get(call->args,
                                                         "is_typing")));
    }

    call->then(call);
}
