
/*
 * ngx_chat: the field lists and the checks of results that the fuzz
 * targets share.
 */


#include "ngx_chat_fuzz.h"
#include "ngx_chat.h"


#define NGX_CHAT_FUZZ_PAGE_MAX   100
#define NGX_CHAT_FUZZ_USER_MAX   128


/* a list with a field of every type, small maxima to reach the bounds */

static const char *const  roles[] = {
    "owner", "admin", "moderator", "member", NULL
};

static const ngx_chat_field_t  every_type[] = {
    { "id", NULL, NGX_CHAT_T_ID, 0, 0, NULL },
    { "seq", NULL, NGX_CHAT_T_SEQ, NGX_CHAT_NULLABLE, 0, NULL },
    { "limit", NULL, NGX_CHAT_T_LIMIT, 0, 0, NULL },
    { "title", NULL, NGX_CHAT_T_STR, 0, 8, NULL },
    { "text", NULL, NGX_CHAT_T_TEXT, NGX_CHAT_REQUIRED, 0, NULL },
    { "user", NULL, NGX_CHAT_T_USER, 0, 0, NULL },
    { "flag", NULL, NGX_CHAT_T_BOOL, 0, 0, NULL },
    { "role", NULL, NGX_CHAT_T_ENUM, NGX_CHAT_NULLABLE, 0, roles },
    { "at", NULL, NGX_CHAT_T_TIME, 0, 0, NULL },
    { "users", NULL, NGX_CHAT_T_USERS, 0, 3, NULL },
    { "ids", NULL, NGX_CHAT_T_IDS, 0, 3, NULL },
    { "seqs", NULL, NGX_CHAT_T_SEQMAP, 0, 3, NULL },
    { "before", "before_id", NGX_CHAT_T_ID, 0, 0, NULL },
    ngx_chat_null_field
};


/*
 * The lists the module checks requests against (src/ngx_chat_requests.c):
 * the bodies and queries of its routes, the fields of its WebSocket
 * messages, and the list above.
 */

#define NGX_CHAT_FUZZ_LISTS  128

static ngx_chat_fuzz_list_t  ngx_chat_fuzz_body_lists[NGX_CHAT_FUZZ_LISTS];
static ngx_chat_fuzz_list_t  ngx_chat_fuzz_query_lists[NGX_CHAT_FUZZ_LISTS];


static void
ngx_chat_fuzz_add(ngx_chat_fuzz_list_t *lists, const char *name,
    const ngx_chat_field_t *fields)
{
    ngx_uint_t  i;

    for (i = 0; lists[i].name; i++) {
        if (lists[i].fields == fields) {
            return;
        }
    }

    ngx_chat_fuzz_assert(i + 1 < NGX_CHAT_FUZZ_LISTS);

    lists[i].name = name;
    lists[i].fields = fields;
}


static void
ngx_chat_fuzz_collect(void)
{
    ngx_uint_t                   i;
    const ngx_chat_api_route_t  *route;

    if (ngx_chat_fuzz_body_lists[0].name) {
        return;
    }

    for (i = 0; i < ngx_chat_api_nroutes; i++) {
        route = ngx_chat_api_routes[i].data;

        if (route->body) {
            ngx_chat_fuzz_add(ngx_chat_fuzz_body_lists,
                              ngx_chat_api_routes[i].pattern, route->body);
        }

        if (route->query) {
            ngx_chat_fuzz_add(ngx_chat_fuzz_query_lists,
                              ngx_chat_api_routes[i].pattern, route->query);
        }
    }

    for (i = 0; i < ngx_chat_ws_ntypes; i++) {
        ngx_chat_fuzz_add(ngx_chat_fuzz_body_lists,
                          (const char *) ngx_chat_ws_types[i].type.data,
                          ngx_chat_ws_types[i].fields);
    }

    ngx_chat_fuzz_add(ngx_chat_fuzz_body_lists, "every_type", every_type);
    ngx_chat_fuzz_add(ngx_chat_fuzz_query_lists, "every_type", every_type);
}


const ngx_chat_fuzz_list_t *
ngx_chat_fuzz_bodies(void)
{
    ngx_chat_fuzz_collect();
    return ngx_chat_fuzz_body_lists;
}


const ngx_chat_fuzz_list_t *
ngx_chat_fuzz_queries(void)
{
    ngx_chat_fuzz_collect();
    return ngx_chat_fuzz_query_lists;
}


/* small, so that inputs reach the 413 */
const ngx_chat_limits_t  ngx_chat_fuzz_limits = { 32 };


static const ngx_chat_field_t *ngx_chat_fuzz_field(
    const ngx_chat_field_t *fields, const char *arg);
static void ngx_chat_fuzz_check_value(json_t *v, const ngx_chat_field_t *f,
    const ngx_chat_limits_t *limits);
static ngx_int_t ngx_chat_fuzz_is_int(json_t *v, json_int_t min,
    json_int_t max);
static ngx_int_t ngx_chat_fuzz_is_user(json_t *v);


void
ngx_chat_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
    abort();
}


void
ngx_chat_fuzz_check_args(json_t *out, const ngx_chat_field_t *fields,
    const ngx_chat_limits_t *limits)
{
    char                    *dump;
    json_t                  *v;
    const char              *key;
    const ngx_chat_field_t  *f;
    json_t                  *back;

    ngx_chat_fuzz_assert(json_is_object(out));

    json_object_foreach(out, key, v) {

        f = ngx_chat_fuzz_field(fields, key);
        ngx_chat_fuzz_assert(f != NULL);

        if (json_is_null(v)) {
            ngx_chat_fuzz_assert(f->flags & NGX_CHAT_NULLABLE);
            continue;
        }

        ngx_chat_fuzz_check_value(v, f, limits);
    }

    /* the args go to Postgres as JSON text */

    dump = json_dumps(out, JSON_COMPACT);
    ngx_chat_fuzz_assert(dump != NULL);

    /* jsonb refuses "\u0000" (SQLSTATE 22P05), and so does jansson */
    back = json_loads(dump, 0, NULL);
    ngx_chat_fuzz_assert(back != NULL);
    json_decref(back);

    free(dump);
}


void
ngx_chat_fuzz_check_error(ngx_int_t rc, ngx_chat_error_t *err)
{
    size_t  len;

    ngx_chat_fuzz_assert(rc == NGX_ERROR);
    ngx_chat_fuzz_assert(err->status == 400 || err->status == 413);

    len = strnlen(err->text, sizeof(err->text));

    ngx_chat_fuzz_assert(len < sizeof(err->text));
    ngx_chat_fuzz_assert(len > 2 && err->text[0] == '"');

    /* the message goes to the client inside a JSON string */
    ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_valid((u_char *) err->text, len)
                         == NGX_OK);
}


static const ngx_chat_field_t *
ngx_chat_fuzz_field(const ngx_chat_field_t *fields, const char *arg)
{
    for ( /* void */ ; fields->name; fields++) {
        if (strcmp(fields->arg ? fields->arg : fields->name, arg) == 0) {
            return fields;
        }
    }

    return NULL;
}


static void
ngx_chat_fuzz_check_value(json_t *v, const ngx_chat_field_t *f,
    const ngx_chat_limits_t *limits)
{
    int64_t             id;
    size_t              i;
    json_t             *item;
    const char         *key;
    const char *const  *e;

    switch (f->type) {

    case NGX_CHAT_T_ID:
        ngx_chat_fuzz_assert(ngx_chat_fuzz_is_int(v, 1, NGX_CHAT_MAX_ID));
        return;

    case NGX_CHAT_T_SEQ:
        ngx_chat_fuzz_assert(ngx_chat_fuzz_is_int(v, 0, NGX_CHAT_MAX_ID));
        return;

    case NGX_CHAT_T_LIMIT:
        ngx_chat_fuzz_assert(ngx_chat_fuzz_is_int(v, 1,
                                                  NGX_CHAT_FUZZ_PAGE_MAX));
        return;

    case NGX_CHAT_T_BOOL:
        ngx_chat_fuzz_assert(json_is_boolean(v));
        return;

    case NGX_CHAT_T_USERS:
        ngx_chat_fuzz_assert(json_is_array(v));
        ngx_chat_fuzz_assert(json_array_size(v) <= f->max);

        json_array_foreach(v, i, item) {
            ngx_chat_fuzz_assert(ngx_chat_fuzz_is_user(item));
        }
        return;

    case NGX_CHAT_T_IDS:
        ngx_chat_fuzz_assert(json_is_array(v));
        ngx_chat_fuzz_assert(json_array_size(v) <= f->max);

        json_array_foreach(v, i, item) {
            ngx_chat_fuzz_assert(ngx_chat_fuzz_is_int(item, 1,
                                                      NGX_CHAT_MAX_ID));
        }
        return;

    case NGX_CHAT_T_SEQMAP:
        ngx_chat_fuzz_assert(json_is_object(v));
        ngx_chat_fuzz_assert(json_object_size(v) <= f->max);

        json_object_foreach(v, key, item) {
            ngx_chat_fuzz_assert(ngx_chat_parse_id((u_char *) key,
                                                   strlen(key), &id)
                                 == NGX_OK);
            ngx_chat_fuzz_assert(ngx_chat_fuzz_is_int(item, 0,
                                                      NGX_CHAT_MAX_ID));
        }
        return;
    }

    ngx_chat_fuzz_assert(json_is_string(v));
    ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_valid(
                             (u_char *) json_string_value(v),
                             json_string_length(v))
                         == NGX_OK);

    switch (f->type) {

    case NGX_CHAT_T_TEXT:
        ngx_chat_fuzz_assert(json_string_length(v) <= limits->max_text);
        return;

    case NGX_CHAT_T_USER:
        ngx_chat_fuzz_assert(ngx_chat_fuzz_is_user(v));
        return;

    case NGX_CHAT_T_ENUM:
        for (e = f->values; *e; e++) {
            if (strlen(*e) == json_string_length(v)
                && memcmp(*e, json_string_value(v), strlen(*e)) == 0)
            {
                return;
            }
        }

        ngx_chat_fuzz_assert(!"an enum value that is not listed");
        return;

    case NGX_CHAT_T_TIME:
        ngx_chat_fuzz_assert(ngx_chat_rfc3339_valid(
                                 (u_char *) json_string_value(v),
                                 json_string_length(v))
                             == NGX_OK);
        return;

    default:
        ngx_chat_fuzz_assert(f->type == NGX_CHAT_T_STR);
        ngx_chat_fuzz_assert(ngx_chat_fuzz_utf8_chars(
                                 (u_char *) json_string_value(v),
                                 json_string_length(v))
                             <= f->max);
        return;
    }
}


static ngx_int_t
ngx_chat_fuzz_is_int(json_t *v, json_int_t min, json_int_t max)
{
    return json_is_integer(v)
           && json_integer_value(v) >= min
           && json_integer_value(v) <= max;
}


static ngx_int_t
ngx_chat_fuzz_is_user(json_t *v)
{
    return json_is_string(v)
           && ngx_chat_fuzz_is_id((u_char *) json_string_value(v),
                                  json_string_length(v),
                                  NGX_CHAT_FUZZ_USER_MAX);
}


ngx_int_t
ngx_chat_fuzz_is_id(u_char *p, size_t len, size_t max)
{
    size_t  i;

    if (len == 0 || len > max) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/*
 * The well-formed byte sequences of the Unicode standard, table 3-7:
 *
 *   00..7F
 *   C2..DF  80..BF
 *   E0      A0..BF  80..BF
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF  80..BF
 *   F1..F3  80..BF  80..BF  80..BF
 *   F4      80..8F  80..BF  80..BF
 */

ngx_int_t
ngx_chat_fuzz_utf8_prefix(const u_char *p, size_t len)
{
    u_char  c, lo, hi;
    size_t  i, n, k;

    for (i = 0; i < len; i += n) {
        c = p[i];
        lo = 0x80;
        hi = 0xbf;

        if (c <= 0x7f) {
            n = 1;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;

        } else {
            return NGX_ERROR;
        }

        for (k = 1; k < n; k++) {
            if (i + k == len) {
                return NGX_AGAIN;
            }

            if (p[i + k] < (k == 1 ? lo : 0x80)
                || p[i + k] > (k == 1 ? hi : 0xbf))
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_chat_fuzz_utf8_valid(const u_char *p, size_t len)
{
    return (ngx_chat_fuzz_utf8_prefix(p, len) == NGX_OK) ? NGX_OK : NGX_ERROR;
}


size_t
ngx_chat_fuzz_utf8_chars(const u_char *p, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x80 || p[i] >= 0xc0) {
            n++;
        }
    }

    return n;
}
