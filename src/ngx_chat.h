
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
    ngx_chat_pg_conf_t           pg;
    ngx_chat_jwt_conf_t          jwt;
    ngx_chat_limits_t            limits;
    size_t                       body_max;
    ngx_msec_t                   edit_window;
    ngx_uint_t                   locations;  /* chat_api, chat_websocket */
} ngx_chat_main_conf_t;

#define NGX_CHAT_LOC_API         1

typedef struct {
    ngx_uint_t                   kind;
} ngx_chat_loc_conf_t;


extern ngx_module_t  ngx_chat_module;


/* nginx connections around sockets that a library owns (libpq, hiredis) */

ngx_connection_t *ngx_chat_conn_wrap(ngx_socket_t fd, void *data,
    ngx_event_handler_pt read, ngx_event_handler_pt write, ngx_log_t *log);
void ngx_chat_conn_release(ngx_connection_t *c);
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
void ngx_chat_call_fail(ngx_chat_call_t *call, ngx_uint_t status,
    const char *text);
const char *ngx_chat_error_code(ngx_uint_t status);


/* auth */

ngx_int_t ngx_chat_auth_init(ngx_conf_t *cf, ngx_chat_jwt_conf_t *jcf);
ngx_int_t ngx_chat_auth_token(ngx_chat_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_pool_t *pool, ngx_log_t *log, ngx_chat_identity_t *id);


/* REST */

ngx_int_t ngx_chat_api_handler(ngx_http_request_t *r);


/* per-worker state */

typedef struct {
    ngx_chat_main_conf_t        *conf;
    ngx_chat_pg_pool_t          *pg;
} ngx_chat_worker_t;

extern ngx_chat_worker_t  ngx_chat_worker;


#endif /* _NGX_CHAT_H_INCLUDED_ */
