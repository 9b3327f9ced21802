
/*
 * ngx_chat: rate limits in shared memory, so that every worker of a host
 * counts the same.  As ngx_http_limit_req_module keeps them: one node a
 * key in an rbtree under the zone's lock, a leaky bucket of "excess" in
 * thousandths of a request, the least recently used nodes freed when the
 * zone is full or they have drained.  A key is a kind of limit and a
 * user (tenant and id) or a client address.
 *
 * A limit marked "cluster" is counted in Redis as well, by every host:
 * what a host lets through is added to one bucket there (a script, so
 * that the hosts' adds never race), and when the reply says the hosts
 * together went past the rate, the key's node here refuses until the
 * bucket has drained.  The check itself stays local and synchronous; the
 * cost is that the hosts may let through, past the limit, what they take
 * in one round trip to Redis.  Without Redis each host counts alone.
 *
 *   chat_limit_zone 10m;
 *   chat_limit messages 5r/s burst=20;
 *   chat_limit messages 30r/m burst=10 cluster;
 *   chat_limit connections 20;
 */


#include "ngx_chat.h"

#include <hiredis/hiredis.h>


typedef struct {
    ngx_rbtree_node_t            node;       /* key: crc32 of the key */
    ngx_queue_t                  lru;
    ngx_msec_t                   last;
    ngx_msec_t                   drained;    /* when excess will be 0 */
    ngx_msec_t                   blocked;    /* the cluster's refusal */
    uint64_t                     excess;     /* thousandths of a request */
    u_short                      len;
    u_char                       data[1];    /* kind, then the key */
} ngx_chat_limit_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  lru;
} ngx_chat_limit_sh_t;


typedef struct {
    ngx_chat_limit_sh_t         *sh;
    ngx_slab_pool_t             *shpool;
} ngx_chat_limit_ctx_t;


/* what a cluster count's reply needs to find its node again */
typedef struct {
    size_t                       len;
    u_char                       key[1];
} ngx_chat_limit_share_t;


static ngx_int_t ngx_chat_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_chat_limit_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_chat_limit_lookup(ngx_chat_limit_ctx_t *ctx,
    ngx_chat_limit_rule_t *rule, u_char *key, size_t len, time_t *retry);
static ngx_int_t ngx_chat_limit_counted(ngx_uint_t kind, u_char *key,
    size_t len, time_t *retry);
static ngx_chat_limit_node_t *ngx_chat_limit_find(ngx_chat_limit_ctx_t *ctx,
    u_char *key, size_t len, uint32_t hash);
static void ngx_chat_limit_expire(ngx_chat_limit_ctx_t *ctx, ngx_uint_t n);
static void ngx_chat_limit_share(ngx_chat_limit_rule_t *rule, u_char *key,
    size_t len);
static void ngx_chat_limit_shared(void *reply, void *data);


static const char *ngx_chat_limit_kinds[] = {
    "messages", "requests", "connects", "connects_per_address", "uploads",
    "connections", NULL
};


/* chat_limit_zone SIZE; */

char *
ngx_chat_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    ssize_t                size;
    ngx_str_t             *value, name;
    ngx_shm_zone_t        *shm_zone;
    ngx_chat_limit_ctx_t  *ctx;

    if (mcf->limit.zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_limit_zone\" \"%V\" is too small, it "
                           "takes at least %uz", &value[1],
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_chat_limit_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "chat_limits");

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_chat_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_chat_limit_init_zone;
    shm_zone->data = ctx;

    mcf->limit.zone = shm_zone;

    return NGX_CONF_OK;
}


/*
 * chat_limit KIND RATE [burst=N];  RATE is Nr/s, Nr/m or Nr/h;
 * chat_limit connections N;
 */

char *
ngx_chat_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    u_char                 *p;
    ngx_int_t               n, scale;
    ngx_str_t              *value;
    ngx_uint_t              kind, i;
    ngx_chat_limit_rule_t  *rule;

    value = cf->args->elts;

    for (kind = 0; ngx_chat_limit_kinds[kind]; kind++) {
        if (ngx_strcmp(value[1].data, ngx_chat_limit_kinds[kind]) == 0) {
            break;
        }
    }

    if (ngx_chat_limit_kinds[kind] == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_limit\": unknown limit \"%V\" (messages, "
                           "requests, connects, connects_per_address, "
                           "uploads or connections)", &value[1]);
        return NGX_CONF_ERROR;
    }

    rule = &mcf->limit.rules[kind];

    if (rule->rate || rule->max) {
        return "is duplicate for this limit";
    }

    if (kind == NGX_CHAT_LIMIT_CONNECTIONS) {
        n = ngx_atoi(value[2].data, value[2].len);

        if (cf->args->nelts != 3 || n <= 0) {
            return "takes \"connections N\": how many WebSocket connections "
                   "one user may have open on this host";
        }

        rule->max = n;
        return NGX_CONF_OK;
    }

    if (value[2].len < 4) {
        goto bad_rate;
    }

    p = value[2].data + value[2].len - 3;

    if (p[0] != 'r' || p[1] != '/') {
        goto bad_rate;
    }

    switch (p[2]) {
    case 's': scale = 1; break;
    case 'm': scale = 60; break;
    case 'h': scale = 3600; break;
    default: goto bad_rate;
    }

    n = ngx_atoi(value[2].data, p - value[2].data);

    if (n <= 0 || n > 1000000) {
        goto bad_rate;
    }

    /* in millionths of a request a second: 1r/h is still 277 */
    rule->rate = (uint64_t) n * 1000000 / scale;

    rule->burst = 0;

    for (i = 3; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 0 || n > 1000000) {
                return "takes \"burst=N\" with N from 0 to 1000000";
            }
            rule->burst = (uint64_t) n * 1000;
            continue;
        }

        if (ngx_strcmp(value[i].data, "cluster") == 0) {
            rule->cluster = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_limit\": unknown parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

bad_rate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"chat_limit\": \"%V\" is not a rate (such as "
                       "\"5r/s\", \"30r/m\" or \"100r/h\", from 1 to "
                       "1000000)", &value[2]);
    return NGX_CONF_ERROR;
}


/* a reload keeps the zone and what it counted */

static ngx_int_t
ngx_chat_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_chat_limit_ctx_t  *octx = data;

    void                  *sh;
    ngx_int_t              rc;
    ngx_chat_limit_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    rc = ngx_chat_zone_init(shm_zone, sizeof(ngx_chat_limit_sh_t), "limit",
                            &sh, &ctx->shpool);
    ctx->sh = sh;

    if (rc != NGX_OK) {
        return (rc == NGX_DONE) ? NGX_OK : NGX_ERROR;
    }

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_chat_limit_insert);
    ngx_queue_init(&ctx->sh->lru);

    return NGX_OK;
}


static void
ngx_chat_limit_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_chat_limit_node_t  *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_chat_limit_node_t *) node;
            lnt = (ngx_chat_limit_node_t *) temp;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/*
 * One more of this kind for a user: NGX_OK, or NGX_BUSY with *retry the
 * seconds after which it would pass.  No zone or no such limit: NGX_OK.
 */

ngx_int_t
ngx_chat_limit_user(ngx_uint_t kind, ngx_chat_identity_t *id, time_t *retry)
{
    u_char                  key[NGX_CHAT_LIMIT_KEY];
    size_t                  len;
    ngx_chat_limit_conf_t  *lcf;

    lcf = &ngx_chat_worker.conf->limit;

    if (lcf->zone == NULL || lcf->rules[kind].rate == 0
        || 1 + id->tenant.len + 1 + id->user.len > NGX_CHAT_LIMIT_KEY)
    {
        return NGX_OK;
    }

    key[0] = (u_char) kind;
    len = ngx_cpymem(ngx_cpymem(key + 1, id->tenant.data, id->tenant.len)
                     + 1, id->user.data, id->user.len) - key;
    key[1 + id->tenant.len] = '\n';

    return ngx_chat_limit_counted(kind, key, len, retry);
}


/* one more new connection from a client address */

ngx_int_t
ngx_chat_limit_address(ngx_uint_t kind, ngx_connection_t *c, time_t *retry)
{
    u_char                  key[1 + NGX_SOCKADDR_STRLEN];
    size_t                  len;
    ngx_chat_limit_conf_t  *lcf;

    lcf = &ngx_chat_worker.conf->limit;

    if (lcf->zone == NULL || lcf->rules[kind].rate == 0
        || c->addr_text.len > NGX_SOCKADDR_STRLEN)
    {
        return NGX_OK;
    }

    key[0] = (u_char) kind;
    len = ngx_cpymem(key + 1, c->addr_text.data, c->addr_text.len) - key;

    return ngx_chat_limit_counted(kind, key, len, retry);
}


/*
 * The key is counted here; a refusal for the metrics, what passed in
 * Redis too where the limit is the cluster's.
 */

static ngx_int_t
ngx_chat_limit_counted(ngx_uint_t kind, u_char *key, size_t len,
    time_t *retry)
{
    ngx_int_t               rc;
    ngx_chat_limit_conf_t  *lcf;

    lcf = &ngx_chat_worker.conf->limit;

    rc = ngx_chat_limit_lookup(lcf->zone->data, &lcf->rules[kind], key, len,
                               retry);

    if (rc == NGX_BUSY) {
        ngx_chat_metrics_limited(kind);

    } else if (lcf->rules[kind].cluster) {
        ngx_chat_limit_share(&lcf->rules[kind], key, len);
    }

    return rc;
}


static ngx_int_t
ngx_chat_limit_lookup(ngx_chat_limit_ctx_t *ctx, ngx_chat_limit_rule_t *rule,
    u_char *key, size_t len, time_t *retry)
{
    size_t                  size;
    uint32_t                hash;
    uint64_t                excess, drained, wait;
    ngx_int_t               rc;
    ngx_msec_int_t          ms;
    ngx_chat_limit_node_t  *ln;

    hash = ngx_crc32_short(key, len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* bounded work under the lock: two drained nodes at most */
    ngx_chat_limit_expire(ctx, 2);

    ln = ngx_chat_limit_find(ctx, key, len, hash);

    if (ln == NULL) {
        size = offsetof(ngx_chat_limit_node_t, data) + len;

        ln = ngx_slab_alloc_locked(ctx->shpool, size);

        if (ln == NULL) {
            /* full: the oldest go, then once more */
            ngx_chat_limit_expire(ctx, 0);
            ln = ngx_slab_alloc_locked(ctx->shpool, size);
        }

        if (ln == NULL) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "chat limit zone is full: not limited");
            return NGX_OK;
        }

        ln->node.key = hash;
        ln->len = (u_short) len;
        ln->last = ngx_current_msec;
        ln->excess = 1000;
        ln->blocked = 0;
        ln->drained = ngx_current_msec
                      + (ngx_msec_t) (1000 * 1000000 / rule->rate);
        ngx_memcpy(ln->data, key, len);
        ngx_rbtree_insert(&ctx->sh->rbtree, &ln->node);
        ngx_queue_insert_head(&ctx->sh->lru, &ln->lru);

        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_OK;
    }

    ngx_queue_remove(&ln->lru);
    ngx_queue_insert_head(&ctx->sh->lru, &ln->lru);

    ms = (ngx_msec_int_t) (ln->blocked - ngx_current_msec);

    if (ln->blocked && ms > 0) {
        /* the hosts together are past the rate */
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        *retry = (time_t) ngx_max(1, (ms + 999) / 1000);
        return NGX_BUSY;
    }

    ms = (ngx_msec_int_t) (ngx_current_msec - ln->last);

    if (ms < 0) {
        ms = 0;
    }

    /* what drained since, in thousandths: rate (millionths/s) * ms / 1e6 */
    drained = rule->rate * (uint64_t) ms / 1000000;
    excess = (ln->excess > drained ? ln->excess - drained : 0) + 1000;

    if (excess > rule->burst + 1000) {
        /* how long until one more fits: ms for (excess - burst - 1000)
           thousandths to drain at rate millionths a second */
        wait = (excess - rule->burst - 1000) * 1000000 / rule->rate;
        *retry = (time_t) ngx_max(1, (wait + 999) / 1000);
        rc = NGX_BUSY;

    } else {
        ln->excess = excess;
        ln->last = ngx_current_msec;
        ln->drained = ngx_current_msec
                      + (ngx_msec_t) (excess * 1000000 / rule->rate);
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


static ngx_chat_limit_node_t *
ngx_chat_limit_find(ngx_chat_limit_ctx_t *ctx, u_char *key, size_t len,
    uint32_t hash)
{
    ngx_int_t               rc;
    ngx_rbtree_node_t      *node, *sentinel;
    ngx_chat_limit_node_t  *ln;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        ln = (ngx_chat_limit_node_t *) node;

        rc = ngx_memn2cmp(key, ln->data, len, ln->len);

        if (rc == 0) {
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Frees the least recently used nodes: up to n that have drained, or with
 * n 0 the oldest few whatever they hold, to make room (a user forgotten so
 * is counted afresh: the zone should be large enough not to).
 */

static void
ngx_chat_limit_expire(ngx_chat_limit_ctx_t *ctx, ngx_uint_t n)
{
    ngx_uint_t              i, max;
    ngx_queue_t            *q;
    ngx_chat_limit_node_t  *ln;

    max = n ? n : 3;

    for (i = 0; i < max; i++) {

        if (ngx_queue_empty(&ctx->sh->lru)) {
            return;
        }

        q = ngx_queue_last(&ctx->sh->lru);
        ln = ngx_queue_data(q, ngx_chat_limit_node_t, lru);

        if (n && (ngx_msec_int_t) (ngx_current_msec - ln->drained) < 0) {
            return;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ctx->sh->rbtree, &ln->node);
        ngx_slab_free_locked(ctx->shpool, ln);
    }
}


/*
 * The hosts' bucket in Redis, as GCRA keeps it: the time at which it will
 * be empty ("tat", in Redis's milliseconds).  Each add moves it on by one
 * interval; past the burst's tolerance the reply is how long, in ms, the
 * hosts must refuse until one more fits, else 0 or less.
 */

static const char  ngx_chat_limit_script[] =
    "local t = redis.call('TIME') "
    "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now "
    "if tat < now then tat = now end "
    "tat = tat + tonumber(ARGV[1]) "
    "redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', "
    "string.format('%d', tat - now)) "
    "return tat - now - tonumber(ARGV[1]) - tonumber(ARGV[2])";


static void
ngx_chat_limit_share(ngx_chat_limit_rule_t *rule, u_char *key, size_t len)
{
    u_char                  interval[NGX_INT64_LEN], tolerance[NGX_INT64_LEN];
    u_char                  name[NGX_CHAT_REDIS_PREFIX_MAX + 32
                                 + NGX_CHAT_LIMIT_KEY + NGX_SOCKADDR_STRLEN];
    size_t                  lens[6];
    uint64_t                ms;
    const char             *argv[6];
    ngx_chat_limit_share_t *share;

    if (!ngx_chat_redis_up()) {
        /* Redis is away: each host counts alone until it is back */
        return;
    }

    share = ngx_alloc(offsetof(ngx_chat_limit_share_t, key) + len,
                      ngx_cycle->log);
    if (share == NULL) {
        return;
    }

    share->len = len;
    ngx_memcpy(share->key, key, len);

    /* one request's interval, ms: rate is in millionths a second */
    ms = ngx_max(1, (uint64_t) 1000 * 1000000 / rule->rate);

    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = ngx_chat_limit_script;
    lens[1] = sizeof(ngx_chat_limit_script) - 1;
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = (char *) name;
    lens[3] = ngx_sprintf(name, "%Vl:%s:%*s",
                          &ngx_chat_worker.conf->redis.prefix,
                          ngx_chat_limit_kinds[key[0]], len - 1, key + 1)
              - name;
    argv[4] = (char *) interval;
    lens[4] = ngx_sprintf(interval, "%uL", ms) - interval;
    argv[5] = (char *) tolerance;
    lens[5] = ngx_sprintf(tolerance, "%uL", rule->burst * ms / 1000)
              - tolerance;

    if (ngx_chat_redis_command(6, argv, lens, ngx_chat_limit_shared, share)
        != NGX_OK)
    {
        ngx_free(share);
    }
}


/* Redis said the hosts went past the rate: the key refuses for that long */

static void
ngx_chat_limit_shared(void *r, void *data)
{
    ngx_chat_limit_share_t *share = data;

    uint32_t                hash;
    ngx_msec_t              until;
    redisReply             *reply;
    ngx_chat_limit_ctx_t   *ctx;
    ngx_chat_limit_node_t  *ln;

    reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer <= 0 || ngx_chat_worker.conf == NULL
        || ngx_chat_worker.conf->limit.zone == NULL)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "chat limit: redis refused the cluster count: %*s",
                          reply->len, reply->str);
        }

        ngx_free(share);
        return;
    }

    ctx = ngx_chat_worker.conf->limit.zone->data;
    until = ngx_current_msec + (ngx_msec_t) reply->integer;
    hash = ngx_crc32_short(share->key, share->len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ln = ngx_chat_limit_find(ctx, share->key, share->len, hash);

    if (ln) {
        ln->blocked = until;

        if ((ngx_msec_int_t) (ln->drained - until) < 0) {
            /* the node is kept while it refuses */
            ln->drained = until;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat limit: the cluster is past \"%s\", refused for "
                   "%i ms", ngx_chat_limit_kinds[share->key[0]],
                   (ngx_int_t) reply->integer);

    ngx_free(share);
}
