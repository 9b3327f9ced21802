
/*
 * Files, the pure part of src/ngx_chat_files.c other than the multipart
 * parser: what src/ngx_chat_upload.c does with a file's first bytes, its
 * claimed type and its name, and what a download's headers are made of.
 * Every input is an exact heap copy and every output an exact heap block
 * of the size the module allocates, so that AddressSanitizer reports a
 * byte read or written past one.  Checked:
 *
 *   ngx_chat_sniff                  a type "x/y" of [a-z0-9.+_-] only,
 *                                   that no browser runs; image, video or
 *                                   audio only from the bytes, and then
 *                                   whatever the claim; a size only of an
 *                                   image, both or neither, and a
 *                                   thumbnail only of one of a size; an
 *                                   orientation only of a JPEG; from a
 *                                   claim, the claim as a reference
 *                                   cleans it, or octet-stream
 *   ngx_chat_type_active            the same in any case
 *   ngx_chat_filename_clean         1 to 255 bytes of valid UTF-8 without
 *                                   controls (C0, DEL, C1), separators,
 *                                   bidirectional or invisible marks, nor
 *                                   a dot or a space at either end; clean
 *                                   again, the same; a name that needs
 *                                   nothing, as it was
 *   ngx_chat_content_disposition    at most _len() bytes, printable ASCII
 *                                   only (no header can be ended), the
 *                                   quoted name without '"' or '\', and
 *                                   filename* decoding back to the name,
 *                                   of the raw name and of the clean one
 *   ngx_chat_multipart_boundary     declined exactly for another type; a
 *                                   boundary of 1 to 70 bchars inside the
 *                                   type, not ending with a space
 *
 * Input: a byte for the length of the claimed type (bit 7: shown inline),
 * the claimed type, then the file's first bytes.  The whole input is also
 * the name and the Content-Type.
 */


#include "ngx_chat_fuzz.h"


static void ngx_chat_fuzz_files_sniff(const u_char *head, size_t len,
    const u_char *claimed, size_t claimed_len);
static void ngx_chat_fuzz_files_claim(ngx_chat_sniff_t *s,
    const u_char *claimed, size_t len);
static size_t ngx_chat_fuzz_files_clean(const u_char *name, size_t len,
    u_char **out);
static void ngx_chat_fuzz_files_check_name(u_char *p, size_t n);
static ngx_uint_t ngx_chat_fuzz_files_needs_nothing(const u_char *p,
    size_t len);
static ngx_uint_t ngx_chat_fuzz_files_hidden(uint32_t c);
static void ngx_chat_fuzz_files_disposition(const u_char *name, size_t len,
    ngx_uint_t show);
static void ngx_chat_fuzz_files_boundary(const u_char *type, size_t len);
static u_char *ngx_chat_fuzz_files_copy(const u_char *p, size_t len);
static ngx_int_t ngx_chat_fuzz_files_hex(u_char c);
static ngx_uint_t ngx_chat_fuzz_files_char(const u_char *p, size_t len,
    uint32_t *c);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char   *clean;
    size_t    claimed_len, n;

    if (size < 1) {
        return 0;
    }

    claimed_len = ngx_min((size_t) (data[0] & 0x7f), size - 1);

    ngx_chat_fuzz_files_sniff(data + 1 + claimed_len,
                              size - 1 - claimed_len, data + 1, claimed_len);

    n = ngx_chat_fuzz_files_clean(data, size, &clean);

    ngx_chat_fuzz_files_disposition(data, size, data[0] >> 7);
    ngx_chat_fuzz_files_disposition(clean, n, data[0] >> 7);

    free(clean);

    ngx_chat_fuzz_files_boundary(data, size);

    return 0;
}


static void
ngx_chat_fuzz_files_sniff(const u_char *head, size_t len,
    const u_char *claimed, size_t claimed_len)
{
    u_char            *h, *c, lower[NGX_CHAT_TYPE_MAX + 1];
    size_t             i, slash;
    ngx_uint_t         slashes, active;
    ngx_chat_sniff_t   s, bare;

    h = ngx_chat_fuzz_files_copy(head, len);
    c = ngx_chat_fuzz_files_copy(claimed, claimed_len);

    ngx_chat_sniff(h, len, c, claimed_len, &s);

    ngx_chat_fuzz_assert(s.type.data == s.buf);
    ngx_chat_fuzz_assert(s.type.len >= 3 && s.type.len <= NGX_CHAT_TYPE_MAX);
    ngx_chat_fuzz_assert(s.buf[s.type.len] == '\0');

    slashes = 0;
    slash = 0;

    for (i = 0; i < s.type.len; i++) {
        lower[i] = s.buf[i];

        if (s.buf[i] == '/') {
            slashes++;
            slash = i;
            continue;
        }

        ngx_chat_fuzz_assert((s.buf[i] >= 'a' && s.buf[i] <= 'z')
                             || (s.buf[i] >= '0' && s.buf[i] <= '9')
                             || s.buf[i] == '.' || s.buf[i] == '+'
                             || s.buf[i] == '-' || s.buf[i] == '_');
    }

    ngx_chat_fuzz_assert(slashes == 1);
    ngx_chat_fuzz_assert(slash > 0 && slash < s.type.len - 1);
    ngx_chat_fuzz_assert(!ngx_chat_type_active(lower, s.type.len));

    ngx_chat_fuzz_assert(s.kind <= NGX_CHAT_KIND_AUDIO);
    ngx_chat_fuzz_assert(s.kind == NGX_CHAT_KIND_FILE || s.from_bytes);
    ngx_chat_fuzz_assert((s.width == 0) == (s.height == 0));
    ngx_chat_fuzz_assert(s.width == 0 || s.kind == NGX_CHAT_KIND_IMAGE);
    ngx_chat_fuzz_assert(s.width <= 0x7fffffff && s.height <= 0x7fffffff);
    ngx_chat_fuzz_assert(s.decodable == (s.width != 0));
    ngx_chat_fuzz_assert(s.orientation <= 8);
    ngx_chat_fuzz_assert(s.orientation == 0
                         || ngx_strcmp(s.buf, "image/jpeg") == 0);

    if (!s.from_bytes) {
        ngx_chat_fuzz_assert(s.width == 0 && s.orientation == 0);
        ngx_chat_fuzz_files_claim(&s, claimed, claimed_len);
    }

    /* what the bytes say, they say whatever the claim */
    ngx_chat_sniff(h, len, NULL, 0, &bare);

    if (s.from_bytes) {
        ngx_chat_fuzz_assert(bare.from_bytes);
        ngx_chat_fuzz_assert(bare.type.len == s.type.len);
        ngx_chat_fuzz_assert(ngx_strcmp(bare.buf, s.buf) == 0);
        ngx_chat_fuzz_assert(bare.kind == s.kind);
        ngx_chat_fuzz_assert(bare.width == s.width
                             && bare.height == s.height);
        ngx_chat_fuzz_assert(bare.orientation == s.orientation);
        ngx_chat_fuzz_assert(bare.decodable == s.decodable);
    }

    /* the case of a type changes nothing */
    active = ngx_chat_type_active(c, claimed_len);

    for (i = 0; i < claimed_len; i++) {
        c[i] = ngx_tolower(c[i]);
    }

    ngx_chat_fuzz_assert(ngx_chat_type_active(c, claimed_len) == active);

    for (i = 0; i < claimed_len; i++) {
        c[i] = ngx_toupper(c[i]);
    }

    ngx_chat_fuzz_assert(ngx_chat_type_active(c, claimed_len) == active);

    free(h);
    free(c);
}


/*
 * A claim, cleaned for reference: blanks before it dropped, the parameters
 * after it; "type/subtype" of registered characters, at most 127, in
 * lowercase; not a type that runs.  Otherwise octet-stream.
 */

static void
ngx_chat_fuzz_files_claim(ngx_chat_sniff_t *s, const u_char *claimed,
    size_t len)
{
    u_char        t[256], c;
    size_t        i, n, slash;
    ngx_uint_t    ok, slashes;
    const u_char  *p, *last;

    p = claimed;
    last = claimed + len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    n = 0;
    ok = 1;
    slashes = 0;
    slash = 0;

    for ( ; p < last && *p != ';' && *p != ' ' && *p != '\t'; p++) {
        c = *p;

        if (c == '/') {
            slashes++;
            slash = n;

        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                     || (c >= '0' && c <= '9') || c == '.' || c == '+'
                     || c == '-' || c == '_'))
        {
            ok = 0;
        }

        t[n++] = (c >= 'A' && c <= 'Z') ? (u_char) (c | 0x20) : c;
    }

    if (n > NGX_CHAT_TYPE_MAX || slashes != 1 || slash == 0
        || slash == n - 1 || ngx_chat_type_active(t, n))
    {
        ok = 0;
    }

    if (!ok) {
        ngx_chat_fuzz_assert(ngx_strcmp(s->buf, "application/octet-stream")
                             == 0);
        return;
    }

    ngx_chat_fuzz_assert(s->type.len == n);

    for (i = 0; i < n; i++) {
        ngx_chat_fuzz_assert(s->buf[i] == t[i]);
    }
}


/* the clean name in an exact block of len + 5, as the module allocates */

static size_t
ngx_chat_fuzz_files_clean(const u_char *name, size_t len, u_char **out)
{
    u_char  *src, *dst, *again;
    size_t   n, m;

    src = ngx_chat_fuzz_files_copy(name, len);
    dst = malloc(len + 5);
    ngx_chat_fuzz_assert(dst != NULL);

    n = ngx_chat_filename_clean(dst, src, len);

    ngx_chat_fuzz_assert(n >= 1 && n <= 255 && n <= ngx_max(len, 4));
    ngx_chat_fuzz_files_check_name(dst, n);

    if (ngx_chat_fuzz_files_needs_nothing(name, len)) {
        ngx_chat_fuzz_assert(n == len && ngx_memcmp(dst, name, n) == 0);
    }

    /* a clean name is clean */
    ngx_chat_fuzz_assert(ngx_chat_fuzz_files_needs_nothing(dst, n));

    again = malloc(n + 5);
    ngx_chat_fuzz_assert(again != NULL);

    m = ngx_chat_filename_clean(again, dst, n);

    ngx_chat_fuzz_assert(m == n && ngx_memcmp(again, dst, n) == 0);

    free(again);
    free(src);

    *out = dst;

    return n;
}


static void
ngx_chat_fuzz_files_check_name(u_char *p, size_t n)
{
    size_t    i, k;
    uint32_t  c;

    ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_valid(p, n) == NGX_OK);
    ngx_chat_fuzz_assert(p[0] != '.' && p[0] != ' ');
    ngx_chat_fuzz_assert(p[n - 1] != '.' && p[n - 1] != ' ');

    for (i = 0; i < n; i += k) {
        k = ngx_chat_fuzz_files_char(p + i, n - i, &c);

        ngx_chat_fuzz_assert(k > 0);
        ngx_chat_fuzz_assert(c >= 0x20 && c != 0x7f
                             && !(c >= 0x80 && c < 0xa0));
        ngx_chat_fuzz_assert(c != '/' && c != '\\');
        ngx_chat_fuzz_assert(!ngx_chat_fuzz_files_hidden(c));
    }
}


/*
 * A name the cleaning leaves alone: at most 255 bytes of UTF-8 with
 * nothing it drops or replaces, and no dot or space at either end.
 */

static ngx_uint_t
ngx_chat_fuzz_files_needs_nothing(const u_char *p, size_t len)
{
    size_t    i, k;
    uint32_t  c;

    if (len == 0 || len > 255 || p[0] == '.' || p[0] == ' '
        || p[len - 1] == '.' || p[len - 1] == ' '
        || ngx_chat_fuzz_utf8_valid(p, len) != NGX_OK)
    {
        return 0;
    }

    for (i = 0; i < len; i += k) {
        k = ngx_chat_fuzz_files_char(p + i, len - i, &c);

        if (k == 0 || c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
            || c == '/' || c == '\\' || ngx_chat_fuzz_files_hidden(c))
        {
            return 0;
        }
    }

    return 1;
}


/* the marks that change how a name reads, after the module's list */

static ngx_uint_t
ngx_chat_fuzz_files_hidden(uint32_t c)
{
    return c == 0x00ad || c == 0x061c || (c >= 0x200b && c <= 0x200f)
           || (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f)
           || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb);
}


static void
ngx_chat_fuzz_files_disposition(const u_char *name, size_t len,
    ngx_uint_t show)
{
    u_char        *out, *last, *p, c;
    size_t         n, i;
    ngx_int_t      h, l;
    ngx_str_t      s;
    const char    *start;

    static const char  ext[] = "\"; filename*=UTF-8''";

    s.data = ngx_chat_fuzz_files_copy(name, len);
    s.len = len;

    n = ngx_chat_content_disposition_len(&s);
    out = malloc(n);
    ngx_chat_fuzz_assert(out != NULL);

    last = ngx_chat_content_disposition(out, &s, show);

    ngx_chat_fuzz_assert(last >= out && (size_t) (last - out) <= n);

    for (p = out; p < last; p++) {
        ngx_chat_fuzz_assert(*p >= 0x20 && *p < 0x7f);
    }

    start = show ? "inline; filename=\"" : "attachment; filename=\"";
    p = out;

    ngx_chat_fuzz_assert((size_t) (last - p) >= ngx_strlen(start));
    ngx_chat_fuzz_assert(ngx_memcmp(p, start, ngx_strlen(start)) == 0);
    p += ngx_strlen(start);

    /* the quoted form: the name, "_" for what it cannot hold */
    ngx_chat_fuzz_assert((size_t) (last - p) >= len);

    for (i = 0; i < len; i++) {
        c = name[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%') {
            ngx_chat_fuzz_assert(p[i] == '_');

        } else {
            ngx_chat_fuzz_assert(p[i] == c);
        }
    }

    p += len;

    ngx_chat_fuzz_assert((size_t) (last - p) >= sizeof(ext) - 1);
    ngx_chat_fuzz_assert(ngx_memcmp(p, ext, sizeof(ext) - 1) == 0);
    p += sizeof(ext) - 1;

    /* RFC 8187: attr-chars and %XX, decoding back to the name */
    for (i = 0; p < last; i++) {
        ngx_chat_fuzz_assert(i < len);

        if (*p == '%') {
            ngx_chat_fuzz_assert(last - p >= 3);
            h = ngx_chat_fuzz_files_hex(p[1]);
            l = ngx_chat_fuzz_files_hex(p[2]);
            ngx_chat_fuzz_assert(h >= 0 && l >= 0);
            ngx_chat_fuzz_assert(name[i] == (u_char) (h << 4 | l));
            p += 3;
            continue;
        }

        ngx_chat_fuzz_assert((*p >= 'a' && *p <= 'z')
                             || (*p >= 'A' && *p <= 'Z')
                             || (*p >= '0' && *p <= '9')
                             || ngx_strchr("!#$&+-.^_`|~", *p));
        ngx_chat_fuzz_assert(name[i] == *p);
        p++;
    }

    ngx_chat_fuzz_assert(i == len);

    free(out);
    free(s.data);
}


static void
ngx_chat_fuzz_files_boundary(const u_char *type, size_t len)
{
    u_char     *t, *p;
    ngx_int_t   rc;
    ngx_str_t   b;
    ngx_uint_t  ours;

    static const char  mp[] = "multipart/form-data";

    t = ngx_chat_fuzz_files_copy(type, len);

    rc = ngx_chat_multipart_boundary(t, len, &b);

    ours = (len >= 19);

    for (p = t; ours && p < t + 19; p++) {
        if (ngx_tolower(type[p - t]) != (u_char) mp[p - t]) {
            ours = 0;
        }
    }

    if (ours && len > 19 && type[19] != ';' && type[19] != ' '
        && type[19] != '\t')
    {
        ours = 0;
    }

    ngx_chat_fuzz_assert(rc == NGX_OK || rc == NGX_ERROR
                         || rc == NGX_DECLINED);
    ngx_chat_fuzz_assert((rc == NGX_DECLINED) == !ours);

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(b.data > t + 19 && b.data + b.len <= t + len);
        ngx_chat_fuzz_assert(b.len >= 1 && b.len <= 70);
        ngx_chat_fuzz_assert(b.data[b.len - 1] != ' ');

        for (p = b.data; p < b.data + b.len; p++) {
            ngx_chat_fuzz_assert((*p >= 'a' && *p <= 'z')
                                 || (*p >= 'A' && *p <= 'Z')
                                 || (*p >= '0' && *p <= '9')
                                 || (*p && ngx_strchr("'()+_,-./:=? ", *p)));
        }
    }

    free(t);
}


/* an exact heap copy: malloc(0) may be NULL, and a pointer is wanted */

static u_char *
ngx_chat_fuzz_files_copy(const u_char *p, size_t len)
{
    u_char  *c;

    c = malloc(len ? len : 1);
    ngx_chat_fuzz_assert(c != NULL);

    if (len) {
        ngx_memcpy(c, p, len);
    }

    return c;
}


static ngx_int_t
ngx_chat_fuzz_files_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/* one character of valid UTF-8 (checked before), its length */

static ngx_uint_t
ngx_chat_fuzz_files_char(const u_char *p, size_t len, uint32_t *c)
{
    ngx_uint_t  n, i;

    if (p[0] < 0x80) {
        n = 1;
        *c = p[0];

    } else if (p[0] < 0xe0) {
        n = 2;
        *c = p[0] & 0x1f;

    } else if (p[0] < 0xf0) {
        n = 3;
        *c = p[0] & 0x0f;

    } else {
        n = 4;
        *c = p[0] & 0x07;
    }

    if (n > len) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        *c = (*c << 6) | (p[i] & 0x3f);
    }

    return n;
}
