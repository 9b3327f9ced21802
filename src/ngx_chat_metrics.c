
/*
 * ngx_chat: metrics in the Prometheus text format (chat_metrics).
 * Counters live in a shared zone and are added to lock-free with
 * ngx_atomic_fetch_add(), as stub_status keeps its own; gauges are kept
 * per worker, in a slot claimed by the worker's pid, so that the old
 * workers of a reload and the new ones never write each other's; an
 * answer sums the slots of workers that are alive.  No label ever names a
 * user or a conversation.
 */


#include "ngx_chat.h"


#define NGX_CHAT_METRICS_SLOTS   64


typedef struct {
    ngx_atomic_t                 pid;
    ngx_atomic_t                 gauges[NGX_CHAT_G_COUNT];
} ngx_chat_metrics_slot_t;


typedef struct {
    ngx_atomic_t                 counters[NGX_CHAT_M_COUNT];
    ngx_atomic_t                 status[NGX_CHAT_METRICS_STATUSES];
    ngx_atomic_t                 limited[NGX_CHAT_LIMIT_KINDS];
    ngx_atomic_t                 pg_bucket[NGX_CHAT_METRICS_BUCKETS];
    ngx_atomic_t                 pg_ms_sum;
    ngx_chat_metrics_slot_t      slots[NGX_CHAT_METRICS_SLOTS];
} ngx_chat_metrics_sh_t;


static ngx_chat_metrics_sh_t  *ngx_chat_metrics;

/* for ngx_chat_metric_add() and ngx_chat_gauge_add(): NULL without them */
ngx_atomic_t                  *ngx_chat_metric_counters;
ngx_atomic_t                  *ngx_chat_metric_gauges;


static const struct {
    const char                  *name;
    const char                  *help;
} ngx_chat_counter_names[NGX_CHAT_M_COUNT] = {
    { "ws_connections_opened_total", "WebSocket connections opened" },
    { "ws_frames_in_total", "WebSocket messages received" },
    { "ws_frames_out_total", "WebSocket frames queued to clients" },
    { "ws_bytes_in_total", "bytes of WebSocket messages received" },
    { "ws_bytes_out_total", "bytes of WebSocket frames queued" },
    { "rest_requests_total", "REST requests" },
    { "messages_sent_total", "messages sent and forwarded" },
    { "deliveries_total", "events delivered to WebSocket connections" },
    { "acks_total", "WebSocket client messages acknowledged" },
    { "pg_queries_total", "Postgres queries answered" },
    { "pg_reconnects_total", "Postgres connections opened again" },
    { "redis_reconnects_total", "Redis links connected again" },
    { "uploads_total", "files stored" },
    { "upload_bytes_total", "bytes of files stored" },
    { "outbox_sent_total", "notifications delivered to the webhook" },
    { "outbox_failed_total", "notification deliveries that failed" },
};


static const struct {
    const char                  *name;
    const char                  *help;
} ngx_chat_gauge_names[NGX_CHAT_G_COUNT] = {
    { "ws_connections", "WebSocket connections open" },
    { "pg_busy", "Postgres connections running a query" },
    { "pg_waiting", "queries waiting for a Postgres connection" },
    { "redis_links_up", "Redis links up (publisher, subscriber)" },
    { "redis_pending_bytes", "bytes of publishes waiting for Redis" },
};


/* the statuses of errors, in the order of ngx_chat_metrics_status() */
static const ngx_uint_t  ngx_chat_statuses[NGX_CHAT_METRICS_STATUSES] = {
    400, 401, 403, 404, 405, 409, 410, 413, 415, 426, 429, 500, 503, 507, 0
};

/* Postgres query durations, milliseconds: upper bounds of the buckets */
static const ngx_uint_t  ngx_chat_pg_buckets[NGX_CHAT_METRICS_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};


static const char  *ngx_chat_limit_names[NGX_CHAT_LIMIT_KINDS] = {
    "messages", "requests", "connects", "connects_per_address", "uploads",
    "connections"
};


static ngx_int_t ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static u_char *ngx_chat_metrics_render(u_char *p, u_char *last);
static u_char *ngx_chat_metrics_zones(u_char *p, u_char *last,
    ngx_uint_t used);
static u_char *ngx_chat_metrics_label(u_char *p, u_char *last,
    ngx_str_t *value);


/* chat_metrics; (a location) */

char *
ngx_chat_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                  name;
    ngx_shm_zone_t            *zone;
    ngx_chat_main_conf_t      *mcf;
    ngx_http_core_loc_conf_t  *clcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);

    if (mcf->metrics == NULL) {
        ngx_str_set(&name, "ngx_chat_metrics");

        zone = ngx_shared_memory_add(cf, &name,
                                     ngx_align(sizeof(ngx_chat_metrics_sh_t),
                                               ngx_pagesize)
                                     + 8 * ngx_pagesize,
                                     &ngx_chat_module);
        if (zone == NULL) {
            return NGX_CONF_ERROR;
        }

        zone->init = ngx_chat_metrics_init_zone;
        zone->data = mcf;
        mcf->metrics = zone;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_metrics_handler;

    return NGX_CONF_OK;
}


/* a reload keeps the counts */

static ngx_int_t
ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    void             *sh;
    ngx_slab_pool_t  *shpool;

    if (data) {
        return NGX_OK;
    }

    /* zeroed when new: every count starts at 0 */
    return (ngx_chat_zone_init(shm_zone, sizeof(ngx_chat_metrics_sh_t),
                               "metrics", &sh, &shpool)
            == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* a worker claims the slot of a dead one, or a free one */

ngx_int_t
ngx_chat_metrics_init_worker(ngx_cycle_t *cycle, ngx_shm_zone_t *zone)
{
    ngx_uint_t              i;
    ngx_atomic_uint_t       pid;
    ngx_chat_metrics_sh_t  *sh;

    sh = ((ngx_slab_pool_t *) zone->shm.addr)->data;

    for (i = 0; i < NGX_CHAT_METRICS_SLOTS; i++) {
        pid = sh->slots[i].pid;

        if ((pid == 0 || (kill((pid_t) pid, 0) == -1 && ngx_errno == ESRCH))
            && ngx_atomic_cmp_set(&sh->slots[i].pid, pid, ngx_pid))
        {
            ngx_memzero((void *) sh->slots[i].gauges,
                        sizeof(sh->slots[i].gauges));
            ngx_chat_metrics = sh;
            ngx_chat_metric_counters = sh->counters;
            ngx_chat_metric_gauges = sh->slots[i].gauges;
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                  "chat metrics: no slot for this worker, its gauges are "
                  "not counted");
    ngx_chat_metrics = sh;
    ngx_chat_metric_counters = sh->counters;

    return NGX_OK;
}


void
ngx_chat_metrics_status(ngx_uint_t status)
{
    ngx_uint_t  i;

    if (ngx_chat_metrics == NULL) {
        return;
    }

    for (i = 0; ngx_chat_statuses[i] && ngx_chat_statuses[i] != status; i++) {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&ngx_chat_metrics->status[i], 1);
}


void
ngx_chat_metrics_limited(ngx_uint_t kind)
{
    if (ngx_chat_metrics && kind < NGX_CHAT_LIMIT_KINDS) {
        (void) ngx_atomic_fetch_add(&ngx_chat_metrics->limited[kind], 1);
    }
}


void
ngx_chat_metrics_pg_query(ngx_msec_t ms)
{
    ngx_uint_t  i;

    if (ngx_chat_metrics == NULL) {
        return;
    }

    ngx_chat_metric_add(NGX_CHAT_M_PG_QUERIES, 1);
    (void) ngx_atomic_fetch_add(&ngx_chat_metrics->pg_ms_sum, ms);

    for (i = 0; i < NGX_CHAT_METRICS_BUCKETS; i++) {
        if (ms <= ngx_chat_pg_buckets[i]) {
            (void) ngx_atomic_fetch_add(&ngx_chat_metrics->pg_bucket[i], 1);
            return;
        }
    }
}


/* the chat_metrics location */

ngx_int_t
ngx_chat_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;
    size_t        size;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_metrics == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    size = 32768;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_chat_metrics_render(b->pos, b->end);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


#define ngx_chat_metrics_head(p, last, name, type, help)                      \
    ngx_slprintf(p, last, "# HELP ngx_chat_%s %s\n# TYPE ngx_chat_%s %s\n",   \
                 name, help, name, type)


static u_char *
ngx_chat_metrics_render(u_char *p, u_char *last)
{
    ngx_uint_t              i, j;
    ngx_atomic_uint_t       pid, sum, total, count;
    ngx_chat_metrics_sh_t  *sh = ngx_chat_metrics;

    p = ngx_slprintf(p, last, "# HELP ngx_chat_build_info the module's "
                     "version and nginx's\n# TYPE ngx_chat_build_info "
                     "gauge\nngx_chat_build_info{version=\"%s\","
                     "nginx=\"%s\"} 1\n", NGX_CHAT_VERSION, NGINX_VERSION);

    for (i = 0; i < NGX_CHAT_M_COUNT; i++) {
        p = ngx_chat_metrics_head(p, last, ngx_chat_counter_names[i].name,
                                  "counter", ngx_chat_counter_names[i].help);
        p = ngx_slprintf(p, last, "ngx_chat_%s %uA\n",
                         ngx_chat_counter_names[i].name, sh->counters[i]);
    }

    p = ngx_chat_metrics_head(p, last, "errors_total", "counter",
                              "error answers by HTTP status, REST and "
                              "WebSocket");

    for (i = 0; i < NGX_CHAT_METRICS_STATUSES; i++) {
        if (ngx_chat_statuses[i]) {
            p = ngx_slprintf(p, last, "ngx_chat_errors_total{status=\"%ui\"}"
                             " %uA\n", ngx_chat_statuses[i], sh->status[i]);
        } else {
            p = ngx_slprintf(p, last, "ngx_chat_errors_total{status="
                             "\"other\"} %uA\n", sh->status[i]);
        }
    }

    p = ngx_chat_metrics_head(p, last, "rate_limited_total", "counter",
                              "refusals of chat_limit by limit");

    for (i = 0; i < NGX_CHAT_LIMIT_KINDS; i++) {
        p = ngx_slprintf(p, last, "ngx_chat_rate_limited_total{limit="
                         "\"%s\"} %uA\n", ngx_chat_limit_names[i],
                         sh->limited[i]);
    }

    p = ngx_chat_metrics_head(p, last, "pg_query_duration_seconds",
                              "histogram", "how long Postgres queries took");

    /* read once, so that the buckets never pass the count they end in */
    count = sh->counters[NGX_CHAT_M_PG_QUERIES];
    total = 0;

    for (i = 0; i < NGX_CHAT_METRICS_BUCKETS; i++) {
        total = ngx_min(count, total + sh->pg_bucket[i]);
        p = ngx_slprintf(p, last, "ngx_chat_pg_query_duration_seconds_bucket"
                         "{le=\"%ui.%03ui\"} %uA\n",
                         ngx_chat_pg_buckets[i] / 1000,
                         ngx_chat_pg_buckets[i] % 1000, total);
    }

    sum = sh->pg_ms_sum;

    p = ngx_slprintf(p, last, "ngx_chat_pg_query_duration_seconds_bucket"
                     "{le=\"+Inf\"} %uA\n"
                     "ngx_chat_pg_query_duration_seconds_sum %uA.%03uA\n"
                     "ngx_chat_pg_query_duration_seconds_count %uA\n",
                     count, sum / 1000, sum % 1000, count);

    /* gauges: the sum over the workers alive */

    for (j = 0; j < NGX_CHAT_G_COUNT; j++) {
        p = ngx_chat_metrics_head(p, last, ngx_chat_gauge_names[j].name,
                                  "gauge", ngx_chat_gauge_names[j].help);
        sum = 0;

        for (i = 0; i < NGX_CHAT_METRICS_SLOTS; i++) {
            pid = sh->slots[i].pid;

            if (pid && (pid == (ngx_atomic_uint_t) ngx_pid
                        || kill((pid_t) pid, 0) == 0))
            {
                sum += sh->slots[i].gauges[j];
            }
        }

        p = ngx_slprintf(p, last, "ngx_chat_%s %uA\n",
                         ngx_chat_gauge_names[j].name, sum);
    }

    p = ngx_chat_metrics_head(p, last, "zone_size_bytes", "gauge",
                              "pages of the module's shared zones");
    p = ngx_chat_metrics_zones(p, last, 0);

    p = ngx_chat_metrics_head(p, last, "zone_used_bytes", "gauge",
                              "pages of the module's shared zones in use");

    return ngx_chat_metrics_zones(p, last, 1);
}


/*
 * The zones of this module (presence, limits, these metrics), read from
 * the cycle's list by their tag: each slab pool counts its free pages.
 * Read without the zone's lock: a gauge may be a moment old.
 */

static u_char *
ngx_chat_metrics_zones(u_char *p, u_char *last, ngx_uint_t used)
{
    ngx_uint_t        i, pages;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;
    ngx_slab_pool_t  *pool;

    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag != &ngx_chat_module || zone[i].shm.addr == NULL) {
            continue;
        }

        pool = (ngx_slab_pool_t *) zone[i].shm.addr;
        pages = pool->last - pool->pages;

        if (used) {
            pages -= ngx_min(pool->pfree, pages);
        }

        p = ngx_slprintf(p, last, "ngx_chat_zone_%s_bytes{zone=\"",
                         used ? "used" : "size");
        p = ngx_chat_metrics_label(p, last, &zone[i].shm.name);
        p = ngx_slprintf(p, last, "\"} %ui\n", pages * ngx_pagesize);
    }

    return p;
}


/* a label's value as the text format escapes it: \\, \" and \n */

static u_char *
ngx_chat_metrics_label(u_char *p, u_char *last, ngx_str_t *value)
{
    u_char  *s, *end;

    end = value->data + value->len;

    for (s = value->data; s < end && last - p >= 2; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            *p++ = '\\';
            *p++ = (*s == '\n') ? 'n' : *s;

        } else {
            *p++ = *s;
        }
    }

    return p;
}
