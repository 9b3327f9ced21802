
/*
 * Request arguments: a JSON body, a query string or a path capture checked
 * against a field list into one args object, and required fields.
 */


#include "ngx_chat_test.h"


static const char *const  colours[] = { "red", "green", NULL };

/* one field of each type, with small maxima to reach the bounds */

static const ngx_chat_field_t  every_type[] = {
    { "id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "seq", NULL, NGX_CHAT_T_SEQ, 0, 0, NULL },
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "title", NULL, NGX_CHAT_T_STR, 0, 200, NULL },
    { "text", NULL, NGX_CHAT_T_TEXT, 0, 0, NULL },
    { "user", NULL, NGX_CHAT_T_USER, 0, 0, NULL },
    { "flag", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    { "colour", NULL, NGX_CHAT_T_ENUM, 0, 0, colours },
    { "at", NULL, NGX_CHAT_T_TIME, 0, 0, NULL },
    { "users", NULL, NGX_CHAT_T_USERS, 0, 3, NULL },
    { "ids", NULL, NGX_CHAT_T_IDS, 0, 3, NULL },
    { "seqs", NULL, NGX_CHAT_T_SEQMAP, 0, 2, NULL },
    { "note", NULL, NGX_CHAT_T_STR, NGX_CHAT_NULLABLE, 10, NULL },
    { "before", "before_id", NGX_CHAT_T_ID, 0, 0, NULL },
    ngx_chat_null_field
};

static const ngx_chat_field_t  required[] = {
    { "must", NULL, NGX_CHAT_T_STR, NGX_CHAT_REQUIRED, 10, NULL },
    { "may", NULL, NGX_CHAT_T_STR, 0, 10, NULL },
    { "before", "before_id", NGX_CHAT_T_ID, NGX_CHAT_REQUIRED, 0, NULL },
    ngx_chat_null_field
};


/* the lists of the real routes (src/ngx_chat_routes.c) */

#define conversation_create_body                                              \
    ngx_chat_test_fields(NGX_CHAT_POST, "conversations", 1)
#define conversation_list_query                                               \
    ngx_chat_test_fields(NGX_CHAT_GET, "conversations", 0)
#define message_send_body                                                     \
    ngx_chat_test_fields(NGX_CHAT_POST,                                       \
                         "conversations/#conversation_id/messages", 1)
#define forward_body                                                          \
    ngx_chat_test_fields(NGX_CHAT_POST,                                       \
        "conversations/#conversation_id/messages/#message_id/forward", 1)
#define search_query                                                          \
    ngx_chat_test_fields(NGX_CHAT_GET, "search", 0)
#define member_add_body                                                       \
    ngx_chat_test_fields(NGX_CHAT_POST,                                       \
                         "conversations/#conversation_id/members", 1)


static const ngx_chat_limits_t  limits = { 16 };


#define json_ok(fields, body, args)                                           \
    args_ok(fields, body, 0, args, __FILE__, __LINE__)
#define json_refused(fields, body, status, text)                              \
    args_refused(fields, body, 0, status, text, __FILE__, __LINE__)
#define query_ok(fields, query, args)                                         \
    args_ok(fields, query, 1, args, __FILE__, __LINE__)
#define query_refused(fields, query, status, text)                            \
    args_refused(fields, query, 1, status, text, __FILE__, __LINE__)


static ngx_int_t
args_run(const ngx_chat_field_t *fields, const char *in, ngx_uint_t query,
    json_t **out, ngx_chat_error_t *err)
{
    ngx_memzero(err, sizeof(ngx_chat_error_t));

    *out = ngx_chat_test_keep(json_object());

    if (query) {
        return ngx_chat_args_from_query(ngx_chat_test_bytes(in, strlen(in)),
                                        strlen(in), fields, &limits, *out,
                                        err);
    }

    return ngx_chat_args_from_json(ngx_chat_test_json(in), fields, &limits,
                                   *out, err);
}


/* the input is accepted and gives exactly the args "args" */

static void
args_ok(const ngx_chat_field_t *fields, const char *in, ngx_uint_t query,
    const char *args, const char *file, int line)
{
    json_t            *out;
    ngx_int_t          rc;
    ngx_chat_error_t   err;

    rc = args_run(fields, in, query, &out, &err);

    ngx_chat_test_expect(rc == NGX_OK, file, line,
                         "%.60s to be accepted, got %d: %lu %s",
                         in, (int) rc, (unsigned long) err.status, err.text);

    ngx_chat_test_expect_json(out, args, file, line, in);
}


/* the input is refused with the status and a message holding "text" */

static void
args_refused(const ngx_chat_field_t *fields, const char *in,
    ngx_uint_t query, ngx_uint_t status, const char *text, const char *file,
    int line)
{
    json_t            *out;
    ngx_int_t          rc;
    ngx_chat_error_t   err;

    rc = args_run(fields, in, query, &out, &err);

    ngx_chat_test_expect(rc == NGX_ERROR, file, line,
                         "%.60s to be refused, got %d", in, (int) rc);
    ngx_chat_test_expect(err.status == status, file, line,
                         "%.60s to be refused with %lu, got %lu", in,
                         (unsigned long) status, (unsigned long) err.status);
    ngx_chat_test_expect(strstr(err.text, text) != NULL, file, line,
                         "%.60s to be refused with '%s', got '%s'", in, text,
                         err.text);
}


static void
test_json_body_that_is_not_an_object_is_400(void)
{
    json_refused(every_type, "[]", 400, "\"body\": must be a JSON object");
    json_refused(every_type, "1", 400, "must be a JSON object");
    json_refused(every_type, "\"id\"", 400, "must be a JSON object");
    json_refused(every_type, "null", 400, "must be a JSON object");
}


static void
test_json_empty_object_gives_empty_args(void)
{
    json_ok(every_type, "{}", "{}");
}


static void
test_json_unknown_field_is_400_naming_it(void)
{
    json_refused(every_type, "{\"nope\": 1}", 400,
                 "\"nope\": is not a known field");
    json_refused(every_type, "{\"id\": 1, \"ID\": 2}", 400,
                 "\"ID\": is not a known field");
    json_refused(every_type, "{\"\": 1}", 400, "is not a known field");
    json_refused(every_type, "{\"before_id\": 1}", 400,
                 "\"before_id\": is not a known field");
}


static void
test_json_error_for_an_overlong_field_name_is_truncated(void)
{
    json_t            *out;
    ngx_int_t          rc;
    ngx_chat_error_t   err;

    rc = args_run(every_type,
                  ngx_chat_test_sprintf("{\"%s\": 1}",
                                        ngx_chat_test_repeat("k", 300)),
                  0, &out, &err);

    ngx_chat_expect_int(rc, NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);

    /* the name is shown by its first 64 bytes, the message in full */
    ngx_chat_expect(strncmp(err.text, "\"kkkk", 5) == 0);
    ngx_chat_expect(strstr(err.text, ngx_chat_test_repeat("k", 65)) == NULL);
    ngx_chat_expect(strstr(err.text, "is not a known field") != NULL);
}


static void
test_json_error_is_cut_between_characters(void)
{
    json_t            *out;
    ngx_int_t          rc;
    ngx_chat_error_t   err;

    /* "x" and 2-byte characters: a 64-byte cut would split one */
    rc = args_run(every_type,
                  ngx_chat_test_sprintf("{\"x%s\": 1}",
                                        ngx_chat_test_repeat("\xc3\xa9",
                                                             150)),
                  0, &out, &err);

    ngx_chat_expect_int(rc, NGX_ERROR);
    ngx_chat_expect(ngx_chat_utf8_valid((u_char *) err.text,
                                        strlen(err.text))
                    == NGX_OK);
}


static void
test_json_known_fields_are_copied_typed(void)
{
    json_ok(every_type,
            "{\"id\": 7, \"seq\": 0, \"title\": \"hi\", \"flag\": true,"
            " \"colour\": \"green\", \"at\": \"2024-01-02T03:04:05Z\","
            " \"users\": [\"a\"], \"ids\": [1], \"seqs\": {\"1\": 2}}",
            "{\"id\": 7, \"seq\": 0, \"title\": \"hi\", \"flag\": true,"
            " \"colour\": \"green\", \"at\": \"2024-01-02T03:04:05Z\","
            " \"users\": [\"a\"], \"ids\": [1], \"seqs\": {\"1\": 2}}");
}


static void
test_json_field_with_arg_is_stored_under_the_arg_name(void)
{
    json_ok(every_type, "{\"before\": 5}", "{\"before_id\": 5}");
}


static void
test_json_id_takes_1_to_2_pow_53_minus_1(void)
{
    json_ok(every_type, "{\"id\": 1}", "{\"id\": 1}");
    json_ok(every_type, "{\"id\": 9007199254740991}",
            "{\"id\": 9007199254740991}");

    json_refused(every_type, "{\"id\": 0}", 400,
                 "\"id\": must be a positive integer below 2^53");
    json_refused(every_type, "{\"id\": -1}", 400, "\"id\": must be");
    json_refused(every_type, "{\"id\": 9007199254740992}", 400,
                 "\"id\": must be a positive integer below 2^53");
    json_refused(every_type, "{\"id\": 9223372036854775807}", 400,
                 "\"id\": must be");
}


static void
test_json_id_must_be_a_json_integer(void)
{
    json_refused(every_type, "{\"id\": \"1\"}", 400, "\"id\": must be");
    json_refused(every_type, "{\"id\": 1.0}", 400, "\"id\": must be");
    json_refused(every_type, "{\"id\": 1e3}", 400, "\"id\": must be");
    json_refused(every_type, "{\"id\": true}", 400, "\"id\": must be");
    json_refused(every_type, "{\"id\": [1]}", 400, "\"id\": must be");
    json_refused(every_type, "{\"id\": {}}", 400, "\"id\": must be");
}


static void
test_json_seq_takes_0_to_2_pow_53_minus_1(void)
{
    json_ok(every_type, "{\"seq\": 0}", "{\"seq\": 0}");
    json_ok(every_type, "{\"seq\": 9007199254740991}",
            "{\"seq\": 9007199254740991}");

    json_refused(every_type, "{\"seq\": -1}", 400,
                 "\"seq\": must be a non-negative integer below 2^53");
    json_refused(every_type, "{\"seq\": 9007199254740992}", 400,
                 "\"seq\": must be a non-negative integer");
    json_refused(every_type, "{\"seq\": 0.5}", 400, "\"seq\": must be");
    json_refused(every_type, "{\"seq\": \"0\"}", 400, "\"seq\": must be");
}


static void
test_json_limit_over_100_is_clamped_to_100(void)
{
    json_ok(every_type, "{\"limit\": 1}", "{\"limit\": 1}");
    json_ok(every_type, "{\"limit\": 99}", "{\"limit\": 99}");
    json_ok(every_type, "{\"limit\": 100}", "{\"limit\": 100}");
    json_ok(every_type, "{\"limit\": 101}", "{\"limit\": 100}");
    json_ok(every_type, "{\"limit\": 9007199254740991}", "{\"limit\": 100}");
}


static void
test_json_limit_below_1_or_not_an_integer_is_400(void)
{
    json_refused(every_type, "{\"limit\": 0}", 400,
                 "\"limit\": must be a positive integer");
    json_refused(every_type, "{\"limit\": -5}", 400, "\"limit\": must be");
    json_refused(every_type, "{\"limit\": 9007199254740992}", 400,
                 "\"limit\": must be");
    json_refused(every_type, "{\"limit\": \"10\"}", 400, "\"limit\": must");
    json_refused(every_type, "{\"limit\": 10.0}", 400, "\"limit\": must");
}


static void
test_json_str_of_200_characters_passes_201_is_400(void)
{
    const char  *a200, *a201;

    a200 = ngx_chat_test_repeat("a", 200);
    a201 = ngx_chat_test_repeat("a", 201);

    json_ok(every_type, ngx_chat_test_sprintf("{\"title\": \"%s\"}", a200),
            ngx_chat_test_sprintf("{\"title\": \"%s\"}", a200));

    json_refused(every_type,
                 ngx_chat_test_sprintf("{\"title\": \"%s\"}", a201),
                 400, "\"title\": is longer than 200 characters");
}


static void
test_json_str_max_counts_characters_not_bytes(void)
{
    const char  *e200, *e201, *s200;

    /* 400 and 800 bytes, 200 characters each */
    e200 = ngx_chat_test_repeat("\xc3\xa9", 200);
    s200 = ngx_chat_test_repeat("\xf0\x9f\x98\x80", 200);
    e201 = ngx_chat_test_repeat("\xc3\xa9", 201);

    json_ok(every_type, ngx_chat_test_sprintf("{\"title\": \"%s\"}", e200),
            ngx_chat_test_sprintf("{\"title\": \"%s\"}", e200));
    json_ok(every_type, ngx_chat_test_sprintf("{\"title\": \"%s\"}", s200),
            ngx_chat_test_sprintf("{\"title\": \"%s\"}", s200));

    json_refused(every_type,
                 ngx_chat_test_sprintf("{\"title\": \"%s\"}", e201),
                 400, "\"title\": is longer than 200 characters");
}


static void
test_json_str_may_be_empty(void)
{
    json_ok(every_type, "{\"title\": \"\"}", "{\"title\": \"\"}");
}


static void
test_json_str_must_be_a_string(void)
{
    json_refused(every_type, "{\"title\": 5}", 400,
                 "\"title\": must be a string");
    json_refused(every_type, "{\"title\": false}", 400,
                 "\"title\": must be a string");
    json_refused(every_type, "{\"title\": [\"a\"]}", 400,
                 "\"title\": must be a string");
    json_refused(every_type, "{\"title\": {}}", 400,
                 "\"title\": must be a string");
}


static void
test_json_text_of_max_bytes_passes_one_more_is_413(void)
{
    const char  *t16, *t17;

    t16 = ngx_chat_test_repeat("t", 16);
    t17 = ngx_chat_test_repeat("t", 17);

    json_ok(every_type, ngx_chat_test_sprintf("{\"text\": \"%s\"}", t16),
            ngx_chat_test_sprintf("{\"text\": \"%s\"}", t16));

    json_refused(every_type,
                 ngx_chat_test_sprintf("{\"text\": \"%s\"}", t17),
                 413, "\"text\": is longer than 16 bytes");
}


static void
test_json_text_max_counts_bytes_not_characters(void)
{
    const char  *e8, *e9;

    /* 16 and 18 bytes */
    e8 = ngx_chat_test_repeat("\xc3\xa9", 8);
    e9 = ngx_chat_test_repeat("\xc3\xa9", 9);

    json_ok(every_type, ngx_chat_test_sprintf("{\"text\": \"%s\"}", e8),
            ngx_chat_test_sprintf("{\"text\": \"%s\"}", e8));

    json_refused(every_type, ngx_chat_test_sprintf("{\"text\": \"%s\"}", e9),
                 413, "\"text\": is longer than 16 bytes");

    /* escapes count as the bytes they stand for: 16 newlines are 16 bytes */
    json_ok(every_type,
            ngx_chat_test_sprintf("{\"text\": \"%s\"}",
                                  ngx_chat_test_repeat("\\n", 16)),
            ngx_chat_test_sprintf("{\"text\": \"%s\"}",
                                  ngx_chat_test_repeat("\\n", 16)));
}


static void
test_json_text_must_be_a_string(void)
{
    json_refused(every_type, "{\"text\": 1}", 400,
                 "\"text\": must be a string");
}


static void
test_json_user_takes_1_to_128_bytes(void)
{
    const char  *u128, *u129;

    u128 = ngx_chat_test_repeat("u", 128);
    u129 = ngx_chat_test_repeat("u", 129);

    json_ok(every_type, "{\"user\": \"u\"}", "{\"user\": \"u\"}");
    json_ok(every_type, ngx_chat_test_sprintf("{\"user\": \"%s\"}", u128),
            ngx_chat_test_sprintf("{\"user\": \"%s\"}", u128));
    json_ok(every_type, "{\"user\": \"j\xc3\xbcrgen@example.org\"}",
            "{\"user\": \"j\xc3\xbcrgen@example.org\"}");

    json_refused(every_type, "{\"user\": \"\"}", 400,
                 "\"user\": must be a user id of 1 to 128 bytes");
    json_refused(every_type,
                 ngx_chat_test_sprintf("{\"user\": \"%s\"}", u129),
                 400, "\"user\": must be a user id");
}


static void
test_json_user_with_control_characters_is_400(void)
{
    json_refused(every_type, "{\"user\": \"a\\tb\"}", 400,
                 "without control characters");
    json_refused(every_type, "{\"user\": \"a\\u0001\"}", 400,
                 "\"user\": must be a user id");
    json_refused(every_type, "{\"user\": \"a\\u007f\"}", 400,
                 "\"user\": must be a user id");
    json_refused(every_type, "{\"user\": \"a\\n\"}", 400,
                 "\"user\": must be a user id");
}


static void
test_json_user_must_be_a_string(void)
{
    json_refused(every_type, "{\"user\": 12}", 400,
                 "\"user\": must be a string");
}


static void
test_json_bool_takes_true_and_false_only(void)
{
    json_ok(every_type, "{\"flag\": true}", "{\"flag\": true}");
    json_ok(every_type, "{\"flag\": false}", "{\"flag\": false}");

    json_refused(every_type, "{\"flag\": 1}", 400,
                 "\"flag\": must be true or false");
    json_refused(every_type, "{\"flag\": 0}", 400, "must be true or false");
    json_refused(every_type, "{\"flag\": \"true\"}", 400,
                 "must be true or false");
}


static void
test_json_enum_takes_listed_values_only(void)
{
    json_ok(every_type, "{\"colour\": \"red\"}", "{\"colour\": \"red\"}");
    json_ok(every_type, "{\"colour\": \"green\"}", "{\"colour\": \"green\"}");

    json_refused(every_type, "{\"colour\": \"Red\"}", 400,
                 "\"colour\": is not one of the values");
    json_refused(every_type, "{\"colour\": \"re\"}", 400,
                 "is not one of the values");
    json_refused(every_type, "{\"colour\": \"redd\"}", 400,
                 "is not one of the values");
    json_refused(every_type, "{\"colour\": \"\"}", 400,
                 "is not one of the values");
    json_refused(every_type, "{\"colour\": \"red \"}", 400,
                 "is not one of the values");
    json_refused(every_type, "{\"colour\": 1}", 400,
                 "\"colour\": must be a string");
}


static void
test_json_time_takes_rfc3339_strings_only(void)
{
    json_ok(every_type, "{\"at\": \"2024-01-02T03:04:05.123+01:00\"}",
            "{\"at\": \"2024-01-02T03:04:05.123+01:00\"}");

    json_refused(every_type, "{\"at\": \"2024-01-02\"}", 400,
                 "\"at\": must be an RFC 3339 timestamp");
    json_refused(every_type, "{\"at\": \"\"}", 400,
                 "must be an RFC 3339 timestamp");
    json_refused(every_type, "{\"at\": 1700000000}", 400,
                 "\"at\": must be a string");
}


static void
test_json_users_array_takes_up_to_max_user_ids(void)
{
    json_ok(every_type, "{\"users\": []}", "{\"users\": []}");
    json_ok(every_type, "{\"users\": [\"a\", \"b\", \"c\"]}",
            "{\"users\": [\"a\", \"b\", \"c\"]}");

    json_refused(every_type, "{\"users\": [\"a\", \"b\", \"c\", \"d\"]}",
                 400, "\"users\": has more than 3 items");
}


static void
test_json_users_array_items_must_be_user_ids(void)
{
    json_refused(every_type, "{\"users\": [\"a\", \"\"]}", 400,
                 "\"users\": must hold user ids of 1 to 128 bytes");
    json_refused(every_type, "{\"users\": [\"a\", 1]}", 400,
                 "\"users\": must hold user ids");
    json_refused(every_type, "{\"users\": [null]}", 400,
                 "\"users\": must hold user ids");
    json_refused(every_type, "{\"users\": [\"a\\u001f\"]}", 400,
                 "\"users\": must hold user ids");
    json_refused(every_type,
                 ngx_chat_test_sprintf("{\"users\": [\"%s\"]}",
                                       ngx_chat_test_repeat("u", 129)),
                 400, "\"users\": must hold user ids");
    json_refused(every_type, "{\"users\": \"a\"}", 400,
                 "\"users\": must be an array");
}


static void
test_json_ids_array_takes_up_to_max_positive_ids(void)
{
    json_ok(every_type, "{\"ids\": [1, 2, 9007199254740991]}",
            "{\"ids\": [1, 2, 9007199254740991]}");

    json_refused(every_type, "{\"ids\": [1, 2, 3, 4]}", 400,
                 "\"ids\": has more than 3 items");
    json_refused(every_type, "{\"ids\": [0]}", 400,
                 "\"ids\": must hold positive integer ids");
    json_refused(every_type, "{\"ids\": [9007199254740992]}", 400,
                 "\"ids\": must hold positive integer ids");
    json_refused(every_type, "{\"ids\": [\"1\"]}", 400,
                 "\"ids\": must hold positive integer ids");
    json_refused(every_type, "{\"ids\": {}}", 400,
                 "\"ids\": must be an array");
}


static void
test_json_seqmap_maps_ids_to_seqs(void)
{
    json_ok(every_type, "{\"seqs\": {}}", "{\"seqs\": {}}");
    json_ok(every_type, "{\"seqs\": {\"1\": 0, \"9007199254740991\": 5}}",
            "{\"seqs\": {\"1\": 0, \"9007199254740991\": 5}}");

    json_refused(every_type, "{\"seqs\": {\"0\": 1}}", 400,
                 "\"seqs\": must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"+1\": 1}}", 400,
                 "must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"x\": 1}}", 400,
                 "must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"\": 1}}", 400,
                 "must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"9007199254740992\": 1}}", 400,
                 "must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"1\": -1}}", 400,
                 "must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"1\": \"5\"}}", 400,
                 "must map conversation ids to seqs");
    json_refused(every_type, "{\"seqs\": {\"1\": 9007199254740992}}", 400,
                 "must map conversation ids to seqs");
}


static void
test_json_seqmap_over_max_entries_is_400(void)
{
    json_refused(every_type, "{\"seqs\": {\"1\": 1, \"2\": 2, \"3\": 3}}",
                 400, "\"seqs\": has more than 2 entries");
    json_refused(every_type, "{\"seqs\": [1]}", 400,
                 "\"seqs\": must be an object of ids to seqs");
}


static void
test_json_null_for_a_nullable_field_is_kept_as_null(void)
{
    json_ok(every_type, "{\"note\": null}", "{\"note\": null}");
    json_ok(conversation_create_body,
            "{\"type\": \"group\", \"title\": null, \"description\": null,"
            " \"avatar_url\": null}",
            "{\"type\": \"group\", \"title\": null, \"description\": null,"
            " \"avatar_url\": null}");
}


static void
test_json_null_for_a_non_nullable_field_is_400(void)
{
    const char  **name;
    static const char  *names[] = {
        "id", "seq", "limit", "title", "text", "user", "flag", "colour",
        "at", "users", "ids", "seqs", "before", NULL
    };

    for (name = names; *name; name++) {
        json_refused(every_type,
                     ngx_chat_test_sprintf("{\"%s\": null}", *name), 400,
                     ngx_chat_test_sprintf("\"%s\": must not be null",
                                           *name));
    }
}


static void
test_json_nullable_field_still_checks_other_values(void)
{
    json_refused(every_type, "{\"note\": 1}", 400,
                 "\"note\": must be a string");
    json_refused(every_type, "{\"note\": \"0123456789x\"}", 400,
                 "\"note\": is longer than 10 characters");
}


static void
test_json_create_conversation_body_is_accepted(void)
{
    json_ok(conversation_create_body,
            "{\"type\": \"group\", \"title\": \"Team\","
            " \"member_ids\": [\"alice\", \"bob\"]}",
            "{\"type\": \"group\", \"title\": \"Team\","
            " \"member_ids\": [\"alice\", \"bob\"]}");
}


static void
test_json_create_conversation_with_1001_members_is_400(void)
{
    char    *ids;
    size_t   i;

    /* "u", repeated: 1000 pass, 1001 do not */
    ids = ngx_chat_test_repeat("\"u\",", 1001);

    ids[4 * 1000 - 1] = '\0';
    json_ok(conversation_create_body,
            ngx_chat_test_sprintf("{\"type\": \"group\", \"member_ids\":"
                                  " [%s]}", ids),
            ngx_chat_test_sprintf("{\"type\": \"group\", \"member_ids\":"
                                  " [%s]}", ids));

    ids[4 * 1000 - 1] = ',';
    i = strlen(ids);
    ids[i - 1] = '\0';

    json_refused(conversation_create_body,
                 ngx_chat_test_sprintf("{\"type\": \"group\", \"member_ids\":"
                                       " [%s]}", ids),
                 400, "\"member_ids\": has more than 1000 items");
}


static void
test_json_message_send_body_is_accepted(void)
{
    json_ok(message_send_body,
            "{\"type\": \"text\", \"content\": \"hi\", \"reply_to\": 12,"
            " \"mentions\": [\"bob\"], \"attachments\": [1, 2],"
            " \"client_id\": \"c-1\"}",
            "{\"type\": \"text\", \"content\": \"hi\", \"reply_to\": 12,"
            " \"mentions\": [\"bob\"], \"attachments\": [1, 2],"
            " \"client_id\": \"c-1\"}");

    json_ok(message_send_body, "{\"content\": null, \"reply_to\": null}",
            "{\"content\": null, \"reply_to\": null}");
}


static void
test_json_message_content_over_max_bytes_is_413(void)
{
    json_refused(message_send_body,
                 ngx_chat_test_sprintf("{\"content\": \"%s\"}",
                                       ngx_chat_test_repeat("c", 17)),
                 413, "\"content\": is longer than 16 bytes");
    json_refused(message_send_body,
                 ngx_chat_test_sprintf("{\"attachments\": [%s1]}",
                                       ngx_chat_test_repeat("1, ", 10)),
                 400, "\"attachments\": has more than 10 items");
}


static void
test_json_forward_stores_conversation_id_as_target_id(void)
{
    json_ok(forward_body, "{\"conversation_id\": 9}", "{\"target_id\": 9}");
}


static void
test_query_empty_is_ok_and_adds_nothing(void)
{
    query_ok(every_type, "", "{}");
}


static void
test_query_unknown_parameters_are_ignored(void)
{
    query_ok(every_type, "utm_source=x&limit=5&ID=3&_=1", "{\"limit\": 5}");
    query_ok(every_type, "before_id=3", "{}");
}


static void
test_query_limit_over_100_is_clamped_to_100(void)
{
    query_ok(every_type, "limit=1", "{\"limit\": 1}");
    query_ok(every_type, "limit=100", "{\"limit\": 100}");
    query_ok(every_type, "limit=101", "{\"limit\": 100}");
    query_ok(every_type, "limit=9007199254740991", "{\"limit\": 100}");
}


static void
test_query_limit_that_is_not_a_positive_decimal_is_400(void)
{
    query_refused(every_type, "limit=0", 400,
                  "\"limit\": must be a positive integer");
    query_refused(every_type, "limit=", 400, "\"limit\": must be");
    query_refused(every_type, "limit", 400, "\"limit\": must be");
    query_refused(every_type, "limit=-1", 400, "\"limit\": must be");
    query_refused(every_type, "limit=+5", 400, "\"limit\": must be");
    query_refused(every_type, "limit=%2B5", 400, "\"limit\": must be");
    query_refused(every_type, "limit=1e3", 400, "\"limit\": must be");
    query_refused(every_type, "limit=0x10", 400, "\"limit\": must be");
    query_refused(every_type, "limit=5.0", 400, "\"limit\": must be");
    query_refused(every_type, "limit=five", 400, "\"limit\": must be");
    query_refused(every_type, "limit=9007199254740992", 400,
                  "\"limit\": must be");
    query_refused(every_type, "limit=12345678901234567", 400,
                  "\"limit\": must be");
}


static void
test_query_id_takes_1_to_2_pow_53_minus_1(void)
{
    query_ok(every_type, "id=1", "{\"id\": 1}");
    query_ok(every_type, "id=9007199254740991", "{\"id\": 9007199254740991}");

    query_refused(every_type, "id=0", 400,
                  "\"id\": must be a positive integer below 2^53");
    query_refused(every_type, "id=9007199254740992", 400, "\"id\": must be");
    query_refused(every_type, "id=", 400, "\"id\": must be");
}


static void
test_query_seq_0_is_0(void)
{
    query_ok(every_type, "seq=0", "{\"seq\": 0}");
    query_ok(every_type, "seq=17", "{\"seq\": 17}");

    query_refused(every_type, "seq=-1", 400,
                  "\"seq\": must be a non-negative integer");
    query_refused(every_type, "seq=", 400, "\"seq\": must be");
}


static void
test_query_bool_takes_true_false_1_and_0(void)
{
    query_ok(every_type, "flag=true", "{\"flag\": true}");
    query_ok(every_type, "flag=1", "{\"flag\": true}");
    query_ok(every_type, "flag=false", "{\"flag\": false}");
    query_ok(every_type, "flag=0", "{\"flag\": false}");

    query_refused(every_type, "flag=yes", 400,
                  "\"flag\": must be true or false");
    query_refused(every_type, "flag=TRUE", 400, "must be true or false");
    query_refused(every_type, "flag=", 400, "must be true or false");
    query_refused(every_type, "flag", 400, "must be true or false");
    query_refused(every_type, "flag=truee", 400, "must be true or false");
}


static void
test_query_names_and_values_are_percent_decoded(void)
{
    query_ok(every_type, "title=a%20b+c", "{\"title\": \"a b c\"}");
    query_ok(every_type, "tit%6Ce=x", "{\"title\": \"x\"}");
    query_ok(every_type, "title=%C3%A9t%C3%A9",
             "{\"title\": \"\xc3\xa9t\xc3\xa9\"}");
    query_ok(every_type, "title=%26%3D", "{\"title\": \"&=\"}");
    query_ok(every_type, "title=a=b", "{\"title\": \"a=b\"}");
}


static void
test_query_invalid_utf8_is_400(void)
{
    query_refused(every_type, "title=%ff", 400,
                  "\"title\": must be valid UTF-8");
    query_refused(every_type, "title=%C0%80", 400, "must be valid UTF-8");
    query_refused(every_type, "title=%ED%A0%80", 400, "must be valid UTF-8");
}


static void
test_query_parameter_without_a_value_is_an_empty_string(void)
{
    query_ok(every_type, "title", "{\"title\": \"\"}");
    query_ok(every_type, "title=", "{\"title\": \"\"}");
}


static void
test_query_last_repeated_parameter_wins(void)
{
    query_ok(every_type, "limit=5&limit=7", "{\"limit\": 7}");
}


static void
test_query_empty_pairs_are_skipped(void)
{
    query_ok(every_type, "&&limit=5&", "{\"limit\": 5}");
    query_ok(every_type, "&", "{}");
    query_ok(every_type, "=5&=", "{}");
}


static void
test_query_str_of_201_characters_is_400(void)
{
    query_ok(every_type,
             ngx_chat_test_sprintf("title=%s",
                                   ngx_chat_test_repeat("%C3%A9", 200)),
             ngx_chat_test_sprintf("{\"title\": \"%s\"}",
                                   ngx_chat_test_repeat("\xc3\xa9", 200)));

    query_refused(every_type,
                  ngx_chat_test_sprintf("title=%s",
                                        ngx_chat_test_repeat("a", 201)),
                  400, "\"title\": is longer than 200 characters");
}


static void
test_query_text_over_max_bytes_is_413(void)
{
    query_ok(every_type, "text=0123456789abcdef",
             "{\"text\": \"0123456789abcdef\"}");
    query_refused(every_type, "text=0123456789abcdefg", 413,
                  "\"text\": is longer than 16 bytes");
}


static void
test_query_enum_time_and_user_are_checked_as_in_a_body(void)
{
    query_ok(every_type, "colour=red&at=2024-01-02T03:04:05%2B01:00&user=u",
             "{\"colour\": \"red\", \"at\": \"2024-01-02T03:04:05+01:00\","
             " \"user\": \"u\"}");

    query_refused(every_type, "colour=blue", 400,
                  "\"colour\": is not one of the values");
    query_refused(every_type, "at=2024-01-02T03:04:05+01:00", 400,
                  "\"at\": must be an RFC 3339 timestamp");
    query_refused(every_type, "user=", 400, "\"user\": must be a user id");
    query_refused(every_type, "user=a%09b", 400,
                  "\"user\": must be a user id");
}


static void
test_query_user_list_is_split_at_commas(void)
{
    query_ok(every_type, "users=a,b", "{\"users\": [\"a\", \"b\"]}");
    query_ok(every_type, "users=a", "{\"users\": [\"a\"]}");
    query_ok(every_type, "users=", "{\"users\": []}");
    query_ok(every_type, "users=%C3%BC,b%2Cc",
             "{\"users\": [\"\u00fc\", \"b\", \"c\"]}");

    query_refused(every_type, "users=a,,b", 400,
                  "\"users\": must hold user ids");
    query_refused(every_type, "users=a,", 400,
                  "\"users\": must hold user ids");
    query_refused(every_type, "users=a,b,c,d", 400,
                  "\"users\": has more than 3 items");
    query_refused(every_type, "users=a,%ff", 400,
                  "\"users\": must be valid UTF-8");
}


static void
test_query_ids_and_seqmaps_cannot_come_from_a_query(void)
{
    query_refused(every_type, "ids=1", 400, "\"ids\": must be an array");
    query_refused(every_type, "seqs=1", 400, "\"seqs\": must be an object");
}


static void
test_query_field_with_arg_is_stored_under_the_arg_name(void)
{
    query_ok(every_type, "before=5", "{\"before_id\": 5}");
}


static void
test_query_first_bad_parameter_stops_and_is_named(void)
{
    query_refused(every_type, "limit=5&id=x&seq=-1", 400, "\"id\": must be");
}


static void
test_query_conversation_list_is_accepted(void)
{
    query_ok(conversation_list_query, "archived=true&limit=50&cursor=abc",
             "{\"archived\": true, \"limit\": 50, \"cursor\": \"abc\"}");
}


static void
test_query_search_is_accepted_and_q_is_required(void)
{
    json_t            *out;
    ngx_chat_error_t   err;

    query_ok(search_query,
             "q=hello+world&sender_id=bob&type=text"
             "&from=2024-01-01T00:00:00Z&limit=500",
             "{\"q\": \"hello world\", \"sender_id\": \"bob\","
             " \"type\": \"text\", \"from\": \"2024-01-01T00:00:00Z\","
             " \"limit\": 100}");

    ngx_chat_expect_int(args_run(search_query, "limit=5", 1, &out, &err),
                        NGX_OK);
    ngx_chat_expect_int(ngx_chat_args_require(out, search_query, &err),
                        NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);
    ngx_chat_expect_has(err.text, "\"q\": is required");
}


static void
test_query_reads_only_len_bytes(void)
{
    u_char            *q;
    json_t            *out;
    ngx_chat_error_t   err;

    q = ngx_chat_test_literal("limit=5&limit=7");
    out = ngx_chat_test_keep(json_object());

    ngx_chat_expect_int(ngx_chat_args_from_query(q, 7, every_type, &limits,
                                                 out, &err),
                        NGX_OK);
    ngx_chat_expect_json(out, "{\"limit\": 5}");
}


/* path captures */

static ngx_int_t
capture(const char *name, ngx_uint_t type, const char *value, json_t **out,
    ngx_chat_error_t *err)
{
    *out = ngx_chat_test_keep(json_object());
    ngx_memzero(err, sizeof(ngx_chat_error_t));

    return ngx_chat_args_set_string(*out, name, type,
                                    ngx_chat_test_bytes(value, strlen(value)),
                                    strlen(value), err);
}


static void
test_capture_id_becomes_an_integer(void)
{
    json_t            *out;
    ngx_chat_error_t   err;

    ngx_chat_expect_int(capture("conversation_id", NGX_CHAT_T_ID, "42", &out,
                                &err),
                        NGX_OK);
    ngx_chat_expect_json(out, "{\"conversation_id\": 42}");

    ngx_chat_expect_int(capture("conversation_id", NGX_CHAT_T_ID,
                                "9007199254740991", &out, &err),
                        NGX_OK);
    ngx_chat_expect_json(out, "{\"conversation_id\": 9007199254740991}");
}


static void
test_capture_that_is_not_an_id_is_400_naming_it(void)
{
    json_t             *out;
    const char        **v;
    ngx_chat_error_t    err;
    static const char  *bad[] = {
        "0", "", "abc", "-1", "+1", "1.5", "9007199254740992",
        "12345678901234567890", NULL
    };

    for (v = bad; *v; v++) {
        ngx_chat_expect_int(capture("conversation_id", NGX_CHAT_T_ID, *v,
                                    &out, &err),
                            NGX_ERROR);
        ngx_chat_expect_int(err.status, 400);
        ngx_chat_expect_has(err.text, "\"conversation_id\": must be a "
                            "positive integer below 2^53");
        ngx_chat_expect_json(out, "{}");
    }
}


static void
test_capture_string_of_256_bytes_passes_257_is_400(void)
{
    json_t            *out;
    const char        *s;
    ngx_chat_error_t   err;

    s = ngx_chat_test_repeat("s", 256);

    ngx_chat_expect_int(capture("user_id", NGX_CHAT_T_STR, s, &out, &err),
                        NGX_OK);
    ngx_chat_expect_json(out, ngx_chat_test_sprintf("{\"user_id\": \"%s\"}",
                                                    s));

    s = ngx_chat_test_repeat("s", 257);

    ngx_chat_expect_int(capture("user_id", NGX_CHAT_T_STR, s, &out, &err),
                        NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);
    ngx_chat_expect_has(err.text, "\"user_id\": is longer than 256 bytes");
}


static void
test_capture_string_must_be_utf8(void)
{
    json_t            *out;
    ngx_chat_error_t   err;

    ngx_chat_expect_int(capture("user_id", NGX_CHAT_T_STR, "\xc3\xbc", &out,
                                &err),
                        NGX_OK);
    ngx_chat_expect_json(out, "{\"user_id\": \"\xc3\xbc\"}");

    ngx_chat_expect_int(capture("user_id", NGX_CHAT_T_STR, "a\xff", &out,
                                &err),
                        NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);
    ngx_chat_expect_has(err.text, "\"user_id\": must be valid UTF-8");
}


static void
test_capture_string_with_a_control_character_is_400(void)
{
    json_t             *out;
    const char        **v;
    ngx_chat_error_t    err;
    static const char  *bad[] = { "bob\x01", "\x1f", "a\x7f", "\tb", NULL };

    for (v = bad; *v; v++) {
        ngx_chat_expect_int(capture("user_id", NGX_CHAT_T_STR, *v, &out,
                                    &err),
                            NGX_ERROR);
        ngx_chat_expect_int(err.status, 400);
        ngx_chat_expect_has(err.text, "\"user_id\": must not hold control "
                            "characters");
        ngx_chat_expect_json(out, "{}");
    }

    /* U+0085 is not a C0 control: ids may hold it, as in a body */
    ngx_chat_expect_int(capture("user_id", NGX_CHAT_T_STR, "a\xc2\x85", &out,
                                &err),
                        NGX_OK);
}


static void
test_a_long_name_is_cut_between_characters(void)
{
    char               in[200];
    size_t             i, n;
    ngx_chat_error_t   err;
    json_t            *out;

    /* "a" and 40 two-byte characters: the 64th byte is inside one */
    n = sprintf(in, "{\"a");
    for (i = 0; i < 40; i++) {
        n += sprintf(in + n, "\xc3\xa9");
    }
    sprintf(in + n, "\": 1}");

    ngx_chat_expect_int(args_run(every_type, in, 0, &out, &err), NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);
    ngx_chat_expect_has(err.text, "\": is not a known field");
    /* the quote, "a", 31 whole characters (62 bytes), the words */
    ngx_chat_expect_int(strlen(err.text),
                        2 + 62 + strlen("\": is not a known field"));
}


/* required fields */

static ngx_int_t
require(const ngx_chat_field_t *fields, const char *args,
    ngx_chat_error_t *err)
{
    ngx_memzero(err, sizeof(ngx_chat_error_t));

    return ngx_chat_args_require(ngx_chat_test_json(args), fields, err);
}


static void
test_require_passes_when_required_fields_are_there(void)
{
    ngx_chat_error_t  err;

    ngx_chat_expect_int(require(required, "{\"must\": \"x\", \"before_id\": 1}",
                                &err),
                        NGX_OK);
    ngx_chat_expect_int(require(every_type, "{}", &err), NGX_OK);
}


static void
test_require_missing_field_is_400_naming_it(void)
{
    ngx_chat_error_t  err;

    ngx_chat_expect_int(require(required, "{\"before_id\": 1, \"may\": \"x\"}",
                                &err),
                        NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);
    ngx_chat_expect_has(err.text, "\"must\": is required");
}


static void
test_require_null_counts_as_missing(void)
{
    ngx_chat_error_t  err;

    ngx_chat_expect_int(require(required, "{\"must\": null, \"before_id\": 1}",
                                &err),
                        NGX_ERROR);
    ngx_chat_expect_has(err.text, "\"must\": is required");
}


static void
test_require_checks_the_arg_but_names_the_field(void)
{
    ngx_chat_error_t  err;

    ngx_chat_expect_int(require(required, "{\"must\": \"x\", \"before\": 1}",
                                &err),
                        NGX_ERROR);
    ngx_chat_expect_int(err.status, 400);
    ngx_chat_expect_has(err.text, "\"before\": is required");
}


static void
test_require_member_add_needs_user_ids(void)
{
    ngx_chat_error_t  err;

    ngx_chat_expect_int(require(member_add_body, "{\"role\": \"group\"}",
                                &err),
                        NGX_ERROR);
    ngx_chat_expect_has(err.text, "\"user_ids\": is required");

    ngx_chat_expect_int(require(member_add_body, "{\"user_ids\": []}", &err),
                        NGX_OK);
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_json_body_that_is_not_an_object_is_400),
    ngx_chat_test(test_json_empty_object_gives_empty_args),
    ngx_chat_test(test_json_unknown_field_is_400_naming_it),
    ngx_chat_test(test_json_error_for_an_overlong_field_name_is_truncated),
    ngx_chat_test(test_json_error_is_cut_between_characters),
    ngx_chat_test(test_json_known_fields_are_copied_typed),
    ngx_chat_test(test_json_field_with_arg_is_stored_under_the_arg_name),
    ngx_chat_test(test_json_id_takes_1_to_2_pow_53_minus_1),
    ngx_chat_test(test_json_id_must_be_a_json_integer),
    ngx_chat_test(test_json_seq_takes_0_to_2_pow_53_minus_1),
    ngx_chat_test(test_json_limit_over_100_is_clamped_to_100),
    ngx_chat_test(test_json_limit_below_1_or_not_an_integer_is_400),
    ngx_chat_test(test_json_str_of_200_characters_passes_201_is_400),
    ngx_chat_test(test_json_str_max_counts_characters_not_bytes),
    ngx_chat_test(test_json_str_may_be_empty),
    ngx_chat_test(test_json_str_must_be_a_string),
    ngx_chat_test(test_json_text_of_max_bytes_passes_one_more_is_413),
    ngx_chat_test(test_json_text_max_counts_bytes_not_characters),
    ngx_chat_test(test_json_text_must_be_a_string),
    ngx_chat_test(test_json_user_takes_1_to_128_bytes),
    ngx_chat_test(test_json_user_with_control_characters_is_400),
    ngx_chat_test(test_json_user_must_be_a_string),
    ngx_chat_test(test_json_bool_takes_true_and_false_only),
    ngx_chat_test(test_json_enum_takes_listed_values_only),
    ngx_chat_test(test_json_time_takes_rfc3339_strings_only),
    ngx_chat_test(test_json_users_array_takes_up_to_max_user_ids),
    ngx_chat_test(test_json_users_array_items_must_be_user_ids),
    ngx_chat_test(test_json_ids_array_takes_up_to_max_positive_ids),
    ngx_chat_test(test_json_seqmap_maps_ids_to_seqs),
    ngx_chat_test(test_json_seqmap_over_max_entries_is_400),
    ngx_chat_test(test_json_null_for_a_nullable_field_is_kept_as_null),
    ngx_chat_test(test_json_null_for_a_non_nullable_field_is_400),
    ngx_chat_test(test_json_nullable_field_still_checks_other_values),
    ngx_chat_test(test_json_create_conversation_body_is_accepted),
    ngx_chat_test(test_json_create_conversation_with_1001_members_is_400),
    ngx_chat_test(test_json_message_send_body_is_accepted),
    ngx_chat_test(test_json_message_content_over_max_bytes_is_413),
    ngx_chat_test(test_json_forward_stores_conversation_id_as_target_id),
    ngx_chat_test(test_query_empty_is_ok_and_adds_nothing),
    ngx_chat_test(test_query_unknown_parameters_are_ignored),
    ngx_chat_test(test_query_limit_over_100_is_clamped_to_100),
    ngx_chat_test(test_query_limit_that_is_not_a_positive_decimal_is_400),
    ngx_chat_test(test_query_id_takes_1_to_2_pow_53_minus_1),
    ngx_chat_test(test_query_seq_0_is_0),
    ngx_chat_test(test_query_bool_takes_true_false_1_and_0),
    ngx_chat_test(test_query_names_and_values_are_percent_decoded),
    ngx_chat_test(test_query_invalid_utf8_is_400),
    ngx_chat_test(test_query_parameter_without_a_value_is_an_empty_string),
    ngx_chat_test(test_query_last_repeated_parameter_wins),
    ngx_chat_test(test_query_empty_pairs_are_skipped),
    ngx_chat_test(test_query_str_of_201_characters_is_400),
    ngx_chat_test(test_query_text_over_max_bytes_is_413),
    ngx_chat_test(test_query_enum_time_and_user_are_checked_as_in_a_body),
    ngx_chat_test(test_query_user_list_is_split_at_commas),
    ngx_chat_test(test_query_ids_and_seqmaps_cannot_come_from_a_query),
    ngx_chat_test(test_query_field_with_arg_is_stored_under_the_arg_name),
    ngx_chat_test(test_query_first_bad_parameter_stops_and_is_named),
    ngx_chat_test(test_query_conversation_list_is_accepted),
    ngx_chat_test(test_query_search_is_accepted_and_q_is_required),
    ngx_chat_test(test_query_reads_only_len_bytes),
    ngx_chat_test(test_capture_id_becomes_an_integer),
    ngx_chat_test(test_capture_that_is_not_an_id_is_400_naming_it),
    ngx_chat_test(test_capture_string_of_256_bytes_passes_257_is_400),
    ngx_chat_test(test_capture_string_must_be_utf8),
    ngx_chat_test(test_capture_string_with_a_control_character_is_400),
    ngx_chat_test(test_a_long_name_is_cut_between_characters),
    ngx_chat_test(test_require_passes_when_required_fields_are_there),
    ngx_chat_test(test_require_missing_field_is_400_naming_it),
    ngx_chat_test(test_require_null_counts_as_missing),
    ngx_chat_test(test_require_checks_the_arg_but_names_the_field),
    ngx_chat_test(test_require_member_add_needs_user_ids),
    ngx_chat_null_test
};
