
/*
 * ngx_chat: the chat protocol on one WebSocket connection.
 *
 * A connection says hello, learns from Postgres the conversations of its
 * user and where each stands, and follows them (ngx_chat_fanout.c); it
 * delivers nothing of them until the client's first message: a "resume"
 * names where the client stands, anything else (or silence for
 * chat_ws_start_grace) starts every conversation where it stood at connect
 * time.  A follower behind its channel reads the missing events from
 * Postgres; the very bytes Redis carried, so that replay and live meet
 * without a gap or a repeat.
 *
 * Client messages run the same actions as REST (ngx_chat_action.c) and
 * are answered with "ack" or "error", carrying the client's "req".
 * Everything a client can make the connection hold (requests waiting for
 * an answer, resumes under way, views sent before the memberships came,
 * events held before the start) has a cap, with an error past it.
 *
 * The transport (ngx_chat_ws.c) reports here through the handlers below;
 * the fan-out through the follower's.
 */


#include "ngx_chat.h"


#define NGX_CHAT_SESSION_CALLS   64
#define NGX_CHAT_SESSION_HELD    256
#define NGX_CHAT_SESSION_RESUMES 16
#define NGX_CHAT_SESSION_WATCHES 500     /* users whose presence */
#define NGX_CHAT_SESSION_VIEW    100     /* members of a view, at most */
#define NGX_CHAT_CATCH_BATCH     256
#define NGX_CHAT_CATCH_LIMIT     200
#define NGX_CHAT_RETRY           1000
#define NGX_CHAT_LOAD_SLICE      500


typedef struct {
    ngx_chat_call_t              call;
    ngx_queue_t                  queue;
    ngx_chat_session_t          *session;
    const ngx_chat_ws_type_t    *type;
    json_t                      *req;
} ngx_chat_ws_call_t;


/* an event that came before the start, without a seq to read it back by */

typedef struct {
    ngx_queue_t                  queue;
    ngx_chat_event_t            *ev;
} ngx_chat_held_t;


/* one membership as Postgres gave it, while they are followed in slices */

typedef struct {
    int64_t                      id;
    int64_t                      seq;        /* where it stands now */
    int64_t                      joined;     /* the seq the user joined at */
    ngx_str_t                    peer;       /* of a direct conversation */
} ngx_chat_member_of_t;

typedef struct {
    ngx_event_t                  event;      /* the next slice, posted */
    ngx_chat_session_t          *session;
    ngx_chat_member_of_t        *rows;
    ngx_uint_t                   n;
    ngx_uint_t                   next;
} ngx_chat_loading_t;


/* a read of Postgres by one connection: its memberships, or a catch-up */

typedef struct {
    ngx_chat_pg_query_t          query;
    ngx_pool_t                  *pool;
    ngx_chat_session_t          *session;
    ngx_chat_sub_t             **subs;     /* NULL once it ended */
    int64_t                     *ids;
    ngx_uint_t                   nsubs;
} ngx_chat_reading_t;


static ngx_int_t ngx_chat_session_identity(ngx_http_request_t *r,
    ngx_chat_session_t *s, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_session_open(ngx_chat_session_t *s);
static void ngx_chat_session_hello(ngx_chat_session_t *s);
static void ngx_chat_session_load(ngx_chat_session_t *s);
static void ngx_chat_session_loaded(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_session_load_next(ngx_event_t *ev);
static void ngx_chat_session_load_slice(ngx_chat_loading_t *ld);
static void ngx_chat_session_begin(ngx_chat_session_t *s, int64_t id,
    int64_t seq);
static void ngx_chat_session_place(ngx_chat_session_t *s,
    ngx_chat_sub_t *sub);
static void ngx_chat_session_followed(ngx_chat_session_t *s);
static ngx_chat_reading_t *ngx_chat_reading_create(ngx_chat_session_t *s,
    ngx_uint_t stmt, ngx_chat_pg_handler_pt handler);
static void ngx_chat_reading_done(ngx_chat_reading_t *rd);
static void ngx_chat_reading_cleanup(void *data);
static void ngx_chat_session_start(ngx_chat_session_t *s);
static void ngx_chat_session_resume(ngx_chat_session_t *s, json_t *map,
    json_t *req);
static void ngx_chat_session_rewind(ngx_chat_session_t *s, json_t *map);
static void ngx_chat_session_catch_up(ngx_chat_session_t *s);
static void ngx_chat_session_caught(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_session_replay(ngx_chat_reading_t *rd, PGresult *res);
static ngx_int_t ngx_chat_session_replay_one(ngx_chat_session_t *s,
    ngx_chat_sub_t *sub, int64_t id, u_char *wire, size_t len);
static void ngx_chat_session_reload(ngx_chat_session_t *s,
    ngx_chat_sub_t *sub, int64_t seq);
static void ngx_chat_session_read_all(ngx_chat_reading_t *rd, ngx_uint_t k,
    ngx_uint_t rows);
static int ngx_libc_cdecl ngx_chat_sub_cmp(const void *a, const void *b);
static void ngx_chat_session_resumed(ngx_chat_session_t *s);
static const ngx_chat_ws_type_t *ngx_chat_session_type(json_t *type);
static void ngx_chat_session_action(ngx_chat_session_t *s,
    const ngx_chat_ws_type_t *t, json_t *msg, json_t *req);
static void ngx_chat_session_call_done(ngx_chat_call_t *call);
static void ngx_chat_session_call_free(ngx_chat_ws_call_t *wc);
static void ngx_chat_session_resume_message(ngx_chat_session_t *s,
    const ngx_chat_ws_type_t *t, json_t *msg, json_t *req);
static ngx_int_t ngx_chat_session_watch(ngx_chat_session_t *s, json_t *args,
    json_t *req);
static void ngx_chat_session_unwatch(ngx_chat_session_t *s,
    const ngx_chat_ws_type_t *t, json_t *msg, json_t *req);
static ngx_int_t ngx_chat_session_renew(ngx_chat_session_t *s,
    ngx_str_t *held, ngx_str_t *fresh);
static void ngx_chat_session_refresh(ngx_chat_session_t *s,
    const ngx_chat_ws_type_t *t, json_t *msg, json_t *req);
static void ngx_chat_session_unauthorized(ngx_chat_session_t *s, json_t *req,
    const char *reason);
static json_t *ngx_chat_session_args(ngx_chat_session_t *s,
    const ngx_chat_ws_type_t *t, json_t *msg, json_t *req);
static void ngx_chat_session_reply(ngx_chat_session_t *s, json_t *req,
    const char *type, ngx_str_t *fields);
static void ngx_chat_session_error(ngx_chat_session_t *s, json_t *req,
    ngx_uint_t status, u_char *text, size_t len);
static void ngx_chat_session_error_retry(ngx_chat_session_t *s, json_t *req,
    ngx_uint_t status, const char *code, time_t retry, u_char *text,
    size_t len);
static ngx_int_t ngx_chat_session_limited(ngx_chat_session_t *s,
    json_t *req);
static ngx_int_t ngx_chat_session_admit(ngx_http_request_t *r,
    ngx_chat_session_t *s);
static void ngx_chat_session_refused(ngx_chat_session_t *s,
    ngx_uint_t limited);
static void ngx_chat_session_wake(ngx_chat_session_t *s, ngx_msec_t after);

static void ngx_chat_session_message(ngx_chat_ws_t *ws, u_char *p,
    size_t len);
static void ngx_chat_session_timer(ngx_chat_ws_t *ws);
static void ngx_chat_session_drained(ngx_chat_ws_t *ws);
static void ngx_chat_session_closed(ngx_chat_ws_t *ws);

static void ngx_chat_session_event(ngx_chat_follower_t *f,
    ngx_chat_event_t *ev);
static void ngx_chat_session_follow(ngx_chat_follower_t *f,
    int64_t conversation, int64_t from, ngx_str_t *peer);

#define ngx_chat_session_of(f)                                                \
    ((ngx_chat_session_t *) ((u_char *) (f)                                   \
                             - offsetof(ngx_chat_session_t, follower)))

#define ngx_chat_session_error_text(s, req, status, text)                     \
    ngx_chat_session_error(s, req, status, (u_char *) (text),                 \
                           sizeof(text) - 1)


static const ngx_chat_ws_handlers_t  ngx_chat_session_ws_handlers = {
    ngx_chat_session_message,
    ngx_chat_session_timer,
    ngx_chat_session_drained,
    ngx_chat_session_closed
};


static const ngx_chat_follower_handlers_t  ngx_chat_session_follower = {
    ngx_chat_session_event,
    ngx_chat_session_follow
};


/* the chat_websocket location */

ngx_int_t
ngx_chat_session_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_chat_ws_t            *ws;
    ngx_chat_error_t          err;
    ngx_chat_session_t       *s;
    ngx_chat_loc_conf_t      *lcf;
    ngx_chat_ws_handshake_t   hs;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    ngx_memzero(&hs, sizeof(ngx_chat_ws_handshake_t));

    if (ngx_chat_ws_check(r, lcf->origins, &hs, &err) != NGX_OK) {
        return ngx_chat_http_refuse(r, &err);
    }

    if (ngx_chat_worker.pg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s = ngx_pcalloc(r->connection->pool, sizeof(ngx_chat_session_t));
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_queue_init(&s->calls);
    ngx_queue_init(&s->held);

    if (ngx_chat_session_identity(r, s, &err) != NGX_OK) {
        return ngx_chat_http_refuse(r, &err);
    }

    rc = ngx_chat_session_admit(r, s);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    ws = ngx_chat_ws_upgrade(r, &hs, &ngx_chat_worker.conf->ws,
                             &ngx_chat_session_ws_handlers, s);
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->ws = ws;
    s->log = r->connection->log;

    if (ngx_chat_session_open(s) != NGX_OK) {
        ngx_chat_ws_close(ws, NGX_CHAT_WS_SERVER_ERROR, "out of memory");
    }

    return NGX_DONE;
}


/*
 * chat_limit connects, connects_per_address and connections: a handshake
 * past them is answered 429 with Retry-After, before the upgrade.
 * NGX_DECLINED: within them; else the handler's rc of the refusal.
 */

static ngx_int_t
ngx_chat_session_admit(ngx_http_request_t *r, ngx_chat_session_t *s)
{
    time_t                  retry;
    ngx_uint_t              max;
    const char             *why;

    max = ngx_chat_worker.conf->limit.rules[NGX_CHAT_LIMIT_CONNECTIONS].max;

    if (max && ngx_chat_presence_local(&s->id.tenant, &s->id.user) >= max) {
        /* one must close first: a guess at when */
        retry = 5;
        why = "too many connections of this user (chat_limit connections)";
        ngx_chat_metrics_limited(NGX_CHAT_LIMIT_CONNECTIONS);

    } else if (ngx_chat_limit_address(NGX_CHAT_LIMIT_ADDRESSES, r->connection,
                                      &retry)
               != NGX_OK)
    {
        why = "too many new connections from this address (chat_limit "
              "connects_per_address)";

    } else if (ngx_chat_limit_user(NGX_CHAT_LIMIT_CONNECTS, &s->id, &retry)
               != NGX_OK)
    {
        why = "too many new connections of this user (chat_limit "
              "connects)";

    } else {
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "chat session: refused: %s", why);

    return ngx_chat_http_error_retry(r, 429, NULL, retry, (u_char *) why,
                                     ngx_strlen(why));
}


/* the identity outlives the request: it goes to the connection's pool */

static ngx_int_t
ngx_chat_session_identity(ngx_http_request_t *r, ngx_chat_session_t *s,
    ngx_chat_error_t *err)
{
    ngx_int_t              rc;
    ngx_str_t              token;
    ngx_pool_t            *pool;
    ngx_chat_main_conf_t  *mcf;
    ngx_chat_identity_t    id;

    mcf = ngx_http_get_module_main_conf(r, ngx_chat_module);
    pool = r->connection->pool;

    if (ngx_chat_ws_token(r, &token) != NGX_OK) {
        return ngx_chat_refuse(err, 401, "a bearer token is required");
    }

    rc = ngx_chat_auth_token(&mcf->jwt, &token, r->pool, r->connection->log,
                             &id);

    if (rc == NGX_ERROR) {
        return ngx_chat_refuse(err, 500, "internal error");
    }

    if (rc != NGX_OK) {
        return ngx_chat_refuse(err, 401, "the token is invalid");
    }

    if (ngx_chat_copy(pool, &s->id.tenant, id.tenant.data, id.tenant.len)
        != NGX_OK
        || ngx_chat_copy(pool, &s->id.user, id.user.data, id.user.len)
           != NGX_OK
        || ngx_chat_copy(pool, &s->id.name, id.name.data, id.name.len)
           != NGX_OK)
    {
        return ngx_chat_refuse(err, 500, "internal error");
    }

    s->id.exp = id.exp;
    s->id.bot = id.bot;

    if (ngx_chat_copy(pool, &s->id.claims, id.claims.data, id.claims.len)
        != NGX_OK)
    {
        return ngx_chat_refuse(err, 500, "internal error");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_session_open(ngx_chat_session_t *s)
{
    ngx_chat_fanout_follower_init(&s->follower, &ngx_chat_session_follower,
                                  &s->id);

    if (ngx_chat_fanout_join(&s->follower) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a zone that is full leaves the user offline, the connection works */
    s->counted = (ngx_chat_presence_connection(&s->id, 1) == NGX_OK);

    ngx_chat_metric_add(NGX_CHAT_M_WS_OPENED, 1);
    ngx_chat_gauge_add(NGX_CHAT_G_WS, 1);
    s->metered = 1;

    s->start_by = ngx_current_msec + ngx_chat_worker.conf->ws.start_grace;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: \"%V\" of \"%V\" opens",
                   &s->id.user, &s->id.tenant);

    ngx_chat_session_hello(s);
    ngx_chat_session_load(s);

    /* delivery starts by itself after the grace; the token runs out */
    ngx_chat_session_wake(s, ngx_chat_worker.conf->ws.start_grace);

    return NGX_OK;
}


static void
ngx_chat_session_hello(ngx_chat_session_t *s)
{
    u_char     *p, *buf;
    size_t      size;
    ngx_str_t  *ice;
    ngx_tm_t    tm;
    ngx_time_t *tp;

    tp = ngx_timeofday();
    ngx_gmtime(tp->sec, &tm);

    /* the STUN and TURN servers for calls, as chat_ice_servers says */
    ice = &ngx_chat_worker.conf->ice_servers;

    /* the ids as they escape, the servers, and room for the rest */
    size = ngx_chat_json_escape_len(s->id.user.data, s->id.user.len)
           + ngx_chat_json_escape_len(s->id.tenant.data, s->id.tenant.len)
           + sizeof(",\"ice_servers\":") + ice->len + 128;

    /* the frame is a copy: the text need not outlive this call */
    buf = ngx_alloc(size, s->log);
    if (buf == NULL) {
        return;
    }

    p = ngx_cpymem(buf, "{\"type\":\"hello\",\"user_id\":\"", 27);
    p = ngx_chat_json_escape(p, s->id.user.data, s->id.user.len);
    p = ngx_cpymem(p, "\",\"tenant\":\"", 12);
    p = ngx_chat_json_escape(p, s->id.tenant.data, s->id.tenant.len);
    p = ngx_sprintf(p, "\",\"server_time\":\"%4d-%02d-%02dT%02d:%02d:%02d"
                       ".%03MZ\"",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec, tp->msec);

    if (ice->len) {
        p = ngx_sprintf(p, ",\"ice_servers\":%V", ice);
    }

    *p++ = '}';

    (void) ngx_chat_ws_send_text(s->ws, buf, p - buf);
    ngx_free(buf);
}


/* the conversations of the user, and the seq each stands at now */

static void
ngx_chat_session_load(ngx_chat_session_t *s)
{
    ngx_chat_reading_t  *rd;

    s->resync = 0;

    rd = ngx_chat_reading_create(s, NGX_CHAT_SQL_WS_MEMBERSHIPS,
                                 ngx_chat_session_loaded);
    if (rd == NULL) {
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
        return;
    }

    rd->query.nparams = 2;
    rd->query.params[0] = (char *) s->id.tenant.data;
    rd->query.params[1] = (char *) s->id.user.data;

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &rd->query) != NGX_OK) {
        ngx_chat_reading_done(rd);
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
    }
}


/*
 * The memberships: at connect, each conversation is followed from where it
 * stands now; read again after a failed read, one not followed yet is
 * followed from the seq at which the user joined it.  The other member of
 * each direct conversation is watched.  They are followed
 * in slices, a turn of the event loop apart: a user in tens of thousands
 * of conversations does not hold up the other clients of the worker.
 */

static void
ngx_chat_session_loaded(ngx_chat_pg_query_t *q, PGresult *res)
{
    int                   i, n;
    u_char               *p;
    size_t                peers;
    ngx_chat_reading_t   *rd;
    ngx_chat_loading_t   *ld;
    ngx_chat_session_t   *s;
    ngx_chat_member_of_t *m;

    rd = q->data;
    s = rd->session;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* the connection stays; the memberships are read again later */
        ngx_chat_reading_done(rd);
        s->resync = s->loaded;
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
        return;
    }

    n = PQntuples(res);
    peers = 0;

    for (i = 0; i < n; i++) {
        peers += PQgetlength(res, i, 3);
    }

    ld = ngx_alloc(sizeof(ngx_chat_loading_t)
                   + n * sizeof(ngx_chat_member_of_t) + peers, s->log);
    if (ld == NULL) {
        ngx_chat_reading_done(rd);
        s->resync = s->loaded;
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
        return;
    }

    ngx_memzero(&ld->event, sizeof(ngx_event_t));
    ld->event.handler = ngx_chat_session_load_next;

    /* nginx's debug log reads an event's data as a connection */
    ld->event.data = s->ws->connection;
    ld->event.log = s->log;
    ld->session = s;
    ld->n = n;
    ld->next = 0;
    ld->rows = (ngx_chat_member_of_t *) (ld + 1);

    p = (u_char *) (ld->rows + n);

    for (i = 0, m = ld->rows; i < n; i++, m++) {
        m->id = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                          PQgetlength(res, i, 0));
        m->seq = ngx_atoof((u_char *) PQgetvalue(res, i, 1),
                           PQgetlength(res, i, 1));
        m->joined = ngx_atoof((u_char *) PQgetvalue(res, i, 2),
                              PQgetlength(res, i, 2));

        m->peer.data = p;
        m->peer.len = PQgetlength(res, i, 3);
        p = ngx_cpymem(p, PQgetvalue(res, i, 3), m->peer.len);
    }

    ngx_chat_reading_done(rd);

    s->loading = ld;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: %ui memberships to follow", ld->n);

    ngx_chat_session_load_slice(ld);
}


static void
ngx_chat_session_load_next(ngx_event_t *ev)
{
    ngx_chat_session_load_slice((ngx_chat_loading_t *) ev);
}


static void
ngx_chat_session_load_slice(ngx_chat_loading_t *ld)
{
    ngx_uint_t             end;
    ngx_chat_session_t    *s;
    ngx_chat_member_of_t  *m;

    s = ld->session;
    end = ngx_min(ld->next + NGX_CHAT_LOAD_SLICE, ld->n);

    for ( /* void */ ; ld->next < end; ld->next++) {
        m = &ld->rows[ld->next];

        if (s->loaded) {
            ngx_chat_session_follow(&s->follower, m->id,
                                    ngx_max(m->joined, 1),
                                    m->peer.len ? &m->peer : NULL);
            continue;
        }

        if (m->peer.len) {
            (void) ngx_chat_fanout_watch(&s->follower, &m->peer,
                                         NGX_CHAT_WATCH_DIRECT);
        }

        /* a "follow" from Redis may have come first */
        if (ngx_chat_fanout_find(&s->follower, m->id) == NULL) {
            ngx_chat_session_begin(s, m->id, m->seq);
        }
    }

    if (ld->next < ld->n) {
        /* the rest after the others of this worker had their turn */
        ngx_post_event(&ld->event, &ngx_posted_next_events);
        return;
    }

    s->loading = NULL;
    ngx_free(ld);

    ngx_chat_session_followed(s);
}


/*
 * One conversation of the first reading.  When delivery has started
 * already (a resume, or another first message, came before the
 * memberships), it is placed at once, where the resume names it or where
 * it stands: nothing walks all of them again at the end.
 */

static void
ngx_chat_session_begin(ngx_chat_session_t *s, int64_t id, int64_t seq)
{
    ngx_chat_sub_t  *sub;

    sub = ngx_chat_fanout_follow(&s->follower, id, seq);

    if (sub && s->started) {
        ngx_chat_session_place(s, sub);
    }
}


/* a follower starts where a resume that came early names it, or stands */

static void
ngx_chat_session_place(ngx_chat_session_t *s, ngx_chat_sub_t *sub)
{
    u_char   key[NGX_INT64_LEN + 1];
    json_t  *pos;

    if (s->resume) {
        *ngx_sprintf(key, "%L", ngx_chat_sub_conversation(sub)) = '\0';
        pos = json_object_get(s->resume, (char *) key);

        if (pos) {
            sub->pos = json_integer_value(pos);
        }
    }

    ngx_chat_fanout_place(sub);
}


/* every membership is followed */

static void
ngx_chat_session_followed(ngx_chat_session_t *s)
{
    if (s->loaded) {
        ngx_chat_session_catch_up(s);
        return;
    }

    s->loaded = 1;

    if (s->recatch) {
        s->recatch = 0;
        ngx_chat_fanout_recatch(&s->follower);
    }

    if (s->resume) {
        /* resumed as one: the reqs of the resumes that came wait in place */
        s->resuming = 1;
    }

    if (s->started || ngx_current_msec >= s->start_by) {
        /* what is not placed yet is placed now; the held events go */
        s->started = 0;
        ngx_chat_session_start(s);
    }

    json_decref(s->resume);
    s->resume = NULL;
}


static ngx_chat_reading_t *
ngx_chat_reading_create(ngx_chat_session_t *s, ngx_uint_t stmt,
    ngx_chat_pg_handler_pt handler)
{
    ngx_pool_t          *pool;
    ngx_pool_cleanup_t  *cln;
    ngx_chat_reading_t  *rd;

    pool = ngx_create_pool(4096, s->log);
    if (pool == NULL) {
        return NULL;
    }

    rd = ngx_pcalloc(pool, sizeof(ngx_chat_reading_t));
    cln = ngx_pool_cleanup_add(pool, 0);

    if (rd == NULL || cln == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    rd->pool = pool;
    rd->session = s;
    rd->query.stmt = stmt;
    rd->query.handler = handler;
    rd->query.data = rd;

    cln->handler = ngx_chat_reading_cleanup;
    cln->data = &rd->query;

    s->reading = rd;

    return rd;
}


static void
ngx_chat_reading_done(ngx_chat_reading_t *rd)
{
    rd->session->reading = NULL;
    ngx_destroy_pool(rd->pool);
}


static void
ngx_chat_reading_cleanup(void *data)
{
    ngx_chat_pg_cancel(data);
}


/* the client's first message, or the grace period is over */

static void
ngx_chat_session_start(ngx_chat_session_t *s)
{
    ngx_queue_t      *q;
    ngx_chat_held_t  *held;

    if (s->started) {
        return;
    }

    s->started = 1;

    if (!s->loaded) {
        /* it starts when the memberships are there */
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: delivery starts, %ui conversations",
                   s->follower.nsubs);

    while (!ngx_queue_empty(&s->follower.waiting)) {
        q = ngx_queue_head(&s->follower.waiting);
        ngx_chat_session_place(s, ngx_queue_data(q, ngx_chat_sub_t,
                                                 in_state));
    }

    /* what concerned the user meanwhile, with no seq to read it back by */

    while (!ngx_queue_empty(&s->held)) {
        q = ngx_queue_head(&s->held);
        ngx_queue_remove(q);
        held = ngx_queue_data(q, ngx_chat_held_t, queue);
        ngx_chat_ws_send(s->ws, held->ev);
        ngx_chat_event_release(held->ev);
        ngx_free(held);
    }

    s->nheld = 0;

    ngx_chat_session_catch_up(s);
}


/*
 * resume {conversations: {"<id>": seq}}: the named conversations restart
 * after the given seqs, the others where they stood at connect time.
 */

static void
ngx_chat_session_resume(ngx_chat_session_t *s, json_t *map, json_t *req)
{
    /* each resume is answered by its own "resumed", when the replay ends */

    if (s->resume_reqs == NULL) {
        s->resume_reqs = json_array();
        if (s->resume_reqs == NULL) {
            ngx_chat_session_error_text(s, req, 500, "out of memory");
            return;
        }
    }

    if (json_array_size(s->resume_reqs) >= NGX_CHAT_SESSION_RESUMES) {
        ngx_chat_session_error_text(s, req, 429,
                                    "too many resumes are under way; wait "
                                    "for \"resumed\"");
        return;
    }

    json_array_append_new(s->resume_reqs, req ? json_incref(req)
                                              : json_null());

    if (!s->loaded) {
        /* the memberships are not there yet: the positions wait too */
        if (s->resume == NULL) {
            s->resume = json_object();
        }

        /* a later position of a conversation replaces an earlier one */
        json_object_update(s->resume, map);
        s->started = 1;
        return;
    }

    ngx_chat_session_rewind(s, map);
}


/* the named conversations restart after the given seqs */

static void
ngx_chat_session_rewind(ngx_chat_session_t *s, json_t *map)
{
    json_t          *seq;
    int64_t          id;
    const char      *key;
    ngx_chat_sub_t  *sub;

    if (s->reading) {
        /*
         * a read under way holds followers whose positions change here,
         * and one placed live here may be gone before its rows come
         */
        ngx_chat_reading_done(s->reading);
    }

    /* what the client names, each found by its id: not every membership */

    json_object_foreach(map, key, seq) {
        if (ngx_chat_parse_id((u_char *) key, ngx_strlen(key), &id)
            != NGX_OK)
        {
            continue;
        }

        sub = ngx_chat_fanout_find(&s->follower, id);
        if (sub == NULL) {
            continue;
        }

        sub->pos = json_integer_value(seq);

        if (sub->state != NGX_CHAT_SUB_WAITING) {
            ngx_chat_fanout_place(sub);
        }
    }

    s->resuming = 1;

    s->started = 0;
    ngx_chat_session_start(s);

    if (s->started && s->reading == NULL && s->loading == NULL) {
        /* nothing to read back */
        ngx_chat_session_catch_up(s);
    }
}


/* followers behind their channel read Postgres, one batch at a time */

static void
ngx_chat_session_catch_up(ngx_chat_session_t *s)
{
    u_char              *ids, *seqs, *p, *e;
    ngx_uint_t           n;
    ngx_queue_t         *q;
    ngx_chat_reading_t  *rd;

    if (s->reading || s->loading || !s->started || !s->loaded
        || s->ws->closing || s->paused)
    {
        return;
    }

    if (s->resync) {
        ngx_chat_session_load(s);
        return;
    }

    if (s->follower.ncatching == 0) {
        if (s->resuming) {
            ngx_chat_session_resumed(s);
        }
        return;
    }

    n = ngx_min(s->follower.ncatching, NGX_CHAT_CATCH_BATCH);

    rd = ngx_chat_reading_create(s, NGX_CHAT_SQL_WS_EVENTS,
                                 ngx_chat_session_caught);
    if (rd == NULL) {
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
        return;
    }

    rd->subs = ngx_palloc(rd->pool, n * sizeof(ngx_chat_sub_t *));
    rd->ids = ngx_palloc(rd->pool, n * sizeof(int64_t));
    ids = ngx_pnalloc(rd->pool, n * (NGX_INT64_LEN + 1) + 3);
    seqs = ngx_pnalloc(rd->pool, n * (NGX_INT64_LEN + 1) + 3);

    if (rd->subs == NULL || rd->ids == NULL || ids == NULL || seqs == NULL) {
        ngx_chat_reading_done(rd);
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
        return;
    }

    for (q = ngx_queue_head(&s->follower.catching);
         q != ngx_queue_sentinel(&s->follower.catching) && rd->nsubs < n;
         q = ngx_queue_next(q))
    {
        rd->subs[rd->nsubs++] = ngx_queue_data(q, ngx_chat_sub_t,
                                               in_state);
    }

    /* the rows come by conversation: so are the subscriptions here */
    ngx_qsort(rd->subs, rd->nsubs, sizeof(ngx_chat_sub_t *),
              ngx_chat_sub_cmp);

    p = ngx_cpymem(ids, "{", 1);
    e = ngx_cpymem(seqs, "{", 1);

    for (n = 0; n < rd->nsubs; n++) {
        rd->ids[n] = ngx_chat_sub_conversation(rd->subs[n]);
        p = ngx_sprintf(p, "%s%L", n ? "," : "", rd->ids[n]);
        e = ngx_sprintf(e, "%s%L", n ? "," : "", rd->subs[n]->pos);
    }

    *p++ = '}'; *p = '\0';
    *e++ = '}'; *e = '\0';

    rd->query.nparams = 3;
    rd->query.params[0] = (char *) ids;
    rd->query.params[1] = (char *) seqs;
    rd->query.params[2] = ngx_value(NGX_CHAT_CATCH_LIMIT);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: catching up %ui conversations",
                   rd->nsubs);

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &rd->query) != NGX_OK) {
        ngx_chat_reading_done(rd);
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
    }
}


static int ngx_libc_cdecl
ngx_chat_sub_cmp(const void *a, const void *b)
{
    int64_t  x, y;

    x = ngx_chat_sub_conversation(*(ngx_chat_sub_t **) a);
    y = ngx_chat_sub_conversation(*(ngx_chat_sub_t **) b);

    return (x > y) - (x < y);
}


static void
ngx_chat_session_caught(ngx_chat_pg_query_t *q, PGresult *res)
{
    ngx_chat_reading_t  *rd;
    ngx_chat_session_t  *s;

    rd = q->data;
    s = rd->session;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_chat_reading_done(rd);
        ngx_chat_session_wake(s, NGX_CHAT_RETRY);
        return;
    }

    ngx_chat_session_replay(rd, res);
    ngx_chat_reading_done(rd);

    ngx_chat_session_catch_up(s);
}


/* the rows of a catch-up go to this connection alone, in order */

static void
ngx_chat_session_replay(ngx_chat_reading_t *rd, PGresult *res)
{
    int          i, n;
    int64_t      id, seq;
    ngx_uint_t   k, rows;

    n = PQntuples(res);
    k = 0;
    rows = 0;

    for (i = 0; i < n; i++) {
        id = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                       PQgetlength(res, i, 0));
        seq = ngx_atoof((u_char *) PQgetvalue(res, i, 1),
                        PQgetlength(res, i, 1));

        /* the rows come by conversation, as the followers here are */
        while (k < rd->nsubs && rd->ids[k] < id) {
            ngx_chat_session_read_all(rd, k++, rows);
            rows = 0;
        }

        if (k == rd->nsubs || rd->ids[k] != id) {
            continue;
        }

        rows++;

        if (rd->subs[k] && PQgetisnull(res, i, 2)) {
            /* what it missed is no longer kept: it goes on from seq */
            ngx_chat_session_reload(rd->session, rd->subs[k], seq);
            continue;
        }

        if (rd->subs[k] && seq == rd->subs[k]->pos + 1
            && ngx_chat_session_replay_one(rd->session, rd->subs[k], id,
                   (u_char *) PQgetvalue(res, i, 2), PQgetlength(res, i, 2))
               == NGX_DONE)
        {
            rd->subs[k] = NULL;
        }
    }

    for ( /* void */ ; k < rd->nsubs; k++, rows = 0) {
        ngx_chat_session_read_all(rd, k, rows);
    }
}


/*
 * Postgres keeps events for chat_events_retention: a follower that stood
 * before what is kept jumps to where its conversation stands now, and the
 * client is told to load that conversation from history (REST) again.
 */

static void
ngx_chat_session_reload(ngx_chat_session_t *s, ngx_chat_sub_t *sub,
    int64_t seq)
{
    u_char  *p, buf[64 + NGX_INT64_LEN];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: c:%L from %L is past retention, at %L now",
                   ngx_chat_sub_conversation(sub), sub->pos, seq);

    if (seq > sub->pos) {
        ngx_chat_fanout_sent(sub, seq);
    }

    p = ngx_sprintf(buf, "{\"type\":\"reload\",\"conversation_id\":%L,"
                         "\"last_seq\":%L}", ngx_chat_sub_conversation(sub), seq);

    (void) ngx_chat_ws_send_text(s->ws, buf, p - buf);
}


/*
 * NGX_DONE: it was the follower's own removal, it follows no more.
 * NGX_BUSY: the connection's queue is full enough, the rest waits for it
 * to drain (a catch-up must not make its client "too slow").
 */

static ngx_int_t
ngx_chat_session_replay_one(ngx_chat_session_t *s, ngx_chat_sub_t *sub,
    int64_t id, u_char *wire, size_t len)
{
    ngx_int_t          rc;
    ngx_chat_event_t  *ev;

    if (s->paused
        || ngx_chat_ws_queued(s->ws) + len
           > ngx_chat_worker.conf->ws.send_queue / 4 * 3)
    {
        s->paused = 1;
        ngx_chat_ws_want_room(s->ws);
        return NGX_BUSY;
    }

    ev = ngx_chat_event_from_wire(id, wire, len);
    if (ev == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_ws_send(s->ws, ev);
    ngx_chat_fanout_sent(sub, ev->seq);
    rc = NGX_OK;

    if (ngx_chat_event_concerns(ev, '-', &s->id.user)) {
        ngx_chat_fanout_unfollow(sub);
        rc = NGX_DONE;
    }

    ngx_chat_event_release(ev);

    return rc;
}


/* fewer rows than asked for: it read all Postgres had, it is placed */

static void
ngx_chat_session_read_all(ngx_chat_reading_t *rd, ngx_uint_t k,
    ngx_uint_t rows)
{
    if (rd->subs[k] && rows < NGX_CHAT_CATCH_LIMIT && !rd->session->paused) {
        ngx_chat_fanout_place(rd->subs[k]);
    }
}


/* the connection wrote enough of what waited: the catch-up goes on */

static void
ngx_chat_session_drained(ngx_chat_ws_t *ws)
{
    ngx_chat_session_t  *s = ws->data;

    s->paused = 0;
    ngx_chat_session_catch_up(s);
}


static void
ngx_chat_session_resumed(ngx_chat_session_t *s)
{
    size_t   i;
    json_t  *req;

    s->resuming = 0;

    json_array_foreach(s->resume_reqs, i, req) {
        ngx_chat_session_reply(s, json_is_null(req) ? NULL : req, "resumed",
                               NULL);
    }

    json_decref(s->resume_reqs);
    s->resume_reqs = NULL;
}


/* an event from the fan-out for this connection */

static void
ngx_chat_session_event(ngx_chat_follower_t *f, ngx_chat_event_t *ev)
{
    ngx_chat_held_t     *held;
    ngx_chat_session_t  *s;

    ngx_chat_metric_add(NGX_CHAT_M_DELIVERIES, 1);

    s = ngx_chat_session_of(f);

    if (s->started && s->loaded) {
        ngx_chat_ws_send(s->ws, ev);
        return;
    }

    /* before the start only events without a seq come here: held */

    if (s->nheld == NGX_CHAT_SESSION_HELD) {
        return;
    }

    held = ngx_alloc(sizeof(ngx_chat_held_t), s->log);
    if (held == NULL) {
        return;
    }

    held->ev = ev;
    ev->refs++;
    ngx_queue_insert_tail(&s->held, &held->queue);
    s->nheld++;
}


/*
 * The user is in a conversation (added, or one it may have missed): it is
 * followed from that seq, and the other member of a direct conversation is
 * watched.
 */

static void
ngx_chat_session_follow(ngx_chat_follower_t *f, int64_t conversation,
    int64_t from, ngx_str_t *peer)
{
    ngx_chat_sub_t      *sub;
    ngx_chat_session_t  *s;

    s = ngx_chat_session_of(f);

    if (s->ws->closing) {
        return;
    }

    if (peer) {
        (void) ngx_chat_fanout_watch(f, peer, NGX_CHAT_WATCH_DIRECT);
    }

    if (!s->loaded) {
        /*
         * the memberships being read may or may not have it, and where
         * they stand is the right place to start: asked again once they
         * are followed
         */
        s->recatch = 1;
        return;
    }

    if (ngx_chat_fanout_find(f, conversation) != NULL) {
        return;
    }

    sub = ngx_chat_fanout_follow(f, conversation, from - 1);
    if (sub == NULL) {
        return;
    }

    if (s->started && s->loaded) {
        ngx_chat_fanout_place(sub);
        ngx_chat_session_catch_up(s);
    }
}


/*
 * The connection's timer: the token's end, the start, and reads that
 * failed before.  A connection lasts no longer than the token it came
 * with.
 */

static void
ngx_chat_session_timer(ngx_chat_ws_t *ws)
{
    time_t               left;
    ngx_chat_session_t  *s = ws->data;

    left = s->id.exp + ngx_chat_worker.conf->jwt.leeway - ngx_time();

    if (left < 0) {
        ngx_chat_ws_close(ws, NGX_CHAT_WS_POLICY, "token expired");
        return;
    }

    /* the token is looked at again when it ends, at the latest */
    ngx_chat_session_wake(s, (ngx_msec_t) (left + 1) * 1000);

    if (!s->started && ngx_current_msec < s->start_by) {
        ngx_chat_session_wake(s, s->start_by - ngx_current_msec);
    }

    if (s->reading || s->loading) {
        return;
    }

    if (!s->loaded || s->resync) {
        ngx_chat_session_load(s);
        return;
    }

    if (!s->started && ngx_current_msec >= s->start_by) {
        ngx_chat_session_start(s);
        return;
    }

    ngx_chat_session_catch_up(s);
}


/* the transport is going: everything of the session goes with it */

static void
ngx_chat_session_closed(ngx_chat_ws_t *ws)
{
    ngx_queue_t         *q;
    ngx_chat_held_t     *held;
    ngx_chat_ws_call_t  *wc;
    ngx_chat_session_t  *s = ws->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: \"%V\" closes", &s->id.user);

    while (!ngx_queue_empty(&s->calls)) {
        q = ngx_queue_head(&s->calls);
        wc = ngx_queue_data(q, ngx_chat_ws_call_t, queue);
        ngx_chat_session_call_free(wc);
    }

    if (s->reading) {
        ngx_chat_reading_done(s->reading);
    }

    if (s->loading) {
        if (((ngx_event_t *) s->loading)->posted) {
            ngx_delete_posted_event((ngx_event_t *) s->loading);
        }

        ngx_free(s->loading);
        s->loading = NULL;
    }

    if (s->follower.handlers) {
        ngx_chat_fanout_leave(&s->follower);
    }

    if (s->counted) {
        (void) ngx_chat_presence_connection(&s->id, -1);
        s->counted = 0;
    }

    if (s->metered) {
        ngx_chat_gauge_add(NGX_CHAT_G_WS, -1);
        s->metered = 0;
    }

    while (!ngx_queue_empty(&s->held)) {
        q = ngx_queue_head(&s->held);
        ngx_queue_remove(q);
        held = ngx_queue_data(q, ngx_chat_held_t, queue);
        ngx_chat_event_release(held->ev);
        ngx_free(held);
    }

    json_decref(s->resume);
    json_decref(s->resume_reqs);
    s->resume = NULL;
    s->resume_reqs = NULL;
}


/* a text message from the client */

static void
ngx_chat_session_message(ngx_chat_ws_t *ws, u_char *p, size_t len)
{
    json_t                    *msg, *req;
    json_error_t               jerr;
    const ngx_chat_ws_type_t  *t;
    ngx_chat_session_t        *s = ws->data;

    msg = json_loadb((char *) p, len, JSON_REJECT_DUPLICATES, &jerr);

    if (msg == NULL || !json_is_object(msg)) {
        if (!s->started) {
            ngx_chat_session_start(s);
        }

        ngx_chat_session_error_text(s, NULL, 400,
                                    "the message is not a JSON object");
        json_decref(msg);
        return;
    }

    req = json_incref(json_object_get(msg, "req"));
    json_object_del(msg, "req");

    t = ngx_chat_session_type(json_object_get(msg, "type"));
    json_object_del(msg, "type");

    /* any first message but a resume starts delivery, even a bad one */
    if ((t == NULL || t->kind != NGX_CHAT_MSG_RESUME) && !s->started) {
        ngx_chat_session_start(s);
    }

    if (req && !json_is_string(req) && !json_is_integer(req)) {
        ngx_chat_session_error_text(s, NULL, 400,
                                    "\"req\": must be a string or an "
                                    "integer");
        goto done;
    }

    if (req && json_is_string(req)
        && ngx_chat_utf8_chars((u_char *) json_string_value(req),
                               json_string_length(req)) > 128)
    {
        ngx_chat_session_error_text(s, NULL, 400,
                                    "\"req\": is longer than 128 "
                                    "characters");
        goto done;
    }

    if (t == NULL) {
        ngx_chat_session_error_text(s, req, 400,
                                    "\"type\": is not a message type of "
                                    "this protocol");
        goto done;
    }

    if (ngx_chat_session_limited(s, req) != NGX_OK) {
        goto done;
    }

    switch (t->kind) {

    case NGX_CHAT_MSG_ACTION:
        ngx_chat_session_action(s, t, msg, req);
        break;

    case NGX_CHAT_MSG_PING:
        ngx_chat_session_reply(s, req, "pong", NULL);
        break;

    case NGX_CHAT_MSG_RESUME:
        ngx_chat_session_resume_message(s, t, msg, req);
        break;

    case NGX_CHAT_MSG_UNWATCH:
        ngx_chat_session_unwatch(s, t, msg, req);
        break;

    case NGX_CHAT_MSG_REFRESH:
        ngx_chat_session_refresh(s, t, msg, req);
        break;

    default:
        /* join, leave and presence_subscribe are actions too */
        ngx_chat_session_action(s, t, msg, req);
        break;
    }

done:

    json_decref(req);
    json_decref(msg);
}


static const ngx_chat_ws_type_t *
ngx_chat_session_type(json_t *type)
{
    size_t       len;
    ngx_uint_t   i;
    const char  *name;

    if (!json_is_string(type)) {
        return NULL;
    }

    name = json_string_value(type);
    len = json_string_length(type);

    for (i = 0; i < ngx_chat_ws_ntypes; i++) {
        if (ngx_chat_ws_types[i].type.len == len
            && ngx_strncmp(ngx_chat_ws_types[i].type.data, name, len) == 0)
        {
            return &ngx_chat_ws_types[i];
        }
    }

    return NULL;
}


/*
 * a client message's arguments checked against its type's fields, as a
 * REST body is; NULL when they are refused, after the error is sent
 */

static json_t *
ngx_chat_session_args(ngx_chat_session_t *s, const ngx_chat_ws_type_t *t,
    json_t *msg, json_t *req)
{
    json_t            *args;
    ngx_chat_error_t   err;

    args = json_object();
    if (args == NULL) {
        return NULL;
    }

    if (ngx_chat_args_from_json(msg, t->fields, &ngx_chat_worker.conf->limits,
                                args, &err)
        != NGX_OK
        || ngx_chat_args_require(args, t->fields, &err) != NGX_OK)
    {
        ngx_chat_session_error(s, req, err.status, (u_char *) err.text,
                               ngx_strlen(err.text));
        json_decref(args);
        return NULL;
    }

    return args;
}


/* resume: checked like any arguments, handled here */

static void
ngx_chat_session_resume_message(ngx_chat_session_t *s,
    const ngx_chat_ws_type_t *t, json_t *msg, json_t *req)
{
    json_t  *args;

    args = ngx_chat_session_args(s, t, msg, req);
    if (args == NULL) {
        return;
    }

    ngx_chat_session_resume(s, json_object_get(args, "conversations"), req);
    json_decref(args);
}


/*
 * presence_subscribe: the users are watched from now on, and the ack
 * carries how they stand (the action is GET presence's).  At most
 * NGX_CHAT_SESSION_WATCHES users a connection, whatever the reason.
 */

static ngx_int_t
ngx_chat_session_watch(ngx_chat_session_t *s, json_t *args, json_t *req)
{
    size_t      i;
    json_t     *users, *u;
    ngx_str_t   user;

    users = json_object_get(args, "user_ids");

    if (s->follower.nwatches + json_array_size(users)
        > NGX_CHAT_SESSION_WATCHES)
    {
        ngx_chat_session_error_text(s, req, 429,
                                    "a connection watches the presence of "
                                    "at most 500 users; presence_unsubscribe "
                                    "some first");
        return NGX_ERROR;
    }

    json_array_foreach(users, i, u) {
        user.data = (u_char *) json_string_value(u);
        user.len = json_string_length(u);

        if (ngx_chat_fanout_watch(&s->follower, &user, NGX_CHAT_WATCH_ASKED)
            != NGX_OK)
        {
            ngx_chat_session_error_text(s, req, 500, "out of memory");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* presence_unsubscribe: what presence_subscribe named is watched no more */

static void
ngx_chat_session_unwatch(ngx_chat_session_t *s, const ngx_chat_ws_type_t *t,
    json_t *msg, json_t *req)
{
    size_t      i;
    json_t     *args, *u;
    ngx_str_t   user;

    args = ngx_chat_session_args(s, t, msg, req);
    if (args == NULL) {
        return;
    }

    json_array_foreach(json_object_get(args, "user_ids"), i, u) {
        user.data = (u_char *) json_string_value(u);
        user.len = json_string_length(u);
        ngx_chat_fanout_unwatch(&s->follower, &user, NGX_CHAT_WATCH_ASKED);
    }

    json_decref(args);
    ngx_chat_session_reply(s, req, "ack", NULL);
}


/*
 * refresh_token: a new token for the connection, checked as a handshake's
 * is, before the one it came with runs out.  It must name the same user
 * of the same tenant (what the connection follows was chosen for them);
 * refused, the connection keeps its token and ends with it.  The display
 * name may change with it.
 */

static void
ngx_chat_session_refresh(ngx_chat_session_t *s, const ngx_chat_ws_type_t *t,
    json_t *msg, json_t *req)
{
    json_t               *args, *v;
    time_t                left;
    ngx_int_t             rc;
    ngx_str_t             token;
    ngx_pool_t           *pool;
    const char           *reason;
    ngx_chat_identity_t   id;

    args = ngx_chat_session_args(s, t, msg, req);
    if (args == NULL) {
        return;
    }

    v = json_object_get(args, "token");
    token.data = (u_char *) json_string_value(v);
    token.len = json_string_length(v);

    /* the new identity's copies live only as long as this check */
    pool = ngx_create_pool(1024, s->log);
    if (pool == NULL) {
        json_decref(args);
        ngx_chat_session_error_text(s, req, 500, "out of memory");
        return;
    }

    rc = ngx_chat_auth_check(&ngx_chat_worker.conf->jwt, &token, pool,
                             s->log, &id, &reason);
    json_decref(args);

    if (rc == NGX_ERROR) {
        ngx_chat_session_error_text(s, req, 500, "internal error");
        goto done;
    }

    if (rc != NGX_OK) {
        ngx_chat_session_unauthorized(s, req, reason);
        goto done;
    }

    if (id.user.len != s->id.user.len || id.tenant.len != s->id.tenant.len
        || ngx_memcmp(id.user.data, s->id.user.data, id.user.len) != 0
        || ngx_memcmp(id.tenant.data, s->id.tenant.data, id.tenant.len) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat session: \"%V\" of \"%V\" refused a token of "
                      "another user or tenant", &s->id.user, &s->id.tenant);
        ngx_chat_session_error_text(s, req, 403,
                                    "the token is of another user or "
                                    "tenant than the connection's");
        goto done;
    }

    /* the name, and the claims the policy reads, as the new token says */
    if (ngx_chat_session_renew(s, &s->id.name, &id.name) != NGX_OK
        || ngx_chat_session_renew(s, &s->id.claims, &id.claims) != NGX_OK)
    {
        ngx_chat_session_error_text(s, req, 500, "out of memory");
        goto done;
    }

    s->id.exp = id.exp;
    s->id.bot = id.bot;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat session: \"%V\" has a new token until %T",
                   &s->id.user, s->id.exp);

    /* a token that ends sooner than the old one ends the connection so */
    left = s->id.exp + ngx_chat_worker.conf->jwt.leeway - ngx_time();
    ngx_chat_session_wake(s, (ngx_msec_t) (ngx_max(left, 0) + 1) * 1000);

    ngx_chat_session_reply(s, req, "ack", NULL);

done:

    ngx_destroy_pool(pool);
}


/*
 * A string of the identity, again from a new token.  Requests under way
 * hold the old one (a copy of s->id): it stays in the connection's pool,
 * which a new one joins only when it differs.
 */

static ngx_int_t
ngx_chat_session_renew(ngx_chat_session_t *s, ngx_str_t *held,
    ngx_str_t *fresh)
{
    ngx_str_t  copy;

    if (fresh->len == held->len
        && (fresh->len == 0
            || ngx_memcmp(fresh->data, held->data, fresh->len) == 0))
    {
        return NGX_OK;
    }

    if (ngx_chat_copy(s->ws->connection->pool, &copy, fresh->data,
                      fresh->len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    *held = copy;

    return NGX_OK;
}


/* an "error" of code unauthorized that names the class of the refusal */

static void
ngx_chat_session_unauthorized(ngx_chat_session_t *s, json_t *req,
    const char *reason)
{
    u_char     *p, buf[256];
    ngx_str_t   fields;

    p = ngx_cpymem(buf, "\"error\":", sizeof("\"error\":") - 1);
    p = ngx_chat_error_object_retry(p, 401, NULL, 0,
                                    (u_char *) "the token is invalid", 20);
    p = ngx_chat_error_reason(p, reason);

    fields.data = buf;
    fields.len = p - buf;

    ngx_chat_session_reply(s, req, "error", &fields);
}


/*
 * join names the conversation the user has open: Postgres checks the
 * membership and names its members (of a conversation small enough), whose
 * presence is watched while it stays open; leave, or another join, ends
 * that.  The ack carries nothing of it.
 */

static void
ngx_chat_session_viewed(ngx_chat_session_t *s, ngx_chat_ws_call_t *wc)
{
    size_t       i;
    json_t      *members, *u;
    int64_t      id;
    ngx_str_t    user;
    json_error_t jerr;

    id = json_integer_value(json_object_get(wc->call.args,
                                            "conversation_id"));

    if (wc->type->kind == NGX_CHAT_MSG_LEAVE) {
        if (s->view == id) {
            ngx_chat_fanout_unwatch_all(&s->follower, NGX_CHAT_WATCH_VIEW);
            s->view = 0;
        }
        return;
    }

    members = json_loadb((char *) wc->call.body.data, wc->call.body.len, 0,
                         &jerr);

    ngx_chat_fanout_unwatch_all(&s->follower, NGX_CHAT_WATCH_VIEW);
    s->view = id;

    json_array_foreach(members, i, u) {
        user.data = (u_char *) json_string_value(u);
        user.len = json_string_length(u);

        if (user.data) {
            (void) ngx_chat_fanout_watch(&s->follower, &user,
                                         NGX_CHAT_WATCH_VIEW);
        }
    }

    json_decref(members);

    /* the ack says nothing of the members */
    ngx_str_null(&wc->call.body);
}


static void
ngx_chat_session_action(ngx_chat_session_t *s, const ngx_chat_ws_type_t *t,
    json_t *msg, json_t *req)
{
    json_t              *args;
    ngx_pool_t          *pool;
    ngx_chat_ws_call_t  *wc;

    if (s->ncalls >= NGX_CHAT_SESSION_CALLS) {
        ngx_chat_session_error_text(s, req, 429,
                                    "too many requests wait for an answer");
        return;
    }

    args = ngx_chat_session_args(s, t, msg, req);
    if (args == NULL) {
        return;
    }

    if (t->kind == NGX_CHAT_MSG_WATCH
        && ngx_chat_session_watch(s, args, req) != NGX_OK)
    {
        json_decref(args);
        return;
    }

    if (t->kind == NGX_CHAT_MSG_JOIN) {
        json_object_set_new(args, "max", json_integer(NGX_CHAT_SESSION_VIEW));
    }

    if (t->flags & NGX_CHAT_A_TYPING) {
        /* over REST is_typing is a field; here the type names it */
        json_object_set_new(args, "is_typing",
                            json_boolean(t->flags & NGX_CHAT_A_TYPING_ON));
    }

    pool = ngx_create_pool(1024, s->log);
    if (pool == NULL) {
        json_decref(args);
        return;
    }

    wc = ngx_pcalloc(pool, sizeof(ngx_chat_ws_call_t));

    if (wc == NULL || ngx_chat_json_on_pool(pool, args) != NGX_OK) {
        json_decref(args);
        ngx_destroy_pool(pool);
        return;
    }

    wc->session = s;
    wc->type = t;
    wc->req = json_incref(req);

    wc->call.stmt = t->stmt;
    wc->call.flags = t->flags;
    wc->call.id = s->id;
    wc->call.args = args;
    wc->call.pool = pool;
    wc->call.log = s->log;
    wc->call.done = ngx_chat_session_call_done;
    wc->call.data = wc;

    ngx_queue_insert_tail(&s->calls, &wc->queue);
    s->ncalls++;

    if (ngx_chat_action_start(&wc->call) != NGX_OK) {
        ngx_chat_session_error_retry(s, req, wc->call.status,
                                     wc->call.code, wc->call.retry,
                                     wc->call.error.data,
                                     wc->call.error.len);
        ngx_chat_session_refused(s, wc->call.status == 429);
        ngx_chat_session_call_free(wc);
    }
}


/*
 * chat_limit requests: each client message counts as a REST request does.
 * NGX_OK: it may go on; else it was answered (and the connection may be
 * closed for persistent abuse).
 */

static ngx_int_t
ngx_chat_session_limited(ngx_chat_session_t *s, json_t *req)
{
    time_t  retry;

    if (ngx_chat_limit_user(NGX_CHAT_LIMIT_REQUESTS, &s->id, &retry)
        == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_chat_session_error_retry(s, req, 429, NULL, retry,
                                 (u_char *) "too many requests (chat_limit "
                                 "requests)", 38);
    ngx_chat_session_refused(s, 1);

    return NGX_BUSY;
}


/* chat_limit_close N: a client that goes on past its limits is closed */

static void
ngx_chat_session_refused(ngx_chat_session_t *s, ngx_uint_t limited)
{
    ngx_uint_t  close_after;

    if (!limited) {
        s->limited = 0;
        return;
    }

    close_after = ngx_chat_worker.conf->limit.close_after;

    if (close_after && ++s->limited >= close_after) {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat session: \"%V\" of \"%V\" closed after %ui "
                      "refusals in a row", &s->id.user, &s->id.tenant,
                      s->limited);
        ngx_chat_ws_close(s->ws, NGX_CHAT_WS_POLICY, "rate limited");
    }
}


static void
ngx_chat_session_call_done(ngx_chat_call_t *call)
{
    ngx_str_t            fields;
    ngx_chat_ws_call_t  *wc;
    ngx_chat_session_t  *s;

    wc = call->data;
    s = wc->session;

    if (call->status < 300
        && (wc->type->kind == NGX_CHAT_MSG_JOIN
            || wc->type->kind == NGX_CHAT_MSG_LEAVE))
    {
        ngx_chat_session_viewed(s, wc);
    }

    if (call->status >= 300) {
        ngx_chat_session_error_retry(s, wc->req, call->status, call->code,
                                     call->retry, call->error.data,
                                     call->error.len);

    } else if (wc->type->ack && call->body.len > 2) {
        fields.len = call->body.len + ngx_strlen(wc->type->ack) + 4;
        fields.data = ngx_pnalloc(call->pool, fields.len);

        if (fields.data) {
            if (wc->type->ack[0] == '\0') {
                /* the members of the answer object */
                fields.len = ngx_sprintf(fields.data, "%*s",
                                         call->body.len - 2,
                                         call->body.data + 1)
                             - fields.data;
            } else {
                fields.len = ngx_sprintf(fields.data, "\"%s\":%V",
                                         wc->type->ack, &call->body)
                             - fields.data;
            }

            ngx_chat_session_reply(s, wc->req, "ack", &fields);
            ngx_chat_metric_add(NGX_CHAT_M_ACKS, 1);
        }

    } else {
        ngx_chat_session_reply(s, wc->req, "ack", NULL);
        ngx_chat_metric_add(NGX_CHAT_M_ACKS, 1);
    }

    ngx_chat_session_call_free(wc);
}


static void
ngx_chat_session_call_free(ngx_chat_ws_call_t *wc)
{
    ngx_queue_remove(&wc->queue);
    wc->session->ncalls--;
    json_decref(wc->req);

    /* a query still running is cancelled by the pool's cleanup */
    ngx_destroy_pool(wc->call.pool);
}


/* {"type": type, "req": req[, fields]} */

static void
ngx_chat_session_reply(ngx_chat_session_t *s, json_t *req, const char *type,
    ngx_str_t *fields)
{
    u_char  *buf, *p;
    char    *text;
    size_t   len;

    text = req ? json_dumps(req, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

    len = sizeof("{\"type\":\"\",\"req\":,}") + ngx_strlen(type)
          + (text ? ngx_strlen(text) : 0) + (fields ? fields->len : 0);

    buf = ngx_alloc(len, s->log);
    if (buf == NULL) {
        free(text);
        return;
    }

    p = ngx_sprintf(buf, "{\"type\":\"%s\"", type);

    if (text) {
        p = ngx_sprintf(p, ",\"req\":%s", text);
        free(text);
    }

    if (fields && fields->len) {
        p = ngx_sprintf(p, ",%V", fields);
    }

    *p++ = '}';

    (void) ngx_chat_ws_send_text(s->ws, buf, p - buf);
    ngx_free(buf);
}


static void
ngx_chat_session_error(ngx_chat_session_t *s, json_t *req, ngx_uint_t status,
    u_char *text, size_t len)
{
    ngx_chat_session_error_retry(s, req, status, NULL, 0, text, len);
}


/*
 * code NULL: the status's own; retry 0: what the status says (a rate limit
 * says how long)
 */

static void
ngx_chat_session_error_retry(ngx_chat_session_t *s, json_t *req,
    ngx_uint_t status, const char *code, time_t retry, u_char *text,
    size_t len)
{
    u_char     *buf, *p;
    size_t      size;
    ngx_str_t   fields;

    ngx_chat_metrics_status(status);

    size = sizeof("\"error\":") - 1 + ngx_chat_error_object_len(text, len);

    buf = ngx_alloc(size, s->log);
    if (buf == NULL) {
        return;
    }

    p = ngx_cpymem(buf, "\"error\":", sizeof("\"error\":") - 1);
    p = ngx_chat_error_object_retry(p, status, code, retry, text, len);

    fields.data = buf;
    fields.len = p - buf;

    ngx_chat_session_reply(s, req, "error", &fields);
    ngx_free(buf);
}


static void
ngx_chat_session_wake(ngx_chat_session_t *s, ngx_msec_t after)
{
    ngx_chat_ws_wake(s->ws, after);
}
