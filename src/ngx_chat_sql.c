
/*
 * ngx_chat: every statement the module sends to Postgres, prepared on each
 * connection when it opens.  Each action is one call of a function of the
 * "chat" schema (sql/), so that one round trip does the whole change, in
 * one transaction, and the rules live next to the data they guard.
 *
 * An action function takes (tenant, user, name, args jsonb) and returns
 * rows of (status, channel, body): the row with a status is the answer,
 * the others are events to publish on their channel.
 */


#include "ngx_chat.h"


#define ngx_chat_action_stmt(name)                                            \
    { "chat_" name,                                                           \
      "SELECT status, channel, body FROM chat.api_" name "($1, $2, $3, $4)" }


ngx_chat_stmt_t  ngx_chat_stmts[] = {

    [NGX_CHAT_SQL_CONVERSATION_CREATE] =
        ngx_chat_action_stmt("conversation_create"),
    [NGX_CHAT_SQL_CONVERSATION_LIST] =
        ngx_chat_action_stmt("conversation_list"),
    [NGX_CHAT_SQL_CONVERSATION_GET] =
        ngx_chat_action_stmt("conversation_get"),
    [NGX_CHAT_SQL_CONVERSATION_UPDATE] =
        ngx_chat_action_stmt("conversation_update"),
    [NGX_CHAT_SQL_CONVERSATION_ARCHIVE] =
        ngx_chat_action_stmt("conversation_archive"),
    [NGX_CHAT_SQL_CONVERSATION_SETTINGS] =
        ngx_chat_action_stmt("conversation_settings"),
    [NGX_CHAT_SQL_MEMBER_LIST] =
        ngx_chat_action_stmt("member_list"),
    [NGX_CHAT_SQL_MEMBER_ADD] =
        ngx_chat_action_stmt("member_add"),
    [NGX_CHAT_SQL_MEMBER_UPDATE] =
        ngx_chat_action_stmt("member_update"),
    [NGX_CHAT_SQL_MEMBER_REMOVE] =
        ngx_chat_action_stmt("member_remove"),
    [NGX_CHAT_SQL_CONVERSATION_READ] =
        ngx_chat_action_stmt("conversation_read"),
    [NGX_CHAT_SQL_UNREAD] =
        ngx_chat_action_stmt("unread"),
    [NGX_CHAT_SQL_MESSAGE_SEND] =
        ngx_chat_action_stmt("message_send"),
    [NGX_CHAT_SQL_MESSAGE_LIST] =
        ngx_chat_action_stmt("message_list"),
    [NGX_CHAT_SQL_MESSAGE_GET] =
        ngx_chat_action_stmt("message_get"),
    [NGX_CHAT_SQL_MESSAGE_EDIT] =
        ngx_chat_action_stmt("message_edit"),
    [NGX_CHAT_SQL_MESSAGE_DELETE] =
        ngx_chat_action_stmt("message_delete"),
    [NGX_CHAT_SQL_MESSAGE_PIN] =
        ngx_chat_action_stmt("message_pin"),
    [NGX_CHAT_SQL_MESSAGE_UNPIN] =
        ngx_chat_action_stmt("message_unpin"),
    [NGX_CHAT_SQL_PIN_LIST] =
        ngx_chat_action_stmt("pin_list"),
    [NGX_CHAT_SQL_CONVERSATION_DIRECT] =
        ngx_chat_action_stmt("conversation_direct"),
    [NGX_CHAT_SQL_POLL_VOTE] =
        ngx_chat_action_stmt("poll_vote"),
    [NGX_CHAT_SQL_POLL_CLOSE] =
        ngx_chat_action_stmt("poll_close"),
    [NGX_CHAT_SQL_REACTION_ADD] =
        ngx_chat_action_stmt("reaction_add"),
    [NGX_CHAT_SQL_REACTION_REMOVE] =
        ngx_chat_action_stmt("reaction_remove"),
    [NGX_CHAT_SQL_RECEIPTS] =
        ngx_chat_action_stmt("receipts"),
    [NGX_CHAT_SQL_MESSAGE_FORWARD] =
        ngx_chat_action_stmt("message_forward"),
    [NGX_CHAT_SQL_SEARCH] =
        ngx_chat_action_stmt("search"),
    [NGX_CHAT_SQL_PRESENCE_GET] =
        ngx_chat_action_stmt("presence_get"),
    [NGX_CHAT_SQL_PRESENCE_SET] =
        ngx_chat_action_stmt("presence_set"),
    [NGX_CHAT_SQL_PRESENCE_CHANGED] =
        ngx_chat_action_stmt("presence_changed"),
    [NGX_CHAT_SQL_TYPING] =
        ngx_chat_action_stmt("typing"),

    /* what WebSocket connections read (sql/functions/80_realtime.sql) */

    [NGX_CHAT_SQL_WS_MEMBERSHIPS] =
        { "chat_ws_memberships",
          "SELECT conversation_id, last_seq, joined_seq, peer "
          "FROM chat.ws_memberships($1, $2)" },

    [NGX_CHAT_SQL_WS_EVENTS] =
        { "chat_ws_events",
          "SELECT conversation_id, seq, wire "
          "FROM chat.events_after($1, $2, $3)" },

    [NGX_CHAT_SQL_WS_DELIVERED] =
        { "chat_ws_delivered",
          "SELECT chat.delivered($1, $2, $3, $4)" },

    [NGX_CHAT_SQL_WS_FOLLOWS] =
        { "chat_ws_follows",
          "SELECT channel, conversation_id, joined_seq, peer "
          "FROM chat.ws_follows_since($1, $2)" },

    [NGX_CHAT_SQL_VIEW] =
        ngx_chat_action_stmt("view"),

    [NGX_CHAT_SQL_FILE_CREATE] =
        ngx_chat_action_stmt("file_create"),
    [NGX_CHAT_SQL_FILE_DISCARD] =
        ngx_chat_action_stmt("file_discard"),
    [NGX_CHAT_SQL_FILE_GET] =
        ngx_chat_action_stmt("file_get"),
    [NGX_CHAT_SQL_CONVERSATION_FILES] =
        ngx_chat_action_stmt("conversation_files"),

    [NGX_CHAT_SQL_OUTBOX_CLAIM] =
        { "chat_outbox_claim",
          "SELECT batch, tenant_id, user_id, body, bot "
          "FROM chat.outbox_claim(make_interval(secs => $1::float8), "
          "$2::integer)" },
    [NGX_CHAT_SQL_OUTBOX_RESULT] =
        { "chat_outbox_result",
          "SELECT chat.outbox_result($1::bigint, $2, $3, $4::integer, "
          "$5::integer, make_interval(secs => $6::float8))" },

    /* Web Push (sql/functions/86_push.sql) */
    [NGX_CHAT_SQL_PUSH_KEY] =
        ngx_chat_action_stmt("push_key"),
    [NGX_CHAT_SQL_PUSH_SUBSCRIBE] =
        ngx_chat_action_stmt("push_subscribe"),
    [NGX_CHAT_SQL_PUSH_UNSUBSCRIBE] =
        ngx_chat_action_stmt("push_unsubscribe"),
    [NGX_CHAT_SQL_PUSH_TARGETS] =
        { "chat_push_targets",
          "SELECT id, endpoint, p256dh, auth "
          "FROM chat.push_targets($1, $2)" },
    [NGX_CHAT_SQL_PUSH_GONE] =
        { "chat_push_gone",
          "SELECT chat.push_gone($1::bigint[])" },

    /* scheduled messages and templates (sql/functions/57_scheduled.sql) */
    [NGX_CHAT_SQL_SCHEDULED_CREATE] =
        ngx_chat_action_stmt("scheduled_create"),
    [NGX_CHAT_SQL_SCHEDULED_LIST] =
        ngx_chat_action_stmt("scheduled_list"),
    [NGX_CHAT_SQL_SCHEDULED_CANCEL] =
        ngx_chat_action_stmt("scheduled_cancel"),
    [NGX_CHAT_SQL_SCHEDULED_DUE] =
        ngx_chat_action_stmt("scheduled_due"),
    [NGX_CHAT_SQL_TEMPLATE_SAVE] =
        ngx_chat_action_stmt("template_save"),
    [NGX_CHAT_SQL_TEMPLATE_LIST] =
        ngx_chat_action_stmt("template_list"),
    [NGX_CHAT_SQL_TEMPLATE_DELETE] =
        ngx_chat_action_stmt("template_delete"),

    /* calls (sql/functions/58_calls.sql) */
    [NGX_CHAT_SQL_CALL_INVITE] =
        ngx_chat_action_stmt("call_invite"),
    [NGX_CHAT_SQL_CALL_ACCEPT] =
        ngx_chat_action_stmt("call_accept"),
    [NGX_CHAT_SQL_CALL_DECLINE] =
        ngx_chat_action_stmt("call_decline"),
    [NGX_CHAT_SQL_CALL_END] =
        ngx_chat_action_stmt("call_end"),
    [NGX_CHAT_SQL_CALL_SIGNAL] =
        ngx_chat_action_stmt("call_signal"),
    [NGX_CHAT_SQL_CALLS_EXPIRE] =
        ngx_chat_action_stmt("calls_expire"),
    [NGX_CHAT_SQL_PRESENCE_DAYS] =
        ngx_chat_action_stmt("presence_days"),

    /* one worker of all hosts at a time: the lock ends with the statement */
    [NGX_CHAT_SQL_EVENTS_PRUNE] =
        { "chat_events_prune",
          "SELECT CASE WHEN pg_try_advisory_xact_lock(7240062) "
          "THEN chat.events_prune(make_interval(secs => $1::float8), "
          "$2::integer) ELSE -1 END" },
};


ngx_uint_t  ngx_chat_nstmts = sizeof(ngx_chat_stmts) / sizeof(ngx_chat_stmt_t);
