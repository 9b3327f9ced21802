
/*
 * ngx_chat: a small test framework for the pure logic.
 *
 * A test file defines its tests as functions without arguments and lists
 * them in ngx_chat_tests[]; ngx_chat_test.c is the main() that runs them.
 * A failed expectation prints where and why and the test goes on, so that
 * one run shows every broken expectation; the binary then exits with 1.
 */


#ifndef _NGX_CHAT_TEST_H_INCLUDED_
#define _NGX_CHAT_TEST_H_INCLUDED_


#include "ngx_chat_pure.h"


typedef void (*ngx_chat_test_pt)(void);

typedef struct {
    const char                  *name;
    ngx_chat_test_pt             run;
} ngx_chat_test_t;

#define ngx_chat_test(name)      { #name, name }
#define ngx_chat_null_test       { NULL, NULL }


/* every test file defines it, ending with ngx_chat_null_test */
extern ngx_chat_test_t  ngx_chat_tests[];


#define ngx_chat_expect(cond)                                                 \
    ngx_chat_test_expect((cond) != 0, __FILE__, __LINE__, "%s", #cond)

#define ngx_chat_expect_int(actual, expected)                                 \
    ngx_chat_test_expect_int((long long) (actual), (long long) (expected),   \
                             __FILE__, __LINE__, #actual)

/* bytes p, len equal the C string s */
#define ngx_chat_expect_bytes(p, len, s)                                      \
    ngx_chat_test_expect_bytes((u_char *) (p), (len), (s), __FILE__,         \
                               __LINE__, #p)

/* the C string s1 contains the C string s2 */
#define ngx_chat_expect_has(s1, s2)                                           \
    ngx_chat_test_expect_has((s1), (s2), __FILE__, __LINE__, #s1)

/* a JSON value equals the JSON text "json" ("null" for a NULL value) */
#define ngx_chat_expect_json(v, json)                                         \
    ngx_chat_test_expect_json((v), (json), __FILE__, __LINE__, #v)


void ngx_chat_test_expect(int ok, const char *file, int line,
    const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));
void ngx_chat_test_expect_int(long long actual, long long expected,
    const char *file, int line, const char *what);
void ngx_chat_test_expect_bytes(u_char *p, size_t len, const char *s,
    const char *file, int line, const char *what);
void ngx_chat_test_expect_has(const char *s1, const char *s2,
    const char *file, int line, const char *what);
void ngx_chat_test_expect_json(json_t *v, const char *json, const char *file,
    int line, const char *what);

/* a value freed once the test ends, so that tests stay short and leak-free */
json_t *ngx_chat_test_keep(json_t *v);

/* JSON text to a value kept for the test; the text must be valid */
json_t *ngx_chat_test_json(const char *text);

/* formatted text, freed once the test ends */
char *ngx_chat_test_sprintf(const char *fmt, ...)
    __attribute__ ((format (printf, 1, 2)));

/* a string of n copies of s, freed once the test ends */
char *ngx_chat_test_repeat(const char *s, size_t n);

/*
 * A copy of len bytes in a heap block of exactly that size, freed once the
 * test ends: AddressSanitizer then reports any read past the end.
 */
u_char *ngx_chat_test_bytes(const void *p, size_t len);

/* a string literal as such a copy, without its NUL */
#define ngx_chat_test_literal(s)  ngx_chat_test_bytes(s, sizeof(s) - 1)

/*
 * The query (body = 0) or body (body = 1) fields of a route of the module,
 * by its method and pattern: the tests check the lists the module uses.
 */
const ngx_chat_field_t *ngx_chat_test_fields(ngx_uint_t method,
    const char *pattern, ngx_uint_t body);

/* the module's route table */
extern const ngx_chat_route_t  ngx_chat_api_routes[];
extern const ngx_uint_t        ngx_chat_api_nroutes;


#endif /* _NGX_CHAT_TEST_H_INCLUDED_ */
