
/*
 * UTF-8: ngx_chat_utf8_valid() is strict (RFC 3629) and
 * ngx_chat_utf8_chars() counts code points of valid text.
 */


#include "ngx_chat_test.h"


/* on an exact heap copy, so that a read past the end is an ASan error */
#define valid(s)                                                              \
    ngx_chat_utf8_valid(ngx_chat_test_literal(s), sizeof(s) - 1)
#define chars(s)                                                              \
    ngx_chat_utf8_chars(ngx_chat_test_literal(s), sizeof(s) - 1)


static void
test_utf8_empty_and_ascii_are_valid(void)
{
    ngx_chat_expect_int(valid(""), NGX_OK);
    ngx_chat_expect_int(valid("hello, world"), NGX_OK);
    ngx_chat_expect_int(valid("\x7f"), NGX_OK);
}


static void
test_utf8_nul_byte_is_valid_utf8(void)
{
    ngx_chat_expect_int(valid("a\0b"), NGX_OK);
}


static void
test_utf8_first_and_last_code_point_of_each_length_are_valid(void)
{
    ngx_chat_expect_int(valid("\xc2\x80"), NGX_OK);          /* U+0080 */
    ngx_chat_expect_int(valid("\xdf\xbf"), NGX_OK);          /* U+07FF */
    ngx_chat_expect_int(valid("\xe0\xa0\x80"), NGX_OK);      /* U+0800 */
    ngx_chat_expect_int(valid("\xef\xbf\xbf"), NGX_OK);      /* U+FFFF */
    ngx_chat_expect_int(valid("\xf0\x90\x80\x80"), NGX_OK);  /* U+10000 */
    ngx_chat_expect_int(valid("\xf4\x8f\xbf\xbf"), NGX_OK);  /* U+10FFFF */
}


static void
test_utf8_overlong_forms_are_invalid(void)
{
    ngx_chat_expect_int(valid("\xc0\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xc1\xbf"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xe0\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xe0\x9f\xbf"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf0\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf0\x8f\xbf\xbf"), NGX_ERROR);
}


static void
test_utf8_surrogates_are_invalid_their_neighbours_valid(void)
{
    ngx_chat_expect_int(valid("\xed\x9f\xbf"), NGX_OK);      /* U+D7FF */
    ngx_chat_expect_int(valid("\xed\xa0\x80"), NGX_ERROR);   /* U+D800 */
    ngx_chat_expect_int(valid("\xed\xbf\xbf"), NGX_ERROR);   /* U+DFFF */
    ngx_chat_expect_int(valid("\xee\x80\x80"), NGX_OK);      /* U+E000 */
}


static void
test_utf8_above_u10ffff_is_invalid(void)
{
    ngx_chat_expect_int(valid("\xf4\x90\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf5\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf7\xbf\xbf\xbf"), NGX_ERROR);
}


static void
test_utf8_bytes_that_never_start_a_character_are_invalid(void)
{
    ngx_chat_expect_int(valid("\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xbf"), NGX_ERROR);
    ngx_chat_expect_int(valid("a\x80" "b"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf8\x88\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xfc\x84\x80\x80\x80\x80"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xfe"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xff"), NGX_ERROR);
}


static void
test_utf8_truncated_sequences_are_invalid(void)
{
    ngx_chat_expect_int(valid("\xc3"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xe2\x82"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf0\x9f\x98"), NGX_ERROR);
    ngx_chat_expect_int(valid("ok\xe2\x82"), NGX_ERROR);
}


static void
test_utf8_sequence_broken_by_ascii_is_invalid(void)
{
    ngx_chat_expect_int(valid("\xe2\x28\xa1"), NGX_ERROR);
    ngx_chat_expect_int(valid("\xc3("), NGX_ERROR);
    ngx_chat_expect_int(valid("\xf0\x9f\x98("), NGX_ERROR);
}


static void
test_utf8_valid_reads_only_len_bytes(void)
{
    u_char  *s;

    s = ngx_chat_test_literal("\xe2\x82\xac");

    /* a complete character beyond len does not complete the one inside */
    ngx_chat_expect_int(ngx_chat_utf8_valid(s, 2), NGX_ERROR);
    ngx_chat_expect_int(ngx_chat_utf8_valid(s, 3), NGX_OK);
    ngx_chat_expect_int(ngx_chat_utf8_valid(s, 0), NGX_OK);
}


static void
test_utf8_chars_counts_code_points_not_bytes(void)
{
    ngx_chat_expect_int(chars(""), 0);
    ngx_chat_expect_int(chars("abc"), 3);
    ngx_chat_expect_int(chars("\xc3\xa9"), 1);                /* é */
    ngx_chat_expect_int(chars("\xe2\x82\xac"), 1);            /* € */
    ngx_chat_expect_int(chars("\xf0\x9f\x98\x80"), 1);        /* 😀 */
    ngx_chat_expect_int(chars("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5);
    ngx_chat_expect_int(chars("a\0b"), 3);
}


static void
test_utf8_chars_reads_only_len_bytes(void)
{
    u_char  *s;

    s = ngx_chat_test_literal("abcdef");

    ngx_chat_expect_int(ngx_chat_utf8_chars(s, 4), 4);
    ngx_chat_expect_int(ngx_chat_utf8_chars(s, 0), 0);
}


ngx_chat_test_t  ngx_chat_tests[] = {
    ngx_chat_test(test_utf8_empty_and_ascii_are_valid),
    ngx_chat_test(test_utf8_nul_byte_is_valid_utf8),
    ngx_chat_test(test_utf8_first_and_last_code_point_of_each_length_are_valid),
    ngx_chat_test(test_utf8_overlong_forms_are_invalid),
    ngx_chat_test(test_utf8_surrogates_are_invalid_their_neighbours_valid),
    ngx_chat_test(test_utf8_above_u10ffff_is_invalid),
    ngx_chat_test(test_utf8_bytes_that_never_start_a_character_are_invalid),
    ngx_chat_test(test_utf8_truncated_sequences_are_invalid),
    ngx_chat_test(test_utf8_sequence_broken_by_ascii_is_invalid),
    ngx_chat_test(test_utf8_valid_reads_only_len_bytes),
    ngx_chat_test(test_utf8_chars_counts_code_points_not_bytes),
    ngx_chat_test(test_utf8_chars_reads_only_len_bytes),
    ngx_chat_null_test
};
