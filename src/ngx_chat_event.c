
/*
 * ngx_chat: events as they go out.  An event is one WebSocket frame, made
 * once when it arrives (from Redis, Postgres or the module itself) and
 * shared by reference by every connection that sends it: a message to a
 * channel of 10,000 members is framed once, not 10,000 times.
 *
 * Events carry what the fan-out needs to order them: the conversation,
 * the seq (0 for ephemeral ones: typing, receipts, presence), and for a
 * member event the user it concerns.
 */


#include "ngx_chat.h"


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
ngx_chat_event_control(ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_chat_event_t  *ev;

    ev = ngx_chat_event_create(data, len, 0);
    if (ev) {
        ev->frame[0] = (u_char) (0x80 | opcode);
    }

    return ev;
}


/*
 * "<seq>[ +user| -user| !user]\n<event>", as Redis and Postgres carry it:
 * '+' and '-' name the member a member event adds or removes, '!' the
 * user whose own connections skip the event (a typist).
 */

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


/* the event names this user: it adds or removes it, or it is its own */

ngx_uint_t
ngx_chat_event_concerns(ngx_chat_event_t *ev, u_char op, ngx_str_t *user)
{
    return ev->op == op && ev->subject.len == user->len
           && ngx_strncmp(ev->subject.data, user->data, user->len) == 0;
}


void
ngx_chat_event_release(ngx_chat_event_t *ev)
{
    if (--ev->refs == 0) {
        ngx_free(ev);
    }
}
