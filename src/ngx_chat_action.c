
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
 */


#include "ngx_chat.h"


static void ngx_chat_action_looked_up(ngx_chat_call_t *call);
static void ngx_chat_action_typed(ngx_chat_call_t *call);


/*
 * NGX_OK: call->done will be called.  Otherwise call->status and
 * call->error say why the action could not start.
 */

ngx_int_t
ngx_chat_action_start(ngx_chat_call_t *call)
{
    json_t     *users;
    ngx_int_t   rc;

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
