
/*
 * RFC 6455 framing, as the transport reads it (src/ngx_chat_ws.c): the
 * input is what a client sends, read into a buffer in pieces; every frame
 * header is parsed, every payload unmasked, and text messages are followed
 * through their fragments with the UTF-8 state, exactly as
 * ngx_chat_ws_data() does.  Each function of the framing is checked
 * against a reference written from the RFC and Unicode's table 3-7:
 *
 *   ngx_chat_ws_parse_header  reads only len bytes (every prefix of the
 *                             header is parsed again from a block that
 *                             ends with it), answers NGX_AGAIN only for
 *                             a prefix, fails only with 1002 or 1009, and
 *                             agrees with a reference parser
 *   ngx_chat_ws_unmask        in two pieces equals one piece, equals XOR
 *   ngx_chat_utf8_step        in two pieces equals one piece; refuses
 *                             exactly the messages that are no prefix of
 *                             valid UTF-8; its state is open exactly when
 *                             a character is cut; whole messages are valid
 *   ngx_chat_ws_close_code    agrees with a reference
 *   ngx_chat_ws_frame_header  reads back through parse_header, for the
 *                             messages and for every length a header holds
 *
 * Input: a byte for the size of the reads (0: all at once), a byte for
 * where payloads are split, then the bytes from the client.  The stream
 * is read twice, all at once and in pieces, and must end the same.
 */


#include "ngx_chat_fuzz.h"


#define NGX_CHAT_FUZZ_WS_MAX         4096

/* as ngx_chat_ws_init(): a whole frame fits, with room for what follows */
#define NGX_CHAT_FUZZ_WS_RBUF        65536

/* a client header's longest form: 2 bytes, a 64-bit length, a mask */
#define NGX_CHAT_FUZZ_WS_HEADER      14


typedef struct {
    u_char                       message[NGX_CHAT_FUZZ_WS_MAX];
    size_t                       message_len;

    /* every byte of the current text message, refused ones too */
    u_char                       seen[2 * NGX_CHAT_FUZZ_WS_MAX];
    size_t                       seen_len;

    uint32_t                     utf8;
    ngx_uint_t                   code;       /* the close code sent */
    ngx_uint_t                   frames;
    ngx_uint_t                   messages;
    uint32_t                     digest;     /* of the messages */
    u_char                       split;

    unsigned                     in_message:1;
    unsigned                     closing:1;
    unsigned                     close_received:1;
    unsigned                     failed:1;   /* a bad frame header */
} ngx_chat_fuzz_ws_t;


static void ngx_chat_fuzz_ws_read(ngx_chat_fuzz_ws_t *ws, const u_char *in,
    size_t len, size_t chunk);
static size_t ngx_chat_fuzz_ws_frames(ngx_chat_fuzz_ws_t *ws, u_char *buf,
    size_t len);
static ngx_int_t ngx_chat_fuzz_ws_parse(u_char *p, size_t len,
    ngx_chat_ws_frame_t *f, ngx_uint_t *code);
static ngx_int_t ngx_chat_fuzz_ws_ref_parse(const u_char *p, size_t len,
    size_t max, ngx_chat_ws_frame_t *f, ngx_uint_t *code, uint64_t *raw);
static void ngx_chat_fuzz_ws_unmask(ngx_chat_fuzz_ws_t *ws, u_char *p,
    size_t len, u_char *mask);
static void ngx_chat_fuzz_ws_frame(ngx_chat_fuzz_ws_t *ws,
    ngx_chat_ws_frame_t *f, u_char *payload);
static void ngx_chat_fuzz_ws_data(ngx_chat_fuzz_ws_t *ws,
    ngx_chat_ws_frame_t *f, u_char *payload);
static ngx_int_t ngx_chat_fuzz_ws_step(ngx_chat_fuzz_ws_t *ws, u_char *p,
    size_t len);
static void ngx_chat_fuzz_ws_message(ngx_chat_fuzz_ws_t *ws, u_char *p,
    size_t len);
static void ngx_chat_fuzz_ws_close(ngx_chat_fuzz_ws_t *ws, ngx_uint_t code);
static ngx_uint_t ngx_chat_fuzz_ws_close_code(u_char *p, size_t len,
    ngx_uint_t *bad);
static void ngx_chat_fuzz_ws_round_trip(uint64_t len);


/* the two runs, static: a run holds some 12 KB */
static ngx_chat_fuzz_ws_t  ngx_chat_fuzz_ws_runs[2];
static u_char              ngx_chat_fuzz_ws_rbuf[NGX_CHAT_FUZZ_WS_RBUF];


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_chat_fuzz_ws_t  *all, *pieces;

    if (size < 2) {
        return 0;
    }

    all = &ngx_chat_fuzz_ws_runs[0];
    pieces = &ngx_chat_fuzz_ws_runs[1];

    ngx_memzero(all, sizeof(ngx_chat_fuzz_ws_t));
    ngx_memzero(pieces, sizeof(ngx_chat_fuzz_ws_t));

    all->split = data[1];
    pieces->split = data[1];

    ngx_chat_fuzz_ws_read(all, data + 2, size - 2, size - 2);
    ngx_chat_fuzz_ws_read(pieces, data + 2, size - 2,
                          data[0] ? data[0] : size - 2);

    /* how the bytes arrive changes nothing */
    ngx_chat_fuzz_assert(all->frames == pieces->frames);
    ngx_chat_fuzz_assert(all->messages == pieces->messages);
    ngx_chat_fuzz_assert(all->digest == pieces->digest);
    ngx_chat_fuzz_assert(all->code == pieces->code);
    ngx_chat_fuzz_assert(all->failed == pieces->failed);
    ngx_chat_fuzz_assert(all->closing == pieces->closing);
    ngx_chat_fuzz_assert(all->close_received == pieces->close_received);
    ngx_chat_fuzz_assert(all->in_message == pieces->in_message);
    ngx_chat_fuzz_assert(all->message_len == pieces->message_len);

    return 0;
}


/*
 * ngx_chat_ws_read_handler(): each read appends to what is left of the
 * last one, and the complete frames are handled.  A frame that failed the
 * connection ends the reading: nothing after it is the client's data.
 */

static void
ngx_chat_fuzz_ws_read(ngx_chat_fuzz_ws_t *ws, const u_char *in, size_t len,
    size_t chunk)
{
    u_char  *rbuf;
    size_t   have, n, used;

    rbuf = ngx_chat_fuzz_ws_rbuf;
    have = 0;

    while (len && !ws->failed && !ws->close_received) {

        /* what is kept is a frame not complete yet: it leaves room */
        ngx_chat_fuzz_assert(have
                             < NGX_CHAT_FUZZ_WS_HEADER + NGX_CHAT_FUZZ_WS_MAX);

        n = ngx_min(chunk, len);
        n = ngx_min(n, NGX_CHAT_FUZZ_WS_RBUF - have);

        ngx_memcpy(rbuf + have, in, n);
        in += n;
        len -= n;
        have += n;

        used = ngx_chat_fuzz_ws_frames(ws, rbuf, have);
        ngx_chat_fuzz_assert(used <= have);

        ngx_memmove(rbuf, rbuf + used, have - used);
        have -= used;
    }
}


/* ngx_chat_ws_frames(): every complete frame in buf */

static size_t
ngx_chat_fuzz_ws_frames(ngx_chat_fuzz_ws_t *ws, u_char *buf, size_t len)
{
    u_char               *p, *last;
    ngx_int_t             rc;
    ngx_uint_t            code;
    ngx_chat_ws_frame_t   f;

    p = buf;
    last = buf + len;

    while (p < last) {
        rc = ngx_chat_fuzz_ws_parse(p, last - p, &f, &code);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_chat_fuzz_ws_close(ws, code);
            ws->failed = 1;
            return len;
        }

        if ((size_t) (last - p) < f.header_len + f.len) {
            break;
        }

        p += f.header_len;
        ngx_chat_fuzz_ws_unmask(ws, p, f.len, f.mask);
        ngx_chat_fuzz_ws_frame(ws, &f, p);
        p += f.len;

        ws->frames++;

        if (ws->close_received) {
            return len;
        }
    }

    return p - buf;
}


/*
 * parse_header on the buffer, against the reference; and on every prefix
 * of the header, each at the end of a block of 14 bytes, so that a read
 * past the prefix is an AddressSanitizer error.
 */

static ngx_int_t
ngx_chat_fuzz_ws_parse(u_char *p, size_t len, ngx_chat_ws_frame_t *f,
    ngx_uint_t *code)
{
    u_char               *block, *q;
    size_t                k, n;
    uint64_t              raw;
    ngx_int_t             rc, ref, rc_k;
    ngx_uint_t            ref_code, code_k;
    ngx_chat_ws_frame_t   rf, fk;

    *code = 0;
    rc = ngx_chat_ws_parse_header(p, len, NGX_CHAT_FUZZ_WS_MAX, f, code);

    ref_code = 0;
    raw = 0;
    ref = ngx_chat_fuzz_ws_ref_parse(p, len, NGX_CHAT_FUZZ_WS_MAX, &rf,
                                     &ref_code, &raw);

    ngx_chat_fuzz_assert(rc == ref);

    if (rc == NGX_ERROR) {
        ngx_chat_fuzz_assert(*code == NGX_CHAT_WS_PROTOCOL_ERROR
                             || *code == NGX_CHAT_WS_TOO_BIG);
        ngx_chat_fuzz_assert(*code == ref_code);
    }

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(f->header_len <= len);
        ngx_chat_fuzz_assert(f->header_len == rf.header_len);
        ngx_chat_fuzz_assert(f->len == rf.len);
        ngx_chat_fuzz_assert(f->len <= NGX_CHAT_FUZZ_WS_MAX);
        ngx_chat_fuzz_assert(f->fin == rf.fin);
        ngx_chat_fuzz_assert(f->opcode == rf.opcode);
        ngx_chat_fuzz_assert(f->masked == 1);
        ngx_chat_fuzz_assert(ngx_memcmp(f->mask, rf.mask, 4) == 0);
    }

    /* a length the header holds, whatever the max, as a server writes it */
    if (raw) {
        ngx_chat_fuzz_ws_round_trip(raw);
    }

    n = ngx_min(len, NGX_CHAT_FUZZ_WS_HEADER);

    block = malloc(NGX_CHAT_FUZZ_WS_HEADER);
    ngx_chat_fuzz_assert(block != NULL);

    for (k = 0; k <= n; k++) {
        q = block + NGX_CHAT_FUZZ_WS_HEADER - k;
        ngx_memcpy(q, p, k);

        code_k = 0;
        rc_k = ngx_chat_ws_parse_header(q, k, NGX_CHAT_FUZZ_WS_MAX, &fk,
                                        &code_k);

        if (k == n) {
            /* no header is longer: what follows it changes nothing */
            ngx_chat_fuzz_assert(rc_k == rc);

        } else if (rc == NGX_OK) {
            ngx_chat_fuzz_assert(rc_k
                                 == (k < f->header_len ? NGX_AGAIN : NGX_OK));

        } else if (rc == NGX_AGAIN) {
            ngx_chat_fuzz_assert(rc_k == NGX_AGAIN);

        } else {
            ngx_chat_fuzz_assert(rc_k == NGX_AGAIN || rc_k == NGX_ERROR);
        }

        if (rc_k == NGX_ERROR) {
            ngx_chat_fuzz_assert(code_k == *code);
        }

        if (rc_k == NGX_OK) {
            ngx_chat_fuzz_assert(fk.header_len == f->header_len);
            ngx_chat_fuzz_assert(fk.len == f->len);
        }
    }

    free(block);

    return rc;
}


/*
 * RFC 6455 5.2, for a server that negotiated no extension: *raw is the
 * length in the 16 or 64-bit form when the header has it.
 */

static ngx_int_t
ngx_chat_fuzz_ws_ref_parse(const u_char *p, size_t len, size_t max,
    ngx_chat_ws_frame_t *f, ngx_uint_t *code, uint64_t *raw)
{
    size_t      ext, i;
    uint64_t    n;
    ngx_uint_t  fin, rsv, op, masked, control, known;

    if (len < 2) {
        return NGX_AGAIN;
    }

    fin = (p[0] & 0x80) != 0;
    rsv = p[0] & 0x70;
    op = p[0] & 0x0f;
    masked = (p[1] & 0x80) != 0;
    n = p[1] & 0x7f;

    control = (op & 0x08) != 0;
    known = (op <= 0x2) || (op >= 0x8 && op <= 0xa);

    if (rsv || !known || !masked || (control && (!fin || n > 125))) {
        *code = NGX_CHAT_WS_PROTOCOL_ERROR;
        return NGX_ERROR;
    }

    ext = (n == 126) ? 2 : (n == 127) ? 8 : 0;

    if (len < 2 + ext + 4) {
        return NGX_AGAIN;
    }

    if (ext) {
        n = 0;

        for (i = 0; i < ext; i++) {
            n = n * 256 + p[2 + i];
        }

        /* the shortest form; 63 bits */
        if ((ext == 2 && n < 126)
            || (ext == 8 && (n < 65536 || n > 0x7fffffffffffffffULL)))
        {
            *code = NGX_CHAT_WS_PROTOCOL_ERROR;
            return NGX_ERROR;
        }

        *raw = n;
    }

    if (n > max) {
        *code = NGX_CHAT_WS_TOO_BIG;
        return NGX_ERROR;
    }

    f->fin = fin;
    f->opcode = op;
    f->masked = 1;
    f->len = (size_t) n;
    f->header_len = 2 + ext + 4;
    ngx_memcpy(f->mask, p + 2 + ext, 4);

    return NGX_OK;
}


/* in two pieces, split where the input says, equals one piece and XOR */

static void
ngx_chat_fuzz_ws_unmask(ngx_chat_fuzz_ws_t *ws, u_char *p, size_t len,
    u_char *mask)
{
    size_t  i, k;
    u_char  one[NGX_CHAT_FUZZ_WS_MAX];

    ngx_chat_fuzz_assert(len <= NGX_CHAT_FUZZ_WS_MAX);

    ngx_memcpy(one, p, len);
    ngx_chat_ws_unmask(one, len, mask, 0);

    for (i = 0; i < len; i++) {
        ngx_chat_fuzz_assert(one[i] == (p[i] ^ mask[i % 4]));
    }

    k = ws->split % (len + 1);

    ngx_chat_ws_unmask(p, k, mask, 0);
    ngx_chat_ws_unmask(p + k, len - k, mask, k);

    ngx_chat_fuzz_assert(ngx_memcmp(p, one, len) == 0);
}


/* ngx_chat_ws_frame() */

static void
ngx_chat_fuzz_ws_frame(ngx_chat_fuzz_ws_t *ws, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    ngx_uint_t  code, bad;

    switch (f->opcode) {

    case NGX_CHAT_WS_PING:
        ngx_chat_fuzz_assert(f->len <= 125);
        return;

    case NGX_CHAT_WS_PONG:
        return;

    case NGX_CHAT_WS_CLOSE:
        code = ngx_chat_fuzz_ws_close_code(payload, f->len, &bad);

        if (code == 0) {
            ngx_chat_fuzz_ws_close(ws, bad);

        } else if (!ws->closing) {
            /* the answer echoes the code */
            ws->code = code;
            ws->closing = 1;
        }

        ws->close_received = 1;
        return;

    default:
        if (!ws->closing) {
            ngx_chat_fuzz_ws_data(ws, f, payload);
        }
    }
}


/* ngx_chat_ws_data(), step by step */

static void
ngx_chat_fuzz_ws_data(ngx_chat_fuzz_ws_t *ws, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    if (f->opcode == NGX_CHAT_WS_BINARY) {
        ngx_chat_fuzz_ws_close(ws, NGX_CHAT_WS_UNSUPPORTED);
        return;
    }

    if ((f->opcode == NGX_CHAT_WS_TEXT) == ws->in_message) {
        ngx_chat_fuzz_ws_close(ws, NGX_CHAT_WS_PROTOCOL_ERROR);
        return;
    }

    if (f->opcode == NGX_CHAT_WS_TEXT) {
        ws->utf8 = 0;
        ws->seen_len = 0;
    }

    if (ngx_chat_fuzz_ws_step(ws, payload, f->len) != NGX_OK
        || (f->fin && ws->utf8 != 0))
    {
        ngx_chat_fuzz_ws_close(ws, NGX_CHAT_WS_BAD_DATA);
        return;
    }

    if (f->fin && !ws->in_message) {
        ngx_chat_fuzz_ws_message(ws, payload, f->len);
        return;
    }

    if (ws->message_len + f->len > NGX_CHAT_FUZZ_WS_MAX) {
        ngx_chat_fuzz_ws_close(ws, NGX_CHAT_WS_TOO_BIG);
        return;
    }

    ngx_memcpy(ws->message + ws->message_len, payload, f->len);
    ws->message_len += f->len;
    ws->in_message = 1;

    if (!f->fin) {
        return;
    }

    ngx_chat_fuzz_ws_message(ws, ws->message, ws->message_len);

    ws->message_len = 0;
    ws->in_message = 0;
}


/*
 * utf8_step over one payload, in one call and in two: the same answer,
 * and the one the reference gives for the message so far.
 */

static ngx_int_t
ngx_chat_fuzz_ws_step(ngx_chat_fuzz_ws_t *ws, u_char *p, size_t len)
{
    size_t     k;
    uint32_t   one, two;
    ngx_int_t  rc, rc2, ref;

    ngx_chat_fuzz_assert(ws->seen_len + len <= sizeof(ws->seen));

    ngx_memcpy(ws->seen + ws->seen_len, p, len);
    ws->seen_len += len;

    one = ws->utf8;
    rc = ngx_chat_utf8_step(&one, p, len);

    k = ws->split % (len + 1);
    two = ws->utf8;
    rc2 = ngx_chat_utf8_step(&two, p, k);

    if (rc2 == NGX_OK) {
        rc2 = ngx_chat_utf8_step(&two, p + k, len - k);
    }

    ngx_chat_fuzz_assert(rc == rc2);

    ref = ngx_chat_fuzz_utf8_prefix(ws->seen, ws->seen_len);

    ngx_chat_fuzz_assert((rc == NGX_ERROR) == (ref == NGX_ERROR));

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(one == two);
        ngx_chat_fuzz_assert((one != 0) == (ref == NGX_AGAIN));
        ws->utf8 = one;
    }

    return rc;
}


/* a whole text message, as ngx_chat_session_message() gets it */

static void
ngx_chat_fuzz_ws_message(ngx_chat_fuzz_ws_t *ws, u_char *p, size_t len)
{
    size_t  i;

    ngx_chat_fuzz_assert(len <= NGX_CHAT_FUZZ_WS_MAX);
    ngx_chat_fuzz_assert(len == ws->seen_len);
    ngx_chat_fuzz_assert(ngx_memcmp(p, ws->seen, len) == 0);

    ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_valid(p, len) == NGX_OK);
    ngx_chat_fuzz_assert(ngx_chat_utf8_valid(p, len) == NGX_OK);

    /* the module answers with a text frame of about this size */
    ngx_chat_fuzz_ws_round_trip(len);

    ws->messages++;

    /* FNV-1a, with the length so that messages do not run together */
    ws->digest ^= (uint32_t) len;
    ws->digest *= 16777619;

    for (i = 0; i < len; i++) {
        ws->digest ^= p[i];
        ws->digest *= 16777619;
    }
}


/* ngx_chat_ws_close(): the first close code is the one sent */

static void
ngx_chat_fuzz_ws_close(ngx_chat_fuzz_ws_t *ws, ngx_uint_t code)
{
    if (ws->closing) {
        return;
    }

    ws->code = code;
    ws->closing = 1;
}


/* close_code against RFC 6455 7.4 */

static ngx_uint_t
ngx_chat_fuzz_ws_close_code(u_char *p, size_t len, ngx_uint_t *bad)
{
    ngx_uint_t  code, ref, ref_bad, valid;

    *bad = 0;
    code = ngx_chat_ws_close_code(p, len, bad);

    ref_bad = 0;

    if (len == 0) {
        ref = NGX_CHAT_WS_NORMAL;

    } else if (len == 1) {
        ref = 0;
        ref_bad = NGX_CHAT_WS_PROTOCOL_ERROR;

    } else {
        ref = p[0] * 256 + p[1];

        valid = (ref >= 1000 && ref <= 1003)
                || (ref >= 1007 && ref <= 1014)
                || (ref >= 3000 && ref <= 4999);

        if (!valid) {
            ref = 0;
            ref_bad = NGX_CHAT_WS_PROTOCOL_ERROR;

        } else if (ngx_chat_fuzz_utf8_valid(p + 2, len - 2) != NGX_OK) {
            ref = 0;
            ref_bad = NGX_CHAT_WS_BAD_DATA;
        }
    }

    ngx_chat_fuzz_assert(code == ref);

    if (code == 0) {
        ngx_chat_fuzz_assert(*bad == ref_bad);
    }

    return code;
}


/*
 * A server header for len, with the mask bit and a mask added, reads back
 * as a frame of len bytes.
 */

static void
ngx_chat_fuzz_ws_round_trip(uint64_t len)
{
    u_char               buf[NGX_CHAT_WS_HEADER_MAX + 4], *end;
    ngx_int_t            rc;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    if (len > (uint64_t) NGX_MAX_SIZE_T_VALUE) {
        return;
    }

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, (size_t) len);
    ngx_chat_fuzz_assert(end - buf <= NGX_CHAT_WS_HEADER_MAX);

    ngx_chat_fuzz_assert((buf[1] & 0x80) == 0);
    buf[1] |= 0x80;
    end = ngx_cpymem(end, "\x01\x02\x03\x04", 4);

    code = 0;
    rc = ngx_chat_ws_parse_header(buf, end - buf, NGX_MAX_SIZE_T_VALUE, &f,
                                  &code);

    ngx_chat_fuzz_assert(rc == NGX_OK);
    ngx_chat_fuzz_assert(f.len == len);
    ngx_chat_fuzz_assert(f.header_len == (size_t) (end - buf));
    ngx_chat_fuzz_assert(f.fin && f.opcode == NGX_CHAT_WS_TEXT);
}
