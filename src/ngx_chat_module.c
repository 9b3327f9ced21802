
/*
 * ngx_chat: directives, configuration and the life of a worker.
 *
 * Everything is configured at the http{} level except the handlers, which
 * a location takes with "chat_api" or "chat_websocket".  Each directive is
 * checked where it is read, so that "nginx -t" names the directive at
 * fault.
 *
 * A worker's start wires the layers: the transport (Postgres, Redis,
 * WebSocket) reports upward only through the handlers given here, and the
 * worker's tick, once a second, drives what no single connection owns.
 */


#include "ngx_chat.h"

#include <arpa/inet.h>


static void *ngx_chat_create_main_conf(ngx_conf_t *cf);
static char *ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_chat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void ngx_chat_tick_gauges(void);
static ngx_int_t ngx_chat_pg_settings(ngx_conf_t *cf,
    ngx_chat_main_conf_t *mcf);
static char *ngx_chat_max(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


/* chat_max kinds: chat.max_<kind> in Postgres */
static const char  *ngx_chat_max_kinds[NGX_CHAT_MAX_KINDS] = {
    "members", "reactions", "reactions_per_user", "conversations"
};
static ngx_int_t ngx_chat_limits_check(ngx_conf_t *cf,
    ngx_chat_main_conf_t *mcf);
static ngx_int_t ngx_chat_postconfiguration(ngx_conf_t *cf);
static char *ngx_chat_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_ice_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_postgres(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_postgres_hosts(ngx_conf_t *cf, PQconninfoOption *opts);
static char *ngx_chat_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content);
static ngx_int_t ngx_chat_conf_cstring(ngx_conf_t *cf, ngx_str_t *s);
static char *ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_events_retention(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_files(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_files_quota(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_files_types(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_thumbnails(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_chat_add_path(ngx_conf_t *cf, ngx_str_t *name);
static ngx_int_t ngx_chat_init_module(ngx_cycle_t *cycle);
static char *ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_websocket(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_chat_init_process(ngx_cycle_t *cycle);
static void ngx_chat_exit_process(ngx_cycle_t *cycle);
static void ngx_chat_redis_publisher_up(void);
static void ngx_chat_tick(ngx_event_t *ev);


#define NGX_CHAT_TICK            1000
#define NGX_CHAT_REPORT_TICKS    5


ngx_chat_worker_t  ngx_chat_worker;


/* what Redis reports goes to the fan-out and to presence */

static const ngx_chat_redis_handlers_t  ngx_chat_redis_handlers = {
    ngx_chat_fanout_message,
    ngx_chat_fanout_confirmed,
    ngx_chat_fanout_subscriber,
    ngx_chat_redis_publisher_up
};


/* not cancelable: a quitting worker waits for it to close the clients */
static ngx_event_t       ngx_chat_tick_event;
static ngx_connection_t  ngx_chat_tick_conn;
static ngx_uint_t   ngx_chat_ticks;
static ngx_uint_t   ngx_chat_closing;


static ngx_command_t  ngx_chat_commands[] = {

    { ngx_string("chat_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_chat_postgres,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_chat_jwt_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, jwt.leeway),
      NULL },

    { ngx_string("chat_jwt_tenant_claim"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, jwt.tenant_claim),
      NULL },

    { ngx_string("chat_message_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, limits.max_text),
      NULL },

    { ngx_string("chat_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, body_max),
      NULL },

    { ngx_string("chat_edit_window"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, edit_window),
      NULL },

    { ngx_string("chat_events_retention"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_events_retention,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, events_retention),
      NULL },

    { ngx_string("chat_files"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_chat_files,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_files_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, files.max),
      NULL },

    { ngx_string("chat_files_quota"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_files_quota,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_files_types"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_chat_files_types,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_thumbnails"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_chat_thumbnails,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_chat_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_presence_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_chat_presence_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_metrics_directive,
      0,
      0,
      NULL },

    { ngx_string("chat_webhook"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_chat_webhook,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_ice_servers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_ice_servers,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_chat_policy,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_push"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_chat_push,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_filter"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123|NGX_CONF_TAKE4,
      ngx_chat_filter,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_chat_max,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2|NGX_CONF_TAKE3|NGX_CONF_TAKE4,
      ngx_chat_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_limit_close"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, limit.close_after),
      NULL },

    { ngx_string("chat_ws_message_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws.message_max),
      NULL },

    { ngx_string("chat_ws_send_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws.send_queue),
      NULL },

    { ngx_string("chat_ws_ping"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws.ping),
      NULL },

    { ngx_string("chat_ws_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws.timeout),
      NULL },

    { ngx_string("chat_ws_start_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws.start_grace),
      NULL },

    { ngx_string("chat_ws_gap_wait"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws.gap_wait),
      NULL },

    { ngx_string("chat_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_websocket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_ws_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_chat_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, origins),
      NULL },

    { ngx_string("chat_cors_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_chat_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, cors),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_chat_module_ctx = {
    ngx_chat_add_variables,                /* preconfiguration */
    ngx_chat_postconfiguration,            /* postconfiguration */

    ngx_chat_create_main_conf,             /* create main configuration */
    ngx_chat_init_main_conf,               /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_chat_create_loc_conf,              /* create location configuration */
    ngx_chat_merge_loc_conf                /* merge location configuration */
};


ngx_module_t  ngx_chat_module = {
    NGX_MODULE_V1,
    &ngx_chat_module_ctx,                  /* module context */
    ngx_chat_commands,                     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_chat_init_module,                  /* init module */
    ngx_chat_init_process,                 /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_chat_exit_process,                 /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_chat_create_main_conf(ngx_conf_t *cf)
{
    ngx_uint_t             i;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->pg.conninfo = { 0, NULL };
     *     mcf->jwt.key = { 0, NULL };
     *     mcf->jwt.tenant_claim = { 0, NULL };
     *     mcf->locations = 0;
     */

    mcf->jwt.alg = JWT_ALG_INVAL;
    mcf->jwt.leeway = NGX_CONF_UNSET;
    mcf->limits.max_text = NGX_CONF_UNSET_SIZE;
    mcf->body_max = NGX_CONF_UNSET_SIZE;
    mcf->edit_window = NGX_CONF_UNSET_MSEC;
    mcf->events_retention = NGX_CONF_UNSET;
    mcf->files.max = NGX_CONF_UNSET;
    mcf->files.quota = NGX_CONF_UNSET;
    mcf->files.thumbnails = NGX_CONF_UNSET;
    mcf->limit.close_after = NGX_CONF_UNSET_UINT;

    for (i = 0; i < NGX_CHAT_MAX_KINDS; i++) {
        mcf->max[i] = NGX_CONF_UNSET_UINT;
    }

    if (ngx_array_init(&mcf->files.temp_paths, cf->pool, 2,
                       sizeof(ngx_path_t *))
        != NGX_OK)
    {
        return NULL;
    }
    mcf->ws.message_max = NGX_CONF_UNSET_SIZE;
    mcf->ws.send_queue = NGX_CONF_UNSET_SIZE;
    mcf->ws.ping = NGX_CONF_UNSET_MSEC;
    mcf->ws.timeout = NGX_CONF_UNSET_MSEC;
    mcf->ws.start_grace = NGX_CONF_UNSET_MSEC;
    mcf->ws.gap_wait = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_chat_main_conf_t  *mcf = conf;

    ngx_conf_init_value(mcf->jwt.leeway, 30);
    ngx_conf_init_size_value(mcf->limits.max_text, 16 * 1024);
    ngx_conf_init_size_value(mcf->body_max, 256 * 1024);
    ngx_conf_init_msec_value(mcf->edit_window, 10 * 60 * 1000);
    ngx_conf_init_value(mcf->events_retention, 0);
    ngx_conf_init_value(mcf->files.max, 25 * 1024 * 1024);
    ngx_conf_init_value(mcf->files.quota, 0);

    ngx_conf_init_uint_value(mcf->limit.close_after, 0);

    if (ngx_chat_limits_check(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (mcf->files.max <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_files_max\" must be at least 1 byte");
        return NGX_CONF_ERROR;
    }

    if (mcf->files.thumbnails == NGX_CONF_UNSET) {
        mcf->files.thumbnails = 1;
        mcf->files.thumb_side = 320;
        mcf->files.pixels_max = 16 * 1000 * 1000;
        ngx_str_set(&mcf->files.pool_name, "default");
    }

#if (NGX_THREADS)
    if (mcf->files.store.data && mcf->files.thumbnails) {
        mcf->files.thread_pool = ngx_thread_pool_add(cf,
                                                     &mcf->files.pool_name);
        if (mcf->files.thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }
#else
    mcf->files.thumbnails = 0;
#endif
    ngx_conf_init_size_value(mcf->ws.message_max, 64 * 1024);
    ngx_conf_init_size_value(mcf->ws.send_queue, 1024 * 1024);
    ngx_conf_init_msec_value(mcf->ws.ping, 30000);
    ngx_conf_init_msec_value(mcf->ws.timeout, 75000);
    ngx_conf_init_msec_value(mcf->ws.start_grace, 2000);
    ngx_conf_init_msec_value(mcf->ws.gap_wait, 100);

    if (mcf->ws.message_max < mcf->limits.max_text + 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_ws_message_max\" must leave room for a "
                           "message of \"chat_message_max\" and its JSON");
        return NGX_CONF_ERROR;
    }

    if (mcf->ws.timeout <= mcf->ws.ping) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_ws_timeout\" must be longer than "
                           "\"chat_ws_ping\"");
        return NGX_CONF_ERROR;
    }

    if (mcf->jwt.tenant_claim.data == NULL) {
        ngx_str_set(&mcf->jwt.tenant_claim, "tid");
    }

    if (mcf->body_max < mcf->limits.max_text) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_body_max\" must not be less than "
                           "\"chat_message_max\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_chat_create_loc_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_chat_loc_conf_t));
}


/*
 * A chat_api location limits bodies by chat_body_max itself, with the JSON
 * error of the API: nginx's own limit (which answers with an HTML page) is
 * lifted there, and its buffer holds any body allowed, so that none is
 * read back from a temporary file.  The core module merged its
 * configuration before this.
 */

static char *
ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_chat_loc_conf_t *prev = parent;
    ngx_chat_loc_conf_t *conf = child;

    ngx_path_t               **path;
    ngx_chat_main_conf_t      *mcf;
    ngx_http_core_loc_conf_t  *clcf;

    if (conf->origins == NULL) {
        conf->origins = prev->origins;
    }

    if (conf->cors == NULL) {
        conf->cors = prev->cors;
    }

    if (conf->kind == NGX_CHAT_LOC_API) {
        mcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        clcf->client_max_body_size = 0;
        clcf->client_body_buffer_size = ngx_max(clcf->client_body_buffer_size,
                                                mcf->body_max);

        /* where uploads are written first: checked against the store */
        path = ngx_array_push(&mcf->files.temp_paths);
        if (path == NULL) {
            return NGX_CONF_ERROR;
        }

        *path = clcf->client_body_temp_path;

        /* the files route of the first chat_api location is the File url */
        if (mcf->files.url.data == NULL) {
            mcf->files.url.len = clcf->name.len + sizeof("files/") - 1;
            mcf->files.url.data = ngx_pnalloc(cf->pool, mcf->files.url.len);
            if (mcf->files.url.data == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memcpy(ngx_cpymem(mcf->files.url.data, clcf->name.data,
                                  clcf->name.len),
                       "files/", sizeof("files/") - 1);

        }
    }

    return NGX_CONF_OK;
}


/* a limit needs the zone that counts it */

static ngx_int_t
ngx_chat_limits_check(ngx_conf_t *cf, ngx_chat_main_conf_t *mcf)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_CHAT_LIMIT_KINDS; i++) {
        if (i != NGX_CHAT_LIMIT_CONNECTIONS && mcf->limit.rules[i].rate
            && mcf->limit.zone == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_limit\" needs \"chat_limit_zone\"");
            return NGX_ERROR;
        }

        if (mcf->limit.rules[i].cluster && mcf->redis.host.data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_limit ... cluster\" needs "
                               "\"chat_redis\", where the hosts count "
                               "together");
            return NGX_ERROR;
        }
    }

    if (mcf->limit.rules[NGX_CHAT_LIMIT_CONNECTIONS].max
        && mcf->presence == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_limit connections\" needs "
                           "\"chat_presence_zone\", which counts them");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * What Postgres needs of the configuration goes to each of its
 * connections as settings (libpq's "options", where a space or a
 * backslash is escaped): the url of a File (sql/functions/20_json.sql)
 * and the chat_max limits (sql/functions/00_common.sql, chat.setting).
 */

static ngx_int_t
ngx_chat_pg_settings(ngx_conf_t *cf, ngx_chat_main_conf_t *mcf)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    len = sizeof("-c chat.files_url=") + 2 * mcf->files.url.len
          + NGX_CHAT_MAX_KINDS * sizeof(" -c chat.max_reactions_per_user=")
          + NGX_CHAT_MAX_KINDS * NGX_INT_T_LEN
          + sizeof(" -c chat.outbox_window=") + NGX_INT_T_LEN
          + sizeof(" -c chat.push_key=") + mcf->push.public_key.len
          + sizeof(" -c chat.policy=") + mcf->policy.len;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    mcf->pg.options.data = p;
    p = ngx_cpymem(p, "-c chat.files_url=", sizeof("-c chat.files_url=") - 1);

    for (i = 0; i < mcf->files.url.len; i++) {
        if (mcf->files.url.data[i] == ' ' || mcf->files.url.data[i] == '\\') {
            *p++ = '\\';
        }
        *p++ = mcf->files.url.data[i];
    }

    for (i = 0; i < NGX_CHAT_MAX_KINDS; i++) {
        if (mcf->max[i] != NGX_CONF_UNSET_UINT) {
            p = ngx_sprintf(p, " -c chat.max_%s=%ui", ngx_chat_max_kinds[i],
                            mcf->max[i]);
        }
    }

    /* the outbox is written only when something delivers it */
    if (ngx_chat_outbox_on(mcf)) {
        p = ngx_sprintf(p, " -c chat.outbox_window=%M",
                        ngx_chat_outbox_window(mcf) / 1000);
    }

    /* the site's function of who may start a conversation with whom */
    if (mcf->policy.len) {
        p = ngx_sprintf(p, " -c chat.policy=%V", &mcf->policy);
    }

    /* for GET push/key (sql/functions/86_push.sql): base64url, no escape */
    if (mcf->push.key) {
        p = ngx_sprintf(p, " -c chat.push_key=%V", &mcf->push.public_key);
    }

    mcf->pg.options.len = p - mcf->pg.options.data;

    return NGX_OK;
}


/*
 * chat_policy SCHEMA.FUNCTION [claims=NAME,...]; the site's rule of who
 * may start a conversation with whom (sql/functions/30_conversations.sql,
 * chat.policy_check): a name Postgres takes as it is, never quoted, so
 * only lower-case letters, digits and "_"; the claims it reads are kept
 * from each token (ngx_chat_auth.c).
 */

static char *
ngx_chat_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    u_char      *p, *last, *comma;
    ngx_str_t   *value, *name;
    ngx_uint_t   i, dots;

    if (mcf->policy.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    dots = 0;

    for (i = 0; i < value[1].len; i++) {
        p = &value[1].data[i];

        if (*p == '.' && i > 0 && i < value[1].len - 1 && p[-1] != '.') {
            dots++;
            continue;
        }

        if (!((*p >= 'a' && *p <= 'z') || *p == '_'
              || (*p >= '0' && *p <= '9' && i > 0 && p[-1] != '.')))
        {
            dots = 2;
            break;
        }
    }

    if (value[1].len == 0 || value[1].len > 127 || dots > 1) {
        return "takes a function as [schema.]name, in lower-case letters, "
               "digits and \"_\"";
    }

    mcf->policy = value[1];

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "claims=", 7) != 0 || value[2].len == 7) {
        return "takes \"claims=NAME,...\": the claims the function reads";
    }

    mcf->jwt.keep = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (mcf->jwt.keep == NULL) {
        return NGX_CONF_ERROR;
    }

    p = value[2].data + 7;
    last = value[2].data + value[2].len;

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (comma == p) {
            return "has an empty name in \"claims=\"";
        }

        name = ngx_array_push(mcf->jwt.keep);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        /* NUL-terminated for jansson */
        name->len = comma - p;
        name->data = ngx_pnalloc(cf->pool, name->len + 1);
        if (name->data == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn(name->data, p, name->len + 1);
        p = comma + 1;
    }

    return NGX_CONF_OK;
}


/*
 * chat_ice_servers '[{"urls": "stun:stun.example.com"}, ...]'; the STUN
 * and TURN servers a call's peers use (RTCConfiguration.iceServers), sent
 * in hello as given: a JSON array of objects with "urls".
 */

static char *
ngx_chat_ice_servers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    char         *text;
    size_t        i;
    json_t       *servers, *s;
    ngx_str_t    *value;
    json_error_t  err;

    if (mcf->ice_servers.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    servers = json_loadb((char *) value[1].data, value[1].len, 0, &err);

    if (!json_is_array(servers) || json_array_size(servers) == 0) {
        json_decref(servers);
        return "takes a JSON array of ice servers ({\"urls\": ...})";
    }

    json_array_foreach(servers, i, s) {
        if (!json_is_object(s) || json_object_get(s, "urls") == NULL) {
            json_decref(servers);
            return "takes ice servers that each have \"urls\"";
        }
    }

    /* compact, as it goes into every hello */
    text = json_dumps(servers, JSON_COMPACT);
    json_decref(servers);

    if (text == NULL
        || ngx_chat_copy(cf->pool, &mcf->ice_servers, text,
                         ngx_strlen(text))
           != NGX_OK)
    {
        free(text);
        return NGX_CONF_ERROR;
    }

    free(text);

    return NGX_CONF_OK;
}


/* chat_max members N; what one request may make (chat.setting in sql/) */

static char *
ngx_chat_max(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;
    ngx_uint_t  i;

    value = cf->args->elts;

    for (i = 0; i < NGX_CHAT_MAX_KINDS; i++) {
        if (ngx_strcmp(value[1].data, ngx_chat_max_kinds[i]) == 0) {
            break;
        }
    }

    if (i == NGX_CHAT_MAX_KINDS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_max\": unknown limit \"%V\" (members, "
                           "reactions, reactions_per_user or conversations)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (mcf->max[i] != NGX_CONF_UNSET_UINT) {
        return "is duplicate for this limit";
    }

    n = ngx_atoi(value[2].data, value[2].len);

    if (n <= 0 || n > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_max %V\" takes a number from 1 to "
                           "1000000, not \"%V\"", &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    mcf->max[i] = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/* directives may come in any order: what a location needs is checked last */

static ngx_int_t
ngx_chat_postconfiguration(ngx_conf_t *cf)
{
    ngx_chat_main_conf_t  *mcf;

    if (ngx_chat_api_init_body_filter(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);

    if (mcf->locations == 0) {
        return NGX_OK;
    }

    if (ngx_chat_pg_settings(cf, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mcf->pg.conninfo.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_api\" needs \"chat_postgres\" in http{}");
        return NGX_ERROR;
    }

    if (mcf->jwt.key.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_api\" needs \"chat_jwt_key\" in http{}");
        return NGX_ERROR;
    }

    if (mcf->presence && mcf->redis.host.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_presence_zone\" needs \"chat_redis\" in "
                           "http{}");
        return NGX_ERROR;
    }

    if (mcf->websockets && mcf->redis.host.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_websocket\" needs \"chat_redis\" in "
                           "http{}");
        return NGX_ERROR;
    }

    /* the claim name is handed to jansson as a C string */
    if (ngx_chat_conf_cstring(cf, &mcf->jwt.tenant_claim) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* chat_postgres "conninfo" [pool=N] [queue=N] [timeout=T]; */

static char *
ngx_chat_postgres(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    char              *err, *rv;
    ngx_int_t          n;
    ngx_str_t         *value, s;
    ngx_uint_t         i;
    PQconninfoOption  *opts;

    if (mcf->pg.conninfo.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mcf->pg.size = 4;
    mcf->pg.queue = 1024;
    mcf->pg.timeout = 5000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n < 1 || n > 256) {
                return "has an invalid \"pool=\", it takes 1 to 256";
            }
            mcf->pg.size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 0) {
                return "has an invalid \"queue=\"";
            }
            mcf->pg.queue = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                return "has an invalid \"timeout=\"";
            }
            mcf->pg.timeout = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_postgres\" has an unknown parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    mcf->pg.conninfo = value[1];

    if (ngx_chat_conf_cstring(cf, &mcf->pg.conninfo) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    opts = PQconninfoParse((char *) mcf->pg.conninfo.data, &err);
    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_postgres\" has an invalid connection "
                           "string: %s", err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }
        return NGX_CONF_ERROR;
    }

    rv = ngx_chat_postgres_hosts(cf, opts);
    PQconninfoFree(opts);

    return rv;
}


/*
 * libpq resolves a host name with getaddrinfo(), which blocks: a worker
 * must be given addresses (or a socket directory) only.
 */

static char *
ngx_chat_postgres_hosts(ngx_conf_t *cf, PQconninfoOption *opts)
{
    u_char             buf[sizeof(struct in6_addr)];
    char              *host, *next, name[256];
    size_t             len;
    PQconninfoOption  *o;

    host = NULL;

    for (o = opts; o->keyword; o++) {

        if (ngx_strcmp(o->keyword, "hostaddr") == 0 && o->val && o->val[0]) {
            return NGX_CONF_OK;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;
        }
    }

    for (next = host; next && *next; next += len + (next[len] == ',')) {

        len = ngx_strlen(next);
        if (ngx_strlchr((u_char *) next, (u_char *) next + len, ',')) {
            len = (char *) ngx_strlchr((u_char *) next,
                                       (u_char *) next + len, ',') - next;
        }

        if (len == 0 || next[0] == '/') {
            continue;
        }

        if (len >= sizeof(name)) {
            /* longer than any address: a name, and a bad one */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_postgres\": host \"%*s...\" (%uz "
                               "bytes) is a name; resolving it would block "
                               "nginx, give an IP address, a socket "
                               "directory or \"hostaddr=\"",
                               (size_t) 32, next, len);
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(name, next, len);
        name[len] = '\0';

        if (inet_pton(AF_INET, name, buf) == 1
            || inet_pton(AF_INET6, name, buf) == 1)
        {
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_postgres\": host \"%s\" is a name; "
                           "resolving it would block nginx, give an IP "
                           "address, a socket directory or \"hostaddr=\"",
                           name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * chat_jwt_key secret=TEXT alg=HS256;
 * chat_jwt_key secret_file=PATH alg=HS256;
 * chat_jwt_key file=PUBLIC_KEY.pem alg=RS256;
 */

static char *
ngx_chat_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    char        *rv, alg[16];
    ngx_str_t   *value, name;
    ngx_uint_t   i;

    if (mcf->jwt.key.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "alg=", 4) == 0) {
            if (value[i].len - 4 >= sizeof(alg)) {
                return "has an unknown \"alg=\"";
            }

            ngx_cpystrn((u_char *) alg, value[i].data + 4, value[i].len - 3);
            mcf->jwt.alg = jwt_str_alg(alg);

            if (mcf->jwt.alg == JWT_ALG_INVAL
                || mcf->jwt.alg == JWT_ALG_NONE)
            {
                return "has an unknown \"alg=\", it takes HS256, HS384, "
                       "HS512, RS256, RS384, RS512, ES256, ES384 or ES512";
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "secret=", 7) == 0) {
            mcf->jwt.key.data = value[i].data + 7;
            mcf->jwt.key.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "secret_file=", 12) == 0
            || ngx_strncmp(value[i].data, "file=", 5) == 0)
        {
            name.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            name.len = value[i].data + value[i].len - name.data;

            rv = ngx_chat_read_file(cf, &name, &mcf->jwt.key);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_key\" has an unknown parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (mcf->jwt.alg == JWT_ALG_INVAL) {
        return "needs \"alg=\"";
    }

    if (mcf->jwt.key.data == NULL) {
        return "needs \"secret=\", \"secret_file=\" or \"file=\"";
    }

    if (ngx_chat_auth_init(cf, &mcf->jwt) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_read_file(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *content)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"chat_jwt_key\": cannot open \"%V\"", name);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = *name;
    file.log = cf->log;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) == 0 || ngx_file_size(&fi) > 65536)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_key\": \"%V\" is empty or too large",
                           name);
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    content->len = ngx_file_size(&fi);
    content->data = ngx_pnalloc(cf->pool, content->len);
    if (content->data == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, content->data, content->len, 0);
    ngx_close_file(fd);

    if (n != (ssize_t) content->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_key\": cannot read \"%V\"", name);
        return NGX_CONF_ERROR;
    }

    /* a secret file usually ends with a newline that is not the secret */
    while (content->len && (content->data[content->len - 1] == '\n'
                            || content->data[content->len - 1] == '\r'))
    {
        content->len--;
    }

    return NGX_CONF_OK;
}


/*
 * chat_redis 127.0.0.1:6379 [prefix=chat:];
 * chat_redis unix:/run/redis.sock;
 *
 * An address, not a name: hiredis would resolve a name with a blocking
 * getaddrinfo().
 */

static char *
ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    u_char      *colon, buf[sizeof(struct in6_addr)];
    ngx_int_t    port;
    ngx_str_t   *value, host;

    if (mcf->redis.host.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_str_set(&mcf->redis.prefix, "chat:");

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "prefix=", 7) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_redis\" has an unknown parameter "
                               "\"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        mcf->redis.prefix.data = value[2].data + 7;
        mcf->redis.prefix.len = value[2].len - 7;

        if (mcf->redis.prefix.len > NGX_CHAT_REDIS_PREFIX_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_redis\" prefix is longer than %d "
                               "bytes", NGX_CHAT_REDIS_PREFIX_MAX);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        host.data = value[1].data + 5;
        host.len = value[1].len - 5;
        mcf->redis.port = 0;

    } else {
        colon = ngx_strlchr(value[1].data, value[1].data + value[1].len, ':');
        while (colon && ngx_strlchr(colon + 1, value[1].data + value[1].len,
                                    ':'))
        {
            colon = ngx_strlchr(colon + 1, value[1].data + value[1].len, ':');
        }

        if (colon == NULL) {
            return "needs \"address:port\" or \"unix:path\"";
        }

        port = ngx_atoi(colon + 1, value[1].data + value[1].len - colon - 1);
        if (port < 1 || port > 65535) {
            return "has an invalid port";
        }

        host.data = value[1].data;
        host.len = colon - value[1].data;

        if (host.len > 2 && host.data[0] == '[') {
            host.data++;
            host.len -= 2;
        }

        mcf->redis.port = port;
    }

    mcf->redis.host = host;

    if (host.len == 0 || ngx_chat_conf_cstring(cf, &mcf->redis.host)
                         != NGX_OK)
    {
        return "needs an address";
    }

    if (mcf->redis.port
        && inet_pton(AF_INET, (char *) mcf->redis.host.data, buf) != 1
        && inet_pton(AF_INET6, (char *) mcf->redis.host.data, buf) != 1)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_redis\": \"%V\" is not an IP address; "
                           "resolving a name would block nginx",
                           &mcf->redis.host);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * chat_events_retention 30d; or off.  Less than an hour would take events
 * from under a client that merely lost its network for a while.
 */

static char *
ngx_chat_events_retention(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    time_t      keep;
    ngx_str_t  *value;

    if (mcf->events_retention != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        mcf->events_retention = 0;
        return NGX_CONF_OK;
    }

    keep = ngx_parse_time(&value[1], 1);

    if (keep == (time_t) NGX_ERROR || keep < 3600) {
        return "takes \"off\" or a time of at least 1h";
    }

    mcf->events_retention = keep;

    return NGX_CONF_OK;
}


/*
 * chat_files /var/lib/chat/files [uri=/chat-files/];
 *
 * The store of uploads, which the internal location of uri= serves from
 * (with alias to the same folder).  nginx makes the folder, and its .tmp
 * for thumbnails, at startup, owned by the workers' user.
 */

static char *
ngx_chat_files(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    ngx_str_t  *value, tmp;

    if (mcf->files.store.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mcf->files.store = value[1];

    while (mcf->files.store.len > 1
           && mcf->files.store.data[mcf->files.store.len - 1] == '/')
    {
        mcf->files.store.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &mcf->files.store, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* nginx makes the folder by its name as a C string */
    if (ngx_chat_conf_cstring(cf, &mcf->files.store) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&mcf->files.uri, "/chat-files/");

    if (cf->args->nelts == 3) {
        if (value[2].len < 6 || ngx_strncmp(value[2].data, "uri=", 4) != 0
            || value[2].data[4] != '/'
            || value[2].data[value[2].len - 1] != '/')
        {
            return "takes \"uri=/prefix/\", the internal location that "
                   "serves the files";
        }

        mcf->files.uri.data = value[2].data + 4;
        mcf->files.uri.len = value[2].len - 4;
    }

    tmp.len = mcf->files.store.len + sizeof("/.tmp") - 1;
    tmp.data = ngx_pnalloc(cf->pool, tmp.len + 1);
    if (tmp.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ngx_cpymem(tmp.data, mcf->files.store.data,
                          mcf->files.store.len),
               "/.tmp", sizeof("/.tmp"));

    if (ngx_chat_add_path(cf, &mcf->files.store) != NGX_OK
        || ngx_chat_add_path(cf, &tmp) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a folder that nginx makes at startup for its workers, like temp paths */

static ngx_int_t
ngx_chat_add_path(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_path_t  *path;

    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_ERROR;
    }

    path->name = *name;
    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    return ngx_add_path(cf, &path);
}


/* chat_files_quota 1g; or off: what one user may have uploaded in all */

static char *
ngx_chat_files_quota(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    ngx_str_t  *value;

    if (mcf->files.quota != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        mcf->files.quota = 0;
        return NGX_CONF_OK;
    }

    mcf->files.quota = ngx_parse_offset(&value[1]);

    if (mcf->files.quota == NGX_ERROR || mcf->files.quota == 0) {
        return "takes \"off\" or a size";
    }

    return NGX_CONF_OK;
}


/* chat_files_types TYPE ...: "image/png", or "image/" and a star */

static char *
ngx_chat_files_types(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    u_char      *slash;
    ngx_str_t   *value, *type;
    ngx_uint_t   i;

    if (mcf->files.types) {
        return "is duplicate";
    }

    mcf->files.types = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                        sizeof(ngx_str_t));
    if (mcf->files.types == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        slash = ngx_strlchr(value[i].data, value[i].data + value[i].len, '/');

        if (slash == NULL || slash == value[i].data
            || slash == value[i].data + value[i].len - 1)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_files_types\": \"%V\" is not a type "
                               "like \"image/png\" or \"image/*\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        type = ngx_array_push(mcf->files.types);
        *type = value[i];
    }

    return NGX_CONF_OK;
}


/* chat_thumbnails on [pool=default] [size=320] [pixels=16000000]; or off */

static char *
ngx_chat_thumbnails(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (mcf->files.thumbnails != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mcf->files.thumb_side = 320;
    mcf->files.pixels_max = 16 * 1000 * 1000;
    ngx_str_set(&mcf->files.pool_name, "default");

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0
        && cf->args->nelts == 2)
    {
        mcf->files.thumbnails = 0;
        return NGX_CONF_OK;
    }

    if (value[1].len != 2 || ngx_strncmp(value[1].data, "on", 2) != 0) {
        return "takes \"on\" with its parameters, or \"off\"";
    }

    mcf->files.thumbnails = 1;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0
            && value[i].len > 5)
        {
            mcf->files.pool_name.data = value[i].data + 5;
            mcf->files.pool_name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n < 16 || n > 2048) {
                return "has an invalid \"size=\", it takes 16 to 2048";
            }
            mcf->files.thumb_side = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "pixels=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n < 1) {
                return "has an invalid \"pixels=\"";
            }
            mcf->files.pixels_max = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_thumbnails\" has an unknown parameter "
                           "\"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * After nginx made its paths (nginx -t too): an upload's temporary file
 * must reach the store by rename, so both are on one filesystem.
 */

static ngx_int_t
ngx_chat_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t             i;
    ngx_path_t           **path;
    ngx_file_info_t        store, temp;
    ngx_chat_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    if (mcf == NULL || mcf->files.store.data == NULL) {
        return NGX_OK;
    }

    if (ngx_file_info(mcf->files.store.data, &store) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "\"chat_files\": cannot read \"%V\"",
                      &mcf->files.store);
        return NGX_ERROR;
    }

    path = mcf->files.temp_paths.elts;

    for (i = 0; i < mcf->files.temp_paths.nelts; i++) {
        if (ngx_file_info(path[i]->name.data, &temp) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "\"chat_files\": cannot read the "
                          "client_body_temp_path \"%V\"", &path[i]->name);
            return NGX_ERROR;
        }

        if (store.st_dev != temp.st_dev) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"chat_files\": \"%V\" and the "
                          "client_body_temp_path \"%V\" of a chat_api "
                          "location are on different filesystems: uploads "
                          "would be copied, not renamed; put the temporary "
                          "path on the store's filesystem",
                          &mcf->files.store, &path[i]->name);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a copy that ends with NUL, for libraries that take C strings */

static ngx_int_t
ngx_chat_conf_cstring(ngx_conf_t *cf, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(cf->pool, s->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';
    s->data = p;

    return NGX_OK;
}


static char *
ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_chat_main_conf_t      *mcf;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->kind) {
        return "is duplicate";
    }

    lcf->kind = NGX_CHAT_LOC_API;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_api_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);
    mcf->locations++;

    return NGX_CONF_OK;
}


static char *
ngx_chat_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_chat_main_conf_t      *mcf;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->kind) {
        return "is duplicate";
    }

    lcf->kind = NGX_CHAT_LOC_WEBSOCKET;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_session_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);
    mcf->locations++;
    mcf->websockets++;

    return NGX_CONF_OK;
}


/*
 * chat_ws_origins https://app.example.com https://admin.example.com;
 * chat_cors_origins, the same (or "*": any)
 */

static char *
ngx_chat_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char       *p;
    ngx_str_t    *value, *origin;
    ngx_uint_t    i;
    ngx_array_t **origins;

    origins = (ngx_array_t **) ((char *) conf + cmd->offset);

    if (*origins) {
        return "is duplicate";
    }

    *origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                sizeof(ngx_str_t));
    if (*origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_strlcasestrn(value[i].data, value[i].data + value[i].len,
                             (u_char *) "://", 3 - 1);

        if (cmd->offset == offsetof(ngx_chat_loc_conf_t, cors)
            && value[i].len == 1 && value[i].data[0] == '*')
        {
            p = value[i].data + 1;
        }

        if (p == NULL || p == value[i].data
            || value[i].data[value[i].len - 1] == '/')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"%V\" is not an origin like "
                               "\"https://chat.example.com\"", &cmd->name,
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        origin = ngx_array_push(*origins);
        *origin = value[i];
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    if (mcf && mcf->metrics
        && ngx_chat_metrics_init_worker(cycle, mcf->metrics) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (mcf == NULL || mcf->locations == 0) {
        return NGX_OK;
    }

    ngx_chat_worker.conf = mcf;

    ngx_chat_worker.pg = ngx_chat_pg_pool_create(cycle, &mcf->pg);
    if (ngx_chat_worker.pg == NULL) {
        return NGX_ERROR;
    }

    if (mcf->redis.host.data == NULL) {
        return NGX_OK;
    }

    if (ngx_chat_ws_init(cycle, &mcf->ws) != NGX_OK
        || ngx_chat_fanout_init(cycle, ngx_chat_worker.pg, mcf->ws.gap_wait)
           != NGX_OK
        || ngx_chat_redis_init(cycle, &mcf->redis, &ngx_chat_redis_handlers)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_chat_typing_init();

    if (mcf->files.store.data && ngx_chat_thumb_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mcf->presence
        && ngx_chat_presence_init_worker(cycle, mcf->presence) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_chat_tick_event.handler = ngx_chat_tick;
    /* nginx's debug log reads an event's data as a connection */
    ngx_chat_tick_conn.fd = (ngx_socket_t) -1;
    ngx_chat_tick_event.data = &ngx_chat_tick_conn;
    ngx_chat_tick_event.log = cycle->log;
    ngx_add_timer(&ngx_chat_tick_event, NGX_CHAT_TICK);

    return NGX_OK;
}


static void
ngx_chat_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_chat_worker.conf == NULL) {
        return;
    }

    if (ngx_chat_worker.conf->redis.host.data) {
        if (ngx_chat_tick_event.timer_set) {
            ngx_del_timer(&ngx_chat_tick_event);
        }

        ngx_chat_ws_done();
        ngx_chat_typing_done();
        ngx_chat_presence_done();
        ngx_chat_fanout_done();
        ngx_chat_redis_done();
    }

    if (ngx_chat_worker.pg) {
        ngx_chat_pg_pool_destroy(ngx_chat_worker.pg);
        ngx_chat_worker.pg = NULL;
    }
}


static void
ngx_chat_redis_publisher_up(void)
{
    ngx_chat_presence_redis_up();
}


/*
 * Once a second: lingering topics expire, delivery positions reach
 * Postgres every few seconds; and when the worker quits or reloads, every
 * WebSocket is closed with 1001 so that its client reconnects to a new
 * worker, and the tick waits for them to go.
 */

/* the gauges that are read, not counted: once a tick */

static void
ngx_chat_tick_gauges(void)
{
    ngx_uint_t           pub, sub;
    ngx_chat_pg_stats_t  st;

    if (ngx_chat_metric_gauges == NULL) {
        return;
    }

    ngx_chat_pg_stats(ngx_chat_worker.pg, &st);
    ngx_chat_gauge_set(NGX_CHAT_G_PG_BUSY, st.busy);
    ngx_chat_gauge_set(NGX_CHAT_G_PG_WAITING, st.waiting);

    pub = 0;
    sub = 0;

    if (ngx_chat_worker.conf->redis.host.data) {
        ngx_chat_redis_links(&pub, &sub);
    }

    ngx_chat_gauge_set(NGX_CHAT_G_REDIS_UP, pub + sub);
    ngx_chat_gauge_set(NGX_CHAT_G_REDIS_PENDING, ngx_chat_redis_pending());
}


static void
ngx_chat_tick(ngx_event_t *ev)
{
    if (ngx_exiting || ngx_terminate) {
        if (!ngx_chat_closing) {
            ngx_chat_closing = 1;
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                           "chat: closing %ui WebSocket connections",
                           ngx_chat_ws_connections());
            ngx_chat_ws_close_all(NGX_CHAT_WS_GOING_AWAY,
                                  "server going away");
        }

        if (ngx_chat_ws_connections()) {
            ngx_add_timer(ev, 100);
        }

        return;
    }

    ngx_chat_fanout_expire();
    ngx_chat_retention_tick();
    ngx_chat_outbox_tick();
    ngx_chat_scheduled_tick();
    ngx_chat_tick_gauges();

    if (++ngx_chat_ticks % NGX_CHAT_REPORT_TICKS == 0) {
        ngx_chat_fanout_report();
    }

    ngx_add_timer(ev, NGX_CHAT_TICK);
}
