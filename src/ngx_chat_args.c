
/*
 * ngx_chat: request arguments.  Whatever a client sends, in a JSON body,
 * a query string or a path, is checked against the field list of the route
 * and copied, typed, into one JSON object: the "args" that the action hands
 * to Postgres.  Postgres can then trust types and sizes; it checks the
 * rules that need data (membership, roles).
 */


#include "ngx_chat_pure.h"


#define NGX_CHAT_MAX_PAGE        100
#define NGX_CHAT_USER_MAX        128
#define NGX_CHAT_CAPTURE_MAX     256


static ngx_int_t ngx_chat_check(const ngx_chat_field_t *f, json_t *v,
    const ngx_chat_limits_t *limits, json_t **res, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_check_string(const ngx_chat_field_t *f, json_t *v,
    const ngx_chat_limits_t *limits, ngx_chat_error_t *err);
static ngx_int_t ngx_chat_check_array(const ngx_chat_field_t *f, json_t *v,
    ngx_chat_error_t *err);
static ngx_int_t ngx_chat_check_seqmap(const ngx_chat_field_t *f, json_t *v,
    ngx_chat_error_t *err);
static ngx_int_t ngx_chat_is_int(json_t *v, json_int_t min, json_int_t max);
static json_t *ngx_chat_from_string(const ngx_chat_field_t *f, u_char *p,
    size_t len, ngx_chat_error_t *err);
static void ngx_chat_utf8_trim(u_char *text);
static ngx_int_t ngx_chat_hex(u_char c);
static json_t *ngx_chat_from_list(const ngx_chat_field_t *f, u_char *p,
    size_t len, ngx_chat_error_t *err);
static const ngx_chat_field_t *ngx_chat_field(const ngx_chat_field_t *fields,
    const char *name, size_t len);
static ngx_int_t ngx_chat_fail(ngx_chat_error_t *err, ngx_uint_t status,
    const char *name, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));


ngx_int_t
ngx_chat_args_from_json(json_t *in, const ngx_chat_field_t *fields,
    const ngx_chat_limits_t *limits, json_t *out, ngx_chat_error_t *err)
{
    json_t                  *v, *res;
    const char              *key;
    const ngx_chat_field_t  *f;

    if (!json_is_object(in)) {
        return ngx_chat_fail(err, 400, "body", "must be a JSON object");
    }

    json_object_foreach(in, key, v) {

        f = ngx_chat_field(fields, key, strlen(key));
        if (f == NULL) {
            return ngx_chat_fail(err, 400, key, "is not a known field");
        }

        if (ngx_chat_check(f, v, limits, &res, err) != NGX_OK) {
            return NGX_ERROR;
        }

        json_object_set_new(out, f->arg ? f->arg : f->name, res);
    }

    return NGX_OK;
}


/*
 * Query strings carry only text: each known parameter is converted to the
 * JSON type of its field and then checked like a body field.  Unknown
 * parameters are ignored, as caches and proxies add their own.
 */

ngx_int_t
ngx_chat_args_from_query(u_char *p, size_t len, const ngx_chat_field_t *fields,
    const ngx_chat_limits_t *limits, json_t *out, ngx_chat_error_t *err)
{
    u_char                  *last, *amp, *eq, *buf, *key, *val;
    size_t                   klen, vlen;
    json_t                  *v, *res;
    ngx_int_t                rc;
    const ngx_chat_field_t  *f;

    if (len == 0) {
        return NGX_OK;
    }

    buf = malloc(len);
    if (buf == NULL) {
        return ngx_chat_fail(err, 500, "query", "out of memory");
    }

    rc = NGX_OK;
    last = p + len;

    while (p < last) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        eq = ngx_strlchr(p, amp, '=');
        if (eq == NULL) {
            eq = amp;
        }

        key = buf;
        klen = ngx_chat_unescape(key, p, eq - p);
        val = key + klen;
        vlen = (eq < amp) ? ngx_chat_unescape(val, eq + 1, amp - eq - 1) : 0;

        p = (amp < last) ? amp + 1 : last;

        f = ngx_chat_field(fields, (char *) key, klen);
        if (f == NULL) {
            continue;
        }

        v = ngx_chat_from_string(f, val, vlen, err);
        if (v == NULL) {
            rc = NGX_ERROR;
            break;
        }

        rc = ngx_chat_check(f, v, limits, &res, err);
        json_decref(v);

        if (rc != NGX_OK) {
            break;
        }

        json_object_set_new(out, f->arg ? f->arg : f->name, res);
    }

    free(buf);

    return rc;
}


/* a path capture: "#name" is an id, ":name" a short string */

ngx_int_t
ngx_chat_args_set_string(json_t *out, const char *name, ngx_uint_t type,
    u_char *p, size_t len, ngx_chat_error_t *err)
{
    int64_t  id;
    json_t  *v;

    if (type == NGX_CHAT_T_ID) {
        if (ngx_chat_parse_id(p, len, &id) != NGX_OK) {
            return ngx_chat_fail(err, 400, name,
                                 "must be a positive integer below 2^53");
        }

        v = json_integer(id);

    } else {
        if (len > NGX_CHAT_CAPTURE_MAX) {
            return ngx_chat_fail(err, 400, name, "is longer than %d bytes",
                                 NGX_CHAT_CAPTURE_MAX);
        }

        v = json_stringn((char *) p, len);
        if (v == NULL) {
            return ngx_chat_fail(err, 400, name, "must be valid UTF-8");
        }

        /* a user id or an emoji, as a body would have to give them */
        if (!ngx_chat_id_valid(v, NGX_CHAT_CAPTURE_MAX)) {
            json_decref(v);
            return ngx_chat_fail(err, 400, name,
                                 "must not hold control characters");
        }
    }

    json_object_set_new(out, name, v);

    return NGX_OK;
}


ngx_int_t
ngx_chat_args_require(json_t *out, const ngx_chat_field_t *fields,
    ngx_chat_error_t *err)
{
    json_t      *v;
    const char  *arg;

    for ( /* void */ ; fields->name; fields++) {

        if (!(fields->flags & NGX_CHAT_REQUIRED)) {
            continue;
        }

        arg = fields->arg ? fields->arg : fields->name;
        v = json_object_get(out, arg);

        if (v == NULL || json_is_null(v)) {
            return ngx_chat_fail(err, 400, fields->name, "is required");
        }
    }

    return NGX_OK;
}


/* checks one value against its field; *res is a new reference to store */

static ngx_int_t
ngx_chat_check(const ngx_chat_field_t *f, json_t *v,
    const ngx_chat_limits_t *limits, json_t **res, ngx_chat_error_t *err)
{
    ngx_int_t     rc;
    json_int_t    n;
    const char   *what;

    if (json_is_null(v)) {
        if (f->flags & NGX_CHAT_NULLABLE) {
            *res = json_null();
            return NGX_OK;
        }

        return ngx_chat_fail(err, 400, f->name, "must not be null");
    }

    rc = NGX_OK;
    what = NULL;

    switch (f->type) {

    case NGX_CHAT_T_ID:
        if (!ngx_chat_is_int(v, 1, NGX_CHAT_MAX_ID)) {
            what = "must be a positive integer below 2^53";
        }
        break;

    case NGX_CHAT_T_SEQ:
        if (!ngx_chat_is_int(v, 0, NGX_CHAT_MAX_ID)) {
            what = "must be a non-negative integer below 2^53";
        }
        break;

    case NGX_CHAT_T_LIMIT:
        if (!ngx_chat_is_int(v, 1, NGX_CHAT_MAX_ID)) {
            what = "must be a positive integer";
            break;
        }

        n = json_integer_value(v);
        *res = json_integer(ngx_min(n, NGX_CHAT_MAX_PAGE));
        return NGX_OK;

    case NGX_CHAT_T_BOOL:
        if (!json_is_boolean(v)) {
            what = "must be true or false";
        }
        break;

    case NGX_CHAT_T_USERS:
    case NGX_CHAT_T_IDS:
        rc = ngx_chat_check_array(f, v, err);
        break;

    case NGX_CHAT_T_SEQMAP:
        rc = ngx_chat_check_seqmap(f, v, err);
        break;

    default:
        rc = ngx_chat_check_string(f, v, limits, err);
    }

    if (what) {
        return ngx_chat_fail(err, 400, f->name, "%s", what);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    *res = json_incref(v);

    return NGX_OK;
}


static ngx_int_t
ngx_chat_check_string(const ngx_chat_field_t *f, json_t *v,
    const ngx_chat_limits_t *limits, ngx_chat_error_t *err)
{
    u_char              *p;
    size_t               len;
    const char *const   *e;

    if (!json_is_string(v)) {
        return ngx_chat_fail(err, 400, f->name, "must be a string");
    }

    p = (u_char *) json_string_value(v);
    len = json_string_length(v);

    /* a %00 of a query string: Postgres text cannot hold it */
    if (ngx_strlchr(p, p + len, '\0') != NULL) {
        return ngx_chat_fail(err, 400, f->name, "must not contain NUL");
    }

    switch (f->type) {

    case NGX_CHAT_T_TEXT:
        if (len > limits->max_text) {
            return ngx_chat_fail(err, 413, f->name,
                                 "is longer than %zu bytes",
                                 limits->max_text);
        }
        return NGX_OK;

    case NGX_CHAT_T_USER:
        if (!ngx_chat_id_valid(v, NGX_CHAT_USER_MAX)) {
            return ngx_chat_fail(err, 400, f->name,
                                 "must be a user id of 1 to %d bytes "
                                 "without control characters",
                                 NGX_CHAT_USER_MAX);
        }
        return NGX_OK;

    case NGX_CHAT_T_ENUM:
        for (e = f->values; *e; e++) {
            if (strlen(*e) == len && ngx_strncmp(p, *e, len) == 0) {
                return NGX_OK;
            }
        }
        return ngx_chat_fail(err, 400, f->name, "is not one of the values "
                             "this field takes");

    case NGX_CHAT_T_TIME:
        if (ngx_chat_rfc3339_valid(p, len) != NGX_OK) {
            return ngx_chat_fail(err, 400, f->name,
                                 "must be an RFC 3339 timestamp");
        }
        return NGX_OK;

    default: /* NGX_CHAT_T_STR */
        if (ngx_chat_utf8_chars(p, len) > f->max) {
            return ngx_chat_fail(err, 400, f->name,
                                 "is longer than %zu characters", f->max);
        }
        return NGX_OK;
    }
}


static ngx_int_t
ngx_chat_check_array(const ngx_chat_field_t *f, json_t *v,
    ngx_chat_error_t *err)
{
    size_t   i;
    json_t  *item;

    if (!json_is_array(v)) {
        return ngx_chat_fail(err, 400, f->name, "must be an array");
    }

    if (json_array_size(v) > f->max) {
        return ngx_chat_fail(err, 400, f->name, "has more than %zu items",
                             f->max);
    }

    json_array_foreach(v, i, item) {

        if (f->type == NGX_CHAT_T_USERS) {
            if (!ngx_chat_id_valid(item, NGX_CHAT_USER_MAX)) {
                return ngx_chat_fail(err, 400, f->name,
                                     "must hold user ids of 1 to %d bytes",
                                     NGX_CHAT_USER_MAX);
            }

        } else if (!ngx_chat_is_int(item, 1, NGX_CHAT_MAX_ID)) {
            return ngx_chat_fail(err, 400, f->name,
                                 "must hold positive integer ids");
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_check_seqmap(const ngx_chat_field_t *f, json_t *v,
    ngx_chat_error_t *err)
{
    int64_t      id;
    json_t      *seq;
    const char  *key;

    if (!json_is_object(v)) {
        return ngx_chat_fail(err, 400, f->name,
                             "must be an object of ids to seqs");
    }

    if (json_object_size(v) > f->max) {
        return ngx_chat_fail(err, 400, f->name, "has more than %zu entries",
                             f->max);
    }

    json_object_foreach(v, key, seq) {

        if (ngx_chat_parse_id((u_char *) key, strlen(key), &id) != NGX_OK
            || !ngx_chat_is_int(seq, 0, NGX_CHAT_MAX_ID))
        {
            return ngx_chat_fail(err, 400, f->name,
                                 "must map conversation ids to seqs");
        }
    }

    return NGX_OK;
}


/* a user or tenant id: a string of 1 to max bytes, no control characters */

ngx_int_t
ngx_chat_id_valid(json_t *v, size_t max)
{
    u_char  *p, *last;
    size_t   len;

    if (!json_is_string(v)) {
        return 0;
    }

    p = (u_char *) json_string_value(v);
    len = json_string_length(v);

    if (len == 0 || len > max) {
        return 0;
    }

    for (last = p + len; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_chat_is_int(json_t *v, json_int_t min, json_int_t max)
{
    json_int_t  n;

    if (!json_is_integer(v)) {
        return 0;
    }

    n = json_integer_value(v);

    return n >= min && n <= max;
}


static json_t *
ngx_chat_from_string(const ngx_chat_field_t *f, u_char *p, size_t len,
    ngx_chat_error_t *err)
{
    int64_t  n;
    json_t  *v;

    switch (f->type) {

    case NGX_CHAT_T_ID:
    case NGX_CHAT_T_SEQ:
    case NGX_CHAT_T_LIMIT:
        if ((len == 1 && p[0] == '0') || len == 0) {
            n = (len == 0) ? -1 : 0;

        } else if (ngx_chat_parse_id(p, len, &n) != NGX_OK) {
            n = -1;
        }

        /* a bad number still goes to the check, which names the field */
        return (n < 0) ? json_string("") : json_integer(n);

    case NGX_CHAT_T_USERS:
        return ngx_chat_from_list(f, p, len, err);

    case NGX_CHAT_T_BOOL:
        if ((len == 4 && ngx_strncmp(p, "true", 4) == 0)
            || (len == 1 && p[0] == '1'))
        {
            return json_true();
        }

        if ((len == 5 && ngx_strncmp(p, "false", 5) == 0)
            || (len == 1 && p[0] == '0'))
        {
            return json_false();
        }

        return json_string("");

    default:
        v = json_stringn((char *) p, len);
        if (v == NULL) {
            ngx_chat_fail(err, 400, f->name, "must be valid UTF-8");
        }

        return v;
    }
}


/* "a,b,c" in a query string: an array, checked as one afterwards */

static json_t *
ngx_chat_from_list(const ngx_chat_field_t *f, u_char *p, size_t len,
    ngx_chat_error_t *err)
{
    u_char  *last, *comma;
    json_t  *list, *item;

    list = json_array();
    if (list == NULL) {
        ngx_chat_fail(err, 500, f->name, "out of memory");
        return NULL;
    }

    last = p + len;

    while (len) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        item = json_stringn((char *) p, comma - p);
        if (item == NULL) {
            json_decref(list);
            ngx_chat_fail(err, 400, f->name, "must be valid UTF-8");
            return NULL;
        }

        json_array_append_new(list, item);

        if (comma == last) {
            break;
        }

        p = comma + 1;
    }

    return list;
}


static const ngx_chat_field_t *
ngx_chat_field(const ngx_chat_field_t *fields, const char *name, size_t len)
{
    for ( /* void */ ; fields->name; fields++) {
        if (strlen(fields->name) == len
            && ngx_strncmp(fields->name, name, len) == 0)
        {
            return fields;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_chat_fail(ngx_chat_error_t *err, ngx_uint_t status, const char *name,
    const char *fmt, ...)
{
    int      n;
    size_t   len;
    va_list  args;

    err->status = status;

    /* a name the client made up is shown in part, a message stays short */
    len = ngx_min(strlen(name), 64);

    /* a cut inside a character would leave it incomplete: before it */
    while (len && ((u_char) name[len] & 0xc0) == 0x80) {
        len--;
    }

    n = snprintf(err->text, sizeof(err->text), "\"%.*s\": ", (int) len,
                 name);
    if (n < 0 || n >= (int) sizeof(err->text)) {
        err->text[0] = '\0';
        return NGX_ERROR;
    }

    va_start(args, fmt);
    (void) vsnprintf(err->text + n, sizeof(err->text) - n, fmt, args);
    va_end(args);

    ngx_chat_utf8_trim((u_char *) err->text);

    return NGX_ERROR;
}


/* cuts a NUL-terminated text after its last whole UTF-8 character */

static void
ngx_chat_utf8_trim(u_char *text)
{
    size_t  len, start;

    len = strlen((char *) text);

    while (len && ngx_chat_utf8_valid(text, len) != NGX_OK) {
        /* drop the bytes of the last, incomplete character */
        start = len - 1;

        while (start && (text[start] & 0xc0) == 0x80) {
            start--;
        }

        len = start;
    }

    text[len] = '\0';
}


/* strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF */

ngx_int_t
ngx_chat_utf8_valid(u_char *p, size_t len)
{
    u_char      c, *last;
    uint32_t    cp, min;
    ngx_uint_t  n, i;

    last = p + len;

    while (p < last) {
        c = *p++;

        if (c < 0x80) {
            continue;
        }

        if ((c & 0xe0) == 0xc0) {
            n = 1; cp = c & 0x1f; min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            n = 2; cp = c & 0x0f; min = 0x800;

        } else if ((c & 0xf8) == 0xf0) {
            n = 3; cp = c & 0x07; min = 0x10000;

        } else {
            return NGX_ERROR;
        }

        if ((size_t) (last - p) < n) {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return NGX_ERROR;
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return NGX_ERROR;
        }

        p += n;
    }

    return NGX_OK;
}


size_t
ngx_chat_utf8_chars(u_char *p, size_t len)
{
    size_t   n;
    u_char  *last;

    n = 0;

    for (last = p + len; p < last; p++) {
        if ((*p & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}


static ngx_int_t
ngx_chat_digits(u_char *p, ngx_uint_t n, ngx_uint_t min, ngx_uint_t max)
{
    ngx_uint_t  i, v;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return NGX_ERROR;
        }
        v = v * 10 + (p[i] - '0');
    }

    return (v >= min && v <= max) ? NGX_OK : NGX_ERROR;
}


/*
 * YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), a day the month has.  Of
 * what RFC 3339 allows, two bounds are Postgres's, so that what passes
 * here is never refused there in its own words: offsets within 15:59 and
 * fractions of at most 9 digits.
 */

ngx_int_t
ngx_chat_rfc3339_valid(u_char *p, size_t len)
{
    u_char      *last, *frac;
    ngx_uint_t   year, month, day, days;

    static ngx_uint_t  month_days[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    last = p + len;

    if (len < 20
        || ngx_chat_digits(p, 4, 1, 9999) != NGX_OK || p[4] != '-'
        || ngx_chat_digits(p + 5, 2, 1, 12) != NGX_OK || p[7] != '-'
        || ngx_chat_digits(p + 8, 2, 1, 31) != NGX_OK
        || (p[10] != 'T' && p[10] != 't')
        || ngx_chat_digits(p + 11, 2, 0, 23) != NGX_OK || p[13] != ':'
        || ngx_chat_digits(p + 14, 2, 0, 59) != NGX_OK || p[16] != ':'
        || ngx_chat_digits(p + 17, 2, 0, 60) != NGX_OK)
    {
        return NGX_ERROR;
    }

    year = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10
           + (p[3] - '0');
    month = (p[5] - '0') * 10 + (p[6] - '0');
    day = (p[8] - '0') * 10 + (p[9] - '0');

    days = month_days[month - 1];

    if (month == 2
        && !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
    {
        days = 28;
    }

    if (day > days) {
        return NGX_ERROR;
    }

    p += 19;

    if (*p == '.') {
        p++;

        if (p == last || *p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        for (frac = p; p < last && *p >= '0' && *p <= '9'; p++) {
            if (p - frac == 9) {
                return NGX_ERROR;
            }
        }
    }

    if (last - p == 1 && (*p == 'Z' || *p == 'z')) {
        return NGX_OK;
    }

    if (last - p == 6 && (*p == '+' || *p == '-')
        && ngx_chat_digits(p + 1, 2, 0, 15) == NGX_OK && p[3] == ':'
        && ngx_chat_digits(p + 4, 2, 0, 59) == NGX_OK)
    {
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* a decimal id: digits only, 1 to 2^53 - 1 */

ngx_int_t
ngx_chat_parse_id(u_char *p, size_t len, int64_t *id)
{
    int64_t  n;
    u_char  *last;

    if (len == 0 || len > 16) {
        return NGX_ERROR;
    }

    n = 0;

    for (last = p + len; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }
        n = n * 10 + (*p - '0');
    }

    if (n < 1 || n > NGX_CHAT_MAX_ID) {
        return NGX_ERROR;
    }

    *id = n;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/* percent-decoding of a query component; "+" is a space there */

size_t
ngx_chat_unescape(u_char *dst, u_char *src, size_t len)
{
    u_char  *d, *last, c, h, l;

    d = dst;

    for (last = src + len; src < last; src++) {
        c = *src;

        if (c == '+') {
            *d++ = ' ';
            continue;
        }

        if (c == '%' && last - src >= 3
            && ngx_chat_hex(src[1]) >= 0 && ngx_chat_hex(src[2]) >= 0)
        {
            h = (u_char) ngx_chat_hex(src[1]);
            l = (u_char) ngx_chat_hex(src[2]);
            *d++ = (u_char) (h << 4 | l);
            src += 2;
            continue;
        }

        *d++ = c;
    }

    return d - dst;
}


/* JSON string escaping for the few strings the module writes itself */

size_t
ngx_chat_json_escape_len(u_char *src, size_t len)
{
    size_t   n;
    u_char  *last;

    n = len;

    for (last = src + len; src < last; src++) {
        if (*src == '"' || *src == '\\') {
            n++;

        } else if (*src < 0x20) {
            n += 5;
        }
    }

    return n;
}


u_char *
ngx_chat_json_escape(u_char *dst, u_char *src, size_t len)
{
    u_char         *last;
    static u_char   hex[] = "0123456789abcdef";

    for (last = src + len; src < last; src++) {

        if (*src == '"' || *src == '\\') {
            *dst++ = '\\';
            *dst++ = *src;

        } else if (*src < 0x20) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 0xf];

        } else {
            *dst++ = *src;
        }
    }

    return dst;
}
