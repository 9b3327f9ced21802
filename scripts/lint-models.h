
/*
 * Models for clang-tidy's static analyzer: scripts/lint includes this file
 * before each source of src/.  It is never compiled into the module.
 *
 * The analyzer does not know the invariant of nginx's intrusive queues
 * (h->next->prev == h), so in the usual loop that empties one,
 *
 *     while (!ngx_queue_empty(h)) {
 *         q = ngx_queue_head(h);
 *         ngx_queue_remove(q);
 *         ngx_free(ngx_queue_data(q, ngx_chat_x_t, queue));
 *     }
 *
 * it believes the next ngx_queue_head(h) may still be the q just freed and
 * reports a use after free (or, since Debian's nginx is built with
 * NGX_DEBUG and ngx_queue_remove() then clears the links, a NULL
 * dereference).  As functions it cannot see, ngx_queue_head() and its
 * kin give a pointer it knows nothing about, which the invariant makes
 * true.  A pointer used after it was freed, even passed to them, is still
 * reported.
 */


#ifndef _NGX_CHAT_LINT_MODELS_H_INCLUDED_
#define _NGX_CHAT_LINT_MODELS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


ngx_queue_t *ngx_chat_lint_queue_head(ngx_queue_t *h);
ngx_queue_t *ngx_chat_lint_queue_last(ngx_queue_t *h);
ngx_queue_t *ngx_chat_lint_queue_next(ngx_queue_t *q);
ngx_queue_t *ngx_chat_lint_queue_prev(ngx_queue_t *q);

#undef ngx_queue_head
#undef ngx_queue_last
#undef ngx_queue_next
#undef ngx_queue_prev

#define ngx_queue_head(h)        ngx_chat_lint_queue_head(h)
#define ngx_queue_last(h)        ngx_chat_lint_queue_last(h)
#define ngx_queue_next(q)        ngx_chat_lint_queue_next(q)
#define ngx_queue_prev(q)        ngx_chat_lint_queue_prev(q)


#endif /* _NGX_CHAT_LINT_MODELS_H_INCLUDED_ */
