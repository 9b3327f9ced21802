
/*
 * RFC 6455 framing: the reader of src/ngx_chat_ws_frame.c, driven the way
 * the transport (src/ngx_chat_ws.c) drives it, against a reference decoder
 * of the whole stream written from the RFC.
 *
 * The transport reads a client's bytes into the worker's buffer, or, when
 * a frame is incomplete, into the reader's buffer for that frame behind
 * what came of it (rd->partial), then calls ngx_chat_ws_feed(); bytes that
 * came with the handshake are kept first (ngx_chat_ws_keep()) and fed on
 * the first read.  Here the stream is read twice, in one read as large as
 * the buffer allows and in reads of sizes the input chooses, and decoded
 * once by the reference.  Checked:
 *
 *   the two reads    report the same events (kind, bytes, code) and end
 *                    in the same state (done, in_message)
 *   every event      a message is valid UTF-8 and at most max bytes; a
 *                    ping or pong at most 125; a close has a code a peer
 *                    may send, or 0; a failure is 1002, 1003, 1007, 1009
 *                    or 1011 and has a reason; nothing after a failure or
 *                    a close
 *   the reader       never looks past the bytes read (the rest of the
 *                    buffer is poisoned for AddressSanitizer), never asks
 *                    to drop the connection under the module's limits,
 *                    keeps an incomplete frame in a buffer with room left
 *                    to read into, and frees everything at the end
 *   the reference    reports the same events; where it finds a fault, the
 *                    reader's code is one the fault allows
 *
 * and, on the way through the stream, each function of the framing
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
 *                             a character is cut
 *   ngx_chat_ws_close_code    agrees with RFC 6455 7.4
 *   ngx_chat_ws_frame_header  reads back through parse_header, for the
 *                             messages and for every length a header holds
 *
 * Input: a byte for the reads (0: all at once; 1-127: reads of that many
 * bytes; 128-255: reads of 1 to byte - 127 bytes, varying), a byte for
 * where payloads are split in two for the checks above, a byte for the
 * configuration (bits 0-2: the message limit, from the table below; bit 3:
 * the first read came with the handshake), then the bytes from the client.
 */


#include "ngx_chat_fuzz.h"
#include <sanitizer/asan_interface.h>


/*
 * chat_message_max: the default, the bounds of the length forms, and one
 * over the 4096 bytes a message buffer starts with, so that it grows
 */
static const size_t  ngx_chat_fuzz_ws_maxes[] = {
    4096, 0, 1, 4, 125, 126, 8192, 1000
};

#define NGX_CHAT_FUZZ_WS_HANDSHAKE   0x08

/*
 * As ngx_chat_ws_init(): a whole frame fits, with room for what follows.
 * The limits above all take the smallest size.
 */
#define ngx_chat_fuzz_ws_rbuf_size(max)  ngx_max(65536, (max) + 4096)
#define NGX_CHAT_FUZZ_WS_RBUF        65536

/* a client header's longest form: 2 bytes, a 64-bit length, a mask */
#define NGX_CHAT_FUZZ_WS_HEADER      14


typedef struct {
    ngx_uint_t                   what;
    ngx_uint_t                   code;
    ngx_uint_t                   faults;     /* a reference's failure:
                                                the codes it allows */
    u_char                      *data;       /* in the run's bytes */
    size_t                       len;
} ngx_chat_fuzz_ws_event_t;

/* what one reading of the stream reported, and how it ended */

typedef struct {
    ngx_chat_fuzz_ws_event_t    *events;
    ngx_uint_t                   nevents;
    ngx_uint_t                   nalloc;
    u_char                      *bytes;
    size_t                       nbytes;
    size_t                       size;

    size_t                       max;
    ngx_chat_ws_reader_t        *rd;         /* NULL: the reference */

    unsigned                     ended:1;    /* a failure or a close */
    unsigned                     done:1;
    unsigned                     in_message:1;
} ngx_chat_fuzz_ws_run_t;

/* the sizes of the reads */

typedef struct {
    u_char                       how;
    uint32_t                     state;
} ngx_chat_fuzz_ws_reads_t;

/* the reference decoder's message so far */

typedef struct {
    u_char                      *message;
    size_t                       len;
    uint32_t                     utf8;       /* ngx_chat_utf8_step()'s */
    u_char                       split;
    unsigned                     in_message:1;
} ngx_chat_fuzz_ws_decoder_t;


static void ngx_chat_fuzz_ws_transport(ngx_chat_fuzz_ws_run_t *run,
    const u_char *in, size_t len, u_char how, ngx_uint_t handshake);
static void ngx_chat_fuzz_ws_start(ngx_chat_ws_reader_t *rd,
    const u_char *in, size_t n);
static size_t ngx_chat_fuzz_ws_recv(ngx_chat_ws_reader_t *rd,
    const u_char *in, size_t n);
static void ngx_chat_fuzz_ws_feed(ngx_chat_ws_reader_t *rd, u_char *buf,
    size_t have, size_t size);
static void ngx_chat_fuzz_ws_check_reader(ngx_chat_ws_reader_t *rd);
static size_t ngx_chat_fuzz_ws_next(ngx_chat_fuzz_ws_reads_t *reads,
    size_t left);
static void ngx_chat_fuzz_ws_event(void *data, ngx_chat_ws_read_t *ev);

static void ngx_chat_fuzz_ws_decode(ngx_chat_fuzz_ws_run_t *ref,
    const u_char *in, size_t len, u_char split);
static void ngx_chat_fuzz_ws_ref_control(ngx_chat_fuzz_ws_run_t *ref,
    ngx_chat_ws_frame_t *f, u_char *payload);
static void ngx_chat_fuzz_ws_ref_data(ngx_chat_fuzz_ws_run_t *ref,
    ngx_chat_fuzz_ws_decoder_t *dec, ngx_chat_ws_frame_t *f,
    u_char *payload);
static void ngx_chat_fuzz_ws_ref_fail(ngx_chat_fuzz_ws_run_t *ref,
    ngx_uint_t faults);

static ngx_int_t ngx_chat_fuzz_ws_parse(u_char *p, size_t len, size_t max,
    ngx_chat_ws_frame_t *f, ngx_uint_t *code);
static ngx_int_t ngx_chat_fuzz_ws_ref_parse(const u_char *p, size_t len,
    size_t max, ngx_chat_ws_frame_t *f, ngx_uint_t *code, uint64_t *raw);
static void ngx_chat_fuzz_ws_unmask(u_char *dst, u_char *src, size_t len,
    u_char *mask, u_char split);
static ngx_int_t ngx_chat_fuzz_ws_step(ngx_chat_fuzz_ws_decoder_t *dec,
    u_char *p, size_t len);
static ngx_uint_t ngx_chat_fuzz_ws_close_code(u_char *p, size_t len,
    ngx_uint_t *bad);
static ngx_uint_t ngx_chat_fuzz_ws_ref_close(u_char *p, size_t len,
    ngx_uint_t *bad);
static void ngx_chat_fuzz_ws_round_trip(uint64_t len);

static void ngx_chat_fuzz_ws_record(ngx_chat_fuzz_ws_run_t *run,
    ngx_uint_t what, ngx_uint_t code, ngx_uint_t faults, u_char *data,
    size_t len);
static void ngx_chat_fuzz_ws_same(ngx_chat_fuzz_ws_run_t *a,
    ngx_chat_fuzz_ws_run_t *b);
static void ngx_chat_fuzz_ws_agree(ngx_chat_fuzz_ws_run_t *rd,
    ngx_chat_fuzz_ws_run_t *ref);
static ngx_uint_t ngx_chat_fuzz_ws_fault(ngx_uint_t code);
static void ngx_chat_fuzz_ws_run_init(ngx_chat_fuzz_ws_run_t *run,
    size_t len, size_t max);
static void ngx_chat_fuzz_ws_run_free(ngx_chat_fuzz_ws_run_t *run);


/* the worker's read buffer */
static u_char  ngx_chat_fuzz_ws_rbuf[NGX_CHAT_FUZZ_WS_RBUF];
static size_t  ngx_chat_fuzz_ws_rbuf_len;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                  max, len;
    const u_char           *in;
    ngx_chat_fuzz_ws_run_t  whole, pieces, ref;

    if (size < 3) {
        return 0;
    }

    max = ngx_chat_fuzz_ws_maxes[data[2] & 0x07];
    in = data + 3;
    len = size - 3;

    ngx_chat_fuzz_ws_rbuf_len = ngx_chat_fuzz_ws_rbuf_size(max);
    ngx_chat_fuzz_assert(ngx_chat_fuzz_ws_rbuf_len
                         <= sizeof(ngx_chat_fuzz_ws_rbuf));

    ngx_chat_fuzz_ws_run_init(&whole, len, max);
    ngx_chat_fuzz_ws_run_init(&pieces, len, max);
    ngx_chat_fuzz_ws_run_init(&ref, len, max);

    ngx_chat_fuzz_ws_transport(&whole, in, len, 0, 0);
    ngx_chat_fuzz_ws_transport(&pieces, in, len, data[0],
                               data[2] & NGX_CHAT_FUZZ_WS_HANDSHAKE);
    ngx_chat_fuzz_ws_decode(&ref, in, len, data[1]);

    /* how the bytes arrive changes nothing */
    ngx_chat_fuzz_ws_same(&whole, &pieces);

    /* and what they mean is what the RFC says */
    ngx_chat_fuzz_ws_agree(&whole, &ref);

    ngx_chat_fuzz_ws_run_free(&whole);
    ngx_chat_fuzz_ws_run_free(&pieces);
    ngx_chat_fuzz_ws_run_free(&ref);

    return 0;
}


/*
 * ngx_chat_ws_start() and ngx_chat_ws_read_handler(): the reader as the
 * transport sets it up and feeds it, to the end of the stream; the
 * transport reads on after a failure or a close to let the socket drain,
 * and so does this.
 */

static void
ngx_chat_fuzz_ws_transport(ngx_chat_fuzz_ws_run_t *run, const u_char *in,
    size_t len, u_char how, ngx_uint_t handshake)
{
    size_t                     n;
    ngx_chat_ws_reader_t       rd;
    ngx_chat_fuzz_ws_reads_t   reads;

    ngx_memzero(&rd, sizeof(ngx_chat_ws_reader_t));

    rd.max = run->max;
    rd.frame_max = ngx_chat_fuzz_ws_rbuf_len;
    rd.handler = ngx_chat_fuzz_ws_event;
    rd.data = run;

    run->rd = &rd;

    reads.how = how;
    reads.state = how;

    if (handshake && len) {
        n = ngx_chat_fuzz_ws_next(&reads, len);
        ngx_chat_fuzz_ws_start(&rd, in, n);
        in += n;
        len -= n;
    }

    while (len) {
        n = ngx_chat_fuzz_ws_recv(&rd, in, ngx_chat_fuzz_ws_next(&reads, len));
        in += n;
        len -= n;
    }

    run->done = rd.done;
    run->in_message = rd.in_message;

    ngx_chat_ws_reader_free(&rd);

    ngx_chat_fuzz_assert(rd.partial == NULL && rd.partial_len == 0);
    ngx_chat_fuzz_assert(rd.message == NULL && rd.message_len == 0);

    run->rd = NULL;
}


/*
 * Bytes that came with the handshake, in the request's header buffer: they
 * are kept when the connection is taken over, and the first read event
 * parses them.
 */

static void
ngx_chat_fuzz_ws_start(ngx_chat_ws_reader_t *rd, const u_char *in, size_t n)
{
    u_char  *header_in;

    header_in = malloc(n);
    ngx_chat_fuzz_assert(header_in != NULL);
    ngx_memcpy(header_in, in, n);

    ngx_chat_fuzz_assert(ngx_chat_ws_keep(rd, header_in, n) == NGX_OK);

    /* the request, and its header buffer with it, is freed */
    free(header_in);

    ngx_chat_fuzz_assert(rd->partial_len == n && rd->partial_size >= n);

    ngx_chat_fuzz_ws_feed(rd, rd->partial, rd->partial_len,
                          rd->partial_size);
}


/* one c->recv(): into the incomplete frame's buffer, or the worker's */

static size_t
ngx_chat_fuzz_ws_recv(ngx_chat_ws_reader_t *rd, const u_char *in, size_t n)
{
    u_char  *buf;
    size_t   have, size;

    have = rd->partial_len;

    if (have) {
        buf = rd->partial;
        size = rd->partial_size;

    } else {
        buf = ngx_chat_fuzz_ws_rbuf;
        size = ngx_chat_fuzz_ws_rbuf_len;
    }

    /* a read of no room would return 0, which is the client gone */
    ngx_chat_fuzz_assert(have < size);

    n = ngx_min(n, size - have);
    ngx_memcpy(buf + have, in, n);

    ngx_chat_fuzz_ws_feed(rd, buf, have + n, size);

    return n;
}


/*
 * ngx_chat_ws_feed() on a buffer of size bytes that holds have: the rest
 * is poisoned, so that a look past what was read is an AddressSanitizer
 * error.  Under the module's limits the reader never asks the transport to
 * drop the connection: frame_max holds a header and the largest frame,
 * and memory does not run out here.
 */

static void
ngx_chat_fuzz_ws_feed(ngx_chat_ws_reader_t *rd, u_char *buf, size_t have,
    size_t size)
{
    ngx_int_t  rc;

    ASAN_POISON_MEMORY_REGION(buf + have, size - have);

    rc = ngx_chat_ws_feed(rd, buf, have);

    /* a frame buffer the reader freed is not ours to unpoison */
    if (buf == ngx_chat_fuzz_ws_rbuf
        || (buf == rd->partial && size == rd->partial_size))
    {
        ASAN_UNPOISON_MEMORY_REGION(buf + have, size - have);
    }

    ngx_chat_fuzz_assert(rc == NGX_OK);

    ngx_chat_fuzz_ws_check_reader(rd);
}


/* what the reader holds between reads */

static void
ngx_chat_fuzz_ws_check_reader(ngx_chat_ws_reader_t *rd)
{
    /* an incomplete frame, with room to read the rest of it into */
    ngx_chat_fuzz_assert((rd->partial == NULL) == (rd->partial_len == 0));
    ngx_chat_fuzz_assert(rd->partial_len < rd->partial_size
                         || rd->partial == NULL);
    ngx_chat_fuzz_assert(rd->partial_size <= rd->frame_max);

    /* after a failure or a close, no frame is waiting */
    ngx_chat_fuzz_assert(!rd->done || rd->partial == NULL);

    /* a message buffer only while a message is incomplete */
    ngx_chat_fuzz_assert(rd->in_message
                         || (rd->message == NULL && rd->message_len == 0));
    ngx_chat_fuzz_assert(rd->message_len <= rd->message_size);
    ngx_chat_fuzz_assert(rd->message_size <= rd->max);
}


static size_t
ngx_chat_fuzz_ws_next(ngx_chat_fuzz_ws_reads_t *reads, size_t left)
{
    size_t  n;

    if (reads->how == 0) {
        return left;
    }

    if (reads->how < 128) {
        n = reads->how;

    } else {
        reads->state = reads->state * 1103515245 + 12345;
        n = 1 + (reads->state >> 16) % (reads->how - 127);
    }

    return ngx_min(n, left);
}


/* rd->handler: what the upper layer is told */

static void
ngx_chat_fuzz_ws_event(void *data, ngx_chat_ws_read_t *ev)
{
    u_char                   echo[2];
    ngx_uint_t               bad;
    ngx_chat_ws_reader_t    *rd;
    ngx_chat_fuzz_ws_run_t  *run = data;

    rd = run->rd;

    /* after a failure or a close, nothing */
    ngx_chat_fuzz_assert(!run->ended);

    switch (ev->what) {

    case NGX_CHAT_WS_READ_MESSAGE:
        /* the upper layer reads from data, even when there is nothing */
        ngx_chat_fuzz_assert(ev->data != NULL);
        ngx_chat_fuzz_assert(ev->len <= run->max);
        ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_valid(ev->data, ev->len)
                             == NGX_OK);
        ngx_chat_fuzz_assert(ngx_chat_utf8_valid(ev->data, ev->len)
                             == NGX_OK);
        ngx_chat_fuzz_assert(!rd->done);

        /* the module answers with a text frame of about this size */
        ngx_chat_fuzz_ws_round_trip(ev->len);
        break;

    case NGX_CHAT_WS_READ_PING:
    case NGX_CHAT_WS_READ_PONG:
        ngx_chat_fuzz_assert(ev->data != NULL);
        ngx_chat_fuzz_assert(ev->len <= 125);
        ngx_chat_fuzz_assert(!rd->done);
        break;

    case NGX_CHAT_WS_READ_CLOSE:
        /* 0: the peer gave no code, and is answered with none */
        echo[0] = (u_char) (ev->code >> 8);
        echo[1] = (u_char) ev->code;

        ngx_chat_fuzz_assert(ev->code == 0
                             || ngx_chat_fuzz_ws_ref_close(echo, 2, &bad)
                                == ev->code);
        ngx_chat_fuzz_assert(ev->len == 0);
        ngx_chat_fuzz_assert(rd->done);
        run->ended = 1;
        break;

    case NGX_CHAT_WS_READ_FAIL:
        ngx_chat_fuzz_assert(ev->code == NGX_CHAT_WS_PROTOCOL_ERROR
                             || ev->code == NGX_CHAT_WS_UNSUPPORTED
                             || ev->code == NGX_CHAT_WS_BAD_DATA
                             || ev->code == NGX_CHAT_WS_TOO_BIG
                             || ev->code == NGX_CHAT_WS_SERVER_ERROR);
        ngx_chat_fuzz_assert(ev->reason != NULL && ev->reason[0] != '\0');
        ngx_chat_fuzz_assert(ev->len == 0);
        ngx_chat_fuzz_assert(rd->done);
        ngx_chat_fuzz_assert(!rd->in_message && rd->message == NULL);
        run->ended = 1;
        break;

    default:
        ngx_chat_fuzz_assert(!"an event of no known kind");
    }

    ngx_chat_fuzz_ws_record(run, ev->what, ev->code, 0, ev->data, ev->len);
}


/*
 * The reference: RFC 6455 5.2-5.6 over the whole stream, a frame at a
 * time, with no buffering to speak of.  A frame not yet whole at the end
 * of the stream is not decoded.  Each function of the framing is checked
 * against its reference on the way.
 */

static void
ngx_chat_fuzz_ws_decode(ngx_chat_fuzz_ws_run_t *ref, const u_char *in,
    size_t len, u_char split)
{
    u_char                      *stream, *p, *last, *payload;
    ngx_int_t                    rc;
    ngx_uint_t                   code;
    ngx_chat_ws_frame_t          f;
    ngx_chat_fuzz_ws_decoder_t   dec;

    /* parse_header takes bytes it may write to */
    stream = malloc(len + 1);
    payload = malloc(len + 1);
    ngx_chat_fuzz_assert(stream != NULL && payload != NULL);
    ngx_memcpy(stream, in, len);

    ngx_memzero(&dec, sizeof(ngx_chat_fuzz_ws_decoder_t));
    dec.message = malloc(len + 1);
    dec.split = split;
    ngx_chat_fuzz_assert(dec.message != NULL);

    p = stream;
    last = stream + len;

    while (p < last && !ref->ended) {
        code = 0;
        rc = ngx_chat_fuzz_ws_parse(p, last - p, ref->max, &f, &code);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_chat_fuzz_ws_ref_fail(ref, ngx_chat_fuzz_ws_fault(code));
            break;
        }

        if ((size_t) (last - p) < f.header_len + f.len) {
            break;
        }

        ngx_chat_fuzz_ws_unmask(payload, p + f.header_len, f.len, f.mask,
                                split);
        p += f.header_len + f.len;

        if (f.opcode & 0x08) {
            ngx_chat_fuzz_ws_ref_control(ref, &f, payload);

        } else {
            ngx_chat_fuzz_ws_ref_data(ref, &dec, &f, payload);
        }
    }

    ref->done = ref->ended;
    ref->in_message = dec.in_message;

    free(dec.message);
    free(payload);
    free(stream);
}


/* 5.5: control frames, which may come between the fragments of a message */

static void
ngx_chat_fuzz_ws_ref_control(ngx_chat_fuzz_ws_run_t *ref,
    ngx_chat_ws_frame_t *f, u_char *payload)
{
    ngx_uint_t  code, bad;

    switch (f->opcode) {

    case NGX_CHAT_WS_PING:
        ngx_chat_fuzz_ws_record(ref, NGX_CHAT_WS_READ_PING, 0, 0, payload,
                                f->len);
        return;

    case NGX_CHAT_WS_PONG:
        ngx_chat_fuzz_ws_record(ref, NGX_CHAT_WS_READ_PONG, 0, 0, payload,
                                f->len);
        return;

    default: /* NGX_CHAT_WS_CLOSE */
        code = ngx_chat_fuzz_ws_close_code(payload, f->len, &bad);

        if (code == 0) {
            ngx_chat_fuzz_ws_ref_fail(ref, ngx_chat_fuzz_ws_fault(bad));
            return;
        }

        /* an empty close is told as code 0 */
        ngx_chat_fuzz_ws_record(ref, NGX_CHAT_WS_READ_CLOSE,
                                f->len ? code : 0, 0, NULL, 0);
        ref->ended = 1;
    }
}


/*
 * 5.4 and 5.6: a text message in one frame or in fragments, valid UTF-8
 * once whole (8.1), at most max bytes; binary messages are not taken.  A
 * frame can be at fault in more than one way: each allows its code.
 */

static void
ngx_chat_fuzz_ws_ref_data(ngx_chat_fuzz_ws_run_t *ref,
    ngx_chat_fuzz_ws_decoder_t *dec, ngx_chat_ws_frame_t *f,
    u_char *payload)
{
    ngx_int_t   utf8;
    ngx_uint_t  faults;

    faults = 0;

    if (f->opcode == NGX_CHAT_WS_BINARY) {
        faults |= ngx_chat_fuzz_ws_fault(NGX_CHAT_WS_UNSUPPORTED);
    }

    /* a new message inside one, or a fragment of no message */
    if ((f->opcode != NGX_CHAT_WS_CONT) == dec->in_message) {
        faults |= ngx_chat_fuzz_ws_fault(NGX_CHAT_WS_PROTOCOL_ERROR);
    }

    if (faults) {
        ngx_chat_fuzz_ws_ref_fail(ref, faults);
        return;
    }

    if (f->opcode == NGX_CHAT_WS_TEXT) {
        dec->len = 0;
        dec->utf8 = 0;
    }

    ngx_memcpy(dec->message + dec->len, payload, f->len);
    dec->len += f->len;

    utf8 = ngx_chat_fuzz_ws_step(dec, payload, f->len);

    if (utf8 == NGX_ERROR || (f->fin && utf8 == NGX_AGAIN)) {
        faults |= ngx_chat_fuzz_ws_fault(NGX_CHAT_WS_BAD_DATA);
    }

    if (dec->len > ref->max) {
        faults |= ngx_chat_fuzz_ws_fault(NGX_CHAT_WS_TOO_BIG);
    }

    if (faults) {
        ngx_chat_fuzz_ws_ref_fail(ref, faults);
        return;
    }

    if (!f->fin) {
        dec->in_message = 1;
        return;
    }

    ngx_chat_fuzz_ws_record(ref, NGX_CHAT_WS_READ_MESSAGE, 0, 0,
                            dec->message, dec->len);

    dec->in_message = 0;
    dec->len = 0;
}


/* 7.1.7: a fault fails the connection; nothing after it is read */

static void
ngx_chat_fuzz_ws_ref_fail(ngx_chat_fuzz_ws_run_t *ref, ngx_uint_t faults)
{
    ngx_chat_fuzz_assert(faults != 0);

    ngx_chat_fuzz_ws_record(ref, NGX_CHAT_WS_READ_FAIL, 0, faults, NULL, 0);
    ref->ended = 1;
}


/*
 * parse_header on the stream, against the reference; and on every prefix
 * of the header, each at the end of a block of 14 bytes, so that a read
 * past the prefix is an AddressSanitizer error.  Returns the reference's
 * answer, which is parse_header's.
 */

static ngx_int_t
ngx_chat_fuzz_ws_parse(u_char *p, size_t len, size_t max,
    ngx_chat_ws_frame_t *f, ngx_uint_t *code)
{
    u_char               *block, *q;
    size_t                k, n;
    uint64_t              raw;
    ngx_int_t             rc, ref, rc_k;
    ngx_uint_t            ref_code, code_k;
    ngx_chat_ws_frame_t   rf, fk;

    *code = 0;
    rc = ngx_chat_ws_parse_header(p, len, max, f, code);

    ref_code = 0;
    raw = 0;
    ref = ngx_chat_fuzz_ws_ref_parse(p, len, max, &rf, &ref_code, &raw);

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
        ngx_chat_fuzz_assert(f->len <= max);
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
        rc_k = ngx_chat_ws_parse_header(q, k, max, &fk, &code_k);

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

    return ref;
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


/*
 * 5.3: dst gets src XOR the mask; ngx_chat_ws_unmask() in one piece and
 * in two, split where the input says, gives the same.
 */

static void
ngx_chat_fuzz_ws_unmask(u_char *dst, u_char *src, size_t len, u_char *mask,
    u_char split)
{
    size_t   i, k;
    u_char  *one;

    for (i = 0; i < len; i++) {
        dst[i] = src[i] ^ mask[i % 4];
    }

    one = malloc(len + 1);
    ngx_chat_fuzz_assert(one != NULL);

    ngx_memcpy(one, src, len);
    ngx_chat_ws_unmask(one, len, mask, 0);
    ngx_chat_fuzz_assert(ngx_memcmp(one, dst, len) == 0);

    k = split % (len + 1);

    ngx_memcpy(one, src, len);
    ngx_chat_ws_unmask(one, k, mask, 0);
    ngx_chat_ws_unmask(one + k, len - k, mask, k);
    ngx_chat_fuzz_assert(ngx_memcmp(one, dst, len) == 0);

    free(one);
}


/*
 * The message so far against table 3-7 (NGX_OK, NGX_AGAIN: a character
 * is cut, NGX_ERROR); and utf8_step over the frame just added, in one call
 * and in two, carrying its state from the fragments before: the same
 * answer.
 */

static ngx_int_t
ngx_chat_fuzz_ws_step(ngx_chat_fuzz_ws_decoder_t *dec, u_char *p,
    size_t len)
{
    size_t     k;
    uint32_t   one, two;
    ngx_int_t  rc, rc2, ref;

    ref = ngx_chat_fuzz_utf8_prefix(dec->message, dec->len);

    one = dec->utf8;
    rc = ngx_chat_utf8_step(&one, p, len);

    k = dec->split % (len + 1);
    two = dec->utf8;
    rc2 = ngx_chat_utf8_step(&two, p, k);

    if (rc2 == NGX_OK) {
        rc2 = ngx_chat_utf8_step(&two, p + k, len - k);
    }

    ngx_chat_fuzz_assert(rc == rc2);
    ngx_chat_fuzz_assert((rc == NGX_ERROR) == (ref == NGX_ERROR));

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(one == two);
        ngx_chat_fuzz_assert((one != 0) == (ref == NGX_AGAIN));
        dec->utf8 = one;
    }

    return ref;
}


/* close_code against the reference; returns the code */

static ngx_uint_t
ngx_chat_fuzz_ws_close_code(u_char *p, size_t len, ngx_uint_t *bad)
{
    ngx_uint_t  code, ref, ref_bad;

    *bad = 0;
    code = ngx_chat_ws_close_code(p, len, bad);

    ref_bad = 0;
    ref = ngx_chat_fuzz_ws_ref_close(p, len, &ref_bad);

    ngx_chat_fuzz_assert(code == ref);

    if (code == 0) {
        ngx_chat_fuzz_assert(*bad == ref_bad);
    }

    return code;
}


/*
 * RFC 6455 7.4 and the IANA registry: the code to answer a close payload
 * with, or 0 and in *bad what its fault is.
 */

static ngx_uint_t
ngx_chat_fuzz_ws_ref_close(u_char *p, size_t len, ngx_uint_t *bad)
{
    ngx_uint_t  code, valid;

    if (len == 0) {
        return NGX_CHAT_WS_NORMAL;
    }

    if (len == 1) {
        *bad = NGX_CHAT_WS_PROTOCOL_ERROR;
        return 0;
    }

    code = p[0] * 256 + p[1];

    valid = (code >= 1000 && code <= 1003)
            || (code >= 1007 && code <= 1014)
            || (code >= 3000 && code <= 4999);

    if (!valid) {
        *bad = NGX_CHAT_WS_PROTOCOL_ERROR;
        return 0;
    }

    if (ngx_chat_fuzz_utf8_valid(p + 2, len - 2) != NGX_OK) {
        *bad = NGX_CHAT_WS_BAD_DATA;
        return 0;
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


/* the events of a run, their bytes copied: the reader's are not kept */

static void
ngx_chat_fuzz_ws_record(ngx_chat_fuzz_ws_run_t *run, ngx_uint_t what,
    ngx_uint_t code, ngx_uint_t faults, u_char *data, size_t len)
{
    ngx_chat_fuzz_ws_event_t  *ev;

    ngx_chat_fuzz_assert(run->nevents < run->nalloc);
    ngx_chat_fuzz_assert(run->nbytes + len <= run->size);

    ev = &run->events[run->nevents++];

    ev->what = what;
    ev->code = code;
    ev->faults = faults;
    ev->data = run->bytes + run->nbytes;
    ev->len = len;

    if (len) {
        ngx_memcpy(ev->data, data, len);
        run->nbytes += len;
    }
}


/* two reads of the stream: the same events, the same end */

static void
ngx_chat_fuzz_ws_same(ngx_chat_fuzz_ws_run_t *a, ngx_chat_fuzz_ws_run_t *b)
{
    ngx_uint_t                 i;
    ngx_chat_fuzz_ws_event_t  *x, *y;

    ngx_chat_fuzz_assert(a->nevents == b->nevents);

    for (i = 0; i < a->nevents; i++) {
        x = &a->events[i];
        y = &b->events[i];

        ngx_chat_fuzz_assert(x->what == y->what);
        ngx_chat_fuzz_assert(x->code == y->code);
        ngx_chat_fuzz_assert(x->len == y->len);
        ngx_chat_fuzz_assert(ngx_memcmp(x->data, y->data, x->len) == 0);
    }

    ngx_chat_fuzz_assert(a->done == b->done);
    ngx_chat_fuzz_assert(a->in_message == b->in_message);
}


/* the reader and the reference: the same events; a code the fault allows */

static void
ngx_chat_fuzz_ws_agree(ngx_chat_fuzz_ws_run_t *rd,
    ngx_chat_fuzz_ws_run_t *ref)
{
    ngx_uint_t                 i;
    ngx_chat_fuzz_ws_event_t  *x, *y;

    ngx_chat_fuzz_assert(rd->nevents == ref->nevents);

    for (i = 0; i < rd->nevents; i++) {
        x = &rd->events[i];
        y = &ref->events[i];

        ngx_chat_fuzz_assert(x->what == y->what);

        if (x->what == NGX_CHAT_WS_READ_FAIL) {
            ngx_chat_fuzz_assert(y->faults & ngx_chat_fuzz_ws_fault(x->code));
            continue;
        }

        ngx_chat_fuzz_assert(x->code == y->code);
        ngx_chat_fuzz_assert(x->len == y->len);
        ngx_chat_fuzz_assert(ngx_memcmp(x->data, y->data, x->len) == 0);
    }

    ngx_chat_fuzz_assert(rd->done == ref->done);

    /* a close may leave a message unfinished; a failure drops it */
    if (!rd->done) {
        ngx_chat_fuzz_assert(rd->in_message == ref->in_message);
    }
}


/* a failure's code as a bit, so that the reference may allow several */

static ngx_uint_t
ngx_chat_fuzz_ws_fault(ngx_uint_t code)
{
    switch (code) {
    case NGX_CHAT_WS_PROTOCOL_ERROR:
        return 0x01;
    case NGX_CHAT_WS_UNSUPPORTED:
        return 0x02;
    case NGX_CHAT_WS_BAD_DATA:
        return 0x04;
    case NGX_CHAT_WS_TOO_BIG:
        return 0x08;
    default:
        /* 1011 is no fault of the stream: memory does not run out here */
        return 0;
    }
}


/*
 * A frame is 2 bytes at least, and a failure ends the events: there are
 * fewer than len / 2 + 2 of them, and they hold at most len bytes.
 */

static void
ngx_chat_fuzz_ws_run_init(ngx_chat_fuzz_ws_run_t *run, size_t len,
    size_t max)
{
    ngx_memzero(run, sizeof(ngx_chat_fuzz_ws_run_t));

    run->nalloc = len / 2 + 2;
    run->events = malloc(run->nalloc * sizeof(ngx_chat_fuzz_ws_event_t));
    run->size = len;
    run->bytes = malloc(len + 1);
    run->max = max;

    ngx_chat_fuzz_assert(run->events != NULL && run->bytes != NULL);
}


static void
ngx_chat_fuzz_ws_run_free(ngx_chat_fuzz_ws_run_t *run)
{
    free(run->events);
    free(run->bytes);
}
