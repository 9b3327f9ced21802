
/*
 * ngx_chat: presence.
 *
 * Who is connected to this host is counted in a shared memory zone, one
 * node per user of a tenant (an rbtree keyed by a hash, as in
 * ngx_http_limit_req_module.c), with a count per worker slot: a worker
 * that dies leaves its counts in its slot, and the worker that takes the
 * slot after it clears them, so no user stays online forever.  A slot is
 * owned by a pid, so the workers of a reload, which run beside the old
 * ones for a while, never share one.
 *
 * Hosts learn of each other through Redis: each worker keeps the users it
 * has connected in a set of its own, the only writer of it, that expires
 * unless renewed, and notes in a sorted set when it last renewed it.
 * Renewing is one script every few seconds whatever the number of users;
 * a user's coming and going is one command.  A worker that dies drops out
 * when its time runs out, or at once when the worker that takes its slot
 * writes the set again, as each worker does whenever it connects to
 * Redis.  When a user comes or goes on this host, a worker announces it
 * after a pause (a flapping connection says nothing), once it knows from
 * Redis whether the user is still, or already, online elsewhere.
 *
 * The zone also keeps what the workers of a host share of a user's typing
 * (ngx_chat_presence_typing()); typing itself is ngx_chat_typing.c.
 */


#include "ngx_chat.h"

#include <hiredis/hiredis.h>


#define NGX_CHAT_PRESENCE_SLOTS      64
#define NGX_CHAT_PRESENCE_DEBOUNCE   1500
#define NGX_CHAT_PRESENCE_TTL        30      /* seconds a host vouches */
#define NGX_CHAT_PRESENCE_REFRESH    10000
#define NGX_CHAT_PRESENCE_TICK       250
#define NGX_CHAT_PRESENCE_BATCH      64
#define NGX_CHAT_PRESENCE_SADD       256     /* members a command */
#define NGX_CHAT_PRESENCE_KEY_LEN    (NGX_CHAT_REDIS_PREFIX_MAX + 32)
#define NGX_CHAT_PRESENCE_MEMBER_LEN (3 + 1 + 255 + 1 + 255)



typedef struct {
    ngx_rbtree_node_t            node;       /* key: crc32 of the key */
    ngx_queue_t                  lru;
    ngx_queue_t                  dirty;      /* waits to be announced */
    ngx_msec_t                   changed;
    ngx_msec_t                   typing_since;
    ngx_msec_t                   typing_at;  /* its last typing; 0: ended */
    ngx_msec_t                   typing_sent;
    int64_t                      typing_in;  /* the conversation */
    uint32_t                     total;
    uint16_t                     counts[NGX_CHAT_PRESENCE_SLOTS];
    u_char                       typing;     /* signals in this second */
    u_char                       in_dirty;
    u_char                       tenant_len;
    u_char                       user_len;
    u_char                       data[1];    /* tenant, then user */
} ngx_chat_presence_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  lru;
    ngx_queue_t                  dirty;
    ngx_pid_t                    slots[NGX_CHAT_PRESENCE_SLOTS];
    u_char                       host[17];   /* this host in Redis */
} ngx_chat_presence_sh_t;


typedef struct {
    ngx_chat_presence_sh_t      *sh;
    ngx_slab_pool_t             *shpool;
    ngx_str_t                    name;
} ngx_chat_presence_ctx_t;


/* an asynchronous "who of these is online", for a call or an announcement */

typedef struct {
    ngx_chat_call_t             *call;       /* NULL once it went away */
    ngx_pool_cleanup_t          *cleanup;
    json_t                      *asked;      /* of Redis, in order */
    json_t                      *online;
    ngx_uint_t                   pending;
    ngx_chat_presence_done_pt    done;
} ngx_chat_lookup_t;


static ngx_int_t ngx_chat_presence_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_chat_presence_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_chat_presence_node_t *ngx_chat_presence_find(
    ngx_chat_presence_ctx_t *ctx, ngx_str_t *tenant, ngx_str_t *user,
    uint32_t hash);
static ngx_chat_presence_node_t *ngx_chat_presence_create(
    ngx_chat_presence_ctx_t *ctx, ngx_str_t *tenant, ngx_str_t *user,
    uint32_t hash);
static uint32_t ngx_chat_presence_hash(ngx_str_t *tenant, ngx_str_t *user);
static void ngx_chat_presence_claim_slot(ngx_chat_presence_ctx_t *ctx);
static void ngx_chat_presence_count(ngx_chat_presence_ctx_t *ctx,
    ngx_chat_presence_node_t *node, ngx_uint_t slot, ngx_int_t n);
static void ngx_chat_presence_mirror(ngx_str_t *tenant, ngx_str_t *user,
    ngx_uint_t online);
static u_char *ngx_chat_presence_member(u_char *p, ngx_str_t *tenant,
    ngx_str_t *user);
static size_t ngx_chat_presence_set_key(u_char *p);
static size_t ngx_chat_presence_sets_key(u_char *p);
static void ngx_chat_presence_tick(ngx_event_t *ev);
static void ngx_chat_presence_refresh(ngx_chat_presence_ctx_t *ctx);
static void ngx_chat_presence_vouched(void *reply, void *data);
static void ngx_chat_presence_republish(ngx_chat_presence_ctx_t *ctx);
static void ngx_chat_presence_replace(u_char *members, u_char *last);
static void ngx_chat_presence_announce_due(ngx_chat_presence_ctx_t *ctx);
static void ngx_chat_presence_announce(ngx_str_t *tenant, ngx_str_t *user);
static void ngx_chat_presence_announced(ngx_chat_call_t *call);
static void ngx_chat_presence_decide(ngx_chat_call_t *call);
static ngx_int_t ngx_chat_presence_ask(ngx_str_t *tenant,
    ngx_chat_lookup_t *lk);
static void ngx_chat_lookup_reply(void *reply, void *data);
static void ngx_chat_lookup_finish(ngx_chat_lookup_t *lk);
static void ngx_chat_lookup_answer(ngx_chat_lookup_t *lk);
static void ngx_chat_lookup_cleanup(void *data);


/* workers cache the time apart: a difference of their clocks is signed */
#define ngx_chat_elapsed(since)                                               \
    ((ngx_msec_int_t) (ngx_current_msec - (since)))


static ngx_chat_presence_ctx_t  *ngx_chat_presence;
static ngx_int_t                 ngx_chat_presence_slot = -1;
static ngx_uint_t                ngx_chat_presence_mine;  /* users here */
static ngx_msec_t                ngx_chat_presence_refreshed;
static ngx_event_t               ngx_chat_presence_timer;
static ngx_msec_t                ngx_chat_presence_full_logged;


/* chat_presence_zone name size; */

char *
ngx_chat_presence_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    ssize_t                   size;
    ngx_str_t                *value;
    ngx_shm_zone_t           *shm_zone;
    ngx_chat_presence_ctx_t  *ctx;

    if (mcf->presence) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_presence_zone\" \"%V\" is too small, it "
                           "takes at least %uz", &value[2],
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_chat_presence_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->name = value[1];

    shm_zone = ngx_shared_memory_add(cf, &value[1], size, &ngx_chat_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_presence_zone\": \"%V\" is already "
                           "used", &value[1]);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_chat_presence_init_zone;
    shm_zone->data = ctx;

    mcf->presence = shm_zone;

    return NGX_CONF_OK;
}


/* a reload keeps the zone and what it knows */

static ngx_int_t
ngx_chat_presence_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_chat_presence_ctx_t  *octx = data;

    void                     *sh;
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_chat_presence_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    rc = ngx_chat_zone_init(shm_zone, sizeof(ngx_chat_presence_sh_t),
                            "presence", &sh, &ctx->shpool);
    ctx->sh = sh;

    if (rc != NGX_OK) {
        return (rc == NGX_DONE) ? NGX_OK : NGX_ERROR;
    }

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_chat_presence_insert);
    ngx_queue_init(&ctx->sh->lru);
    ngx_queue_init(&ctx->sh->dirty);

    for (i = 0; i < 16; i++) {
        ctx->sh->host[i] = "0123456789abcdef"[ngx_random() & 0xf];
    }

    /* the module says itself when the zone is full */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


/* equal hashes are ordered by the bytes of tenant and user */

static ngx_int_t
ngx_chat_presence_cmp(u_char *data, size_t tenant_len, size_t user_len,
    ngx_chat_presence_node_t *pn)
{
    ngx_int_t  rc;

    if (tenant_len != pn->tenant_len || user_len != pn->user_len) {
        return (tenant_len != pn->tenant_len)
               ? (ngx_int_t) tenant_len - pn->tenant_len
               : (ngx_int_t) user_len - pn->user_len;
    }

    rc = ngx_memcmp(data, pn->data, tenant_len + user_len);

    return rc;
}


static void
ngx_chat_presence_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t         **p;
    ngx_chat_presence_node_t   *pn;

    pn = (ngx_chat_presence_node_t *) node;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (ngx_chat_presence_cmp(pn->data, pn->tenant_len,
                                       pn->user_len,
                                       (ngx_chat_presence_node_t *) temp)
                 < 0) ? &temp->left : &temp->right;
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


ngx_int_t
ngx_chat_presence_init_worker(ngx_cycle_t *cycle, ngx_shm_zone_t *zone)
{
    ngx_chat_presence = zone->data;

    ngx_chat_presence_claim_slot(ngx_chat_presence);

    ngx_chat_presence_timer.handler = ngx_chat_presence_tick;
    ngx_chat_presence_timer.data = ngx_chat_presence;
    ngx_chat_presence_timer.log = cycle->log;
    ngx_chat_presence_timer.cancelable = 1;
    ngx_add_timer(&ngx_chat_presence_timer, NGX_CHAT_PRESENCE_TICK);

    return NGX_OK;
}


/*
 * A worker takes a slot that is free or whose owner is dead.  Every slot
 * of a dead worker is cleared here, not only the one taken: after a
 * reload the new workers sit in other slots than the old ones did, and a
 * respawned worker takes the first free slot, so the dead one's may be
 * another (its users are announced if they are gone).
 */

static void
ngx_chat_presence_claim_slot(ngx_chat_presence_ctx_t *ctx)
{
    u_char                     stale[NGX_CHAT_PRESENCE_SLOTS];
    ngx_uint_t                 i, slot;
    ngx_queue_t               *q, *next;
    ngx_chat_presence_node_t  *node;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    slot = NGX_CHAT_PRESENCE_SLOTS;

    for (i = 0; i < NGX_CHAT_PRESENCE_SLOTS; i++) {
        stale[i] = ctx->sh->slots[i] != 0
                   && kill(ctx->sh->slots[i], 0) == -1
                   && ngx_errno == NGX_ESRCH;

        if (stale[i]) {
            ctx->sh->slots[i] = 0;
        }

        if (ctx->sh->slots[i] == 0 && slot == NGX_CHAT_PRESENCE_SLOTS) {
            slot = i;
            stale[i] = 1;
        }
    }

    if (slot == NGX_CHAT_PRESENCE_SLOTS) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: presence zone \"%V\" has no free worker slot; "
                      "this worker does not count its connections",
                      &ctx->name);
        return;
    }

    ctx->sh->slots[slot] = ngx_pid;

    /* a node whose count changes moves to the tail: its next is kept */

    for (q = ngx_queue_head(&ctx->sh->lru);
         q != ngx_queue_sentinel(&ctx->sh->lru);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_chat_presence_node_t, lru);

        for (i = 0; i < NGX_CHAT_PRESENCE_SLOTS; i++) {
            if (stale[i] && node->counts[i]) {
                ngx_chat_presence_count(ctx, node, i, -node->counts[i]);
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_chat_presence_slot = slot;
}


void
ngx_chat_presence_done(void)
{
    ngx_chat_presence_ctx_t  *ctx = ngx_chat_presence;

    if (ctx == NULL) {
        return;
    }

    if (ngx_chat_presence_timer.timer_set) {
        ngx_del_timer(&ngx_chat_presence_timer);
    }

    if (ngx_chat_presence_slot >= 0) {
        ngx_shmtx_lock(&ctx->shpool->mutex);

        if (ctx->sh->slots[ngx_chat_presence_slot] == ngx_pid) {
            ctx->sh->slots[ngx_chat_presence_slot] = 0;
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);
    }

}


static uint32_t
ngx_chat_presence_hash(ngx_str_t *tenant, ngx_str_t *user)
{
    uint32_t  crc;

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, tenant->data, tenant->len);
    ngx_crc32_update(&crc, (u_char *) "\n", 1);
    ngx_crc32_update(&crc, user->data, user->len);
    ngx_crc32_final(crc);

    return crc;
}


static ngx_chat_presence_node_t *
ngx_chat_presence_find(ngx_chat_presence_ctx_t *ctx, ngx_str_t *tenant,
    ngx_str_t *user, uint32_t hash)
{
    u_char                     key[512];
    ngx_int_t                  rc;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_chat_presence_node_t  *pn;

    ngx_memcpy(ngx_cpymem(key, tenant->data, tenant->len), user->data,
               user->len);

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        pn = (ngx_chat_presence_node_t *) node;
        rc = ngx_chat_presence_cmp(key, tenant->len, user->len, pn);

        if (rc == 0) {
            return pn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* under the lock; when the zone is full the oldest offline users go */

static ngx_chat_presence_node_t *
ngx_chat_presence_create(ngx_chat_presence_ctx_t *ctx, ngx_str_t *tenant,
    ngx_str_t *user, uint32_t hash)
{
    size_t                     size;
    ngx_uint_t                 i;
    ngx_queue_t               *q, *next;
    ngx_chat_presence_node_t  *pn;

    size = offsetof(ngx_chat_presence_node_t, data) + tenant->len + user->len;

    pn = ngx_slab_alloc_locked(ctx->shpool, size);

    if (pn == NULL) {
        for (q = ngx_queue_head(&ctx->sh->lru), i = 0;
             q != ngx_queue_sentinel(&ctx->sh->lru) && i < 64;
             q = next, i++)
        {
            next = ngx_queue_next(q);
            pn = ngx_queue_data(q, ngx_chat_presence_node_t, lru);

            if (pn->total == 0 && !pn->in_dirty) {
                ngx_queue_remove(&pn->lru);
                ngx_rbtree_delete(&ctx->sh->rbtree, &pn->node);
                ngx_slab_free_locked(ctx->shpool, pn);
            }
        }

        pn = ngx_slab_alloc_locked(ctx->shpool, size);
        if (pn == NULL) {
            return NULL;
        }
    }

    ngx_memzero(pn, offsetof(ngx_chat_presence_node_t, data));

    pn->node.key = hash;
    pn->tenant_len = (u_char) tenant->len;
    pn->user_len = (u_char) user->len;
    ngx_memcpy(pn->data, tenant->data, tenant->len);
    ngx_memcpy(pn->data + tenant->len, user->data, user->len);

    ngx_rbtree_insert(&ctx->sh->rbtree, &pn->node);
    ngx_queue_insert_tail(&ctx->sh->lru, &pn->lru);

    return pn;
}


/* under the lock: a user that comes to or leaves this host is announced */

static void
ngx_chat_presence_count(ngx_chat_presence_ctx_t *ctx,
    ngx_chat_presence_node_t *pn, ngx_uint_t slot, ngx_int_t n)
{
    uint32_t  before;

    before = pn->total;

    pn->counts[slot] = (uint16_t) (pn->counts[slot] + n);
    pn->total += n;

    if ((before == 0) == (pn->total == 0)) {
        return;
    }

    /* the dirty queue stays in the order of the last change */

    pn->changed = ngx_current_msec;

    if (pn->in_dirty) {
        ngx_queue_remove(&pn->dirty);
    }

    pn->in_dirty = 1;
    ngx_queue_insert_tail(&ctx->sh->dirty, &pn->dirty);

    ngx_queue_remove(&pn->lru);
    ngx_queue_insert_tail(&ctx->sh->lru, &pn->lru);
}


/*
 * A connection of the user opens (n = 1) or closes (n = -1) on this
 * worker.  NGX_DECLINED: the zone is full, the user is not counted.
 */

ngx_int_t
ngx_chat_presence_connection(ngx_chat_identity_t *id, ngx_int_t n)
{
    uint32_t                   hash, before;
    ngx_chat_presence_ctx_t   *ctx = ngx_chat_presence;
    ngx_chat_presence_node_t  *pn;

    if (ctx == NULL || ngx_chat_presence_slot < 0
        || id->tenant.len > 255 || id->user.len > 255)
    {
        return NGX_DECLINED;
    }

    /* "before" and the mirror are of this worker's count, not the host's */

    hash = ngx_chat_presence_hash(&id->tenant, &id->user);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    pn = ngx_chat_presence_find(ctx, &id->tenant, &id->user, hash);

    if (pn == NULL && n > 0) {
        pn = ngx_chat_presence_create(ctx, &id->tenant, &id->user, hash);
    }

    if (pn == NULL || (n < 0 && pn->counts[ngx_chat_presence_slot] == 0)) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (n > 0 && ngx_current_msec - ngx_chat_presence_full_logged > 10000)
        {
            ngx_chat_presence_full_logged = ngx_current_msec;
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "chat: presence zone \"%V\" is full; users who "
                          "connect now show offline until there is room "
                          "(make the zone bigger)", &ctx->name);
        }

        return NGX_DECLINED;
    }

    before = pn->counts[ngx_chat_presence_slot];
    ngx_chat_presence_count(ctx, pn, ngx_chat_presence_slot, n);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (before == 0) {
        ngx_chat_presence_mine++;
        ngx_chat_presence_mirror(&id->tenant, &id->user, 1);

    } else if (n < 0 && before == 1) {
        ngx_chat_presence_mine--;
        ngx_chat_presence_mirror(&id->tenant, &id->user, 0);
    }

    return NGX_OK;
}


/* how many connections of the user this host has, as the zone knows */

ngx_uint_t
ngx_chat_presence_local(ngx_str_t *tenant, ngx_str_t *user)
{
    uint32_t                   total;
    ngx_chat_presence_ctx_t   *ctx = ngx_chat_presence;
    ngx_chat_presence_node_t  *pn;

    if (ctx == NULL) {
        return 0;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    pn = ngx_chat_presence_find(ctx, tenant, user,
                                ngx_chat_presence_hash(tenant, user));
    total = pn ? pn->total : 0;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return total;
}


/* at most NGX_CHAT_TYPING_RATE typing signals a second from one user */

ngx_int_t
ngx_chat_presence_typing_rate(ngx_chat_identity_t *id)
{
    ngx_int_t                  rc;
    uint32_t                   hash;
    ngx_chat_presence_ctx_t   *ctx = ngx_chat_presence;
    ngx_chat_presence_node_t  *pn;

    if (ctx == NULL || id->tenant.len > 255 || id->user.len > 255) {
        return NGX_OK;
    }

    hash = ngx_chat_presence_hash(&id->tenant, &id->user);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    pn = ngx_chat_presence_find(ctx, &id->tenant, &id->user, hash);
    if (pn == NULL) {
        pn = ngx_chat_presence_create(ctx, &id->tenant, &id->user, hash);
    }

    rc = NGX_OK;

    if (pn) {
        if (ngx_chat_elapsed(pn->typing_since) >= 1000) {
            pn->typing_since = ngx_current_msec;
            pn->typing = 0;
        }

        if (pn->typing >= NGX_CHAT_TYPING_RATE) {
            rc = NGX_BUSY;

        } else {
            pn->typing++;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/* the user is in this worker's set, or no more */

static void
ngx_chat_presence_mirror(ngx_str_t *tenant, ngx_str_t *user,
    ngx_uint_t online)
{
    u_char       key[NGX_CHAT_PRESENCE_KEY_LEN];
    u_char       member[NGX_CHAT_PRESENCE_MEMBER_LEN];
    size_t       lens[3];
    const char  *argv[3];

    if (!ngx_chat_redis_up() && !online) {
        return;
    }

    argv[0] = online ? "SADD" : "SREM";
    lens[0] = 4;
    argv[1] = (char *) key;
    lens[1] = ngx_chat_presence_set_key(key);
    argv[2] = (char *) member;
    lens[2] = ngx_chat_presence_member(member, tenant, user) - member;

    (void) ngx_chat_redis_command(3, argv, lens, NULL, NULL);

    if (online) {
        /* a set that nobody renews goes, whatever happens to this host */
        argv[0] = "EXPIRE";
        lens[0] = 6;
        argv[2] = ngx_value(NGX_CHAT_PRESENCE_TTL);
        lens[2] = ngx_strlen(argv[2]);

        (void) ngx_chat_redis_command(3, argv, lens, NULL, NULL);
    }
}


/* a user in a set: "<tenant length>:<tenant>:<user>" */

static u_char *
ngx_chat_presence_member(u_char *p, ngx_str_t *tenant, ngx_str_t *user)
{
    return ngx_sprintf(p, "%uz:%V:%V", tenant->len, tenant, user);
}


/* "<prefix>p:w:<host>:<slot>": the users of this worker */

static size_t
ngx_chat_presence_set_key(u_char *p)
{
    return ngx_sprintf(p, "%Vp:w:%*s:%i", &ngx_chat_worker.conf->redis.prefix,
                       (size_t) 16, ngx_chat_presence->sh->host,
                       ngx_chat_presence_slot)
           - p;
}


/* "<prefix>p:workers": "<host>:<slot>" of each set, by when it was renewed */

static size_t
ngx_chat_presence_sets_key(u_char *p)
{
    return ngx_sprintf(p, "%Vp:workers", &ngx_chat_worker.conf->redis.prefix)
           - p;
}


static void
ngx_chat_presence_tick(ngx_event_t *ev)
{
    ngx_chat_presence_ctx_t  *ctx = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    ngx_chat_presence_refresh(ctx);
    ngx_chat_presence_announce_due(ctx);

    ngx_add_timer(ev, NGX_CHAT_PRESENCE_TICK);
}


/*
 * Each worker renews its set every few seconds, by Redis's clock: hosts
 * need not agree on the time.  Sets silent for an hour are forgotten.
 */

static const char  ngx_chat_presence_vouch[] =
    "local now = tonumber(redis.call('TIME')[1]) "
    "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600) "
    "return redis.call('EXPIRE', KEYS[2], ARGV[2])";


static void
ngx_chat_presence_refresh(ngx_chat_presence_ctx_t *ctx)
{
    u_char       sets[NGX_CHAT_PRESENCE_KEY_LEN];
    u_char       set[NGX_CHAT_PRESENCE_KEY_LEN], name[32];
    size_t       lens[7];
    const char  *argv[7];

    if (ngx_chat_presence_slot < 0 || !ngx_chat_redis_up()
        || (ngx_chat_presence_refreshed
            && ngx_chat_elapsed(ngx_chat_presence_refreshed)
               < NGX_CHAT_PRESENCE_REFRESH))
    {
        return;
    }

    ngx_chat_presence_refreshed = ngx_current_msec;

    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = ngx_chat_presence_vouch;
    lens[1] = sizeof(ngx_chat_presence_vouch) - 1;
    argv[2] = "2";
    lens[2] = 1;
    argv[3] = (char *) sets;
    lens[3] = ngx_chat_presence_sets_key(sets);
    argv[4] = (char *) set;
    lens[4] = ngx_chat_presence_set_key(set);
    argv[5] = (char *) name;
    lens[5] = ngx_sprintf(name, "%*s:%i", (size_t) 16, ctx->sh->host,
                          ngx_chat_presence_slot)
              - name;
    argv[6] = ngx_value(NGX_CHAT_PRESENCE_TTL);
    lens[6] = ngx_strlen(argv[6]);

    (void) ngx_chat_redis_command(7, argv, lens, ngx_chat_presence_vouched,
                                  ctx);
}


/*
 * EXPIRE found no set while this worker has users: Redis lost it (a
 * restart, memory) or the worker was silent for too long.
 */

static void
ngx_chat_presence_vouched(void *r, void *data)
{
    redisReply  *reply = r;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0
        && ngx_chat_presence_mine)
    {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "chat: redis lost the presence of this worker's "
                      "users; it is written again");
        ngx_chat_presence_republish(data);
    }
}


/* this worker is connected to Redis again: its set is written whole */

void
ngx_chat_presence_redis_up(void)
{
    if (ngx_chat_presence == NULL || ngx_chat_presence_slot < 0) {
        return;
    }

    ngx_chat_presence_republish(ngx_chat_presence);

    /* and other hosts find the set at once */
    ngx_chat_presence_refreshed = 0;
    ngx_chat_presence_refresh(ngx_chat_presence);
}


static void
ngx_chat_presence_republish(ngx_chat_presence_ctx_t *ctx)
{
    u_char                    *p, *buf;
    size_t                     size;
    ngx_str_t                  tenant, user;
    ngx_queue_t               *q;
    ngx_chat_presence_node_t  *pn;

    /* the members are copied out: Redis is not written under the lock */

    ngx_shmtx_lock(&ctx->shpool->mutex);

    size = 0;

    for (q = ngx_queue_head(&ctx->sh->lru);
         q != ngx_queue_sentinel(&ctx->sh->lru);
         q = ngx_queue_next(q))
    {
        pn = ngx_queue_data(q, ngx_chat_presence_node_t, lru);

        if (pn->counts[ngx_chat_presence_slot]) {
            size += 2 + 5 + pn->tenant_len + pn->user_len;
        }
    }

    buf = ngx_alloc(size + 1, ngx_cycle->log);
    p = buf;

    for (q = ngx_queue_head(&ctx->sh->lru);
         buf && q != ngx_queue_sentinel(&ctx->sh->lru);
         q = ngx_queue_next(q))
    {
        pn = ngx_queue_data(q, ngx_chat_presence_node_t, lru);

        if (pn->counts[ngx_chat_presence_slot]) {
            tenant.len = pn->tenant_len;
            tenant.data = pn->data;
            user.len = pn->user_len;
            user.data = pn->data + pn->tenant_len;

            /* each member after its length, in two bytes */
            size = ngx_chat_presence_member(p + 2, &tenant, &user) - p - 2;
            *p++ = (u_char) (size >> 8);
            *p++ = (u_char) size;
            p += size;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (buf == NULL) {
        return;
    }

    ngx_chat_presence_replace(buf, p);

    ngx_free(buf);
}


/*
 * The set becomes the members given (each after its length), at once for
 * whoever reads it: what a dead worker of this slot left goes too.  A
 * transaction left open would take in the link's next commands: one that
 * cannot be queued ends it.
 */

static void
ngx_chat_presence_replace(u_char *members, u_char *last)
{
    u_char       key[NGX_CHAT_PRESENCE_KEY_LEN];
    size_t       lens[2 + NGX_CHAT_PRESENCE_SADD];
    ngx_uint_t   n;
    const char  *argv[2 + NGX_CHAT_PRESENCE_SADD];

    argv[0] = "MULTI";
    lens[0] = 5;

    if (ngx_chat_redis_command(1, argv, lens, NULL, NULL) != NGX_OK) {
        return;
    }

    argv[0] = "DEL";
    lens[0] = 3;
    argv[1] = (char *) key;
    lens[1] = ngx_chat_presence_set_key(key);

    if (ngx_chat_redis_command(2, argv, lens, NULL, NULL) != NGX_OK) {
        goto discard;
    }

    argv[0] = "SADD";
    lens[0] = 4;

    while (members < last) {

        for (n = 2; n < 2 + NGX_CHAT_PRESENCE_SADD && members < last; n++) {
            lens[n] = (members[0] << 8) | members[1];
            argv[n] = (char *) members + 2;
            members += 2 + lens[n];
        }

        if (ngx_chat_redis_command(n, argv, lens, NULL, NULL) != NGX_OK) {
            goto discard;
        }
    }

    argv[0] = "EXPIRE";
    lens[0] = 6;
    argv[2] = ngx_value(NGX_CHAT_PRESENCE_TTL);
    lens[2] = ngx_strlen(argv[2]);

    if (ngx_chat_redis_command(3, argv, lens, NULL, NULL) != NGX_OK) {
        goto discard;
    }

    argv[0] = "EXEC";
    lens[0] = 4;

    if (ngx_chat_redis_command(1, argv, lens, NULL, NULL) == NGX_OK) {
        return;
    }

discard:

    argv[0] = "DISCARD";
    lens[0] = 7;

    (void) ngx_chat_redis_command(1, argv, lens, NULL, NULL);
}


/* users whose coming or going has settled are announced */

static void
ngx_chat_presence_announce_due(ngx_chat_presence_ctx_t *ctx)
{
    u_char                    *p, *last;
    u_char                     buf[NGX_CHAT_PRESENCE_BATCH * 512];
    ngx_str_t                  tenant, user;
    ngx_uint_t                 n;
    ngx_queue_t               *q;
    ngx_chat_presence_node_t  *pn;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    p = buf;

    for (n = 0; n < NGX_CHAT_PRESENCE_BATCH
                && !ngx_queue_empty(&ctx->sh->dirty); n++)
    {
        q = ngx_queue_head(&ctx->sh->dirty);
        pn = ngx_queue_data(q, ngx_chat_presence_node_t, dirty);

        if (ngx_chat_elapsed(pn->changed) < NGX_CHAT_PRESENCE_DEBOUNCE) {
            break;
        }

        ngx_queue_remove(q);
        pn->in_dirty = 0;

        *p++ = pn->tenant_len;
        *p++ = pn->user_len;
        p = ngx_cpymem(p, pn->data, pn->tenant_len + pn->user_len);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    last = p;

    for (p = buf; p < last; p += tenant.len + user.len) {
        tenant.len = *p++;
        user.len = *p++;
        tenant.data = p;
        user.data = p + tenant.len;

        ngx_chat_presence_announce(&tenant, &user);
    }
}


/*
 * The announcement is an action in Postgres with no one waiting for it:
 * it runs on a pool of its own, after the lookup of where the user is.
 */

static void
ngx_chat_presence_announce(ngx_str_t *tenant, ngx_str_t *user)
{
    json_t           *users;
    ngx_int_t         rc;
    ngx_chat_call_t  *call;

    call = ngx_chat_call_create(tenant, user);
    if (call == NULL) {
        return;
    }

    call->stmt = NGX_CHAT_SQL_PRESENCE_CHANGED;
    call->done = ngx_chat_presence_announced;

    users = json_array();
    json_array_append_new(users, json_stringn((char *) user->data,
                                              user->len));

    /* whether another host has the user: only then nothing changes */
    call->flags = NGX_CHAT_A_ELSEWHERE;

    rc = ngx_chat_presence_lookup(call, users, ngx_chat_presence_decide);
    json_decref(users);

    if (rc == NGX_DONE) {
        ngx_chat_presence_decide(call);

    } else if (rc == NGX_ERROR) {
        ngx_destroy_pool(call->pool);
    }
}


/*
 * Where the user is, is known.  While another host has the user, nothing
 * changes.  Otherwise Postgres keeps when the user was last seen, and
 * tells co-members what they now see if it differs from what they were
 * last told (chat.presence_tell): that is decided there alone, for a
 * connection's coming and going as for a chosen status.
 */

static void
ngx_chat_presence_decide(ngx_chat_call_t *call)
{
    uint32_t                   hash;
    ngx_uint_t                 here, elsewhere;
    ngx_chat_presence_ctx_t   *ctx = ngx_chat_presence;
    ngx_chat_presence_node_t  *pn;

    elsewhere = json_array_size(json_object_get(call->args, "online")) > 0;
    here = 0;

    hash = ngx_chat_presence_hash(&call->id.tenant, &call->id.user);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    pn = ngx_chat_presence_find(ctx, &call->id.tenant, &call->id.user, hash);

    if (pn) {
        here = (pn->total > 0);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (pn == NULL || elsewhere) {
        ngx_destroy_pool(call->pool);
        return;
    }

    json_object_set_new(call->args, "online", json_array());

    if (here) {
        json_array_append_new(json_object_get(call->args, "online"),
                              json_string((char *) call->id.user.data));
    }

    if (ngx_chat_call_send(call) != NGX_OK) {
        ngx_destroy_pool(call->pool);
    }
}


static void
ngx_chat_presence_announced(ngx_chat_call_t *call)
{
    if (call->status >= 300) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat: announcing the presence of \"%V\" failed: %V",
                      &call->id.user, &call->error);
    }

    ngx_destroy_pool(call->pool);
}


/*
 * Which of users (a JSON array of user ids of the caller's tenant) are
 * online anywhere: here by the zone, elsewhere by Redis.  The answer goes
 * to call->args as "online".  NGX_DONE: it is there now.  NGX_OK: done()
 * is called with it later, unless the call's pool went first.
 */

ngx_int_t
ngx_chat_presence_lookup(ngx_chat_call_t *call, json_t *users,
    ngx_chat_presence_done_pt done)
{
    size_t              i;
    json_t             *u;
    ngx_str_t           user;
    ngx_chat_lookup_t  *lk;

    if (call->args == NULL) {
        call->args = json_object();
        if (call->args == NULL) {
            return NGX_ERROR;
        }

        if (ngx_chat_json_on_pool(call->pool, call->args) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    lk = ngx_calloc(sizeof(ngx_chat_lookup_t), ngx_cycle->log);
    if (lk == NULL) {
        return NGX_ERROR;
    }

    lk->call = call;
    lk->done = done;
    lk->online = json_array();
    lk->asked = json_array();
    lk->pending = 1;

    json_array_foreach(users, i, u) {
        user.data = (u_char *) json_string_value(u);
        user.len = json_string_length(u);

        if (!(call->flags & NGX_CHAT_A_ELSEWHERE)
            && ngx_chat_presence_local(&call->id.tenant, &user))
        {
            json_array_append(lk->online, u);
            continue;
        }

        if (ngx_chat_presence != NULL && user.len <= 255) {
            json_array_append(lk->asked, u);
        }
    }

    if (json_array_size(lk->asked)
        && ngx_chat_presence_ask(&call->id.tenant, lk) == NGX_OK)
    {
        lk->pending++;
    }

    if (lk->pending == 1) {
        /* nothing went to Redis: the answer is here */
        ngx_chat_lookup_answer(lk);
        return NGX_DONE;
    }

    /* the pool's cleanup tells the lookup that its call went away */
    lk->cleanup = ngx_pool_cleanup_add(call->pool, 0);
    if (lk->cleanup == NULL) {
        lk->call = NULL;
        ngx_chat_lookup_finish(lk);
        return NGX_ERROR;
    }

    lk->cleanup->handler = ngx_chat_lookup_cleanup;
    lk->cleanup->data = lk;

    ngx_chat_lookup_finish(lk);

    return NGX_OK;
}


/*
 * One script looks for the users in the sets of the other hosts' workers
 * that renewed theirs in time, and answers with their places in the
 * question (from 1).
 */

static const char  ngx_chat_presence_find_script[] =
    "local now = tonumber(redis.call('TIME')[1]) "
    "local sets = redis.call('ZRANGEBYSCORE', KEYS[1], "
    "now - tonumber(ARGV[1]), '+inf') "
    "local users = {unpack(ARGV, 4)} "
    "local found, out = {}, {} "
    "for _, s in ipairs(sets) do "
    "if string.sub(s, 1, 16) ~= ARGV[2] then "
    "local r = redis.call('SMISMEMBER', ARGV[3] .. s, unpack(users)) "
    "for i, v in ipairs(r) do if v == 1 then found[i] = true end end "
    "end "
    "end "
    "for i = 1, #users do if found[i] then out[#out + 1] = i end end "
    "return out";


static ngx_int_t
ngx_chat_presence_ask(ngx_str_t *tenant, ngx_chat_lookup_t *lk)
{
    u_char       *p, *members, workers[NGX_CHAT_PRESENCE_KEY_LEN];
    u_char        sets[NGX_CHAT_PRESENCE_KEY_LEN];
    size_t        i, n, *lens;
    json_t       *u;
    ngx_str_t     user;
    ngx_int_t     rc;
    const char  **argv;

    n = json_array_size(lk->asked);

    argv = ngx_alloc((7 + n) * (sizeof(char *) + sizeof(size_t))
                     + n * NGX_CHAT_PRESENCE_MEMBER_LEN, ngx_cycle->log);
    if (argv == NULL) {
        return NGX_ERROR;
    }

    lens = (size_t *) (argv + 7 + n);
    members = (u_char *) (lens + 7 + n);

    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = ngx_chat_presence_find_script;
    lens[1] = sizeof(ngx_chat_presence_find_script) - 1;
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = (char *) workers;
    lens[3] = ngx_chat_presence_sets_key(workers);
    argv[4] = ngx_value(NGX_CHAT_PRESENCE_TTL);
    lens[4] = ngx_strlen(argv[4]);
    argv[5] = (char *) ngx_chat_presence->sh->host;
    lens[5] = 16;
    argv[6] = (char *) sets;
    lens[6] = ngx_sprintf(sets, "%Vp:w:", &ngx_chat_worker.conf->redis.prefix)
              - sets;

    p = members;

    json_array_foreach(lk->asked, i, u) {
        user.data = (u_char *) json_string_value(u);
        user.len = json_string_length(u);

        argv[7 + i] = (char *) p;
        p = ngx_chat_presence_member(p, tenant, &user);
        lens[7 + i] = p - (u_char *) argv[7 + i];
    }

    rc = ngx_chat_redis_command(7 + n, argv, lens, ngx_chat_lookup_reply, lk);

    /* hiredis has copied the command */
    ngx_free(argv);

    return rc == NGX_OK ? NGX_OK : NGX_ERROR;
}


/* the places of those online elsewhere, from 1 */

static void
ngx_chat_lookup_reply(void *r, void *data)
{
    size_t              i;
    json_t             *user;
    redisReply         *reply = r;
    ngx_chat_lookup_t  *lk = data;

    if (reply && reply->type == REDIS_REPLY_ARRAY) {

        for (i = 0; i < reply->elements; i++) {

            if (reply->element[i]->type != REDIS_REPLY_INTEGER
                || reply->element[i]->integer < 1)
            {
                continue;
            }

            user = json_array_get(lk->asked,
                                  (size_t) reply->element[i]->integer - 1);
            if (user) {
                json_array_append(lk->online, user);
            }
        }

    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: redis could not say who is online: %*s",
                      reply->len, reply->str);
    }

    ngx_chat_lookup_finish(lk);
}


static void
ngx_chat_lookup_finish(ngx_chat_lookup_t *lk)
{
    ngx_chat_call_t            *call;
    ngx_chat_presence_done_pt   done;

    if (--lk->pending) {
        return;
    }

    call = lk->call;
    done = lk->done;

    if (call) {
        lk->cleanup->handler = NULL;
        ngx_chat_lookup_answer(lk);
        done(call);
        return;
    }

    json_decref(lk->asked);
    json_decref(lk->online);
    ngx_free(lk);
}


static void
ngx_chat_lookup_answer(ngx_chat_lookup_t *lk)
{
    json_object_set_new(lk->call->args, "online", lk->online);
    json_decref(lk->asked);
    ngx_free(lk);
}


static void
ngx_chat_lookup_cleanup(void *data)
{
    ngx_chat_lookup_t  *lk = data;

    /* the replies still to come find no call to answer */
    lk->call = NULL;
}


/*
 * The user's typing, as every worker of the host knows it: started (NGX_OK
 * when "true" is due again), stopped, or checked when a worker's timer
 * ends (NGX_OK when "false" is due; NGX_AGAIN with *left when another
 * worker heard it since).  Without a zone a worker knows only its own.
 */

ngx_int_t
ngx_chat_presence_typing(ngx_str_t *tenant, ngx_str_t *user,
    int64_t conversation, ngx_uint_t what, ngx_msec_t *left)
{
    uint32_t                   hash;
    ngx_int_t                  rc;
    ngx_msec_int_t             elapsed;
    ngx_chat_presence_ctx_t   *ctx = ngx_chat_presence;
    ngx_chat_presence_node_t  *pn;

    if (ctx == NULL || tenant->len > 255 || user->len > 255) {
        return NGX_OK;
    }

    hash = ngx_chat_presence_hash(tenant, user);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    pn = ngx_chat_presence_find(ctx, tenant, user, hash);

    if (pn == NULL && what == NGX_CHAT_TYPING_START) {
        pn = ngx_chat_presence_create(ctx, tenant, user, hash);
    }

    rc = NGX_OK;

    if (pn == NULL) {
        goto done;
    }

    switch (what) {

    case NGX_CHAT_TYPING_START:
        if (pn->typing_in == conversation && pn->typing_at
            && ngx_chat_elapsed(pn->typing_sent) < NGX_CHAT_TYPING_REPEAT)
        {
            rc = NGX_DECLINED;

        } else {
            pn->typing_sent = ngx_current_msec;
        }

        pn->typing_in = conversation;
        pn->typing_at = ngx_current_msec ? ngx_current_msec : 1;
        break;

    case NGX_CHAT_TYPING_STOP:
        if (pn->typing_in == conversation) {
            pn->typing_at = 0;
        }
        break;

    default: /* NGX_CHAT_TYPING_END */
        if (pn->typing_in != conversation) {
            /* it moved on to another conversation: this one ends here */
            break;
        }

        if (pn->typing_at == 0) {
            /* ended by another worker, which said so */
            rc = NGX_DECLINED;
            break;
        }

        elapsed = ngx_chat_elapsed(pn->typing_at);

        if (elapsed < NGX_CHAT_TYPING_EXPIRE) {
            *left = NGX_CHAT_TYPING_EXPIRE - elapsed;
            rc = NGX_AGAIN;
            break;
        }

        pn->typing_at = 0;
    }

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


