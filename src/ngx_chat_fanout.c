
/*
 * ngx_chat: fan-out.  An event from Redis reaches every connection of this
 * worker that follows its conversation, in seq order, once.
 *
 * A worker follows a conversation through a channel: its position (head)
 * is the last seq it passed on in order.  An event that comes early is
 * held; if the one before it does not come soon (Redis lost it, or it was
 * published before this worker subscribed), the channel reads what is
 * missing from Postgres, where every event is stored under its seq.  Each
 * connection's subscription keeps its own position: the live ones stand
 * at the head and get the very frame the channel passes on; the others
 * (starting, resuming, just added) read Postgres until they reach the head
 * (ngx_chat_session.c), or wait for the channel to catch up with them.
 *
 * Users have a channel of their own, for what concerns them in
 * conversations they do not follow yet.  A channel or user with no
 * follower lingers a while before this worker unsubscribes, so that
 * reconnecting clients do not churn Redis.
 */


#include "ngx_chat.h"


#define NGX_CHAT_LINGER          30000
#define NGX_CHAT_TICK            1000
#define NGX_CHAT_HELD_MAX        4096
#define NGX_CHAT_SYNC_BATCH      256
#define NGX_CHAT_SYNC_LIMIT      500


/* what this worker subscribes to in Redis: a channel or a user */

typedef enum {
    NGX_CHAT_TOPIC_OFF = 0,
    NGX_CHAT_TOPIC_PENDING,
    NGX_CHAT_TOPIC_ON,
    NGX_CHAT_TOPIC_LEAVING
} ngx_chat_topic_state_e;

typedef struct {
    ngx_str_t                    name;       /* below the Redis prefix */
    ngx_queue_t                  all;
    ngx_queue_t                  linger;
    ngx_msec_t                   idle_since;
    unsigned                     state:2;
    unsigned                     wanted:1;
    unsigned                     lingering:1;
    unsigned                     is_user:1;
} ngx_chat_topic_t;


struct ngx_chat_channel_s {
    ngx_rbtree_node_t            node;       /* key: the conversation id */
    ngx_chat_topic_t             topic;
    ngx_queue_t                  live;
    ngx_queue_t                  behind;
    ngx_uint_t                   nsubs;
    int64_t                      head;
    ngx_chat_event_t           **held;       /* early events, by seq */
    ngx_uint_t                   nheld;
    ngx_uint_t                   held_size;
    ngx_queue_t                  sync;
    unsigned                     syncing:1;  /* in the sync list */
    u_char                       name[24];
};


struct ngx_chat_user_s {
    ngx_str_node_t               sn;         /* the topic name, hashed */
    ngx_chat_topic_t             topic;
    ngx_queue_t                  sessions;
    ngx_uint_t                   nsessions;
};


typedef struct {
    ngx_chat_pg_query_t          query;
    ngx_pool_t                  *pool;
    ngx_uint_t                   n;
    int64_t                      ids[NGX_CHAT_SYNC_BATCH];
} ngx_chat_sync_t;


typedef struct {
    ngx_log_t                   *log;
    ngx_rbtree_t                 channels;
    ngx_rbtree_node_t            channels_sentinel;
    ngx_rbtree_t                 users;
    ngx_rbtree_node_t            users_sentinel;
    ngx_queue_t                  topics;
    ngx_queue_t                  lingering;
    ngx_queue_t                  sync;       /* channels to read back */
    ngx_chat_sync_t             *syncing;    /* the query running */
    ngx_event_t                  sync_timer;
    ngx_event_t                  tick;
    ngx_uint_t                   ticks;
    unsigned                     closing:1;
} ngx_chat_fanout_t;


static ngx_chat_channel_t *ngx_chat_channel_find(int64_t id);
static ngx_chat_channel_t *ngx_chat_channel_create(int64_t id, int64_t head);
static void ngx_chat_channel_destroy(ngx_chat_channel_t *ch);
static void ngx_chat_channel_offer(ngx_chat_channel_t *ch,
    ngx_chat_event_t *ev);
static void ngx_chat_channel_hold(ngx_chat_channel_t *ch,
    ngx_chat_event_t *ev);
static void ngx_chat_channel_advance(ngx_chat_channel_t *ch,
    ngx_chat_event_t *ev);
static void ngx_chat_channel_signal(ngx_chat_channel_t *ch,
    ngx_chat_event_t *ev);
static void ngx_chat_channel_need_sync(ngx_chat_channel_t *ch);
static void ngx_chat_sync_handler(ngx_event_t *ev);
static void ngx_chat_sync_result(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_sync_retry(ngx_chat_sync_t *sync);
static void ngx_chat_user_message(u_char *name, size_t len, u_char *msg,
    size_t msg_len);
static ngx_chat_user_t *ngx_chat_user_find(ngx_str_t *name,
    uint32_t hash);
static void ngx_chat_user_destroy(ngx_chat_user_t *u);
static void ngx_chat_user_resync(ngx_chat_user_t *u);
static void ngx_chat_topic_acquire(ngx_chat_topic_t *t);
static void ngx_chat_topic_release(ngx_chat_topic_t *t);
static void ngx_chat_topic_subscribe(ngx_chat_topic_t *t);
static void ngx_chat_topic_destroy(ngx_chat_topic_t *t);
static ngx_chat_topic_t *ngx_chat_topic_find(u_char *name, size_t len);
static void ngx_chat_tick_handler(ngx_event_t *ev);
static void ngx_chat_linger_expire(void);


static ngx_chat_fanout_t  ngx_chat_fanout;


ngx_int_t
ngx_chat_fanout_init(ngx_cycle_t *cycle)
{
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    fo->log = cycle->log;

    ngx_rbtree_init(&fo->channels, &fo->channels_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&fo->users, &fo->users_sentinel,
                    ngx_str_rbtree_insert_value);

    ngx_queue_init(&fo->topics);
    ngx_queue_init(&fo->lingering);
    ngx_queue_init(&fo->sync);

    /* nginx's debug log reads an event's data as a connection: not NULL */

    fo->sync_timer.handler = ngx_chat_sync_handler;
    fo->sync_timer.data = fo;
    fo->sync_timer.log = fo->log;
    fo->sync_timer.cancelable = 1;

    /* not cancelable: a quitting worker waits for it to close the clients */
    fo->tick.handler = ngx_chat_tick_handler;
    fo->tick.data = fo;
    fo->tick.log = fo->log;
    ngx_add_timer(&fo->tick, NGX_CHAT_TICK);

    return NGX_OK;
}


void
ngx_chat_fanout_done(void)
{
    ngx_queue_t       *q;
    ngx_chat_topic_t  *t;

    if (ngx_chat_fanout.tick.timer_set) {
        ngx_del_timer(&ngx_chat_fanout.tick);
    }

    if (ngx_chat_fanout.sync_timer.timer_set) {
        ngx_del_timer(&ngx_chat_fanout.sync_timer);
    }

    while (!ngx_queue_empty(&ngx_chat_fanout.topics)) {
        q = ngx_queue_head(&ngx_chat_fanout.topics);
        t = ngx_queue_data(q, ngx_chat_topic_t, all);
        ngx_chat_topic_destroy(t);
    }
}


/* events: one frame, shared by reference */

ngx_chat_event_t *
ngx_chat_event_create(u_char *json, size_t len, size_t subject_len)
{
    u_char            *p;
    ngx_chat_event_t  *ev;

    ev = ngx_alloc(sizeof(ngx_chat_event_t) + subject_len
                   + NGX_CHAT_WS_HEADER_MAX + len, ngx_cycle->log);
    if (ev == NULL) {
        return NULL;
    }

    ev->refs = 1;
    ev->conversation = 0;
    ev->seq = 0;
    ev->op = 0;
    ev->subject.data = (u_char *) (ev + 1);
    ev->subject.len = subject_len;
    ev->frame = ev->subject.data + subject_len;

    p = ngx_chat_ws_frame_header(ev->frame, NGX_CHAT_WS_TEXT, len);

    if (len) {
        p = ngx_cpymem(p, json, len);
    }

    ev->len = p - ev->frame;

    return ev;
}


/* a control frame (ping, pong, close) for one connection */

ngx_chat_event_t *
ngx_chat_event_frame(ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_create(data, len, 0);
    if (ev) {
        ev->frame[0] = (u_char) (0x80 | opcode);
    }

    return ev;
}


/* bytes that are not a frame: the handshake's answer */

ngx_chat_event_t *
ngx_chat_event_raw(u_char *data, size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_create(data, len, 0);
    if (ev) {
        ev->frame += ev->len - len;
        ev->len = len;
    }

    return ev;
}


/* "<seq>[ +user| -user]\n<event>", as Redis and Postgres carry it */

ngx_chat_event_t *
ngx_chat_event_from_wire(int64_t conversation, u_char *wire, size_t len)
{
    u_char            *p, *nl, *last, op;
    int64_t            seq;
    ngx_str_t          subject;
    ngx_chat_event_t  *ev;

    last = wire + len;
    nl = ngx_strlchr(wire, last, '\n');

    if (nl == NULL) {
        return NULL;
    }

    for (p = wire, seq = 0; p < nl && *p >= '0' && *p <= '9'; p++) {
        seq = seq * 10 + (*p - '0');
    }

    op = 0;
    ngx_str_null(&subject);

    if (p + 2 < nl && p[0] == ' '
        && (p[1] == '+' || p[1] == '-' || p[1] == '!'))
    {
        op = p[1];
        subject.data = p + 2;
        subject.len = nl - p - 2;

    } else if (p != nl) {
        return NULL;
    }

    ev = ngx_chat_event_create(nl + 1, last - nl - 1, subject.len);
    if (ev == NULL) {
        return NULL;
    }

    ev->conversation = conversation;
    ev->seq = seq;
    ev->op = op;

    if (subject.len) {
        ngx_memcpy(ev->subject.data, subject.data, subject.len);
    }

    return ev;
}


void
ngx_chat_event_release(ngx_chat_event_t *ev)
{
    if (--ev->refs == 0) {
        ngx_free(ev);
    }
}


/* a message from Redis: "c:<id>" is a conversation, "u:..." a user */

void
ngx_chat_fanout_message(u_char *channel, size_t channel_len, u_char *msg,
    size_t len)
{
    int64_t              id;
    ngx_chat_event_t    *ev;
    ngx_chat_channel_t  *ch;

    if (channel_len > 2 && channel[0] == 'u' && channel[1] == ':') {
        ngx_chat_user_message(channel, channel_len, msg, len);
        return;
    }

    if (channel_len < 3 || channel[0] != 'c' || channel[1] != ':'
        || ngx_chat_parse_id(channel + 2, channel_len - 2, &id) != NGX_OK)
    {
        return;
    }

    ch = ngx_chat_channel_find(id);
    if (ch == NULL) {
        return;
    }

    ev = ngx_chat_event_from_wire(id, msg, len);
    if (ev == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_fanout.log, 0,
                      "chat: malformed event on \"c:%L\"", id);
        return;
    }

    if (ev->seq == 0) {
        ngx_chat_channel_signal(ch, ev);

    } else {
        ngx_chat_channel_offer(ch, ev);
    }

    ngx_chat_event_release(ev);
}


static ngx_chat_channel_t *
ngx_chat_channel_find(int64_t id)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) id;
    node = ngx_chat_fanout.channels.root;
    sentinel = ngx_chat_fanout.channels.sentinel;

    while (node != sentinel) {
        if (key == node->key) {
            return (ngx_chat_channel_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}


static ngx_chat_channel_t *
ngx_chat_channel_create(int64_t id, int64_t head)
{
    ngx_chat_channel_t  *ch;

    ch = ngx_calloc(sizeof(ngx_chat_channel_t), ngx_chat_fanout.log);
    if (ch == NULL) {
        return NULL;
    }

    ch->node.key = (ngx_rbtree_key_t) id;
    ch->head = head;
    ngx_queue_init(&ch->live);
    ngx_queue_init(&ch->behind);

    ch->topic.name.data = ch->name;
    ch->topic.name.len = ngx_sprintf(ch->name, "c:%L", id) - ch->name;

    ngx_rbtree_insert(&ngx_chat_fanout.channels, &ch->node);
    ngx_queue_insert_tail(&ngx_chat_fanout.topics, &ch->topic.all);

    return ch;
}


static void
ngx_chat_channel_destroy(ngx_chat_channel_t *ch)
{
    ngx_uint_t  i;

    for (i = 0; i < ch->nheld; i++) {
        ngx_chat_event_release(ch->held[i]);
    }

    if (ch->held) {
        ngx_free(ch->held);
    }

    if (ch->syncing) {
        ngx_queue_remove(&ch->sync);
    }

    ngx_rbtree_delete(&ngx_chat_fanout.channels, &ch->node);
    ngx_free(ch);
}


/*
 * The heart of the delivery guarantee: a channel passes events on in
 * seq order, each once; an early one waits for the ones before it.
 */

static void
ngx_chat_channel_offer(ngx_chat_channel_t *ch, ngx_chat_event_t *ev)
{
    ngx_chat_event_t  *next;

    if (ev->seq <= ch->head) {
        return;
    }

    if (ev->seq > ch->head + 1) {
        ngx_chat_channel_hold(ch, ev);
        ngx_chat_channel_need_sync(ch);
        return;
    }

    ngx_chat_channel_advance(ch, ev);

    while (ch->nheld && ch->held[0]->seq <= ch->head + 1) {
        next = ch->held[0];
        ch->nheld--;
        ngx_memmove(ch->held, ch->held + 1,
                    ch->nheld * sizeof(ngx_chat_event_t *));

        if (next->seq == ch->head + 1) {
            ngx_chat_channel_advance(ch, next);
        }

        ngx_chat_event_release(next);
    }
}


static void
ngx_chat_channel_hold(ngx_chat_channel_t *ch, ngx_chat_event_t *ev)
{
    ngx_uint_t          i;
    ngx_chat_event_t  **held;

    for (i = ch->nheld; i > 0 && ch->held[i - 1]->seq > ev->seq; i--) {
        /* void */
    }

    if ((i > 0 && ch->held[i - 1]->seq == ev->seq)
        || ch->nheld == NGX_CHAT_HELD_MAX)
    {
        /* a duplicate; or too many: Postgres has it when the gap closes */
        return;
    }

    if (ch->nheld == ch->held_size) {
        held = ngx_alloc((ch->held_size * 2 + 4) * sizeof(ngx_chat_event_t *),
                         ngx_chat_fanout.log);
        if (held == NULL) {
            return;
        }

        if (ch->held) {
            ngx_memcpy(held, ch->held,
                       ch->nheld * sizeof(ngx_chat_event_t *));
            ngx_free(ch->held);
        }

        ch->held = held;
        ch->held_size = ch->held_size * 2 + 4;
    }

    ngx_memmove(&ch->held[i + 1], &ch->held[i],
                (ch->nheld - i) * sizeof(ngx_chat_event_t *));
    ch->held[i] = ev;
    ch->nheld++;
    ev->refs++;
}


/* the next event in order: the live followers get the frame */

static void
ngx_chat_channel_advance(ngx_chat_channel_t *ch, ngx_chat_event_t *ev)
{
    ngx_queue_t     *q, *next;
    ngx_chat_sub_t  *sub;

    ch->head = ev->seq;

    for (q = ngx_queue_head(&ch->live);
         q != ngx_queue_sentinel(&ch->live);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);

        ngx_chat_session_event(sub->session, ev);
        sub->pos = ev->seq;

        if (ev->op == '-'
            && ev->subject.len == sub->session->id.user.len
            && ngx_strncmp(ev->subject.data, sub->session->id.user.data,
                           ev->subject.len) == 0)
        {
            /* removed: its own member_removed is the last it gets */
            ngx_chat_fanout_unfollow(sub);
        }
    }

    /* followers that were ahead of the channel are in step now */

    for (q = ngx_queue_head(&ch->behind);
         q != ngx_queue_sentinel(&ch->behind);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);

        if (sub->state == NGX_CHAT_SUB_AHEAD && sub->pos == ch->head) {
            ngx_chat_fanout_place(sub);
        }
    }
}


/*
 * Typing and read receipts: no seq, no order; a connection that has not
 * started holds them; a "!" event never goes to the connections of the
 * user it names.
 */

static void
ngx_chat_channel_signal(ngx_chat_channel_t *ch, ngx_chat_event_t *ev)
{
    ngx_uint_t       i;
    ngx_queue_t     *q, *queues[2];
    ngx_chat_sub_t  *sub;

    queues[0] = &ch->live;
    queues[1] = &ch->behind;

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);

            if (ev->op == '!'
                && ev->subject.len == sub->session->id.user.len
                && ngx_strncmp(ev->subject.data, sub->session->id.user.data,
                               ev->subject.len) == 0)
            {
                continue;
            }

            ngx_chat_session_event(sub->session, ev);
        }
    }
}


/* subscriptions of connections */

ngx_chat_sub_t *
ngx_chat_fanout_follow(ngx_chat_session_t *s, int64_t conversation,
    int64_t pos)
{
    ngx_chat_sub_t      *sub;
    ngx_chat_channel_t  *ch;

    ch = ngx_chat_channel_find(conversation);

    if (ch == NULL) {
        ch = ngx_chat_channel_create(conversation, pos);
        if (ch == NULL) {
            return NULL;
        }
    }

    sub = ngx_alloc(sizeof(ngx_chat_sub_t), ngx_chat_fanout.log);
    if (sub == NULL) {
        if (ch->nsubs == 0 && !ch->topic.lingering) {
            ngx_chat_topic_release(&ch->topic);
        }
        return NULL;
    }

    sub->session = s;
    sub->channel = ch;
    sub->pos = pos;
    sub->reported = pos;
    sub->state = NGX_CHAT_SUB_WAITING;

    ngx_queue_insert_tail(&ch->behind, &sub->in_channel);
    ngx_queue_insert_tail(&s->subs, &sub->in_session);

    if (ch->nsubs++ == 0) {
        ngx_chat_topic_acquire(&ch->topic);
    }

    return sub;
}


/* where a started follower stands against its channel */

void
ngx_chat_fanout_place(ngx_chat_sub_t *sub)
{
    ngx_chat_channel_t  *ch;

    ch = sub->channel;

    ngx_queue_remove(&sub->in_channel);

    if (sub->pos == ch->head) {
        sub->state = NGX_CHAT_SUB_LIVE;
        ngx_queue_insert_tail(&ch->live, &sub->in_channel);
        return;
    }

    ngx_queue_insert_tail(&ch->behind, &sub->in_channel);

    if (sub->pos < ch->head) {
        sub->state = NGX_CHAT_SUB_CATCHING;
        return;
    }

    /* the channel has not seen what this follower knows exists */
    sub->state = NGX_CHAT_SUB_AHEAD;
    ngx_chat_channel_need_sync(ch);
}


int64_t
ngx_chat_fanout_id(ngx_chat_sub_t *sub)
{
    return (int64_t) sub->channel->node.key;
}


void
ngx_chat_fanout_unfollow(ngx_chat_sub_t *sub)
{
    ngx_chat_channel_t  *ch;

    ch = sub->channel;

    ngx_queue_remove(&sub->in_channel);
    ngx_queue_remove(&sub->in_session);
    ngx_free(sub);

    if (--ch->nsubs == 0) {
        ngx_chat_topic_release(&ch->topic);
    }
}


/* reading back from Postgres what Redis did not bring, in batches */

static void
ngx_chat_channel_need_sync(ngx_chat_channel_t *ch)
{
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    if (!ch->syncing) {
        ch->syncing = 1;
        ngx_queue_insert_tail(&fo->sync, &ch->sync);
    }

    if (!fo->sync_timer.timer_set && fo->syncing == NULL) {
        /* the missing event may still come from Redis meanwhile */
        ngx_add_timer(&fo->sync_timer, ngx_chat_worker.conf->ws.gap_wait);
    }
}


static void
ngx_chat_sync_handler(ngx_event_t *ev)
{
    u_char              *ids, *seqs, *p, *s;
    ngx_uint_t           n;
    ngx_pool_t          *pool;
    ngx_queue_t         *q;
    ngx_chat_sync_t     *sync;
    ngx_chat_channel_t  *ch;
    ngx_chat_fanout_t   *fo = &ngx_chat_fanout;

    if (ngx_queue_empty(&fo->sync) || fo->syncing) {
        return;
    }

    pool = ngx_create_pool(4096, fo->log);
    if (pool == NULL) {
        ngx_add_timer(&fo->sync_timer, 1000);
        return;
    }

    sync = ngx_pcalloc(pool, sizeof(ngx_chat_sync_t));
    ids = ngx_pnalloc(pool, NGX_CHAT_SYNC_BATCH * (NGX_INT64_LEN + 1) + 3);
    seqs = ngx_pnalloc(pool, NGX_CHAT_SYNC_BATCH * (NGX_INT64_LEN + 1) + 3);

    if (sync == NULL || ids == NULL || seqs == NULL) {
        ngx_destroy_pool(pool);
        ngx_add_timer(&fo->sync_timer, 1000);
        return;
    }

    p = ngx_cpymem(ids, "{", 1);
    s = ngx_cpymem(seqs, "{", 1);

    for (n = 0; n < NGX_CHAT_SYNC_BATCH && !ngx_queue_empty(&fo->sync); n++) {
        q = ngx_queue_head(&fo->sync);
        ngx_queue_remove(q);
        ch = ngx_queue_data(q, ngx_chat_channel_t, sync);
        ch->syncing = 0;

        sync->ids[n] = (int64_t) ch->node.key;
        p = ngx_sprintf(p, "%s%L", n ? "," : "", sync->ids[n]);
        s = ngx_sprintf(s, "%s%L", n ? "," : "", ch->head);
    }

    sync->n = n;

    *p++ = '}'; *p = '\0';
    *s++ = '}'; *s = '\0';

    sync->pool = pool;
    sync->query.stmt = NGX_CHAT_SQL_WS_EVENTS;
    sync->query.nparams = 3;
    sync->query.params[0] = (char *) ids;
    sync->query.params[1] = (char *) seqs;
    sync->query.params[2] = ngx_value(NGX_CHAT_SYNC_LIMIT);
    sync->query.handler = ngx_chat_sync_result;
    sync->query.data = sync;

    if (ngx_chat_pg_send(ngx_chat_worker.pg, &sync->query) != NGX_OK) {
        ngx_chat_sync_retry(sync);
        return;
    }

    fo->syncing = sync;
}


static void
ngx_chat_sync_result(ngx_chat_pg_query_t *q, PGresult *res)
{
    int                  i, n, count;
    int64_t              id, last;
    ngx_chat_sync_t     *sync;
    ngx_chat_event_t    *ev;
    ngx_chat_channel_t  *ch;
    ngx_chat_fanout_t   *fo = &ngx_chat_fanout;

    sync = q->data;
    fo->syncing = NULL;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_WARN, fo->log, 0,
                      "chat: reading missed events failed: %s",
                      res ? PQresultErrorMessage(res) : "no database");
        ngx_chat_sync_retry(sync);
        return;
    }

    n = PQntuples(res);
    last = 0;
    count = 0;
    ch = NULL;

    for (i = 0; i < n; i++) {
        id = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                       PQgetlength(res, i, 0));

        if (id != last) {
            if (ch && count == NGX_CHAT_SYNC_LIMIT) {
                ngx_chat_channel_need_sync(ch);
            }

            ch = ngx_chat_channel_find(id);
            last = id;
            count = 0;
        }

        count++;

        if (ch == NULL) {
            continue;
        }

        ev = ngx_chat_event_from_wire(id, (u_char *) PQgetvalue(res, i, 2),
                                      PQgetlength(res, i, 2));
        if (ev) {
            ngx_chat_channel_offer(ch, ev);
            ngx_chat_event_release(ev);
        }
    }

    if (ch && count == NGX_CHAT_SYNC_LIMIT) {
        ngx_chat_channel_need_sync(ch);
    }

    ngx_destroy_pool(sync->pool);

    if (!ngx_queue_empty(&fo->sync) && !fo->sync_timer.timer_set) {
        ngx_add_timer(&fo->sync_timer, 1);
    }
}


/* Postgres is away: the same channels again a little later */

static void
ngx_chat_sync_retry(ngx_chat_sync_t *sync)
{
    ngx_uint_t           i;
    ngx_chat_channel_t  *ch;
    ngx_chat_fanout_t   *fo = &ngx_chat_fanout;

    for (i = 0; i < sync->n; i++) {
        ch = ngx_chat_channel_find(sync->ids[i]);

        if (ch && !ch->syncing) {
            ch->syncing = 1;
            ngx_queue_insert_tail(&fo->sync, &ch->sync);
        }
    }

    ngx_destroy_pool(sync->pool);

    if (!fo->sync_timer.timer_set) {
        ngx_add_timer(&fo->sync_timer, 1000);
    }
}


/* users */

ngx_chat_user_t *
ngx_chat_fanout_user(ngx_chat_session_t *s)
{
    size_t            len;
    u_char            buf[320];
    uint32_t          hash;
    ngx_str_t         name;
    ngx_chat_user_t  *u;

    name.data = buf;
    name.len = ngx_snprintf(buf, sizeof(buf), "u:%uz:%V:%V",
                            s->id.tenant.len, &s->id.tenant, &s->id.user)
               - buf;

    hash = ngx_crc32_short(name.data, name.len);
    u = ngx_chat_user_find(&name, hash);

    if (u == NULL) {
        len = sizeof(ngx_chat_user_t) + name.len;
        u = ngx_calloc(len, ngx_chat_fanout.log);
        if (u == NULL) {
            return NULL;
        }

        u->topic.is_user = 1;
        u->topic.name.data = (u_char *) (u + 1);
        u->topic.name.len = name.len;
        ngx_memcpy(u->topic.name.data, name.data, name.len);

        u->sn.str = u->topic.name;
        u->sn.node.key = hash;
        ngx_queue_init(&u->sessions);

        ngx_rbtree_insert(&ngx_chat_fanout.users, &u->sn.node);
        ngx_queue_insert_tail(&ngx_chat_fanout.topics, &u->topic.all);
    }

    ngx_queue_insert_tail(&u->sessions, &s->in_user);
    s->user = u;

    if (u->nsessions++ == 0) {
        ngx_chat_topic_acquire(&u->topic);
    }

    return u;
}


void
ngx_chat_fanout_leave_user(ngx_chat_session_t *s)
{
    ngx_chat_user_t  *u;

    u = s->user;
    if (u == NULL) {
        return;
    }

    ngx_queue_remove(&s->in_user);
    s->user = NULL;

    if (--u->nsessions == 0) {
        ngx_chat_topic_release(&u->topic);
    }
}


static ngx_chat_user_t *
ngx_chat_user_find(ngx_str_t *name, uint32_t hash)
{
    ngx_str_node_t  *sn;

    sn = ngx_str_rbtree_lookup(&ngx_chat_fanout.users, name, hash);

    return sn ? (ngx_chat_user_t *) sn : NULL;
}


/*
 * A "follow" published while this worker was not listening is lost: the
 * user's connections read their memberships again and follow what they
 * missed.
 */

static void
ngx_chat_user_resync(ngx_chat_user_t *u)
{
    ngx_queue_t  *q;

    for (q = ngx_queue_head(&u->sessions);
         q != ngx_queue_sentinel(&u->sessions);
         q = ngx_queue_next(q))
    {
        ngx_chat_session_resync(ngx_queue_data(q, ngx_chat_session_t,
                                               in_user));
    }
}


static void
ngx_chat_user_destroy(ngx_chat_user_t *u)
{
    ngx_rbtree_delete(&ngx_chat_fanout.users, &u->sn.node);
    ngx_free(u);
}


/*
 * "follow <conversation> <seq>\n[<event>]": the user's connections follow
 * a conversation from that seq on; "event\n<event>": deliver as it is.
 */

static void
ngx_chat_user_message(u_char *name, size_t len, u_char *msg, size_t msg_len)
{
    u_char               *nl, *p, *last;
    int64_t               conversation, seq;
    ngx_str_t             n;
    ngx_queue_t          *q, *next;
    ngx_chat_user_t      *u;
    ngx_chat_event_t     *ev;
    ngx_chat_session_t   *s;

    n.data = name;
    n.len = len;

    u = ngx_chat_user_find(&n, ngx_crc32_short(name, len));
    if (u == NULL) {
        return;
    }

    last = msg + msg_len;
    nl = ngx_strlchr(msg, last, '\n');
    if (nl == NULL) {
        return;
    }

    conversation = 0;
    seq = 0;

    if (nl - msg > 7 && ngx_strncmp(msg, "follow ", 7) == 0) {
        p = ngx_strlchr(msg + 7, nl, ' ');

        if (p == NULL
            || ngx_chat_parse_id(msg + 7, p - msg - 7, &conversation)
               != NGX_OK
            || ngx_chat_parse_id(p + 1, nl - p - 1, &seq) != NGX_OK)
        {
            return;
        }
    }

    ev = NULL;

    if (last - nl > 1) {
        ev = ngx_chat_event_create(nl + 1, last - nl - 1, 0);
        if (ev == NULL) {
            return;
        }

        ev->conversation = conversation;
    }

    for (q = ngx_queue_head(&u->sessions);
         q != ngx_queue_sentinel(&u->sessions);
         q = next)
    {
        next = ngx_queue_next(q);
        s = ngx_queue_data(q, ngx_chat_session_t, in_user);

        if (ev) {
            ngx_chat_session_event(s, ev);
        }

        if (conversation) {
            ngx_chat_session_follow(s, conversation, seq);
        }
    }

    if (ev) {
        ngx_chat_event_release(ev);
    }
}


/*
 * Topics: SUBSCRIBE when the first follower comes, UNSUBSCRIBE a while
 * after the last one left.  hiredis 0.14 forgets a channel's callback when
 * an UNSUBSCRIBE is answered, even if a SUBSCRIBE was sent after it: a
 * topic is never subscribed again before its UNSUBSCRIBE was answered.
 */

static void
ngx_chat_topic_acquire(ngx_chat_topic_t *t)
{
    t->wanted = 1;

    if (t->lingering) {
        t->lingering = 0;
        ngx_queue_remove(&t->linger);
    }

    if (t->state == NGX_CHAT_TOPIC_OFF) {
        ngx_chat_topic_subscribe(t);
    }
}


static void
ngx_chat_topic_release(ngx_chat_topic_t *t)
{
    t->wanted = 0;
    t->lingering = 1;
    t->idle_since = ngx_current_msec;
    ngx_queue_insert_tail(&ngx_chat_fanout.lingering, &t->linger);
}


static void
ngx_chat_topic_subscribe(ngx_chat_topic_t *t)
{
    if (ngx_chat_redis_subscribe(&t->name, 1) == NGX_OK) {
        t->state = NGX_CHAT_TOPIC_PENDING;
    }
}


static void
ngx_chat_topic_destroy(ngx_chat_topic_t *t)
{
    if (t->lingering) {
        ngx_queue_remove(&t->linger);
    }

    ngx_queue_remove(&t->all);

    if (t->is_user) {
        ngx_chat_user_destroy(ngx_queue_data(t, ngx_chat_user_t, topic));

    } else {
        ngx_chat_channel_destroy(ngx_queue_data(t, ngx_chat_channel_t,
                                                topic));
    }
}


static ngx_chat_topic_t *
ngx_chat_topic_find(u_char *name, size_t len)
{
    int64_t              id;
    ngx_str_t            n;
    ngx_chat_user_t     *u;
    ngx_chat_channel_t  *ch;

    if (len > 2 && name[0] == 'c' && name[1] == ':') {
        if (ngx_chat_parse_id(name + 2, len - 2, &id) != NGX_OK) {
            return NULL;
        }

        ch = ngx_chat_channel_find(id);
        return ch ? &ch->topic : NULL;
    }

    n.data = name;
    n.len = len;
    u = ngx_chat_user_find(&n, ngx_crc32_short(name, len));

    return u ? &u->topic : NULL;
}


/* Redis answered a SUBSCRIBE or an UNSUBSCRIBE */

void
ngx_chat_fanout_confirmed(u_char *name, size_t len, ngx_uint_t subscribed)
{
    ngx_chat_topic_t  *t;

    t = ngx_chat_topic_find(name, len);
    if (t == NULL) {
        return;
    }

    if (subscribed) {
        if (t->state == NGX_CHAT_TOPIC_PENDING) {
            t->state = NGX_CHAT_TOPIC_ON;
        }

        /* what was published before the subscription is in Postgres */

        if (t->is_user) {
            ngx_chat_user_resync(ngx_queue_data(t, ngx_chat_user_t, topic));

        } else {
            ngx_chat_channel_need_sync(ngx_queue_data(t, ngx_chat_channel_t,
                                                      topic));
        }

        return;
    }

    if (t->state != NGX_CHAT_TOPIC_LEAVING) {
        return;
    }

    t->state = NGX_CHAT_TOPIC_OFF;

    if (t->wanted || t->lingering) {
        ngx_chat_topic_subscribe(t);

    } else {
        ngx_chat_topic_destroy(t);
    }
}


void
ngx_chat_fanout_redis_up(void)
{
    ngx_queue_t       *q, *next;
    ngx_chat_topic_t  *t;

    for (q = ngx_queue_head(&ngx_chat_fanout.topics);
         q != ngx_queue_sentinel(&ngx_chat_fanout.topics);
         q = next)
    {
        next = ngx_queue_next(q);
        t = ngx_queue_data(q, ngx_chat_topic_t, all);

        if (t->state == NGX_CHAT_TOPIC_OFF) {
            ngx_chat_topic_subscribe(t);
        }
    }
}


/* the subscriptions are gone with the connection */

void
ngx_chat_fanout_redis_down(void)
{
    ngx_queue_t       *q, *next;
    ngx_chat_topic_t  *t;

    for (q = ngx_queue_head(&ngx_chat_fanout.topics);
         q != ngx_queue_sentinel(&ngx_chat_fanout.topics);
         q = next)
    {
        next = ngx_queue_next(q);
        t = ngx_queue_data(q, ngx_chat_topic_t, all);

        if (t->state == NGX_CHAT_TOPIC_LEAVING && !t->wanted
            && !t->lingering)
        {
            ngx_chat_topic_destroy(t);
            continue;
        }

        t->state = NGX_CHAT_TOPIC_OFF;
    }
}


static void
ngx_chat_linger_expire(void)
{
    ngx_queue_t       *q;
    ngx_chat_topic_t  *t;

    while (!ngx_queue_empty(&ngx_chat_fanout.lingering)) {
        q = ngx_queue_head(&ngx_chat_fanout.lingering);
        t = ngx_queue_data(q, ngx_chat_topic_t, linger);

        if (ngx_current_msec - t->idle_since < NGX_CHAT_LINGER) {
            return;
        }

        ngx_queue_remove(q);
        t->lingering = 0;

        if (t->state == NGX_CHAT_TOPIC_OFF) {
            ngx_chat_topic_destroy(t);
            continue;
        }

        if (t->state == NGX_CHAT_TOPIC_LEAVING
            || ngx_chat_redis_subscribe(&t->name, 0) != NGX_OK)
        {
            /* Redis is away: the topic goes with the connection */
            continue;
        }

        t->state = NGX_CHAT_TOPIC_LEAVING;
    }
}


/*
 * Once a second: lingering topics expire, delivery positions reach
 * Postgres; and when the worker quits or reloads, every connection is
 * closed with 1001 so that its client reconnects to a new worker.
 */

static void
ngx_chat_tick_handler(ngx_event_t *ev)
{
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    if (ngx_exiting || ngx_terminate) {
        if (!fo->closing) {
            fo->closing = 1;
            ngx_chat_ws_close_all(NGX_CHAT_WS_GOING_AWAY);
        }

        if (ngx_chat_worker.nsessions) {
            ngx_add_timer(ev, 100);
        }

        return;
    }

    ngx_chat_linger_expire();

    if (++fo->ticks % 5 == 0) {
        ngx_chat_session_report();
    }

    ngx_add_timer(ev, NGX_CHAT_TICK);
}
