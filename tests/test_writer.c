/* SPDX-License-Identifier: MIT */
/*
 * The base layer's writers on their own: the SVG writer (svg.h) escapes
 * every string into well-formed XML in valid UTF-8 and writes numbers
 * without the locale; the JSON writer's numbers, handles and booleans.
 * (JSON string escaping: test_inspect.c.)
 */
#define _GNU_SOURCE
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "support.h"
#include "svg.h"

/* The stream the writers under test print to, and what they printed, as a string. */
static FILE *out;

static void capture_begin(void)
{
    out = tmpfile();
    assert_non_null(out);
}

static const char *capture_end(void)
{
    static char buf[2048];
    rewind(out);
    size_t n = fread(buf, 1, sizeof(buf) - 1, out);
    buf[n] = '\0';
    fclose(out);
    out = NULL;
    return buf;
}

#define CAPTURE(...) (capture_begin(), __VA_ARGS__, capture_end())

static void test_writer_svg_escapes_markup_quotes_and_backslashes(void **state)
{
    (void)state;
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "plain")), "plain");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "a<b>&c")), "a&lt;b&gt;&amp;c");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "say \"hi\" 'x'")),
                        "say &quot;hi&quot; &apos;x&apos;");
    /* A backslash means nothing in XML: copied as it is. */
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "C:\\dir\\")), "C:\\dir\\");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, NULL)), "");
    assert_string_equal(CAPTURE(capmem__svg_attr(out, "data-owner", "\"q\" & <t>")),
                        " data-owner=\"&quot;q&quot; &amp; &lt;t&gt;\"");
    assert_string_equal(CAPTURE(capmem__svg_attr(out, "x", NULL)), "");
}

static void test_writer_svg_replaces_control_and_invalid_bytes(void **state)
{
    (void)state;
    /* Tab, newline, return survive as references; other controls cannot exist in XML 1.0. */
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "a\tb\nc\rd")), "a&#9;b&#10;c&#13;d");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "\x01\x1f\x7f")),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    /* Valid UTF-8 is kept: é, €, 😀. */
    assert_string_equal(
        CAPTURE(capmem__svg_escape(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")),
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Each byte that is not UTF-8 becomes U+FFFD: stray continuation, truncated, overlong,
     * surrogate, 0xff; and the non-characters U+FFFE, U+FFFF. */
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "\x80")), "\xef\xbf\xbd");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "\xe2\x82")), "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "\xc0\xaf")), "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "\xed\xa0\x80")),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "a\xffz")), "a\xef\xbf\xbdz");
    assert_string_equal(CAPTURE(capmem__svg_escape(out, "\xef\xbf\xbe\xef\xbf\xbf")),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

static void test_writer_svg_numbers_ignore_the_locale(void **state)
{
    (void)state;
    assert_string_equal(CAPTURE(capmem__svg_num(out, 0)), "0");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 12)), "12");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 1.5)), "1.5");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 2.25)), "2.25");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 0.004)), "0");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 0.005)), "0.01");
    assert_string_equal(CAPTURE(capmem__svg_num(out, -3.1)), "-3.1");
    assert_string_equal(CAPTURE(capmem__svg_num(out, -0.001)), "0");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 0.0 / 0.0)), "0");
    assert_string_equal(CAPTURE(capmem__svg_num(out, 1.0 / 0.0)), "0");
    /* A locale with a decimal comma changes nothing (when the machine has one). */
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL) {
        assert_string_equal(CAPTURE(capmem__svg_num(out, 1.5)), "1.5");
        setlocale(LC_NUMERIC, "C");
    }
    assert_string_equal(CAPTURE(capmem__svg_attr_u64(out, "n", UINT64_MAX)),
                        " n=\"18446744073709551615\"");
    assert_string_equal(CAPTURE(capmem__svg_attr_hex(out, "c", 0xabcull)), " c=\"0xabc\"");
}

static void test_writer_svg_shapes(void **state)
{
    (void)state;
    assert_string_equal(CAPTURE(capmem__svg_rect(out, 1, 2, 3.5, -1, "#ff0000", NULL)),
                        "<rect x=\"1\" y=\"2\" width=\"3.5\" height=\"0\" fill=\"#ff0000\"/>\n");
    assert_string_equal(CAPTURE(capmem__svg_line(out, 0, 1, 2, 3, NULL, 1.5, "4 2")),
                        "<line x1=\"0\" y1=\"1\" x2=\"2\" y2=\"3\" stroke=\"#000000\" "
                        "stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>\n");
    assert_string_equal(
        CAPTURE(capmem__svg_circle(out, 3, 4, 2.5, "#00ff00", "black")),
        "<circle cx=\"3\" cy=\"4\" r=\"2.5\" fill=\"#00ff00\" stroke=\"black\"/>\n");
    const double xy[] = {0, 10, 5, 7.5, 10, 0};
    assert_string_equal(CAPTURE(capmem__svg_polyline(out, xy, 3, "blue", 2)),
                        "<polyline fill=\"none\" stroke=\"blue\" stroke-width=\"2\" "
                        "stroke-linejoin=\"round\" points=\"0,10 5,7.5 10,0 \"/>\n");
    assert_string_equal(
        CAPTURE(capmem__svg_text(out, 5, 6, 20, CAPMEM__SVG_MIDDLE, "#111111", 1, "a<b")),
        "<text x=\"5\" y=\"6\" font-size=\"20\" text-anchor=\"middle\" fill=\"#111111\" "
        "font-weight=\"bold\">a&lt;b</text>\n");
    assert_string_equal(
        CAPTURE(capmem__svg_textf(out, 0, 0, 10, CAPMEM__SVG_END, NULL, 0, "%d KiB", 64)),
        "<text x=\"0\" y=\"0\" font-size=\"10\" text-anchor=\"end\">64 KiB</text>\n");
    assert_string_equal(
        CAPTURE(capmem__svg_group_begin(out, "strip", 10, 0), capmem__svg_group_end(out)),
        "<g class=\"strip\" transform=\"translate(10 0)\">\n</g>\n");
    assert_string_equal(CAPTURE(capmem__svg_group_begin(out, NULL, 0, 0)), "<g>\n");
    assert_string_equal(CAPTURE(capmem__svg_rect_open(out, 0, 0, 1, 1, NULL, "#000"),
                                capmem__svg_end_start(out), capmem__svg_title(out, "t&t"),
                                capmem__svg_close(out, "rect")),
                        "<rect x=\"0\" y=\"0\" width=\"1\" height=\"1\" fill=\"none\" "
                        "stroke=\"#000\"><title>t&amp;t</title></rect>\n");
    /* Widths count characters, not bytes. */
    assert_true(capmem__svg_text_width("\xc3\xa9\xc3\xa9", 10) == capmem__svg_text_width("ab", 10));
    const char *legend = CAPTURE((void)capmem__svg_legend_entry(out, 0, 0, 10, "#00f", "free"));
    assert_non_null(strstr(legend, ">free</text>"));
}

/* A whole document is well-formed XML: xmllint says so, when it is installed. */
static void test_writer_svg_document_is_well_formed(void **state)
{
    (void)state;
    char path[] = "/tmp/capmem-svg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    out = fdopen(fd, "w");
    assert_non_null(out);
    capmem__svg_begin(out, 640, 480, "a \"chart\" \x01 of \xff bytes");
    capmem__svg_group_begin(out, "axes", 40, 20);
    capmem__svg_line(out, 0, 400, 560, 400, NULL, 2, NULL);
    capmem__svg_polyline_begin(out, "#1f77b4", 3);
    for (int i = 0; i < 10; i++) {
        capmem__svg_polyline_point(out, i * 50.0, 400 - i * i * 4.0);
    }
    capmem__svg_polyline_end(out);
    capmem__svg_text(out, 280, 440, 24, CAPMEM__SVG_MIDDLE, NULL, 0, "<x> & 'y' \\ \"z\"\t\n");
    capmem__svg_group_end(out);
    capmem__svg_end(out);
    fclose(out);
    out = NULL;
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "xmllint --noout %s", path);
        assert_int_equal(system(cmd), 0);
    }
    unlink(path);
}

static void test_writer_json_numbers_handles_booleans(void **state)
{
    (void)state;
    assert_string_equal(CAPTURE(capmem__json_u64(out, 0)), "0");
    assert_string_equal(CAPTURE(capmem__json_u64(out, UINT64_MAX)), "18446744073709551615");
    assert_string_equal(CAPTURE(capmem__json_hex(out, 0)), "\"0x0\"");
    assert_string_equal(CAPTURE(capmem__json_hex(out, UINT64_MAX)), "\"0xffffffffffffffff\"");
    assert_string_equal(CAPTURE(capmem__json_bool(out, 1)), "true");
    assert_string_equal(CAPTURE(capmem__json_bool(out, 0)), "false");
    /* Control characters the short escapes do not cover, and DEL. */
    assert_string_equal(CAPTURE(capmem__json_string(out, "\x0b\x1b\x7f")),
                        "\"\\u000b\\u001b\\u007f\"");
    /* A 4-byte sequence cut short before the terminator, and a lead byte above F4. */
    assert_string_equal(CAPTURE(capmem__json_string(out, "\xf0\x9f\x98")),
                        "\"\\ufffd\\ufffd\\ufffd\"");
    assert_string_equal(CAPTURE(capmem__json_string(out, "\xf5\x80")), "\"\\ufffd\\ufffd\"");
    /* U+007F..U+07FF edges: the smallest 2-byte and the largest 3-byte forms are kept. */
    assert_string_equal(CAPTURE(capmem__json_string(out, "\xc2\x80\xef\xbf\xbf")),
                        "\"\xc2\x80\xef\xbf\xbf\"");
    assert_int_equal(capmem__utf8_len((const unsigned char *)"\xf4\x8f\xbf\xbf"), 4);
    assert_int_equal(capmem__utf8_len((const unsigned char *)"a"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_svg_escapes_markup_quotes_and_backslashes),
        cmocka_unit_test(test_writer_svg_replaces_control_and_invalid_bytes),
        cmocka_unit_test(test_writer_svg_numbers_ignore_the_locale),
        cmocka_unit_test(test_writer_svg_shapes),
        cmocka_unit_test(test_writer_svg_document_is_well_formed),
        cmocka_unit_test(test_writer_json_numbers_handles_booleans),
    };
    return cmocka_run_group_tests_name("writer", tests, NULL, NULL);
}
