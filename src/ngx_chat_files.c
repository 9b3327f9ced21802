
/*
 * ngx_chat: files, the pure part.  What the first bytes of a file say it
 * is (and, of an image, its size and EXIF orientation); a name as a
 * client gave it made safe to keep and to show; the Content-Disposition
 * of a download; and a streaming multipart/form-data parser that hands
 * each part's bytes on as they come, never holding more than a part's
 * header block and a boundary's length.
 */


#include "ngx_chat_pure.h"


#define ngx_chat_be16(p)  (((uint32_t) (p)[0] << 8) | (p)[1])
#define ngx_chat_le16(p)  (((uint32_t) (p)[1] << 8) | (p)[0])
#define ngx_chat_be32(p)  (((uint32_t) (p)[0] << 24)                         \
                           | ((uint32_t) (p)[1] << 16)                        \
                           | ((uint32_t) (p)[2] << 8) | (p)[3])
#define ngx_chat_le24(p)  (((uint32_t) (p)[2] << 16)                         \
                           | ((uint32_t) (p)[1] << 8) | (p)[0])

#define ngx_chat_has(h, len, off, s)                                          \
    ((len) >= (off) + sizeof(s) - 1                                           \
     && ngx_memcmp((h) + (off), s, sizeof(s) - 1) == 0)


typedef struct {
    const char                  *type;
    ngx_uint_t                   kind;
} ngx_chat_magic_t;


static ngx_int_t ngx_chat_ncase(u_char *a, u_char *b, size_t n);


static ngx_int_t ngx_chat_sniff_image(u_char *h, size_t len,
    ngx_chat_sniff_t *s);
static void ngx_chat_sniff_jpeg(u_char *h, size_t len, ngx_chat_sniff_t *s);
static ngx_uint_t ngx_chat_exif_orientation(u_char *t, size_t len);
static void ngx_chat_sniff_webp(u_char *h, size_t len, ngx_chat_sniff_t *s);
static const ngx_chat_magic_t *ngx_chat_sniff_media(u_char *h, size_t len);
static const ngx_chat_magic_t *ngx_chat_sniff_iso(u_char *h, size_t len);
static const ngx_chat_magic_t *ngx_chat_sniff_document(u_char *h,
    size_t len, u_char *claimed, size_t claimed_len);
static const char *ngx_chat_sniff_zip(u_char *h, size_t len);
static void ngx_chat_sniff_set(ngx_chat_sniff_t *s, const char *type,
    ngx_uint_t kind);
static size_t ngx_chat_type_clean(u_char *dst, u_char *src, size_t len);
static ngx_uint_t ngx_chat_utf8_char(u_char *p, size_t len, uint32_t *c);
static ngx_uint_t ngx_chat_char_hidden(uint32_t c);
static ngx_int_t ngx_chat_mp_headers(ngx_chat_multipart_t *mp);
static ngx_int_t ngx_chat_mp_disposition(u_char *p, u_char *last,
    ngx_chat_mp_part_t *part);
static u_char *ngx_chat_mp_param(u_char *p, u_char *last, ngx_str_t *name,
    ngx_str_t *value);
static ngx_int_t ngx_chat_mp_ext_value(ngx_str_t *v);
static ngx_int_t ngx_chat_mp_hex(u_char c);
static ngx_int_t ngx_chat_mp_fail(ngx_chat_multipart_t *mp, const char *why);


/*
 * What the bytes say, else what the client claimed unless that is a type
 * a browser would run (HTML, SVG, script, XML), else octet-stream.  Only
 * types from the bytes are shown inline: a claim alone is an attachment.
 */

void
ngx_chat_sniff(u_char *h, size_t len, u_char *claimed, size_t claimed_len,
    ngx_chat_sniff_t *s)
{
    const ngx_chat_magic_t  *m;

    ngx_memzero(s, sizeof(ngx_chat_sniff_t));

    if (ngx_chat_sniff_image(h, len, s) == NGX_OK) {
        return;
    }

    m = ngx_chat_sniff_media(h, len);

    if (m == NULL) {
        m = ngx_chat_sniff_document(h, len, claimed, claimed_len);
    }

    if (m) {
        ngx_chat_sniff_set(s, m->type, m->kind);
        return;
    }

    s->type.len = ngx_chat_type_clean(s->buf, claimed, claimed_len);
    s->type.data = s->buf;

    if (s->type.len == 0 || ngx_chat_type_active(s->buf, s->type.len)) {
        ngx_chat_sniff_set(s, "application/octet-stream", NGX_CHAT_KIND_FILE);
        s->from_bytes = 0;
    }
}


static void
ngx_chat_sniff_set(ngx_chat_sniff_t *s, const char *type, ngx_uint_t kind)
{
    s->type.len = ngx_strlen(type);
    ngx_memcpy(s->buf, type, s->type.len + 1);
    s->type.data = s->buf;
    s->kind = kind;
    s->from_bytes = 1;
}


/* the images a thumbnail is made of, with their size; and AVIF, BMP */

static ngx_int_t
ngx_chat_sniff_image(u_char *h, size_t len, ngx_chat_sniff_t *s)
{
    if (ngx_chat_has(h, len, 0, "\x89PNG\r\n\x1a\n")) {
        ngx_chat_sniff_set(s, "image/png", NGX_CHAT_KIND_IMAGE);

        if (ngx_chat_has(h, len, 12, "IHDR") && len >= 24) {
            s->width = ngx_chat_be32(h + 16);
            s->height = ngx_chat_be32(h + 20);
        }

    } else if (len >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff) {
        ngx_chat_sniff_set(s, "image/jpeg", NGX_CHAT_KIND_IMAGE);
        ngx_chat_sniff_jpeg(h, len, s);

    } else if (ngx_chat_has(h, len, 0, "GIF87a")
               || ngx_chat_has(h, len, 0, "GIF89a"))
    {
        ngx_chat_sniff_set(s, "image/gif", NGX_CHAT_KIND_IMAGE);

        if (len >= 10) {
            s->width = ngx_chat_le16(h + 6);
            s->height = ngx_chat_le16(h + 8);
        }

    } else if (ngx_chat_has(h, len, 0, "RIFF")
               && ngx_chat_has(h, len, 8, "WEBP"))
    {
        ngx_chat_sniff_set(s, "image/webp", NGX_CHAT_KIND_IMAGE);
        ngx_chat_sniff_webp(h, len, s);

    } else if (ngx_chat_has(h, len, 0, "BM") && len >= 26
               && ngx_chat_has(h, len, 6, "\0\0\0\0"))
    {
        ngx_chat_sniff_set(s, "image/bmp", NGX_CHAT_KIND_IMAGE);
        return NGX_OK;

    } else {
        return NGX_DECLINED;
    }

    /* a size nobody makes is not believed: no thumbnail */
    if (s->width == 0 || s->height == 0 || s->width > 0x7fffffff
        || s->height > 0x7fffffff)
    {
        s->width = 0;
        s->height = 0;
    }

    s->decodable = (s->width != 0);

    return NGX_OK;
}


/*
 * A JPEG's segments up to its frame header: the size is in the first SOF,
 * the orientation in an APP1 "Exif" before it.  Read as libjpeg reads
 * them, so that the size checked before decoding is the size decoded.
 */

static void
ngx_chat_sniff_jpeg(u_char *h, size_t len, ngx_chat_sniff_t *s)
{
    size_t      i, seg;
    ngx_uint_t  marker;

    i = 2;

    while (i + 4 <= len) {
        if (h[i] != 0xff) {
            return;
        }

        while (i < len && h[i] == 0xff) {
            i++;
        }

        if (i + 3 > len) {
            return;
        }

        marker = h[i++];

        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
            continue;
        }

        if (marker == 0xd9 || marker == 0xda) {
            return;
        }

        seg = ngx_chat_be16(h + i);

        if (seg < 2 || i + seg > len) {
            return;
        }

        if (marker == 0xe1 && seg >= 2 + 6 + 8
            && ngx_chat_has(h, len, i + 2, "Exif\0\0")
            && s->orientation == 0)
        {
            s->orientation = ngx_chat_exif_orientation(h + i + 8, seg - 8);
        }

        if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4
            && marker != 0xc8 && marker != 0xcc)
        {
            if (seg >= 8) {
                s->height = ngx_chat_be16(h + i + 3);
                s->width = ngx_chat_be16(h + i + 5);
            }
            return;
        }

        i += seg;
    }
}


/* the Orientation tag (0x0112) of IFD0 of a TIFF block */

static ngx_uint_t
ngx_chat_exif_orientation(u_char *t, size_t len)
{
    size_t      ifd, n, i, e;
    uint32_t    tag, value;
    ngx_uint_t  be;

    if (ngx_chat_has(t, len, 0, "MM\0*")) {
        be = 1;

    } else if (ngx_chat_has(t, len, 0, "II*\0")) {
        be = 0;

    } else {
        return 0;
    }

    ifd = be ? ngx_chat_be32(t + 4)
             : ((uint32_t) ngx_chat_le16(t + 6) << 16) | ngx_chat_le16(t + 4);

    if (ifd < 8 || ifd + 2 > len) {
        return 0;
    }

    n = be ? ngx_chat_be16(t + ifd) : ngx_chat_le16(t + ifd);

    for (i = 0; i < n; i++) {
        e = ifd + 2 + i * 12;

        if (e + 12 > len) {
            return 0;
        }

        tag = be ? ngx_chat_be16(t + e) : ngx_chat_le16(t + e);

        if (tag != 0x0112) {
            continue;
        }

        value = be ? ngx_chat_be16(t + e + 8) : ngx_chat_le16(t + e + 8);

        return (value >= 1 && value <= 8) ? value : 0;
    }

    return 0;
}


/* the canvas of a lossy, a lossless or an extended WebP */

static void
ngx_chat_sniff_webp(u_char *h, size_t len, ngx_chat_sniff_t *s)
{
    if (ngx_chat_has(h, len, 12, "VP8 ") && len >= 30
        && ngx_chat_has(h, len, 23, "\x9d\x01\x2a"))
    {
        s->width = ngx_chat_le16(h + 26) & 0x3fff;
        s->height = ngx_chat_le16(h + 28) & 0x3fff;

    } else if (ngx_chat_has(h, len, 12, "VP8L") && len >= 25 && h[20] == 0x2f)
    {
        s->width = 1 + (((uint32_t) (h[22] & 0x3f) << 8) | h[21]);
        s->height = 1 + (((uint32_t) (h[24] & 0x0f) << 10)
                         | ((uint32_t) h[23] << 2) | (h[22] >> 6));

    } else if (ngx_chat_has(h, len, 12, "VP8X") && len >= 30) {
        s->width = 1 + ngx_chat_le24(h + 24);
        s->height = 1 + ngx_chat_le24(h + 27);
    }
}


/* video and audio: ISO media, Matroska, Ogg, MP3, FLAC, WAV, AVI */

static const ngx_chat_magic_t *
ngx_chat_sniff_media(u_char *h, size_t len)
{
    size_t  i;

    static const ngx_chat_magic_t  webm = { "video/webm", NGX_CHAT_KIND_VIDEO };
    static const ngx_chat_magic_t  mkv = { "video/x-matroska",
                                           NGX_CHAT_KIND_VIDEO };
    static const ngx_chat_magic_t  ogv = { "video/ogg", NGX_CHAT_KIND_VIDEO };
    static const ngx_chat_magic_t  oga = { "audio/ogg", NGX_CHAT_KIND_AUDIO };
    static const ngx_chat_magic_t  mp3 = { "audio/mpeg", NGX_CHAT_KIND_AUDIO };
    static const ngx_chat_magic_t  flac = { "audio/flac",
                                            NGX_CHAT_KIND_AUDIO };
    static const ngx_chat_magic_t  wav = { "audio/wav", NGX_CHAT_KIND_AUDIO };
    static const ngx_chat_magic_t  avi = { "video/x-msvideo",
                                           NGX_CHAT_KIND_VIDEO };

    if (ngx_chat_has(h, len, 4, "ftyp")) {
        return ngx_chat_sniff_iso(h, len);
    }

    if (ngx_chat_has(h, len, 0, "\x1a\x45\xdf\xa3")) {
        /* the EBML header names its DocType within its first bytes */
        for (i = 4; i + 4 <= ngx_min(len, 64); i++) {
            if (ngx_memcmp(h + i, "webm", 4) == 0) {
                return &webm;
            }
        }
        return &mkv;
    }

    if (ngx_chat_has(h, len, 0, "OggS")) {
        return (len >= 36 && ngx_memcmp(h + 28, "\x80theora", 7) == 0)
               ? &ogv : &oga;
    }

    /* a tag, or an MPEG audio frame header: sync, a version that exists,
       layer III, a bitrate that is not "bad" (a UTF-16 BOM, FF FE, has
       the sync too, but says layer I) */
    if (ngx_chat_has(h, len, 0, "ID3")
        || (len >= 3 && h[0] == 0xff && (h[1] & 0xe0) == 0xe0
            && (h[1] & 0x06) == 0x02 && (h[1] & 0x18) != 0x08
            && (h[2] & 0xf0) != 0xf0))
    {
        return &mp3;
    }

    if (ngx_chat_has(h, len, 0, "fLaC")) {
        return &flac;
    }

    if (ngx_chat_has(h, len, 0, "RIFF") && ngx_chat_has(h, len, 8, "WAVE")) {
        return &wav;
    }

    if (ngx_chat_has(h, len, 0, "RIFF") && ngx_chat_has(h, len, 8, "AVI ")) {
        return &avi;
    }

    return NULL;
}


/* an ISO base media file ("ftyp" box): its major brand says which */

static const ngx_chat_magic_t *
ngx_chat_sniff_iso(u_char *h, size_t len)
{
    static const ngx_chat_magic_t  avif = { "image/avif", NGX_CHAT_KIND_IMAGE };
    static const ngx_chat_magic_t  heic = { "image/heic", NGX_CHAT_KIND_IMAGE };
    static const ngx_chat_magic_t  m4a = { "audio/mp4", NGX_CHAT_KIND_AUDIO };
    static const ngx_chat_magic_t  mov = { "video/quicktime",
                                           NGX_CHAT_KIND_VIDEO };
    static const ngx_chat_magic_t  gpp = { "video/3gpp", NGX_CHAT_KIND_VIDEO };
    static const ngx_chat_magic_t  mp4 = { "video/mp4", NGX_CHAT_KIND_VIDEO };

    if (len < 12) {
        return NULL;
    }

    if (ngx_chat_has(h, len, 8, "avif") || ngx_chat_has(h, len, 8, "avis")) {
        return &avif;
    }

    if (ngx_chat_has(h, len, 8, "heic") || ngx_chat_has(h, len, 8, "heix")
        || ngx_chat_has(h, len, 8, "mif1") || ngx_chat_has(h, len, 8, "msf1"))
    {
        return &heic;
    }

    if (ngx_chat_has(h, len, 8, "M4A ") || ngx_chat_has(h, len, 8, "M4B ")) {
        return &m4a;
    }

    if (ngx_chat_has(h, len, 8, "qt  ")) {
        return &mov;
    }

    if (ngx_chat_has(h, len, 8, "3gp") || ngx_chat_has(h, len, 8, "3g2")) {
        return &gpp;
    }

    return &mp4;
}


/* PDF, archives and office documents */

static const ngx_chat_magic_t *
ngx_chat_sniff_document(u_char *h, size_t len, u_char *claimed,
    size_t claimed_len)
{
    static ngx_chat_magic_t  found;

    static const struct {
        const char  *magic;
        size_t       offset;
        const char  *type;
    } magic[] = {
        { "%PDF-", 0, "application/pdf" },
        { "\x1f\x8b", 0, "application/gzip" },
        { "7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed" },
        { "Rar!\x1a\x07", 0, "application/vnd.rar" },
        { "BZh", 0, "application/x-bzip2" },
        { "\xfd" "7zXZ\0", 0, "application/x-xz" },
        { "\x28\xb5\x2f\xfd", 0, "application/zstd" },
        { "ustar", 257, "application/x-tar" },
        { NULL, 0, NULL }
    };

    ngx_uint_t   i;
    const char  *type;

    found.kind = NGX_CHAT_KIND_FILE;

    for (i = 0; magic[i].magic; i++) {
        if (len >= magic[i].offset + ngx_strlen(magic[i].magic)
            && ngx_memcmp(h + magic[i].offset, magic[i].magic,
                          ngx_strlen(magic[i].magic)) == 0)
        {
            found.type = magic[i].type;
            return &found;
        }
    }

    if (ngx_chat_has(h, len, 0, "PK\x03\x04")) {
        type = ngx_chat_sniff_zip(h, len);
        found.type = type ? type : "application/zip";
        return &found;
    }

    if (ngx_chat_has(h, len, 0, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")) {
        /* an OLE compound file: Word, Excel or PowerPoint of old, as
           claimed; the claim is a type of ours or nothing */
        if ((claimed_len >= 18
             && ngx_chat_ncase(claimed, (u_char *) "application/msword", 18)
                == 0)
            || (claimed_len >= 19
                && ngx_chat_ncase(claimed, (u_char *) "application/vnd.ms-",
                                   19)
                   == 0))
        {
            return NULL;
        }

        found.type = "application/x-ole-storage";
        return &found;
    }

    return NULL;
}


/*
 * A ZIP's first entry tells the OpenDocument formats (a "mimetype" file
 * stored first) and Office Open XML ("[Content_Types].xml", with word/,
 * xl/ or ppt/ among the first names).
 */

static const char *
ngx_chat_sniff_zip(u_char *h, size_t len)
{
    size_t      off, n, i;

    static const struct {
        const char  *mimetype;
        const char  *type;
    } odf[] = {
        { "application/vnd.oasis.opendocument.text",
          "application/vnd.oasis.opendocument.text" },
        { "application/vnd.oasis.opendocument.spreadsheet",
          "application/vnd.oasis.opendocument.spreadsheet" },
        { "application/vnd.oasis.opendocument.presentation",
          "application/vnd.oasis.opendocument.presentation" },
        { "application/epub+zip", "application/epub+zip" },
        { NULL, NULL }
    };

    if (len < 30) {
        return NULL;
    }

    /* the local header: the name's length at 26, the extra's at 28 */
    off = 30 + 8 + ngx_chat_le16(h + 28);

    if (ngx_chat_le16(h + 26) == 8 && ngx_chat_has(h, len, 30, "mimetype")) {
        for (i = 0; odf[i].mimetype; i++) {
            n = ngx_strlen(odf[i].mimetype);

            if (len >= off + n && ngx_memcmp(h + off, odf[i].mimetype, n) == 0)
            {
                return odf[i].type;
            }
        }
        return NULL;
    }

    /* Office Open XML names its parts early; look in the first bytes */
    for (i = 0; i + 6 <= ngx_min(len, 8192); i++) {
        if (h[i] != 'w' && h[i] != 'x' && h[i] != 'p') {
            continue;
        }

        if (ngx_memcmp(h + i, "word/", 5) == 0) {
            return "application/vnd.openxmlformats-officedocument."
                   "wordprocessingml.document";
        }

        if (ngx_memcmp(h + i, "xl/", 3) == 0) {
            return "application/vnd.openxmlformats-officedocument."
                   "spreadsheetml.sheet";
        }

        if (ngx_memcmp(h + i, "ppt/", 4) == 0) {
            return "application/vnd.openxmlformats-officedocument."
                   "presentationml.presentation";
        }
    }

    return NULL;
}


/*
 * A type a browser runs or renders as a document with scripts: never kept
 * from a claim.  "text/html", "image/svg+xml", "application/xhtml+xml",
 * any "+xml", JavaScript under its many names, XSLT, CSS, Flash.
 */

ngx_uint_t
ngx_chat_type_active(u_char *type, size_t len)
{
    ngx_uint_t  i;
    size_t      n;

    static const char  *active[] = {
        "text/html", "text/xml", "application/xml", "text/xsl",
        "text/css", "text/javascript", "text/ecmascript",
        "application/javascript", "application/ecmascript",
        "application/x-javascript", "text/jscript", "text/vbscript",
        "application/x-shockwave-flash", "text/x-javascript",
        "application/x-httpd-php", "multipart/x-mixed-replace",
        "application/wasm", NULL
    };

    for (i = 0; active[i]; i++) {
        n = ngx_strlen(active[i]);

        if (len == n && ngx_chat_ncase(type, (u_char *) active[i], n) == 0) {
            return 1;
        }
    }

    /* application/xhtml+xml, image/svg+xml, application/rss+xml, ... */
    if (len >= 4 && ngx_chat_ncase(type + len - 4, (u_char *) "+xml", 4) == 0)
    {
        return 1;
    }

    /* and HTML or script in disguise: "text/x-html", "text/livescript" */
    for (i = 0; i + 4 <= len; i++) {
        if (ngx_chat_ncase(type + i, (u_char *) "html", 4) == 0
            || (i + 6 <= len
                && ngx_chat_ncase(type + i, (u_char *) "script", 6) == 0))
        {
            return 1;
        }
    }

    return 0;
}


/* "Image/PNG; charset=x" to "image/png"; 0 if it is not "type/subtype" */

static size_t
ngx_chat_type_clean(u_char *dst, u_char *src, size_t len)
{
    size_t      i, n;
    ngx_uint_t  slash;
    u_char      c;

    while (len && (*src == ' ' || *src == '\t')) {
        src++;
        len--;
    }

    slash = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == ';' || c == ' ' || c == '\t') {
            break;
        }

        if (c == '/') {
            if (slash || n == 0) {
                return 0;
            }
            slash = 1;

        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                     || (c >= '0' && c <= '9') || c == '.' || c == '+'
                     || c == '-' || c == '_'))
        {
            /* only the characters of registered types: nothing to inject */
            return 0;
        }

        if (n == NGX_CHAT_TYPE_MAX) {
            return 0;
        }

        dst[n++] = ngx_tolower(c);
    }

    if (!slash || dst[n - 1] == '/') {
        return 0;
    }

    dst[n] = '\0';

    return n;
}


/*
 * The name as given, made safe: only its last path component; no control
 * characters, no bidirectional overrides or invisible marks (a name that
 * displays as "exe.txt" but is "txt.exe"), no leading dots or spaces;
 * bytes that are not UTF-8 become "_"; at most 255 bytes, the extension
 * kept.  dst has room for len + 5 bytes; "file" when nothing is left.
 */

size_t
ngx_chat_filename_clean(u_char *dst, u_char *src, size_t len)
{
    u_char     *p, *last, *dot;
    size_t      n, ext, keep, i;
    uint32_t    c;
    ngx_uint_t  k;

    /* the last component, of a Unix or a Windows path */
    for (i = len; i > 0; i--) {
        if (src[i - 1] == '/' || src[i - 1] == '\\') {
            src += i;
            len -= i;
            break;
        }
    }

    p = dst;
    last = src + len;

    while (src < last) {
        k = ngx_chat_utf8_char(src, last - src, &c);

        if (k == 0) {
            *p++ = '_';
            src++;
            continue;
        }

        if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
            *p++ = '_';

        } else if (!ngx_chat_char_hidden(c)
                   && !(p == dst && (c == '.' || c == ' ')))
        {
            p = ngx_cpymem(p, src, k);
        }

        src += k;
    }

    while (p > dst && (p[-1] == ' ' || p[-1] == '.')) {
        p--;
    }

    n = p - dst;

    if (n > 255) {
        /* the extension (up to 16 bytes) stays; the rest is cut at a
           character boundary */
        dot = NULL;

        for (i = n; i > 0 && n - i < 16; i--) {
            if (dst[i - 1] == '.') {
                dot = dst + i - 1;
                break;
            }
        }

        ext = dot ? (size_t) (dst + n - dot) : 0;
        keep = 255 - ext;

        while (keep > 0 && (dst[keep] & 0xc0) == 0x80) {
            keep--;
        }

        if (ext) {
            ngx_memmove(dst + keep, dot, ext);
        }

        n = keep + ext;

        /* a cut without an extension may end on a dot or a space again */
        while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '.')) {
            n--;
        }
    }

    if (n == 0) {
        return ngx_cpymem(dst, "file", 4) - dst;
    }

    return n;
}


/* one UTF-8 character, its length; 0 if the bytes are not one */

static ngx_uint_t
ngx_chat_utf8_char(u_char *p, size_t len, uint32_t *c)
{
    ngx_uint_t  n, i;
    uint32_t    v, min;

    if (p[0] < 0x80) {
        *c = p[0];
        return 1;
    }

    if ((p[0] & 0xe0) == 0xc0) {
        n = 2; v = p[0] & 0x1f; min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3; v = p[0] & 0x0f; min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4; v = p[0] & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3f);
    }

    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }

    *c = v;

    return n;
}


/* format characters that change how a name reads, and no-break spaces
   that hide an extension */

static ngx_uint_t
ngx_chat_char_hidden(uint32_t c)
{
    return c == 0x061c || c == 0x00ad || (c >= 0x200b && c <= 0x200f)
           || (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f)
           || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb);
}


/*
 * RFC 6266: 'attachment; filename="ascii"; filename*=UTF-8''percent' (or
 * inline).  The ASCII form has "_" for what it cannot say.
 */

size_t
ngx_chat_content_disposition_len(ngx_str_t *name)
{
    return sizeof("attachment; filename=\"\"; filename*=UTF-8''") - 1
           + 4 * name->len;
}


u_char *
ngx_chat_content_disposition(u_char *p, ngx_str_t *name, ngx_uint_t show)
{
    size_t   i;
    u_char   c;

    static const u_char  hex[] = "0123456789ABCDEF";

    p = show ? ngx_cpymem(p, "inline", 6) : ngx_cpymem(p, "attachment", 10);
    p = ngx_cpymem(p, "; filename=\"", 12);

    for (i = 0; i < name->len; i++) {
        c = name->data[i];
        *p++ = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%')
               ? '_' : c;
    }

    p = ngx_cpymem(p, "\"; filename*=UTF-8''", 20);

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        /* RFC 5987 attr-char */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || (c && ngx_strchr("!#$&+-.^_`|~", c)))
        {
            *p++ = c;

        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }

    return p;
}


/*
 * multipart/form-data; boundary=...: NGX_DECLINED if the type is another,
 * NGX_ERROR if it is this one without a usable boundary (RFC 2046: 1-70
 * characters of bchars, quoted or not).
 */

ngx_int_t
ngx_chat_multipart_boundary(u_char *type, size_t len, ngx_str_t *boundary)
{
    u_char     *p, *last;
    ngx_str_t   name, value;

    static const char  *mp = "multipart/form-data";

    if (len < 19 || ngx_chat_ncase(type, (u_char *) mp, 19) != 0
        || (len > 19 && type[19] != ';' && type[19] != ' '
            && type[19] != '\t'))
    {
        return NGX_DECLINED;
    }

    p = type + 19;
    last = type + len;

    while (p < last) {
        p = ngx_chat_mp_param(p, last, &name, &value);

        if (p == NULL) {
            return NGX_ERROR;
        }

        if (name.len == 8
            && ngx_chat_ncase(name.data, (u_char *) "boundary", 8) == 0)
        {
            if (value.len == 0 || value.len > 70) {
                return NGX_ERROR;
            }

            for (p = value.data; p < value.data + value.len; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                      || (*p >= '0' && *p <= '9')
                      || (*p && ngx_strchr("'()+_,-./:=? ", *p))))
                {
                    return NGX_ERROR;
                }
            }

            if (value.data[value.len - 1] == ' ') {
                return NGX_ERROR;
            }

            *boundary = value;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


/*
 * One "; name=value" parameter: value a token or a quoted string (whose
 * backslash escapes are undone in place).  NULL if it is neither; at the
 * end, an empty name.
 */

static u_char *
ngx_chat_mp_param(u_char *p, u_char *last, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char  *dst;

    ngx_str_null(name);
    ngx_str_null(value);

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == last) {
        return p;
    }

    if (*p++ != ';') {
        return NULL;
    }

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    name->data = p;

    while (p < last && *p != '=' && *p != ';' && *p != ' ' && *p != '\t'
           && *p != '"')
    {
        p++;
    }

    name->len = p - name->data;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (name->len == 0 || p == last || *p != '=') {
        return NULL;
    }

    p++;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p < last && *p == '"') {
        p++;
        value->data = p;
        dst = p;

        while (p < last && *p != '"') {
            if (*p == '\\' && p + 1 < last) {
                p++;
            }
            *dst++ = *p++;
        }

        if (p == last) {
            return NULL;
        }

        value->len = dst - value->data;
        return p + 1;
    }

    value->data = p;

    while (p < last && *p != ';' && *p != ' ' && *p != '\t') {
        if (*p < 0x21 || *p == '"' || *p == 0x7f) {
            return NULL;
        }
        p++;
    }

    value->len = p - value->data;

    return p;
}


enum {
    NGX_CHAT_MP_PREAMBLE = 0,
    NGX_CHAT_MP_AFTER_DELIM,     /* "--" ends the body, CRLF a part */
    NGX_CHAT_MP_AFTER_DASH,
    NGX_CHAT_MP_PADDING,         /* spaces, then CRLF */
    NGX_CHAT_MP_AFTER_CR,
    NGX_CHAT_MP_HEADERS,
    NGX_CHAT_MP_BODY,
    NGX_CHAT_MP_EPILOGUE,
    NGX_CHAT_MP_FAILED
};


void
ngx_chat_multipart_init(ngx_chat_multipart_t *mp)
{
    u_char  *p;

    p = ngx_cpymem(mp->delim, "\r\n--", 4);
    p = ngx_cpymem(p, mp->boundary.data, ngx_min(mp->boundary.len, 70));
    mp->delim_len = p - mp->delim;

    if (mp->header_max == 0 || mp->header_max > NGX_CHAT_MP_HEAD_MAX) {
        mp->header_max = NGX_CHAT_MP_HEAD_MAX;
    }

    /* the first delimiter has no CRLF before it: as if it had */
    mp->state = NGX_CHAT_MP_PREAMBLE;
    mp->matched = 2;
    mp->parts = 0;
    mp->head_len = 0;
    mp->error = NULL;
}


/*
 * Bytes of the body, as they come.  A part's bytes reach body() in runs;
 * what might be the start of a delimiter is held back until the next
 * bytes tell.  NGX_ERROR: malformed (mp->error says how) or a handler
 * refused; nothing more is taken.
 */

ngx_int_t
ngx_chat_multipart_feed(ngx_chat_multipart_t *mp, u_char *p, size_t len)
{
    u_char  *last, *run, *cr;
    size_t   n;

    if (mp->state == NGX_CHAT_MP_FAILED) {
        return NGX_ERROR;
    }

    last = p + len;

    while (p < last) {

        switch (mp->state) {

        case NGX_CHAT_MP_PREAMBLE:
        case NGX_CHAT_MP_BODY:

            run = p;

            while (p < last) {
                if (mp->matched == 0) {
                    cr = memchr(p, '\r', last - p);
                    if (cr == NULL) {
                        p = last;
                        break;
                    }
                    p = cr;
                }

                if (*p == mp->delim[mp->matched]) {
                    if (mp->matched == 0) {
                        /* bytes before a possible delimiter are the part's */
                        if (mp->state == NGX_CHAT_MP_BODY && p > run
                            && mp->body(mp, run, p - run) != NGX_OK)
                        {
                            return ngx_chat_mp_fail(mp, NULL);
                        }
                    }

                    mp->matched++;
                    p++;
                    run = p;

                    if (mp->matched == mp->delim_len) {
                        break;
                    }

                    continue;
                }

                if (mp->matched) {
                    /* what was held back was the part's after all; the
                       delimiter has one CR only, at its start */
                    if (mp->state == NGX_CHAT_MP_BODY
                        && mp->body(mp, mp->delim, mp->matched) != NGX_OK)
                    {
                        return ngx_chat_mp_fail(mp, NULL);
                    }

                    mp->matched = 0;
                    run = p;
                    continue;
                }

                p++;
            }

            if (mp->matched == mp->delim_len) {
                mp->matched = 0;

                if (mp->state == NGX_CHAT_MP_BODY
                    && mp->end(mp) != NGX_OK)
                {
                    return ngx_chat_mp_fail(mp, NULL);
                }

                mp->state = NGX_CHAT_MP_AFTER_DELIM;
                break;
            }

            if (mp->state == NGX_CHAT_MP_BODY && mp->matched == 0
                && p > run && mp->body(mp, run, p - run) != NGX_OK)
            {
                return ngx_chat_mp_fail(mp, NULL);
            }

            break;

        case NGX_CHAT_MP_AFTER_DELIM:

            if (*p == '-') {
                mp->state = NGX_CHAT_MP_AFTER_DASH;
                p++;
                break;
            }

            mp->state = NGX_CHAT_MP_PADDING;
            break;

        case NGX_CHAT_MP_AFTER_DASH:

            if (*p != '-') {
                return ngx_chat_mp_fail(mp, "the boundary appears inside a "
                                        "part");
            }

            mp->state = NGX_CHAT_MP_EPILOGUE;
            p++;
            break;

        case NGX_CHAT_MP_PADDING:

            if (*p == ' ' || *p == '\t') {
                p++;
                break;
            }

            if (*p != '\r') {
                return ngx_chat_mp_fail(mp, "the boundary appears inside a "
                                        "part");
            }

            mp->state = NGX_CHAT_MP_AFTER_CR;
            p++;
            break;

        case NGX_CHAT_MP_AFTER_CR:

            if (*p != '\n') {
                return ngx_chat_mp_fail(mp, "the boundary appears inside a "
                                        "part");
            }

            if (++mp->parts > mp->parts_max) {
                return ngx_chat_mp_fail(mp, "the body has too many parts");
            }

            mp->state = NGX_CHAT_MP_HEADERS;
            mp->head_len = 0;
            p++;
            break;

        case NGX_CHAT_MP_HEADERS:

            /* up to the empty line, kept whole */
            while (p < last) {
                if (mp->head_len == mp->header_max) {
                    return ngx_chat_mp_fail(mp, "a part's headers are too "
                                            "long");
                }

                mp->head[mp->head_len++] = *p++;

                n = mp->head_len;

                if ((n == 2 && mp->head[0] == '\r' && mp->head[1] == '\n')
                    || (n >= 4 && ngx_memcmp(mp->head + n - 4, "\r\n\r\n", 4)
                                  == 0))
                {
                    if (ngx_chat_mp_headers(mp) != NGX_OK) {
                        return NGX_ERROR;
                    }

                    mp->state = NGX_CHAT_MP_BODY;
                    break;
                }
            }

            break;

        case NGX_CHAT_MP_EPILOGUE:
            return NGX_OK;

        default: /* NGX_CHAT_MP_FAILED */
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the body ended: it must have ended with the closing delimiter */

ngx_int_t
ngx_chat_multipart_finish(ngx_chat_multipart_t *mp)
{
    if (mp->state == NGX_CHAT_MP_FAILED) {
        return NGX_ERROR;
    }

    /* RFC 2046: a closing delimiter alone is no body either */
    if (mp->state != NGX_CHAT_MP_EPILOGUE || mp->parts == 0) {
        return ngx_chat_mp_fail(mp, mp->parts == 0
                                ? "the multipart body has no part"
                                : "the multipart body ends before its "
                                  "closing boundary");
    }

    return NGX_OK;
}


/* a part's header block: its Content-Disposition and Content-Type */

static ngx_int_t
ngx_chat_mp_headers(ngx_chat_multipart_t *mp)
{
    u_char              *p, *last, *eol, *colon, *v;
    size_t               n;
    ngx_uint_t           disposition;
    ngx_chat_mp_part_t   part;

    ngx_memzero(&part, sizeof(ngx_chat_mp_part_t));
    disposition = 0;

    p = mp->head;
    last = mp->head + mp->head_len - 2;

    while (p < last) {
        eol = p;

        while (*eol != '\r') {
            if (*eol == '\0' || *eol == '\n') {
                return ngx_chat_mp_fail(mp, "a part's header has a control "
                                        "character");
            }
            eol++;
        }

        if (eol[1] != '\n') {
            return ngx_chat_mp_fail(mp, "a part's header has a control "
                                    "character");
        }

        colon = memchr(p, ':', eol - p);

        if (colon == NULL || colon == p) {
            return ngx_chat_mp_fail(mp, "a part's header is not "
                                    "\"Name: value\"");
        }

        n = colon - p;
        v = colon + 1;

        while (v < eol && (*v == ' ' || *v == '\t')) {
            v++;
        }

        if (n == 19
            && ngx_chat_ncase(p, (u_char *) "content-disposition", 19) == 0)
        {
            if (disposition++
                || ngx_chat_mp_disposition(v, eol, &part) != NGX_OK)
            {
                return ngx_chat_mp_fail(mp, "a part's Content-Disposition "
                                        "is not form-data with a name");
            }

        } else if (n == 12
                   && ngx_chat_ncase(p, (u_char *) "content-type", 12) == 0)
        {
            part.content_type.data = v;
            part.content_type.len = eol - v;
        }

        p = eol + 2;
    }

    if (!disposition) {
        return ngx_chat_mp_fail(mp, "a part has no Content-Disposition");
    }

    return (mp->part(mp, &part) == NGX_OK) ? NGX_OK
                                           : ngx_chat_mp_fail(mp, NULL);
}


/* form-data; name="field"; filename="a.png" (or filename*=UTF-8''...) */

static ngx_int_t
ngx_chat_mp_disposition(u_char *p, u_char *last, ngx_chat_mp_part_t *part)
{
    ngx_str_t   name, value, ext;
    ngx_uint_t  has_name;

    if (last - p < 9 || ngx_chat_ncase(p, (u_char *) "form-data", 9) != 0) {
        return NGX_ERROR;
    }

    p += 9;
    has_name = 0;
    ngx_str_null(&ext);

    while (p < last) {
        p = ngx_chat_mp_param(p, last, &name, &value);

        if (p == NULL) {
            return NGX_ERROR;
        }

        if (name.len == 4
            && ngx_chat_ncase(name.data, (u_char *) "name", 4) == 0)
        {
            if (has_name++ || value.len == 0) {
                return NGX_ERROR;
            }
            part->name = value;

        } else if (name.len == 8
                   && ngx_chat_ncase(name.data, (u_char *) "filename", 8)
                      == 0)
        {
            part->filename = value;
            part->is_file = 1;

        } else if (name.len == 9
                   && ngx_chat_ncase(name.data, (u_char *) "filename*", 9)
                      == 0)
        {
            ext = value;
            part->is_file = 1;
        }
    }

    /* RFC 7578 §4.2: filename* is not for form-data, but some send it */
    if (ext.len && ngx_chat_mp_ext_value(&ext) == NGX_OK) {
        part->filename = ext;
    }

    return has_name ? NGX_OK : NGX_ERROR;
}


/* RFC 8187: UTF-8'lang'percent-encoded, decoded in place */

static ngx_int_t
ngx_chat_mp_ext_value(ngx_str_t *v)
{
    u_char     *p, *last, *q, *dst;
    ngx_int_t   h, l;

    if (v->len < 7 || ngx_chat_ncase(v->data, (u_char *) "utf-8'", 6) != 0) {
        return NGX_ERROR;
    }

    last = v->data + v->len;
    q = memchr(v->data + 6, '\'', last - (v->data + 6));

    if (q == NULL) {
        return NGX_ERROR;
    }

    p = q + 1;
    dst = p;
    v->data = dst;

    /* not ngx_chat_unescape(): "+" is an attr-char here, not a space */
    while (p < last) {
        if (*p == '%' && last - p >= 3) {
            h = ngx_chat_mp_hex(p[1]);
            l = ngx_chat_mp_hex(p[2]);

            if (h >= 0 && l >= 0) {
                *dst++ = (u_char) (h << 4 | l);
                p += 3;
                continue;
            }
        }

        *dst++ = *p++;
    }

    v->len = dst - v->data;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_mp_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* ngx_strncasecmp() without nginx (and without stopping at a NUL) */

static ngx_int_t
ngx_chat_ncase(u_char *a, u_char *b, size_t n)
{
    while (n--) {
        if (ngx_tolower(*a) != ngx_tolower(*b)) {
            return ngx_tolower(*a) - ngx_tolower(*b);
        }
        a++;
        b++;
    }

    return 0;
}


static ngx_int_t
ngx_chat_mp_fail(ngx_chat_multipart_t *mp, const char *why)
{
    if (mp->state != NGX_CHAT_MP_FAILED) {
        mp->state = NGX_CHAT_MP_FAILED;
        mp->error = why ? why : "the part was refused";
    }

    return NGX_ERROR;
}
