/* tests/unit/common/test_strbuf.c - the growable buffer: appends, growth,
 * formatting, reset, steal and the sticky out-of-memory state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

static void
test_append_and_grow(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "abc");
    strbuf_putc(&sb, '-');
    strbuf_append(&sb, "xyz", 2);
    strbuf_append(&sb, NULL, 0);
    assert_string_equal(sb.buf, "abc-xy");
    assert_int_equal(sb.len, 6);
    for (int i = 0; i < 100000; i++)
        strbuf_putc(&sb, (char)('a' + i % 26));
    assert_int_equal(sb.len, 100006);
    assert_int_equal(sb.buf[sb.len], '\0');
    assert_true(sb.cap > sb.len);
    assert_int_equal(sb.buf[6], 'a');
    assert_int_equal(sb.buf[6 + 27], 'b');
    assert_true(strbuf_ok(&sb));
    strbuf_release(&sb);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
}

static void
test_printf(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_printf(&sb, "%s=%d", "n", 42);
    strbuf_printf(&sb, ";%.3f", 1.5);
    assert_string_equal(sb.buf, "n=42;1.500");
    char big[5000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    strbuf_printf(&sb, "[%s]", big);
    assert_int_equal(sb.len, 10 + 2 + 4999);
    assert_int_equal(sb.buf[sb.len - 1], ']');
    strbuf_release(&sb);
}

static void
test_reset_keeps_memory(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "hello");
    char *mem = sb.buf;
    strbuf_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.buf, "");
    assert_ptr_equal(sb.buf, mem);
    strbuf_puts(&sb, "x");
    assert_string_equal(sb.buf, "x");
    strbuf_release(&sb);
    strbuf_reset(&sb); /* on an empty buffer: harmless */
    assert_int_equal(sb.len, 0);
}

static void
test_steal(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    size_t len = 99;
    char *s = strbuf_steal(&sb, &len); /* empty and healthy: "" */
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    strbuf_puts(&sb, "data");
    s = strbuf_steal(&sb, &len);
    assert_string_equal(s, "data");
    assert_int_equal(len, 4);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
    free(s);
    s = strbuf_steal(&sb, NULL);
    assert_string_equal(s, "");
    free(s);
}

static void
test_sticky_oom(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "before");
    /* a length that cannot be reserved marks the buffer failed */
    strbuf_append(&sb, "x", SIZE_MAX - 2);
    assert_false(strbuf_ok(&sb));
    strbuf_puts(&sb, "after"); /* a no-op now */
    assert_int_equal(sb.len, 6);
    assert_null(strbuf_steal(&sb, NULL));
    assert_null(sb.buf); /* steal released it */
    assert_true(strbuf_ok(&sb));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_reset_keeps_memory),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_sticky_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
