/* tests/unit/api/test_pool_conf.c - DATA/pool.conf and DATA/ptoken
 * (api/pool_conf.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/pool_conf.h"

static int
make_dir(void **state)
{
    char *dir = strdup("/tmp/vessel-pool-conf-XXXXXX");
    if (!dir || !mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int
remove_dir(void **state)
{
    char *dir = *state, path[512];
    snprintf(path, sizeof(path), "%s/pool.conf", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
    return 0;
}

static void
write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
conf_round_trip(void **state)
{
    const char *dir = *state;
    struct pool_conf c = {0}, in = {"etcd", "http://127.0.0.1:1,http://127.0.0.1:2", "/vessel/p"};
    char why[128];
    assert_int_equal(pool_conf_read(dir, &c, why, sizeof(why)), -ENOENT);
    assert_int_equal(pool_conf_write(dir, &in), 0);
    assert_int_equal(pool_conf_read(dir, &c, why, sizeof(why)), 0);
    assert_string_equal(c.store, "etcd");
    assert_string_equal(c.endpoints, in.endpoints);
    assert_string_equal(c.prefix, "/vessel/p");
    pool_conf_clear(&c);
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/pool.conf", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pool_conf_remove(dir), 0);
    assert_int_equal(pool_conf_read(dir, &c, why, sizeof(why)), -ENOENT);
    assert_int_equal(pool_conf_remove(dir), 0); /* gone already: fine */
}

static void
conf_refuses_bad_shapes(void **state)
{
    const char *dir = *state;
    static const char *const bad[] = {
        "not json",
        "[]",
        "{\"store\":\"sqlite\",\"endpoints\":\"http://a\",\"prefix\":\"/p\"}",
        "{\"store\":\"etcd\",\"endpoints\":\"\",\"prefix\":\"/p\"}",
        "{\"store\":\"etcd\",\"endpoints\":\"http://a;x\",\"prefix\":\"/p\"}",
        "{\"store\":\"etcd\",\"endpoints\":\"http://a\",\"prefix\":\"p\"}",
        "{\"store\":\"etcd\",\"endpoints\":\"http://a\",\"prefix\":\"/p;q\"}",
        "{\"store\":\"etcd\",\"endpoints\":\"http://a\",\"prefix\":\"/p@q\"}",
        "{\"store\":\"etcd\",\"endpoints\":\"http://a\"}",
        "{\"store\":\"etcd\",\"endpoints\":7,\"prefix\":\"/p\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pool_conf c = {0};
        char why[128] = "";
        write_file(dir, "pool.conf", bad[i]);
        assert_int_equal(pool_conf_read(dir, &c, why, sizeof(why)), -EINVAL);
        assert_null(c.store);
        assert_true(why[0] != '\0');
    }
}

static void
secret_made_once(void **state)
{
    const char *dir = *state;
    char *a = NULL, *b = NULL;
    assert_int_equal(pool_secret_read(dir, &a), -ENOENT);
    assert_int_equal(pool_secret_ensure(dir, &a), 0);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    assert_int_equal(pool_secret_ensure(dir, &b), 0);
    assert_string_equal(a, b); /* kept, not made again */
    free(b);
    assert_int_equal(pool_secret_write(dir, "given\n"), 0);
    assert_int_equal(pool_secret_read(dir, &b), 0);
    assert_string_equal(b, "given");
    free(a);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(conf_round_trip, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(conf_refuses_bad_shapes, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(secret_made_once, make_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
