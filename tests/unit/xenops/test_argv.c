/* tests/unit/xenops/test_argv.c - config -> qemu argv, against golden files.
 *
 * Each qemu-argv/<case>.json is a domain config (xenops_config_from_json); its
 * <case>.args holds the expected argv, one argument per line, with the
 * domain dir "/run/vessel/<uuid>" and accel "tcg" (or the case's "accel"
 * when kvm). A case named fail-*.json must be refused (-EINVAL) and has no
 * .args. To regenerate after an intended change: XENOPS_ARGV_UPDATE=1.
 * Also: the JSON round trip and config_check's refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xenops/xenops.h"

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int
run_case(const char *dir, const char *name)
{
    char path[1024], dom_dir[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *json = slurp(path);
    assert_non_null(json);
    struct xenops_domain_config *cfg = NULL;
    int rc = xenops_config_from_json(json, &cfg);
    free(json);
    bool fail = strncmp(name, "fail-", 5) == 0;
    char **argv = NULL;
    size_t n = 0;
    if (rc == 0) {
        snprintf(dom_dir, sizeof(dom_dir), "/run/vessel/%s", cfg->uuid ? cfg->uuid : "none");
        rc = xenops_qemu_argv(cfg, cfg->accel == XENOPS_ACCEL_KVM ? "kvm" : "tcg", dom_dir, NULL,
                              &argv, &n);
    }
    xenops_config_free(cfg);
    if (fail) {
        if (rc != -EINVAL)
            print_error("case %s: expected -EINVAL, got %d\n", name, rc);
        return rc == -EINVAL ? 0 : 1;
    }
    if (rc != 0) {
        print_error("case %s: rc %d\n", name, rc);
        return 1;
    }
    char got[16384] = "";
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(got + off, sizeof(got) - off, "%s\n", argv[i]);
    xenops_strv_free(argv, n);
    snprintf(path + strlen(path) - 5, 6, ".args");
    if (getenv("XENOPS_ARGV_UPDATE")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
    }
    char *want = slurp(path);
    int bad = !want || strcmp(want, got) != 0;
    if (bad)
        print_error("case %s: argv differs\n--- want\n%s--- got\n%s", name, want ? want : "(none)\n",
                    got);
    free(want);
    return bad;
}

static void
test_golden(void **state)
{
    (void)state;
    const char *dir = getenv("XENOPS_ARGV_DIR");
    assert_non_null(dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int cases = 0, failures = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            cases++;
            failures += run_case(dir, e->d_name);
        }
    }
    closedir(d);
    assert_true(cases >= 5);
    assert_int_equal(failures, 0);
}

static void
test_json_round_trip(void **state)
{
    (void)state;
    const char *text =
        "{\"uuid\":\"6c1e0000-0000-4000-8000-000000000001\",\"name\":\"a\",\"memory_bytes\":"
        "268435456,\"vcpus\":2,\"boot\":\"firmware\",\"machine\":\"q35\",\"boot_order\":\"dc\","
        "\"disks\":[{\"path\":\"/s/nbd.sock\",\"format\":\"nbd\",\"export\":\"x\",\"read_only\":"
        "true,\"cdrom\":false}],\"accel\":\"auto\",\"start_paused\":true,\"on_poweroff\":"
        "\"destroy\",\"on_reboot\":\"restart\",\"on_crash\":\"preserve\"}";
    struct xenops_domain_config *a = NULL, *b = NULL;
    assert_int_equal(xenops_config_from_json(text, &a), 0);
    char *s = xenops_config_to_json(a);
    assert_non_null(s);
    assert_int_equal(xenops_config_from_json(s, &b), 0);
    char *s2 = xenops_config_to_json(b);
    assert_string_equal(s, s2);
    assert_int_equal(b->n_disks, 1);
    assert_int_equal(b->disks[0].format, XENOPS_DISK_NBD);
    assert_string_equal(b->disks[0].export_name, "x");
    assert_true(b->start_paused);
    assert_int_equal(b->on_crash, XENOPS_ACTION_PRESERVE);
    struct xenops_domain_config *c = xenops_config_copy(b);
    char *s3 = xenops_config_to_json(c);
    assert_string_equal(s, s3);
    free(s);
    free(s2);
    free(s3);
    xenops_config_free(a);
    xenops_config_free(b);
    xenops_config_free(c);
    assert_int_equal(xenops_config_from_json("{\"nope\":1}", &a), -EINVAL);
    assert_int_equal(xenops_config_from_json("[1]", &a), -EINVAL);
    assert_int_equal(xenops_config_from_json("{\"machine\":\"isa\"}", &a), -EINVAL);
}

/* A NIC whose tap qemu is given as a descriptor is named by its number
 * alone (QEMU refuses ifname= and script= beside fd=), its device as by name;
 * the descriptor stays out of the JSON config, which a restarted vesseld
 * reads back with no descriptor to give. */
static void
test_nic_fd(void **state)
{
    (void)state;
    const char *text =
        "{\"uuid\":\"6c1e0000-0000-4000-8000-000000000002\",\"name\":\"n\",\"memory_bytes\":"
        "268435456,\"vcpus\":1,\"boot\":\"firmware\",\"machine\":\"pc\",\"accel\":\"tcg\","
        "\"nics\":[{\"tap\":\"vif3.0\",\"mac\":\"aa:00:00:00:00:01\"},"
        "{\"tap\":\"vif3.1\",\"mac\":\"aa:00:00:00:00:02\"}]}";
    struct xenops_domain_config *cfg = NULL;
    assert_int_equal(xenops_config_from_json(text, &cfg), 0);
    cfg->nics[0].qemu_fd = 7;
    struct xenops_domain_config *copy = xenops_config_copy(cfg);
    assert_non_null(copy);
    assert_int_equal(copy->nics[0].qemu_fd, 7);
    assert_int_equal(copy->nics[1].qemu_fd, 0);
    char **argv = NULL;
    size_t n = 0;
    assert_int_equal(xenops_qemu_argv(copy, "tcg", "/run/vessel/x", NULL, &argv, &n), 0);
    int by_fd = -1, by_name = -1;
    for (size_t i = 0; i + 1 < n; i++) {
        if (strcmp(argv[i], "-netdev") != 0)
            continue;
        if (strncmp(argv[i + 1], "tap,id=", 7) == 0 && strstr(argv[i + 1], ",fd=7"))
            by_fd = (int)i;
        if (strstr(argv[i + 1], "ifname=vif3.1,script=no,downscript=no"))
            by_name = (int)i;
    }
    assert_true(by_fd >= 0);
    assert_null(strstr(argv[by_fd + 1], "ifname"));
    assert_null(strstr(argv[by_fd + 1], "script"));
    assert_true(by_name > by_fd);
    xenops_strv_free(argv, n);
    char *json = xenops_config_to_json(copy);
    assert_non_null(json);
    assert_null(strstr(json, "qemu_fd"));
    free(json);
    xenops_config_free(copy);
    xenops_config_free(cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_nic_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
