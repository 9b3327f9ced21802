
/*
 * ngx_chat: the types every file of the module shares.
 */


#ifndef _NGX_CHAT_H_INCLUDED_
#define _NGX_CHAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <libpq-fe.h>
#include <jwt.h>

#include "ngx_chat_pure.h"


#define NGX_CHAT_VERSION         "0.1.0"


/* configuration */

typedef struct {
    ngx_str_t                    conninfo;   /* NUL-terminated */
    ngx_uint_t                   size;       /* connections per worker */
    ngx_uint_t                   queue;      /* queries that may wait */
    ngx_msec_t                   timeout;    /* how long they may wait */
} ngx_chat_pg_conf_t;

typedef struct {
    jwt_alg_t                    alg;
    ngx_str_t                    key;
    time_t                       leeway;
    ngx_str_t                    tenant_claim;   /* NUL-terminated */
} ngx_chat_jwt_conf_t;

typedef struct {
    ngx_str_t                    host;       /* an address or a socket path */
    ngx_uint_t                   port;       /* 0 for a unix socket */
    ngx_str_t                    prefix;     /* of every channel name */
} ngx_chat_redis_conf_t;

typedef struct {
    size_t                       message_max;
    size_t                       send_queue;
    ngx_msec_t                   ping;
    ngx_msec_t                   timeout;
    ngx_msec_t                   start_grace;
    ngx_msec_t                   gap_wait;
} ngx_chat_ws_conf_t;

typedef struct {
    ngx_chat_pg_conf_t           pg;
    ngx_chat_redis_conf_t        redis;
    ngx_chat_jwt_conf_t          jwt;
    ngx_chat_ws_conf_t           ws;
    ngx_chat_limits_t            limits;
    size_t                       body_max;
    ngx_msec_t                   edit_window;
    ngx_shm_zone_t              *presence;
    ngx_uint_t                   locations;  /* chat_api, chat_websocket */
    ngx_uint_t                   websockets; /* chat_websocket */
} ngx_chat_main_conf_t;

#define NGX_CHAT_LOC_API         1
#define NGX_CHAT_LOC_WEBSOCKET   2

typedef struct {
    ngx_uint_t                   kind;
    ngx_array_t                 *origins;    /* of ngx_str_t; NULL: any */
} ngx_chat_loc_conf_t;


extern ngx_module_t  ngx_chat_module;


/* nginx connections around sockets that a library owns (libpq, hiredis) */

ngx_connection_t *ngx_chat_conn_wrap(ngx_socket_t fd, void *data,
    ngx_event_handler_pt read, ngx_event_handler_pt write, ngx_log_t *log);
void ngx_chat_conn_release(ngx_connection_t *c, ngx_uint_t closed);
ngx_int_t ngx_chat_conn_want_write(ngx_connection_t *c, ngx_uint_t want);


/* Postgres */

typedef struct ngx_chat_pg_pool_s   ngx_chat_pg_pool_t;
typedef struct ngx_chat_pg_conn_s   ngx_chat_pg_conn_t;
typedef struct ngx_chat_pg_query_s  ngx_chat_pg_query_t;

/* res is NULL when Postgres could not be reached in time */
typedef void (*ngx_chat_pg_handler_pt)(ngx_chat_pg_query_t *q,
    PGresult *res);

#define NGX_CHAT_PG_MAX_PARAMS   4

struct ngx_chat_pg_query_s {
    ngx_queue_t                  queue;      /* in the wait queue */
    ngx_event_t                  timer;      /* the wait for a connection */
    ngx_uint_t                   stmt;
    int                          nparams;
    const char                  *params[NGX_CHAT_PG_MAX_PARAMS];
    ngx_chat_pg_handler_pt       handler;
    void                        *data;
    ngx_chat_pg_conn_t          *conn;       /* it runs there */
    unsigned                     waiting:1;
};

typedef struct {
    ngx_uint_t                   connections;
    ngx_uint_t                   ready;
    ngx_uint_t                   busy;
    ngx_uint_t                   waiting;
    ngx_uint_t                   queue_max;
} ngx_chat_pg_stats_t;

ngx_chat_pg_pool_t *ngx_chat_pg_pool_create(ngx_cycle_t *cycle,
    ngx_chat_pg_conf_t *conf);
void ngx_chat_pg_pool_destroy(ngx_chat_pg_pool_t *pool);
ngx_int_t ngx_chat_pg_send(ngx_chat_pg_pool_t *pool, ngx_chat_pg_query_t *q);
void ngx_chat_pg_cancel(ngx_chat_pg_query_t *q);
void ngx_chat_pg_stats(ngx_chat_pg_pool_t *pool, ngx_chat_pg_stats_t *st);


/* the prepared statements, all in ngx_chat_sql.c */

typedef enum {
    NGX_CHAT_SQL_CONVERSATION_CREATE = 0,
    NGX_CHAT_SQL_CONVERSATION_LIST,
    NGX_CHAT_SQL_CONVERSATION_GET,
    NGX_CHAT_SQL_CONVERSATION_UPDATE,
    NGX_CHAT_SQL_CONVERSATION_ARCHIVE,
    NGX_CHAT_SQL_CONVERSATION_SETTINGS,
    NGX_CHAT_SQL_MEMBER_LIST,
    NGX_CHAT_SQL_MEMBER_ADD,
    NGX_CHAT_SQL_MEMBER_UPDATE,
    NGX_CHAT_SQL_MEMBER_REMOVE,
    NGX_CHAT_SQL_CONVERSATION_READ,
    NGX_CHAT_SQL_UNREAD,
    NGX_CHAT_SQL_MESSAGE_SEND,
    NGX_CHAT_SQL_MESSAGE_LIST,
    NGX_CHAT_SQL_MESSAGE_GET,
    NGX_CHAT_SQL_MESSAGE_EDIT,
    NGX_CHAT_SQL_MESSAGE_DELETE,
    NGX_CHAT_SQL_MESSAGE_PIN,
    NGX_CHAT_SQL_MESSAGE_UNPIN,
    NGX_CHAT_SQL_PIN_LIST,
    NGX_CHAT_SQL_REACTION_ADD,
    NGX_CHAT_SQL_REACTION_REMOVE,
    NGX_CHAT_SQL_RECEIPTS,
    NGX_CHAT_SQL_MESSAGE_FORWARD,
    NGX_CHAT_SQL_SEARCH,
    NGX_CHAT_SQL_PRESENCE_GET,
    NGX_CHAT_SQL_PRESENCE_SET,
    NGX_CHAT_SQL_PRESENCE_CHANGED,
    NGX_CHAT_SQL_TYPING,
    NGX_CHAT_SQL_WS_MEMBERSHIPS,
    NGX_CHAT_SQL_WS_EVENTS,
    NGX_CHAT_SQL_WS_DELIVERED,
    NGX_CHAT_SQL_COUNT
} ngx_chat_sql_e;

typedef struct {
    const char                  *name;
    const char                  *sql;
} ngx_chat_stmt_t;

extern ngx_chat_stmt_t  ngx_chat_stmts[];
extern ngx_uint_t       ngx_chat_nstmts;


/*
 * actions: each change or read is one Postgres function (sql/), run by a
 * "call" that REST and WebSocket build alike
 */

#define NGX_CHAT_A_EDIT_WINDOW   0x01   /* the action needs the edit window */
#define NGX_CHAT_A_LIVENESS      0x02   /* who of args.user_ids is online */
#define NGX_CHAT_A_SELF_LIVENESS 0x04   /* whether the caller is online */
#define NGX_CHAT_A_TYPING        0x08   /* a typing signal follows */
#define NGX_CHAT_A_ELSEWHERE     0x10   /* liveness on other hosts only */
#define NGX_CHAT_A_TYPING_ON     0x20   /* typing_start: is_typing true */

typedef struct ngx_chat_call_s  ngx_chat_call_t;

typedef void (*ngx_chat_call_done_pt)(ngx_chat_call_t *call);

struct ngx_chat_call_s {
    ngx_chat_pg_query_t          query;
    ngx_uint_t                   stmt;
    ngx_uint_t                   flags;
    ngx_chat_identity_t          id;         /* NUL-terminated strings */
    json_t                      *args;       /* the caller holds it */
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;

    ngx_uint_t                   status;
    ngx_str_t                    body;       /* JSON on success */
    ngx_str_t                    error;      /* the message on failure */

    ngx_chat_call_done_pt        done;
    void                        *data;
};

ngx_int_t ngx_chat_call_start(ngx_chat_call_t *call);
ngx_int_t ngx_chat_call_send(ngx_chat_call_t *call);
ngx_int_t ngx_chat_copy(ngx_pool_t *pool, ngx_str_t *dst, void *src,
    size_t len);
ngx_int_t ngx_chat_json_on_pool(ngx_pool_t *pool, json_t *json);
void ngx_chat_call_fail(ngx_chat_call_t *call, ngx_uint_t status,
    const char *text);
const char *ngx_chat_error_code(ngx_uint_t status);


/* auth */

ngx_int_t ngx_chat_auth_init(ngx_conf_t *cf, ngx_chat_jwt_conf_t *jcf);
ngx_int_t ngx_chat_auth_token(ngx_chat_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_pool_t *pool, ngx_log_t *log, ngx_chat_identity_t *id);


/* a refusal to answer later, once: the status and the message */

static ngx_inline ngx_int_t
ngx_chat_refuse(ngx_chat_error_t *err, ngx_uint_t status, const char *text)
{
    err->status = status;
    ngx_cpystrn((u_char *) err->text, (u_char *) text, sizeof(err->text));

    return NGX_ERROR;
}


/* what clients may send: src/ngx_chat_routes.c */

typedef struct {
    ngx_uint_t                   stmt;
    ngx_uint_t                   flags;
    const ngx_chat_field_t      *query;
    const ngx_chat_field_t      *body;
} ngx_chat_api_route_t;

#define NGX_CHAT_R_PUBLIC        0x100  /* no token needed */
#define NGX_CHAT_R_HEALTH        0x200

extern const ngx_chat_route_t  ngx_chat_api_routes[];
extern const ngx_uint_t        ngx_chat_api_nroutes;

typedef enum {
    NGX_CHAT_MSG_ACTION = 0,
    NGX_CHAT_MSG_RESUME,
    NGX_CHAT_MSG_PING,
    NGX_CHAT_MSG_JOIN,
    NGX_CHAT_MSG_LEAVE
} ngx_chat_msg_kind_e;


typedef struct {
    ngx_str_t                    type;
    ngx_uint_t                   kind;
    ngx_uint_t                   stmt;
    ngx_uint_t                   flags;
    const ngx_chat_field_t      *fields;
    /* the answer in the ack: NULL none, "" its members, or under a name */
    const char                  *ack;
} ngx_chat_ws_type_t;

extern const ngx_chat_ws_type_t  ngx_chat_ws_types[];
extern const ngx_uint_t          ngx_chat_ws_ntypes;


/* REST */

ngx_int_t ngx_chat_api_handler(ngx_http_request_t *r);
ngx_int_t ngx_chat_api_init_body_filter(ngx_conf_t *cf);
ngx_int_t ngx_chat_api_bearer(ngx_http_request_t *r, ngx_str_t *token);
ngx_int_t ngx_chat_api_error(ngx_http_request_t *r, ngx_uint_t status,
    u_char *text, size_t len);
ngx_int_t ngx_chat_api_refused(ngx_http_request_t *r, ngx_chat_error_t *err);
ngx_int_t ngx_chat_api_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value);


/* Redis: a publishing and a subscribing connection per worker */

ngx_int_t ngx_chat_redis_init(ngx_cycle_t *cycle);
void ngx_chat_redis_done(void);
void ngx_chat_redis_publish(u_char *channel, size_t channel_len,
    u_char *msg, size_t len);
ngx_int_t ngx_chat_redis_subscribe(ngx_str_t *channel, ngx_uint_t on);

/* keys are built in buffers of a known size */
#define NGX_CHAT_REDIS_PREFIX_MAX  64

/* reply is a redisReply, NULL when the connection went */
typedef void (*ngx_chat_redis_reply_pt)(void *reply, void *data);

ngx_int_t ngx_chat_redis_command(int argc, const char **argv,
    const size_t *lens, ngx_chat_redis_reply_pt handler, void *data);
ngx_uint_t ngx_chat_redis_up(void);


/*
 * An event as it goes out: one WebSocket frame, made once and shared by
 * every connection that sends it.
 */

typedef struct {
    ngx_uint_t                   refs;
    int64_t                      conversation;
    int64_t                      seq;        /* 0: ephemeral */
    ngx_str_t                    subject;    /* who a member event concerns */
    u_char                       op;         /* '+', '-' or 0 */
    size_t                       len;
    u_char                      *frame;
} ngx_chat_event_t;

ngx_chat_event_t *ngx_chat_event_create(u_char *json, size_t len,
    size_t subject_len);
ngx_chat_event_t *ngx_chat_event_frame(ngx_uint_t opcode, u_char *data,
    size_t len);
ngx_chat_event_t *ngx_chat_event_raw(u_char *data, size_t len);
ngx_chat_event_t *ngx_chat_event_from_wire(int64_t conversation,
    u_char *wire, size_t len);
void ngx_chat_event_release(ngx_chat_event_t *ev);


/* fan-out: what this worker follows, and who here wants it */

typedef struct ngx_chat_channel_s  ngx_chat_channel_t;
typedef struct ngx_chat_user_s     ngx_chat_user_t;
typedef struct ngx_chat_session_s  ngx_chat_session_t;

typedef enum {
    NGX_CHAT_SUB_WAITING = 0,    /* the connection has not started */
    NGX_CHAT_SUB_LIVE,           /* pos == the channel's head */
    NGX_CHAT_SUB_CATCHING,       /* behind: reading Postgres */
    NGX_CHAT_SUB_AHEAD           /* the channel is behind it */
} ngx_chat_sub_state_e;

typedef struct {
    ngx_queue_t                  in_channel;
    ngx_queue_t                  in_session;
    ngx_chat_session_t          *session;
    ngx_chat_channel_t          *channel;
    int64_t                      pos;        /* the last seq it was sent */
    int64_t                      reported;   /* pos Postgres was told of */
    ngx_uint_t                   state;
} ngx_chat_sub_t;

ngx_int_t ngx_chat_fanout_init(ngx_cycle_t *cycle);
void ngx_chat_fanout_done(void);
void ngx_chat_fanout_message(u_char *channel, size_t channel_len,
    u_char *msg, size_t len);
void ngx_chat_fanout_confirmed(u_char *channel, size_t len,
    ngx_uint_t subscribed);
void ngx_chat_fanout_redis_up(void);
void ngx_chat_fanout_redis_down(void);
ngx_chat_sub_t *ngx_chat_fanout_follow(ngx_chat_session_t *s,
    int64_t conversation, int64_t pos);
void ngx_chat_fanout_place(ngx_chat_sub_t *sub);
void ngx_chat_fanout_unfollow(ngx_chat_sub_t *sub);
int64_t ngx_chat_fanout_id(ngx_chat_sub_t *sub);
ngx_chat_user_t *ngx_chat_fanout_user(ngx_chat_session_t *s);
void ngx_chat_fanout_leave_user(ngx_chat_session_t *s);


/* WebSocket connections */

/* a frame waiting to be written to one connection */
typedef struct {
    ngx_queue_t                  queue;
    ngx_chat_event_t            *ev;
} ngx_chat_out_t;

struct ngx_chat_session_s {
    ngx_connection_t            *connection;
    ngx_http_request_t          *request;    /* until the takeover */
    ngx_chat_identity_t          id;
    ngx_chat_user_t             *user;
    ngx_queue_t                  in_user;
    ngx_queue_t                  in_worker;

    /* reading: buffers exist only while a frame or message is incomplete */
    u_char                      *partial;
    size_t                       partial_len;
    size_t                       partial_size;
    u_char                      *message;
    size_t                       message_len;
    size_t                       message_size;
    uint32_t                     utf8;
    ngx_msec_t                   last_read;
    ngx_msec_t                   last_ping;

    /* writing */
    ngx_queue_t                  out;
    size_t                       out_bytes;
    size_t                       out_sent;   /* of the first frame */

    /* the chat protocol (ngx_chat_session.c) */
    ngx_queue_t                  subs;
    ngx_queue_t                  calls;
    ngx_uint_t                   ncalls;
    ngx_queue_t                  held;       /* events before the start */
    ngx_uint_t                   nheld;
    json_t                      *resume;     /* waits for the memberships */
    json_t                      *resume_reqs;  /* answered by "resumed" */
    void                        *reading;    /* its Postgres read running */
    ngx_event_t                  timer;
    ngx_msec_t                   start_by;
    json_t                      *views;      /* join/leave before them */

    unsigned                     in_message:1;
    unsigned                     loaded:1;
    unsigned                     started:1;
    unsigned                     resuming:1;
    unsigned                     closing:1;
    unsigned                     close_received:1;
    unsigned                     failed:1;   /* broke the protocol */
    unsigned                     counted:1;  /* in the presence zone */
    unsigned                     fresh:1;    /* partial is not parsed yet */
    unsigned                     paused:1;   /* catch-up waits for writes */
    unsigned                     resync:1;   /* memberships to read again */
};

ngx_int_t ngx_chat_ws_init(ngx_cycle_t *cycle);
void ngx_chat_ws_done(void);
ngx_int_t ngx_chat_ws_handler(ngx_http_request_t *r);
void ngx_chat_ws_send(ngx_chat_session_t *s, ngx_chat_event_t *ev);
ngx_int_t ngx_chat_ws_send_text(ngx_chat_session_t *s, u_char *json,
    size_t len);
void ngx_chat_ws_close(ngx_chat_session_t *s, ngx_uint_t code,
    const char *reason);
void ngx_chat_ws_close_all(ngx_uint_t code);


/* the chat protocol on a connection */

ngx_int_t ngx_chat_session_open(ngx_chat_session_t *s);
void ngx_chat_session_message(ngx_chat_session_t *s, u_char *p, size_t len);
void ngx_chat_session_event(ngx_chat_session_t *s, ngx_chat_event_t *ev);
void ngx_chat_session_follow(ngx_chat_session_t *s, int64_t conversation,
    int64_t from);
void ngx_chat_session_timer(ngx_chat_session_t *s);
void ngx_chat_session_close(ngx_chat_session_t *s);
void ngx_chat_session_report(void);
void ngx_chat_session_resync(ngx_chat_session_t *s);
void ngx_chat_session_drained(ngx_chat_session_t *s);
void ngx_chat_session_reply(ngx_chat_session_t *s, json_t *req,
    const char *type, ngx_str_t *fields);
void ngx_chat_session_error(ngx_chat_session_t *s, json_t *req,
    ngx_uint_t status, u_char *text, size_t len);


/* presence and typing */

typedef void (*ngx_chat_presence_done_pt)(ngx_chat_call_t *call);

char *ngx_chat_presence_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_chat_presence_init_worker(ngx_cycle_t *cycle,
    ngx_shm_zone_t *zone);
void ngx_chat_presence_done(void);
ngx_int_t ngx_chat_presence_connection(ngx_chat_identity_t *id,
    ngx_int_t n);
ngx_uint_t ngx_chat_presence_local(ngx_str_t *tenant, ngx_str_t *user);
void ngx_chat_presence_redis_up(void);
ngx_int_t ngx_chat_presence_lookup(ngx_chat_call_t *call, json_t *users,
    ngx_chat_presence_done_pt done);
ngx_int_t ngx_chat_presence_may_type(ngx_chat_identity_t *id);
void ngx_chat_typing_init(void);
void ngx_chat_typing_done(void);
void ngx_chat_typing_set(ngx_chat_identity_t *id, int64_t conversation,
    ngx_uint_t on);


/* per-worker state */

typedef struct {
    ngx_chat_main_conf_t        *conf;
    ngx_chat_pg_pool_t          *pg;
    ngx_queue_t                  sessions;
    ngx_uint_t                   nsessions;
} ngx_chat_worker_t;

extern ngx_chat_worker_t  ngx_chat_worker;


#endif /* _NGX_CHAT_H_INCLUDED_ */
