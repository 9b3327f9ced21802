
/*
 * ngx_chat: RFC 6455 framing, the pure part.  Frame headers are parsed and
 * checked here, text is validated as UTF-8 across fragments, and server
 * frame headers are written.  Nothing here reads a socket.
 */


#include "ngx_chat_pure.h"


/*
 * Parses one frame header from the bytes at p.  NGX_AGAIN: more bytes are
 * needed.  NGX_ERROR: *code is the close code the connection ends with.
 */

ngx_int_t
ngx_chat_ws_parse_header(u_char *p, size_t len, size_t max,
    ngx_chat_ws_frame_t *f, ngx_uint_t *code)
{
    size_t    need, i;
    uint64_t  n;

    if (len < 2) {
        return NGX_AGAIN;
    }

    f->fin = p[0] >> 7;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] >> 7;
    n = p[1] & 0x7f;

    /* no extension was negotiated: the reserved bits must be clear */
    if (p[0] & 0x70) {
        *code = NGX_CHAT_WS_PROTOCOL_ERROR;
        return NGX_ERROR;
    }

    switch (f->opcode) {

    case NGX_CHAT_WS_CONT:
    case NGX_CHAT_WS_TEXT:
    case NGX_CHAT_WS_BINARY:
        break;

    case NGX_CHAT_WS_CLOSE:
    case NGX_CHAT_WS_PING:
    case NGX_CHAT_WS_PONG:
        if (!f->fin || n > 125) {
            *code = NGX_CHAT_WS_PROTOCOL_ERROR;
            return NGX_ERROR;
        }
        break;

    default:
        *code = NGX_CHAT_WS_PROTOCOL_ERROR;
        return NGX_ERROR;
    }

    if (!f->masked) {
        *code = NGX_CHAT_WS_PROTOCOL_ERROR;
        return NGX_ERROR;
    }

    need = 2 + (n == 126 ? 2 : n == 127 ? 8 : 0) + 4;

    if (len < need) {
        return NGX_AGAIN;
    }

    if (n == 126) {
        n = (uint64_t) p[2] << 8 | p[3];

        /* the shortest form must be used */
        if (n < 126) {
            *code = NGX_CHAT_WS_PROTOCOL_ERROR;
            return NGX_ERROR;
        }

    } else if (n == 127) {
        if (p[2] & 0x80) {
            *code = NGX_CHAT_WS_PROTOCOL_ERROR;
            return NGX_ERROR;
        }

        n = 0;
        for (i = 2; i < 10; i++) {
            n = n << 8 | p[i];
        }

        if (n <= 0xffff) {
            *code = NGX_CHAT_WS_PROTOCOL_ERROR;
            return NGX_ERROR;
        }
    }

    if (n > max) {
        *code = NGX_CHAT_WS_TOO_BIG;
        return NGX_ERROR;
    }

    ngx_memcpy(f->mask, p + need - 4, 4);
    f->len = (size_t) n;
    f->header_len = need;

    return NGX_OK;
}


/* offset: how many payload bytes of the frame came before p */

void
ngx_chat_ws_unmask(u_char *p, size_t len, u_char *mask, size_t offset)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        p[i] ^= mask[(offset + i) & 3];
    }
}


/*
 * Streaming UTF-8 validation.  The state keeps, for a character cut
 * between frames, how many continuation bytes are still due and the range
 * the next one must fall in (which excludes overlong forms and
 * surrogates).
 */

#define ngx_chat_utf8_state(n, lo, hi)                                        \
    ((uint32_t) (n) << 16 | (lo) << 8 | (hi))

ngx_int_t
ngx_chat_utf8_step(uint32_t *state, u_char *p, size_t len)
{
    u_char    c, lo, hi;
    uint32_t  st, n;

    st = *state;

    for ( /* void */ ; len; len--, p++) {
        c = *p;

        if (st) {
            n = st >> 16;
            lo = (u_char) (st >> 8);
            hi = (u_char) st;

            if (c < lo || c > hi) {
                return NGX_ERROR;
            }

            st = (n > 1) ? ngx_chat_utf8_state(n - 1, 0x80, 0xbf) : 0;
            continue;
        }

        if (c < 0x80) {
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            st = ngx_chat_utf8_state(1, 0x80, 0xbf);

        } else if (c == 0xe0) {
            st = ngx_chat_utf8_state(2, 0xa0, 0xbf);

        } else if (c == 0xed) {
            st = ngx_chat_utf8_state(2, 0x80, 0x9f);

        } else if (c >= 0xe1 && c <= 0xef) {
            st = ngx_chat_utf8_state(2, 0x80, 0xbf);

        } else if (c == 0xf0) {
            st = ngx_chat_utf8_state(3, 0x90, 0xbf);

        } else if (c >= 0xf1 && c <= 0xf3) {
            st = ngx_chat_utf8_state(3, 0x80, 0xbf);

        } else if (c == 0xf4) {
            st = ngx_chat_utf8_state(3, 0x80, 0x8f);

        } else {
            return NGX_ERROR;
        }
    }

    *state = st;

    return NGX_OK;
}


/*
 * A close frame's payload: empty, or a code the peer may send followed by
 * a UTF-8 reason.  Returns the code to answer with, or 0 when it is bad
 * (*bad is then the close code for the fault).
 */

ngx_uint_t
ngx_chat_ws_close_code(u_char *p, size_t len, ngx_uint_t *bad)
{
    uint32_t    st;
    ngx_uint_t  code;

    if (len == 0) {
        return NGX_CHAT_WS_NORMAL;
    }

    if (len == 1) {
        *bad = NGX_CHAT_WS_PROTOCOL_ERROR;
        return 0;
    }

    code = (ngx_uint_t) p[0] << 8 | p[1];

    /*
     * 1004-1006 and 1015 are never sent; 1012-1014 (restart, try again,
     * bad gateway) are registered; the rest below 3000 is reserved
     */
    if (code < 1000 || code == 1004 || code == 1005 || code == 1006
        || (code > 1014 && code < 3000) || code > 4999)
    {
        *bad = NGX_CHAT_WS_PROTOCOL_ERROR;
        return 0;
    }

    st = 0;

    if (ngx_chat_utf8_step(&st, p + 2, len - 2) != NGX_OK || st != 0) {
        *bad = NGX_CHAT_WS_BAD_DATA;
        return 0;
    }

    return code;
}


/* a server frame header (never masked); returns its end */

u_char *
ngx_chat_ws_frame_header(u_char *p, ngx_uint_t opcode, size_t len)
{
    int  i;

    *p++ = (u_char) (0x80 | opcode);

    if (len < 126) {
        *p++ = (u_char) len;

    } else if (len <= 0xffff) {
        *p++ = 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = 127;

        for (i = 56; i >= 0; i -= 8) {
            *p++ = (u_char) ((uint64_t) len >> i);
        }
    }

    return p;
}


/*
 * The reader: what a client sends, read in pieces of any size, becomes
 * whole messages and control frames, handed to rd->handler in order.  An
 * incomplete frame waits in a buffer of its own that holds the whole frame
 * once its header is known, and is read into by the caller: a frame sent
 * a byte at a time costs a copy of each byte, not one of the whole frame so
 * far per piece.  Fragments gather in a doubling buffer.  After a fault
 * (rd->done) nothing more is parsed: bytes are only let drain (RFC 6455
 * 7.1.7).
 */

static void ngx_chat_ws_read_frame(ngx_chat_ws_reader_t *rd,
    ngx_chat_ws_frame_t *f, u_char *payload);
static void ngx_chat_ws_read_data(ngx_chat_ws_reader_t *rd,
    ngx_chat_ws_frame_t *f, u_char *payload);
static void ngx_chat_ws_read_fail(ngx_chat_ws_reader_t *rd, ngx_uint_t code,
    const char *reason);
static void ngx_chat_ws_read_emit(ngx_chat_ws_reader_t *rd, ngx_uint_t what,
    u_char *data, size_t len, ngx_uint_t code);
static void ngx_chat_ws_message_free(ngx_chat_ws_reader_t *rd);


/* every complete frame in buf is handled; returns the bytes it used */

size_t
ngx_chat_ws_read(ngx_chat_ws_reader_t *rd, u_char *buf, size_t len)
{
    u_char               *p, *last;
    ngx_int_t             rc;
    ngx_uint_t            code;
    ngx_chat_ws_frame_t   f;

    p = buf;
    last = buf + len;

    while (p < last && !rd->done) {
        rc = ngx_chat_ws_parse_header(p, last - p, rd->max, &f, &code);

        if (rc == NGX_AGAIN) {
            return p - buf;
        }

        if (rc == NGX_ERROR) {
            ngx_chat_ws_read_fail(rd, code, "bad frame");
            break;
        }

        if ((size_t) (last - p) < f.header_len + f.len) {
            return p - buf;
        }

        p += f.header_len;
        ngx_chat_ws_unmask(p, f.len, f.mask, 0);
        ngx_chat_ws_read_frame(rd, &f, p);
        p += f.len;
    }

    /* a failed or closed connection reads on only to let the socket drain */
    return rd->done ? len : (size_t) (p - buf);
}


/*
 * The bytes of an incomplete frame, kept in the frame's own buffer: the
 * header gives its size, a header not yet whole gets room for the longest
 * one.  p may point into that buffer.  Bytes no read has seen yet (those
 * that came with the handshake) may hold several frames, or a bad header:
 * they are kept as they are, for ngx_chat_ws_feed() to report.  NGX_ERROR:
 * no memory, or a frame larger than rd->frame_max.
 */

ngx_int_t
ngx_chat_ws_keep(ngx_chat_ws_reader_t *rd, u_char *p, size_t len)
{
    u_char               *buf;
    size_t                need;
    ngx_int_t             rc;
    ngx_uint_t            code;
    ngx_chat_ws_frame_t   f;

    if (len == 0 || rd->done) {
        free(rd->partial);
        rd->partial = NULL;
        rd->partial_len = 0;
        rd->partial_size = 0;
        return NGX_OK;
    }

    rc = ngx_chat_ws_parse_header(p, len, rd->max, &f, &code);

    /* a bad header is kept whole: fed, it fails with its code */
    need = (rc == NGX_OK) ? f.header_len + f.len
         : (rc == NGX_AGAIN) ? NGX_CHAT_WS_CLIENT_HEADER_MAX
         : len;
    need = ngx_max(need, len);

    if (need > rd->frame_max) {
        return NGX_ERROR;
    }

    if (rd->partial_size >= need) {
        memmove(rd->partial, p, len);
        rd->partial_len = len;
        return NGX_OK;
    }

    buf = malloc(need);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, p, len);
    free(rd->partial);

    rd->partial = buf;
    rd->partial_len = len;
    rd->partial_size = need;

    return NGX_OK;
}


/* buf holds have bytes (it may be rd->partial): frames, then the rest kept */

ngx_int_t
ngx_chat_ws_feed(ngx_chat_ws_reader_t *rd, u_char *buf, size_t have)
{
    size_t  used;

    used = ngx_chat_ws_read(rd, buf, have);

    return ngx_chat_ws_keep(rd, buf + used, have - used);
}


void
ngx_chat_ws_reader_free(ngx_chat_ws_reader_t *rd)
{
    free(rd->partial);
    rd->partial = NULL;
    rd->partial_len = 0;
    rd->partial_size = 0;

    ngx_chat_ws_message_free(rd);
}


static void
ngx_chat_ws_read_frame(ngx_chat_ws_reader_t *rd, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    ngx_uint_t  code, bad;

    switch (f->opcode) {

    case NGX_CHAT_WS_PING:
        ngx_chat_ws_read_emit(rd, NGX_CHAT_WS_READ_PING, payload, f->len, 0);
        return;

    case NGX_CHAT_WS_PONG:
        ngx_chat_ws_read_emit(rd, NGX_CHAT_WS_READ_PONG, payload, f->len, 0);
        return;

    case NGX_CHAT_WS_CLOSE:
        code = ngx_chat_ws_close_code(payload, f->len, &bad);

        if (code == 0) {
            ngx_chat_ws_read_fail(rd, bad, "bad close frame");
            return;
        }

        /* an empty close frame is answered by an empty one */
        rd->done = 1;
        ngx_chat_ws_read_emit(rd, NGX_CHAT_WS_READ_CLOSE, NULL, 0,
                              f->len ? code : 0);
        return;

    default:
        ngx_chat_ws_read_data(rd, f, payload);
    }
}


/* text messages, whole or in fragments, checked as UTF-8 as they come */

static void
ngx_chat_ws_read_data(ngx_chat_ws_reader_t *rd, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    u_char  *p;
    size_t   size;

    if (f->opcode == NGX_CHAT_WS_BINARY) {
        ngx_chat_ws_read_fail(rd, NGX_CHAT_WS_UNSUPPORTED,
                              "only text messages are accepted");
        return;
    }

    if ((f->opcode == NGX_CHAT_WS_TEXT) == rd->in_message) {
        ngx_chat_ws_read_fail(rd, NGX_CHAT_WS_PROTOCOL_ERROR,
                              rd->in_message ? "a message is unfinished"
                                             : "nothing to continue");
        return;
    }

    if (f->opcode == NGX_CHAT_WS_TEXT) {
        rd->utf8 = 0;
    }

    if (ngx_chat_utf8_step(&rd->utf8, payload, f->len) != NGX_OK
        || (f->fin && rd->utf8 != 0))
    {
        ngx_chat_ws_read_fail(rd, NGX_CHAT_WS_BAD_DATA, "invalid UTF-8");
        return;
    }

    if (f->fin && !rd->in_message) {
        ngx_chat_ws_read_emit(rd, NGX_CHAT_WS_READ_MESSAGE, payload, f->len,
                              0);
        return;
    }

    if (rd->message_len + f->len > rd->max) {
        ngx_chat_ws_read_fail(rd, NGX_CHAT_WS_TOO_BIG, "message too big");
        return;
    }

    if (rd->message_len + f->len > rd->message_size) {

        /* doubling: many small fragments cost each byte a few copies */

        size = ngx_max(rd->message_len + f->len, 2 * rd->message_size);
        size = ngx_min(ngx_max(size, 4096), rd->max);

        p = malloc(size);
        if (p == NULL) {
            ngx_chat_ws_read_fail(rd, NGX_CHAT_WS_SERVER_ERROR,
                                  "out of memory");
            return;
        }

        if (rd->message) {
            ngx_memcpy(p, rd->message, rd->message_len);
            free(rd->message);
        }

        rd->message = p;
        rd->message_size = size;
    }

    /* an empty first fragment leaves rd->message NULL: nothing to copy */
    if (f->len) {
        ngx_memcpy(rd->message + rd->message_len, payload, f->len);
        rd->message_len += f->len;
    }

    rd->in_message = 1;

    if (!f->fin) {
        return;
    }

    /* fragments all empty left no buffer: data is not NULL all the same */
    ngx_chat_ws_read_emit(rd, NGX_CHAT_WS_READ_MESSAGE,
                          rd->message ? rd->message : payload,
                          rd->message_len, 0);
    ngx_chat_ws_message_free(rd);
}


static void
ngx_chat_ws_read_fail(ngx_chat_ws_reader_t *rd, ngx_uint_t code,
    const char *reason)
{
    ngx_chat_ws_read_t  ev;

    rd->done = 1;
    ngx_chat_ws_message_free(rd);

    ev.what = NGX_CHAT_WS_READ_FAIL;
    ev.data = NULL;
    ev.len = 0;
    ev.code = code;
    ev.reason = reason;

    rd->handler(rd->data, &ev);
}


static void
ngx_chat_ws_read_emit(ngx_chat_ws_reader_t *rd, ngx_uint_t what,
    u_char *data, size_t len, ngx_uint_t code)
{
    ngx_chat_ws_read_t  ev;

    ev.what = what;
    ev.data = data;
    ev.len = len;
    ev.code = code;
    ev.reason = NULL;

    rd->handler(rd->data, &ev);
}


static void
ngx_chat_ws_message_free(ngx_chat_ws_reader_t *rd)
{
    free(rd->message);
    rd->message = NULL;
    rd->message_len = 0;
    rd->message_size = 0;
    rd->in_message = 0;
}
