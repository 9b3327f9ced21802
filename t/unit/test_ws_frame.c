
/*
 * RFC 6455 framing: frame headers from clients (5.2), unmasking (5.3),
 * fragmentation and control frames (5.4, 5.5), close codes (7.4), UTF-8
 * checked across fragments (Unicode table 3-7) and the headers of server
 * frames.
 */


#include "ngx_chat_test.h"


#define MAX               4096
#define PROTOCOL_ERROR    NGX_CHAT_WS_PROTOCOL_ERROR
#define TOO_BIG           NGX_CHAT_WS_TOO_BIG
#define BAD_DATA          NGX_CHAT_WS_BAD_DATA

/* a header's longest form: 2 bytes, a 64-bit length and a mask */
#define CLIENT_HEADER_MAX 14

#define step_literal(st, s)                                                   \
    step(st, (u_char *) (s), sizeof(s) - 1)
#define utf8_literal(s)                                                       \
    utf8((u_char *) (s), sizeof(s) - 1)
#define close_literal(s, bad)                                                 \
    close_code((u_char *) (s), sizeof(s) - 1, bad)


static u_char  mask[4] = { 0x37, 0xfa, 0x21, 0x3d };


/*
 * A client frame header with the first byte b0: the length n in the form
 * of "ext" bytes (0: 7-bit, 2: 16-bit, 8: 64-bit), whatever n is, so that
 * non-minimal forms can be written too; then the mask.  Returns its size.
 */

static size_t
header(u_char *buf, u_char b0, uint64_t n, ngx_uint_t ext)
{
    u_char      *p;
    ngx_uint_t   i;

    p = buf;
    *p++ = b0;

    switch (ext) {

    case 0:
        *p++ = (u_char) (0x80 | n);
        break;

    case 2:
        *p++ = 0x80 | 126;
        break;

    default:
        *p++ = 0x80 | 127;
    }

    for (i = ext; i; i--) {
        *p++ = (u_char) (n >> ((i - 1) * 8));
    }

    p = ngx_cpymem(p, mask, 4);

    return p - buf;
}


/*
 * parse_header on an exact heap copy of len bytes: AddressSanitizer then
 * reports a read past len.
 */

static ngx_int_t
parse(u_char *p, size_t len, size_t max, ngx_chat_ws_frame_t *f,
    ngx_uint_t *code)
{
    u_char     *copy;
    ngx_int_t   rc;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, p, len);
    rc = ngx_chat_ws_parse_header(copy, len, max, f, code);
    free(copy);

    return rc;
}


/* the close code a header is refused with, 0 when it is not refused */

static ngx_uint_t
refused(u_char *p, size_t len, size_t max)
{
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    code = 0;

    if (parse(p, len, max, &f, &code) != NGX_ERROR) {
        return 0;
    }

    return code;
}


/* the payload length of an accepted header, -1 when it is not accepted */

static long long
accepted_len(u_char *p, size_t len, size_t max)
{
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    if (parse(p, len, max, &f, &code) != NGX_OK) {
        return -1;
    }

    return (long long) f.len;
}


static ngx_int_t
step(uint32_t *state, u_char *p, size_t len)
{
    u_char     *copy;
    ngx_int_t   rc;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, p, len);
    rc = ngx_chat_utf8_step(state, copy, len);
    free(copy);

    return rc;
}


/* a whole message in one call: NGX_OK only when no character is cut */

static ngx_int_t
utf8(u_char *p, size_t len)
{
    uint32_t  st;

    st = 0;

    if (step(&st, p, len) != NGX_OK || st != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_uint_t
close_code(u_char *p, size_t len, ngx_uint_t *bad)
{
    u_char      *copy;
    ngx_uint_t   code;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, p, len);
    *bad = 0;
    code = ngx_chat_ws_close_code(copy, len, bad);
    free(copy);

    return code;
}


/* a close payload of a code alone: the code, or what it is refused with */

static ngx_uint_t
close_answer(ngx_uint_t code)
{
    u_char      buf[2];
    ngx_uint_t  bad, answer;

    buf[0] = (u_char) (code >> 8);
    buf[1] = (u_char) code;

    answer = close_code(buf, 2, &bad);

    return answer ? answer : bad;
}


/* frame headers: lengths */

static void
test_parse_7_bit_lengths_up_to_125(void)
{
    u_char               h[CLIENT_HEADER_MAX];
    size_t               n;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    n = header(h, 0x81, 0, 0);
    ngx_chat_expect_int(parse(h, n, MAX, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.len, 0);
    ngx_chat_expect_int(f.header_len, 6);

    n = header(h, 0x81, 125, 0);
    ngx_chat_expect_int(parse(h, n, MAX, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.len, 125);
    ngx_chat_expect_int(f.header_len, 6);
}


static void
test_parse_16_bit_lengths_from_126_to_65535(void)
{
    u_char               h[CLIENT_HEADER_MAX];
    size_t               n;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    n = header(h, 0x81, 126, 2);
    ngx_chat_expect_int(parse(h, n, MAX, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.len, 126);
    ngx_chat_expect_int(f.header_len, 8);

    n = header(h, 0x81, 65535, 2);
    ngx_chat_expect_int(parse(h, n, 65535, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.len, 65535);
    ngx_chat_expect_int(f.header_len, 8);
}


static void
test_parse_64_bit_lengths_from_65536(void)
{
    u_char               h[CLIENT_HEADER_MAX];
    size_t               n;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    n = header(h, 0x82, 65536, 8);
    ngx_chat_expect_int(parse(h, n, 65536, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.len, 65536);
    ngx_chat_expect_int(f.header_len, 14);

    n = header(h, 0x82, 0x7fffffff, 8);
    ngx_chat_expect_int(parse(h, n, NGX_MAX_SIZE_T_VALUE, &f, &code),
                        NGX_OK);
    ngx_chat_expect_int(f.len, 0x7fffffff);
    ngx_chat_expect_int(f.header_len, 14);

#if (NGX_PTR_SIZE == 8)
    /* every byte of the length counts */
    n = header(h, 0x82, 0x0102030405060708ULL, 8);
    ngx_chat_expect_int(parse(h, n, NGX_MAX_SIZE_T_VALUE, &f, &code),
                        NGX_OK);
    ngx_chat_expect_int(f.len, 0x0102030405060708LL);

    n = header(h, 0x82, 0x7fffffffffffffffULL, 8);
    ngx_chat_expect_int(parse(h, n, NGX_MAX_SIZE_T_VALUE, &f, &code),
                        NGX_OK);
    ngx_chat_expect_int(f.len, 0x7fffffffffffffffLL);
#endif
}


static void
test_parse_16_bit_form_of_a_length_under_126_is_a_protocol_error(void)
{
    u_char  h[CLIENT_HEADER_MAX];
    size_t  n;

    n = header(h, 0x81, 0, 2);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 1, 2);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 125, 2);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 126, 2);
    ngx_chat_expect_int(accepted_len(h, n, MAX), 126);
}


static void
test_parse_64_bit_form_of_a_length_up_to_65535_is_a_protocol_error(void)
{
    u_char  h[CLIENT_HEADER_MAX];
    size_t  n;

    n = header(h, 0x81, 0, 8);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 125, 8);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 126, 8);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 65535, 8);
    ngx_chat_expect_int(refused(h, n, 65536), PROTOCOL_ERROR);

    n = header(h, 0x81, 65536, 8);
    ngx_chat_expect_int(accepted_len(h, n, 65536), 65536);
}


static void
test_parse_64_bit_length_with_the_top_bit_set_is_a_protocol_error(void)
{
    u_char  h[CLIENT_HEADER_MAX];
    size_t  n;

    n = header(h, 0x81, 0x8000000000000000ULL, 8);
    ngx_chat_expect_int(refused(h, n, NGX_MAX_SIZE_T_VALUE), PROTOCOL_ERROR);

    /* a protocol error, not a frame too big */
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x81, 0xffffffffffffffffULL, 8);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    /* with a small length in the low bytes too */
    n = header(h, 0x81, 0x8000000000000005ULL, 8);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);
}


static void
test_parse_frame_over_the_max_is_too_big(void)
{
    u_char  h[CLIENT_HEADER_MAX];
    size_t  n;

    n = header(h, 0x81, MAX, 2);
    ngx_chat_expect_int(accepted_len(h, n, MAX), MAX);

    n = header(h, 0x81, MAX + 1, 2);
    ngx_chat_expect_int(refused(h, n, MAX), TOO_BIG);

    n = header(h, 0x81, 65535, 2);
    ngx_chat_expect_int(refused(h, n, MAX), TOO_BIG);

    n = header(h, 0x81, 65536, 8);
    ngx_chat_expect_int(refused(h, n, MAX), TOO_BIG);

    n = header(h, 0x80, 0x7fffffffffffffffULL, 8);
    ngx_chat_expect_int(refused(h, n, MAX), TOO_BIG);

    /* in the 7-bit form, under a small max */
    n = header(h, 0x81, 101, 0);
    ngx_chat_expect_int(refused(h, n, 100), TOO_BIG);

    n = header(h, 0x81, 100, 0);
    ngx_chat_expect_int(accepted_len(h, n, 100), 100);

    n = header(h, 0x81, 1, 0);
    ngx_chat_expect_int(refused(h, n, 0), TOO_BIG);
}


/* frame headers: what the client may not send */

static void
test_parse_unmasked_client_frame_is_a_protocol_error(void)
{
    u_char  h[CLIENT_HEADER_MAX];
    size_t  n;

    /* the examples of RFC 6455 5.7 */
    ngx_chat_expect_int(refused((u_char *) "\x81\x05Hello", 7, MAX),
                        PROTOCOL_ERROR);
    ngx_chat_expect_int(refused((u_char *) "\x01\x03Hel", 5, MAX),
                        PROTOCOL_ERROR);
    ngx_chat_expect_int(refused((u_char *) "\x89\x05Hello", 7, MAX),
                        PROTOCOL_ERROR);

    n = header(h, 0x88, 0, 0);
    h[1] &= 0x7f;
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x82, 256, 2);
    h[1] &= 0x7f;
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, 0x82, 65536, 8);
    h[1] &= 0x7f;
    ngx_chat_expect_int(refused(h, n, 65536), PROTOCOL_ERROR);
}


static void
test_parse_reserved_bits_are_a_protocol_error(void)
{
    u_char      h[CLIENT_HEADER_MAX];
    size_t      n;
    ngx_uint_t  rsv;

    for (rsv = 0x10; rsv <= 0x70; rsv += 0x10) {
        n = header(h, (u_char) (0x81 | rsv), 5, 0);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

        n = header(h, (u_char) (0x00 | rsv), 5, 0);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

        n = header(h, (u_char) (0x89 | rsv), 0, 0);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);
    }
}


static void
test_parse_reserved_opcodes_are_a_protocol_error(void)
{
    u_char      h[CLIENT_HEADER_MAX];
    size_t      n;
    ngx_uint_t  op;

    for (op = 0x3; op <= 0xf; op++) {

        if (op >= 0x8 && op <= 0xa) {
            continue;
        }

        n = header(h, (u_char) (0x80 | op), 0, 0);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

        n = header(h, (u_char) op, 5, 0);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);
    }
}


static void
test_parse_known_opcodes_are_accepted_with_fin_and_opcode(void)
{
    u_char               h[CLIENT_HEADER_MAX];
    size_t               n;
    ngx_uint_t           op, code;
    ngx_chat_ws_frame_t  f;

    static const ngx_uint_t  ops[] = {
        NGX_CHAT_WS_CONT, NGX_CHAT_WS_TEXT, NGX_CHAT_WS_BINARY,
        NGX_CHAT_WS_CLOSE, NGX_CHAT_WS_PING, NGX_CHAT_WS_PONG
    };

    for (op = 0; op < sizeof(ops) / sizeof(ops[0]); op++) {
        n = header(h, (u_char) (0x80 | ops[op]), 3, 0);
        ngx_chat_expect_int(parse(h, n, MAX, &f, &code), NGX_OK);
        ngx_chat_expect_int(f.opcode, ops[op]);
        ngx_chat_expect_int(f.fin, 1);
        ngx_chat_expect_int(f.masked, 1);

        if (ops[op] >= NGX_CHAT_WS_CLOSE) {
            continue;
        }

        n = header(h, (u_char) ops[op], 3, 0);
        ngx_chat_expect_int(parse(h, n, MAX, &f, &code), NGX_OK);
        ngx_chat_expect_int(f.opcode, ops[op]);
        ngx_chat_expect_int(f.fin, 0);
    }
}


static void
test_parse_fragmented_control_frame_is_a_protocol_error(void)
{
    u_char  h[CLIENT_HEADER_MAX];
    size_t  n;

    n = header(h, NGX_CHAT_WS_CLOSE, 2, 0);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, NGX_CHAT_WS_PING, 0, 0);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

    n = header(h, NGX_CHAT_WS_PONG, 5, 0);
    ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);
}


static void
test_parse_control_frame_over_125_bytes_is_a_protocol_error(void)
{
    u_char      h[CLIENT_HEADER_MAX];
    size_t      n;
    ngx_uint_t  op;

    for (op = NGX_CHAT_WS_CLOSE; op <= NGX_CHAT_WS_PONG; op++) {
        n = header(h, (u_char) (0x80 | op), 125, 0);
        ngx_chat_expect_int(accepted_len(h, n, MAX), 125);

        n = header(h, (u_char) (0x80 | op), 126, 2);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);

        n = header(h, (u_char) (0x80 | op), 65536, 8);
        ngx_chat_expect_int(refused(h, n, 65536), PROTOCOL_ERROR);

        /* over the max as well: the protocol error comes first */
        n = header(h, (u_char) (0x80 | op), 65536, 8);
        ngx_chat_expect_int(refused(h, n, MAX), PROTOCOL_ERROR);
    }
}


/* frame headers: incomplete ones */

static void
test_parse_needs_more_bytes_for_every_prefix_of_a_header(void)
{
    u_char               h[CLIENT_HEADER_MAX + 4];
    size_t               n, k, i;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    static const struct {
        uint64_t         len;
        ngx_uint_t       ext;
        size_t           header_len;
    } forms[] = {
        { 0, 0, 6 },
        { 125, 0, 6 },
        { 126, 2, 8 },
        { 4096, 2, 8 },
        { 65536, 8, 14 },
        { 0x7fffffff, 8, 14 },
    };

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        n = header(h, 0x81, forms[i].len, forms[i].ext);
        ngx_chat_expect_int(n, forms[i].header_len);

        /* payload bytes may follow the header */
        ngx_memcpy(h + n, "abcd", 4);

        for (k = 0; k < n; k++) {
            ngx_chat_expect_int(parse(h, k, NGX_MAX_SIZE_T_VALUE, &f, &code),
                                NGX_AGAIN);
        }

        for (k = n; k <= n + 4; k++) {
            ngx_chat_expect_int(parse(h, k, NGX_MAX_SIZE_T_VALUE, &f, &code),
                                NGX_OK);
            ngx_chat_expect_int(f.header_len, n);
        }
    }
}


static void
test_parse_refuses_bad_first_two_bytes_without_waiting_for_the_rest(void)
{
    ngx_chat_expect_int(refused((u_char *) "\xc1\x85", 2, MAX),
                        PROTOCOL_ERROR);
    ngx_chat_expect_int(refused((u_char *) "\x83\x85", 2, MAX),
                        PROTOCOL_ERROR);
    ngx_chat_expect_int(refused((u_char *) "\x81\x05", 2, MAX),
                        PROTOCOL_ERROR);
    ngx_chat_expect_int(refused((u_char *) "\x09\x80", 2, MAX),
                        PROTOCOL_ERROR);
    ngx_chat_expect_int(refused((u_char *) "\x89\xfe", 2, MAX),
                        PROTOCOL_ERROR);
}


static void
test_parse_returns_the_header_len_and_the_mask(void)
{
    u_char               h[CLIENT_HEADER_MAX];
    size_t               n;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    /* RFC 6455 5.7: a single-frame masked text message, "Hello" */
    ngx_chat_expect_int(parse((u_char *) "\x81\x85\x37\xfa\x21\x3d", 6, MAX,
                              &f, &code),
                        NGX_OK);
    ngx_chat_expect_int(f.header_len, 6);
    ngx_chat_expect_int(f.len, 5);
    ngx_chat_expect_bytes(f.mask, 4, "\x37\xfa\x21\x3d");

    n = header(h, 0x81, 300, 2);
    h[n - 4] = 0xde;
    h[n - 3] = 0xad;
    h[n - 2] = 0xbe;
    h[n - 1] = 0xef;
    ngx_chat_expect_int(parse(h, n, MAX, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.header_len, 8);
    ngx_chat_expect_bytes(f.mask, 4, "\xde\xad\xbe\xef");

    n = header(h, 0x81, 70000, 8);
    h[n - 4] = 0x01;
    h[n - 1] = 0x04;
    ngx_chat_expect_int(parse(h, n, 70000, &f, &code), NGX_OK);
    ngx_chat_expect_int(f.header_len, 14);
    ngx_chat_expect_bytes(f.mask, 4, "\x01\xfa\x21\x04");
}


/* unmasking */

static void
test_unmask_decodes_the_rfc_example(void)
{
    u_char  p[5] = { 0x7f, 0x9f, 0x4d, 0x51, 0x58 };

    ngx_chat_ws_unmask(p, 5, mask, 0);
    ngx_chat_expect_bytes(p, 5, "Hello");
}


static void
test_unmask_in_two_pieces_equals_one_piece(void)
{
    u_char  one[37], two[37];
    size_t  i, k;

    for (k = 0; k <= sizeof(one); k++) {

        for (i = 0; i < sizeof(one); i++) {
            one[i] = (u_char) (i * 7 + 3);
        }

        ngx_memcpy(two, one, sizeof(one));

        ngx_chat_ws_unmask(one, sizeof(one), mask, 0);

        ngx_chat_ws_unmask(two, k, mask, 0);
        ngx_chat_ws_unmask(two + k, sizeof(two) - k, mask, k);

        ngx_chat_expect(ngx_memcmp(one, two, sizeof(one)) == 0);
    }
}


static void
test_unmask_in_many_pieces_and_twice_restores_the_payload(void)
{
    u_char  p[64], orig[64];
    size_t  i, k, off;

    for (i = 0; i < sizeof(p); i++) {
        p[i] = (u_char) (255 - i);
    }

    ngx_memcpy(orig, p, sizeof(p));

    /* pieces of 1, 2, 3 ... bytes, at every phase of the mask */
    for (off = 0, k = 1; off < sizeof(p); off += k, k++) {
        ngx_chat_ws_unmask(p + off, ngx_min(k, sizeof(p) - off), mask, off);
    }

    for (i = 0; i < sizeof(p); i++) {
        ngx_chat_expect_int(p[i], orig[i] ^ mask[i % 4]);
    }

    ngx_chat_ws_unmask(p, sizeof(p), mask, 0);
    ngx_chat_expect(ngx_memcmp(p, orig, sizeof(p)) == 0);
}


static void
test_unmask_of_nothing_touches_nothing(void)
{
    u_char  *p;

    p = ngx_chat_test_literal("x");

    ngx_chat_ws_unmask(p, 0, mask, 3);
    ngx_chat_expect_int(p[0], 'x');
}


/* UTF-8 across fragments */

static void
test_utf8_step_accepts_the_bounds_of_every_row_of_table_3_7(void)
{
    ngx_chat_expect_int(utf8_literal("\x00"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\x7f"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xc2\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xdf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xe0\xa0\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xe0\xbf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xe1\x80\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xec\xbf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xed\x80\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xed\x9f\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xee\x80\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xef\xbf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xf0\x90\x80\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xf0\xbf\xbf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xf1\x80\x80\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xf3\xbf\xbf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xf4\x80\x80\x80"), NGX_OK);
    ngx_chat_expect_int(utf8_literal("\xf4\x8f\xbf\xbf"), NGX_OK);
    ngx_chat_expect_int(utf8_literal(""), NGX_OK);
}


static void
test_utf8_step_refuses_overlong_forms(void)
{
    ngx_chat_expect_int(utf8_literal("\xc0\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xc0\xaf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xc1\xbf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xe0\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xe0\x80\xaf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xe0\x9f\xbf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x80\x80\xaf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x8f\xbf\xbf"), NGX_ERROR);
}


static void
test_utf8_step_refuses_surrogates(void)
{
    ngx_chat_expect_int(utf8_literal("\xed\xa0\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xed\xad\xbf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xed\xae\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xed\xbf\xbf"), NGX_ERROR);

    /* a surrogate pair, CESU-8 style */
    ngx_chat_expect_int(utf8_literal("\xed\xa0\xbd\xed\xb8\x80"), NGX_ERROR);
}


static void
test_utf8_step_refuses_code_points_above_u10ffff(void)
{
    ngx_chat_expect_int(utf8_literal("\xf4\x90\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf4\xbf\xbf\xbf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf5\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf7\xbf\xbf\xbf"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf8\x88\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xfc\x84\x80\x80\x80\x80"), NGX_ERROR);
}


static void
test_utf8_step_refuses_the_bytes_f5_to_ff_anywhere(void)
{
    u_char      buf[2];
    uint32_t    st;
    ngx_uint_t  c;

    for (c = 0xf5; c <= 0xff; c++) {
        buf[0] = (u_char) c;
        buf[1] = 0x80;

        st = 0;
        ngx_chat_expect_int(step(&st, buf, 1), NGX_ERROR);
        ngx_chat_expect_int(utf8(buf, 2), NGX_ERROR);

        buf[0] = 'a';
        buf[1] = (u_char) c;
        ngx_chat_expect_int(utf8(buf, 2), NGX_ERROR);
    }

    ngx_chat_expect_int(utf8_literal("\xc3\xa9\xff"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xc3\xfe"), NGX_ERROR);
}


static void
test_utf8_step_refuses_lone_continuation_bytes(void)
{
    u_char      buf[4];
    ngx_uint_t  c;

    for (c = 0x80; c <= 0xbf; c++) {
        buf[0] = (u_char) c;
        ngx_chat_expect_int(utf8(buf, 1), NGX_ERROR);

        buf[0] = 'a';
        buf[1] = (u_char) c;
        ngx_chat_expect_int(utf8(buf, 2), NGX_ERROR);

        /* one too many after a complete character */
        buf[0] = 0xc3;
        buf[1] = 0xa9;
        buf[2] = (u_char) c;
        ngx_chat_expect_int(utf8(buf, 3), NGX_ERROR);
    }

    ngx_chat_expect_int(utf8_literal("\xe2\x82\xac\x80"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x9f\x98\x80\xbf"), NGX_ERROR);
}


static void
test_utf8_step_refuses_a_character_cut_by_another_byte(void)
{
    ngx_chat_expect_int(utf8_literal("\xc3("), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xe2\x28\xa1"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xe2\x82("), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x9f\x98("), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xe2\xc3\xa9"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x9f\xf0\x9f\x98\x80"), NGX_ERROR);
}


/*
 * Table 3-7 byte by byte: for each row, at each position of its
 * sequence, every one of the 256 bytes (with the other positions at a
 * bound of their range) is accepted exactly when it falls in the range.
 */

static void
test_utf8_step_takes_at_each_position_exactly_the_range_of_table_3_7(void)
{
    u_char      seq[4];
    size_t      i, k, j, b;
    uint32_t    st;
    ngx_int_t   rc;
    ngx_uint_t  in;

    static const struct {
        u_char      lead;
        size_t      n;
        u_char      lo[3];
        u_char      hi[3];
    } rows[] = {
        { 0xc2, 2, { 0x80 }, { 0xbf } },
        { 0xdf, 2, { 0x80 }, { 0xbf } },
        { 0xe0, 3, { 0xa0, 0x80 }, { 0xbf, 0xbf } },
        { 0xe1, 3, { 0x80, 0x80 }, { 0xbf, 0xbf } },
        { 0xec, 3, { 0x80, 0x80 }, { 0xbf, 0xbf } },
        { 0xed, 3, { 0x80, 0x80 }, { 0x9f, 0xbf } },
        { 0xee, 3, { 0x80, 0x80 }, { 0xbf, 0xbf } },
        { 0xef, 3, { 0x80, 0x80 }, { 0xbf, 0xbf } },
        { 0xf0, 4, { 0x90, 0x80, 0x80 }, { 0xbf, 0xbf, 0xbf } },
        { 0xf1, 4, { 0x80, 0x80, 0x80 }, { 0xbf, 0xbf, 0xbf } },
        { 0xf3, 4, { 0x80, 0x80, 0x80 }, { 0xbf, 0xbf, 0xbf } },
        { 0xf4, 4, { 0x80, 0x80, 0x80 }, { 0x8f, 0xbf, 0xbf } },
    };

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {

        for (k = 1; k < rows[i].n; k++) {

            for (b = 0; b < 256; b++) {

                for (j = 0; j < 2; j++) {
                    seq[0] = rows[i].lead;
                    ngx_memcpy(seq + 1, j ? rows[i].hi : rows[i].lo, 3);
                    seq[k] = (u_char) b;

                    in = (b >= rows[i].lo[k - 1] && b <= rows[i].hi[k - 1]);

                    st = 0;
                    rc = step(&st, seq, rows[i].n);

                    ngx_chat_test_expect(
                        (rc == NGX_OK && st == 0) == (in != 0),
                        __FILE__, __LINE__,
                        "%02x at %d of a sequence led by %02x %s",
                        (unsigned) b, (int) k, (unsigned) rows[i].lead,
                        in ? "to be accepted" : "to be refused");
                }
            }
        }
    }
}


/* and every byte as the first of a character */

static void
test_utf8_step_starts_a_character_only_with_the_leads_of_table_3_7(void)
{
    u_char      b;
    uint32_t    st;
    ngx_int_t   rc;
    ngx_uint_t  c, lead;

    for (c = 0; c < 256; c++) {
        b = (u_char) c;

        lead = (c <= 0x7f) || (c >= 0xc2 && c <= 0xf4);

        st = 0;
        rc = step(&st, &b, 1);

        ngx_chat_test_expect((rc == NGX_OK) == (lead != 0), __FILE__,
                             __LINE__, "%02x %s", (unsigned) c,
                             lead ? "to start a character"
                                  : "to be refused as a first byte");

        if (rc == NGX_OK) {
            /* ASCII ends a character, a lead byte leaves one open */
            ngx_chat_expect_int(st != 0, c >= 0x80);
        }
    }
}


static void
test_utf8_step_carries_characters_split_at_every_position(void)
{
    size_t      i, k, len;
    uint32_t    st;
    const char  *s;

    static const char  *texts[] = {
        "\xc2\x80",
        "\xdf\xbf",
        "\xe0\xa0\x80",
        "\xed\x9f\xbf",
        "\xef\xbf\xbf",
        "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z",
    };

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        s = texts[i];
        len = strlen(s);

        for (k = 0; k <= len; k++) {
            st = 0;

            ngx_chat_expect_int(step(&st, (u_char *) s, k), NGX_OK);

            /* open exactly when k falls inside a character */
            ngx_chat_expect_int(st != 0,
                                k < len && ((u_char) s[k] & 0xc0) == 0x80);

            ngx_chat_expect_int(step(&st, (u_char *) s + k, len - k),
                                NGX_OK);
            ngx_chat_expect_int(st, 0);
        }

        /* one byte a call */
        st = 0;

        for (k = 0; k < len; k++) {
            ngx_chat_expect_int(step(&st, (u_char *) s + k, 1), NGX_OK);
        }

        ngx_chat_expect_int(st, 0);
    }
}


static void
test_utf8_step_checks_the_range_of_a_continuation_in_the_next_call(void)
{
    uint32_t  st;

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xe0"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "\x9f\x80"), NGX_ERROR);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "ok\xed"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "\xa0\x80"), NGX_ERROR);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xf0"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "\x8f"), NGX_ERROR);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xf4"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "\x90"), NGX_ERROR);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xf4\x8f"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "\xbf"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "\xc0"), NGX_ERROR);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xe2\x82"), NGX_OK);
    ngx_chat_expect_int(step_literal(&st, "a"), NGX_ERROR);
}


static void
test_utf8_step_state_is_non_zero_after_an_incomplete_character(void)
{
    uint32_t  st;

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xc3"), NGX_OK);
    ngx_chat_expect(st != 0);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "abc\xe2\x82"), NGX_OK);
    ngx_chat_expect(st != 0);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "\xf0\x9f\x98"), NGX_OK);
    ngx_chat_expect(st != 0);

    ngx_chat_expect_int(utf8_literal("\xc3"), NGX_ERROR);
    ngx_chat_expect_int(utf8_literal("\xf0\x9f\x98"), NGX_ERROR);

    st = 0;
    ngx_chat_expect_int(step_literal(&st, "abc\xc3\xa9"), NGX_OK);
    ngx_chat_expect_int(st, 0);
}


static void
test_utf8_step_over_no_bytes_keeps_the_state(void)
{
    uint32_t  st, before;

    st = 0;
    ngx_chat_expect_int(step(&st, (u_char *) "", 0), NGX_OK);
    ngx_chat_expect_int(st, 0);

    ngx_chat_expect_int(step_literal(&st, "\xf0\x9f"), NGX_OK);
    before = st;

    ngx_chat_expect_int(step(&st, (u_char *) "", 0), NGX_OK);
    ngx_chat_expect_int(st, before);

    ngx_chat_expect_int(step_literal(&st, "\x98\x80"), NGX_OK);
    ngx_chat_expect_int(st, 0);
}


/* close codes */

static void
test_close_with_an_empty_payload_is_answered_with_1000(void)
{
    ngx_uint_t  bad;

    ngx_chat_expect_int(close_code((u_char *) "", 0, &bad), 1000);
}


static void
test_close_with_a_one_byte_payload_is_a_protocol_error(void)
{
    ngx_uint_t  bad;

    ngx_chat_expect_int(close_literal("\x03", &bad), 0);
    ngx_chat_expect_int(bad, PROTOCOL_ERROR);
}


static void
test_close_codes_a_peer_may_send_are_answered_with_themselves(void)
{
    ngx_uint_t  code;

    for (code = 1000; code <= 1003; code++) {
        ngx_chat_expect_int(close_answer(code), code);
    }

    for (code = 1007; code <= 1011; code++) {
        ngx_chat_expect_int(close_answer(code), code);
    }

    /* registered after RFC 6455: restart, try again later, bad gateway */
    for (code = 1012; code <= 1014; code++) {
        ngx_chat_expect_int(close_answer(code), code);
    }

    /* registered with IANA (3000-3999) or private (4000-4999) */
    ngx_chat_expect_int(close_answer(3000), 3000);
    ngx_chat_expect_int(close_answer(3999), 3999);
    ngx_chat_expect_int(close_answer(4000), 4000);
    ngx_chat_expect_int(close_answer(4999), 4999);
}


static void
test_close_codes_a_peer_may_not_send_are_a_protocol_error(void)
{
    /* never sent: no status, abnormal closure; 1004 is reserved */
    ngx_chat_expect_int(close_answer(1004), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(1005), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(1006), PROTOCOL_ERROR);

    /* reserved for the protocol and its extensions; 1015 is never sent */
    ngx_chat_expect_int(close_answer(1015), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(1016), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(2000), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(2999), PROTOCOL_ERROR);

    /* not used */
    ngx_chat_expect_int(close_answer(0), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(1), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(999), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(5000), PROTOCOL_ERROR);
    ngx_chat_expect_int(close_answer(65535), PROTOCOL_ERROR);
}


static void
test_close_every_code_falls_in_its_class(void)
{
    ngx_uint_t  code, valid;

    for (code = 0; code <= 0xffff; code++) {
        valid = (code >= 1000 && code <= 1003)
                || (code >= 1007 && code <= 1014)
                || (code >= 3000 && code <= 4999);

        ngx_chat_test_expect(close_answer(code)
                             == (valid ? code : PROTOCOL_ERROR),
                             __FILE__, __LINE__, "close code %d %s",
                             (int) code, valid ? "to be answered"
                                               : "to be a protocol error");
    }
}


static void
test_close_reason_in_utf8_is_accepted(void)
{
    ngx_uint_t  bad;

    ngx_chat_expect_int(close_literal("\x03\xe8" "bye", &bad), 1000);
    ngx_chat_expect_int(close_literal("\x0f\xa0" "\xc3\xa9t\xc3\xa9 "
                                      "\xf0\x9f\x98\x80", &bad),
                        4000);
    ngx_chat_expect_int(close_literal("\x03\xe9" "a\0b", &bad), 1001);
}


static void
test_close_reason_in_invalid_utf8_is_1007(void)
{
    ngx_uint_t  bad;

    ngx_chat_expect_int(close_literal("\x03\xe8" "\xff", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);

    ngx_chat_expect_int(close_literal("\x03\xe8" "ok\xc0\x80", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);

    ngx_chat_expect_int(close_literal("\x03\xe8" "\xed\xa0\x80", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);

    ngx_chat_expect_int(close_literal("\x0b\xb8" "\x80" "abc", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);
}


static void
test_close_reason_cut_mid_character_is_1007(void)
{
    ngx_uint_t  bad;

    ngx_chat_expect_int(close_literal("\x03\xe8" "bye \xc3", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);

    ngx_chat_expect_int(close_literal("\x03\xe8" "\xe2\x82", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);

    ngx_chat_expect_int(close_literal("\x03\xe8" "\xf0\x9f\x98", &bad), 0);
    ngx_chat_expect_int(bad, BAD_DATA);
}


/* server frame headers */

static void
test_frame_header_of_lengths_at_the_bounds_of_each_form(void)
{
    u_char  buf[NGX_CHAT_WS_HEADER_MAX], *end;

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, 0);
    ngx_chat_expect_int(end - buf, 2);
    ngx_chat_expect(ngx_memcmp(buf, "\x81\x00", 2) == 0);

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, 125);
    ngx_chat_expect_bytes(buf, end - buf, "\x81\x7d");

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, 126);
    ngx_chat_expect_int(end - buf, 4);
    ngx_chat_expect(ngx_memcmp(buf, "\x81\x7e\x00\x7e", 4) == 0);

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, 65535);
    ngx_chat_expect_int(end - buf, 4);
    ngx_chat_expect(ngx_memcmp(buf, "\x81\x7e\xff\xff", 4) == 0);

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, 65536);
    ngx_chat_expect_int(end - buf, 10);
    ngx_chat_expect(ngx_memcmp(buf, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00",
                               10)
                    == 0);
}


static void
test_frame_header_sets_fin_and_the_opcode_and_no_mask(void)
{
    u_char  buf[NGX_CHAT_WS_HEADER_MAX], *end;

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_CLOSE, 2);
    ngx_chat_expect_bytes(buf, end - buf, "\x88\x02");

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_PING, 0);
    ngx_chat_expect_int(end - buf, 2);
    ngx_chat_expect(ngx_memcmp(buf, "\x89\x00", 2) == 0);

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_PONG, 125);
    ngx_chat_expect_bytes(buf, end - buf, "\x8a\x7d");

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_BINARY, 70000);
    ngx_chat_expect_int(buf[0], 0x82);
    ngx_chat_expect_int(buf[1], 127);
}


/* a server header, with the mask bit and a mask, reads back the same */

static void
test_frame_header_reads_back_through_parse_header(void)
{
    u_char               buf[NGX_CHAT_WS_HEADER_MAX + 4], *end;
    size_t               i;
    ngx_uint_t           code;
    ngx_chat_ws_frame_t  f;

    static const size_t  lens[] = {
        0, 1, 125, 126, 127, 255, 256, 65535, 65536, 65537, 0x7fffffff
    };

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT, lens[i]);
        buf[1] |= 0x80;
        end = ngx_cpymem(end, mask, 4);

        ngx_chat_expect_int(parse(buf, end - buf, NGX_MAX_SIZE_T_VALUE, &f,
                                  &code),
                            NGX_OK);
        ngx_chat_expect_int(f.len, lens[i]);
        ngx_chat_expect_int(f.header_len, end - buf);
        ngx_chat_expect_int(f.opcode, NGX_CHAT_WS_TEXT);
        ngx_chat_expect_int(f.fin, 1);
    }
}


/*
 * RFC 6455 5.2: the 64-bit form holds the whole length.  A length of 4 GB
 * or more must not lose its high 32 bits.
 */

static void
test_frame_header_writes_all_64_bits_of_a_length(void)
{
#if (NGX_PTR_SIZE == 8)
    u_char  buf[NGX_CHAT_WS_HEADER_MAX], *end;

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT,
                                   (size_t) 0x0000000100000005ULL);
    ngx_chat_expect_int(end - buf, 10);
    ngx_chat_expect(ngx_memcmp(buf, "\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x05",
                               10)
                    == 0);

    end = ngx_chat_ws_frame_header(buf, NGX_CHAT_WS_TEXT,
                                   (size_t) 0x0102030405060708ULL);
    ngx_chat_expect(ngx_memcmp(buf, "\x81\x7f\x01\x02\x03\x04\x05\x06\x07\x08",
                               10)
                    == 0);
#endif
}


/*
 * The reader, fed the way the transport feeds it (src/ngx_chat_ws.c):
 * each read goes into the incomplete frame's buffer when there is one,
 * behind what came of it, else into the worker's buffer, whose size is
 * frame_max; then ngx_chat_ws_feed().  What the reader reports is written
 * down as text: message "hi"; ping ""; close 1000; fail 1002.
 */

#define READER_RBUF       65536

typedef struct {
    ngx_chat_ws_reader_t         rd;
    char                         log[2048];
    size_t                       log_len;
} reader_t;

typedef struct {
    u_char                       data[4096];
    size_t                       len;
} stream_t;

#define add_literal(s, b0, lit)                                               \
    add(s, b0, lit, sizeof(lit) - 1)


static u_char  rbuf[READER_RBUF];


static void
reader_log(reader_t *r, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
reader_log(reader_t *r, const char *fmt, ...)
{
    int      n;
    size_t   room;
    va_list  args;

    room = sizeof(r->log) - r->log_len;

    va_start(args, fmt);
    n = vsnprintf(r->log + r->log_len, room, fmt, args);
    va_end(args);

    r->log_len += ngx_min((size_t) ngx_max(n, 0), room - 1);
}


static void
reader_event(void *data, ngx_chat_ws_read_t *ev)
{
    size_t           i;
    reader_t        *r = data;
    static const char  *names[] = { "message", "ping", "pong", "close",
                                    "fail" };

    if (r->log_len) {
        reader_log(r, "; ");
    }

    reader_log(r, "%s", ev->what <= NGX_CHAT_WS_READ_FAIL ? names[ev->what]
                                                          : "?");

    if (ev->what == NGX_CHAT_WS_READ_CLOSE
        || ev->what == NGX_CHAT_WS_READ_FAIL)
    {
        reader_log(r, " %u", (unsigned) ev->code);
        return;
    }

    /* bytes, even when there are none: the upper layer reads from data */
    ngx_chat_expect(ev->data != NULL);

    reader_log(r, " \"");

    for (i = 0; i < ev->len; i++) {
        if (ev->data[i] >= 0x20 && ev->data[i] < 0x7f) {
            reader_log(r, "%c", ev->data[i]);

        } else {
            reader_log(r, "\\x%02x", ev->data[i]);
        }
    }

    reader_log(r, "\"");
}


static void
reader_init(reader_t *r, size_t max, size_t frame_max)
{
    ngx_memzero(r, sizeof(reader_t));

    r->rd.max = max;
    r->rd.frame_max = frame_max;
    r->rd.handler = reader_event;
    r->rd.data = r;
}


/* the socket holds n bytes: read as ngx_chat_ws_read_handler() reads them */

static ngx_int_t
reader_recv(reader_t *r, const void *data, size_t n)
{
    u_char        *buf;
    size_t         have, size, k;
    const u_char  *p;

    p = data;

    while (n) {
        have = r->rd.partial_len;

        if (have) {
            buf = r->rd.partial;
            size = r->rd.partial_size;

        } else {
            buf = rbuf;
            size = ngx_min(r->rd.frame_max, READER_RBUF);
        }

        if (have >= size) {
            ngx_chat_test_expect(0, __FILE__, __LINE__,
                                 "room to read into, %d of %d held",
                                 (int) have, (int) size);
            return NGX_ERROR;
        }

        k = ngx_min(n, size - have);
        ngx_memcpy(buf + have, p, k);
        p += k;
        n -= k;

        if (ngx_chat_ws_feed(&r->rd, buf, have + k) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a client frame: the shortest length form, the payload masked */

static void
add(stream_t *s, u_char b0, const char *payload, size_t len)
{
    u_char      *p;
    size_t       i;
    ngx_uint_t   ext;

    ext = (len < 126) ? 0 : (len <= 0xffff) ? 2 : 8;

    if (s->len + CLIENT_HEADER_MAX + len > sizeof(s->data)) {
        abort();
    }

    p = s->data + s->len;
    p += header(p, b0, len, ext);

    for (i = 0; i < len; i++) {
        p[i] = (u_char) payload[i] ^ mask[i % 4];
    }

    s->len = p + len - s->data;
}


static void
test_reader_message_split_at_every_byte_arrives_once_and_whole(void)
{
    char      *text, *expected;
    size_t     k;
    reader_t   r;
    stream_t   s;

    /* a frame with a 7-bit length, then fragments of 16-bit and 7-bit */
    text = ngx_chat_test_repeat("a", 130);

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x81, "hello");
    add(&s, 0x01, text, 130);
    add_literal(&s, 0x80, "end");

    expected = ngx_chat_test_sprintf("message \"hello\"; message \"%send\"",
                                     text);

    for (k = 0; k <= s.len; k++) {
        reader_init(&r, MAX, READER_RBUF);

        ngx_chat_expect_int(reader_recv(&r, s.data, k), NGX_OK);
        ngx_chat_expect_int(reader_recv(&r, s.data + k, s.len - k), NGX_OK);

        ngx_chat_test_expect(strcmp(r.log, expected) == 0, __FILE__,
                             __LINE__, "split at %d: \"%s\"", (int) k, r.log);
        ngx_chat_expect_int(r.rd.partial_len, 0);
        ngx_chat_expect_int(r.rd.in_message, 0);

        ngx_chat_ws_reader_free(&r.rd);
    }

    /* a byte a read */
    reader_init(&r, MAX, READER_RBUF);

    for (k = 0; k < s.len; k++) {
        ngx_chat_expect_int(reader_recv(&r, s.data + k, 1), NGX_OK);
    }

    ngx_chat_expect_has(r.log, expected);
    ngx_chat_expect_int(strlen(r.log), strlen(expected));

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_ping_between_fragments_is_answered_before_the_message(void)
{
    reader_t  r;
    stream_t  s;

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x01, "Hel");
    add_literal(&s, 0x89, "are you there");
    add_literal(&s, 0x00, "l");
    add_literal(&s, 0x8a, "");
    add_literal(&s, 0x80, "o");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len,
                          "ping \"are you there\"; pong \"\"; "
                          "message \"Hello\"");

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_keep_refuses_a_frame_larger_than_frame_max(void)
{
    char      *text;
    reader_t   r;
    stream_t   s;

    text = ngx_chat_test_repeat("b", 200);

    ngx_memzero(&s, sizeof(stream_t));
    add(&s, 0x81, text, 200);

    /* a message may be 1000 bytes, a frame kept whole only 100 */
    reader_init(&r, 1000, 100);

    ngx_chat_expect_int(reader_recv(&r, s.data, 20), NGX_ERROR);
    ngx_chat_expect_int(ngx_chat_ws_keep(&r.rd, s.data, 20), NGX_ERROR);
    ngx_chat_expect(r.rd.partial == NULL);
    ngx_chat_expect_bytes(r.log, r.log_len, "");

    ngx_chat_ws_reader_free(&r.rd);

    /* a frame of 100 bytes with its header fits */
    ngx_memzero(&s, sizeof(stream_t));
    add(&s, 0x81, text, 94);

    reader_init(&r, 1000, 100);

    ngx_chat_expect_int(s.len, 100);
    ngx_chat_expect_int(reader_recv(&r, s.data, 20), NGX_OK);
    ngx_chat_expect_int(reader_recv(&r, s.data + 20, 80), NGX_OK);
    ngx_chat_expect_has(r.log, "message \"bbbb");

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_binary_message_fails_with_1003(void)
{
    reader_t  r;
    stream_t  s;

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x82, "\x00\x01");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "fail 1003");
    ngx_chat_expect_int(r.rd.done, 1);

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_text_frame_in_an_unfinished_message_fails_with_1002(void)
{
    reader_t  r;
    stream_t  s;

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x01, "unfinished");
    add_literal(&s, 0x81, "new");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "fail 1002");
    ngx_chat_expect_int(r.rd.in_message, 0);
    ngx_chat_expect(r.rd.message == NULL);

    ngx_chat_ws_reader_free(&r.rd);

    /* and a continuation of no message */
    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x80, "orphan");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "fail 1002");

    ngx_chat_ws_reader_free(&r.rd);
}


/* a message in two fragments, each in a read of its own */

static const char *
two_fragments(size_t max, const char *one, const char *two)
{
    reader_t     r;
    stream_t     s;
    const char  *log;

    ngx_memzero(&s, sizeof(stream_t));
    add(&s, 0x01, one, strlen(one));
    add(&s, 0x80, two, strlen(two));

    reader_init(&r, max, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len / 2), NGX_OK);
    ngx_chat_expect_int(reader_recv(&r, s.data + s.len / 2,
                                    s.len - s.len / 2),
                        NGX_OK);

    log = ngx_chat_test_sprintf("%s", r.log);

    ngx_chat_ws_reader_free(&r.rd);

    return log;
}


static void
test_reader_invalid_utf8_split_across_fragments_fails_with_1007(void)
{
    /* a character cut by ASCII, a surrogate, a character never finished */
    ngx_chat_expect_has(two_fragments(MAX, "euro \xe2\x82", "a"), "fail 1007");
    ngx_chat_expect_has(two_fragments(MAX, "ok\xed", "\xa0\x80"),
                        "fail 1007");
    ngx_chat_expect_has(two_fragments(MAX, "\xf0\x9f", "\x98"), "fail 1007");

    /* the same character, whole across the boundary */
    ngx_chat_expect_has(two_fragments(MAX, "euro \xe2\x82", "\xac"),
                        "message \"euro \\xe2\\x82\\xac\"");
}


static void
test_reader_message_over_max_in_fragments_fails_with_1009(void)
{
    ngx_chat_expect_has(two_fragments(10, "123456", "78901"), "fail 1009");
    ngx_chat_expect_has(two_fragments(10, "12345", "67890"),
                        "message \"1234567890\"");
}


static void
test_reader_empty_close_is_reported_with_code_0(void)
{
    reader_t  r;
    stream_t  s;

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x88, "");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);

    /* and is answered with an empty close */
    ngx_chat_expect_bytes(r.log, r.log_len, "close 0");
    ngx_chat_expect_int(r.rd.done, 1);

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_close_with_a_code_is_reported_with_it(void)
{
    reader_t  r;
    stream_t  s;

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x88, "\x03\xe8" "bye");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "close 1000");

    ngx_chat_ws_reader_free(&r.rd);

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x88, "\x0f\xa0");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "close 4000");

    ngx_chat_ws_reader_free(&r.rd);

    /* a code a peer may not send is a fault */
    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x88, "\x03\xed");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "fail 1002");

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_reports_nothing_after_a_fault(void)
{
    reader_t  r;
    stream_t  s, later;

    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x81, "before");
    add_literal(&s, 0x82, "binary");
    add_literal(&s, 0x81, "after");
    add_literal(&s, 0x01, "cut");

    ngx_memzero(&later, sizeof(stream_t));
    add_literal(&later, 0x80, "more");
    add_literal(&later, 0x89, "ping");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len - 2), NGX_OK);

    /* what follows is let drain, and nothing waits for more of it */
    ngx_chat_expect(r.rd.partial == NULL);

    ngx_chat_expect_int(reader_recv(&r, s.data + s.len - 2, 2), NGX_OK);
    ngx_chat_expect_int(reader_recv(&r, later.data, later.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "message \"before\"; fail 1003");

    ngx_chat_ws_reader_free(&r.rd);

    /* nor after a close */
    ngx_memzero(&s, sizeof(stream_t));
    add_literal(&s, 0x88, "");
    add_literal(&s, 0x81, "after");

    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, s.len), NGX_OK);
    ngx_chat_expect_int(reader_recv(&r, later.data, later.len), NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "close 0");

    ngx_chat_ws_reader_free(&r.rd);
}


static void
test_reader_partial_buffer_is_the_frame_size_once_the_header_is_known(void)
{
    char      *text;
    reader_t   r;
    stream_t   s;

    text = ngx_chat_test_repeat("c", 300);

    ngx_memzero(&s, sizeof(stream_t));
    add(&s, 0x81, text, 300);

    /* the header and a few bytes: a buffer for the 8 + 300 */
    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, 11), NGX_OK);
    ngx_chat_expect_int(r.rd.partial_len, 11);
    ngx_chat_expect_int(r.rd.partial_size, 308);

    ngx_chat_ws_reader_free(&r.rd);

    /* part of the header: room for the longest one, then the frame's */
    reader_init(&r, MAX, READER_RBUF);

    ngx_chat_expect_int(reader_recv(&r, s.data, 3), NGX_OK);
    ngx_chat_expect_int(r.rd.partial_len, 3);
    ngx_chat_expect_int(r.rd.partial_size, CLIENT_HEADER_MAX);

    ngx_chat_expect_int(reader_recv(&r, s.data + 3, 10), NGX_OK);
    ngx_chat_expect_int(r.rd.partial_len, 13);
    ngx_chat_expect_int(r.rd.partial_size, 308);

    ngx_chat_expect_int(reader_recv(&r, s.data + 13, s.len - 13), NGX_OK);
    ngx_chat_expect(r.rd.partial == NULL);
    ngx_chat_expect_int(r.rd.partial_size, 0);
    ngx_chat_expect_has(r.log, "message \"cccc");

    ngx_chat_ws_reader_free(&r.rd);
}


/*
 * An empty first fragment leaves the message without a buffer: the next
 * fragment must not be copied to an offset of a null pointer (UBSan).
 */

static void
test_reader_empty_first_fragment_starts_a_message(void)
{
    ngx_chat_expect_has(two_fragments(MAX, "", "end"), "message \"end\"");
    ngx_chat_expect_has(two_fragments(MAX, "", ""), "message \"\"");

    /* a limit of 0 takes empty messages only, in fragments too */
    ngx_chat_expect_has(two_fragments(0, "", ""), "message \"\"");
    ngx_chat_expect_has(two_fragments(0, "", "x"), "fail 1009");
}


/*
 * Frames sent with the handshake are kept before anything reads them
 * (ngx_chat_ws_start()) and fed on the first read: a bad header among
 * them is failed with its code like one read later, not dropped unsaid.
 */

static void
test_reader_bad_frame_kept_before_the_first_read_fails_with_its_code(void)
{
    char      *text;
    u_char    *p;
    reader_t   r;
    stream_t   s;

    reader_init(&r, MAX, READER_RBUF);

    /* RFC 6455 5.7's unmasked "Hello" */
    p = ngx_chat_test_literal("\x81\x05Hello");

    ngx_chat_expect_int(ngx_chat_ws_keep(&r.rd, p, 7), NGX_OK);
    ngx_chat_expect_int(ngx_chat_ws_feed(&r.rd, r.rd.partial,
                                         r.rd.partial_len),
                        NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "fail 1002");
    ngx_chat_expect(r.rd.partial == NULL);

    ngx_chat_ws_reader_free(&r.rd);

    /* a frame over the message limit */
    text = ngx_chat_test_repeat("d", 101);

    ngx_memzero(&s, sizeof(stream_t));
    add(&s, 0x81, text, 101);

    reader_init(&r, 100, READER_RBUF);

    ngx_chat_expect_int(ngx_chat_ws_keep(&r.rd, s.data, 20), NGX_OK);
    ngx_chat_expect_int(ngx_chat_ws_feed(&r.rd, r.rd.partial,
                                         r.rd.partial_len),
                        NGX_OK);
    ngx_chat_expect_bytes(r.log, r.log_len, "fail 1009");

    ngx_chat_ws_reader_free(&r.rd);
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_parse_7_bit_lengths_up_to_125),
    ngx_chat_test(test_parse_16_bit_lengths_from_126_to_65535),
    ngx_chat_test(test_parse_64_bit_lengths_from_65536),
    ngx_chat_test(
        test_parse_16_bit_form_of_a_length_under_126_is_a_protocol_error),
    ngx_chat_test(
        test_parse_64_bit_form_of_a_length_up_to_65535_is_a_protocol_error),
    ngx_chat_test(
        test_parse_64_bit_length_with_the_top_bit_set_is_a_protocol_error),
    ngx_chat_test(test_parse_frame_over_the_max_is_too_big),
    ngx_chat_test(test_parse_unmasked_client_frame_is_a_protocol_error),
    ngx_chat_test(test_parse_reserved_bits_are_a_protocol_error),
    ngx_chat_test(test_parse_reserved_opcodes_are_a_protocol_error),
    ngx_chat_test(test_parse_known_opcodes_are_accepted_with_fin_and_opcode),
    ngx_chat_test(test_parse_fragmented_control_frame_is_a_protocol_error),
    ngx_chat_test(test_parse_control_frame_over_125_bytes_is_a_protocol_error),
    ngx_chat_test(test_parse_needs_more_bytes_for_every_prefix_of_a_header),
    ngx_chat_test(
        test_parse_refuses_bad_first_two_bytes_without_waiting_for_the_rest),
    ngx_chat_test(test_parse_returns_the_header_len_and_the_mask),
    ngx_chat_test(test_unmask_decodes_the_rfc_example),
    ngx_chat_test(test_unmask_in_two_pieces_equals_one_piece),
    ngx_chat_test(test_unmask_in_many_pieces_and_twice_restores_the_payload),
    ngx_chat_test(test_unmask_of_nothing_touches_nothing),
    ngx_chat_test(test_utf8_step_accepts_the_bounds_of_every_row_of_table_3_7),
    ngx_chat_test(test_utf8_step_refuses_overlong_forms),
    ngx_chat_test(test_utf8_step_refuses_surrogates),
    ngx_chat_test(test_utf8_step_refuses_code_points_above_u10ffff),
    ngx_chat_test(test_utf8_step_refuses_the_bytes_f5_to_ff_anywhere),
    ngx_chat_test(test_utf8_step_refuses_lone_continuation_bytes),
    ngx_chat_test(test_utf8_step_refuses_a_character_cut_by_another_byte),
    ngx_chat_test(
        test_utf8_step_takes_at_each_position_exactly_the_range_of_table_3_7),
    ngx_chat_test(
        test_utf8_step_starts_a_character_only_with_the_leads_of_table_3_7),
    ngx_chat_test(test_utf8_step_carries_characters_split_at_every_position),
    ngx_chat_test(
        test_utf8_step_checks_the_range_of_a_continuation_in_the_next_call),
    ngx_chat_test(
        test_utf8_step_state_is_non_zero_after_an_incomplete_character),
    ngx_chat_test(test_utf8_step_over_no_bytes_keeps_the_state),
    ngx_chat_test(test_close_with_an_empty_payload_is_answered_with_1000),
    ngx_chat_test(test_close_with_a_one_byte_payload_is_a_protocol_error),
    ngx_chat_test(
        test_close_codes_a_peer_may_send_are_answered_with_themselves),
    ngx_chat_test(test_close_codes_a_peer_may_not_send_are_a_protocol_error),
    ngx_chat_test(test_close_every_code_falls_in_its_class),
    ngx_chat_test(test_close_reason_in_utf8_is_accepted),
    ngx_chat_test(test_close_reason_in_invalid_utf8_is_1007),
    ngx_chat_test(test_close_reason_cut_mid_character_is_1007),
    ngx_chat_test(test_frame_header_of_lengths_at_the_bounds_of_each_form),
    ngx_chat_test(test_frame_header_sets_fin_and_the_opcode_and_no_mask),
    ngx_chat_test(test_frame_header_reads_back_through_parse_header),
    ngx_chat_test(test_frame_header_writes_all_64_bits_of_a_length),
    ngx_chat_test(
        test_reader_message_split_at_every_byte_arrives_once_and_whole),
    ngx_chat_test(
        test_reader_ping_between_fragments_is_answered_before_the_message),
    ngx_chat_test(test_reader_keep_refuses_a_frame_larger_than_frame_max),
    ngx_chat_test(test_reader_binary_message_fails_with_1003),
    ngx_chat_test(
        test_reader_text_frame_in_an_unfinished_message_fails_with_1002),
    ngx_chat_test(
        test_reader_invalid_utf8_split_across_fragments_fails_with_1007),
    ngx_chat_test(test_reader_message_over_max_in_fragments_fails_with_1009),
    ngx_chat_test(test_reader_empty_close_is_reported_with_code_0),
    ngx_chat_test(test_reader_close_with_a_code_is_reported_with_it),
    ngx_chat_test(test_reader_reports_nothing_after_a_fault),
    ngx_chat_test(
        test_reader_partial_buffer_is_the_frame_size_once_the_header_is_known),
    ngx_chat_test(test_reader_empty_first_fragment_starts_a_message),
    ngx_chat_test(
        test_reader_bad_frame_kept_before_the_first_read_fails_with_its_code),
    ngx_chat_null_test
};
