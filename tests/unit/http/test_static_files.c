/* tests/unit/http/test_static_files.c - path checks of http/static_files.c.
 *
 * A temporary root with index.html, assets/app.js, a directory, a symlink to
 * a file inside and one to a file outside; each URL path a browser (or an
 * attacker) could send is resolved and checked: only regular files under the
 * root come back. Debug with `meson test -C BUILD http-static-files -v`.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/static_files.h"

static char base_dir[PATH_MAX]; /* the temporary dir, removed at the end */
static char root[PATH_MAX];     /* realpath of the served dir */
static char outside[PATH_MAX]; /* a sibling file, not served */

static void
write_file(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    char tmpl[] = "/tmp/vessel-static-XXXXXX";
    char *base = mkdtemp(tmpl);
    if (!base)
        return -1;
    snprintf(base_dir, sizeof(base_dir), "%s", base);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/ui", base);
    mkdir(dir, 0700);
    write_file(base, "secret.txt", "not for the web");
    write_file(dir, "index.html", "<!doctype html>");
    char assets[PATH_MAX + 8];
    snprintf(assets, sizeof(assets), "%s/assets", dir);
    mkdir(assets, 0700);
    write_file(assets, "app.js", "1");
    char link[PATH_MAX + 16], target[PATH_MAX + 16];
    snprintf(link, sizeof(link), "%s/escape.txt", dir);
    snprintf(target, sizeof(target), "%s/secret.txt", base);
    if (symlink(target, link) < 0)
        return -1;
    snprintf(link, sizeof(link), "%s/alias.js", dir);
    if (symlink("assets/app.js", link) < 0)
        return -1;
    if (!realpath(dir, root) || !realpath(target, outside))
        return -1;
    (void)state;
    return 0;
}

static int
teardown(void **state)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
    (void)state;
    return system(cmd) == 0 ? 0 : -1;
}

static void
expect_file(const char *url, const char *rel)
{
    char *got = NULL;
    assert_int_equal(static_files_resolve(root, url, &got), 0);
    char want[PATH_MAX * 2];
    snprintf(want, sizeof(want), "%s/%s", root, rel);
    assert_string_equal(got, want);
    free(got);
}

static void
expect_error(const char *url, int err)
{
    char *got = NULL;
    assert_int_equal(static_files_resolve(root, url, &got), err);
    assert_null(got);
}

static void
files_inside_are_served(void **state)
{
    (void)state;
    expect_file("/", "index.html");
    expect_file("/index.html", "index.html");
    expect_file("/assets/app.js", "assets/app.js");
    expect_file("/alias.js", "assets/app.js"); /* a link that stays inside */
}

static void
escapes_are_refused(void **state)
{
    (void)state;
    expect_error("/../secret.txt", -EINVAL);
    expect_error("/assets/../../secret.txt", -EINVAL);
    expect_error("/assets/./app.js", -EINVAL);
    expect_error("/assets//app.js", -EINVAL);
    expect_error("/assets\\..\\index.html", -EINVAL);
    expect_error("index.html", -EINVAL);
    expect_error("", -EINVAL);
    expect_error("/..", -EINVAL);
    expect_error("/escape.txt", -ENOENT); /* symlink out of the root */
    expect_error("/assets", -ENOENT);     /* a directory */
    expect_error("/assets/", -ENOENT);     /* a directory again */
    expect_error("/missing.js", -ENOENT);
    expect_error("/index.html/x", -ENOENT);
    char *got = NULL;
    assert_int_equal(static_files_resolve(root, outside, &got), -ENOENT); /* absolute elsewhere */
}

static void
content_types(void **state)
{
    (void)state;
    assert_string_equal(static_files_content_type("/a/index.html"), "text/html; charset=utf-8");
    assert_string_equal(static_files_content_type("x.JS"), "text/javascript; charset=utf-8");
    assert_string_equal(static_files_content_type("x.css"), "text/css; charset=utf-8");
    assert_string_equal(static_files_content_type("x.svg"), "image/svg+xml");
    assert_string_equal(static_files_content_type("x.woff2"), "font/woff2");
    assert_string_equal(static_files_content_type("a.b/noext"), "application/octet-stream");
    assert_string_equal(static_files_content_type("x"), "application/octet-stream");
}

static void
open_checks_the_dir(void **state)
{
    (void)state;
    struct static_files *sf = NULL;
    assert_int_equal(static_files_open("/nonexistent/vessel-ui", &sf), -ENOENT);
    char file[PATH_MAX + 16];
    snprintf(file, sizeof(file), "%s/index.html", root);
    assert_int_equal(static_files_open(file, &sf), -ENOTDIR);
    assert_int_equal(static_files_open(root, &sf), 0);
    assert_string_equal(static_files_root(sf), root);
    static_files_free(sf);
    assert_false(static_files_handle(NULL, NULL)); /* no UI: never answers */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(files_inside_are_served),
        cmocka_unit_test(escapes_are_refused),
        cmocka_unit_test(content_types),
        cmocka_unit_test(open_checks_the_dir),
    };
    return cmocka_run_group_tests_name("http-static-files", tests, setup, teardown);
}
