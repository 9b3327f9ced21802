
/*
 * The small parsers and encoders: RFC 3339 timestamps, decimal ids,
 * percent-decoding of query components and JSON string escaping.
 */


#include "ngx_chat_test.h"


#define time_valid(s)                                                         \
    ngx_chat_rfc3339_valid(ngx_chat_test_literal(s), sizeof(s) - 1)


static ngx_int_t
parse_id(const char *s, int64_t *id)
{
    return ngx_chat_parse_id(ngx_chat_test_bytes(s, strlen(s)), strlen(s),
                             id);
}


static ngx_int_t
id_rejected(const char *s)
{
    int64_t  id;

    id = -7;

    /* a rejected id leaves the result alone */
    return parse_id(s, &id) == NGX_ERROR && id == -7;
}


/* the decoded query component as a C string, freed once the test ends */

static char *
unescape(const char *s, size_t *len)
{
    u_char  *dst;

    dst = (u_char *) ngx_chat_test_repeat(" ", strlen(s));
    *len = ngx_chat_unescape(dst, ngx_chat_test_bytes(s, strlen(s)),
                             strlen(s));
    dst[*len] = '\0';

    return (char *) dst;
}


/* bytes escaped into a heap block of exactly escape_len bytes */

static char *
escape(const void *src, size_t len)
{
    u_char  *dst, *last;
    size_t   n;

    n = ngx_chat_json_escape_len((u_char *) src, len);
    dst = (u_char *) ngx_chat_test_repeat(" ", n);

    last = ngx_chat_json_escape(dst, ngx_chat_test_bytes(src, len), len);

    ngx_chat_expect_int(last - dst, n);
    *last = '\0';

    return (char *) dst;
}


static void
test_rfc3339_utc_and_offsets_are_valid(void)
{
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05Z"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02t03:04:05z"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05+05:30"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05-00:00"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05+15:59"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05-15:59"), NGX_OK);
    /* RFC 3339 has them, Postgres does not */
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05+16:00"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05-23:59"), NGX_ERROR);
}


static void
test_rfc3339_fractions_of_1_to_9_digits_are_valid(void)
{
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.1Z"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.123456789Z"),
                        NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.000-08:00"), NGX_OK);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.1234567890Z"),
                        NGX_ERROR);
}


static void
test_rfc3339_bounds_of_each_field(void)
{
    ngx_chat_expect_int(time_valid("0001-01-01T00:00:00Z"), NGX_OK);
    ngx_chat_expect_int(time_valid("9999-12-31T23:59:59Z"), NGX_OK);
    ngx_chat_expect_int(time_valid("2016-12-31T23:59:60Z"), NGX_OK);

    ngx_chat_expect_int(time_valid("0000-01-01T00:00:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-00-01T00:00:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-13-01T00:00:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-00T00:00:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-32T00:00:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-01T24:00:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-01T00:60:00Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-01T00:00:61Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-01T00:00:00+24:00"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-01T00:00:00+00:60"), NGX_ERROR);
}


static void
test_rfc3339_without_zone_is_invalid(void)
{
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.5"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05."), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02"), NGX_ERROR);
}


static void
test_rfc3339_malformed_text_is_invalid(void)
{
    ngx_chat_expect_int(time_valid(""), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02 03:04:05Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024/01/02T03:04:05Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03.04.05Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2O24-01-02T03:04:05Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("+024-01-02T03:04:05Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-1-02T03:04:05Z "), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05.1.2Z"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05ZZ"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05Z "), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05+0530"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05+05:3"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05+05:300"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05 05:30"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05UTC"), NGX_ERROR);
    ngx_chat_expect_int(time_valid("2024-01-02T03:04:05\0"), NGX_ERROR);
}


static void
test_rfc3339_reads_only_len_bytes(void)
{
    u_char  *s;

    s = ngx_chat_test_literal("2024-01-02T03:04:05Z+01:00");

    ngx_chat_expect_int(ngx_chat_rfc3339_valid(s, 20), NGX_OK);
    ngx_chat_expect_int(ngx_chat_rfc3339_valid(s, 19), NGX_ERROR);
    ngx_chat_expect_int(ngx_chat_rfc3339_valid(s, 26), NGX_ERROR);
    ngx_chat_expect_int(ngx_chat_rfc3339_valid(s, 0), NGX_ERROR);
}


static void
test_id_1_and_2_pow_53_minus_1_are_the_bounds(void)
{
    int64_t  id;

    ngx_chat_expect_int(parse_id("1", &id), NGX_OK);
    ngx_chat_expect_int(id, 1);

    ngx_chat_expect_int(parse_id("9007199254740991", &id), NGX_OK);
    ngx_chat_expect_int(id, NGX_CHAT_MAX_ID);

    ngx_chat_expect_int(parse_id("42", &id), NGX_OK);
    ngx_chat_expect_int(id, 42);

    ngx_chat_expect(id_rejected("0"));
    ngx_chat_expect(id_rejected("9007199254740992"));
    ngx_chat_expect(id_rejected("9999999999999999"));
}


static void
test_id_longer_than_16_digits_is_rejected_without_overflow(void)
{
    ngx_chat_expect(id_rejected("10000000000000000"));
    ngx_chat_expect(id_rejected("99999999999999999999"));
    ngx_chat_expect(id_rejected("18446744073709551617"));
}


static void
test_id_takes_digits_only(void)
{
    ngx_chat_expect(id_rejected(""));
    ngx_chat_expect(id_rejected("+1"));
    ngx_chat_expect(id_rejected("-1"));
    ngx_chat_expect(id_rejected(" 1"));
    ngx_chat_expect(id_rejected("1 "));
    ngx_chat_expect(id_rejected("1.0"));
    ngx_chat_expect(id_rejected("1e3"));
    ngx_chat_expect(id_rejected("0x10"));
    ngx_chat_expect(id_rejected("12a"));
}


static void
test_id_reads_only_len_bytes(void)
{
    int64_t  id;
    u_char  *s;

    s = ngx_chat_test_literal("12345");

    ngx_chat_expect_int(ngx_chat_parse_id(s, 2, &id), NGX_OK);
    ngx_chat_expect_int(id, 12);
    ngx_chat_expect_int(ngx_chat_parse_id(s, 0, &id), NGX_ERROR);
}


static void
test_unescape_decodes_percent_hex_in_either_case(void)
{
    char    *s;
    size_t   len;

    s = unescape("%41%4a%4A", &len);
    ngx_chat_expect_bytes(s, len, "AJJ");

    s = unescape("a%2Bb%26c%3Dd", &len);
    ngx_chat_expect_bytes(s, len, "a+b&c=d");

    s = unescape("%c3%A9", &len);
    ngx_chat_expect_bytes(s, len, "\xc3\xa9");
}


static void
test_unescape_turns_plus_into_space(void)
{
    char    *s;
    size_t   len;

    s = unescape("a+b++", &len);
    ngx_chat_expect_bytes(s, len, "a b  ");
}


static void
test_unescape_keeps_malformed_escapes_as_they_are(void)
{
    char    *s;
    size_t   len;

    s = unescape("%", &len);
    ngx_chat_expect_bytes(s, len, "%");

    s = unescape("a%4", &len);
    ngx_chat_expect_bytes(s, len, "a%4");

    s = unescape("%zz%g0%0g", &len);
    ngx_chat_expect_bytes(s, len, "%zz%g0%0g");

    s = unescape("%%41", &len);
    ngx_chat_expect_bytes(s, len, "%A");
}


static void
test_unescape_decodes_nul_as_a_byte(void)
{
    size_t  len;
    char   *s;

    s = unescape("a%00b", &len);

    ngx_chat_expect_int(len, 3);
    ngx_chat_expect(memcmp(s, "a\0b", 3) == 0);
}


static void
test_unescape_of_nothing_is_nothing(void)
{
    size_t  len;

    unescape("", &len);
    ngx_chat_expect_int(len, 0);
}


static void
test_json_escape_leaves_plain_text_and_utf8_alone(void)
{
    ngx_chat_expect_bytes(escape("hello", 5), 5, "hello");
    ngx_chat_expect_int(ngx_chat_json_escape_len((u_char *) "hello", 5), 5);

    ngx_chat_expect_bytes(escape("\xc3\xa9/\x7f", 4), 4, "\xc3\xa9/\x7f");
    ngx_chat_expect_int(ngx_chat_json_escape_len((u_char *) "", 0), 0);
}


static void
test_json_escape_escapes_quote_and_backslash(void)
{
    ngx_chat_expect_bytes(escape("a\"b\\c", 5), 7, "a\\\"b\\\\c");
}


static void
test_json_escape_writes_controls_as_u00xx(void)
{
    ngx_chat_expect_bytes(escape("\n", 1), 6, "\\u000a");
    ngx_chat_expect_bytes(escape("\0", 1), 6, "\\u0000");
    ngx_chat_expect_bytes(escape("\x1f", 1), 6, "\\u001f");
    ngx_chat_expect_bytes(escape("\x20", 1), 1, " ");
}


static void
test_json_escape_output_parses_back_to_the_input(void)
{
    u_char   in[256];
    char    *out, *doc;
    size_t   i, len;
    json_t  *v;

    /* every byte below 0x80: the rest is UTF-8 and passes unchanged */
    for (i = 0; i < 128; i++) {
        in[i] = (u_char) i;
    }

    out = escape(in, 128);
    len = strlen(out);

    doc = ngx_chat_test_repeat(" ", len + 2);
    doc[0] = '"';
    memcpy(doc + 1, out, len);
    doc[len + 1] = '"';

    v = ngx_chat_test_keep(json_loadb(doc, len + 2,
                                      JSON_DECODE_ANY|JSON_ALLOW_NUL, NULL));

    ngx_chat_expect(json_is_string(v));
    ngx_chat_expect_int(json_string_length(v), 128);
    ngx_chat_expect(v && memcmp(json_string_value(v), in, 128) == 0);
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_rfc3339_utc_and_offsets_are_valid),
    ngx_chat_test(test_rfc3339_fractions_of_1_to_9_digits_are_valid),
    ngx_chat_test(test_rfc3339_bounds_of_each_field),
    ngx_chat_test(test_rfc3339_without_zone_is_invalid),
    ngx_chat_test(test_rfc3339_malformed_text_is_invalid),
    ngx_chat_test(test_rfc3339_reads_only_len_bytes),
    ngx_chat_test(test_id_1_and_2_pow_53_minus_1_are_the_bounds),
    ngx_chat_test(test_id_longer_than_16_digits_is_rejected_without_overflow),
    ngx_chat_test(test_id_takes_digits_only),
    ngx_chat_test(test_id_reads_only_len_bytes),
    ngx_chat_test(test_unescape_decodes_percent_hex_in_either_case),
    ngx_chat_test(test_unescape_turns_plus_into_space),
    ngx_chat_test(test_unescape_keeps_malformed_escapes_as_they_are),
    ngx_chat_test(test_unescape_decodes_nul_as_a_byte),
    ngx_chat_test(test_unescape_of_nothing_is_nothing),
    ngx_chat_test(test_json_escape_leaves_plain_text_and_utf8_alone),
    ngx_chat_test(test_json_escape_escapes_quote_and_backslash),
    ngx_chat_test(test_json_escape_writes_controls_as_u00xx),
    ngx_chat_test(test_json_escape_output_parses_back_to_the_input),
    ngx_chat_null_test
};
