
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
 *
 * A follower (a WebSocket session, ngx_chat_session.c) is told of events
 * through the handlers it gives; its subscriptions are indexed here by
 * conversation, and those behind their channel wait in a queue of their
 * own, so that nothing here or in the session scans every subscription of
 * a user in thousands of conversations.  How far each subscription got
 * reaches Postgres in batches (ngx_chat_fanout_report()): receipts tell
 * from it who has a message delivered.
 */


#include "ngx_chat.h"


#define NGX_CHAT_LINGER          30000
#define NGX_CHAT_HELD_MAX        4096
#define NGX_CHAT_SYNC_BATCH      256
#define NGX_CHAT_SYNC_LIMIT      500
#define NGX_CHAT_REPORT_BATCH    1000
#define NGX_CHAT_TOPIC_BATCH     256     /* topics a command */
#define NGX_CHAT_TOPIC_TURN      4       /* commands a turn of the loop */
#define NGX_CHAT_CATCH_USERS     256     /* users a read of missed follows */
#define NGX_CHAT_PRESENCE_TOPIC_LEN  (3 + NGX_INT64_LEN + 2 * 256)


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
    ngx_queue_t                  outgoing;   /* to be subscribed */
    ngx_msec_t                   idle_since;
    unsigned                     state:2;
    unsigned                     wanted:1;
    unsigned                     lingering:1;
    unsigned                     queued:1;   /* in outgoing */
    unsigned                     kind:2;
} ngx_chat_topic_t;

#define NGX_CHAT_TOPIC_CHANNEL   0           /* "c:<id>" */
#define NGX_CHAT_TOPIC_USER      1           /* "u:<tenant>:<user>" */
#define NGX_CHAT_TOPIC_PRESENCE  2           /* "p:<tenant>:<user>" */


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
    ngx_queue_t                  followers;
    ngx_uint_t                   nfollowers;
    ngx_queue_t                  in_catch;   /* its follows to read back */
    time_t                       since;      /* what may have been missed */
    unsigned                     catching:1;
};


/* a user whose presence some follower of this worker watches */

typedef struct {
    ngx_str_node_t               sn;         /* the topic name, hashed */
    ngx_chat_topic_t             topic;
    ngx_queue_t                  watches;
    ngx_uint_t                   nwatches;
} ngx_chat_watched_t;


/* one follower's interest in one user's presence, for some reasons */

typedef struct {
    ngx_str_node_t               sn;         /* the user id, hashed */
    ngx_queue_t                  in_watched;
    ngx_chat_watched_t          *watched;
    ngx_chat_follower_t         *follower;
    ngx_uint_t                   reasons;
} ngx_chat_watch_t;


/* the follows of users that may have been missed, read back in batches */

typedef struct {
    ngx_chat_pg_query_t          query;
    ngx_pool_t                  *pool;
    ngx_queue_t                  users;      /* asked about, in_catch */
    time_t                       asked;
} ngx_chat_catch_t;


typedef struct {
    ngx_chat_pg_query_t          query;
    ngx_pool_t                  *pool;
    ngx_uint_t                   n;
    int64_t                      ids[NGX_CHAT_SYNC_BATCH];
} ngx_chat_sync_t;


/* positions to tell Postgres of, in one statement */

typedef struct {
    ngx_chat_pg_query_t          query;
    ngx_pool_t                  *pool;
} ngx_chat_report_t;


typedef struct {
    ngx_log_t                   *log;
    ngx_chat_pg_pool_t          *pg;
    ngx_msec_t                   gap_wait;
    ngx_rbtree_t                 channels;
    ngx_rbtree_node_t            channels_sentinel;
    ngx_rbtree_t                 users;
    ngx_rbtree_node_t            users_sentinel;
    ngx_rbtree_t                 watched;
    ngx_rbtree_node_t            watched_sentinel;
    ngx_queue_t                  catch;      /* users whose follows to read */
    ngx_chat_catch_t            *catching;   /* the query running */
    ngx_event_t                  catch_timer;
    ngx_queue_t                  topics;
    ngx_queue_t                  lingering;
    ngx_queue_t                  sync;       /* channels to read back */
    ngx_chat_sync_t             *syncing;    /* the query running */
    ngx_event_t                  sync_timer;
    ngx_queue_t                  unreported; /* subs that moved on */
    ngx_queue_t                  outgoing;   /* topics to subscribe */
    ngx_event_t                  flush;      /* sends them, posted */
    ngx_chat_report_t           *reporting;  /* the report running */
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
static void ngx_chat_channel_jump(ngx_chat_channel_t *ch, int64_t seq);
static void ngx_chat_channel_live_at(ngx_chat_channel_t *ch, int64_t seq);
static void ngx_chat_sync_handler(ngx_event_t *ev);
static void ngx_chat_sync_result(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_sync_retry(ngx_chat_sync_t *sync);
static void ngx_chat_user_message(u_char *name, size_t len, u_char *msg,
    size_t msg_len);
static ngx_chat_user_t *ngx_chat_user_find(ngx_str_t *name,
    uint32_t hash);
static void ngx_chat_user_destroy(ngx_chat_user_t *u);
static void ngx_chat_user_catch(ngx_chat_user_t *u);
static void ngx_chat_catch_handler(ngx_event_t *ev);
static void ngx_chat_catch_result(ngx_chat_pg_query_t *q, PGresult *res);
static void ngx_chat_catch_done(ngx_chat_catch_t *ct, ngx_uint_t read);
static void ngx_chat_fanout_catch_all(time_t since);
static void ngx_chat_watch_drop(ngx_chat_follower_t *f, ngx_chat_watch_t *w);
static void ngx_chat_watched_message(u_char *name, size_t len, u_char *msg,
    size_t msg_len);
static void ngx_chat_watched_destroy(ngx_chat_watched_t *wd);
static void ngx_chat_topic_acquire(ngx_chat_topic_t *t);
static void ngx_chat_topic_release(ngx_chat_topic_t *t);
static void ngx_chat_topic_subscribe(ngx_chat_topic_t *t);
static void ngx_chat_topic_destroy(ngx_chat_topic_t *t);
static void ngx_chat_topics_flush(ngx_event_t *ev);
static ngx_chat_topic_t *ngx_chat_topic_find(u_char *name, size_t len);
static void ngx_chat_fanout_redis_up(void);
static void ngx_chat_fanout_redis_down(void);
static void ngx_chat_sub_drop(ngx_chat_follower_t *f, ngx_chat_sub_t *sub);
static void ngx_chat_sub_moved(ngx_chat_sub_t *sub, int64_t seq);
static void ngx_chat_sub_set_state(ngx_chat_sub_t *sub, ngx_uint_t state);
static void ngx_chat_report_result(ngx_chat_pg_query_t *q, PGresult *res);
static u_char *ngx_chat_pg_array_string(u_char *p, ngx_str_t *s);


static ngx_chat_fanout_t  ngx_chat_fanout;


ngx_int_t
ngx_chat_fanout_init(ngx_cycle_t *cycle, ngx_chat_pg_pool_t *pg,
    ngx_msec_t gap_wait)
{
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    fo->log = cycle->log;
    fo->pg = pg;
    fo->gap_wait = gap_wait;

    ngx_rbtree_init(&fo->channels, &fo->channels_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&fo->users, &fo->users_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_rbtree_init(&fo->watched, &fo->watched_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&fo->catch);

    ngx_queue_init(&fo->topics);
    ngx_queue_init(&fo->lingering);
    ngx_queue_init(&fo->sync);
    ngx_queue_init(&fo->unreported);
    ngx_queue_init(&fo->outgoing);

    /* nginx's debug log reads an event's data as a connection: not NULL */

    fo->sync_timer.handler = ngx_chat_sync_handler;
    fo->sync_timer.data = fo;
    fo->sync_timer.log = fo->log;
    fo->sync_timer.cancelable = 1;

    fo->flush.handler = ngx_chat_topics_flush;
    fo->flush.data = fo;
    fo->flush.log = fo->log;

    fo->catch_timer.handler = ngx_chat_catch_handler;
    fo->catch_timer.data = fo;
    fo->catch_timer.log = fo->log;
    fo->catch_timer.cancelable = 1;

    return NGX_OK;
}


void
ngx_chat_fanout_done(void)
{
    ngx_queue_t       *q;
    ngx_chat_topic_t  *t;

    if (ngx_chat_fanout.sync_timer.timer_set) {
        ngx_del_timer(&ngx_chat_fanout.sync_timer);
    }

    if (ngx_chat_fanout.flush.posted) {
        ngx_delete_posted_event(&ngx_chat_fanout.flush);
    }

    if (ngx_chat_fanout.catch_timer.timer_set) {
        ngx_del_timer(&ngx_chat_fanout.catch_timer);
    }

    while (!ngx_queue_empty(&ngx_chat_fanout.topics)) {
        q = ngx_queue_head(&ngx_chat_fanout.topics);
        t = ngx_queue_data(q, ngx_chat_topic_t, all);
        ngx_chat_topic_destroy(t);
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

    if (channel_len > 2 && channel[0] == 'p' && channel[1] == ':') {
        ngx_chat_watched_message(channel, channel_len, msg, len);
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
    ngx_queue_t          *q, *next;
    ngx_chat_sub_t       *sub;
    ngx_chat_follower_t  *f;

    ch->head = ev->seq;

    for (q = ngx_queue_head(&ch->live);
         q != ngx_queue_sentinel(&ch->live);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);
        f = sub->follower;

        f->handlers->event(f, ev);
        ngx_chat_sub_moved(sub, ev->seq);

        if (ngx_chat_event_concerns(ev, '-', &f->id->user)) {
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
 * What the channel waits for is no longer kept in Postgres (events are
 * kept for chat_events_retention): it goes on from where the
 * conversation stands, and its followers are told to load it from history
 * again.  Only a gap older than the retention gets here.
 */

static void
ngx_chat_channel_jump(ngx_chat_channel_t *ch, int64_t seq)
{
    u_char            *p, buf[64 + NGX_INT64_LEN];
    ngx_uint_t         i;
    ngx_chat_event_t  *ev;

    if (seq <= ch->head) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_chat_fanout.log, 0,
                  "chat: events %L to %L of \"%V\" are past retention; "
                  "its followers reload it", ch->head + 1, seq,
                  &ch->topic.name);

    p = ngx_sprintf(buf, "{\"type\":\"reload\",\"conversation_id\":%L,"
                         "\"last_seq\":%L}", (int64_t) ch->node.key, seq);

    ev = ngx_chat_event_create(buf, p - buf, 0);
    if (ev) {
        ev->conversation = (int64_t) ch->node.key;
        ngx_chat_channel_signal(ch, ev);
        ngx_chat_event_release(ev);
    }

    for (i = 0; i < ch->nheld && ch->held[i]->seq <= seq; i++) {
        ngx_chat_event_release(ch->held[i]);
    }

    if (i) {
        ch->nheld -= i;
        ngx_memmove(ch->held, ch->held + i,
                    ch->nheld * sizeof(ngx_chat_event_t *));
    }

    /* the live followers stand at the new head; the others catch up */
    ch->head = seq;
    ngx_chat_channel_live_at(ch, seq);
}


/*
 * Typing and read receipts: no seq, no order; a connection that has not
 * started holds them; a "!" event never goes to the connections of the
 * user it names.
 */

static void
ngx_chat_channel_signal(ngx_chat_channel_t *ch, ngx_chat_event_t *ev)
{
    ngx_uint_t            i;
    ngx_queue_t          *q, *queues[2];
    ngx_chat_sub_t       *sub;
    ngx_chat_follower_t  *f;

    queues[0] = &ch->live;
    queues[1] = &ch->behind;

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);
            f = sub->follower;

            if (!ngx_chat_event_concerns(ev, '!', &f->id->user)) {
                f->handlers->event(f, ev);
            }
        }
    }
}


static void
ngx_chat_channel_live_at(ngx_chat_channel_t *ch, int64_t seq)
{
    ngx_queue_t     *q, *next;
    ngx_chat_sub_t  *sub;

    for (q = ngx_queue_head(&ch->live);
         q != ngx_queue_sentinel(&ch->live);
         q = ngx_queue_next(q))
    {
        sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);
        ngx_chat_sub_moved(sub, seq);
    }

    /* those that were ahead may be in step, or behind, now */

    for (q = ngx_queue_head(&ch->behind);
         q != ngx_queue_sentinel(&ch->behind);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_chat_sub_t, in_channel);

        if (sub->state == NGX_CHAT_SUB_AHEAD && sub->pos <= seq) {
            ngx_chat_fanout_place(sub);
        }
    }
}


/* followers: a session's subscriptions, indexed by conversation */

void
ngx_chat_fanout_follower_init(ngx_chat_follower_t *f,
    const ngx_chat_follower_handlers_t *handlers, ngx_chat_identity_t *id)
{
    f->handlers = handlers;
    f->id = id;
    ngx_rbtree_init(&f->subs, &f->sentinel, ngx_rbtree_insert_value);
    ngx_rbtree_init(&f->watches, &f->watches_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&f->waiting);
    ngx_queue_init(&f->catching);
}


ngx_chat_sub_t *
ngx_chat_fanout_find(ngx_chat_follower_t *f, int64_t conversation)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) conversation;
    node = f->subs.root;
    sentinel = f->subs.sentinel;

    while (node != sentinel) {
        if (key == node->key) {
            return (ngx_chat_sub_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}


ngx_chat_sub_t *
ngx_chat_fanout_follow(ngx_chat_follower_t *f, int64_t conversation,
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

    sub = ngx_calloc(sizeof(ngx_chat_sub_t), ngx_chat_fanout.log);
    if (sub == NULL) {
        if (ch->nsubs == 0 && !ch->topic.lingering) {
            ngx_chat_topic_release(&ch->topic);
        }
        return NULL;
    }

    sub->node.key = (ngx_rbtree_key_t) conversation;
    sub->follower = f;
    sub->channel = ch;
    sub->pos = pos;
    sub->reported = pos;
    sub->state = NGX_CHAT_SUB_WAITING;

    ngx_rbtree_insert(&f->subs, &sub->node);
    ngx_queue_insert_tail(&ch->behind, &sub->in_channel);
    ngx_queue_insert_tail(&f->waiting, &sub->in_state);
    f->nsubs++;

    if (ch->nsubs++ == 0) {
        ngx_chat_topic_acquire(&ch->topic);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_chat_fanout.log, 0,
                   "chat fanout: \"%V\" follows c:%L from %L",
                   &f->id->user, conversation, pos);

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
        ngx_chat_sub_set_state(sub, NGX_CHAT_SUB_LIVE);
        ngx_queue_insert_tail(&ch->live, &sub->in_channel);
        return;
    }

    ngx_queue_insert_tail(&ch->behind, &sub->in_channel);

    if (sub->pos < ch->head) {
        ngx_chat_sub_set_state(sub, NGX_CHAT_SUB_CATCHING);
        return;
    }

    /* the channel has not seen what this follower knows exists */
    ngx_chat_sub_set_state(sub, NGX_CHAT_SUB_AHEAD);
    ngx_chat_channel_need_sync(ch);
}


/*
 * Followers not started yet, and those behind their channel, are in
 * queues of their own: nothing walks all of a follower's subscriptions to
 * find them.
 */

static void
ngx_chat_sub_set_state(ngx_chat_sub_t *sub, ngx_uint_t state)
{
    ngx_chat_follower_t  *f;

    f = sub->follower;

    if (sub->state == NGX_CHAT_SUB_WAITING
        || sub->state == NGX_CHAT_SUB_CATCHING)
    {
        ngx_queue_remove(&sub->in_state);
    }

    if (sub->state == NGX_CHAT_SUB_CATCHING) {
        f->ncatching--;
    }

    if (state == NGX_CHAT_SUB_WAITING) {
        ngx_queue_insert_tail(&f->waiting, &sub->in_state);
    }

    if (state == NGX_CHAT_SUB_CATCHING) {
        ngx_queue_insert_tail(&f->catching, &sub->in_state);
        f->ncatching++;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_chat_fanout.log, 0,
                   "chat fanout: \"%V\" on c:%L at %L: state %ui",
                   &f->id->user, (int64_t) sub->node.key, sub->pos, state);

    sub->state = state;
}


/* a replayed event reached the follower */

void
ngx_chat_fanout_sent(ngx_chat_sub_t *sub, int64_t seq)
{
    ngx_chat_sub_moved(sub, seq);
}


/* the position moved on: it is told to Postgres with the next report */

static void
ngx_chat_sub_moved(ngx_chat_sub_t *sub, int64_t seq)
{
    sub->pos = seq;

    if (!sub->unreported && sub->pos > sub->reported) {
        sub->unreported = 1;
        ngx_queue_insert_tail(&ngx_chat_fanout.unreported, &sub->in_report);
    }
}


void
ngx_chat_fanout_unfollow(ngx_chat_sub_t *sub)
{
    ngx_chat_sub_drop(sub->follower, sub);
}


static void
ngx_chat_sub_drop(ngx_chat_follower_t *f, ngx_chat_sub_t *sub)
{
    ngx_chat_channel_t  *ch;

    ch = sub->channel;

    if (sub->state == NGX_CHAT_SUB_WAITING
        || sub->state == NGX_CHAT_SUB_CATCHING)
    {
        ngx_queue_remove(&sub->in_state);
    }

    if (sub->state == NGX_CHAT_SUB_CATCHING) {
        f->ncatching--;
    }

    if (sub->unreported) {
        ngx_queue_remove(&sub->in_report);
    }

    ngx_queue_remove(&sub->in_channel);
    ngx_rbtree_delete(&f->subs, &sub->node);
    f->nsubs--;
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
        ngx_add_timer(&fo->sync_timer, fo->gap_wait);
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

    if (ngx_chat_pg_send(fo->pg, &sync->query) != NGX_OK) {
        ngx_chat_sync_retry(sync);
        return;
    }

    fo->syncing = sync;
}


static void
ngx_chat_sync_result(ngx_chat_pg_query_t *q, PGresult *res)
{
    int                  i, n, count;
    int64_t              id, last, seq;
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

        if (PQgetisnull(res, i, 2)) {
            seq = ngx_atoof((u_char *) PQgetvalue(res, i, 1),
                            PQgetlength(res, i, 1));
            ngx_chat_channel_jump(ch, seq);
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


/* users: what concerns a user in conversations it does not follow yet */

ngx_int_t
ngx_chat_fanout_join(ngx_chat_follower_t *f)
{
    size_t            len;
    u_char            buf[320];
    uint32_t          hash;
    ngx_str_t         name;
    ngx_chat_user_t  *u;

    name.data = buf;
    name.len = ngx_snprintf(buf, sizeof(buf), "u:%uz:%V:%V",
                            f->id->tenant.len, &f->id->tenant, &f->id->user)
               - buf;

    hash = ngx_crc32_short(name.data, name.len);
    u = ngx_chat_user_find(&name, hash);

    if (u == NULL) {
        len = sizeof(ngx_chat_user_t) + name.len;
        u = ngx_calloc(len, ngx_chat_fanout.log);
        if (u == NULL) {
            return NGX_ERROR;
        }

        u->topic.kind = NGX_CHAT_TOPIC_USER;
        u->topic.name.data = (u_char *) (u + 1);
        u->topic.name.len = name.len;
        ngx_memcpy(u->topic.name.data, name.data, name.len);

        u->sn.str = u->topic.name;
        u->sn.node.key = hash;
        ngx_queue_init(&u->followers);

        /* a follow published before the subscription is read back */
        u->since = ngx_time();

        ngx_rbtree_insert(&ngx_chat_fanout.users, &u->sn.node);
        ngx_queue_insert_tail(&ngx_chat_fanout.topics, &u->topic.all);
    }

    ngx_queue_insert_tail(&u->followers, &f->in_user);
    f->user = u;

    if (u->nfollowers++ == 0) {
        ngx_chat_topic_acquire(&u->topic);
    }

    return NGX_OK;
}


/* the follower goes: every subscription of it, and its user's */

void
ngx_chat_fanout_leave(ngx_chat_follower_t *f)
{
    ngx_chat_user_t  *u;

    while (f->subs.root != f->subs.sentinel) {
        ngx_chat_sub_drop(f, (ngx_chat_sub_t *) f->subs.root);
    }

    while (f->watches.root != f->watches.sentinel) {
        ngx_chat_watch_drop(f, (ngx_chat_watch_t *) f->watches.root);
    }

    u = f->user;
    if (u == NULL) {
        return;
    }

    ngx_queue_remove(&f->in_user);
    f->user = NULL;

    if (--u->nfollowers == 0) {
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
 * A "follow" published while this worker was not listening (before the
 * user's channel was subscribed, or while Redis was away) is lost: the
 * memberships the user gained since then are read back from Postgres, in
 * one statement for many users, and followed.
 */

static void
ngx_chat_user_catch(ngx_chat_user_t *u)
{
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    if (u->catching) {
        return;
    }

    u->catching = 1;
    ngx_queue_insert_tail(&fo->catch, &u->in_catch);

    if (!fo->catch_timer.timer_set && fo->catching == NULL) {
        ngx_add_timer(&fo->catch_timer, 1);
    }
}


/* a follower asks for the follows its user may have missed, again */

void
ngx_chat_fanout_recatch(ngx_chat_follower_t *f)
{
    if (f->user) {
        ngx_chat_user_catch(f->user);
    }
}


static void
ngx_chat_catch_handler(ngx_event_t *ev)
{
    u_char             *p[3], *start[3];
    size_t              size[3];
    ngx_uint_t          i, n;
    ngx_pool_t         *pool;
    ngx_queue_t        *q;
    ngx_chat_user_t    *u;
    ngx_chat_catch_t   *ct;
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    if (ngx_queue_empty(&fo->catch) || fo->catching) {
        return;
    }

    pool = ngx_create_pool(16384, fo->log);
    if (pool == NULL) {
        ngx_add_timer(&fo->catch_timer, 1000);
        return;
    }

    ct = ngx_pcalloc(pool, sizeof(ngx_chat_catch_t));

    /* the user topics' names, quoted and escaped, and how long ago */
    size[0] = NGX_CHAT_CATCH_USERS * (2 * 300 + 3) + 3;
    size[1] = NGX_CHAT_CATCH_USERS * (NGX_TIME_T_LEN + 1) + 3;

    for (i = 0; i < 2; i++) {
        start[i] = ngx_pnalloc(pool, size[i]);
        if (ct == NULL || start[i] == NULL) {
            ngx_destroy_pool(pool);
            ngx_add_timer(&fo->catch_timer, 1000);
            return;
        }
        p[i] = ngx_cpymem(start[i], "{", 1);
    }

    ngx_queue_init(&ct->users);
    ct->asked = ngx_time();

    for (n = 0; n < NGX_CHAT_CATCH_USERS && !ngx_queue_empty(&fo->catch);
         n++)
    {
        q = ngx_queue_head(&fo->catch);
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ct->users, q);
        u = ngx_queue_data(q, ngx_chat_user_t, in_catch);

        p[0] = ngx_chat_pg_array_string(p[0], &u->topic.name);
        p[1] = ngx_sprintf(p[1], "%T,", ngx_max(ngx_time() - u->since, 0));
    }

    for (i = 0; i < 2; i++) {
        *(p[i] - 1) = '}';
        *p[i] = '\0';
    }

    ct->pool = pool;
    ct->query.stmt = NGX_CHAT_SQL_WS_FOLLOWS;
    ct->query.nparams = 2;
    ct->query.params[0] = (char *) start[0];
    ct->query.params[1] = (char *) start[1];
    ct->query.handler = ngx_chat_catch_result;
    ct->query.data = ct;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, fo->log, 0,
                   "chat fanout: reading back the follows of %ui users", n);

    if (ngx_chat_pg_send(fo->pg, &ct->query) != NGX_OK) {
        ngx_chat_catch_done(ct, 0);
        return;
    }

    fo->catching = ct;
}


/* read: they caught up to when they were asked about; or asked again */

static void
ngx_chat_catch_done(ngx_chat_catch_t *ct, ngx_uint_t read)
{
    ngx_queue_t        *q;
    ngx_chat_user_t    *u;
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    while (!ngx_queue_empty(&ct->users)) {
        q = ngx_queue_head(&ct->users);
        ngx_queue_remove(q);
        u = ngx_queue_data(q, ngx_chat_user_t, in_catch);

        if (read) {
            u->catching = 0;
            u->since = ct->asked;

        } else {
            ngx_queue_insert_tail(&fo->catch, q);
        }
    }

    ngx_destroy_pool(ct->pool);

    if (!ngx_queue_empty(&fo->catch) && !fo->catch_timer.timer_set) {
        ngx_add_timer(&fo->catch_timer, read ? 1 : 1000);
    }
}


/* rows of (user topic, conversation, joined seq, peer of a direct) */

static void
ngx_chat_catch_result(ngx_chat_pg_query_t *q, PGresult *res)
{
    int                   i, n;
    int64_t               conversation, seq;
    ngx_str_t             name, peer;
    ngx_queue_t          *qf, *next;
    ngx_chat_user_t      *u;
    ngx_chat_catch_t     *ct;
    ngx_chat_fanout_t    *fo = &ngx_chat_fanout;
    ngx_chat_follower_t  *f;

    ct = q->data;
    fo->catching = NULL;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_WARN, fo->log, 0,
                      "chat: reading back missed follows failed: %s",
                      res ? PQresultErrorMessage(res) : "no database");
        ngx_chat_catch_done(ct, 0);
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        name.data = (u_char *) PQgetvalue(res, i, 0);
        name.len = PQgetlength(res, i, 0);

        u = ngx_chat_user_find(&name, ngx_crc32_short(name.data, name.len));
        if (u == NULL) {
            continue;
        }

        conversation = ngx_atoof((u_char *) PQgetvalue(res, i, 1),
                                 PQgetlength(res, i, 1));
        seq = ngx_atoof((u_char *) PQgetvalue(res, i, 2),
                        PQgetlength(res, i, 2));
        peer.data = (u_char *) PQgetvalue(res, i, 3);
        peer.len = PQgetlength(res, i, 3);

        for (qf = ngx_queue_head(&u->followers);
             qf != ngx_queue_sentinel(&u->followers);
             qf = next)
        {
            next = ngx_queue_next(qf);
            f = ngx_queue_data(qf, ngx_chat_follower_t, in_user);
            f->handlers->follow(f, conversation, ngx_max(seq, 1),
                                peer.len ? &peer : NULL);
        }
    }

    ngx_chat_catch_done(ct, 1);
}


/* every user of the worker may have missed follows since then */

static void
ngx_chat_fanout_catch_all(time_t since)
{
    ngx_queue_t       *q;
    ngx_chat_topic_t  *t;
    ngx_chat_user_t   *u;

    for (q = ngx_queue_head(&ngx_chat_fanout.topics);
         q != ngx_queue_sentinel(&ngx_chat_fanout.topics);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_chat_topic_t, all);

        if (t->kind == NGX_CHAT_TOPIC_USER) {
            u = ngx_queue_data(t, ngx_chat_user_t, topic);
            u->since = ngx_min(u->since, since);
        }
    }
}


static void
ngx_chat_user_destroy(ngx_chat_user_t *u)
{
    if (u->catching) {
        ngx_queue_remove(&u->in_catch);
    }

    ngx_rbtree_delete(&ngx_chat_fanout.users, &u->sn.node);
    ngx_free(u);
}


/*
 * Presence by interest: a follower watches the users whose presence it
 * wants (the other member of its direct conversations, the members of the
 * conversation it has open, those it names), each user's presence comes
 * on a channel of its own, and this worker subscribes to the channels of
 * the users some follower here watches.  A user coming online costs one
 * publication, whatever the size of its conversations.
 */

ngx_int_t
ngx_chat_fanout_watch(ngx_chat_follower_t *f, ngx_str_t *user,
    ngx_uint_t reason)
{
    size_t               len;
    u_char               buf[NGX_CHAT_PRESENCE_TOPIC_LEN];
    uint32_t             hash;
    ngx_str_t            name;
    ngx_str_node_t      *sn;
    ngx_chat_watch_t    *w;
    ngx_chat_watched_t  *wd;

    hash = ngx_crc32_short(user->data, user->len);
    sn = ngx_str_rbtree_lookup(&f->watches, user, hash);

    if (sn) {
        ((ngx_chat_watch_t *) sn)->reasons |= reason;
        return NGX_OK;
    }

    name.data = buf;
    name.len = ngx_snprintf(buf, sizeof(buf), "p:%uz:%V:%V",
                            f->id->tenant.len, &f->id->tenant, user)
               - buf;

    sn = ngx_str_rbtree_lookup(&ngx_chat_fanout.watched, &name,
                               ngx_crc32_short(name.data, name.len));
    wd = (ngx_chat_watched_t *) sn;

    if (wd == NULL) {
        len = sizeof(ngx_chat_watched_t) + name.len;
        wd = ngx_calloc(len, ngx_chat_fanout.log);
        if (wd == NULL) {
            return NGX_ERROR;
        }

        wd->topic.kind = NGX_CHAT_TOPIC_PRESENCE;
        wd->topic.name.data = (u_char *) (wd + 1);
        wd->topic.name.len = name.len;
        ngx_memcpy(wd->topic.name.data, name.data, name.len);

        wd->sn.str = wd->topic.name;
        wd->sn.node.key = ngx_crc32_short(name.data, name.len);
        ngx_queue_init(&wd->watches);

        ngx_rbtree_insert(&ngx_chat_fanout.watched, &wd->sn.node);
        ngx_queue_insert_tail(&ngx_chat_fanout.topics, &wd->topic.all);
    }

    w = ngx_calloc(sizeof(ngx_chat_watch_t) + user->len,
                   ngx_chat_fanout.log);
    if (w == NULL) {
        if (wd->nwatches == 0 && !wd->topic.lingering) {
            ngx_chat_topic_release(&wd->topic);
        }
        return NGX_ERROR;
    }

    w->sn.str.data = (u_char *) (w + 1);
    w->sn.str.len = user->len;
    ngx_memcpy(w->sn.str.data, user->data, user->len);
    w->sn.node.key = hash;
    w->watched = wd;
    w->follower = f;
    w->reasons = reason;

    ngx_rbtree_insert(&f->watches, &w->sn.node);
    ngx_queue_insert_tail(&wd->watches, &w->in_watched);
    f->nwatches++;

    if (wd->nwatches++ == 0) {
        ngx_chat_topic_acquire(&wd->topic);
    }

    return NGX_OK;
}


/* the reason goes; with the last one the watch goes */

void
ngx_chat_fanout_unwatch(ngx_chat_follower_t *f, ngx_str_t *user,
    ngx_uint_t reason)
{
    ngx_str_node_t    *sn;
    ngx_chat_watch_t  *w;

    sn = ngx_str_rbtree_lookup(&f->watches, user,
                               ngx_crc32_short(user->data, user->len));
    if (sn == NULL) {
        return;
    }

    w = (ngx_chat_watch_t *) sn;
    w->reasons &= ~reason;

    if (w->reasons == 0) {
        ngx_chat_watch_drop(f, w);
    }
}


/* every watch of the follower loses the reason (the view moved on) */

void
ngx_chat_fanout_unwatch_all(ngx_chat_follower_t *f, ngx_uint_t reason)
{
    ngx_rbtree_node_t  *node, *next;
    ngx_chat_watch_t   *w;

    if (f->watches.root == f->watches.sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(f->watches.root, f->watches.sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&f->watches, node);
        w = (ngx_chat_watch_t *) node;
        w->reasons &= ~reason;

        if (w->reasons == 0) {
            ngx_chat_watch_drop(f, w);
        }
    }
}


static void
ngx_chat_watch_drop(ngx_chat_follower_t *f, ngx_chat_watch_t *w)
{
    ngx_chat_watched_t  *wd;

    wd = w->watched;

    ngx_queue_remove(&w->in_watched);
    ngx_rbtree_delete(&f->watches, &w->sn.node);
    f->nwatches--;
    ngx_free(w);

    if (--wd->nwatches == 0) {
        ngx_chat_topic_release(&wd->topic);
    }
}


/* a user's presence changed: every follower here that watches it hears */

static void
ngx_chat_watched_message(u_char *name, size_t len, u_char *msg,
    size_t msg_len)
{
    ngx_str_t            n;
    ngx_queue_t         *q, *next;
    ngx_str_node_t      *sn;
    ngx_chat_watch_t    *w;
    ngx_chat_event_t    *ev;
    ngx_chat_watched_t  *wd;

    n.data = name;
    n.len = len;

    sn = ngx_str_rbtree_lookup(&ngx_chat_fanout.watched, &n,
                               ngx_crc32_short(name, len));
    if (sn == NULL) {
        return;
    }

    wd = (ngx_chat_watched_t *) sn;

    ev = ngx_chat_event_from_wire(0, msg, msg_len);
    if (ev == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_fanout.log, 0,
                      "chat: malformed event on \"%V\"", &n);
        return;
    }

    for (q = ngx_queue_head(&wd->watches);
         q != ngx_queue_sentinel(&wd->watches);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_chat_watch_t, in_watched);
        w->follower->handlers->event(w->follower, ev);
    }

    ngx_chat_event_release(ev);
}


static void
ngx_chat_watched_destroy(ngx_chat_watched_t *wd)
{
    ngx_rbtree_delete(&ngx_chat_fanout.watched, &wd->sn.node);
    ngx_free(wd);
}


/*
 * "follow <conversation> <seq>\n[<event>]": the user's connections follow
 * a conversation from that seq on; "event\n<event>": deliver as it is.
 */

static void
ngx_chat_user_message(u_char *name, size_t len, u_char *msg, size_t msg_len)
{
    u_char               *nl, *p, *e, *last;
    int64_t               conversation, seq;
    ngx_str_t             n, peer;
    ngx_queue_t          *q, *next;
    ngx_chat_user_t      *u;
    ngx_chat_event_t     *ev;
    ngx_chat_follower_t  *f;

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

    ngx_str_null(&peer);

    /* "follow <conversation> <seq>[ <peer of a direct conversation>]" */

    if (nl - msg > 7 && ngx_strncmp(msg, "follow ", 7) == 0) {
        p = ngx_strlchr(msg + 7, nl, ' ');
        e = p ? ngx_strlchr(p + 1, nl, ' ') : NULL;

        if (e) {
            peer.data = e + 1;
            peer.len = nl - e - 1;

        } else {
            e = nl;
        }

        if (p == NULL
            || ngx_chat_parse_id(msg + 7, p - msg - 7, &conversation)
               != NGX_OK
            || ngx_chat_parse_id(p + 1, e - p - 1, &seq) != NGX_OK)
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

    for (q = ngx_queue_head(&u->followers);
         q != ngx_queue_sentinel(&u->followers);
         q = next)
    {
        next = ngx_queue_next(q);
        f = ngx_queue_data(q, ngx_chat_follower_t, in_user);

        if (ev) {
            f->handlers->event(f, ev);
        }

        if (conversation) {
            f->handlers->follow(f, conversation, seq,
                                peer.len ? &peer : NULL);
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


/*
 * Topics are subscribed at the end of the event loop's turn, many in one
 * command: a user in thousands of conversations costs a few commands.
 */

static void
ngx_chat_topic_subscribe(ngx_chat_topic_t *t)
{
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    if (t->queued) {
        return;
    }

    t->queued = 1;
    ngx_queue_insert_tail(&fo->outgoing, &t->outgoing);

    if (!fo->flush.posted) {
        ngx_post_event(&fo->flush, &ngx_posted_events);
    }
}


static void
ngx_chat_topics_flush(ngx_event_t *ev)
{
    ngx_int_t           rc;
    ngx_str_t           names[NGX_CHAT_TOPIC_BATCH];
    ngx_uint_t          i, n, turn;
    ngx_queue_t        *q;
    ngx_chat_topic_t   *t, *batch[NGX_CHAT_TOPIC_BATCH];
    ngx_chat_fanout_t  *fo = &ngx_chat_fanout;

    rc = NGX_OK;

    for (turn = 0; !ngx_queue_empty(&fo->outgoing); turn++) {

        if (turn == NGX_CHAT_TOPIC_TURN && rc == NGX_OK) {
            /* the rest after the worker's other clients had their turn */
            ngx_post_event(&fo->flush, &ngx_posted_next_events);
            return;
        }

        for (n = 0; n < NGX_CHAT_TOPIC_BATCH
                    && !ngx_queue_empty(&fo->outgoing); /* void */)
        {
            q = ngx_queue_head(&fo->outgoing);
            ngx_queue_remove(q);
            t = ngx_queue_data(q, ngx_chat_topic_t, outgoing);
            t->queued = 0;

            if (rc == NGX_OK && t->state == NGX_CHAT_TOPIC_OFF) {
                names[n] = t->name;
                batch[n++] = t;
            }
        }

        if (n == 0) {
            continue;
        }

        /* refused: Redis is away, and subscribes every OFF topic when back */
        rc = ngx_chat_redis_subscribe(names, n, 1);

        if (rc != NGX_OK) {
            continue;
        }

        for (i = 0; i < n; i++) {
            batch[i]->state = NGX_CHAT_TOPIC_PENDING;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, fo->log, 0,
                       "chat fanout: subscribing to %ui topics", n);
    }
}


static void
ngx_chat_topic_destroy(ngx_chat_topic_t *t)
{
    if (t->lingering) {
        ngx_queue_remove(&t->linger);
    }

    if (t->queued) {
        ngx_queue_remove(&t->outgoing);
    }

    ngx_queue_remove(&t->all);

    switch (t->kind) {

    case NGX_CHAT_TOPIC_USER:
        ngx_chat_user_destroy(ngx_queue_data(t, ngx_chat_user_t, topic));
        break;

    case NGX_CHAT_TOPIC_PRESENCE:
        ngx_chat_watched_destroy(ngx_queue_data(t, ngx_chat_watched_t,
                                                topic));
        break;

    default:
        ngx_chat_channel_destroy(ngx_queue_data(t, ngx_chat_channel_t,
                                                topic));
    }
}


static ngx_chat_topic_t *
ngx_chat_topic_find(u_char *name, size_t len)
{
    int64_t              id;
    ngx_str_t            n;
    ngx_str_node_t      *sn;
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

    if (len > 2 && name[0] == 'p' && name[1] == ':') {
        sn = ngx_str_rbtree_lookup(&ngx_chat_fanout.watched, &n,
                                   ngx_crc32_short(name, len));
        return sn ? &((ngx_chat_watched_t *) sn)->topic : NULL;
    }

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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_chat_fanout.log, 0,
                   "chat fanout: \"%V\" %s", &t->name,
                   subscribed ? "subscribed" : "unsubscribed");

    if (subscribed) {
        if (t->state == NGX_CHAT_TOPIC_PENDING) {
            t->state = NGX_CHAT_TOPIC_ON;
        }

        /*
         * what was published before the subscription is in Postgres;
         * presence is not stored, and is asked for by whoever watches
         */

        switch (t->kind) {

        case NGX_CHAT_TOPIC_USER:
            ngx_chat_user_catch(ngx_queue_data(t, ngx_chat_user_t, topic));
            break;

        case NGX_CHAT_TOPIC_CHANNEL:
            ngx_chat_channel_need_sync(ngx_queue_data(t, ngx_chat_channel_t,
                                                      topic));
            break;
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


/* the subscribing link to Redis came or went */

void
ngx_chat_fanout_subscriber(ngx_uint_t up)
{
    if (up) {
        ngx_chat_fanout_redis_up();

    } else {
        ngx_chat_fanout_redis_down();
    }
}


static void
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

static void
ngx_chat_fanout_redis_down(void)
{
    ngx_queue_t       *q, *next;
    ngx_chat_topic_t  *t;

    /* follows published from now until the users are subscribed again */
    ngx_chat_fanout_catch_all(ngx_time());

    for (q = ngx_queue_head(&ngx_chat_fanout.topics);
         q != ngx_queue_sentinel(&ngx_chat_fanout.topics);
         q = next)
    {
        next = ngx_queue_next(q);
        t = ngx_queue_data(q, ngx_chat_topic_t, all);

        /* nobody follows it, and it lingers no more: it goes now */
        if (!t->wanted && !t->lingering) {
            ngx_chat_topic_destroy(t);
            continue;
        }

        t->state = NGX_CHAT_TOPIC_OFF;
    }
}


/* topics that nobody followed for a while are unsubscribed, in batches */

void
ngx_chat_fanout_expire(void)
{
    ngx_str_t          names[NGX_CHAT_TOPIC_BATCH];
    ngx_uint_t         i, n;
    ngx_queue_t       *q;
    ngx_chat_topic_t  *t, *batch[NGX_CHAT_TOPIC_BATCH];

    n = 0;

    while (!ngx_queue_empty(&ngx_chat_fanout.lingering)
           && n < NGX_CHAT_TOPIC_BATCH)
    {
        q = ngx_queue_head(&ngx_chat_fanout.lingering);
        t = ngx_queue_data(q, ngx_chat_topic_t, linger);

        if (ngx_current_msec - t->idle_since < NGX_CHAT_LINGER) {
            break;
        }

        ngx_queue_remove(q);
        t->lingering = 0;

        if (t->state == NGX_CHAT_TOPIC_OFF) {
            ngx_chat_topic_destroy(t);
            continue;
        }

        if (t->state != NGX_CHAT_TOPIC_LEAVING) {
            names[n] = t->name;
            batch[n++] = t;
        }
    }

    /* Redis away: the topics go with the connection (redis_down) */
    if (n == 0 || ngx_chat_redis_subscribe(names, n, 0) != NGX_OK) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_fanout.log, 0,
                   "chat fanout: unsubscribing from %ui topics", n);

    for (i = 0; i < n; i++) {
        batch[i]->state = NGX_CHAT_TOPIC_LEAVING;
    }
}


/*
 * How far each subscription got reaches Postgres in one statement, at
 * most NGX_CHAT_REPORT_BATCH at a time, oldest news first: receipts tell
 * from it who has a message delivered.  A position is advice, not a
 * promise: one lost with a failed report is sent with the next event
 * delivered.
 */

void
ngx_chat_fanout_report(void)
{
    u_char               *p[4], *start[4];
    size_t                size[4];
    ngx_uint_t            n, i;
    ngx_pool_t           *pool;
    ngx_queue_t          *q;
    ngx_chat_sub_t       *sub;
    ngx_chat_report_t    *rp;
    ngx_chat_fanout_t    *fo = &ngx_chat_fanout;
    ngx_chat_identity_t  *id;

    if (fo->reporting || ngx_queue_empty(&fo->unreported)) {
        return;
    }

    pool = ngx_create_pool(16384, fo->log);
    if (pool == NULL) {
        return;
    }

    rp = ngx_pcalloc(pool, sizeof(ngx_chat_report_t));
    if (rp == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    /* user ids and tenants quoted and escaped, ids and seqs as numbers */
    size[0] = size[1] = NGX_CHAT_REPORT_BATCH * (2 * 128 + 3) + 3;
    size[2] = size[3] = NGX_CHAT_REPORT_BATCH * (NGX_INT64_LEN + 1) + 3;

    for (i = 0; i < 4; i++) {
        start[i] = ngx_pnalloc(pool, size[i]);
        if (start[i] == NULL) {
            ngx_destroy_pool(pool);
            return;
        }
        p[i] = ngx_cpymem(start[i], "{", 1);
    }

    for (n = 0; n < NGX_CHAT_REPORT_BATCH && !ngx_queue_empty(&fo->unreported);
         n++)
    {
        q = ngx_queue_head(&fo->unreported);
        ngx_queue_remove(q);
        sub = ngx_queue_data(q, ngx_chat_sub_t, in_report);
        sub->unreported = 0;
        id = sub->follower->id;

        p[0] = ngx_chat_pg_array_string(p[0], &id->tenant);
        p[1] = ngx_chat_pg_array_string(p[1], &id->user);
        p[2] = ngx_sprintf(p[2], "%L,", (int64_t) sub->node.key);
        p[3] = ngx_sprintf(p[3], "%L,", sub->pos);

        sub->reported = sub->pos;
    }

    rp->pool = pool;
    rp->query.stmt = NGX_CHAT_SQL_WS_DELIVERED;
    rp->query.nparams = 4;
    rp->query.handler = ngx_chat_report_result;
    rp->query.data = rp;

    for (i = 0; i < 4; i++) {
        /* the last comma closes the array */
        *(p[i] - 1) = '}';
        *p[i] = '\0';
        rp->query.params[i] = (char *) start[i];
    }

    if (ngx_chat_pg_send(fo->pg, &rp->query) != NGX_OK) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, fo->log, 0,
                   "chat fanout: reporting %ui positions", n);

    fo->reporting = rp;
}


static void
ngx_chat_report_result(ngx_chat_pg_query_t *q, PGresult *res)
{
    ngx_chat_report_t  *rp;

    rp = q->data;
    ngx_chat_fanout.reporting = NULL;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_chat_fanout.log, 0,
                      "chat: reporting delivery positions failed: %s",
                      res ? PQresultErrorMessage(res) : "no database");
    }

    ngx_destroy_pool(rp->pool);
}


/* "text", as an element of a Postgres array literal, and a comma */

static u_char *
ngx_chat_pg_array_string(u_char *p, ngx_str_t *s)
{
    u_char  *c, *last;

    *p++ = '"';

    for (c = s->data, last = s->data + s->len; c < last; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
        }
        *p++ = *c;
    }

    *p++ = '"';
    *p++ = ',';

    return p;
}
