
/*
 * ngx_chat: thumbnails, made once, at upload, off the event loop.
 *
 * Decoding an image takes time and memory that a worker's event loop must
 * not spend: the work goes to an nginx thread pool (chat_thumbnails
 * pool=), and the upload goes on when the pool posts it back.  An image
 * whose header names more pixels than chat_thumbnails pixels= allows is
 * never decoded (a decompression bomb is a few kilobytes that decode to
 * gigabytes); the file is kept, without a thumbnail.  The thumbnail is the
 * image scaled to fit a square of size= pixels, turned upright by its EXIF
 * orientation, over white where it was transparent, as a JPEG written to
 * the store's own temporary folder (so that it is renamed, not copied).
 *
 * The job outlives the request if the client goes away meanwhile: it is
 * allocated apart, and what it made is removed when it comes back.
 */


#include "ngx_chat.h"

#include <gd.h>

#if (NGX_LINUX)
#include <malloc.h>
#endif


#define NGX_CHAT_THUMB_QUALITY   80


typedef struct {
    ngx_thread_task_t            task;       /* first: its ctx is this */
    u_char                       src[NGX_MAX_PATH];
    u_char                       dst[NGX_MAX_PATH];
    ngx_str_t                    type;
    u_char                       type_data[32];
    ngx_uint_t                   orientation;
    ngx_uint_t                   side;
    ngx_int_t                    rc;
    ngx_chat_thumb_done_pt       done;
    void                        *data;
    ngx_pool_cleanup_t          *cleanup;    /* in the owner's pool */
    ngx_str_t                   *result;     /* the owner's, for dst */
    ngx_pool_t                  *pool;
    unsigned                     cancelled:1;
} ngx_chat_thumb_t;


static void ngx_chat_thumb_thread(void *data, ngx_log_t *log);
static gdImagePtr ngx_chat_thumb_decode(ngx_chat_thumb_t *th, FILE *in);
static gdImagePtr ngx_chat_thumb_scale(gdImagePtr im, ngx_uint_t side);
static gdImagePtr ngx_chat_thumb_upright(gdImagePtr im,
    ngx_uint_t orientation);
static void ngx_chat_thumb_back(ngx_event_t *ev);
static void ngx_chat_thumb_cancel(void *data);
static void ngx_chat_thumb_quiet(int priority, const char *format,
    va_list args);


static ngx_atomic_uint_t  ngx_chat_thumb_serial;


ngx_int_t
ngx_chat_thumb_init(ngx_cycle_t *cycle)
{
    /* libgd's complaints about a bad image are not nginx's to print */
    gdSetErrorMethod(ngx_chat_thumb_quiet);

    return NGX_OK;
}


/*
 * NGX_OK: the job is in the pool; done(data, rc) comes later, with
 * *result the thumbnail's file (rc NGX_OK), unless pool is destroyed
 * first.  NGX_DECLINED: no thumbnail is made (too many pixels, a type that
 * cannot be decoded, the pool refused the job).
 */

ngx_int_t
ngx_chat_thumb_start(ngx_pool_t *pool, ngx_chat_files_conf_t *conf,
    ngx_str_t *src, ngx_chat_sniff_t *sniff, ngx_str_t *result,
    ngx_chat_thumb_done_pt done, void *data)
{
    ngx_chat_thumb_t  *th;

    if (sniff->width == 0 || sniff->height == 0
        || (uint64_t) sniff->width * sniff->height > conf->pixels_max
        || src->len >= NGX_MAX_PATH || sniff->type.len >= 32)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "chat thumb: %ui x %ui pixels are not decoded",
                       sniff->width, sniff->height);
        return NGX_DECLINED;
    }

    th = ngx_calloc(sizeof(ngx_chat_thumb_t), pool->log);
    if (th == NULL) {
        return NGX_DECLINED;
    }

    th->cleanup = ngx_pool_cleanup_add(pool, 0);
    if (th->cleanup == NULL) {
        ngx_free(th);
        return NGX_DECLINED;
    }

    ngx_memcpy(th->src, src->data, src->len);
    th->src[src->len] = '\0';

    ngx_sprintf(th->dst, "%V/.tmp/%P.%uA.thumb%Z", &conf->store, ngx_pid,
                ngx_atomic_fetch_add(&ngx_chat_thumb_serial, 1));

    ngx_memcpy(th->type_data, sniff->type.data, sniff->type.len);
    th->type.data = th->type_data;
    th->type.len = sniff->type.len;
    th->orientation = sniff->orientation;
    th->side = conf->thumb_side;
    th->done = done;
    th->data = data;
    th->result = result;
    th->pool = pool;

    th->task.ctx = th;
    th->task.handler = ngx_chat_thumb_thread;
    th->task.event.handler = ngx_chat_thumb_back;
    th->task.event.data = th;
    th->task.event.log = pool->log;

    if (ngx_thread_task_post(conf->thread_pool, &th->task) != NGX_OK) {
        th->cleanup->handler = NULL;
        ngx_free(th);
        return NGX_DECLINED;
    }

    th->cleanup->handler = ngx_chat_thumb_cancel;
    th->cleanup->data = th;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "chat thumb: \"%s\" goes to the thread pool", th->src);

    return NGX_OK;
}


/* in a thread of the pool: nothing here touches nginx */

static void
ngx_chat_thumb_thread(void *data, ngx_log_t *log)
{
    int                fd;
    FILE              *in, *out;
    gdImagePtr         im, scaled, upright;
    ngx_chat_thumb_t  *th = data;

    th->rc = NGX_ERROR;

    in = fopen((char *) th->src, "rb");
    if (in == NULL) {
        return;
    }

    im = ngx_chat_thumb_decode(th, in);
    (void) fclose(in);

    if (im == NULL) {
        return;
    }

    scaled = ngx_chat_thumb_scale(im, th->side);
    gdImageDestroy(im);

#if (NGX_LINUX)
    /*
     * The decoded image was up to pixels= large, in this thread's malloc
     * arena: glibc keeps an arena's freed memory, so each thread that ever
     * decoded would hold its largest image for good.  It goes back now.
     */
    (void) malloc_trim(0);
#endif

    if (scaled == NULL) {
        return;
    }

    upright = ngx_chat_thumb_upright(scaled, th->orientation);
    if (upright != scaled) {
        gdImageDestroy(scaled);
    }

    if (upright == NULL) {
        return;
    }

    fd = open((char *) th->dst, O_WRONLY|O_CREAT|O_EXCL, 0644);
    out = (fd == -1) ? NULL : fdopen(fd, "wb");

    if (out == NULL) {
        if (fd != -1) {
            close(fd);
        }
        gdImageDestroy(upright);
        return;
    }

    gdImageJpeg(upright, out, NGX_CHAT_THUMB_QUALITY);
    gdImageDestroy(upright);

    if (fclose(out) == 0) {
        th->rc = NGX_OK;

    } else {
        (void) unlink((char *) th->dst);
    }
}


static gdImagePtr
ngx_chat_thumb_decode(ngx_chat_thumb_t *th, FILE *in)
{
    if (ngx_strcmp(th->type.data, "image/png") == 0) {
        return gdImageCreateFromPng(in);
    }

    if (ngx_strcmp(th->type.data, "image/jpeg") == 0) {
        return gdImageCreateFromJpeg(in);
    }

    if (ngx_strcmp(th->type.data, "image/gif") == 0) {
        return gdImageCreateFromGif(in);
    }

    if (ngx_strcmp(th->type.data, "image/webp") == 0) {
        return gdImageCreateFromWebp(in);
    }

    return NULL;
}


/* to fit a side x side square, over white, in true colour */

static gdImagePtr
ngx_chat_thumb_scale(gdImagePtr im, ngx_uint_t side)
{
    int         w, h, sw, sh;
    gdImagePtr  dst;

    sw = gdImageSX(im);
    sh = gdImageSY(im);

    if (sw <= 0 || sh <= 0) {
        return NULL;
    }

    if ((ngx_uint_t) sw <= side && (ngx_uint_t) sh <= side) {
        w = sw;
        h = sh;

    } else if (sw >= sh) {
        w = (int) side;
        h = ngx_max(1, (int) ((int64_t) sh * (int64_t) side / sw));

    } else {
        h = (int) side;
        w = ngx_max(1, (int) ((int64_t) sw * (int64_t) side / sh));
    }

    dst = gdImageCreateTrueColor(w, h);
    if (dst == NULL) {
        return NULL;
    }

    gdImageFilledRectangle(dst, 0, 0, w - 1, h - 1,
                           gdTrueColor(255, 255, 255));
    gdImageAlphaBlending(dst, 1);
    gdImageCopyResampled(dst, im, 0, 0, 0, 0, w, h, sw, sh);

    return dst;
}


/*
 * EXIF orientation 2-8: how the stored pixels must be turned to be seen
 * as taken.  Done on the small image, pixel by pixel, with no doubt about
 * which way a library rotates.
 */

static gdImagePtr
ngx_chat_thumb_upright(gdImagePtr im, ngx_uint_t orientation)
{
    int         x, y, w, h, dx, dy;
    gdImagePtr  dst;

    if (orientation < 2 || orientation > 8) {
        return im;
    }

    w = gdImageSX(im);
    h = gdImageSY(im);

    /* 5 to 8 swap the sides */
    dst = (orientation >= 5) ? gdImageCreateTrueColor(h, w)
                             : gdImageCreateTrueColor(w, h);
    if (dst == NULL) {
        return NULL;
    }

    for (y = 0; y < h; y++) {
        for (x = 0; x < w; x++) {

            switch (orientation) {
            case 2:  dx = w - 1 - x; dy = y;         break;
            case 3:  dx = w - 1 - x; dy = h - 1 - y; break;
            case 4:  dx = x;         dy = h - 1 - y; break;
            case 5:  dx = y;         dy = x;         break;
            case 6:  dx = h - 1 - y; dy = x;         break;
            case 7:  dx = h - 1 - y; dy = w - 1 - x; break;
            default: dx = y;         dy = w - 1 - x; break;   /* 8 */
            }

            gdImageSetPixel(dst, dx, dy, gdImageGetTrueColorPixel(im, x, y));
        }
    }

    return dst;
}


/* back on the event loop */

static void
ngx_chat_thumb_back(ngx_event_t *ev)
{
    ngx_chat_thumb_t  *th = ev->data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "chat thumb: \"%s\" %s", th->src,
                   th->rc == NGX_OK ? "made" : "not made");

    if (th->cancelled) {
        /* its upload is gone: so is what it made */
        if (th->rc == NGX_OK) {
            (void) ngx_delete_file(th->dst);
        }

        ngx_free(th);
        return;
    }

    th->cleanup->handler = NULL;

    if (th->rc == NGX_OK
        && ngx_chat_copy(th->pool, th->result, th->dst,
                         ngx_strlen(th->dst))
           != NGX_OK)
    {
        (void) ngx_delete_file(th->dst);
        th->rc = NGX_ERROR;
    }

    th->done(th->data, th->rc);
    ngx_free(th);
}


/* the owner's pool goes while the job is in a thread */

static void
ngx_chat_thumb_cancel(void *data)
{
    ngx_chat_thumb_t  *th = data;

    th->cancelled = 1;
}


static void
ngx_chat_thumb_quiet(int priority, const char *format, va_list args)
{
    (void) priority;
    (void) format;
    (void) args;
}
