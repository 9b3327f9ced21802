
/*
 * ngx_chat: Web Push (RFC 8030) of an outbox delivery to each browser the
 * user subscribed (chat_push).  The subscriptions are read from Postgres
 * (chat.push_targets); each endpoint's host is an address or a name that
 * nginx's resolver finds; the payload, a short JSON of the notification,
 * is encrypted for that browser (RFC 8291, ngx_chat_webpush.c) and POSTed
 * over TLS with a VAPID token (RFC 8292) signed by the server's key.  A
 * push service that says 404 or 410 no longer knows the subscription: it
 * is removed (chat.push_gone).  done() is called once, when every push
 * has answered: 201, or the status or error of one that failed, which the
 * outbox retries.
 *
 *   chat_push vapid_key=/etc/nginx/vapid.pem subject=mailto:ops@example.com;
 */


#include "ngx_chat.h"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>


#define NGX_CHAT_PUSH_PAYLOAD_MAX  3000     /* of JSON, before encryption */
#define NGX_CHAT_PUSH_JWT_MAX      1024
#define NGX_CHAT_PUSH_VAPID_EXP    (12 * 3600)
#define NGX_CHAT_PUSH_GONE_MAX     32       /* chat.push_subscribe keeps 20 */


typedef struct ngx_chat_push_s  ngx_chat_push_t;


/* one subscription's push */
typedef struct {
    ngx_chat_push_t             *push;
    int64_t                      id;         /* of its row */
    u_char                       p256dh[NGX_CHAT_WEBPUSH_KEY_LEN];
    u_char                       auth[NGX_CHAT_WEBPUSH_AUTH_LEN];
    ngx_str_t                    origin;     /* VAPID's aud */
    ngx_chat_hook_target_t       to;
    ngx_addr_t                   addr;
    in_port_t                    port;
} ngx_chat_push_one_t;


/* the pushes of one delivery */
struct ngx_chat_push_s {
    ngx_pool_t                  *pool;
    ngx_str_t                    tenant;
    ngx_str_t                    user;
    ngx_str_t                    payload;
    u_char                      *batch;
    ngx_chat_pg_query_t          query;
    ngx_chat_hook_done_pt        done;
    void                        *data;
    ngx_uint_t                   pending;
    ngx_uint_t                   status;     /* of a failure; 0: none */
    time_t                       retry;
    const char                  *error;
    int64_t                      gone[NGX_CHAT_PUSH_GONE_MAX];
    ngx_uint_t                   ngone;
    u_char                      *gone_list;
};


static ngx_int_t ngx_chat_push_payload(ngx_chat_push_t *push,
    ngx_str_t *body);
static void ngx_chat_push_targets(ngx_chat_pg_query_t *q, PGresult *res);
static const char *ngx_chat_push_start(ngx_chat_push_one_t *one,
    u_char *endpoint, size_t len);
static void ngx_chat_push_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_chat_push_send(ngx_chat_push_one_t *one);
static ngx_int_t ngx_chat_push_encrypt(ngx_chat_push_one_t *one,
    ngx_str_t *body);
static ngx_int_t ngx_chat_push_headers(ngx_chat_push_one_t *one,
    ngx_str_t *headers);
static void ngx_chat_push_posted(void *data, ngx_uint_t status,
    time_t retry, const char *error);
static void ngx_chat_push_answered(ngx_chat_push_t *push,
    ngx_uint_t status, time_t retry, const char *error);
static void ngx_chat_push_forgotten(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_push_key_cleanup(void *data);


/*
 * Starts the pushes of a delivery; NGX_OK: done() will be called, never
 * from here.  Everything lives in pool, which the caller keeps until then.
 */

ngx_int_t
ngx_chat_push_deliver(ngx_pool_t *pool, ngx_str_t *tenant, ngx_str_t *user,
    u_char *batch, ngx_str_t *body, ngx_chat_hook_done_pt done, void *data)
{
    ngx_chat_push_t  *push;

    push = ngx_pcalloc(pool, sizeof(ngx_chat_push_t));
    if (push == NULL) {
        return NGX_ERROR;
    }

    push->pool = pool;
    push->batch = batch;
    push->done = done;
    push->data = data;

    if (ngx_chat_push_payload(push, body) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the claim's result is cleared once its handler returns: copies */
    if (ngx_chat_copy(pool, &push->tenant, tenant->data, tenant->len)
        != NGX_OK
        || ngx_chat_copy(pool, &push->user, user->data, user->len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    push->query.stmt = NGX_CHAT_SQL_PUSH_TARGETS;
    push->query.nparams = 2;
    push->query.params[0] = (char *) push->tenant.data;
    push->query.params[1] = (char *) push->user.data;
    push->query.handler = ngx_chat_push_targets;
    push->query.data = push;

    return ngx_chat_pg_send(ngx_chat_worker.pg, &push->query);
}


/*
 * What a browser shows: the newest item of the delivery and how many it
 * has, under the delivery's tag (a retry replaces what it showed).
 */

static ngx_int_t
ngx_chat_push_payload(ngx_chat_push_t *push, ngx_str_t *body)
{
    char          *text;
    size_t         n;
    json_t        *in, *items, *item, *out;
    json_error_t   err;

    in = json_loadb((char *) body->data, body->len, 0, &err);
    if (in == NULL) {
        return NGX_ERROR;
    }

    items = json_object_get(in, "items");
    n = json_array_size(items);
    item = n ? json_array_get(items, n - 1) : NULL;

    out = json_object();
    if (item == NULL || out == NULL) {
        json_decref(out);
        json_decref(in);
        return NGX_ERROR;
    }

    (void) json_object_update(out, item);
    (void) json_object_set_new(out, "type", json_string("notification"));
    (void) json_object_set(out, "count", json_object_get(in, "count"));
    (void) json_object_set_new(out, "tag",
                               json_sprintf("ntf_%s", push->batch));

    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(in);

    if (text == NULL) {
        return NGX_ERROR;
    }

    n = ngx_strlen(text);

    if (n > NGX_CHAT_PUSH_PAYLOAD_MAX) {
        free(text);
        return NGX_ERROR;
    }

    push->payload.data = ngx_pnalloc(push->pool, n);
    if (push->payload.data == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(push->payload.data, text, n);
    push->payload.len = n;
    free(text);

    return NGX_OK;
}


/* (id, endpoint, p256dh, auth) of each subscription of the user */

static void
ngx_chat_push_targets(ngx_chat_pg_query_t *q, PGresult *res)
{
    int                   i;
    size_t                len;
    const char           *error;
    ngx_chat_push_t      *push = q->data;
    ngx_chat_push_one_t  *one;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        push->pending = 1;
        ngx_chat_push_answered(push, 0, 0, "cannot read the subscriptions");
        return;
    }

    /* a hold of our own while the pushes start */
    push->pending = 1;

    for (i = 0; i < PQntuples(res); i++) {
        one = ngx_pcalloc(push->pool, sizeof(ngx_chat_push_one_t));
        if (one == NULL) {
            break;
        }

        one->push = push;
        one->id = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                            PQgetlength(res, i, 0));
        push->pending++;

        if (ngx_chat_base64url_decode(one->p256dh,
                                      (u_char *) PQgetvalue(res, i, 2),
                                      PQgetlength(res, i, 2), &len)
            != NGX_OK
            || len != NGX_CHAT_WEBPUSH_KEY_LEN
            || ngx_chat_base64url_decode(one->auth,
                                         (u_char *) PQgetvalue(res, i, 3),
                                         PQgetlength(res, i, 3), &len)
               != NGX_OK
            || len != NGX_CHAT_WEBPUSH_AUTH_LEN)
        {
            /*
             * chat.api_push_subscribe checked them: a row that is not
             * readable can never be pushed to, it goes as a gone one does
             */
            ngx_chat_push_posted(one, 410, 0, NULL);
            continue;
        }

        error = ngx_chat_push_start(one, (u_char *) PQgetvalue(res, i, 1),
                                    PQgetlength(res, i, 1));
        if (error) {
            ngx_chat_push_posted(one, 0, 0, error);
        }
    }

    ngx_chat_push_answered(push, 201, 0, NULL);
}


/*
 * https://HOST[:PORT]/PATH: an address is connected to at once, a name
 * after nginx's resolver (the http block's "resolver") found it.
 */

static const char *
ngx_chat_push_start(ngx_chat_push_one_t *one, u_char *endpoint, size_t len)
{
    ngx_url_t              u;
    ngx_chat_push_t       *push;
    ngx_resolver_t        *resolver;
    ngx_resolver_ctx_t    *ctx, temp;
    ngx_chat_push_conf_t  *conf;

    push = one->push;
    conf = &ngx_chat_worker.conf->push;

    if (len < 9 || ngx_strncmp(endpoint, "https://", 8) != 0) {
        return "the endpoint is not https";
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = ngx_pnalloc(push->pool, len - 8);
    if (u.url.data == NULL) {
        return "out of memory";
    }

    u.url.len = len - 8;
    ngx_memcpy(u.url.data, endpoint + 8, len - 8);
    u.default_port = 443;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(push->pool, &u) != NGX_OK || u.host.len == 0) {
        return "the endpoint is not a URL";
    }

    one->port = u.port;
    one->to.uri = u.uri.len ? u.uri : (ngx_str_t) ngx_string("/");
    one->to.timeout = conf->timeout;
    one->to.ssl = conf->ssl;
    one->to.addr = &one->addr;

    /* Host and aud: with the port where it is not 443 */
    one->origin.data = ngx_pnalloc(push->pool, sizeof("https://:")
                                               + u.host.len + NGX_INT_T_LEN);
    if (one->origin.data == NULL
        || ngx_chat_hook_name(push->pool, &one->to, &u.host) != NGX_OK)
    {
        return "out of memory";
    }

    one->origin.len = (u.port == 443)
        ? ngx_sprintf(one->origin.data, "https://%V", &u.host)
          - one->origin.data
        : ngx_sprintf(one->origin.data, "https://%V:%d", &u.host, u.port)
          - one->origin.data;
    one->to.host.data = one->origin.data + 8;
    one->to.host.len = one->origin.len - 8;

    if (one->to.ip) {
        if (ngx_parse_addr(push->pool, &one->addr, one->to.name.data,
                           one->to.name.len)
            != NGX_OK)
        {
            return "the endpoint's address is not one";
        }

        ngx_inet_set_port(one->addr.sockaddr, one->port);
        one->addr.name = one->to.host;
        ngx_chat_push_send(one);
        return NULL;
    }

    resolver = conf->core ? conf->core->resolver : NULL;

    if (resolver == NULL) {
        return "no resolver for the endpoint's name (nginx's \"resolver\")";
    }

    temp.name = one->to.name;

    ctx = ngx_resolve_start(resolver, &temp);

    if (ctx == NULL) {
        return "cannot resolve";
    }

    if (ctx == NGX_NO_RESOLVER) {
        return "no resolver for the endpoint's name (nginx's \"resolver\")";
    }

    ctx->name = one->to.name;
    ctx->handler = ngx_chat_push_resolved;
    ctx->data = one;
    ctx->timeout = (conf->core->resolver_timeout == NGX_CONF_UNSET_MSEC)
                   ? 30000 : conf->core->resolver_timeout;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat push: resolving \"%V\"", &one->to.name);

    /* the handler may run before this returns (a cached name) */
    if (ngx_resolve_name(ctx) != NGX_OK) {
        return "cannot resolve";
    }

    return NULL;
}


static void
ngx_chat_push_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_chat_push_one_t  *one = ctx->data;

    u_char               *name;
    ngx_int_t             state;

    state = ctx->state;

    if (state == NGX_OK && ctx->naddrs) {
        one->addr.socklen = ctx->addrs[0].socklen;
        one->addr.sockaddr = ngx_palloc(one->push->pool, one->addr.socklen);

        if (one->addr.sockaddr) {
            ngx_memcpy(one->addr.sockaddr, ctx->addrs[0].sockaddr,
                       one->addr.socklen);
            ngx_inet_set_port(one->addr.sockaddr, one->port);
            one->addr.name = one->to.host;
        }
    }

    ngx_resolve_name_done(ctx);

    if (state != NGX_OK || one->addr.sockaddr == NULL) {
        name = (u_char *) ngx_resolver_strerror(state);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat push: \"%V\" could not be resolved (%s)",
                      &one->to.name, name);
        ngx_chat_push_posted(one, 0, 0, "the endpoint's name is not found");
        return;
    }

    ngx_chat_push_send(one);
}


static void
ngx_chat_push_send(ngx_chat_push_one_t *one)
{
    ngx_str_t  body, headers;

    if (ngx_chat_push_encrypt(one, &body) != NGX_OK
        || ngx_chat_push_headers(one, &headers) != NGX_OK)
    {
        ngx_chat_push_posted(one, 0, 0, "cannot encrypt or sign");
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat push: %s to %V, %uz bytes", one->push->batch,
                   &one->to.host, body.len);

    if (ngx_chat_hook_post(one->push->pool, &one->to, &headers, &body,
                           ngx_chat_push_posted, one)
        != NGX_OK)
    {
        ngx_chat_push_posted(one, 0, 0, "cannot connect");
    }
}


/* the payload for this browser, from a key made for this push alone */

static ngx_int_t
ngx_chat_push_encrypt(ngx_chat_push_one_t *one, ngx_str_t *body)
{
    u_char           salt[NGX_CHAT_WEBPUSH_SALT_LEN];
    size_t           len;
    EVP_PKEY        *key;
    ngx_int_t        rc;
    ngx_chat_push_t *push;

    push = one->push;

    body->data = ngx_pnalloc(push->pool,
                             push->payload.len + NGX_CHAT_WEBPUSH_OVERHEAD);
    if (body->data == NULL || RAND_bytes(salt, sizeof(salt)) != 1) {
        return NGX_ERROR;
    }

    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_webpush_encrypt(one->p256dh, one->auth, key, salt,
                                  push->payload.data, push->payload.len,
                                  body->data, &len);
    EVP_PKEY_free(key);

    body->len = len;

    return rc;
}


static ngx_int_t
ngx_chat_push_headers(ngx_chat_push_one_t *one, ngx_str_t *headers)
{
    u_char                 jwt[NGX_CHAT_PUSH_JWT_MAX];
    size_t                 len;
    ngx_chat_push_conf_t  *conf;

    conf = &ngx_chat_worker.conf->push;

    if (ngx_chat_vapid_jwt(conf->key, one->origin.data, one->origin.len,
                           ngx_time() + NGX_CHAT_PUSH_VAPID_EXP,
                           conf->subject.data, conf->subject.len, jwt,
                           sizeof(jwt), &len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    headers->data = ngx_pnalloc(one->push->pool,
                                sizeof("Content-Type: application/octet-stream"
                                       CRLF "Content-Encoding: aes128gcm" CRLF
                                       "TTL: " CRLF "Urgency: high" CRLF
                                       "Topic: ntf" CRLF
                                       "Authorization: vapid t=, k=" CRLF)
                                + NGX_TIME_T_LEN + NGX_INT64_LEN + len
                                + conf->public_key.len);
    if (headers->data == NULL) {
        return NGX_ERROR;
    }

    /* Topic: a retry of the delivery replaces what the service holds */
    headers->len = ngx_sprintf(headers->data,
                               "Content-Type: application/octet-stream" CRLF
                               "Content-Encoding: aes128gcm" CRLF
                               "TTL: %T" CRLF "Urgency: high" CRLF
                               "Topic: ntf%s" CRLF
                               "Authorization: vapid t=%*s, k=%V" CRLF,
                               conf->ttl, one->push->batch, len, jwt,
                               &conf->public_key)
                   - headers->data;

    return NGX_OK;
}


/* one push answered: 2xx taken, 404 and 410 gone, else failed */

static void
ngx_chat_push_posted(void *data, ngx_uint_t status, time_t retry,
    const char *error)
{
    ngx_chat_push_one_t  *one = data;
    ngx_chat_push_t      *push;

    push = one->push;

    if (status == 404 || status == 410) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "chat push: %V no longer knows a subscription (%ui): "
                      "it goes", &one->to.host, status);

        if (push->ngone < NGX_CHAT_PUSH_GONE_MAX) {
            push->gone[push->ngone++] = one->id;
        }

        status = 201;

    } else if (status < 200 || status >= 300) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "chat push: %s to %V failed: %s (%ui)", push->batch,
                      &one->to.host, error ? error : "", status);
    }

    ngx_chat_push_answered(push, status, retry, error);
}


static void
ngx_chat_push_answered(ngx_chat_push_t *push, ngx_uint_t status,
    time_t retry, const char *error)
{
    u_char      *p;
    ngx_uint_t   i;

    if ((status < 200 || status >= 300) && push->error == NULL) {
        push->status = status;
        push->error = error ? error : "the push service refused it";
    }

    push->retry = ngx_max(push->retry, retry);

    if (--push->pending) {
        return;
    }

    if (push->ngone == 0) {
        ngx_chat_push_forgotten(&push->query, NULL);
        return;
    }

    /* "{1,2,3}", a bigint[] */
    push->gone_list = ngx_pnalloc(push->pool,
                                  push->ngone * (NGX_INT64_LEN + 1) + 3);
    if (push->gone_list == NULL) {
        ngx_chat_push_forgotten(&push->query, NULL);
        return;
    }

    p = ngx_sprintf(push->gone_list, "{");

    for (i = 0; i < push->ngone; i++) {
        p = ngx_sprintf(p, i ? ",%L" : "%L", push->gone[i]);
    }

    *ngx_sprintf(p, "}") = '\0';

    ngx_memzero(&push->query, sizeof(ngx_chat_pg_query_t));
    push->query.stmt = NGX_CHAT_SQL_PUSH_GONE;
    push->query.nparams = 1;
    push->query.params[0] = (char *) push->gone_list;
    push->query.handler = ngx_chat_push_forgotten;
    push->query.data = push;

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &push->query) != NGX_OK) {
        /* the next push to them finds them gone again */
        ngx_chat_push_forgotten(&push->query, NULL);
    }
}


/* the end: what became of the pushes goes to the outbox */

static void
ngx_chat_push_forgotten(ngx_chat_pg_query_t *q, PGresult *res)
{
    ngx_chat_push_t  *push = q->data;

    if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat push: subscriptions that are gone were not "
                      "removed: %s", PQresultErrorMessage(res));
    }

    push->done(push->data, push->error ? push->status : 201, push->retry,
               push->error);
}


/*
 * chat_push vapid_key=FILE subject=mailto:...|https://... [ca=FILE]
 *     [ttl=T] [timeout=T] [window=T] [max_age=T];
 */

char *
ngx_chat_push(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *mcf = conf;

    u_char                 point[NGX_CHAT_WEBPUSH_KEY_LEN];
    BIO                   *bio;
    char                   group[32];
    size_t                 glen;
    ngx_str_t             *value, s, file, ca;
    ngx_uint_t             i;
    ngx_pool_cleanup_t    *cln;
    ngx_chat_push_conf_t  *pcf;

    pcf = &mcf->push;

    if (pcf->key) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_null(&file);
    ngx_str_null(&ca);

    pcf->ttl = 86400;
    pcf->timeout = 5000;
    pcf->window = 5000;
    pcf->max_age = 86400;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "vapid_key=", 10) == 0) {
            file.data = value[i].data + 10;
            file.len = value[i].len - 10;
            continue;
        }

        if (ngx_strncmp(value[i].data, "subject=", 8) == 0) {
            pcf->subject.data = value[i].data + 8;
            pcf->subject.len = value[i].len - 8;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ca=", 3) == 0) {
            ca.data = value[i].data + 3;
            ca.len = value[i].len - 3;
            continue;
        }

        s.data = ngx_strlchr(value[i].data, value[i].data + value[i].len,
                             '=');

        if (s.data && ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data++;
            s.len = value[i].len - 4;
            pcf->ttl = ngx_parse_time(&s, 1);
            if (pcf->ttl == (time_t) NGX_ERROR) {
                return "takes \"ttl=T\"";
            }
            continue;
        }

        if (s.data && ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data++;
            s.len = value[i].len - 8;
            pcf->timeout = ngx_parse_time(&s, 0);
            if (pcf->timeout == (ngx_msec_t) NGX_ERROR || pcf->timeout == 0) {
                return "takes \"timeout=T\"";
            }
            continue;
        }

        if (s.data && ngx_strncmp(value[i].data, "window=", 7) == 0) {
            s.data++;
            s.len = value[i].len - 7;
            pcf->window = ngx_parse_time(&s, 0);
            if (pcf->window == (ngx_msec_t) NGX_ERROR || pcf->window < 1000) {
                return "takes \"window=T\" of at least 1s";
            }
            continue;
        }

        if (s.data && ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data++;
            s.len = value[i].len - 8;
            pcf->max_age = ngx_parse_time(&s, 1);
            if (pcf->max_age == (time_t) NGX_ERROR || pcf->max_age < 60) {
                return "takes \"max_age=T\" of at least 1m";
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"chat_push\": unknown "
                           "parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (file.len == 0) {
        return "needs vapid_key= (a PEM file of a P-256 private key)";
    }

    if (!(pcf->subject.len > 7
          && (ngx_strncmp(pcf->subject.data, "mailto:", 7) == 0
              || ngx_strncmp(pcf->subject.data, "https://", 8) == 0)))
    {
        return "needs subject= (a mailto: or https:// URL push services "
               "may write to)";
    }

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    bio = BIO_new_file((char *) file.data, "r");
    if (bio == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "\"chat_push\": "
                           "cannot open \"%V\"", &file);
        return NGX_CONF_ERROR;
    }

    pcf->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pcf->key == NULL) {
        return "has a vapid_key= that is not a PEM private key";
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(pcf->key);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_chat_push_key_cleanup;
    cln->data = pcf->key;

    if (!EVP_PKEY_is_a(pcf->key, "EC")
        || EVP_PKEY_get_utf8_string_param(pcf->key,
                                          OSSL_PKEY_PARAM_GROUP_NAME,
                                          group, sizeof(group), &glen)
           != 1
        || ngx_strcmp(group, "prime256v1") != 0
        || ngx_chat_webpush_public(pcf->key, point) != NGX_OK)
    {
        return "has a vapid_key= that is not a P-256 key (RFC 8292)";
    }

    pcf->public_key.data = ngx_pnalloc(cf->pool, 4 * sizeof(point) / 3 + 4);
    if (pcf->public_key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    pcf->public_key.len = ngx_chat_base64url(pcf->public_key.data, point,
                                             sizeof(point));

    /* names of endpoints are resolved by the http block's resolver */
    pcf->core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

#if (NGX_SSL)
    return ngx_chat_hook_ssl(cf, &pcf->ssl, &ca);
#else
    return "needs nginx built with SSL: push services speak https";
#endif
}


static void
ngx_chat_push_key_cleanup(void *data)
{
    EVP_PKEY_free(data);
}
