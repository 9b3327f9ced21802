
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
#include <openssl/evp.h>

#include "ngx_chat_pure.h"


#define NGX_CHAT_VERSION         "0.1.0"


/* configuration */

typedef struct {
    ngx_str_t                    conninfo;   /* NUL-terminated */
    ngx_uint_t                   size;       /* connections per worker */
    ngx_uint_t                   queue;      /* queries that may wait */
    ngx_msec_t                   timeout;    /* how long they may wait */
    ngx_str_t                    options;    /* "-c name=value ...", or "" */
} ngx_chat_pg_conf_t;

typedef struct {
    jwt_alg_t                    alg;
    ngx_str_t                    key;
    time_t                       leeway;
    ngx_str_t                    tenant_claim;   /* NUL-terminated */
    ngx_array_t                 *keep;       /* claims the policy reads */
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

/* chat_files, chat_files_max, chat_files_quota, chat_files_types, and
   chat_thumbnails */
typedef struct {
    ngx_str_t                    store;      /* no trailing slash */
    ngx_str_t                    uri;        /* of the internal location */
    ngx_str_t                    url;        /* of the files route */
    off_t                        max;
    off_t                        quota;      /* 0: none */
    ngx_array_t                 *types;      /* of ngx_str_t; NULL: any */
    ngx_flag_t                   thumbnails;
    ngx_str_t                    pool_name;
    void                        *thread_pool;  /* ngx_thread_pool_t */
    ngx_uint_t                   thumb_side;
    uint64_t                     pixels_max;
    ngx_array_t                  temp_paths;   /* of ngx_path_t *: checked */
} ngx_chat_files_conf_t;

/* chat_limit_zone, chat_limit, chat_limit_close */
typedef enum {
    NGX_CHAT_LIMIT_MESSAGES = 0,   /* messages sent, per user */
    NGX_CHAT_LIMIT_REQUESTS,       /* REST requests and WebSocket messages */
    NGX_CHAT_LIMIT_CONNECTS,       /* new WebSocket connections, per user */
    NGX_CHAT_LIMIT_ADDRESSES,      /* new WebSocket connections, per address */
    NGX_CHAT_LIMIT_UPLOADS,        /* uploads, per user */
    NGX_CHAT_LIMIT_CONNECTIONS,    /* open WebSocket connections, per user */
    NGX_CHAT_LIMIT_KINDS
} ngx_chat_limit_e;

/* chat_max: members, reactions, reactions_per_user, conversations */
#define NGX_CHAT_MAX_KINDS       4

/* kind, tenant, "\n", user */
#define NGX_CHAT_LIMIT_KEY       (1 + 128 + 1 + 128)

typedef struct {
    uint64_t                     rate;       /* millionths a second; 0: off */
    uint64_t                     burst;      /* thousandths */
    ngx_uint_t                   max;        /* NGX_CHAT_LIMIT_CONNECTIONS */
    ngx_uint_t                   cluster;    /* counted in Redis too */
} ngx_chat_limit_rule_t;

typedef struct {
    ngx_shm_zone_t              *zone;
    ngx_chat_limit_rule_t        rules[NGX_CHAT_LIMIT_KINDS];
    ngx_uint_t                   close_after;  /* refusals in a row; 0 */
} ngx_chat_limit_conf_t;

/* where a POST goes (ngx_chat_hook.c) */
typedef struct {
    ngx_addr_t                  *addr;
    ngx_str_t                    host;       /* for the Host header */
    ngx_str_t                    uri;
    ngx_msec_t                   timeout;    /* of one POST */
#if (NGX_SSL)
    ngx_ssl_t                   *ssl;        /* https; NULL: http */
#endif
    ngx_str_t                    name;       /* for SNI and the check */
    ngx_uint_t                   ip;         /* the name is an address */
} ngx_chat_hook_target_t;

/* chat_webhook */
typedef struct {
    ngx_chat_hook_target_t       target;     /* addr NULL: no webhook */
    ngx_str_t                    tenant;     /* tenant=; empty: the rest */
    ngx_str_t                    secret;     /* the key's bytes */
    ngx_msec_t                   window;     /* notifications gather */
    time_t                       max_age;    /* then outbox_dead */
} ngx_chat_webhook_conf_t;

/* chat_push */
typedef struct {
    EVP_PKEY                    *key;        /* VAPID; NULL: no Web Push */
    ngx_str_t                    public_key; /* base64url, for browsers */
    ngx_str_t                    subject;    /* mailto: or https: */
    ngx_msec_t                   window;     /* without chat_webhook */
    time_t                       max_age;    /* without chat_webhook */
    ngx_msec_t                   timeout;    /* of one POST */
    time_t                       ttl;        /* kept by the push service */
#if (NGX_SSL)
    ngx_ssl_t                   *ssl;
#endif
    ngx_http_core_loc_conf_t    *core;       /* its resolver, for names */
} ngx_chat_push_conf_t;

typedef struct {
    ngx_chat_pg_conf_t           pg;
    ngx_chat_redis_conf_t        redis;
    ngx_chat_jwt_conf_t          jwt;
    ngx_chat_ws_conf_t           ws;
    ngx_chat_files_conf_t        files;
    ngx_chat_limit_conf_t        limit;
    ngx_chat_webhook_conf_t      webhook;    /* without tenant= */
    ngx_array_t                 *tenant_webhooks;  /* of the conf, tenant= */
    ngx_chat_push_conf_t         push;
    ngx_str_t                    policy;     /* chat_policy: a function */
    ngx_str_t                    ice_servers;  /* JSON, for hello */
    ngx_shm_zone_t              *metrics;    /* chat_metrics; NULL: none */
    ngx_uint_t                   max[NGX_CHAT_MAX_KINDS];  /* chat_max */
    ngx_array_t                 *filters;    /* chat_filter; NULL: none */
    ngx_chat_limits_t            limits;
    size_t                       body_max;
    ngx_msec_t                   edit_window;
    time_t                       events_retention;   /* 0: for ever */
    ngx_shm_zone_t              *presence;
    ngx_uint_t                   locations;  /* chat_api, chat_websocket */
    ngx_uint_t                   websockets; /* chat_websocket */
} ngx_chat_main_conf_t;

#define NGX_CHAT_LOC_API         1
#define NGX_CHAT_LOC_WEBSOCKET   2

typedef struct {
    ngx_uint_t                   kind;
    ngx_array_t                 *origins;    /* of ngx_str_t; NULL: any */
    ngx_array_t                 *cors;       /* of ngx_str_t; NULL: none */
} ngx_chat_loc_conf_t;


extern ngx_module_t  ngx_chat_module;


/*
 * The layers, each calling only those below it; a lower one reports
 * upward through handlers it was given (docs/design.md):
 *
 *   module      directives, the worker's start and tick: wires the rest
 *   front       api (REST), session (the chat protocol on a WebSocket),
 *               action (one action for both)
 *   core        call, fan-out, presence, typing, auth, the SQL statements
 *   transport   pg, redis, ws, event (frames), http (answers), conn
 *   pure        args, router, claims, ws_frame (ngx_chat_pure.h)
 */


/* small helpers every layer uses */

/* a NUL-terminated copy: libpq and jansson take C strings */

static ngx_inline ngx_int_t
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


static void
ngx_chat_json_cleanup(void *data)
{
    json_decref(data);
}


/* a JSON value that lives as long as a pool */

static ngx_inline ngx_int_t
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


/* a refusal to answer later, once: the status and the message */

static ngx_inline ngx_int_t
ngx_chat_refuse(ngx_chat_error_t *err, ngx_uint_t status, const char *text)
{
    err->status = status;
    ngx_cpystrn((u_char *) err->text, (u_char *) text, sizeof(err->text));

    return NGX_ERROR;
}


/* transport: nginx connections around sockets a library owns */

ngx_connection_t *ngx_chat_conn_wrap(ngx_socket_t fd, void *data,
    ngx_event_handler_pt read, ngx_event_handler_pt write, ngx_log_t *log);
void ngx_chat_conn_release(ngx_connection_t *c, ngx_uint_t closed);
ngx_int_t ngx_chat_conn_want_write(ngx_connection_t *c, ngx_uint_t want);


/* transport: Postgres */

typedef struct ngx_chat_pg_pool_s   ngx_chat_pg_pool_t;
typedef struct ngx_chat_pg_conn_s   ngx_chat_pg_conn_t;
typedef struct ngx_chat_pg_query_s  ngx_chat_pg_query_t;

/* res is NULL when Postgres could not be reached in time */
typedef void (*ngx_chat_pg_handler_pt)(ngx_chat_pg_query_t *q,
    PGresult *res);

#define NGX_CHAT_PG_MAX_PARAMS   6

struct ngx_chat_pg_query_s {
    ngx_queue_t                  queue;      /* in the wait queue */
    ngx_event_t                  timer;      /* the wait for a connection */
    ngx_uint_t                   stmt;
    int                          nparams;
    const char                  *params[NGX_CHAT_PG_MAX_PARAMS];
    ngx_chat_pg_handler_pt       handler;
    void                        *data;
    ngx_msec_t                   sent;       /* when: for the metrics */
    ngx_chat_pg_pool_t          *pool;       /* it was sent to */
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
    NGX_CHAT_SQL_CONVERSATION_DIRECT,
    NGX_CHAT_SQL_POLL_VOTE,
    NGX_CHAT_SQL_POLL_CLOSE,
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
    NGX_CHAT_SQL_WS_FOLLOWS,
    NGX_CHAT_SQL_VIEW,
    NGX_CHAT_SQL_EVENTS_PRUNE,
    NGX_CHAT_SQL_FILE_CREATE,
    NGX_CHAT_SQL_FILE_DISCARD,
    NGX_CHAT_SQL_FILE_GET,
    NGX_CHAT_SQL_CONVERSATION_FILES,
    NGX_CHAT_SQL_OUTBOX_CLAIM,
    NGX_CHAT_SQL_OUTBOX_RESULT,
    NGX_CHAT_SQL_PUSH_KEY,
    NGX_CHAT_SQL_PUSH_SUBSCRIBE,
    NGX_CHAT_SQL_PUSH_UNSUBSCRIBE,
    NGX_CHAT_SQL_PUSH_TARGETS,
    NGX_CHAT_SQL_PUSH_GONE,
    NGX_CHAT_SQL_SCHEDULED_CREATE,
    NGX_CHAT_SQL_SCHEDULED_LIST,
    NGX_CHAT_SQL_SCHEDULED_CANCEL,
    NGX_CHAT_SQL_SCHEDULED_DUE,
    NGX_CHAT_SQL_TEMPLATE_SAVE,
    NGX_CHAT_SQL_TEMPLATE_LIST,
    NGX_CHAT_SQL_TEMPLATE_DELETE,
    NGX_CHAT_SQL_CALL_INVITE,
    NGX_CHAT_SQL_CALL_ACCEPT,
    NGX_CHAT_SQL_CALL_DECLINE,
    NGX_CHAT_SQL_CALL_END,
    NGX_CHAT_SQL_CALL_SIGNAL,
    NGX_CHAT_SQL_CALLS_EXPIRE,
    NGX_CHAT_SQL_PRESENCE_DAYS,
    NGX_CHAT_SQL_COUNT
} ngx_chat_sql_e;

typedef struct {
    const char                  *name;
    const char                  *sql;
} ngx_chat_stmt_t;

extern ngx_chat_stmt_t  ngx_chat_stmts[];
extern ngx_uint_t       ngx_chat_nstmts;


/* transport: Redis, a publishing and a subscribing link per worker */

/* what the links report, to the handlers given at init */
typedef struct {
    /* a message on a channel this worker subscribed to */
    void  (*message)(u_char *channel, size_t channel_len, u_char *msg,
              size_t len);
    /* Redis answered a SUBSCRIBE (on) or an UNSUBSCRIBE */
    void  (*confirmed)(u_char *channel, size_t len, ngx_uint_t on);
    /* the subscribing link came (up) or went, with its subscriptions */
    void  (*subscriber)(ngx_uint_t up);
    /* the publishing link came: commands can go */
    void  (*publisher_up)(void);
} ngx_chat_redis_handlers_t;

ngx_int_t ngx_chat_redis_init(ngx_cycle_t *cycle, ngx_chat_redis_conf_t *conf,
    const ngx_chat_redis_handlers_t *handlers);
void ngx_chat_redis_done(void);
void ngx_chat_redis_publish(u_char *channel, size_t channel_len,
    u_char *msg, size_t len);
ngx_int_t ngx_chat_redis_subscribe(ngx_str_t *channels, ngx_uint_t n,
    ngx_uint_t on);

/* keys are built in buffers of a known size */
#define NGX_CHAT_REDIS_PREFIX_MAX  64

/* reply is a redisReply, NULL when the connection went */
typedef void (*ngx_chat_redis_reply_pt)(void *reply, void *data);

ngx_int_t ngx_chat_redis_command(int argc, const char **argv,
    const size_t *lens, ngx_chat_redis_reply_pt handler, void *data);
ngx_uint_t ngx_chat_redis_up(void);
void ngx_chat_redis_links(ngx_uint_t *publisher, ngx_uint_t *subscriber);
size_t ngx_chat_redis_pending(void);


/*
 * transport: an event as it goes out, one WebSocket frame, made once and
 * shared by every connection that sends it
 */

typedef struct {
    ngx_uint_t                   refs;
    int64_t                      conversation;
    int64_t                      seq;        /* 0: ephemeral */
    ngx_str_t                    subject;    /* who a member event concerns */
    u_char                       op;         /* '+', '-', '!' or 0 */
    size_t                       len;
    u_char                      *frame;
} ngx_chat_event_t;

ngx_chat_event_t *ngx_chat_event_create(u_char *json, size_t len,
    size_t subject_len);
ngx_chat_event_t *ngx_chat_event_control(ngx_uint_t opcode, u_char *data,
    size_t len);
ngx_chat_event_t *ngx_chat_event_from_wire(int64_t conversation,
    u_char *wire, size_t len);
ngx_uint_t ngx_chat_event_concerns(ngx_chat_event_t *ev, u_char op,
    ngx_str_t *user);
void ngx_chat_event_release(ngx_chat_event_t *ev);


/* transport: answers in the API's shape */

const char *ngx_chat_error_code(ngx_uint_t status);
time_t ngx_chat_retry_after(ngx_uint_t status);
size_t ngx_chat_error_object_len(u_char *text, size_t len);
u_char *ngx_chat_error_object(u_char *p, ngx_uint_t status,
    const char *code, u_char *text, size_t len);
u_char *ngx_chat_error_object_retry(u_char *p, ngx_uint_t status,
    const char *code, time_t retry, u_char *text, size_t len);
u_char *ngx_chat_error_reason(u_char *p, const char *reason);

/* the longest error code */
#define NGX_CHAT_CODE_MAX        sizeof("unsupported_media_type")
ngx_int_t ngx_chat_http_bearer(ngx_http_request_t *r, ngx_str_t *token);
ngx_int_t ngx_chat_http_bearer_peek(ngx_http_request_t *r, ngx_str_t *token);
ngx_int_t ngx_chat_add_variables(ngx_conf_t *cf);
void ngx_chat_http_hide_token(ngx_http_request_t *r);
ngx_int_t ngx_chat_http_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);
ngx_int_t ngx_chat_http_error(ngx_http_request_t *r, ngx_uint_t status,
    u_char *text, size_t len);
ngx_int_t ngx_chat_http_error_as(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, u_char *text, size_t len);
ngx_int_t ngx_chat_http_error_retry(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, time_t retry, u_char *text, size_t len);
ngx_int_t ngx_chat_http_refuse(ngx_http_request_t *r, ngx_chat_error_t *err);
ngx_int_t ngx_chat_http_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
ngx_table_elt_t *ngx_chat_http_header_in(ngx_http_request_t *r, char *name);


/* transport: WebSocket connections */

typedef struct ngx_chat_ws_s  ngx_chat_ws_t;

/* what a connection reports to the layer above it */
typedef struct {
    /* a whole text message, valid UTF-8 */
    void  (*message)(ngx_chat_ws_t *ws, u_char *p, size_t len);
    /* the time asked for with ngx_chat_ws_wake() has come */
    void  (*timer)(ngx_chat_ws_t *ws);
    /* the send queue has room again (after ngx_chat_ws_want_room()) */
    void  (*drained)(ngx_chat_ws_t *ws);
    /* the connection goes: the last call */
    void  (*closed)(ngx_chat_ws_t *ws);
} ngx_chat_ws_handlers_t;

typedef struct {
    ngx_str_t                    key;
    ngx_uint_t                   subprotocol;  /* "chat.v1" offered */
} ngx_chat_ws_handshake_t;

struct ngx_chat_ws_s {
    ngx_connection_t                *connection;
    ngx_http_request_t              *request;    /* until the takeover */
    ngx_chat_ws_conf_t              *conf;
    const ngx_chat_ws_handlers_t    *handlers;
    void                            *data;
    ngx_queue_t                      in_worker;

    ngx_chat_ws_reader_t             reader;
    ngx_msec_t                       last_read;
    ngx_msec_t                       last_ping;
    ngx_msec_t                       wake;       /* the upper layer's; 0 */

    ngx_chain_t                     *out;        /* frames, in order */
    ngx_chain_t                    **out_last;
    size_t                           out_bytes;

    ngx_event_t                      timer;

    unsigned                         closing:1;
    unsigned                         close_received:1;
    unsigned                         lingering:1;
    unsigned                         fresh:1;    /* bytes with the handshake */
    unsigned                         want_room:1;
};

ngx_int_t ngx_chat_ws_init(ngx_cycle_t *cycle, ngx_chat_ws_conf_t *conf);
void ngx_chat_ws_done(void);
ngx_int_t ngx_chat_ws_check(ngx_http_request_t *r, ngx_array_t *origins,
    ngx_chat_ws_handshake_t *hs, ngx_chat_error_t *err);
ngx_int_t ngx_chat_ws_token(ngx_http_request_t *r, ngx_str_t *token);
ngx_int_t ngx_chat_ws_token_peek(ngx_http_request_t *r, ngx_str_t *token);
ngx_chat_ws_t *ngx_chat_ws_upgrade(ngx_http_request_t *r,
    ngx_chat_ws_handshake_t *hs, ngx_chat_ws_conf_t *conf,
    const ngx_chat_ws_handlers_t *handlers, void *data);
void ngx_chat_ws_send(ngx_chat_ws_t *ws, ngx_chat_event_t *ev);
ngx_int_t ngx_chat_ws_send_text(ngx_chat_ws_t *ws, u_char *json,
    size_t len);
size_t ngx_chat_ws_queued(ngx_chat_ws_t *ws);
void ngx_chat_ws_wake(ngx_chat_ws_t *ws, ngx_msec_t after);
void ngx_chat_ws_close(ngx_chat_ws_t *ws, ngx_uint_t code,
    const char *reason);
void ngx_chat_ws_close_all(ngx_uint_t code, const char *reason);
ngx_uint_t ngx_chat_ws_connections(void);

#define ngx_chat_ws_want_room(ws)  (ws)->want_room = 1


/* core: auth */

ngx_int_t ngx_chat_auth_init(ngx_conf_t *cf, ngx_chat_jwt_conf_t *jcf);
ngx_int_t ngx_chat_auth_token(ngx_chat_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_pool_t *pool, ngx_log_t *log, ngx_chat_identity_t *id);
ngx_int_t ngx_chat_auth_check(ngx_chat_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_pool_t *pool, ngx_log_t *log, ngx_chat_identity_t *id,
    const char **reason);
const char *ngx_chat_auth_reason(ngx_pool_t *pool);


/*
 * core: a call of one action's function in Postgres; each change or read
 * is one function (sql/), run by a call that REST and WebSocket build
 * alike (ngx_chat_action.c)
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
    const char                  *code;       /* NULL: the status's own */
    time_t                       retry;      /* retry_after; 0: the status's */
    ngx_str_t                    body;       /* JSON on success */
    ngx_str_t                    error;      /* the message on failure */

    ngx_chat_call_done_pt        done;
    ngx_chat_call_done_pt        then;       /* the caller's, after done */
    void                        *data;
};

ngx_chat_call_t *ngx_chat_call_create(ngx_str_t *tenant, ngx_str_t *user);
ngx_int_t ngx_chat_call_send(ngx_chat_call_t *call);
void ngx_chat_call_fail(ngx_chat_call_t *call, ngx_uint_t status,
    const char *text);


/* core: fan-out, what this worker follows and who here wants it */

typedef struct ngx_chat_channel_s   ngx_chat_channel_t;
typedef struct ngx_chat_user_s      ngx_chat_user_t;
typedef struct ngx_chat_follower_s  ngx_chat_follower_t;

typedef enum {
    NGX_CHAT_SUB_WAITING = 0,    /* the follower has not started */
    NGX_CHAT_SUB_LIVE,           /* pos == the channel's head */
    NGX_CHAT_SUB_CATCHING,       /* behind: reading Postgres */
    NGX_CHAT_SUB_AHEAD           /* the channel is behind it */
} ngx_chat_sub_state_e;

/* one follower's subscription to one conversation */
typedef struct {
    ngx_rbtree_node_t            node;       /* key: the conversation id */
    ngx_queue_t                  in_channel;
    ngx_queue_t                  in_state;   /* waiting or catching */
    ngx_queue_t                  in_report;
    ngx_chat_follower_t         *follower;
    ngx_chat_channel_t          *channel;
    int64_t                      pos;        /* the last seq it was sent */
    int64_t                      reported;   /* pos Postgres was told of */
    unsigned                     state:2;
    unsigned                     unreported:1;
} ngx_chat_sub_t;

#define ngx_chat_sub_conversation(sub)  ((int64_t) (sub)->node.key)

/* what the fan-out tells a follower */
typedef struct {
    /* an event of a conversation it follows, or of its user */
    void  (*event)(ngx_chat_follower_t *f, ngx_chat_event_t *ev);
    /*
     * its user is in a conversation it may not follow yet: follow it from
     * that seq; peer: the other member of a direct conversation, or NULL
     */
    void  (*follow)(ngx_chat_follower_t *f, int64_t conversation,
              int64_t from, ngx_str_t *peer);
} ngx_chat_follower_handlers_t;

struct ngx_chat_follower_s {
    const ngx_chat_follower_handlers_t  *handlers;
    ngx_chat_identity_t         *id;
    ngx_chat_user_t             *user;
    ngx_queue_t                  in_user;
    ngx_rbtree_t                 subs;       /* by conversation */
    ngx_rbtree_node_t            sentinel;
    ngx_uint_t                   nsubs;
    ngx_queue_t                  waiting;    /* subs not started yet */
    ngx_queue_t                  catching;   /* subs behind their channel */
    ngx_uint_t                   ncatching;
    ngx_rbtree_t                 watches;    /* users whose presence */
    ngx_rbtree_node_t            watches_sentinel;
    ngx_uint_t                   nwatches;
};

/* why a follower watches a user's presence */
#define NGX_CHAT_WATCH_DIRECT    0x01   /* the other member of a direct */
#define NGX_CHAT_WATCH_VIEW      0x02   /* a member of the open conversation */
#define NGX_CHAT_WATCH_ASKED     0x04   /* named by presence_subscribe */

ngx_int_t ngx_chat_fanout_init(ngx_cycle_t *cycle, ngx_chat_pg_pool_t *pg,
    ngx_msec_t gap_wait);
void ngx_chat_fanout_done(void);
void ngx_chat_fanout_message(u_char *channel, size_t channel_len,
    u_char *msg, size_t len);
void ngx_chat_fanout_confirmed(u_char *channel, size_t len,
    ngx_uint_t subscribed);
void ngx_chat_fanout_subscriber(ngx_uint_t up);
void ngx_chat_fanout_expire(void);
void ngx_chat_fanout_report(void);

void ngx_chat_fanout_follower_init(ngx_chat_follower_t *f,
    const ngx_chat_follower_handlers_t *handlers, ngx_chat_identity_t *id);
ngx_int_t ngx_chat_fanout_join(ngx_chat_follower_t *f);
void ngx_chat_fanout_leave(ngx_chat_follower_t *f);
ngx_chat_sub_t *ngx_chat_fanout_follow(ngx_chat_follower_t *f,
    int64_t conversation, int64_t pos);
ngx_chat_sub_t *ngx_chat_fanout_find(ngx_chat_follower_t *f,
    int64_t conversation);
void ngx_chat_fanout_place(ngx_chat_sub_t *sub);
void ngx_chat_fanout_sent(ngx_chat_sub_t *sub, int64_t seq);
void ngx_chat_fanout_unfollow(ngx_chat_sub_t *sub);
ngx_int_t ngx_chat_fanout_watch(ngx_chat_follower_t *f, ngx_str_t *user,
    ngx_uint_t reason);
void ngx_chat_fanout_unwatch(ngx_chat_follower_t *f, ngx_str_t *user,
    ngx_uint_t reason);
void ngx_chat_fanout_unwatch_all(ngx_chat_follower_t *f, ngx_uint_t reason);
void ngx_chat_fanout_recatch(ngx_chat_follower_t *f);


/* core: presence */

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

/* what the workers of a host share of a user's typing */

#define NGX_CHAT_TYPING_EXPIRE       5000
#define NGX_CHAT_TYPING_REPEAT       3000
#define NGX_CHAT_TYPING_RATE         5       /* a second, per user */

#define NGX_CHAT_TYPING_START        0
#define NGX_CHAT_TYPING_STOP         1
#define NGX_CHAT_TYPING_END          2

ngx_int_t ngx_chat_presence_typing(ngx_str_t *tenant, ngx_str_t *user,
    int64_t conversation, ngx_uint_t what, ngx_msec_t *left);
ngx_int_t ngx_chat_presence_typing_rate(ngx_chat_identity_t *id);


/* core: how long events are kept */

void ngx_chat_retention_tick(void);


/*
 * transport: the start of a shared zone of ours, and the metrics: every
 * layer counts into them, and they call nothing above
 */

ngx_int_t ngx_chat_zone_init(ngx_shm_zone_t *shm_zone, size_t size,
    const char *what, void **sh, ngx_slab_pool_t **shpool);


/* transport: metrics (chat_metrics) */

typedef enum {
    NGX_CHAT_M_WS_OPENED = 0,
    NGX_CHAT_M_WS_FRAMES_IN,
    NGX_CHAT_M_WS_FRAMES_OUT,
    NGX_CHAT_M_WS_BYTES_IN,
    NGX_CHAT_M_WS_BYTES_OUT,
    NGX_CHAT_M_REST_REQUESTS,
    NGX_CHAT_M_MESSAGES,
    NGX_CHAT_M_DELIVERIES,
    NGX_CHAT_M_ACKS,
    NGX_CHAT_M_PG_QUERIES,
    NGX_CHAT_M_PG_RECONNECTS,
    NGX_CHAT_M_REDIS_RECONNECTS,
    NGX_CHAT_M_UPLOADS,
    NGX_CHAT_M_UPLOAD_BYTES,
    NGX_CHAT_M_OUTBOX_SENT,
    NGX_CHAT_M_OUTBOX_FAILED,
    NGX_CHAT_M_COUNT
} ngx_chat_metric_e;

typedef enum {
    NGX_CHAT_G_WS = 0,
    NGX_CHAT_G_PG_BUSY,
    NGX_CHAT_G_PG_WAITING,
    NGX_CHAT_G_REDIS_UP,
    NGX_CHAT_G_REDIS_PENDING,
    NGX_CHAT_G_COUNT
} ngx_chat_gauge_e;

#define NGX_CHAT_METRICS_STATUSES  15
#define NGX_CHAT_METRICS_BUCKETS   12

extern ngx_atomic_t  *ngx_chat_metric_counters;
extern ngx_atomic_t  *ngx_chat_metric_gauges;

/* statements: nothing without a chat_metrics location */

#define ngx_chat_metric_add(m, n)                                             \
    do {                                                                      \
        if (ngx_chat_metric_counters) {                                       \
            (void) ngx_atomic_fetch_add(&ngx_chat_metric_counters[m], n);     \
        }                                                                     \
    } while (0)

#define ngx_chat_gauge_add(g, n)                                              \
    do {                                                                      \
        if (ngx_chat_metric_gauges) {                                         \
            (void) ngx_atomic_fetch_add(&ngx_chat_metric_gauges[g], n);       \
        }                                                                     \
    } while (0)

#define ngx_chat_gauge_set(g, v)                                              \
    do {                                                                      \
        if (ngx_chat_metric_gauges) {                                         \
            ngx_chat_metric_gauges[g] = (ngx_atomic_uint_t) (v);              \
        }                                                                     \
    } while (0)

char *ngx_chat_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_chat_metrics_init_worker(ngx_cycle_t *cycle,
    ngx_shm_zone_t *zone);
ngx_int_t ngx_chat_metrics_handler(ngx_http_request_t *r);
void ngx_chat_metrics_status(ngx_uint_t status);
void ngx_chat_metrics_limited(ngx_uint_t kind);
void ngx_chat_metrics_pg_query(ngx_msec_t ms);


/* core: rate limits in shared memory */

char *ngx_chat_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_chat_limit_user(ngx_uint_t kind, ngx_chat_identity_t *id,
    time_t *retry);
ngx_int_t ngx_chat_limit_address(ngx_uint_t kind, ngx_connection_t *c,
    time_t *retry);


/* transport: a POST to a webhook */

typedef struct ngx_chat_hook_s  ngx_chat_hook_t;

/* status 0: no answer (error says why) */
typedef void (*ngx_chat_hook_done_pt)(void *data, ngx_uint_t status,
    time_t retry, const char *error);

ngx_int_t ngx_chat_hook_post(ngx_pool_t *pool, ngx_chat_hook_target_t *to,
    ngx_str_t *headers, ngx_str_t *body, ngx_chat_hook_done_pt done,
    void *data);
char *ngx_chat_hook_target(ngx_conf_t *cf, ngx_chat_hook_target_t *to,
    ngx_url_t *u, ngx_uint_t https);
ngx_int_t ngx_chat_hook_name(ngx_pool_t *pool, ngx_chat_hook_target_t *to,
    ngx_str_t *host);
#if (NGX_SSL)
char *ngx_chat_hook_ssl(ngx_conf_t *cf, ngx_ssl_t **ssl, ngx_str_t *ca);
#endif


/* core: the outbox, delivered to the webhook and by Web Push */

char *ngx_chat_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_chat_outbox_tick(void);


/* core: scheduled messages, posted at their time */

void ngx_chat_scheduled_tick(void);
ngx_uint_t ngx_chat_outbox_on(ngx_chat_main_conf_t *mcf);
ngx_msec_t ngx_chat_outbox_window(ngx_chat_main_conf_t *mcf);
time_t ngx_chat_outbox_max_age(ngx_chat_main_conf_t *mcf);


/* core: Web Push of a delivery to the user's browsers */

char *ngx_chat_push(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_chat_push_deliver(ngx_pool_t *pool, ngx_str_t *tenant,
    ngx_str_t *user, u_char *batch, ngx_str_t *body,
    ngx_chat_hook_done_pt done, void *data);


/* core: the content filter */

char *ngx_chat_filter(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_chat_filter_text(ngx_pool_t *pool, ngx_str_t *tenant,
    ngx_str_t *text);


/* core: thumbnails, in a thread pool */

typedef void (*ngx_chat_thumb_done_pt)(void *data, ngx_int_t rc);

ngx_int_t ngx_chat_thumb_init(ngx_cycle_t *cycle);
ngx_int_t ngx_chat_thumb_start(ngx_pool_t *pool, ngx_chat_files_conf_t *conf,
    ngx_str_t *src, ngx_chat_sniff_t *sniff, ngx_str_t *result,
    ngx_chat_thumb_done_pt done, void *data);


/* core: typing */

void ngx_chat_typing_init(void);
void ngx_chat_typing_done(void);
ngx_int_t ngx_chat_typing_allowed(ngx_chat_identity_t *id);
void ngx_chat_typing_set(ngx_chat_identity_t *id, int64_t conversation,
    ngx_uint_t on);


/* front: what clients may send (src/ngx_chat_requests.c) */

typedef struct {
    ngx_uint_t                   stmt;
    ngx_uint_t                   flags;
    const ngx_chat_field_t      *query;
    const ngx_chat_field_t      *body;
} ngx_chat_api_route_t;

#define NGX_CHAT_R_PUBLIC        0x100  /* no token needed */
#define NGX_CHAT_R_HEALTH        0x200
#define NGX_CHAT_R_UPLOAD        0x400  /* the body is one file */
#define NGX_CHAT_R_FORM          0x800  /* a multipart body has files */
#define NGX_CHAT_R_DOWNLOAD      0x1000 /* nginx sends the file's bytes */
#define NGX_CHAT_R_THUMB         0x2000 /* of its thumbnail */

extern const ngx_chat_route_t  ngx_chat_api_routes[];
extern const ngx_uint_t        ngx_chat_api_nroutes;

typedef enum {
    NGX_CHAT_MSG_ACTION = 0,
    NGX_CHAT_MSG_RESUME,
    NGX_CHAT_MSG_PING,
    NGX_CHAT_MSG_JOIN,
    NGX_CHAT_MSG_LEAVE,
    NGX_CHAT_MSG_WATCH,          /* presence_subscribe: an action too */
    NGX_CHAT_MSG_UNWATCH,
    NGX_CHAT_MSG_REFRESH         /* refresh_token */
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


/* front: one action, for REST and WebSocket */

ngx_int_t ngx_chat_action_start(ngx_chat_call_t *call);


/* front: uploads, their files finished one after the other */

typedef struct ngx_chat_upload_s  ngx_chat_upload_t;

typedef void (*ngx_chat_upload_done_pt)(ngx_chat_upload_t *up);

typedef struct {
    ngx_temp_file_t             *temp;       /* where its bytes are */
    u_char                      *wbuf;       /* a part's, gathered */
    size_t                       wlen;
    void                        *sha;        /* EVP_MD_CTX */
    u_char                      *head;       /* its first bytes */
    size_t                       head_len;
    off_t                        size;
    ngx_str_t                    name;       /* as given, cleaned */
    ngx_str_t                    claimed;    /* the type the client named */
    ngx_chat_sniff_t             sniff;
    u_char                       sha256[65];
    ngx_str_t                    thumb;      /* its thumbnail's file */
    int64_t                      id;         /* of its row */
    ngx_str_t                    json;       /* its File object */
    unsigned                     has_thumb:1;
} ngx_chat_upload_file_t;

struct ngx_chat_upload_s {
    ngx_http_request_t          *request;
    ngx_chat_files_conf_t       *conf;
    ngx_chat_identity_t         *id;
    ngx_chat_upload_done_pt      done;
    void                        *data;

    ngx_array_t                  files;      /* ngx_chat_upload_file_t */
    ngx_uint_t                   files_max;
    ngx_uint_t                   files_min;
    ngx_uint_t                   next;       /* the file being finished */
    off_t                        received;

    ngx_chat_multipart_t         mp;
    ngx_chat_upload_file_t      *current;    /* the part being read */
    json_t                      *fields;     /* the text parts */
    ngx_str_t                    field;
    char                         field_name[64];
    size_t                       fields_bytes;

    ngx_chat_call_t              call;

    /* a refusal: the first one stands */
    ngx_uint_t                   status;
    const char                  *code;
    char                         text[NGX_CHAT_ERR_LEN];

    unsigned                     multipart:1;
    unsigned                     discarding:1;
};

ngx_chat_upload_t *ngx_chat_upload_create_for(ngx_http_request_t *r,
    ngx_uint_t files_max, ngx_str_t *name, ngx_chat_upload_done_pt done,
    void *data);
ngx_chain_t *ngx_chat_upload_filter(ngx_chat_upload_t *up, ngx_chain_t *in);
void ngx_chat_upload_start(ngx_chat_upload_t *up);
void ngx_chat_upload_discard_all(ngx_chat_upload_t *up);
ngx_int_t ngx_chat_upload_ids(ngx_chat_upload_t *up, json_t *ids);
ngx_int_t ngx_chat_files_path(ngx_pool_t *pool, ngx_chat_files_conf_t *conf,
    u_char *sha256, ngx_uint_t thumb, ngx_str_t *path);
u_char *ngx_chat_files_key(u_char *p, u_char *sha256, ngx_uint_t thumb);
const char *ngx_chat_kind_name(ngx_uint_t kind);


/* front: REST */

typedef struct {
    ngx_chat_call_t              call;
    const ngx_chat_api_route_t  *route;
    json_t                      *args;
    ngx_chat_upload_t           *upload;
    off_t                        body_received;
    unsigned                     body_too_large:1;
} ngx_chat_api_ctx_t;

ngx_int_t ngx_chat_api_handler(ngx_http_request_t *r);
ngx_int_t ngx_chat_cors(ngx_http_request_t *r, ngx_array_t *origins);
ngx_int_t ngx_chat_api_init_body_filter(ngx_conf_t *cf);
void ngx_chat_api_run(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx);
ngx_uint_t ngx_chat_api_is_upload(ngx_http_request_t *r,
    const ngx_chat_api_route_t *rt);
ngx_int_t ngx_chat_api_upload(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_download(ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t ngx_chat_api_upload_failed(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx);


/* front: the chat protocol on a WebSocket connection */

typedef struct ngx_chat_session_s  ngx_chat_session_t;

struct ngx_chat_session_s {
    ngx_chat_ws_t               *ws;
    ngx_log_t                   *log;
    ngx_chat_identity_t          id;
    ngx_chat_follower_t          follower;

    ngx_queue_t                  calls;
    ngx_uint_t                   ncalls;
    ngx_queue_t                  held;       /* events before the start */
    ngx_uint_t                   nheld;
    json_t                      *resume;     /* waits for the memberships */
    json_t                      *resume_reqs;  /* answered by "resumed" */
    json_t                      *views;      /* join/leave before them */
    void                        *reading;    /* its Postgres read running */
    void                        *loading;    /* memberships, in slices */
    int64_t                      view;       /* the conversation joined */
    ngx_msec_t                   start_by;
    ngx_uint_t                   limited;    /* rate limited, in a row */

    unsigned                     loaded:1;
    unsigned                     started:1;
    unsigned                     resuming:1;
    unsigned                     counted:1;  /* in the presence zone */
    unsigned                     metered:1;  /* in the ws_connections gauge */
    unsigned                     paused:1;   /* catch-up waits for writes */
    unsigned                     resync:1;   /* memberships to read again */
    unsigned                     recatch:1;  /* follows came before them */
};

ngx_int_t ngx_chat_session_handler(ngx_http_request_t *r);


/* per-worker state of the chat layers, set at the worker's start */

typedef struct {
    ngx_chat_main_conf_t        *conf;
    ngx_chat_pg_pool_t          *pg;
} ngx_chat_worker_t;

extern ngx_chat_worker_t  ngx_chat_worker;


#endif /* _NGX_CHAT_H_INCLUDED_ */
