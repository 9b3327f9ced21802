
/*
 * Routing: a path below the chat_api location to a route, with 404 for a
 * path no route has, 405 with the allowed methods for a path that exists
 * with other methods, and captures as slices of the path.
 */


#include "ngx_chat_test.h"


#define ALL  (NGX_CHAT_GET|NGX_CHAT_POST|NGX_CHAT_PUT|NGX_CHAT_PATCH         \
              |NGX_CHAT_DELETE)


/* as src/ngx_chat_api.c has them */

/* the module's own table (src/ngx_chat_routes.c) */

#define api   ngx_chat_api_routes
#define NAPI  ngx_chat_api_nroutes


static ngx_chat_match_t  m;


/* the path in a heap block of its exact size: no read past it goes unseen */

static ngx_int_t
find(const ngx_chat_route_t *routes, ngx_uint_t n, ngx_uint_t method,
    const char *path)
{
    ngx_memset(&m, 0xa5, sizeof(ngx_chat_match_t));

    return ngx_chat_route_find(routes, n, method,
                               ngx_chat_test_bytes(path, strlen(path)),
                               strlen(path), &m);
}


static void
test_route_literal_path_matches_its_route(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "health"), 0);
    ngx_chat_expect_int(m.ncaptures, 0);
}


static void
test_route_method_picks_among_routes_of_one_path(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_POST, "conversations"), 1);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "conversations"), 2);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "conversations/7"), 3);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PATCH, "conversations/7"),
                        4);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_DELETE, "conversations/7"),
                        5);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_DELETE,
                             "conversations/7/members/bob"),
                        10);
}


static void
test_route_unknown_path_is_404(void)
{
    static const char  *paths[] = {
        "", "/", "nope", "healthz", "healt", "health/", "/health",
        "health/x", "conversation", "conversations/", "conversations//",
        "conversations/7/", "conversations/7/me/x", "conversations/7/you",
        "conversations/7/members/bob/x", "Conversations", "HEALTH", NULL
    };

    const char  **p;

    for (p = paths; *p; p++) {
        ngx_chat_test_expect(find(api, NAPI, NGX_CHAT_GET, *p)
                             == NGX_CHAT_NO_ROUTE,
                             __FILE__, __LINE__, "\"%s\" to be 404", *p);
        ngx_chat_expect_int(m.allowed, 0);
        ngx_chat_expect_int(m.ncaptures, 0);
    }
}


static void
test_route_empty_segment_captures_nothing_and_is_404(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "conversations//members"),
                        NGX_CHAT_NO_ROUTE);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PATCH,
                             "conversations/7/members/"),
                        NGX_CHAT_NO_ROUTE);
}


static void
test_route_known_path_with_other_method_is_405_with_allowed(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_POST, "health"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed, NGX_CHAT_GET);

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PUT, "conversations"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed, NGX_CHAT_GET|NGX_CHAT_POST);

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_POST, "conversations/7"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed,
                        NGX_CHAT_GET|NGX_CHAT_PATCH|NGX_CHAT_DELETE);

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET,
                             "conversations/7/members/bob"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed, NGX_CHAT_PATCH|NGX_CHAT_DELETE);
}


static void
test_route_unknown_method_on_a_known_path_is_405(void)
{
    ngx_chat_expect_int(find(api, NAPI, 0, "conversations"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed, NGX_CHAT_GET|NGX_CHAT_POST);

    ngx_chat_expect_int(find(api, NAPI, 0, "nope"), NGX_CHAT_NO_ROUTE);
}


static void
test_route_405_is_decided_by_the_path_not_by_a_bad_capture(void)
{
    /* "#" captures anything: the id is checked later, as a 400 */
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PUT, "conversations/abc"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed,
                        NGX_CHAT_GET|NGX_CHAT_PATCH|NGX_CHAT_DELETE);
}


static void
test_route_captures_id_and_string_with_names_and_types(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PATCH,
                             "conversations/42/members/alice@example.org"),
                        9);
    ngx_chat_expect_int(m.ncaptures, 2);

    ngx_chat_expect_bytes(m.captures[0].name.data, m.captures[0].name.len,
                          "conversation_id");
    ngx_chat_expect_int(m.captures[0].type, NGX_CHAT_T_ID);
    ngx_chat_expect_bytes(m.captures[0].value.data, m.captures[0].value.len,
                          "42");

    ngx_chat_expect_bytes(m.captures[1].name.data, m.captures[1].name.len,
                          "user_id");
    ngx_chat_expect_int(m.captures[1].type, NGX_CHAT_T_STR);
    ngx_chat_expect_bytes(m.captures[1].value.data, m.captures[1].value.len,
                          "alice@example.org");
}


static void
test_route_reaction_removal_captures_three_values(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_DELETE,
                             "conversations/3/messages/77/reactions/"
                             "\xf0\x9f\x91\x8d"),
                        22);
    ngx_chat_expect_int(m.ncaptures, 3);

    ngx_chat_expect_bytes(m.captures[1].name.data, m.captures[1].name.len,
                          "message_id");
    ngx_chat_expect_int(m.captures[1].type, NGX_CHAT_T_ID);
    ngx_chat_expect_bytes(m.captures[1].value.data, m.captures[1].value.len,
                          "77");

    ngx_chat_expect_bytes(m.captures[2].name.data, m.captures[2].name.len,
                          "emoji");
    ngx_chat_expect_int(m.captures[2].type, NGX_CHAT_T_STR);
    ngx_chat_expect_bytes(m.captures[2].value.data, m.captures[2].value.len,
                          "\xf0\x9f\x91\x8d");
}


static void
test_route_message_paths_take_their_methods(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_POST,
                             "conversations/3/messages"),
                        13);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET,
                             "conversations/3/messages"),
                        14);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PATCH,
                             "conversations/3/messages/4"),
                        16);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_DELETE,
                             "conversations/3/messages/4/pin"),
                        19);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "unread"), 12);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "search"), 25);

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET,
                             "conversations/3/messages/4/forward"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed, NGX_CHAT_POST);

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_PUT,
                             "conversations/3/messages/4"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed,
                        NGX_CHAT_GET|NGX_CHAT_PATCH|NGX_CHAT_DELETE);

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_DELETE,
                             "conversations/3/messages/4/reactions"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed, NGX_CHAT_POST);
}


static void
test_route_id_capture_is_not_validated_by_the_router(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "conversations/abc"), 3);
    ngx_chat_expect_bytes(m.captures[0].value.data, m.captures[0].value.len,
                          "abc");

    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "conversations/-1"), 3);
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_GET, "conversations/0"), 3);
}


static void
test_route_captures_are_slices_of_the_path(void)
{
    u_char  *path;

    path = ngx_chat_test_literal("conversations/9/members/bob");

    ngx_chat_expect_int(ngx_chat_route_find(api, NAPI, NGX_CHAT_DELETE, path,
                                            27, &m),
                        10);
    ngx_chat_expect(m.captures[0].value.data == path + 14);
    ngx_chat_expect_int(m.captures[0].value.len, 1);
    ngx_chat_expect(m.captures[1].value.data == path + 24);
    ngx_chat_expect_int(m.captures[1].value.len, 3);
}


static void
test_route_reads_only_len_bytes_of_the_path(void)
{
    u_char  *path;

    path = ngx_chat_test_literal("conversations/9/members");

    ngx_chat_expect_int(ngx_chat_route_find(api, NAPI, NGX_CHAT_GET, path, 15,
                                            &m),
                        3);
    ngx_chat_expect_int(m.captures[0].value.len, 1);

    ngx_chat_expect_int(ngx_chat_route_find(api, NAPI, NGX_CHAT_GET, path, 13,
                                            &m),
                        2);
    ngx_chat_expect_int(ngx_chat_route_find(api, NAPI, NGX_CHAT_GET, path, 0,
                                            &m),
                        NGX_CHAT_NO_ROUTE);
}


static void
test_route_capture_takes_any_bytes_but_a_slash(void)
{
    ngx_chat_expect_int(find(api, NAPI, NGX_CHAT_DELETE,
                             "conversations/1/members/a b%2F\xc3\xa9"),
                        10);
    ngx_chat_expect_bytes(m.captures[1].value.data, m.captures[1].value.len,
                          "a b%2F\xc3\xa9");
}


static void
test_route_first_route_in_table_order_wins(void)
{
    static const ngx_chat_route_t  routes[] = {
        { NGX_CHAT_GET, "items/new", NULL },
        { NGX_CHAT_GET, "items/:name", NULL },
        { NGX_CHAT_GET|NGX_CHAT_POST, "items/#id/x", NULL },
    };

    ngx_chat_expect_int(find(routes, 3, NGX_CHAT_GET, "items/new"), 0);
    ngx_chat_expect_int(m.ncaptures, 0);

    ngx_chat_expect_int(find(routes, 3, NGX_CHAT_GET, "items/old"), 1);
    ngx_chat_expect_int(m.ncaptures, 1);

    ngx_chat_expect_int(find(routes, 3, NGX_CHAT_POST, "items/1/x"), 2);
    ngx_chat_expect_int(find(routes, 3, NGX_CHAT_GET, "items/1/x"), 2);
}


static void
test_route_405_lists_methods_of_every_route_of_the_path(void)
{
    static const ngx_chat_route_t  routes[] = {
        { NGX_CHAT_GET, "a/#id", NULL },
        { NGX_CHAT_PUT|NGX_CHAT_PATCH, "a/:name", NULL },
        { NGX_CHAT_DELETE, "b/#id", NULL },
    };

    ngx_chat_expect_int(find(routes, 3, NGX_CHAT_POST, "a/1"),
                        NGX_CHAT_NO_METHOD);
    ngx_chat_expect_int(m.allowed,
                        NGX_CHAT_GET|NGX_CHAT_PUT|NGX_CHAT_PATCH);
}


static void
test_route_four_captures_match_five_never_do(void)
{
    static const ngx_chat_route_t  routes[] = {
        { NGX_CHAT_GET, "#a/#b/#c/:d", NULL },
        { ALL, "#a/#b/#c/#d/#e", NULL },
    };

    ngx_chat_expect_int(find(routes, 2, NGX_CHAT_GET, "1/2/3/x"), 0);
    ngx_chat_expect_int(m.ncaptures, 4);
    ngx_chat_expect_bytes(m.captures[3].name.data, m.captures[3].name.len,
                          "d");
    ngx_chat_expect_bytes(m.captures[3].value.data, m.captures[3].value.len,
                          "x");

    ngx_chat_expect_int(find(routes, 2, NGX_CHAT_GET, "1/2/3/4/5"),
                        NGX_CHAT_NO_ROUTE);
}


static void
test_route_empty_table_is_404(void)
{
    ngx_chat_expect_int(find(api, 0, NGX_CHAT_GET, "health"),
                        NGX_CHAT_NO_ROUTE);
    ngx_chat_expect_int(m.allowed, 0);
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_route_literal_path_matches_its_route),
    ngx_chat_test(test_route_method_picks_among_routes_of_one_path),
    ngx_chat_test(test_route_unknown_path_is_404),
    ngx_chat_test(test_route_empty_segment_captures_nothing_and_is_404),
    ngx_chat_test(test_route_known_path_with_other_method_is_405_with_allowed),
    ngx_chat_test(test_route_unknown_method_on_a_known_path_is_405),
    ngx_chat_test(test_route_405_is_decided_by_the_path_not_by_a_bad_capture),
    ngx_chat_test(test_route_captures_id_and_string_with_names_and_types),
    ngx_chat_test(test_route_reaction_removal_captures_three_values),
    ngx_chat_test(test_route_message_paths_take_their_methods),
    ngx_chat_test(test_route_id_capture_is_not_validated_by_the_router),
    ngx_chat_test(test_route_captures_are_slices_of_the_path),
    ngx_chat_test(test_route_reads_only_len_bytes_of_the_path),
    ngx_chat_test(test_route_capture_takes_any_bytes_but_a_slash),
    ngx_chat_test(test_route_first_route_in_table_order_wins),
    ngx_chat_test(test_route_405_lists_methods_of_every_route_of_the_path),
    ngx_chat_test(test_route_four_captures_match_five_never_do),
    ngx_chat_test(test_route_empty_table_is_404),
    ngx_chat_null_test
};
