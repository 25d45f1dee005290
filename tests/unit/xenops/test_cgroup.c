/* tests/unit/xenops/test_cgroup.c - a domain's cgroup limits (xenops/cgroup.c).
 *
 * The mapping from xapi's VCPUs_params and memory to cgroup v2 values, then
 * the writer against a directory laid out as cgroupfs would be (a host with a
 * v1 or hybrid hierarchy cannot show real controllers to a test): the three
 * limit files get the mapped values; a missing one is a warning, not a failure;
 * with no cgroup v2 root nothing is made and the domain still starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xenops/xenops_int.h"

static void
test_limits(void **state)
{
    struct xenops_domain_config c = {.memory_bytes = 512ull << 20, .vcpus = 2};
    unsigned w;
    char max[32];
    uint64_t mem;
    xenops_cgroup_limits(&c, "kvm", &w, max, sizeof(max), &mem);
    assert_int_equal(w, 100); /* xapi's default weight 256 is cgroup's default */
    assert_string_equal(max, "max 100000");
    assert_int_equal(mem, (512ull << 20) + (256ull << 20) + (32ull << 20));
    c.cpu_weight = 512;
    c.cpu_cap = 150; /* one and a half CPUs */
    xenops_cgroup_limits(&c, "tcg", &w, max, sizeof(max), &mem);
    assert_int_equal(w, 200);
    assert_string_equal(max, "150000 100000");
    assert_int_equal(mem, (512ull << 20) + (256ull << 20) + (32ull << 20) + (1ull << 30));
    c.cpu_weight = 1;
    xenops_cgroup_limits(&c, "kvm", &w, max, sizeof(max), &mem);
    assert_int_equal(w, 1); /* never 0: cgroup's range starts at 1 */
    c.cpu_weight = 65535;
    xenops_cgroup_limits(&c, "kvm", &w, max, sizeof(max), &mem);
    assert_int_equal(w, 10000); /* clamped to cgroup's top */
}

static char *
slurp(const char *dir, const char *name)
{
    char path[4500], buf[128] = "";
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void
touch(const char *dir, const char *name)
{
    char path[4500];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void
test_create(void **state)
{
    char root[] = "/tmp/vessel-cg-XXXXXX";
    assert_non_null(mkdtemp(root));
    const char *uuid = "6c1e0000-0000-4000-8000-000000000001";
    char slice[4200], group[4300];
    snprintf(slice, sizeof(slice), "%s/vessel.slice", root);
    snprintf(group, sizeof(group), "%s/vm-%s", slice, uuid);
    assert_int_equal(mkdir(slice, 0755), 0);
    assert_int_equal(mkdir(group, 0755), 0);
    touch(group, "cpu.weight");
    touch(group, "cpu.max"); /* memory.max missing: the memory controller is off */
    struct xenops x = {.cgroup_root = root};
    struct xenops_domain_config c = {.uuid = (char *)uuid, .memory_bytes = 256ull << 20,
                                     .vcpus = 1, .cpu_weight = 128, .cpu_cap = 25};
    char path[4300];
    xenops_cgroup_create(&x, &c, "kvm", path, sizeof(path));
    assert_string_equal(path, group);
    char *v = slurp(group, "cpu.weight");
    assert_string_equal(v, "50");
    free(v);
    v = slurp(group, "cpu.max");
    assert_string_equal(v, "25000 100000");
    free(v);
    assert_null(slurp(group, "memory.max"));
    /* not cgroup v2: no group, nothing fails */
    struct xenops none = {.cgroup_root = NULL};
    xenops_cgroup_create(&none, &c, "kvm", path, sizeof(path));
    assert_string_equal(path, "");
    char cmd[4400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
}

static void
test_probe_refuses_plain_dir(void **state)
{
    char root[] = "/tmp/vessel-cg-XXXXXX";
    assert_non_null(mkdtemp(root));
    struct xenops x = {.cgroup_root = strdup(root)};
    xenops_cgroup_probe(&x); /* a tmpfs or ext4 directory is no cgroup v2 */
    assert_null(x.cgroup_root);
    rmdir(root);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_probe_refuses_plain_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
