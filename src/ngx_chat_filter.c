
/*
 * ngx_chat: the content filter (chat_filter).  Patterns of nginx's PCRE,
 * caseless, each with what to do with a text that has a match: refuse
 * the request (400, code content_rejected) or mask the match, character
 * by character, with "*".  A pattern may be for one tenant only.  Applied
 * to the text people write for others to read: message content (new and
 * edited), conversation titles and descriptions, file names.
 *
 *   chat_filter "\bbadword\b" mask;
 *   chat_filter "https?://bit\.ly/" reject tenant=acme;
 */


#include "ngx_chat.h"


#define NGX_CHAT_FILTER_SCAN     64      /* matches masked in one text */


typedef struct {
    ngx_regex_t                 *re;
    ngx_str_t                    pattern;
    ngx_str_t                    tenant;     /* empty: every tenant */
    ngx_uint_t                   mask;       /* else reject */
} ngx_chat_filter_t;


#if (NGX_PCRE)
static ngx_int_t ngx_chat_filter_mask(ngx_pool_t *pool, ngx_regex_t *re,
    ngx_str_t *text);
#endif


/* chat_filter PATTERN [reject|mask] [tenant=NAME]; */

char *
ngx_chat_filter(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
#if (NGX_PCRE)
    ngx_chat_main_conf_t *mcf = conf;

    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_str_t           *value;
    ngx_uint_t           i;
    ngx_chat_filter_t   *f;
    ngx_regex_compile_t  rc;

    value = cf->args->elts;

    if (mcf->filters == NULL) {
        mcf->filters = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_chat_filter_t));
        if (mcf->filters == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    f = ngx_array_push(mcf->filters);
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(f, sizeof(ngx_chat_filter_t));
    f->pattern = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strcmp(value[i].data, "mask") == 0) {
            f->mask = 1;

        } else if (ngx_strcmp(value[i].data, "reject") == 0) {
            f->mask = 0;

        } else if (value[i].len > 7
                   && ngx_strncmp(value[i].data, "tenant=", 7) == 0)
        {
            f->tenant.data = value[i].data + 7;
            f->tenant.len = value[i].len - 7;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_filter\": unknown parameter \"%V\" "
                               "(reject, mask or tenant=NAME)", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));
    rc.pattern = value[1];
    rc.pool = cf->pool;
    rc.options = NGX_REGEX_CASELESS;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"chat_filter\": %V",
                           &rc.err);
        return NGX_CONF_ERROR;
    }

    f->re = rc.regex;

    return NGX_CONF_OK;
#else
    return "needs nginx with PCRE";
#endif
}


/*
 * NGX_OK: the text may go, *text perhaps masked (a copy in pool);
 * NGX_DECLINED: a "reject" pattern matched; NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_chat_filter_text(ngx_pool_t *pool, ngx_str_t *tenant, ngx_str_t *text)
{
#if (NGX_PCRE)
    int                  captures[3];
    ngx_int_t            rc;
    ngx_uint_t           i;
    ngx_chat_filter_t   *f;
    ngx_array_t         *filters;

    filters = ngx_chat_worker.conf->filters;

    if (filters == NULL || text->len == 0) {
        return NGX_OK;
    }

    f = filters->elts;

    for (i = 0; i < filters->nelts; i++) {

        if (f[i].tenant.len
            && (f[i].tenant.len != tenant->len
                || ngx_strncmp(f[i].tenant.data, tenant->data, tenant->len)
                   != 0))
        {
            continue;
        }

        if (f[i].mask) {
            if (ngx_chat_filter_mask(pool, f[i].re, text) != NGX_OK) {
                return NGX_ERROR;
            }
            continue;
        }

        rc = ngx_regex_exec(f[i].re, text, captures, 3);

        if (rc >= 0) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                           "chat filter: \"%V\" rejects", &f[i].pattern);
            return NGX_DECLINED;
        }

        if (rc != NGX_REGEX_NO_MATCHED) {
            ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                          ngx_regex_exec_n " of chat_filter \"%V\" failed: "
                          "%i", &f[i].pattern, rc);
            return NGX_DECLINED;
        }
    }
#endif

    return NGX_OK;
}


#if (NGX_PCRE)

/* each match becomes as many "*" as it has characters */

static ngx_int_t
ngx_chat_filter_mask(ngx_pool_t *pool, ngx_regex_t *re, ngx_str_t *text)
{
    int          captures[3];
    u_char      *out, *p, *start, *end;
    ngx_int_t    rc;
    ngx_str_t    rest;
    ngx_uint_t   n;

    out = NULL;
    p = NULL;
    rest = *text;

    for (n = 0; n < NGX_CHAT_FILTER_SCAN && rest.len; n++) {

        rc = ngx_regex_exec(re, &rest, captures, 3);

        if (rc < 0 || captures[1] == captures[0]) {
            /* no (more) match, or an empty one that would not end */
            break;
        }

        if (out == NULL) {
            /* a mask is never longer than what it masks */
            out = ngx_pnalloc(pool, text->len);
            if (out == NULL) {
                return NGX_ERROR;
            }
            p = out;
        }

        start = rest.data + captures[0];
        end = rest.data + captures[1];

        p = ngx_cpymem(p, rest.data, start - rest.data);

        for ( /* void */ ; start < end; start++) {
            /* one "*" a character: continuation bytes are skipped */
            if ((*start & 0xc0) != 0x80) {
                *p++ = '*';
            }
        }

        rest.len -= end - rest.data;
        rest.data = end;
    }

    if (out == NULL) {
        return NGX_OK;
    }

    p = ngx_cpymem(p, rest.data, rest.len);

    text->data = out;
    text->len = p - out;

    return NGX_OK;
}

#endif
