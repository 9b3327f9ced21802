
/*
 * Files, the pure part (src/ngx_chat_files.c): what the first bytes of a
 * file say it is, a client's file name made safe, the Content-Disposition
 * of a download (RFC 6266, RFC 8187), the boundary of a multipart/form-data
 * type (RFC 2046 5.1.1) and the streaming parser of such a body (RFC 7578).
 *
 * Every input is an exact heap copy, so that AddressSanitizer reports any
 * read past its length: the sniffer sees only a file's first bytes, and
 * the parser only the buffers nginx reads.
 */


#include "ngx_chat_test.h"


/* a browser's boundary, and all of it but its last character */
#define BOUNDARY_PREFIX   "----WebKitFormBoundary7MA4YWxkTrZu0g"
#define BOUNDARY          BOUNDARY_PREFIX "W"

#define PARTS             8
#define PART_BYTES        1024
#define STR_MAX           64


/* bytes built up piece by piece: a file's head, a multipart body */

typedef struct {
    u_char                       data[8192];
    size_t                       len;
} buf_t;

#define put_literal(b, s)  put(b, s, sizeof(s) - 1)


/* what the parser reported of one part */

typedef struct {
    char                         name[STR_MAX];
    char                         filename[STR_MAX];
    char                         type[STR_MAX];
    ngx_uint_t                   is_file;
    u_char                       body[PART_BYTES];
    size_t                       len;
    ngx_uint_t                   ended;
} part_t;

/* and of a whole body: the parts, and any callback out of order */

typedef struct {
    part_t                       parts[PARTS];
    ngx_uint_t                   nparts;
    ngx_uint_t                   calls;
    ngx_uint_t                   bad;
    ngx_uint_t                   in_part;
    ngx_uint_t                   refuse;     /* part() refuses that part */
} rec_t;


static void
put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n > sizeof(b->data)) {
        abort();
    }

    ngx_memcpy(b->data + b->len, p, n);
    b->len += n;
}


static void
put_zeros(buf_t *b, size_t n)
{
    if (b->len + n > sizeof(b->data)) {
        abort();
    }

    ngx_memzero(b->data + b->len, n);
    b->len += n;
}


static void
put16(buf_t *b, uint32_t v, ngx_uint_t be)
{
    u_char  p[2];

    p[be ? 0 : 1] = (u_char) (v >> 8);
    p[be ? 1 : 0] = (u_char) v;

    put(b, p, 2);
}


static void
put32(buf_t *b, uint32_t v, ngx_uint_t be)
{
    put16(b, be ? v >> 16 : v & 0xffff, be);
    put16(b, be ? v & 0xffff : v >> 16, be);
}


static void
put24le(buf_t *b, uint32_t v)
{
    u_char  p[3];

    p[0] = (u_char) v;
    p[1] = (u_char) (v >> 8);
    p[2] = (u_char) (v >> 16);

    put(b, p, 3);
}


/*
 * ngx_chat_sniff() on exact heap copies of the head and of the claimed
 * type (NULL: no claim); the type it names is also checked to be the NUL
 * terminated string in s->buf.
 */

static void
sniff(const void *h, size_t len, const char *claimed, ngx_chat_sniff_t *s)
{
    u_char  *head, *type;
    size_t   n;

    n = claimed ? strlen(claimed) : 0;

    head = malloc(len ? len : 1);
    type = malloc(n ? n : 1);

    if (head == NULL || type == NULL) {
        abort();
    }

    ngx_memcpy(head, h, len);

    if (n) {
        ngx_memcpy(type, claimed, n);
    }

    ngx_chat_sniff(head, len, claimed ? type : NULL, n, s);

    free(head);
    free(type);

    ngx_chat_expect(s->type.data == s->buf);
    ngx_chat_expect(s->type.len <= NGX_CHAT_TYPE_MAX);
    ngx_chat_expect_int(s->buf[s->type.len], '\0');
}


#define sniff_literal(s, claimed, sn)                                         \
    sniff(s, sizeof(s) - 1, claimed, sn)


/* a PNG's signature and IHDR chunk, of that size */

static void
png(buf_t *b, uint32_t width, uint32_t height)
{
    put_literal(b, "\x89PNG\r\n\x1a\n");
    put32(b, 13, 1);
    put_literal(b, "IHDR");
    put32(b, width, 1);
    put32(b, height, 1);
    put_literal(b, "\x08\x06\x00\x00\x00");
    put32(b, 0x12345678, 1);
}


/*
 * An Exif block's TIFF header and IFD0: an ImageWidth entry, then the
 * Orientation entry, in either byte order.
 */

static void
tiff(buf_t *b, ngx_uint_t be, ngx_uint_t orientation)
{
    put(b, be ? "MM\0*" : "II*\0", 4);
    put32(b, 8, be);
    put16(b, 2, be);

    put16(b, 0x0100, be);
    put16(b, 3, be);
    put32(b, 1, be);
    put16(b, 800, be);
    put16(b, 0, be);

    put16(b, 0x0112, be);
    put16(b, 3, be);
    put32(b, 1, be);
    put16(b, orientation, be);
    put16(b, 0, be);

    put32(b, 0, be);
}


/* APP1 with "Exif\0\0" and a TIFF block */

static void
exif(buf_t *b, ngx_uint_t be, ngx_uint_t orientation)
{
    buf_t  t;

    t.len = 0;
    tiff(&t, be, orientation);

    put_literal(b, "\xff\xe1");
    put16(b, 2 + 6 + t.len, 1);
    put_literal(b, "Exif\0\0");
    put(b, t.data, t.len);
}


/* a baseline frame header (SOF0) of three components */

static void
sof(buf_t *b, u_char marker, uint32_t width, uint32_t height)
{
    put_literal(b, "\xff");
    put(b, &marker, 1);
    put16(b, 17, 1);
    put_literal(b, "\x08");
    put16(b, height, 1);
    put16(b, width, 1);
    put_literal(b, "\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01");
}


/*
 * A JPEG: SOI, a JFIF APP0, the Exif block (be: 1 big-endian, 0 little-
 * endian, -1 none) before or after the frame header, a quantization
 * table, then the scan.
 */

static void
jpeg(buf_t *b, ngx_int_t be, ngx_uint_t orientation, ngx_uint_t exif_after)
{
    put_literal(b, "\xff\xd8");
    put_literal(b, "\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01"
                   "\x00\x00");

    if (be >= 0 && !exif_after) {
        exif(b, be, orientation);
    }

    put_literal(b, "\xff\xdb\x00\x05\x00\x10\x0b");
    sof(b, 0xc0, 800, 600);

    if (be >= 0 && exif_after) {
        exif(b, be, orientation);
    }

    put_literal(b, "\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\xd2\xcf\x20");
    put_literal(b, "\xff\xd9");
}


/* a RIFF WebP of one chunk: its header, then its data */

static void
webp(buf_t *b, const char *chunk, buf_t *data)
{
    put_literal(b, "RIFF");
    put32(b, 4 + 8 + data->len, 0);
    put_literal(b, "WEBP");
    put(b, chunk, 4);
    put32(b, data->len, 0);
    put(b, data->data, data->len);
}


/* an ISO base media file's "ftyp" box, of a major and a compatible brand */

static void
ftyp(buf_t *b, const char *major, const char *compatible)
{
    put32(b, 20, 1);
    put_literal(b, "ftyp");
    put(b, major, 4);
    put32(b, 0x200, 1);
    put(b, compatible, 4);
    put32(b, 8, 1);
    put_literal(b, "mdat");
}


/* an EBML header naming its DocType */

static void
ebml(buf_t *b, const char *doctype)
{
    u_char  n;

    n = (u_char) strlen(doctype);

    put_literal(b, "\x1a\x45\xdf\xa3");
    put_literal(b, "\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04"
                   "\x42\xf3\x81\x08\x42\x82");
    n |= 0x80;
    put(b, &n, 1);
    put(b, doctype, strlen(doctype));
    put_literal(b, "\x42\x87\x81\x04\x42\x85\x81\x02");
}


/* an Ogg page of one packet, the codec's identification header */

static void
ogg(buf_t *b, const void *packet, size_t len)
{
    u_char  n;

    put_literal(b, "OggS");
    put_literal(b, "\x00\x02");
    put_zeros(b, 8 + 4 + 4 + 4);
    n = 1;
    put(b, &n, 1);
    n = (u_char) len;
    put(b, &n, 1);
    put(b, packet, len);
}


/* a ZIP local file header, its name, an extra field of that size, data */

static void
zip(buf_t *b, const char *name, size_t extra, const char *data)
{
    put_literal(b, "PK\x03\x04");
    put_literal(b, "\x14\x00\x00\x00\x00\x00");
    put_zeros(b, 4 + 4 + 4 + 4);
    put16(b, strlen(name), 0);
    put16(b, extra, 0);
    put(b, name, strlen(name));
    put_zeros(b, extra);
    put(b, data, strlen(data));
}


static void
test_sniff_png_gives_its_size_from_ihdr(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    png(&b, 640, 480);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_IMAGE);
    ngx_chat_expect_int(s.width, 640);
    ngx_chat_expect_int(s.height, 480);
    ngx_chat_expect_int(s.decodable, 1);
    ngx_chat_expect_int(s.from_bytes, 1);
    ngx_chat_expect_int(s.orientation, 0);
}


static void
test_sniff_png_claimed_as_text_is_a_png(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    png(&b, 16, 16);

    sniff(b.data, b.len, "text/plain", &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_IMAGE);
    ngx_chat_expect_int(s.from_bytes, 1);

    /* and one claimed as HTML too: the bytes win over any claim */
    sniff(b.data, b.len, "text/html", &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");
}


static void
test_sniff_png_of_a_size_nobody_makes_is_not_decodable(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    png(&b, 0x80000000, 10);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");
    ngx_chat_expect_int(s.width, 0);
    ngx_chat_expect_int(s.height, 0);
    ngx_chat_expect_int(s.decodable, 0);

    b.len = 0;
    png(&b, 10, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.width, 0);
    ngx_chat_expect_int(s.decodable, 0);
}


/* a PNG cut anywhere: still a PNG once the signature is whole, no size
   until the IHDR fields are, and no byte read past the cut */

static void
test_sniff_png_cut_anywhere_reads_only_len_bytes(void)
{
    size_t            k;
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    png(&b, 640, 480);

    sniff(b.data, 10, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");
    ngx_chat_expect_int(s.width, 0);
    ngx_chat_expect_int(s.decodable, 0);

    for (k = 0; k <= b.len; k++) {
        sniff(b.data, k, NULL, &s);

        ngx_chat_test_expect(s.width == (k >= 24 ? 640 : 0), __FILE__,
                             __LINE__, "width %u cut at %u",
                             (unsigned) s.width, (unsigned) k);

        if (k >= 8) {
            ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");

        } else {
            ngx_chat_expect_bytes(s.type.data, s.type.len,
                                  "application/octet-stream");
        }
    }
}


static void
test_sniff_jpeg_gives_its_size_from_sof0(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    jpeg(&b, -1, 0, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/jpeg");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_IMAGE);
    ngx_chat_expect_int(s.width, 800);
    ngx_chat_expect_int(s.height, 600);
    ngx_chat_expect_int(s.orientation, 0);
    ngx_chat_expect_int(s.decodable, 1);
}


static void
test_sniff_jpeg_progressive_frame_gives_its_size_too(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    put_literal(&b, "\xff\xd8");
    /* a Huffman table (C4) is no frame header, whatever its bytes */
    put_literal(&b, "\xff\xc4\x00\x08\x00\x01\x02\x03\x04\x05");
    sof(&b, 0xc2, 1024, 768);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.width, 1024);
    ngx_chat_expect_int(s.height, 768);
}


static void
test_sniff_jpeg_exif_orientation_in_either_byte_order(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    jpeg(&b, 1, 6, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/jpeg");
    ngx_chat_expect_int(s.orientation, 6);
    ngx_chat_expect_int(s.width, 800);
    ngx_chat_expect_int(s.height, 600);

    b.len = 0;
    jpeg(&b, 0, 6, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.orientation, 6);
    ngx_chat_expect_int(s.width, 800);

    b.len = 0;
    jpeg(&b, 0, 8, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.orientation, 8);
}


static void
test_sniff_jpeg_exif_after_the_frame_header_is_not_read(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    /* libjpeg has the frame by then: the size stands, no orientation */
    b.len = 0;
    jpeg(&b, 1, 6, 1);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.orientation, 0);
    ngx_chat_expect_int(s.width, 800);
}


static void
test_sniff_jpeg_orientation_out_of_range_is_none(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    jpeg(&b, 1, 9, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.orientation, 0);

    b.len = 0;
    jpeg(&b, 0, 0, 0);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_int(s.orientation, 0);
}


/* a JPEG cut anywhere, inside any segment: no byte read past the cut; the
   orientation once the APP1 is whole, the size once SOF0 is */

static void
test_sniff_jpeg_cut_anywhere_reads_only_len_bytes(void)
{
    size_t            k, app1_end, sof_end;
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    jpeg(&b, 1, 6, 0);

    /* SOI, APP0 of 18 bytes, APP1 of 2 + 46; DQT of 7, SOF0 of 19 */
    app1_end = 2 + 18 + 48;
    sof_end = app1_end + 7 + 19;

    for (k = 0; k <= b.len; k++) {
        sniff(b.data, k, NULL, &s);

        ngx_chat_test_expect(s.width == (k >= sof_end ? 800 : 0), __FILE__,
                             __LINE__, "width %u cut at %u",
                             (unsigned) s.width, (unsigned) k);
        ngx_chat_test_expect(s.orientation == (k >= app1_end ? 6 : 0),
                             __FILE__, __LINE__, "orientation %u cut at %u",
                             (unsigned) s.orientation, (unsigned) k);
        ngx_chat_test_expect(s.decodable == (k >= sof_end), __FILE__,
                             __LINE__, "decodable cut at %u", (unsigned) k);

        if (k >= 3) {
            ngx_chat_expect_bytes(s.type.data, s.type.len, "image/jpeg");
        }
    }
}


static void
test_sniff_gif_gives_its_size(void)
{
    ngx_chat_sniff_t  s;

    sniff_literal("GIF89a\x40\x01\xf0\x00\xf7\x00\x00", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/gif");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_IMAGE);
    ngx_chat_expect_int(s.width, 320);
    ngx_chat_expect_int(s.height, 240);
    ngx_chat_expect_int(s.decodable, 1);

    sniff_literal("GIF87a\x01\x00", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/gif");
    ngx_chat_expect_int(s.width, 0);
}


static void
test_sniff_webp_gives_its_size_in_each_form(void)
{
    buf_t             b, d;
    uint32_t          v;
    ngx_chat_sniff_t  s;

    /* lossy: a key frame; the top two bits of each size are its scale */
    d.len = 0;
    put_literal(&d, "\x30\x01\x00\x9d\x01\x2a");
    put16(&d, 0x4000 | 300, 0);
    put16(&d, 0xc000 | 200, 0);
    put_zeros(&d, 4);

    b.len = 0;
    webp(&b, "VP8 ", &d);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/webp");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_IMAGE);
    ngx_chat_expect_int(s.width, 300);
    ngx_chat_expect_int(s.height, 200);

    /* lossless: 14 bits each of width - 1 and height - 1 */
    v = (4000 - 1) | ((uint32_t) (3000 - 1) << 14);

    d.len = 0;
    put_literal(&d, "\x2f");
    put32(&d, v, 0);
    put_zeros(&d, 4);

    b.len = 0;
    webp(&b, "VP8L", &d);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/webp");
    ngx_chat_expect_int(s.width, 4000);
    ngx_chat_expect_int(s.height, 3000);

    /* extended: the canvas, 24 bits each of width - 1 and height - 1 */
    d.len = 0;
    put_literal(&d, "\x10\x00\x00\x00");
    put24le(&d, 70000 - 1);
    put24le(&d, 2 - 1);

    b.len = 0;
    webp(&b, "VP8X", &d);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/webp");
    ngx_chat_expect_int(s.width, 70000);
    ngx_chat_expect_int(s.height, 2);
    ngx_chat_expect_int(s.decodable, 1);
}


static void
test_sniff_iso_media_by_its_major_brand(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    ftyp(&b, "isom", "iso2");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/mp4");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_VIDEO);
    ngx_chat_expect_int(s.from_bytes, 1);

    b.len = 0;
    ftyp(&b, "mp42", "isom");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/mp4");

    b.len = 0;
    ftyp(&b, "M4A ", "mp42");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "audio/mp4");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_AUDIO);

    b.len = 0;
    ftyp(&b, "qt  ", "qt  ");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/quicktime");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_VIDEO);

    /* an image, but none a thumbnail is made of */
    b.len = 0;
    ftyp(&b, "avif", "mif1");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/avif");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_IMAGE);
    ngx_chat_expect_int(s.decodable, 0);
    ngx_chat_expect_int(s.width, 0);

    b.len = 0;
    ftyp(&b, "heic", "mif1");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/heic");

    b.len = 0;
    ftyp(&b, "3gp5", "isom");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/3gpp");

    /* "ftyp" without a brand says nothing */
    sniff_literal("\x00\x00\x00\x14" "ftyp", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");
}


static void
test_sniff_webm_and_matroska_by_the_doctype(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    ebml(&b, "webm");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/webm");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_VIDEO);

    b.len = 0;
    ebml(&b, "matroska");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/x-matroska");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_VIDEO);

    /* cut before the DocType: Matroska, the general case */
    sniff(b.data, 6, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/x-matroska");
}


static void
test_sniff_ogg_by_its_first_packet(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    ogg(&b, "OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00", 19);
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "audio/ogg");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_AUDIO);

    b.len = 0;
    ogg(&b, "\x80theora\x03\x02\x01\x00\x14\x00\x0f", 14);
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/ogg");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_VIDEO);
}


static void
test_sniff_mp3_by_its_tag_or_a_frame_header(void)
{
    ngx_chat_sniff_t  s;

    sniff_literal("ID3\x04\x00\x00\x00\x00\x00\x23TIT2", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "audio/mpeg");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_AUDIO);

    /* MPEG-1 layer III, 128 kbit/s, 44.1 kHz */
    sniff_literal("\xff\xfb\x90\x64\x00\x00", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "audio/mpeg");

    /* a reserved layer, a reserved version, a "bad" bitrate: no frame */
    sniff_literal("\xff\xf9\x90\x64", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");
    sniff_literal("\xff\xeb\x90\x64", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");
    sniff_literal("\xff\xfb\xf0\x64", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");
}


static void
test_sniff_flac_and_wav(void)
{
    ngx_chat_sniff_t  s;

    sniff_literal("fLaC\x00\x00\x00\x22\x10\x00", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "audio/flac");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_AUDIO);

    sniff_literal("RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "audio/wav");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_AUDIO);

    sniff_literal("RIFF\x24\x08\x00\x00" "AVI LIST", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/x-msvideo");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_VIDEO);
}


static void
test_sniff_pdf_and_archives_are_files(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    sniff_literal("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "application/pdf");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);
    ngx_chat_expect_int(s.from_bytes, 1);
    ngx_chat_expect_int(s.decodable, 0);

    sniff_literal("\x1f\x8b\x08\x00\x00\x00\x00\x00", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "application/gzip");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);

    /* tar: "ustar" at 257, after the name and the other fields */
    b.len = 0;
    put_literal(&b, "notes.txt");
    put_zeros(&b, 257 - b.len);
    put_literal(&b, "ustar\00000");
    put_zeros(&b, 512 - b.len);

    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "application/x-tar");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);

    /* cut inside the magic */
    sniff(b.data, 261, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");
}


static void
test_sniff_zip_tells_odf_and_office_documents(void)
{
    buf_t             b;
    ngx_chat_sniff_t  s;

    b.len = 0;
    zip(&b, "mimetype", 0, "application/vnd.oasis.opendocument.text");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/vnd.oasis.opendocument.text");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);

    /* the mimetype comes after the extra field */
    b.len = 0;
    zip(&b, "mimetype", 4, "application/vnd.oasis.opendocument.spreadsheet");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/vnd.oasis.opendocument.spreadsheet");

    b.len = 0;
    zip(&b, "[Content_Types].xml", 0, "<?xml version=\"1.0\"?><Types/>");
    zip(&b, "word/document.xml", 0, "<w:document/>");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/vnd.openxmlformats-officedocument."
                          "wordprocessingml.document");

    b.len = 0;
    zip(&b, "[Content_Types].xml", 0, "<Types/>");
    zip(&b, "xl/workbook.xml", 0, "<workbook/>");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/vnd.openxmlformats-officedocument."
                          "spreadsheetml.sheet");

    b.len = 0;
    zip(&b, "readme.txt", 0, "hello");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "application/zip");

    /* a mimetype of no format we know: a ZIP still */
    b.len = 0;
    zip(&b, "mimetype", 0, "application/x-unknown");
    sniff(b.data, b.len, NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "application/zip");
}


static void
test_sniff_unknown_bytes_keep_a_plain_claim_without_parameters(void)
{
    ngx_chat_sniff_t  s;

    sniff_literal("just some words\n", "text/plain; charset=utf-8", &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "text/plain");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);
    ngx_chat_expect_int(s.from_bytes, 0);
    ngx_chat_expect_int(s.decodable, 0);

    /* lowercased, leading blanks dropped */
    sniff_literal("x", "  Application/X-Custom+Zip", &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/x-custom+zip");

    /* a claim of an image is a file: only the bytes make an image */
    sniff_literal("not an image", "image/png", &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "image/png");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);
    ngx_chat_expect_int(s.from_bytes, 0);
    ngx_chat_expect_int(s.width, 0);

    sniff_literal("", "video/mp4", &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len, "video/mp4");
    ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);
}


static void
test_sniff_active_claims_become_octet_stream(void)
{
    ngx_uint_t         i;
    ngx_chat_sniff_t   s;

    static const char  *active[] = {
        "text/html", "image/svg+xml", "application/xhtml+xml",
        "text/javascript", "TEXT/HTML", "text/html; charset=utf-8",
        "application/javascript", "text/xml", "application/rss+xml",
        "text/x-html", "application/x-livescript", "text/css",
        "application/wasm", NULL
    };

    for (i = 0; active[i]; i++) {
        sniff_literal("<script>alert(1)</script>", active[i], &s);

        ngx_chat_test_expect(s.type.len == 24
                             && ngx_strcmp(s.buf,
                                           "application/octet-stream") == 0,
                             __FILE__, __LINE__,
                             "\"%s\" claimed to be octet-stream, got \"%s\"",
                             active[i], s.buf);
        ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);
        ngx_chat_expect_int(s.from_bytes, 0);
    }
}


static void
test_sniff_malformed_claims_become_octet_stream(void)
{
    ngx_uint_t         i;
    ngx_chat_sniff_t   s;

    static const char  *bad[] = {
        "a b/c", "text/", "/x", "text/plain\r\nX: y", "text", "",
        "text//plain", "text/pl/ain", "text/pla\"in", "text/plain\x7f",
        "te\xc3\xa9xt/plain", ";text/plain", NULL
    };

    for (i = 0; bad[i]; i++) {
        sniff_literal("nothing to see", bad[i], &s);

        ngx_chat_test_expect(ngx_strcmp(s.buf, "application/octet-stream")
                             == 0, __FILE__, __LINE__,
                             "\"%s\" claimed to be octet-stream, got \"%s\"",
                             bad[i], s.buf);
        ngx_chat_expect_int(s.kind, NGX_CHAT_KIND_FILE);
    }

    sniff_literal("nothing to see", NULL, &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");

    /* a claim longer than any type */
    sniff_literal("nothing to see",
                  ngx_chat_test_sprintf("application/%s",
                                        ngx_chat_test_repeat("x", 120)),
                  &s);
    ngx_chat_expect_bytes(s.type.data, s.type.len,
                          "application/octet-stream");
}


static void
test_type_active_names_what_a_browser_runs(void)
{
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "text/html"), 9), 1);
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "Image/SVG+XML"), 13), 1);
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "text/ecmascript"), 15), 1);

    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "text/plain"), 10), 0);
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "image/png"), 9), 0);
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "application/pdf"), 15), 0);

    /* only len bytes count: "text/htm" is no HTML */
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(
                            "text/htm"), 8), 0);
    ngx_chat_expect_int(ngx_chat_type_active(ngx_chat_test_literal(""), 0),
                        0);
}


/* ngx_chat_filename_clean() into an exact block of len + 5 bytes */

static char *
clean(const void *name, size_t len)
{
    u_char  *src, *dst;
    size_t   n;
    char    *r;

    src = ngx_chat_test_bytes(name, len);
    dst = malloc(len + 5);
    if (dst == NULL) {
        abort();
    }

    n = ngx_chat_filename_clean(dst, src, len);

    ngx_chat_expect(n >= 1 && n <= 255 && n <= ngx_max(len, 4));
    ngx_chat_expect_int(ngx_chat_utf8_valid(dst, n), NGX_OK);

    r = ngx_chat_test_sprintf("%.*s", (int) n, dst);
    free(dst);

    return r;
}


#define expect_clean(s, expected)                                             \
    expect_clean_at(s, sizeof(s) - 1, expected, __LINE__)


static void
expect_clean_at(const void *name, size_t len, const char *expected, int line)
{
    char  *r;

    r = clean(name, len);

    ngx_chat_test_expect_bytes((u_char *) r, strlen(r), expected, __FILE__,
                               line, "the clean name");
}


static void
test_filename_clean_keeps_the_last_path_component(void)
{
    expect_clean("report.pdf", "report.pdf");
    expect_clean("../../etc/passwd", "passwd");
    expect_clean("C:\\x\\y.txt", "y.txt");
    expect_clean("a/b\\c/d.txt", "d.txt");
    expect_clean("dir/", "file");
    expect_clean("/", "file");
}


static void
test_filename_clean_replaces_controls_with_underscores(void)
{
    expect_clean("a\0b.txt", "a_b.txt");
    expect_clean("a\x01\x1f\x7f.txt", "a___.txt");
    expect_clean("a\r\nb", "a__b");
    expect_clean("a\tb", "a_b");

    /* C1 controls, U+0085 (NEL) among them, one "_" a character */
    expect_clean("a\xc2\x85" "b", "a_b");
    expect_clean("\xc2\x80x\xc2\x9f", "_x_");

    /* U+00A0, just past them, stays */
    expect_clean("a\xc2\xa0" "b", "a\xc2\xa0" "b");
}


static void
test_filename_clean_drops_bidi_overrides_and_invisible_marks(void)
{
    /* "evil\u202Egnp.exe" displays as "evilexe.png" */
    expect_clean("evil\xe2\x80\xaegnp.exe", "evilgnp.exe");
    expect_clean("\xe2\x80\xae" "a.txt", "a.txt");
    expect_clean("a\xe2\x80\x8b" "b\xef\xbb\xbf" "c\xc2\xad" "d", "abcd");
    expect_clean("a\xe2\x81\xa6" "b\xe2\x80\x8f" "c", "abc");
    expect_clean("\xe2\x80\xae", "file");
}


static void
test_filename_clean_drops_leading_and_trailing_dots_and_spaces(void)
{
    expect_clean(".htaccess", "htaccess");
    expect_clean("  . .x", "x");
    expect_clean("...", "file");
    expect_clean("..", "file");
    expect_clean(" ", "file");
    expect_clean("report.pdf. ", "report.pdf");
    expect_clean("a.b.c", "a.b.c");
    expect_clean("\xe2\x80\xae.hidden", "hidden");
}


static void
test_filename_clean_replaces_bytes_that_are_not_utf8(void)
{
    expect_clean("\xff\xfe.txt", "__.txt");
    /* overlong "/", a surrogate, a code point over U+10FFFF */
    expect_clean("\xc0\xaf", "__");
    expect_clean("\xed\xa0\x80", "___");
    expect_clean("\xf4\x90\x80\x80", "____");
    /* a character cut at the end */
    expect_clean("a\xe2\x82", "a__");
    expect_clean("caf\xc3\xa9.txt", "caf\xc3\xa9.txt");
    expect_clean("\xf0\x9f\x98\x80.png", "\xf0\x9f\x98\x80.png");
}


static void
test_filename_clean_of_nothing_is_file(void)
{
    ngx_chat_expect_bytes(clean("", 0), 4, "file");
}


static void
test_filename_clean_cuts_a_long_name_keeping_the_extension(void)
{
    char  *name, *r;

    name = ngx_chat_test_sprintf("%s.pdf", ngx_chat_test_repeat("a", 996));
    r = clean(name, 1000);

    ngx_chat_expect_int(strlen(r), 255);
    ngx_chat_expect(strncmp(r, ngx_chat_test_repeat("a", 251), 251) == 0);
    ngx_chat_expect_bytes(r + 251, 4, ".pdf");

    /* an "extension" of over 16 bytes is no extension: a plain cut */
    name = ngx_chat_test_sprintf("%s.%s", ngx_chat_test_repeat("a", 900),
                                 ngx_chat_test_repeat("b", 99));
    r = clean(name, 1000);

    ngx_chat_expect_bytes(r, strlen(r), ngx_chat_test_repeat("a", 255));

    /* exactly 255 bytes: as it is */
    name = ngx_chat_test_repeat("z", 255);
    ngx_chat_expect_bytes(clean(name, 255), 255, name);
}


static void
test_filename_clean_cuts_a_long_name_at_a_character_boundary(void)
{
    char  *name, *r;

    /* 500 two-byte characters: byte 255 is the middle of one */
    name = ngx_chat_test_repeat("\xc3\xa9", 500);
    r = clean(name, 1000);

    ngx_chat_expect_int(strlen(r), 254);
    ngx_chat_expect_bytes(r, 254, ngx_chat_test_repeat("\xc3\xa9", 127));

    /* 250 four-byte characters, and the extension */
    name = ngx_chat_test_sprintf("%s.pdf",
                                 ngx_chat_test_repeat("\xf0\x9f\x98\x80",
                                                      249));
    r = clean(name, strlen(name));

    ngx_chat_expect_int(strlen(r), 252);
    ngx_chat_expect(ngx_chat_utf8_valid((u_char *) r, strlen(r)) == NGX_OK);
    ngx_chat_expect_bytes(r + strlen(r) - 4, 4, ".pdf");

    /* three-byte characters around a long extension of them */
    name = ngx_chat_test_sprintf("%s.\xe2\x82\xac\xe2\x82\xac",
                                 ngx_chat_test_repeat("\xe2\x82\xac", 333));
    r = clean(name, strlen(name));

    ngx_chat_expect(strlen(r) <= 255);
    ngx_chat_expect(ngx_chat_utf8_valid((u_char *) r, strlen(r)) == NGX_OK);
    ngx_chat_expect_bytes(r + strlen(r) - 7, 7, ".\xe2\x82\xac\xe2\x82\xac");
}


/*
 * A cut that ends on a dot or a space leaves none there: a name does not
 * end with them, which Windows would drop on saving.
 */

static void
test_filename_clean_cut_leaves_no_trailing_dot_or_space(void)
{
    char  *name, *r;

    name = ngx_chat_test_sprintf("%s. .%s", ngx_chat_test_repeat("a", 252),
                                 ngx_chat_test_repeat("b", 100));
    r = clean(name, strlen(name));

    ngx_chat_expect_bytes(r, strlen(r), ngx_chat_test_repeat("a", 252));
}


/* the header value written into a block of exactly _len() bytes */

static char *
disposition(const void *name, size_t len, ngx_uint_t show)
{
    u_char     *out, *last;
    size_t      n;
    char       *r;
    ngx_str_t   s;

    s.data = ngx_chat_test_bytes(name, len);
    s.len = len;

    n = ngx_chat_content_disposition_len(&s);

    out = malloc(n);
    if (out == NULL) {
        abort();
    }

    last = ngx_chat_content_disposition(out, &s, show);

    ngx_chat_expect(last >= out && (size_t) (last - out) <= n);

    r = ngx_chat_test_sprintf("%.*s", (int) (last - out), out);
    free(out);

    return r;
}


#define disposition_literal(s, show)  disposition(s, sizeof(s) - 1, show)


static void
test_content_disposition_of_an_ascii_name(void)
{
    char  *r;

    r = disposition_literal("report.pdf", 0);
    ngx_chat_expect_bytes(r, strlen(r), "attachment; filename=\"report.pdf\"; "
                          "filename*=UTF-8''report.pdf");

    r = disposition_literal("photo.png", 1);
    ngx_chat_expect_bytes(r, strlen(r), "inline; filename=\"photo.png\"; "
                          "filename*=UTF-8''photo.png");

    /* RFC 5987 attr-chars as they are */
    r = disposition_literal("a!#$&+-.^_`|~z", 0);
    ngx_chat_expect_bytes(r, strlen(r), "attachment; filename=\"a!#$&+-.^_`|~"
                          "z\"; filename*=UTF-8''a!#$&+-.^_`|~z");
}


static void
test_content_disposition_escapes_what_ascii_cannot_say(void)
{
    char  *r;

    r = disposition_literal("a\"b\\c%d \xc3\xa9.txt", 0);
    ngx_chat_expect_bytes(r, strlen(r), "attachment; filename=\"a_b_c_d __."
                          "txt\"; filename*=UTF-8''a%22b%5Cc%25d%20%C3%A9."
                          "txt");

    /* a name cannot end the header or start another */
    r = disposition_literal("x\r\nSet-Cookie: a=b", 1);
    ngx_chat_expect_bytes(r, strlen(r), "inline; filename=\"x__Set-Cookie: "
                          "a=b\"; filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a%"
                          "3Db");

    r = disposition_literal("\x00\x7f\xff;", 0);
    ngx_chat_expect_bytes(r, strlen(r), "attachment; filename=\"___;\"; "
                          "filename*=UTF-8''%00%7F%FF%3B");
}


static void
test_content_disposition_never_exceeds_its_len(void)
{
    u_char      name[256];
    size_t      i;
    ngx_str_t   s;

    for (i = 0; i < 256; i++) {
        name[i] = (u_char) i;
    }

    /* every byte, and names of only the longest encodings */
    (void) disposition(name, 256, 0);
    (void) disposition(name, 256, 1);
    (void) disposition(name + 0x80, 128, 0);
    (void) disposition("", 0, 0);

    /* which the longest reaches exactly */
    s.data = name + 0x80;
    s.len = 128;

    ngx_chat_expect_int(strlen(disposition(name + 0x80, 128, 0)),
                        ngx_chat_content_disposition_len(&s));
}


/* ngx_chat_multipart_boundary() on an exact copy of the type */

static ngx_int_t
boundary(const char *type, char **b)
{
    ngx_int_t  rc;
    ngx_str_t  v;

    ngx_str_null(&v);

    rc = ngx_chat_multipart_boundary(ngx_chat_test_bytes(type, strlen(type)),
                                     strlen(type), &v);

    *b = (rc == NGX_OK) ? ngx_chat_test_sprintf("%.*s", (int) v.len, v.data)
                        : NULL;

    return rc;
}


static void
test_multipart_boundary_quoted_or_not(void)
{
    char  *b;

    ngx_chat_expect_int(boundary("multipart/form-data; boundary=" BOUNDARY,
                                 &b), NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), BOUNDARY);

    ngx_chat_expect_int(boundary("multipart/form-data; boundary=\"a b:c=?\"",
                                 &b), NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), "a b:c=?");

    ngx_chat_expect_int(boundary("multipart/form-data;boundary=x", &b),
                        NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), "x");

    ngx_chat_expect_int(boundary("multipart/form-data; charset=utf-8; "
                                 "boundary=xyz; q=1", &b), NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), "xyz");

    ngx_chat_expect_int(boundary("Multipart/Form-Data; BOUNDARY=Abc", &b),
                        NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), "Abc");

    ngx_chat_expect_int(boundary("multipart/form-data ; boundary = \"q\" ",
                                 &b), NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), "q");
}


static void
test_multipart_boundary_missing_or_bad_is_an_error(void)
{
    char  *b;

    ngx_chat_expect_int(boundary("multipart/form-data", &b), NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data;", &b), NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; charset=utf-8", &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary=", &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary=\"\"", &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary=\"ab", &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary=a@b", &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary=\"ab \"",
                                 &b), NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary", &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary("multipart/form-data; boundary=\"a\rb\"",
                                 &b), NGX_ERROR);
}


static void
test_multipart_boundary_of_70_characters_at_most(void)
{
    char  *b, *b70, *b71;

    b70 = ngx_chat_test_repeat("b", 70);
    b71 = ngx_chat_test_repeat("b", 71);

    ngx_chat_expect_int(boundary(ngx_chat_test_sprintf(
                            "multipart/form-data; boundary=%s", b70), &b),
                        NGX_OK);
    ngx_chat_expect_bytes(b, strlen(b), b70);

    ngx_chat_expect_int(boundary(ngx_chat_test_sprintf(
                            "multipart/form-data; boundary=%s", b71), &b),
                        NGX_ERROR);
    ngx_chat_expect_int(boundary(ngx_chat_test_sprintf(
                            "multipart/form-data; boundary=\"%s\"", b71), &b),
                        NGX_ERROR);
}


static void
test_multipart_boundary_of_another_type_is_declined(void)
{
    char  *b;

    ngx_chat_expect_int(boundary("", &b), NGX_DECLINED);
    ngx_chat_expect_int(boundary("application/json", &b), NGX_DECLINED);
    ngx_chat_expect_int(boundary("multipart/mixed; boundary=x", &b),
                        NGX_DECLINED);
    ngx_chat_expect_int(boundary("multipart/form-datax; boundary=x", &b),
                        NGX_DECLINED);
    ngx_chat_expect_int(boundary("multipart/form-dat", &b), NGX_DECLINED);
}


/* a part's string as a C string: they are valid in part() only */

static void
copy_str(char *dst, ngx_str_t *s)
{
    size_t  n;

    n = ngx_min(s->len, STR_MAX - 1);

    if (n) {
        ngx_memcpy(dst, s->data, n);
    }

    dst[n] = '\0';
}


static ngx_int_t
rec_part(ngx_chat_multipart_t *mp, ngx_chat_mp_part_t *part)
{
    rec_t   *r;
    part_t  *pt;

    r = mp->data;
    r->calls++;

    if (r->in_part || r->nparts == PARTS) {
        r->bad++;
        return NGX_ERROR;
    }

    pt = &r->parts[r->nparts++];
    ngx_memzero(pt, sizeof(part_t));

    copy_str(pt->name, &part->name);
    copy_str(pt->filename, &part->filename);
    copy_str(pt->type, &part->content_type);
    pt->is_file = part->is_file;

    r->in_part = 1;

    return (r->refuse == r->nparts) ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
rec_body(ngx_chat_multipart_t *mp, u_char *p, size_t len)
{
    rec_t   *r;
    part_t  *pt;

    r = mp->data;
    r->calls++;

    /* bytes only inside a part, and never none */
    if (!r->in_part || len == 0) {
        r->bad++;
        return NGX_ERROR;
    }

    pt = &r->parts[r->nparts - 1];

    if (pt->len + len > PART_BYTES) {
        r->bad++;
        return NGX_ERROR;
    }

    ngx_memcpy(pt->body + pt->len, p, len);
    pt->len += len;

    return NGX_OK;
}


static ngx_int_t
rec_end(ngx_chat_multipart_t *mp)
{
    rec_t  *r;

    r = mp->data;
    r->calls++;

    if (!r->in_part) {
        r->bad++;
        return NGX_ERROR;
    }

    r->parts[r->nparts - 1].ended = 1;
    r->in_part = 0;

    return NGX_OK;
}


static void
mp_init(ngx_chat_multipart_t *mp, rec_t *r, const char *b, size_t header_max,
    ngx_uint_t parts_max)
{
    ngx_memzero(r, sizeof(rec_t));
    ngx_memzero(mp, sizeof(ngx_chat_multipart_t));

    mp->boundary.data = (u_char *) b;
    mp->boundary.len = strlen(b);
    mp->header_max = header_max;
    mp->parts_max = parts_max;
    mp->part = rec_part;
    mp->body = rec_body;
    mp->end = rec_end;
    mp->data = r;

    ngx_chat_multipart_init(mp);
}


/* one read of nginx's: an exact heap copy, gone once fed */

static ngx_int_t
feed(ngx_chat_multipart_t *mp, const u_char *p, size_t len)
{
    u_char     *copy;
    ngx_int_t   rc;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, p, len);
    rc = ngx_chat_multipart_feed(mp, copy, len);

    /* the parser keeps nothing that points into a read */
    ngx_memset(copy, 0xee, len);
    free(copy);

    return rc;
}


/*
 * The body in reads of "piece" bytes (0: one read), or, with "at", in two
 * reads split there; then the end of the body.  NGX_ERROR as soon as one
 * fails, and the rest is not fed.
 */

static ngx_int_t
parse(ngx_chat_multipart_t *mp, const u_char *p, size_t len, size_t piece,
    size_t at)
{
    size_t  n, off;

    if (at) {
        if (feed(mp, p, at) != NGX_OK || feed(mp, p + at, len - at) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_chat_multipart_finish(mp);
    }

    for (off = 0; off < len; off += n) {
        n = piece ? ngx_min(piece, len - off) : len;

        if (feed(mp, p + off, n) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_chat_multipart_finish(mp);
}


/* a body parsed with its own parser, whole, and the result */

static ngx_int_t
parse_body(rec_t *r, ngx_chat_multipart_t *mp, const char *b, buf_t *body,
    size_t header_max, ngx_uint_t parts_max)
{
    mp_init(mp, r, b, header_max, parts_max);

    return parse(mp, body->data, body->len, 0, 0);
}


static ngx_uint_t
same(rec_t *a, rec_t *b)
{
    ngx_uint_t   i;
    part_t      *x, *y;

    if (a->nparts != b->nparts || a->bad || b->bad) {
        return 0;
    }

    for (i = 0; i < a->nparts; i++) {
        x = &a->parts[i];
        y = &b->parts[i];

        if (strcmp(x->name, y->name) != 0
            || strcmp(x->filename, y->filename) != 0
            || strcmp(x->type, y->type) != 0 || x->is_file != y->is_file
            || x->len != y->len || memcmp(x->body, y->body, x->len) != 0
            || x->ended != y->ended)
        {
            return 0;
        }
    }

    return 1;
}


/* what a file part holds that looks like, but is not, its delimiter */

static void
tricky_content(buf_t *b)
{
    put_literal(b, "x\ry\r\nz\n\r\r\n-\r\n--");
    put_literal(b, "\r\n--" BOUNDARY_PREFIX "X");
    put_literal(b, "\0\xff\r\n-" BOUNDARY "\r\n--");
    put(b, "\r\n--" BOUNDARY, sizeof("\r\n--" BOUNDARY) - 2);
    put_literal(b, "\r\r");
}


/* a text field, a file of that content, and another text field */

static void
form(buf_t *b, const char *preamble, const char *padding,
    const char *epilogue)
{
    put(b, preamble, strlen(preamble));
    put_literal(b, "--" BOUNDARY);
    put(b, padding, strlen(padding));
    put_literal(b, "\r\n"
                   "Content-Disposition: form-data; name=\"text\"\r\n"
                   "\r\n"
                   "hello\r\n"
                   "--" BOUNDARY);
    put(b, padding, strlen(padding));
    put_literal(b, "\r\n"
                   "Content-Disposition: form-data; name=\"file\"; "
                   "filename=\"a.bin\"\r\n"
                   "Content-Type: application/octet-stream\r\n"
                   "\r\n");
    tricky_content(b);
    put_literal(b, "\r\n--" BOUNDARY);
    put(b, padding, strlen(padding));
    put_literal(b, "\r\n"
                   "content-disposition: FORM-DATA; NAME=caption\r\n"
                   "\r\n"
                   "two\r\nlines\r\n"
                   "--" BOUNDARY "--");
    put(b, epilogue, strlen(epilogue));
}


static void
expect_form(rec_t *r)
{
    buf_t  content;

    content.len = 0;
    tricky_content(&content);

    ngx_chat_expect_int(r->bad, 0);
    ngx_chat_expect_int(r->nparts, 3);
    ngx_chat_expect_int(r->in_part, 0);

    ngx_chat_expect_bytes(r->parts[0].name, strlen(r->parts[0].name),
                          "text");
    ngx_chat_expect_int(r->parts[0].is_file, 0);
    ngx_chat_expect_bytes(r->parts[0].body, r->parts[0].len, "hello");
    ngx_chat_expect_int(r->parts[0].ended, 1);

    ngx_chat_expect_bytes(r->parts[1].name, strlen(r->parts[1].name),
                          "file");
    ngx_chat_expect_bytes(r->parts[1].filename,
                          strlen(r->parts[1].filename), "a.bin");
    ngx_chat_expect_bytes(r->parts[1].type, strlen(r->parts[1].type),
                          "application/octet-stream");
    ngx_chat_expect_int(r->parts[1].is_file, 1);
    ngx_chat_expect_int(r->parts[1].len, content.len);
    ngx_chat_expect(memcmp(r->parts[1].body, content.data, content.len)
                    == 0);
    ngx_chat_expect_int(r->parts[1].ended, 1);

    ngx_chat_expect_bytes(r->parts[2].name, strlen(r->parts[2].name),
                          "caption");
    ngx_chat_expect_int(r->parts[2].is_file, 0);
    ngx_chat_expect_bytes(r->parts[2].body, r->parts[2].len,
                          "two\r\nlines");
    ngx_chat_expect_int(r->parts[2].ended, 1);
}


static void
test_multipart_form_fed_whole(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "", "", "\r\n");

    ngx_chat_expect_int(parse_body(&r, &mp, BOUNDARY, &b, 0, 8), NGX_OK);
    ngx_chat_expect(mp.error == NULL);
    expect_form(&r);
}


static void
test_multipart_form_fed_byte_by_byte(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "", "", "\r\n");

    mp_init(&mp, &r, BOUNDARY, 0, 8);
    ngx_chat_expect_int(parse(&mp, b.data, b.len, 1, 0), NGX_OK);
    expect_form(&r);

    mp_init(&mp, &r, BOUNDARY, 0, 8);
    ngx_chat_expect_int(parse(&mp, b.data, b.len, 7, 0), NGX_OK);
    expect_form(&r);
}


static void
test_multipart_form_split_anywhere_gives_the_same_parts(void)
{
    size_t                at;
    buf_t                 b;
    rec_t                 whole, r;
    ngx_int_t             rc;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "", "", "\r\n");

    ngx_chat_expect_int(parse_body(&whole, &mp, BOUNDARY, &b, 0, 8), NGX_OK);

    for (at = 1; at < b.len; at++) {
        mp_init(&mp, &r, BOUNDARY, 0, 8);
        rc = parse(&mp, b.data, b.len, 0, at);

        ngx_chat_test_expect(rc == NGX_OK && same(&whole, &r), __FILE__,
                             __LINE__, "the same parts split at %u of %u",
                             (unsigned) at, (unsigned) b.len);
    }

    expect_form(&whole);
}


static void
test_multipart_preamble_and_epilogue_are_ignored(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "This is a preamble.\r\n--" BOUNDARY_PREFIX "-not\r\n", "",
         "\r\nand an epilogue, --" BOUNDARY "\r\n\r\n--" BOUNDARY "\r\n");

    ngx_chat_expect_int(parse_body(&r, &mp, BOUNDARY, &b, 0, 8), NGX_OK);
    expect_form(&r);

    /* or only the CRLF that ends a preamble */
    b.len = 0;
    form(&b, "\r\n", "", "");

    ngx_chat_expect_int(parse_body(&r, &mp, BOUNDARY, &b, 0, 8), NGX_OK);
    expect_form(&r);
}


static void
test_multipart_transport_padding_is_accepted(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "", "  \t ", "");

    ngx_chat_expect_int(parse_body(&r, &mp, BOUNDARY, &b, 0, 8), NGX_OK);
    expect_form(&r);
}


static void
test_multipart_filenames_quoted_and_extended(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    put_literal(&b, "--B\r\n"
                    "Content-Disposition: form-data; name=\"f\"; "
                    "filename=\"fallback.txt\"; "
                    "filename*=UTF-8''%C3%A9.txt\r\n"
                    "\r\n"
                    "1\r\n"
                    "--B\r\n"
                    "Content-Disposition: form-data; name=\"g\"; "
                    "filename*=utf-8'en'%E2%82%AC%20a+b.txt\r\n"
                    "\r\n"
                    "2\r\n"
                    "--B\r\n"
                    "Content-Disposition: form-data; name=\"h\"; "
                    "filename*=ISO-8859-1''%E9.txt; filename=\"ok.txt\"\r\n"
                    "\r\n"
                    "3\r\n"
                    "--B\r\n"
                    "Content-Disposition: form-data; name=\"i\"; "
                    "filename=\"a\\\"b\\\\c.txt\"\r\n"
                    "\r\n"
                    "4\r\n"
                    "--B\r\n"
                    "Content-Disposition: form-data; name=\"j\"; "
                    "filename=\"\"\r\n"
                    "Content-Type: image/png\r\n"
                    "\r\n"
                    "\r\n"
                    "--B--");

    ngx_chat_expect_int(parse_body(&r, &mp, "B", &b, 0, 8), NGX_OK);
    ngx_chat_expect_int(r.nparts, 5);
    ngx_chat_expect_int(r.bad, 0);

    ngx_chat_expect_bytes(r.parts[0].filename, strlen(r.parts[0].filename),
                          "\xc3\xa9.txt");
    ngx_chat_expect_int(r.parts[0].is_file, 1);

    /* RFC 8187: "+" is an attr-char, itself; no form encoding here */
    ngx_chat_expect_bytes(r.parts[1].filename, strlen(r.parts[1].filename),
                          "\xe2\x82\xac a+b.txt");

    /* a charset other than UTF-8: the plain filename stands */
    ngx_chat_expect_bytes(r.parts[2].filename, strlen(r.parts[2].filename),
                          "ok.txt");

    ngx_chat_expect_bytes(r.parts[3].filename, strlen(r.parts[3].filename),
                          "a\"b\\c.txt");
    ngx_chat_expect_bytes(r.parts[3].body, r.parts[3].len, "4");

    /* an empty filename is still a file, of no name */
    ngx_chat_expect_int(r.parts[4].is_file, 1);
    ngx_chat_expect_int(strlen(r.parts[4].filename), 0);
    ngx_chat_expect_bytes(r.parts[4].type, strlen(r.parts[4].type),
                          "image/png");
    ngx_chat_expect_int(r.parts[4].len, 0);
    ngx_chat_expect_int(r.parts[4].ended, 1);
}


static void
test_multipart_boundary_of_70_characters_parses(void)
{
    char                  *b70;
    buf_t                  b;
    rec_t                  r;
    size_t                 at;
    ngx_int_t              rc;
    ngx_chat_multipart_t   mp;

    b70 = ngx_chat_test_repeat("-", 70);

    b.len = 0;
    put_literal(&b, "--");
    put(&b, b70, 70);
    put_literal(&b, "\r\nContent-Disposition: form-data; name=a\r\n\r\n");
    /* the boundary less one dash, then more dashes than it has */
    put_literal(&b, "\r\n-");
    put(&b, b70, 70);
    put_literal(&b, "\r\n");
    put(&b, b70, 70);
    put_literal(&b, "\r\n--");
    put(&b, b70, 70);
    put_literal(&b, "--");

    for (at = 0; at < b.len; at++) {
        mp_init(&mp, &r, b70, 0, 8);
        rc = parse(&mp, b.data, b.len, 0, at);

        ngx_chat_test_expect(rc == NGX_OK && r.nparts == 1
                             && r.parts[0].len == 3 + 70 + 2 + 70
                             && r.parts[0].ended, __FILE__, __LINE__,
                             "one part of 145 bytes split at %u",
                             (unsigned) at);
    }
}


/* a whole body of one part, fed after a failure */
#define MORE  "--B\r\nContent-Disposition: form-data; name=z\r\n\r\n\r\n--B--"


/* a malformed body: NGX_ERROR with a reason, once the malformed byte or
   the end of the body is reached, however it is split */

static void
expect_malformed(const char *body, size_t header_max, ngx_uint_t parts_max,
    const char *why)
{
    size_t                 len, at;
    rec_t                  r;
    ngx_uint_t             calls;
    ngx_chat_multipart_t   mp;

    len = strlen(body);

    for (at = 0; at < len; at++) {
        mp_init(&mp, &r, "B", header_max, parts_max);

        ngx_chat_test_expect(parse(&mp, (u_char *) body, len, 0, at)
                             == NGX_ERROR, __FILE__, __LINE__,
                             "NGX_ERROR split at %u: %s", (unsigned) at,
                             body);
        ngx_chat_test_expect(mp.error && strstr(mp.error, why), __FILE__,
                             __LINE__, "\"%s\" split at %u, got \"%s\"",
                             why, (unsigned) at,
                             mp.error ? mp.error : "(null)");
        ngx_chat_expect_int(r.bad, 0);

        /* nothing more is taken, and the end stays an error */
        calls = r.calls;

        ngx_chat_expect_int(feed(&mp, (u_char *) MORE, sizeof(MORE) - 1),
                            NGX_ERROR);
        ngx_chat_expect_int(ngx_chat_multipart_finish(&mp), NGX_ERROR);
        ngx_chat_expect_int(r.calls, calls);
        ngx_chat_expect(mp.error && strstr(mp.error, why));
    }
}


#define CD  "Content-Disposition: "


static void
test_multipart_without_its_closing_boundary_fails(void)
{
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n\r\nvalue",
                     0, 8, "before its closing boundary");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n\r\nvalue\r\n--B",
                     0, 8, "before its closing boundary");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n\r\nv\r\n--B-",
                     0, 8, "before its closing boundary");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n\r\nv\r\n--B\r\n",
                     0, 8, "before its closing boundary");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n", 0, 8,
                     "before its closing boundary");
}


static void
test_multipart_without_a_part_fails(void)
{
    rec_t                 r;
    ngx_chat_multipart_t  mp;

    mp_init(&mp, &r, "B", 0, 8);
    ngx_chat_expect_int(ngx_chat_multipart_finish(&mp), NGX_ERROR);
    ngx_chat_expect_has(mp.error, "no part");

    expect_malformed("just a preamble\r\n", 0, 8, "no part");
    expect_malformed("--C\r\n" CD "form-data; name=a\r\n\r\nv\r\n--C--", 0,
                     8, "no part");

    /* a closing delimiter alone: RFC 2046 wants a part before it */
    expect_malformed("--B--", 0, 8, "no part");
    expect_malformed("preamble\r\n--B--\r\n", 0, 8, "no part");
}


static void
test_multipart_headers_over_header_max_fail(void)
{
    size_t                n;
    rec_t                 r;
    ngx_chat_multipart_t  mp;
    const char           *ok;

    ok = "--B\r\n" CD "form-data; name=abcdefghijk\r\n\r\nv\r\n--B--";

    /* the header block with its empty line fills header_max exactly */
    n = sizeof(CD "form-data; name=abcdefghijk\r\n\r\n") - 1;

    mp_init(&mp, &r, "B", n, 8);
    ngx_chat_expect_int(parse(&mp, (u_char *) ok, strlen(ok), 0, 0), NGX_OK);
    ngx_chat_expect_int(r.nparts, 1);

    expect_malformed(ok, n - 1, 8, "headers are too long");

    /* headers that never end, in a body that does */
    expect_malformed("--B\r\n" CD "form-data; name=a\r\nX: y\r\nv\r\n--B--",
                     30, 8, "headers are too long");

    /* header_max is at most NGX_CHAT_MP_HEAD_MAX, and 0 means it */
    mp_init(&mp, &r, "B", 1000000, 8);
    ngx_chat_expect_int(mp.header_max, NGX_CHAT_MP_HEAD_MAX);
    mp_init(&mp, &r, "B", 0, 8);
    ngx_chat_expect_int(mp.header_max, NGX_CHAT_MP_HEAD_MAX);
}


static void
test_multipart_more_parts_than_parts_max_fail(void)
{
    rec_t                 r;
    ngx_chat_multipart_t  mp;
    const char           *two;

    two = "--B\r\n" CD "form-data; name=a\r\n\r\n1\r\n"
          "--B\r\n" CD "form-data; name=b\r\n\r\n2\r\n--B--";

    mp_init(&mp, &r, "B", 0, 2);
    ngx_chat_expect_int(parse(&mp, (u_char *) two, strlen(two), 0, 0),
                        NGX_OK);
    ngx_chat_expect_int(r.nparts, 2);

    expect_malformed(two, 0, 1, "too many parts");

    /* the first part was taken whole before the second was refused */
    mp_init(&mp, &r, "B", 0, 1);
    ngx_chat_expect_int(parse(&mp, (u_char *) two, strlen(two), 0, 0),
                        NGX_ERROR);
    ngx_chat_expect_int(r.nparts, 1);
    ngx_chat_expect_int(r.parts[0].ended, 1);
}


static void
test_multipart_part_without_a_form_data_disposition_fails(void)
{
    expect_malformed("--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--",
                     0, 8, "no Content-Disposition");
    expect_malformed("--B\r\n\r\nv\r\n--B--", 0, 8,
                     "no Content-Disposition");

    expect_malformed("--B\r\n" CD "attachment; name=a\r\n\r\nv\r\n--B--",
                     0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-data\r\n\r\nv\r\n--B--",
                     0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-data; filename=a\r\n\r\nv\r\n--B--",
                     0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-data; name=\"\"\r\n\r\nv\r\n--B--",
                     0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-data; name=a; name=b\r\n\r\nv\r\n"
                     "--B--", 0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-datum; name=a\r\n\r\nv\r\n--B--",
                     0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-data; name=\"a\r\n\r\nv\r\n--B--",
                     0, 8, "not form-data with a name");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n" CD "form-data; "
                     "name=b\r\n\r\nv\r\n--B--", 0, 8,
                     "not form-data with a name");
}


static void
test_multipart_boundary_followed_by_garbage_fails(void)
{
    expect_malformed("--Bx", 0, 8, "boundary appears inside a part");
    expect_malformed("--B \tx\r\n", 0, 8, "boundary appears inside a part");
    expect_malformed("--B\rx", 0, 8, "boundary appears inside a part");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n\r\nv\r\n--B-x",
                     0, 8, "boundary appears inside a part");
    expect_malformed("--B\r\n" CD "form-data; name=a\r\n\r\nv\r\n--Bx\r\n"
                     "--B--", 0, 8, "boundary appears inside a part");
}


static void
test_multipart_malformed_header_lines_fail(void)
{
    expect_malformed("--B\r\n" CD "form-data; name=a\r\nNo colon here\r\n"
                     "\r\nv\r\n--B--", 0, 8, "is not \"Name: value\"");
    expect_malformed("--B\r\n: no name\r\n\r\nv\r\n--B--", 0, 8,
                     "is not \"Name: value\"");
    expect_malformed("--B\r\n" CD "form-data; name=a\rX: y\r\n\r\nv\r\n"
                     "--B--", 0, 8, "control character");
    expect_malformed("--B\r\n" CD "form-data; name=a\nX: y\r\n\r\nv\r\n"
                     "--B--", 0, 8, "control character");
}


static void
test_multipart_header_with_a_nul_fails(void)
{
    size_t                 at;
    rec_t                  r;
    ngx_chat_multipart_t   mp;

    static const u_char    body[] = "--B\r\n" CD "form-data; name=a\0b\r\n"
                                    "\r\nv\r\n--B--";

    for (at = 0; at < sizeof(body) - 1; at++) {
        mp_init(&mp, &r, "B", 0, 8);
        ngx_chat_expect_int(parse(&mp, body, sizeof(body) - 1, 0, at),
                            NGX_ERROR);
        ngx_chat_expect_has(mp.error, "control character");
        ngx_chat_expect_int(r.calls, 0);
    }
}


static void
test_multipart_refused_part_stops_the_parser(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_uint_t            refuse, calls;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "", "", "");

    for (refuse = 1; refuse <= 3; refuse++) {
        mp_init(&mp, &r, BOUNDARY, 0, 8);
        r.refuse = refuse;

        ngx_chat_expect_int(parse(&mp, b.data, b.len, 0, 0), NGX_ERROR);
        ngx_chat_expect_has(mp.error, "refused");
        ngx_chat_expect_int(r.bad, 0);

        /* the refused part got no byte, and none came after it */
        ngx_chat_expect_int(r.nparts, refuse);
        ngx_chat_expect_int(r.parts[refuse - 1].len, 0);
        ngx_chat_expect_int(r.parts[refuse - 1].ended, 0);

        calls = r.calls;
        ngx_chat_expect_int(feed(&mp, b.data, b.len), NGX_ERROR);
        ngx_chat_expect_int(ngx_chat_multipart_finish(&mp), NGX_ERROR);
        ngx_chat_expect_int(r.calls, calls);
    }

    /* byte by byte too */
    mp_init(&mp, &r, BOUNDARY, 0, 8);
    r.refuse = 2;

    ngx_chat_expect_int(parse(&mp, b.data, b.len, 1, 0), NGX_ERROR);
    ngx_chat_expect_int(r.nparts, 2);
    ngx_chat_expect_bytes(r.parts[0].body, r.parts[0].len, "hello");
    ngx_chat_expect_int(r.parts[1].len, 0);
}


static ngx_int_t
refuse_body(ngx_chat_multipart_t *mp, u_char *p, size_t len)
{
    rec_t  *r;

    r = mp->data;

    if (r->nparts == 2) {
        r->calls++;
        return NGX_ERROR;
    }

    return rec_body(mp, p, len);
}


static ngx_int_t
refuse_end(ngx_chat_multipart_t *mp)
{
    rec_t  *r;

    r = mp->data;
    r->calls++;

    return NGX_ERROR;
}


static void
test_multipart_refused_bytes_or_end_stop_the_parser(void)
{
    buf_t                 b;
    rec_t                 r;
    ngx_uint_t            calls;
    ngx_chat_multipart_t  mp;

    b.len = 0;
    form(&b, "", "", "");

    mp_init(&mp, &r, BOUNDARY, 0, 8);
    mp.body = refuse_body;

    ngx_chat_expect_int(parse(&mp, b.data, b.len, 3, 0), NGX_ERROR);
    ngx_chat_expect_has(mp.error, "refused");
    ngx_chat_expect_int(r.nparts, 2);

    calls = r.calls;
    ngx_chat_expect_int(feed(&mp, b.data, b.len), NGX_ERROR);
    ngx_chat_expect_int(r.calls, calls);

    mp_init(&mp, &r, BOUNDARY, 0, 8);
    mp.end = refuse_end;

    ngx_chat_expect_int(parse(&mp, b.data, b.len, 0, 0), NGX_ERROR);
    ngx_chat_expect_has(mp.error, "refused");
    ngx_chat_expect_int(r.nparts, 1);
    ngx_chat_expect_bytes(r.parts[0].body, r.parts[0].len, "hello");
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_sniff_png_gives_its_size_from_ihdr),
    ngx_chat_test(test_sniff_png_claimed_as_text_is_a_png),
    ngx_chat_test(test_sniff_png_of_a_size_nobody_makes_is_not_decodable),
    ngx_chat_test(test_sniff_png_cut_anywhere_reads_only_len_bytes),
    ngx_chat_test(test_sniff_jpeg_gives_its_size_from_sof0),
    ngx_chat_test(test_sniff_jpeg_progressive_frame_gives_its_size_too),
    ngx_chat_test(test_sniff_jpeg_exif_orientation_in_either_byte_order),
    ngx_chat_test(test_sniff_jpeg_exif_after_the_frame_header_is_not_read),
    ngx_chat_test(test_sniff_jpeg_orientation_out_of_range_is_none),
    ngx_chat_test(test_sniff_jpeg_cut_anywhere_reads_only_len_bytes),
    ngx_chat_test(test_sniff_gif_gives_its_size),
    ngx_chat_test(test_sniff_webp_gives_its_size_in_each_form),
    ngx_chat_test(test_sniff_iso_media_by_its_major_brand),
    ngx_chat_test(test_sniff_webm_and_matroska_by_the_doctype),
    ngx_chat_test(test_sniff_ogg_by_its_first_packet),
    ngx_chat_test(test_sniff_mp3_by_its_tag_or_a_frame_header),
    ngx_chat_test(test_sniff_flac_and_wav),
    ngx_chat_test(test_sniff_pdf_and_archives_are_files),
    ngx_chat_test(test_sniff_zip_tells_odf_and_office_documents),
    ngx_chat_test(
        test_sniff_unknown_bytes_keep_a_plain_claim_without_parameters),
    ngx_chat_test(test_sniff_active_claims_become_octet_stream),
    ngx_chat_test(test_sniff_malformed_claims_become_octet_stream),
    ngx_chat_test(test_type_active_names_what_a_browser_runs),
    ngx_chat_test(test_filename_clean_keeps_the_last_path_component),
    ngx_chat_test(test_filename_clean_replaces_controls_with_underscores),
    ngx_chat_test(test_filename_clean_drops_bidi_overrides_and_invisible_marks),
    ngx_chat_test(
        test_filename_clean_drops_leading_and_trailing_dots_and_spaces),
    ngx_chat_test(test_filename_clean_replaces_bytes_that_are_not_utf8),
    ngx_chat_test(test_filename_clean_of_nothing_is_file),
    ngx_chat_test(test_filename_clean_cuts_a_long_name_keeping_the_extension),
    ngx_chat_test(
        test_filename_clean_cuts_a_long_name_at_a_character_boundary),
    ngx_chat_test(test_filename_clean_cut_leaves_no_trailing_dot_or_space),
    ngx_chat_test(test_content_disposition_of_an_ascii_name),
    ngx_chat_test(test_content_disposition_escapes_what_ascii_cannot_say),
    ngx_chat_test(test_content_disposition_never_exceeds_its_len),
    ngx_chat_test(test_multipart_boundary_quoted_or_not),
    ngx_chat_test(test_multipart_boundary_missing_or_bad_is_an_error),
    ngx_chat_test(test_multipart_boundary_of_70_characters_at_most),
    ngx_chat_test(test_multipart_boundary_of_another_type_is_declined),
    ngx_chat_test(test_multipart_form_fed_whole),
    ngx_chat_test(test_multipart_form_fed_byte_by_byte),
    ngx_chat_test(test_multipart_form_split_anywhere_gives_the_same_parts),
    ngx_chat_test(test_multipart_preamble_and_epilogue_are_ignored),
    ngx_chat_test(test_multipart_transport_padding_is_accepted),
    ngx_chat_test(test_multipart_filenames_quoted_and_extended),
    ngx_chat_test(test_multipart_boundary_of_70_characters_parses),
    ngx_chat_test(test_multipart_without_its_closing_boundary_fails),
    ngx_chat_test(test_multipart_without_a_part_fails),
    ngx_chat_test(test_multipart_headers_over_header_max_fail),
    ngx_chat_test(test_multipart_more_parts_than_parts_max_fail),
    ngx_chat_test(test_multipart_part_without_a_form_data_disposition_fails),
    ngx_chat_test(test_multipart_boundary_followed_by_garbage_fails),
    ngx_chat_test(test_multipart_malformed_header_lines_fail),
    ngx_chat_test(test_multipart_header_with_a_nul_fails),
    ngx_chat_test(test_multipart_refused_part_stops_the_parser),
    ngx_chat_test(test_multipart_refused_bytes_or_end_stop_the_parser),
    ngx_chat_null_test
};
