
/*
 * ngx_chat: the runner of a test binary.  "test_x [substring]" runs every
 * test, or those whose name contains the substring, and exits with 1 when
 * an expectation failed.
 */


#include "ngx_chat_test.h"
#include "ngx_chat.h"


#define NGX_CHAT_TEST_KEEP       256


static const char  *ngx_chat_test_name;
static ngx_uint_t   ngx_chat_test_failed;

static json_t      *ngx_chat_test_values[NGX_CHAT_TEST_KEEP];
static ngx_uint_t   ngx_chat_test_nvalues;
static void        *ngx_chat_test_blocks[NGX_CHAT_TEST_KEEP];
static ngx_uint_t   ngx_chat_test_nblocks;


static void *ngx_chat_test_alloc(size_t size);
static void ngx_chat_test_release(void);


int
main(int argc, char **argv)
{
    char             *self;
    ngx_uint_t        ran, failed;
    ngx_chat_test_t  *t;

    self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];

    ran = 0;
    failed = 0;

    for (t = ngx_chat_tests; t->name; t++) {

        if (argc > 1 && strstr(t->name, argv[1]) == NULL) {
            continue;
        }

        ngx_chat_test_name = t->name;
        ngx_chat_test_failed = 0;

        t->run();
        ngx_chat_test_release();

        ran++;

        if (ngx_chat_test_failed) {
            failed++;
            fprintf(stderr, "FAIL %s\n", t->name);
        }
    }

    printf("%s: %lu tests, %lu failed\n", self, (unsigned long) ran,
           (unsigned long) failed);

    /* a binary without tests is broken; a filter may well match none */
    return (failed || (ran == 0 && argc == 1)) ? 1 : 0;
}


void
ngx_chat_test_expect(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list  args;

    if (ok) {
        return;
    }

    ngx_chat_test_failed++;

    fprintf(stderr, "%s:%d: %s: expected ", file, line, ngx_chat_test_name);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


void
ngx_chat_test_expect_int(long long actual, long long expected,
    const char *file, int line, const char *what)
{
    ngx_chat_test_expect(actual == expected, file, line,
                         "%s to be %lld, got %lld", what, expected, actual);
}


void
ngx_chat_test_expect_bytes(u_char *p, size_t len, const char *s,
    const char *file, int line, const char *what)
{
    int  ok;

    ok = (p != NULL && len == strlen(s) && memcmp(p, s, len) == 0);

    ngx_chat_test_expect(ok, file, line, "%s to be \"%s\", got \"%.*s\"",
                         what, s, p ? (int) len : 6, p ? (char *) p : "(null)");
}


void
ngx_chat_test_expect_has(const char *s1, const char *s2, const char *file,
    int line, const char *what)
{
    int  ok;

    ok = (s1 != NULL && strstr(s1, s2) != NULL);

    ngx_chat_test_expect(ok, file, line, "%s to contain \"%s\", got \"%s\"",
                         what, s2, s1 ? s1 : "(null)");
}


void
ngx_chat_test_expect_json(json_t *v, const char *json, const char *file,
    int line, const char *what)
{
    int      ok;
    char    *got;
    json_t  *expected;

    expected = json_loads(json, JSON_DECODE_ANY, NULL);

    if (expected == NULL) {
        ngx_chat_test_expect(0, file, line, "valid JSON in the test: %s",
                             json);
        return;
    }

    ok = (v == NULL) ? json_is_null(expected) : json_equal(v, expected);

    got = (v == NULL) ? NULL
                      : json_dumps(v, JSON_COMPACT|JSON_SORT_KEYS
                                      |JSON_ENCODE_ANY);

    ngx_chat_test_expect(ok, file, line, "%s to be %s, got %s", what, json,
                         got ? got : "(nothing)");

    free(got);
    json_decref(expected);
}


json_t *
ngx_chat_test_keep(json_t *v)
{
    if (ngx_chat_test_nvalues == NGX_CHAT_TEST_KEEP) {
        fprintf(stderr, "%s: more than %d values kept\n",
                ngx_chat_test_name, NGX_CHAT_TEST_KEEP);
        abort();
    }

    ngx_chat_test_values[ngx_chat_test_nvalues++] = v;

    return v;
}


json_t *
ngx_chat_test_json(const char *text)
{
    json_t        *v;
    json_error_t   err;

    v = json_loads(text, JSON_DECODE_ANY, &err);

    if (v == NULL) {
        fprintf(stderr, "%s: bad JSON in the test: %s: %s\n",
                ngx_chat_test_name, err.text, text);
        abort();
    }

    return ngx_chat_test_keep(v);
}


char *
ngx_chat_test_sprintf(const char *fmt, ...)
{
    int       n;
    char     *s;
    va_list   args;

    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    if (n < 0) {
        abort();
    }

    s = ngx_chat_test_alloc(n + 1);

    va_start(args, fmt);
    vsnprintf(s, n + 1, fmt, args);
    va_end(args);

    return s;
}


char *
ngx_chat_test_repeat(const char *s, size_t n)
{
    char    *r, *p;
    size_t   len;

    len = strlen(s);
    r = ngx_chat_test_alloc(len * n + 1);

    for (p = r; n; n--) {
        p = memcpy(p, s, len);
        p += len;
    }

    *p = '\0';

    return r;
}


u_char *
ngx_chat_test_bytes(const void *p, size_t len)
{
    u_char  *r;

    /* malloc(0) may return NULL, and the functions take any pointer */
    r = ngx_chat_test_alloc(len ? len : 1);

    if (len) {
        memcpy(r, p, len);
    }

    return r;
}


static void *
ngx_chat_test_alloc(size_t size)
{
    void  *p;

    if (ngx_chat_test_nblocks == NGX_CHAT_TEST_KEEP) {
        fprintf(stderr, "%s: more than %d blocks kept\n",
                ngx_chat_test_name, NGX_CHAT_TEST_KEEP);
        abort();
    }

    p = malloc(size);
    if (p == NULL) {
        abort();
    }

    ngx_chat_test_blocks[ngx_chat_test_nblocks++] = p;

    return p;
}


static void
ngx_chat_test_release(void)
{
    while (ngx_chat_test_nvalues) {
        json_decref(ngx_chat_test_values[--ngx_chat_test_nvalues]);
    }

    while (ngx_chat_test_nblocks) {
        free(ngx_chat_test_blocks[--ngx_chat_test_nblocks]);
    }
}


const ngx_chat_field_t *
ngx_chat_test_fields(ngx_uint_t method, const char *pattern,
    ngx_uint_t body)
{
    ngx_uint_t                   i;
    const ngx_chat_api_route_t  *route;

    for (i = 0; i < ngx_chat_api_nroutes; i++) {
        if (ngx_chat_api_routes[i].method == method
            && strcmp(ngx_chat_api_routes[i].pattern, pattern) == 0)
        {
            route = ngx_chat_api_routes[i].data;
            return body ? route->body : route->query;
        }
    }

    fprintf(stderr, "no route %s in src/ngx_chat_routes.c\n", pattern);
    abort();
}
