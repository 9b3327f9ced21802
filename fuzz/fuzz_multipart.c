
/*
 * The streaming multipart/form-data parser of src/ngx_chat_files.c, fed
 * as src/ngx_chat_upload.c feeds it: the body in the buffers nginx reads,
 * each gone once fed, then the end of the body.  The body is parsed twice,
 * in one read and in reads of sizes the input chooses, and once more by a
 * reference that looks at the whole body at once.  Checked:
 *
 *   the boundary    the one built from the input is taken back by
 *                   ngx_chat_multipart_boundary() from a Content-Type
 *   the two reads   the same parts (name, filename, Content-Type, file or
 *                   not), the same bytes to body() for each, the same
 *                   ends, the same verdict and reason
 *   the callbacks   part(), then only body() of at least one byte, then
 *                   end(); a name is never empty; none after a failure,
 *                   nor after a handler refused; later reads and the end
 *                   of the body stay failures
 *   the verdict     NGX_OK without a reason, NGX_ERROR with one; at most
 *                   parts_max parts
 *   the reference   when the parser takes the body, a reference that finds
 *                   each "\r\n--boundary" in the whole body (RFC 2046
 *                   5.1.1) finds the same parts with the same bytes
 *
 * and the reads are exact heap copies, so that AddressSanitizer reports a
 * read past one, and are overwritten once fed, so that a parser that kept
 * a pointer into one would be caught delivering the wrong bytes.
 *
 * Input: a byte for the boundary's length (1 to 70), that many bytes for
 * its characters (mapped onto RFC 2046's bchars), a byte for the reads
 * (0: one byte each; else sizes of 1 to that byte, varying), a byte for
 * the limits and handlers (bits 0-1: header_max, 2-3: parts_max, from the
 * tables below; 4-5: part() refuses that part, 0 none; 6: end() refuses
 * the first part), then the body.
 */


#include "ngx_chat_fuzz.h"


#define NGX_CHAT_FUZZ_MP_PARTS   64

static const size_t      ngx_chat_fuzz_mp_header_max[] = {
    0, 40, 100, NGX_CHAT_MP_HEAD_MAX
};

static const ngx_uint_t  ngx_chat_fuzz_mp_parts_max[] = { 1, 2, 3, 64 };

static const char        ngx_chat_fuzz_mp_bchars[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    "'()+_,-./:=? ";


/* a part as reported: its strings and body as offsets into the run's bytes */

typedef struct {
    size_t                       name, name_len;
    size_t                       filename, filename_len;
    size_t                       type, type_len;
    size_t                       body, body_len;
    unsigned                     is_file:1;
    unsigned                     ended:1;
} ngx_chat_fuzz_mp_part_t;

typedef struct {
    ngx_chat_fuzz_mp_part_t      parts[NGX_CHAT_FUZZ_MP_PARTS];
    ngx_uint_t                   nparts;
    ngx_uint_t                   calls;

    u_char                      *bytes;
    size_t                       len;
    size_t                       size;

    ngx_uint_t                   refuse_part;
    ngx_uint_t                   refuse_end;
    unsigned                     in_part:1;
    unsigned                     refused:1;  /* a handler said no */

    ngx_int_t                    rc;
    const char                  *error;
} ngx_chat_fuzz_mp_run_t;

/* the sizes of the reads */

typedef struct {
    u_char                       how;
    uint32_t                     state;
} ngx_chat_fuzz_mp_reads_t;

/* what the reference found: offsets into the body */

typedef struct {
    size_t                       body[NGX_CHAT_FUZZ_MP_PARTS];
    size_t                       len[NGX_CHAT_FUZZ_MP_PARTS];
    ngx_uint_t                   nparts;
} ngx_chat_fuzz_mp_ref_t;


static void ngx_chat_fuzz_mp_run(ngx_chat_fuzz_mp_run_t *run,
    ngx_str_t *boundary, u_char cfg, const u_char *in, size_t len,
    u_char how, ngx_uint_t pieces);
static ngx_int_t ngx_chat_fuzz_mp_feed(ngx_chat_multipart_t *mp,
    const u_char *p, size_t len);
static size_t ngx_chat_fuzz_mp_next(ngx_chat_fuzz_mp_reads_t *reads,
    size_t left);
static ngx_int_t ngx_chat_fuzz_mp_part(ngx_chat_multipart_t *mp,
    ngx_chat_mp_part_t *part);
static ngx_int_t ngx_chat_fuzz_mp_body(ngx_chat_multipart_t *mp, u_char *p,
    size_t len);
static ngx_int_t ngx_chat_fuzz_mp_end(ngx_chat_multipart_t *mp);
static size_t ngx_chat_fuzz_mp_keep(ngx_chat_fuzz_mp_run_t *run, u_char *p,
    size_t len);
static void ngx_chat_fuzz_mp_same(ngx_chat_fuzz_mp_run_t *a,
    ngx_chat_fuzz_mp_run_t *b);
static ngx_int_t ngx_chat_fuzz_mp_reference(const u_char *in, size_t len,
    u_char *delim, size_t delim_len, ngx_chat_fuzz_mp_ref_t *ref);
static const u_char *ngx_chat_fuzz_mp_find(const u_char *p,
    const u_char *last, const u_char *s, size_t n);
static void ngx_chat_fuzz_mp_boundary(ngx_str_t *boundary);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   b[70], delim[80], how, cfg;
    size_t                   n, i, len;
    ngx_str_t                boundary;
    ngx_uint_t               k;
    const u_char            *in;
    ngx_chat_fuzz_mp_ref_t   ref;
    ngx_chat_fuzz_mp_run_t   whole, pieces;

    if (size < 1) {
        return 0;
    }

    n = data[0] % 70 + 1;

    if (size < 1 + n + 2) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        b[i] = data[1 + i];

        if (b[i] == '\0' || ngx_strchr(ngx_chat_fuzz_mp_bchars, b[i]) == NULL)
        {
            b[i] = ngx_chat_fuzz_mp_bchars[b[i]
                                           % (sizeof(ngx_chat_fuzz_mp_bchars)
                                              - 1)];
        }
    }

    /* a boundary does not end with a space */
    if (b[n - 1] == ' ') {
        b[n - 1] = '_';
    }

    boundary.data = b;
    boundary.len = n;

    ngx_chat_fuzz_mp_boundary(&boundary);

    how = data[1 + n];
    cfg = data[2 + n];
    in = data + 3 + n;
    len = size - 3 - n;

    ngx_chat_fuzz_mp_run(&whole, &boundary, cfg, in, len, 0, 0);
    ngx_chat_fuzz_mp_run(&pieces, &boundary, cfg, in, len, how, 1);

    /* how the bytes arrive changes nothing */
    ngx_chat_fuzz_mp_same(&whole, &pieces);

    /* and what the parser takes is what RFC 2046 says is there */
    if (whole.rc == NGX_OK) {
        ngx_memcpy(delim, "\r\n--", 4);
        ngx_memcpy(delim + 4, b, n);

        ngx_chat_fuzz_assert(ngx_chat_fuzz_mp_reference(in, len, delim, n + 4,
                                                        &ref)
                             == NGX_OK);
        ngx_chat_fuzz_assert(ref.nparts == whole.nparts);

        for (k = 0; k < ref.nparts; k++) {
            ngx_chat_fuzz_assert(ref.len[k] == whole.parts[k].body_len);
            ngx_chat_fuzz_assert(ngx_memcmp(in + ref.body[k],
                                            whole.bytes
                                            + whole.parts[k].body,
                                            ref.len[k])
                                 == 0);
        }
    }

    free(whole.bytes);
    free(pieces.bytes);

    return 0;
}


/*
 * One parse: a parser set up as ngx_chat_upload_create_for() sets it up,
 * the body in one read or in pieces, the end of the body; a failure does
 * not stop the reads (nginx reads the body to its end), which must all
 * fail without a callback.
 */

static void
ngx_chat_fuzz_mp_run(ngx_chat_fuzz_mp_run_t *run, ngx_str_t *boundary,
    u_char cfg, const u_char *in, size_t len, u_char how, ngx_uint_t pieces)
{
    size_t                     n;
    ngx_int_t                  rc;
    ngx_uint_t                 calls;
    const char                *error;
    ngx_chat_multipart_t      *mp;
    ngx_chat_fuzz_mp_reads_t   reads;

    ngx_memzero(run, sizeof(ngx_chat_fuzz_mp_run_t));

    run->refuse_part = (cfg >> 4) & 0x03;
    run->refuse_end = (cfg >> 6) & 0x01;

    /* the bodies are at most the body; never NULL, for memcmp() */
    run->size = len + 64;
    run->bytes = malloc(run->size);
    ngx_chat_fuzz_assert(run->bytes != NULL);

    /* as the module has it: in the heap, not on the stack */
    mp = calloc(1, sizeof(ngx_chat_multipart_t));
    ngx_chat_fuzz_assert(mp != NULL);

    mp->boundary = *boundary;
    mp->header_max = ngx_chat_fuzz_mp_header_max[cfg & 0x03];
    mp->parts_max = ngx_chat_fuzz_mp_parts_max[(cfg >> 2) & 0x03];
    mp->part = ngx_chat_fuzz_mp_part;
    mp->body = ngx_chat_fuzz_mp_body;
    mp->end = ngx_chat_fuzz_mp_end;
    mp->data = run;

    ngx_chat_multipart_init(mp);

    reads.how = how;
    reads.state = how;
    rc = NGX_OK;
    error = NULL;

    while (len) {
        n = pieces ? ngx_chat_fuzz_mp_next(&reads, len) : len;

        if (rc == NGX_OK) {
            rc = ngx_chat_fuzz_mp_feed(mp, in, n);

            if (rc != NGX_OK) {
                ngx_chat_fuzz_assert(rc == NGX_ERROR);
                ngx_chat_fuzz_assert(mp->error != NULL);
                error = mp->error;
            }

        } else {
            /* nothing more is taken, nothing more is said */
            calls = run->calls;
            ngx_chat_fuzz_assert(ngx_chat_fuzz_mp_feed(mp, in, n)
                                 == NGX_ERROR);
            ngx_chat_fuzz_assert(run->calls == calls);
            ngx_chat_fuzz_assert(mp->error == error);
        }

        in += n;
        len -= n;
    }

    calls = run->calls;

    if (rc == NGX_OK) {
        rc = ngx_chat_multipart_finish(mp);

    } else {
        ngx_chat_fuzz_assert(ngx_chat_multipart_finish(mp) == NGX_ERROR);
        ngx_chat_fuzz_assert(mp->error == error);
    }

    /* the end of the body makes no callback, and may be asked twice */
    ngx_chat_fuzz_assert(run->calls == calls);
    ngx_chat_fuzz_assert(ngx_chat_multipart_finish(mp) == rc);

    if (rc == NGX_OK) {
        ngx_chat_fuzz_assert(mp->error == NULL);
        ngx_chat_fuzz_assert(!run->in_part && !run->refused);
        ngx_chat_fuzz_assert(run->nparts >= 1);

    } else {
        ngx_chat_fuzz_assert(rc == NGX_ERROR && mp->error != NULL);
    }

    ngx_chat_fuzz_assert(run->nparts <= mp->parts_max);

    /* a refusal fails the body: "the part was refused" and no other */
    if (run->refused) {
        ngx_chat_fuzz_assert(rc == NGX_ERROR);
        ngx_chat_fuzz_assert(ngx_strcmp(mp->error, "the part was refused")
                             == 0);
    }

    run->rc = rc;
    run->error = mp->error;

    free(mp);
}


/* one read: an exact heap copy, overwritten and gone once fed */

static ngx_int_t
ngx_chat_fuzz_mp_feed(ngx_chat_multipart_t *mp, const u_char *p, size_t len)
{
    u_char     *copy;
    ngx_int_t   rc;

    copy = malloc(len);
    ngx_chat_fuzz_assert(copy != NULL);

    ngx_memcpy(copy, p, len);
    rc = ngx_chat_multipart_feed(mp, copy, len);

    ngx_memset(copy, 0xa5, len);
    free(copy);

    return rc;
}


static size_t
ngx_chat_fuzz_mp_next(ngx_chat_fuzz_mp_reads_t *reads, size_t left)
{
    size_t  n;

    if (reads->how == 0) {
        return 1;
    }

    /* xorshift32: sizes that vary, the same for the same input */
    reads->state ^= reads->state << 13;
    reads->state ^= reads->state >> 17;
    reads->state ^= reads->state << 5;

    n = 1 + reads->state % reads->how;

    return ngx_min(n, left);
}


static ngx_int_t
ngx_chat_fuzz_mp_part(ngx_chat_multipart_t *mp, ngx_chat_mp_part_t *part)
{
    ngx_chat_fuzz_mp_run_t   *run;
    ngx_chat_fuzz_mp_part_t  *pt;

    run = mp->data;
    run->calls++;

    ngx_chat_fuzz_assert(!run->refused);
    ngx_chat_fuzz_assert(!run->in_part);
    ngx_chat_fuzz_assert(run->nparts < NGX_CHAT_FUZZ_MP_PARTS);
    ngx_chat_fuzz_assert(run->nparts < mp->parts_max);

    /* RFC 7578 4.2: every part has a name */
    ngx_chat_fuzz_assert(part->name.len > 0);
    ngx_chat_fuzz_assert(part->filename.len == 0 || part->is_file);

    pt = &run->parts[run->nparts++];
    ngx_memzero(pt, sizeof(ngx_chat_fuzz_mp_part_t));

    pt->name = ngx_chat_fuzz_mp_keep(run, part->name.data, part->name.len);
    pt->name_len = part->name.len;
    pt->filename = ngx_chat_fuzz_mp_keep(run, part->filename.data,
                                         part->filename.len);
    pt->filename_len = part->filename.len;
    pt->type = ngx_chat_fuzz_mp_keep(run, part->content_type.data,
                                     part->content_type.len);
    pt->type_len = part->content_type.len;
    pt->is_file = part->is_file;
    pt->body = run->len;

    run->in_part = 1;

    if (run->refuse_part == run->nparts) {
        run->refused = 1;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_fuzz_mp_body(ngx_chat_multipart_t *mp, u_char *p, size_t len)
{
    ngx_chat_fuzz_mp_run_t   *run;
    ngx_chat_fuzz_mp_part_t  *pt;

    run = mp->data;
    run->calls++;

    ngx_chat_fuzz_assert(!run->refused);
    ngx_chat_fuzz_assert(run->in_part);
    ngx_chat_fuzz_assert(len > 0);

    pt = &run->parts[run->nparts - 1];

    /* a part's bytes come in order, nothing between them */
    ngx_chat_fuzz_assert(pt->body + pt->body_len == run->len);

    (void) ngx_chat_fuzz_mp_keep(run, p, len);
    pt->body_len += len;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_fuzz_mp_end(ngx_chat_multipart_t *mp)
{
    ngx_chat_fuzz_mp_run_t  *run;

    run = mp->data;
    run->calls++;

    ngx_chat_fuzz_assert(!run->refused);
    ngx_chat_fuzz_assert(run->in_part);

    run->parts[run->nparts - 1].ended = 1;
    run->in_part = 0;

    if (run->refuse_end && run->nparts == 1) {
        run->refused = 1;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* bytes kept in the run's buffer: where they went */

static size_t
ngx_chat_fuzz_mp_keep(ngx_chat_fuzz_mp_run_t *run, u_char *p, size_t len)
{
    size_t   off;
    u_char  *bytes;

    off = run->len;

    if (len == 0) {
        return off;
    }

    if (run->len + len > run->size) {
        run->size = ngx_max(run->size * 2, run->len + len);
        bytes = realloc(run->bytes, run->size);
        ngx_chat_fuzz_assert(bytes != NULL);
        run->bytes = bytes;
    }

    ngx_memcpy(run->bytes + run->len, p, len);
    run->len += len;

    return off;
}


#define ngx_chat_fuzz_mp_eq(a, b, f)                                          \
    ((a)->f##_len == (b)->f##_len                                             \
     && ngx_memcmp(ra->bytes + (a)->f, rb->bytes + (b)->f, (a)->f##_len)      \
        == 0)

static void
ngx_chat_fuzz_mp_same(ngx_chat_fuzz_mp_run_t *ra, ngx_chat_fuzz_mp_run_t *rb)
{
    ngx_uint_t                i;
    ngx_chat_fuzz_mp_part_t  *a, *b;

    ngx_chat_fuzz_assert(ra->rc == rb->rc);
    ngx_chat_fuzz_assert((ra->error == NULL) == (rb->error == NULL));
    ngx_chat_fuzz_assert(ra->error == NULL
                         || ngx_strcmp(ra->error, rb->error) == 0);
    ngx_chat_fuzz_assert(ra->nparts == rb->nparts);
    ngx_chat_fuzz_assert(ra->in_part == rb->in_part);
    ngx_chat_fuzz_assert(ra->refused == rb->refused);

    for (i = 0; i < ra->nparts; i++) {
        a = &ra->parts[i];
        b = &rb->parts[i];

        ngx_chat_fuzz_assert(ngx_chat_fuzz_mp_eq(a, b, name));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_mp_eq(a, b, filename));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_mp_eq(a, b, type));
        ngx_chat_fuzz_assert(ngx_chat_fuzz_mp_eq(a, b, body));
        ngx_chat_fuzz_assert(a->is_file == b->is_file);
        ngx_chat_fuzz_assert(a->ended == b->ended);
    }
}


/*
 * RFC 2046 5.1.1 over the whole body: the first delimiter at the start
 * (without its CRLF) or after a CRLF; after each, "--" ends the body, or
 * optional blanks and a CRLF start a part; its header block ends with an
 * empty line, its body before the next "\r\n--boundary".  Only the
 * structure: what the headers say is the parser's to check.
 */

static ngx_int_t
ngx_chat_fuzz_mp_reference(const u_char *in, size_t len, u_char *delim,
    size_t delim_len, ngx_chat_fuzz_mp_ref_t *ref)
{
    const u_char  *p, *last, *q;

    ref->nparts = 0;
    last = in + len;

    if (len >= delim_len - 2
        && ngx_memcmp(in, delim + 2, delim_len - 2) == 0)
    {
        p = in + delim_len - 2;

    } else {
        p = ngx_chat_fuzz_mp_find(in, last, delim, delim_len);

        if (p == NULL) {
            return NGX_ERROR;
        }

        p += delim_len;
    }

    for ( ;; ) {
        if (last - p >= 2 && p[0] == '-' && p[1] == '-') {
            /* the epilogue is anything */
            return NGX_OK;
        }

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (last - p < 2 || p[0] != '\r' || p[1] != '\n') {
            return NGX_ERROR;
        }

        p += 2;

        if (last - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            /* no headers */
            p += 2;

        } else {
            q = ngx_chat_fuzz_mp_find(p, last, (u_char *) "\r\n\r\n", 4);

            if (q == NULL) {
                return NGX_ERROR;
            }

            p = q + 4;
        }

        q = ngx_chat_fuzz_mp_find(p, last, delim, delim_len);

        if (q == NULL || ref->nparts == NGX_CHAT_FUZZ_MP_PARTS) {
            return NGX_ERROR;
        }

        ref->body[ref->nparts] = p - in;
        ref->len[ref->nparts] = q - p;
        ref->nparts++;

        p = q + delim_len;
    }
}


/* the first occurrence of s in [p, last), the naive way */

static const u_char *
ngx_chat_fuzz_mp_find(const u_char *p, const u_char *last, const u_char *s,
    size_t n)
{
    for ( ; (size_t) (last - p) >= n; p++) {
        if (ngx_memcmp(p, s, n) == 0) {
            return p;
        }
    }

    return NULL;
}


/*
 * The boundary, as a client puts it in its Content-Type, quoted or (when
 * it is a token) not: ngx_chat_multipart_boundary() takes it back whole.
 */

static void
ngx_chat_fuzz_mp_boundary(ngx_str_t *boundary)
{
    u_char     *type, *p;
    size_t      len;
    ngx_str_t   b;
    ngx_uint_t  quoted, i;

    static const char  prefix[] = "multipart/form-data; boundary=";

    len = sizeof(prefix) - 1 + boundary->len + 2;

    type = malloc(len);
    ngx_chat_fuzz_assert(type != NULL);

    /* a token has no space, no ":", "/", "?", "=", "(", ")", "," */
    quoted = 0;

    for (i = 0; i < boundary->len; i++) {
        if (ngx_strchr(" :/?=(),", boundary->data[i])) {
            quoted = 1;
        }
    }

    p = ngx_cpymem(type, prefix, sizeof(prefix) - 1);

    if (quoted) {
        *p++ = '"';
    }

    p = ngx_cpymem(p, boundary->data, boundary->len);

    if (quoted) {
        *p++ = '"';
    }

    ngx_chat_fuzz_assert(ngx_chat_multipart_boundary(type, p - type, &b)
                         == NGX_OK);
    ngx_chat_fuzz_assert(b.len == boundary->len);
    ngx_chat_fuzz_assert(ngx_memcmp(b.data, boundary->data, b.len) == 0);

    free(type);
}
