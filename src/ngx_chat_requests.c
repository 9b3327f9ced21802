
/*
 * ngx_chat: what clients may send.  The REST routes with the fields of
 * their query and body, and the WebSocket messages with theirs; each names
 * the action it runs.  Data only: the module reads it, and so do the unit
 * tests and fuzz targets, which check the fields these lists define.
 */


#include "ngx_chat.h"


/* the fields of each route */

static const char *const  ngx_chat_conversation_types[] = {
    "direct", "group", "channel", "bot", NULL
};

static const char *const  ngx_chat_roles[] = {
    "owner", "admin", "moderator", "member", NULL
};

static const char *const  ngx_chat_added_roles[] = {
    "admin", "moderator", "member", NULL
};


static const char *const  ngx_chat_message_types[] = {
    "text", "emoji", "file", "image", "video", "audio", "system", "call",
    "poll",
    "location", NULL
};


static const char *const  ngx_chat_statuses[] = {
    "online", "away", "busy", "offline", "invisible", NULL
};


static const ngx_chat_field_t  ngx_chat_page_query[] = {
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "cursor", NULL, NGX_CHAT_T_STR, 0, 200, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_conversation_list_query[] = {
    { "archived", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "cursor", NULL, NGX_CHAT_T_STR, 0, 200, NULL },
    ngx_chat_null_field
};

/* a message to send later: what a send takes, and when */
static const ngx_chat_field_t  ngx_chat_scheduled_body[] = {
    { "content", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_REQUIRED, 0, NULL },
    { "send_at", NULL, NGX_CHAT_T_TIME, NGX_CHAT_REQUIRED, 0, NULL },
    { "type", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_message_types },
    { "reply_to", NULL, NGX_CHAT_T_ID, NGX_CHAT_NULLABLE, 0, NULL },
    { "mentions", NULL, NGX_CHAT_T_USERS, 0, 50, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_presence_days_query[] = {
    { "days", NULL, NGX_CHAT_T_SEQ, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_template_body[] = {
    { "name", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 100, NULL },
    { "content", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};

/* a browser's PushSubscription, its keys as toJSON() gives them, flat */
static const ngx_chat_field_t  ngx_chat_push_subscribe_body[] = {
    { "endpoint", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 1024, NULL },
    { "p256dh", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 128, NULL },
    { "auth", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 64, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_push_unsubscribe_query[] = {
    { "endpoint", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 1024, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_direct_body[] = {
    { "user_id", NULL, NGX_CHAT_T_USER, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_conversation_create_body[] = {
    { "type", NULL, NGX_CHAT_T_ENUM, NGX_CHAT_REQUIRED, 0,
      ngx_chat_conversation_types },
    { "title", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 200, NULL },
    { "description", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 2000, NULL },
    { "avatar_url", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 2048, NULL },
    { "member_ids", NULL, NGX_CHAT_T_USERS, 0, 1000, NULL },
    { "max_members", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_conversation_update_body[] = {
    { "title", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 200, NULL },
    { "description", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 2000, NULL },
    { "avatar_url", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 2048, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_conversation_settings_body[] = {
    { "pinned", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    { "archived", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    { "muted_until", NULL, NGX_CHAT_T_TIME, NGX_CHAT_NULLABLE, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_member_add_body[] = {
    { "user_ids", NULL, NGX_CHAT_T_USERS, NGX_CHAT_REQUIRED, 500, NULL },
    { "role", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_added_roles },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_member_update_body[] = {
    { "role", NULL, NGX_CHAT_T_ENUM, NGX_CHAT_REQUIRED, 0, ngx_chat_roles },
    ngx_chat_null_field
};


/* a poll's, in a message of type "poll": its options are short texts */
#define ngx_chat_poll_fields                                                  \
    { "poll_options", NULL, NGX_CHAT_T_USERS, 0, 10, NULL },                  \
    { "poll_multiple", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },                   \
    { "poll_anonymous", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },                  \
    { "poll_closes_at", NULL, NGX_CHAT_T_TIME, NGX_CHAT_NULLABLE, 0, NULL }

static const ngx_chat_field_t  ngx_chat_vote_body[] = {
    { "choices", NULL, NGX_CHAT_T_IDS, NGX_CHAT_REQUIRED, 10, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_read_body[] = {
    { "seq", NULL, NGX_CHAT_T_SEQ, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_message_send_body[] = {
    { "type", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_message_types },
    { "content", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_NULLABLE, 0, NULL },
    { "reply_to", NULL, NGX_CHAT_T_ID, NGX_CHAT_NULLABLE, 0, NULL },
    { "mentions", NULL, NGX_CHAT_T_USERS, 0, 50, NULL },
    { "attachments", NULL, NGX_CHAT_T_IDS, 0, 10, NULL },
    { "client_id", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 128, NULL },
    ngx_chat_poll_fields,
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_message_list_query[] = {
    { "before", NULL, NGX_CHAT_T_SEQ, 0, 0, NULL },
    { "after", NULL, NGX_CHAT_T_SEQ, 0, 0, NULL },
    { "thread", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "cursor", NULL, NGX_CHAT_T_STR, 0, 40, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_message_edit_body[] = {
    { "content", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_reaction_body[] = {
    { "emoji", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 64, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_forward_body[] = {
    { "conversation_id", "target_id", NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0,
      NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_search_query[] = {
    { "q", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 256, NULL },
    { "conversation_id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "sender_id", NULL, NGX_CHAT_T_USER, 0, 0, NULL },
    { "type", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_message_types },
    { "from", NULL, NGX_CHAT_T_TIME, 0, 0, NULL },
    { "to", NULL, NGX_CHAT_T_TIME, 0, 0, NULL },
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "cursor", NULL, NGX_CHAT_T_STR, 0, 40, NULL },
    ngx_chat_null_field
};


static const char *const  ngx_chat_file_kinds[] = {
    "image", "video", "audio", "file", NULL
};

static const ngx_chat_field_t  ngx_chat_upload_query[] = {
    { "name", NULL, NGX_CHAT_T_STR, 0, 1000, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_conversation_files_query[] = {
    { "type", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_file_kinds },
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "cursor", NULL, NGX_CHAT_T_STR, 0, 40, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_presence_query[] = {
    { "user_ids", NULL, NGX_CHAT_T_USERS, NGX_CHAT_REQUIRED, 100, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_presence_body[] = {
    { "status", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_statuses },
    { "custom_status", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 140, NULL },
    { "status_emoji", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 16, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_typing_body[] = {
    { "is_typing", NULL, NGX_CHAT_T_BOOL, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};


#define ngx_chat_api_action(stmt, query, body)                                \
    &(ngx_chat_api_route_t) { stmt, 0, query, body }

const ngx_chat_route_t  ngx_chat_api_routes[] = {

    { NGX_CHAT_GET, "health",
      &(ngx_chat_api_route_t) { 0, NGX_CHAT_R_PUBLIC|NGX_CHAT_R_HEALTH,
                                NULL, NULL } },

    { NGX_CHAT_POST, "conversations",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_CREATE, NULL,
                          ngx_chat_conversation_create_body) },

    { NGX_CHAT_GET, "conversations",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_LIST,
                          ngx_chat_conversation_list_query, NULL) },

    { NGX_CHAT_GET, "conversations/#conversation_id",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_GET, NULL, NULL) },

    { NGX_CHAT_PATCH, "conversations/#conversation_id",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_UPDATE, NULL,
                          ngx_chat_conversation_update_body) },

    { NGX_CHAT_DELETE, "conversations/#conversation_id",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_ARCHIVE, NULL, NULL) },

    { NGX_CHAT_PATCH, "conversations/#conversation_id/me",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_SETTINGS, NULL,
                          ngx_chat_conversation_settings_body) },

    { NGX_CHAT_GET, "conversations/#conversation_id/members",
      ngx_chat_api_action(NGX_CHAT_SQL_MEMBER_LIST, ngx_chat_page_query,
                          NULL) },

    { NGX_CHAT_POST, "conversations/#conversation_id/members",
      ngx_chat_api_action(NGX_CHAT_SQL_MEMBER_ADD, NULL,
                          ngx_chat_member_add_body) },

    { NGX_CHAT_PATCH, "conversations/#conversation_id/members/:user_id",
      ngx_chat_api_action(NGX_CHAT_SQL_MEMBER_UPDATE, NULL,
                          ngx_chat_member_update_body) },

    { NGX_CHAT_DELETE, "conversations/#conversation_id/members/:user_id",
      ngx_chat_api_action(NGX_CHAT_SQL_MEMBER_REMOVE, NULL, NULL) },

    { NGX_CHAT_POST, "conversations/#conversation_id/read",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_READ, NULL,
                          ngx_chat_read_body) },

    { NGX_CHAT_GET, "unread",
      ngx_chat_api_action(NGX_CHAT_SQL_UNREAD, NULL, NULL) },

    { NGX_CHAT_POST, "conversations/#conversation_id/messages",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_MESSAGE_SEND, NGX_CHAT_R_FORM,
                                NULL, ngx_chat_message_send_body } },

    { NGX_CHAT_GET, "conversations/#conversation_id/messages",
      ngx_chat_api_action(NGX_CHAT_SQL_MESSAGE_LIST,
                          ngx_chat_message_list_query, NULL) },

    { NGX_CHAT_GET, "conversations/#conversation_id/messages/#message_id",
      ngx_chat_api_action(NGX_CHAT_SQL_MESSAGE_GET, NULL, NULL) },

    { NGX_CHAT_PATCH, "conversations/#conversation_id/messages/#message_id",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_MESSAGE_EDIT,
                                NGX_CHAT_A_EDIT_WINDOW, NULL,
                                ngx_chat_message_edit_body } },

    { NGX_CHAT_DELETE, "conversations/#conversation_id/messages/#message_id",
      ngx_chat_api_action(NGX_CHAT_SQL_MESSAGE_DELETE, NULL, NULL) },

    { NGX_CHAT_POST,
      "conversations/#conversation_id/messages/#message_id/pin",
      ngx_chat_api_action(NGX_CHAT_SQL_MESSAGE_PIN, NULL, NULL) },

    { NGX_CHAT_DELETE,
      "conversations/#conversation_id/messages/#message_id/pin",
      ngx_chat_api_action(NGX_CHAT_SQL_MESSAGE_UNPIN, NULL, NULL) },

    { NGX_CHAT_GET, "conversations/#conversation_id/pins",
      ngx_chat_api_action(NGX_CHAT_SQL_PIN_LIST, ngx_chat_page_query,
                          NULL) },

    { NGX_CHAT_POST,
      "conversations/#conversation_id/messages/#message_id/reactions",
      ngx_chat_api_action(NGX_CHAT_SQL_REACTION_ADD, NULL,
                          ngx_chat_reaction_body) },

    { NGX_CHAT_DELETE,
      "conversations/#conversation_id/messages/#message_id/reactions/:emoji",
      ngx_chat_api_action(NGX_CHAT_SQL_REACTION_REMOVE, NULL, NULL) },

    { NGX_CHAT_GET,
      "conversations/#conversation_id/messages/#message_id/receipts",
      ngx_chat_api_action(NGX_CHAT_SQL_RECEIPTS, NULL, NULL) },

    { NGX_CHAT_POST,
      "conversations/#conversation_id/messages/#message_id/forward",
      ngx_chat_api_action(NGX_CHAT_SQL_MESSAGE_FORWARD, NULL,
                          ngx_chat_forward_body) },

    { NGX_CHAT_GET, "search",
      ngx_chat_api_action(NGX_CHAT_SQL_SEARCH, ngx_chat_search_query,
                          NULL) },

    { NGX_CHAT_POST, "conversations/#conversation_id/typing",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_TYPING, NGX_CHAT_A_TYPING,
                                NULL, ngx_chat_typing_body } },

    { NGX_CHAT_POST, "files",
      &(ngx_chat_api_route_t) { 0, NGX_CHAT_R_UPLOAD, ngx_chat_upload_query,
                                NULL } },

    { NGX_CHAT_GET, "files/#file_id",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_FILE_GET, NGX_CHAT_R_DOWNLOAD,
                                NULL, NULL } },

    { NGX_CHAT_GET, "files/#file_id/thumbnail",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_FILE_GET,
                                NGX_CHAT_R_DOWNLOAD|NGX_CHAT_R_THUMB,
                                NULL, NULL } },

    { NGX_CHAT_GET, "conversations/#conversation_id/files",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_FILES,
                          ngx_chat_conversation_files_query, NULL) },

    { NGX_CHAT_GET, "presence",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_PRESENCE_GET,
                                NGX_CHAT_A_LIVENESS,
                                ngx_chat_presence_query, NULL } },

    { NGX_CHAT_PUT, "presence/me",
      &(ngx_chat_api_route_t) { NGX_CHAT_SQL_PRESENCE_SET,
                                NGX_CHAT_A_SELF_LIVENESS, NULL,
                                ngx_chat_presence_body } },

    /* later than the routes of t/unit/test_route.c, which counts them */
    { NGX_CHAT_POST,
      "conversations/#conversation_id/messages/#message_id/votes",
      ngx_chat_api_action(NGX_CHAT_SQL_POLL_VOTE, NULL, ngx_chat_vote_body) },

    { NGX_CHAT_DELETE,
      "conversations/#conversation_id/messages/#message_id/votes",
      ngx_chat_api_action(NGX_CHAT_SQL_POLL_VOTE, NULL, NULL) },

    { NGX_CHAT_POST,
      "conversations/#conversation_id/messages/#message_id/close",
      ngx_chat_api_action(NGX_CHAT_SQL_POLL_CLOSE, NULL, NULL) },

    { NGX_CHAT_POST, "conversations/direct",
      ngx_chat_api_action(NGX_CHAT_SQL_CONVERSATION_DIRECT, NULL,
                          ngx_chat_direct_body) },

    { NGX_CHAT_GET, "push/key",
      ngx_chat_api_action(NGX_CHAT_SQL_PUSH_KEY, NULL, NULL) },

    { NGX_CHAT_POST, "push/subscriptions",
      ngx_chat_api_action(NGX_CHAT_SQL_PUSH_SUBSCRIBE, NULL,
                          ngx_chat_push_subscribe_body) },

    { NGX_CHAT_DELETE, "push/subscriptions",
      ngx_chat_api_action(NGX_CHAT_SQL_PUSH_UNSUBSCRIBE,
                          ngx_chat_push_unsubscribe_query, NULL) },

    { NGX_CHAT_POST, "conversations/#conversation_id/scheduled",
      ngx_chat_api_action(NGX_CHAT_SQL_SCHEDULED_CREATE, NULL,
                          ngx_chat_scheduled_body) },

    { NGX_CHAT_GET, "scheduled",
      ngx_chat_api_action(NGX_CHAT_SQL_SCHEDULED_LIST, NULL, NULL) },

    { NGX_CHAT_DELETE, "scheduled/#scheduled_id",
      ngx_chat_api_action(NGX_CHAT_SQL_SCHEDULED_CANCEL, NULL, NULL) },

    { NGX_CHAT_GET, "templates",
      ngx_chat_api_action(NGX_CHAT_SQL_TEMPLATE_LIST, NULL, NULL) },

    { NGX_CHAT_POST, "templates",
      ngx_chat_api_action(NGX_CHAT_SQL_TEMPLATE_SAVE, NULL,
                          ngx_chat_template_body) },

    { NGX_CHAT_DELETE, "templates/#template_id",
      ngx_chat_api_action(NGX_CHAT_SQL_TEMPLATE_DELETE, NULL, NULL) },

    { NGX_CHAT_GET, "presence/days",
      ngx_chat_api_action(NGX_CHAT_SQL_PRESENCE_DAYS,
                          ngx_chat_presence_days_query, NULL) },
};


const ngx_uint_t  ngx_chat_api_nroutes =
    sizeof(ngx_chat_api_routes) / sizeof(ngx_chat_route_t);


static const ngx_chat_field_t  ngx_chat_ws_send_fields[] = {
    { "conversation_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "content", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_NULLABLE, 0, NULL },
    { "message_type", "type", NGX_CHAT_T_ENUM, 0, 0,
      ngx_chat_message_types },
    { "reply_to", NULL, NGX_CHAT_T_ID, NGX_CHAT_NULLABLE, 0, NULL },
    { "mentions", NULL, NGX_CHAT_T_USERS, 0, 50, NULL },
    { "attachments", NULL, NGX_CHAT_T_IDS, 0, 10, NULL },
    { "client_id", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 128, NULL },
    ngx_chat_poll_fields,
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_edit_fields[] = {
    { "message_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "conversation_id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "content", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_message_fields[] = {
    { "message_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "conversation_id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_vote_fields[] = {
    { "message_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "conversation_id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "choices", NULL, NGX_CHAT_T_IDS, NGX_CHAT_REQUIRED, 10, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_reaction_fields[] = {
    { "message_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "conversation_id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "emoji", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 64, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_read_fields[] = {
    { "conversation_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "seq", NULL, NGX_CHAT_T_SEQ, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_conversation_fields[] = {
    { "conversation_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};


static const ngx_chat_field_t  ngx_chat_ws_presence_fields[] = {
    { "status", NULL, NGX_CHAT_T_ENUM, 0, 0, ngx_chat_statuses },
    { "custom_status", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 140, NULL },
    { "status_emoji", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 16, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_resume_fields[] = {
    { "conversations", NULL, NGX_CHAT_T_SEQMAP, NGX_CHAT_REQUIRED, 100000,
      NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_users_fields[] = {
    { "user_ids", NULL, NGX_CHAT_T_USERS, NGX_CHAT_REQUIRED, 100, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_no_fields[] = {
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_call_invite_fields[] = {
    { "conversation_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "video", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    { "screen", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  ngx_chat_ws_call_fields[] = {
    { "call_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};

/* an SDP offer or answer, or an ICE candidate, as the client wrote it */
static const ngx_chat_field_t  ngx_chat_ws_call_signal_fields[] = {
    { "call_id", NULL, NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    { "to", NULL, NGX_CHAT_T_USER, NGX_CHAT_REQUIRED, 0, NULL },
    { "signal", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 16384, NULL },
    ngx_chat_null_field
};

/* a JWT is at most 8192 bytes (ngx_chat_auth.c), and ASCII */
static const ngx_chat_field_t  ngx_chat_ws_refresh_fields[] = {
    { "token", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 8192, NULL },
    ngx_chat_null_field
};


const ngx_chat_ws_type_t  ngx_chat_ws_types[] = {

    { ngx_string("send_message"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_MESSAGE_SEND, 0, ngx_chat_ws_send_fields, "message" },

    { ngx_string("edit_message"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_MESSAGE_EDIT, NGX_CHAT_A_EDIT_WINDOW,
      ngx_chat_ws_edit_fields, "message" },

    { ngx_string("delete_message"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_MESSAGE_DELETE, 0, ngx_chat_ws_message_fields, NULL },

    { ngx_string("vote_poll"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_POLL_VOTE, 0, ngx_chat_ws_vote_fields, "message" },

    { ngx_string("retract_vote"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_POLL_VOTE, 0, ngx_chat_ws_message_fields, "message" },

    { ngx_string("close_poll"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_POLL_CLOSE, 0, ngx_chat_ws_message_fields, "message" },

    { ngx_string("add_reaction"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_REACTION_ADD, 0, ngx_chat_ws_reaction_fields,
      "message" },

    { ngx_string("remove_reaction"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_REACTION_REMOVE, 0, ngx_chat_ws_reaction_fields,
      "message" },

    { ngx_string("mark_read"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_CONVERSATION_READ, 0, ngx_chat_ws_read_fields, "" },

    { ngx_string("typing_start"), NGX_CHAT_MSG_ACTION, NGX_CHAT_SQL_TYPING,
      NGX_CHAT_A_TYPING|NGX_CHAT_A_TYPING_ON,
      ngx_chat_ws_conversation_fields, NULL },

    { ngx_string("typing_stop"), NGX_CHAT_MSG_ACTION, NGX_CHAT_SQL_TYPING,
      NGX_CHAT_A_TYPING, ngx_chat_ws_conversation_fields, NULL },

    { ngx_string("update_presence"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_PRESENCE_SET, NGX_CHAT_A_SELF_LIVENESS,
      ngx_chat_ws_presence_fields, "presence" },

    { ngx_string("join"), NGX_CHAT_MSG_JOIN, NGX_CHAT_SQL_VIEW, 0,
      ngx_chat_ws_conversation_fields, NULL },

    { ngx_string("leave"), NGX_CHAT_MSG_LEAVE, NGX_CHAT_SQL_VIEW, 0,
      ngx_chat_ws_conversation_fields, NULL },

    { ngx_string("presence_subscribe"), NGX_CHAT_MSG_WATCH,
      NGX_CHAT_SQL_PRESENCE_GET, NGX_CHAT_A_LIVENESS,
      ngx_chat_ws_users_fields, "presence" },

    { ngx_string("presence_unsubscribe"), NGX_CHAT_MSG_UNWATCH, 0, 0,
      ngx_chat_ws_users_fields, NULL },

    { ngx_string("resume"), NGX_CHAT_MSG_RESUME, 0, 0,
      ngx_chat_ws_resume_fields, NULL },

    { ngx_string("ping"), NGX_CHAT_MSG_PING, 0, 0, ngx_chat_ws_no_fields,
      NULL },

    { ngx_string("refresh_token"), NGX_CHAT_MSG_REFRESH, 0, 0,
      ngx_chat_ws_refresh_fields, NULL },

    { ngx_string("call_invite"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_CALL_INVITE, 0, ngx_chat_ws_call_invite_fields, "call" },

    { ngx_string("call_accept"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_CALL_ACCEPT, 0, ngx_chat_ws_call_fields, "call" },

    { ngx_string("call_decline"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_CALL_DECLINE, 0, ngx_chat_ws_call_fields, "call" },

    { ngx_string("call_end"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_CALL_END, 0, ngx_chat_ws_call_fields, "call" },

    { ngx_string("call_signal"), NGX_CHAT_MSG_ACTION,
      NGX_CHAT_SQL_CALL_SIGNAL, 0, ngx_chat_ws_call_signal_fields, NULL },
};


const ngx_uint_t  ngx_chat_ws_ntypes =
    sizeof(ngx_chat_ws_types) / sizeof(ngx_chat_ws_type_t);
