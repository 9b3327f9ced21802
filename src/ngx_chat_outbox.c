
/*
 * ngx_chat: notifications of the outbox to the webhook (chat_webhook) and
 * by Web Push (chat_push, ngx_chat_push.c).  Each worker, at its tick,
 * claims due deliveries (chat.outbox_claim: FOR UPDATE SKIP LOCKED, with a
 * lease, so that workers and hosts share the work and one that dies loses
 * nothing), sends each to the webhook signed as Standard Webhooks says and
 * to the user's browsers, and when every way it went has answered reports
 * what became of it (chat.outbox_result: sent, the user is online here,
 * or failed, to be retried with backoff: by every way again).  The
 * webhook-id of a delivery stays the same on every retry, so a receiver
 * that keeps the ids it saw sees each once; a push service is given the
 * same Topic, which replaces a push it still holds.
 */


#include "ngx_chat.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>


#define NGX_CHAT_OUTBOX_INFLIGHT  16     /* deliveries a worker sends */
#define NGX_CHAT_OUTBOX_LEASE     "60"   /* seconds a claim holds */


typedef struct {
    ngx_chat_pg_query_t          query;
    ngx_pool_t                  *pool;
    ngx_chat_webhook_conf_t     *webhook;    /* the tenant's; NULL: none */
    u_char                       batch[NGX_INT64_LEN + 1];
    u_char                       retry[NGX_TIME_T_LEN + 1];
    u_char                       window[NGX_TIME_T_LEN + 1];
    u_char                       max_age[NGX_TIME_T_LEN + 1];
    const char                  *outcome;
    u_char                      *error;
    ngx_uint_t                   pending;    /* ways yet to answer */
    time_t                       retry_after;
} ngx_chat_delivery_t;


typedef struct {
    ngx_chat_pg_query_t          claim;
    u_char                       users[NGX_INT_T_LEN + 1];
    ngx_uint_t                   inflight;
    ngx_uint_t                   asked;      /* deliveries the claim asked */
    unsigned                     claiming:1;
    unsigned                     more:1;     /* it got all: more may wait */
} ngx_chat_outbox_t;


static void ngx_chat_outbox_claimed(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_outbox_ended(void);
static void ngx_chat_outbox_deliver(PGresult *res, int row);
static ngx_int_t ngx_chat_outbox_sign(ngx_pool_t *pool, ngx_str_t *secret,
    ngx_str_t *id, time_t ts, ngx_str_t *body, ngx_str_t *headers);
static void ngx_chat_outbox_webhook(ngx_chat_delivery_t *d, ngx_str_t *body);
static ngx_chat_webhook_conf_t *ngx_chat_outbox_webhook_of(
    ngx_chat_main_conf_t *mcf, ngx_str_t *tenant);
static ngx_chat_webhook_conf_t *ngx_chat_outbox_first(
    ngx_chat_main_conf_t *mcf);
static char *ngx_chat_webhook_slot(ngx_conf_t *cf, ngx_chat_main_conf_t *mcf,
    ngx_str_t *tenant, ngx_chat_webhook_conf_t **wcfp);
static void ngx_chat_outbox_posted(void *data, ngx_uint_t status,
    time_t retry, const char *error);
static void ngx_chat_outbox_report(ngx_chat_delivery_t *d);
static void ngx_chat_outbox_reported(ngx_chat_pg_query_t *q, PGresult *res);


static ngx_chat_outbox_t  ngx_chat_outbox;


/* whether anything delivers the outbox: else nothing is written to it */

ngx_uint_t
ngx_chat_outbox_on(ngx_chat_main_conf_t *mcf)
{
    return mcf->webhook.target.addr != NULL || mcf->tenant_webhooks != NULL
           || mcf->push.key != NULL;
}


/* the tenant's chat_webhook, else the one for the rest; NULL: none */

static ngx_chat_webhook_conf_t *
ngx_chat_outbox_webhook_of(ngx_chat_main_conf_t *mcf, ngx_str_t *tenant)
{
    ngx_uint_t                i;
    ngx_chat_webhook_conf_t  *wcf;

    if (mcf->tenant_webhooks) {
        wcf = mcf->tenant_webhooks->elts;

        for (i = 0; i < mcf->tenant_webhooks->nelts; i++) {
            if (wcf[i].tenant.len == tenant->len
                && ngx_strncmp(wcf[i].tenant.data, tenant->data, tenant->len)
                   == 0)
            {
                return &wcf[i];
            }
        }
    }

    return mcf->webhook.target.addr ? &mcf->webhook : NULL;
}


/*
 * How long a notification gathers, and lives: as the webhook for the rest
 * says, else the first for a tenant, else chat_push.  The window is one
 * for all (Postgres is told it once); max_age is each webhook's own.
 */

static ngx_chat_webhook_conf_t *
ngx_chat_outbox_first(ngx_chat_main_conf_t *mcf)
{
    if (mcf->webhook.target.addr) {
        return &mcf->webhook;
    }

    return mcf->tenant_webhooks ? mcf->tenant_webhooks->elts : NULL;
}


ngx_msec_t
ngx_chat_outbox_window(ngx_chat_main_conf_t *mcf)
{
    ngx_chat_webhook_conf_t  *wcf;

    wcf = ngx_chat_outbox_first(mcf);

    return wcf ? wcf->window : mcf->push.window;
}


time_t
ngx_chat_outbox_max_age(ngx_chat_main_conf_t *mcf)
{
    ngx_chat_webhook_conf_t  *wcf;

    wcf = ngx_chat_outbox_first(mcf);

    return wcf ? wcf->max_age : mcf->push.max_age;
}


/* the worker's tick: claim what is due, if there is room */

void
ngx_chat_outbox_tick(void)
{
    ngx_uint_t          room;
    ngx_chat_outbox_t  *ob = &ngx_chat_outbox;

    if (!ngx_chat_outbox_on(ngx_chat_worker.conf) || ob->claiming
        || ngx_exiting)
    {
        return;
    }

    room = NGX_CHAT_OUTBOX_INFLIGHT - ob->inflight;

    if (room == 0) {
        return;
    }

    ob->asked = room;
    *ngx_sprintf(ob->users, "%ui", room) = '\0';

    ob->claim.stmt = NGX_CHAT_SQL_OUTBOX_CLAIM;
    ob->claim.nparams = 2;
    ob->claim.params[0] = NGX_CHAT_OUTBOX_LEASE;
    ob->claim.params[1] = (char *) ob->users;
    ob->claim.handler = ngx_chat_outbox_claimed;
    ob->claim.data = ob;

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &ob->claim) == NGX_OK) {
        ob->claiming = 1;
    }
}


static void
ngx_chat_outbox_claimed(ngx_chat_pg_query_t *q, PGresult *res)
{
    int                 i;
    ngx_chat_outbox_t  *ob = q->data;

    ob->claiming = 0;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat outbox: claiming failed: %s",
                      res ? PQresultErrorMessage(res) : "no database");
        return;
    }

    /* as many as asked: more may be due, claimed as soon as there is room */
    ob->more = ((ngx_uint_t) PQntuples(res) >= ob->asked);

    for (i = 0; i < PQntuples(res); i++) {
        ngx_chat_outbox_deliver(res, i);
    }
}


/*
 * A delivery ended.  A backlog is claimed again as deliveries end, when
 * half the room is free, not only at the tick: else a worker would send
 * at most NGX_CHAT_OUTBOX_INFLIGHT a second however fast the receiver.
 */

static void
ngx_chat_outbox_ended(void)
{
    ngx_chat_outbox_t  *ob = &ngx_chat_outbox;

    ob->inflight--;

    if (ob->more && !ob->claiming
        && ob->inflight <= NGX_CHAT_OUTBOX_INFLIGHT / 2)
    {
        ob->more = 0;
        ngx_chat_outbox_tick();
    }
}


/*
 * One delivery: (batch, tenant, user, body, bot).  A user connected to
 * this host reads it there: it waits, as a new one would.  A bot's goes to
 * the webhook alone, connected or not: it is how the bot hears.
 */

static void
ngx_chat_outbox_deliver(PGresult *res, int row)
{
    ngx_str_t                 tenant, user, body;
    ngx_uint_t                bot;
    ngx_pool_t               *pool;
    ngx_chat_delivery_t      *d;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    d = ngx_pcalloc(pool, sizeof(ngx_chat_delivery_t));
    if (d == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    d->pool = pool;
    ngx_chat_outbox.inflight++;

    ngx_cpystrn(d->batch, (u_char *) PQgetvalue(res, row, 0),
                ngx_min((size_t) PQgetlength(res, row, 0) + 1,
                        sizeof(d->batch)));

    tenant.data = (u_char *) PQgetvalue(res, row, 1);
    tenant.len = PQgetlength(res, row, 1);
    user.data = (u_char *) PQgetvalue(res, row, 2);
    user.len = PQgetlength(res, row, 2);
    bot = (PQgetvalue(res, row, 4)[0] == 't');

    if (!bot && ngx_chat_presence_local(&tenant, &user)) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "chat outbox: %s waits, \"%V\" is online",
                       d->batch, &user);
        d->outcome = "online";
        ngx_chat_outbox_report(d);
        return;
    }

    if (ngx_chat_copy(pool, &body, PQgetvalue(res, row, 3),
                      PQgetlength(res, row, 3))
        != NGX_OK)
    {
        d->outcome = "failed";
        ngx_chat_outbox_report(d);
        return;
    }

    /* each way holds one more until it has answered */
    d->pending = 1;

    d->webhook = ngx_chat_outbox_webhook_of(ngx_chat_worker.conf, &tenant);

    if (d->webhook) {
        d->pending++;
        ngx_chat_outbox_webhook(d, &body);
    }

    if (ngx_chat_worker.conf->push.key && !bot) {
        d->pending++;

        if (ngx_chat_push_deliver(pool, &tenant, &user, d->batch, &body,
                                  ngx_chat_outbox_posted, d)
            != NGX_OK)
        {
            ngx_chat_outbox_posted(d, 0, 0, "cannot push");
        }
    }

    ngx_chat_outbox_posted(d, 200, 0, NULL);
}


static void
ngx_chat_outbox_webhook(ngx_chat_delivery_t *d, ngx_str_t *body)
{
    time_t                    now;
    ngx_str_t                 id, headers;
    ngx_chat_webhook_conf_t  *wcf;

    wcf = d->webhook;

    /* "ntf_<batch>": the same on every retry of this delivery */
    id.data = ngx_pnalloc(d->pool, sizeof("ntf_") + NGX_INT64_LEN);
    if (id.data == NULL) {
        ngx_chat_outbox_posted(d, 0, 0, "out of memory");
        return;
    }

    id.len = ngx_sprintf(id.data, "ntf_%s", d->batch) - id.data;
    now = ngx_time();

    if (ngx_chat_outbox_sign(d->pool, &wcf->secret, &id, now, body,
                             &headers)
        != NGX_OK
        || ngx_chat_hook_post(d->pool, &wcf->target, &headers, body,
                              ngx_chat_outbox_posted, d)
           != NGX_OK)
    {
        ngx_chat_outbox_posted(d, 0, 0, "cannot connect");
    }
}


/*
 * Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature,
 * "v1," and the base64 of HMAC-SHA256 over "id.timestamp.body" with the
 * secret ("whsec_" and base64, or the bytes as given).
 */

static ngx_int_t
ngx_chat_outbox_sign(ngx_pool_t *pool, ngx_str_t *secret, ngx_str_t *id,
    time_t ts, ngx_str_t *body, ngx_str_t *headers)
{
    u_char        *p, *signed_data;
    size_t         len;
    ngx_str_t      mac, b64;
    unsigned int   maclen;
    u_char         digest[EVP_MAX_MD_SIZE];

    len = id->len + 1 + NGX_TIME_T_LEN + 1 + body->len;

    signed_data = ngx_pnalloc(pool, len);
    if (signed_data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(signed_data, "%V.%T.%V", id, ts, body);

    if (HMAC(EVP_sha256(), secret->data, (int) secret->len, signed_data,
             p - signed_data, digest, &maclen)
        == NULL)
    {
        return NGX_ERROR;
    }

    mac.data = digest;
    mac.len = maclen;

    b64.data = ngx_pnalloc(pool, ngx_base64_encoded_length(mac.len));
    if (b64.data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64(&b64, &mac);

    headers->data = ngx_pnalloc(pool, sizeof("Content-Type: application/json"
                                             CRLF "webhook-id: " CRLF
                                             "webhook-timestamp: " CRLF
                                             "webhook-signature: v1," CRLF)
                                      + id->len + NGX_TIME_T_LEN + b64.len);
    if (headers->data == NULL) {
        return NGX_ERROR;
    }

    headers->len = ngx_sprintf(headers->data,
                               "Content-Type: application/json" CRLF
                               "webhook-id: %V" CRLF
                               "webhook-timestamp: %T" CRLF
                               "webhook-signature: v1,%V" CRLF,
                               id, ts, &b64)
                   - headers->data;

    return NGX_OK;
}


/*
 * One way answered (a webhook, the pushes of a user, or the hold that
 * deliver() keeps until it has started them all): the delivery is sent
 * when each way took it, else failed, with the first error and the
 * longest Retry-After.
 */

static void
ngx_chat_outbox_posted(void *data, ngx_uint_t status, time_t retry,
    const char *error)
{
    ngx_chat_delivery_t  *d = data;

    if (status < 200 || status >= 300) {
        ngx_chat_metric_add(NGX_CHAT_M_OUTBOX_FAILED, 1);

        d->retry_after = ngx_max(d->retry_after, retry);

        if (d->error == NULL) {
            d->error = ngx_pnalloc(d->pool, 64);

            if (d->error && error) {
                ngx_cpystrn(d->error, (u_char *) error, 64);

            } else if (d->error) {
                ngx_sprintf(d->error, "the receiver answered %ui%Z", status);
            }
        }

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "chat outbox: delivery %s failed: %s", d->batch,
                      error ? error : (d->error ? (char *) d->error : ""));
    }

    if (--d->pending) {
        return;
    }

    if (d->error) {
        d->outcome = "failed";
        *ngx_sprintf(d->retry, "%T", d->retry_after) = '\0';

    } else {
        d->outcome = "sent";
        ngx_chat_metric_add(NGX_CHAT_M_OUTBOX_SENT, 1);
    }

    ngx_chat_outbox_report(d);
}


/* what became of it, to Postgres; then the delivery's memory goes */

static void
ngx_chat_outbox_report(ngx_chat_delivery_t *d)
{
    if (d->retry[0] == '\0') {
        d->retry[0] = '0';
    }

    *ngx_sprintf(d->window, "%T",
                 (time_t) (ngx_chat_outbox_window(ngx_chat_worker.conf)
                           / 1000))
        = '\0';
    *ngx_sprintf(d->max_age, "%T",
                 d->webhook ? d->webhook->max_age
                            : ngx_chat_outbox_max_age(ngx_chat_worker.conf))
        = '\0';

    d->query.stmt = NGX_CHAT_SQL_OUTBOX_RESULT;
    d->query.nparams = 6;
    d->query.params[0] = (char *) d->batch;
    d->query.params[1] = d->outcome;
    d->query.params[2] = d->error ? (char *) d->error : NULL;
    d->query.params[3] = (char *) d->retry;
    d->query.params[4] = (char *) d->window;
    d->query.params[5] = (char *) d->max_age;
    d->query.handler = ngx_chat_outbox_reported;
    d->query.data = d;

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &d->query) != NGX_OK) {
        /* the lease runs out and another claim takes it again */
        ngx_destroy_pool(d->pool);
        ngx_chat_outbox_ended();
    }
}


static void
ngx_chat_outbox_reported(ngx_chat_pg_query_t *q, PGresult *res)
{
    ngx_chat_delivery_t  *d = q->data;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat outbox: the result of %s was not kept (its "
                      "lease will run out): %s", d->batch,
                      res ? PQresultErrorMessage(res) : "no database");
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat outbox: delivery %s %s", d->batch, d->outcome);

    ngx_destroy_pool(d->pool);
    ngx_chat_outbox_ended();
}


/*
 * chat_webhook http://HOST[:PORT]/PATH secret=S [window=T] [max_age=T]
 *     [timeout=T];
 * A name is resolved now, as proxy_pass resolves one; https is not spoken.
 */

char *
ngx_chat_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    char                     *rv;
    size_t                    skip;
    ngx_url_t                 u;
    ngx_str_t                *value, s, key, ca, tenant;
    ngx_uint_t                i, https;
    ngx_chat_webhook_conf_t  *wcf;

    value = cf->args->elts;

    /* tenant=: this tenant's webhook; without it, the others' */
    ngx_str_null(&tenant);

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "tenant=", 7) == 0) {
            tenant.data = value[i].data + 7;
            tenant.len = value[i].len - 7;
        }
    }

    rv = ngx_chat_webhook_slot(cf, mcf, &tenant, &wcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (value[1].len > 8 && ngx_strncmp(value[1].data, "https://", 8) == 0) {
        https = 1;
        skip = 8;

    } else if (value[1].len > 7
               && ngx_strncmp(value[1].data, "http://", 7) == 0)
    {
        https = 0;
        skip = 7;

    } else {
        return "takes an http:// or https:// URL";
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = value[1].data + skip;
    u.url.len = value[1].len - skip;
    u.default_port = https ? 443 : 80;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"chat_webhook\": %s in "
                           "\"%V\"", u.err ? u.err : "no address",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_chat_hook_target(cf, &wcf->target, &u, https) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&ca);

    wcf->window = 5000;
    wcf->max_age = 86400;
    wcf->target.timeout = 5000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "secret=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (s.len > 6 && ngx_strncmp(s.data, "whsec_", 6) == 0) {
                s.data += 6;
                s.len -= 6;
                key.data = ngx_pnalloc(cf->pool,
                                       ngx_base64_decoded_length(s.len));
                if (key.data == NULL) {
                    return NGX_CONF_ERROR;
                }
                if (ngx_decode_base64(&key, &s) != NGX_OK) {
                    return "has a \"whsec_\" secret that is not base64";
                }
                s = key;
            }

            if (s.len < 24) {
                return "needs a secret of at least 24 bytes";
            }

            wcf->secret = s;
            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;
            wcf->window = ngx_parse_time(&s, 0);
            if (wcf->window == (ngx_msec_t) NGX_ERROR || wcf->window < 1000) {
                return "takes \"window=T\" of at least 1s";
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            wcf->max_age = ngx_parse_time(&s, 1);
            if (wcf->max_age == (time_t) NGX_ERROR || wcf->max_age < 60) {
                return "takes \"max_age=T\" of at least 1m";
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            wcf->target.timeout = ngx_parse_time(&s, 0);
            if (wcf->target.timeout == (ngx_msec_t) NGX_ERROR
                || wcf->target.timeout == 0)
            {
                return "takes \"timeout=T\"";
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "tenant=", 7) == 0) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "ca=", 3) == 0 && https) {
            ca.data = value[i].data + 3;
            ca.len = value[i].len - 3;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"chat_webhook\": unknown "
                           "parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (wcf->secret.len == 0) {
        return "needs secret= (the receiver checks what it gets with it)";
    }

#if (NGX_SSL)
    if (https) {
        return ngx_chat_hook_ssl(cf, &wcf->target.ssl, &ca);
    }
#endif

    return NGX_CONF_OK;
}


/* where a chat_webhook goes: the one for the rest, or a tenant's */

static char *
ngx_chat_webhook_slot(ngx_conf_t *cf, ngx_chat_main_conf_t *mcf,
    ngx_str_t *tenant, ngx_chat_webhook_conf_t **wcfp)
{
    ngx_uint_t                i;
    ngx_chat_webhook_conf_t  *wcf;

    if (tenant->data == NULL) {
        if (mcf->webhook.target.addr) {
            return "is duplicate";
        }

        *wcfp = &mcf->webhook;
        return NGX_CONF_OK;
    }

    if (tenant->len == 0 || tenant->len > 128) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"chat_webhook\": "
                           "tenant= takes a tenant id of 1 to 128 bytes");
        return NGX_CONF_ERROR;
    }

    if (mcf->tenant_webhooks == NULL) {
        mcf->tenant_webhooks = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_chat_webhook_conf_t));
        if (mcf->tenant_webhooks == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    wcf = mcf->tenant_webhooks->elts;

    for (i = 0; i < mcf->tenant_webhooks->nelts; i++) {
        if (wcf[i].tenant.len == tenant->len
            && ngx_strncmp(wcf[i].tenant.data, tenant->data, tenant->len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"chat_webhook\" is "
                               "duplicate for tenant \"%V\"", tenant);
            return NGX_CONF_ERROR;
        }
    }

    wcf = ngx_array_push(mcf->tenant_webhooks);
    if (wcf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(wcf, sizeof(ngx_chat_webhook_conf_t));
    wcf->tenant = *tenant;
    *wcfp = wcf;

    return NGX_CONF_OK;
}
