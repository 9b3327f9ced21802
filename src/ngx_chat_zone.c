
/*
 * ngx_chat: the start of a shared zone of ours (presence, limits,
 * metrics): the slab pool, the zone's own structure allocated once and
 * found again when the zone was there before (nginx -s reload), and the
 * words nginx adds to a message of a full zone.
 */


#include "ngx_chat.h"


/*
 * NGX_OK: *sh is new (zeroed) and the caller sets it up; NGX_DONE: the
 * zone was there, *sh is what it holds; NGX_ERROR: the zone is too small.
 */

ngx_int_t
ngx_chat_zone_init(ngx_shm_zone_t *shm_zone, size_t size, const char *what,
    void **sh, ngx_slab_pool_t **shpool)
{
    size_t            len;
    ngx_slab_pool_t  *pool;

    pool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    *shpool = pool;

    if (shm_zone->shm.exists) {
        *sh = pool->data;
        return NGX_DONE;
    }

    *sh = ngx_slab_calloc(pool, size);
    if (*sh == NULL) {
        return NGX_ERROR;
    }

    pool->data = *sh;

    len = sizeof(" in chat  zone \"\"") + ngx_strlen(what)
          + shm_zone->shm.name.len;

    pool->log_ctx = ngx_slab_alloc(pool, len);
    if (pool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(pool->log_ctx, " in chat %s zone \"%V\"%Z", what,
                &shm_zone->shm.name);

    return NGX_OK;
}
