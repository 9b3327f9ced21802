
/*
 * ngx_chat: typing.  A signal on the conversation's channel, never
 * stored, marked so that the typist's own connections skip it.  The
 * worker that heard "typing" ends it itself after NGX_CHAT_TYPING_EXPIRE
 * of silence; the workers of a host share each user's typing through the
 * presence zone, so that a worker whose timer ends first asks whether
 * another one heard the user since.
 */


#include "ngx_chat.h"


typedef struct {
    ngx_rbtree_node_t            node;
    ngx_event_t                  expire;
    int64_t                      conversation;
    ngx_msec_t                   sent;
    ngx_str_t                    tenant;
    ngx_str_t                    user;
} ngx_chat_typing_t;


static void ngx_chat_typing_publish(ngx_str_t *tenant, ngx_str_t *user,
    int64_t conversation, ngx_uint_t on);
static void ngx_chat_typing_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_chat_typing_t *ngx_chat_typing_find(uint32_t hash,
    int64_t conversation, ngx_str_t *tenant, ngx_str_t *user);
static void ngx_chat_typing_expire(ngx_event_t *ev);
static void ngx_chat_typing_free(ngx_chat_typing_t *t);


static ngx_rbtree_t              ngx_chat_typing_tree;
static ngx_rbtree_node_t         ngx_chat_typing_sentinel;
static ngx_uint_t                ngx_chat_typing_ready;


/* typing goes through Redis: it works with or without a presence zone */

void
ngx_chat_typing_init(void)
{
    ngx_rbtree_init(&ngx_chat_typing_tree, &ngx_chat_typing_sentinel,
                    ngx_chat_typing_insert);
    ngx_chat_typing_ready = 1;
}


void
ngx_chat_typing_done(void)
{
    if (!ngx_chat_typing_ready) {
        return;
    }

    while (ngx_chat_typing_tree.root != ngx_chat_typing_tree.sentinel) {
        ngx_chat_typing_free((ngx_chat_typing_t *) ngx_chat_typing_tree.root);
    }
}


/* at most NGX_CHAT_TYPING_RATE typing signals a second from one user */

ngx_int_t
ngx_chat_typing_allowed(ngx_chat_identity_t *id)
{
    return ngx_chat_presence_typing_rate(id);
}


/*
 * Typing: the signal goes to the conversation's channel, marked so that
 * the typist's own connections skip it; "typing" that is not repeated
 * within NGX_CHAT_TYPING_EXPIRE ends by itself.
 */

void
ngx_chat_typing_set(ngx_chat_identity_t *id, int64_t conversation,
    ngx_uint_t on)
{
    uint32_t            hash;
    ngx_msec_t          left;
    ngx_chat_typing_t  *t;

    ngx_crc32_init(hash);
    ngx_crc32_update(&hash, (u_char *) &conversation, sizeof(int64_t));
    ngx_crc32_update(&hash, id->tenant.data, id->tenant.len);
    ngx_crc32_update(&hash, id->user.data, id->user.len);
    ngx_crc32_final(hash);

    if (!ngx_chat_typing_ready) {
        /* no chat_redis: no one to tell */
        return;
    }

    t = ngx_chat_typing_find(hash, conversation, &id->tenant, &id->user);

    if (!on) {
        if (t) {
            ngx_chat_typing_free(t);
        }

        (void) ngx_chat_presence_typing(&id->tenant, &id->user, conversation,
                                     NGX_CHAT_TYPING_STOP, &left);
        ngx_chat_typing_publish(&id->tenant, &id->user, conversation, 0);
        return;
    }

    if (t == NULL) {
        t = ngx_calloc(sizeof(ngx_chat_typing_t) + id->tenant.len
                       + id->user.len, ngx_cycle->log);
        if (t == NULL) {
            return;
        }

        t->node.key = hash;
        t->conversation = conversation;
        t->tenant.data = (u_char *) (t + 1);
        t->tenant.len = id->tenant.len;
        t->user.data = t->tenant.data + id->tenant.len;
        t->user.len = id->user.len;
        ngx_memcpy(t->tenant.data, id->tenant.data, id->tenant.len);
        ngx_memcpy(t->user.data, id->user.data, id->user.len);

        t->expire.handler = ngx_chat_typing_expire;
        t->expire.data = t;
        t->expire.log = ngx_cycle->log;
        t->expire.cancelable = 1;

        ngx_rbtree_insert(&ngx_chat_typing_tree, &t->node);
    }

    /* those who came in late learn it when it is repeated */
    if (ngx_chat_presence_typing(&t->tenant, &t->user, conversation,
                              NGX_CHAT_TYPING_START, &left)
        == NGX_OK)
    {
        ngx_chat_typing_publish(&t->tenant, &t->user, conversation, 1);
    }

    ngx_add_timer(&t->expire, NGX_CHAT_TYPING_EXPIRE);
}


/* equal hashes are ordered by conversation, then tenant and user bytes */

static ngx_int_t
ngx_chat_typing_cmp(int64_t conversation, ngx_str_t *tenant,
    ngx_str_t *user, ngx_chat_typing_t *t)
{
    ngx_int_t  rc;

    if (conversation != t->conversation) {
        return (conversation < t->conversation) ? -1 : 1;
    }

    if (tenant->len != t->tenant.len || user->len != t->user.len) {
        return (tenant->len != t->tenant.len)
               ? (ngx_int_t) tenant->len - (ngx_int_t) t->tenant.len
               : (ngx_int_t) user->len - (ngx_int_t) t->user.len;
    }

    rc = ngx_memcmp(tenant->data, t->tenant.data, tenant->len);

    return rc ? rc : ngx_memcmp(user->data, t->user.data, user->len);
}


static void
ngx_chat_typing_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;
    ngx_chat_typing_t   *t;

    t = (ngx_chat_typing_t *) node;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (ngx_chat_typing_cmp(t->conversation, &t->tenant, &t->user,
                                     (ngx_chat_typing_t *) temp)
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


static ngx_chat_typing_t *
ngx_chat_typing_find(uint32_t hash, int64_t conversation, ngx_str_t *tenant,
    ngx_str_t *user)
{
    ngx_int_t           rc;
    ngx_rbtree_node_t  *node, *sentinel;

    node = ngx_chat_typing_tree.root;
    sentinel = ngx_chat_typing_tree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        rc = ngx_chat_typing_cmp(conversation, tenant, user,
                                 (ngx_chat_typing_t *) node);

        if (rc == 0) {
            return (ngx_chat_typing_t *) node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_chat_typing_expire(ngx_event_t *ev)
{
    ngx_int_t           rc;
    ngx_msec_t          left;
    ngx_chat_typing_t  *t = ev->data;

    rc = ngx_chat_presence_typing(&t->tenant, &t->user, t->conversation,
                               NGX_CHAT_TYPING_END, &left);

    if (rc == NGX_AGAIN) {
        /* typed again through another worker */
        ngx_add_timer(&t->expire, left);
        return;
    }

    if (rc == NGX_OK) {
        ngx_chat_typing_publish(&t->tenant, &t->user, t->conversation, 0);
    }

    ngx_chat_typing_free(t);
}


static void
ngx_chat_typing_free(ngx_chat_typing_t *t)
{
    if (t->expire.timer_set) {
        ngx_del_timer(&t->expire);
    }

    ngx_rbtree_delete(&ngx_chat_typing_tree, &t->node);
    ngx_free(t);
}


/* "0 !<user>\n{typing}": no seq, not for the typist's own connections */

static void
ngx_chat_typing_publish(ngx_str_t *tenant, ngx_str_t *user,
    int64_t conversation, ngx_uint_t on)
{
    u_char  *p, *msg, channel[NGX_INT64_LEN + 3];
    size_t   len;

    len = sizeof("0 !\n{\"type\":\"typing\",\"conversation_id\":,"
                 "\"user_id\":\"\",\"is_typing\":false}")
          + user->len + NGX_INT64_LEN
          + ngx_chat_json_escape_len(user->data, user->len);

    msg = ngx_alloc(len, ngx_cycle->log);
    if (msg == NULL) {
        return;
    }

    p = ngx_sprintf(msg, "0 !%V\n{\"type\":\"typing\",\"conversation_id\":%L,"
                         "\"user_id\":\"", user, conversation);
    p = ngx_chat_json_escape(p, user->data, user->len);
    p = ngx_sprintf(p, "\",\"is_typing\":%s}", on ? "true" : "false");

    ngx_chat_redis_publish(channel,
                           ngx_sprintf(channel, "c:%L", conversation)
                           - channel,
                           msg, p - msg);
    ngx_free(msg);
}
