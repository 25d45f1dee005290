/* tests/unit/api/test_pool_objects.c - a host's own objects moved from one
 * store to another and deleted from the first (api/pool_objects.h): what
 * pool.join and pool.eject do, on two stores in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/bootstrap.h"
#include "api/pool_objects.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "model/xmodel.h"
#include "xapi_model.h"

struct fx {
    char dir[64];
    struct server srv; /* the joiner: a host of its own, bootstrapped */
    struct db *pool;   /* the destination */
    char *net, *pif, *pool_net, *vdi, *vm, *vbd, *other_vm;
};

static char *
create(struct db *db, const struct xclass *cls, void *rec)
{
    char *ref = NULL;
    struct xerr *err = NULL;
    assert_true(db_create(db, cls, NULL, rec, &ref, &err));
    return ref;
}

static char *
network(struct db *db, const char *bridge)
{
    struct xapi_network_record *n = xapi_network_record_new();
    xstr_set(&n->bridge, bridge);
    return create(db, &xapi_class_network, n);
}

static char *
local_sr(struct fx *f)
{
    struct xapi_host_record *h = NULL;
    assert_true(db_get(f->srv.db, &xapi_class_host, f->srv.host_ref, (void **)&h, NULL));
    assert_true(h->PBDs.n >= 1);
    char *sr = NULL;
    assert_true(db_get_field(f->srv.db, &xapi_class_pbd, h->PBDs.items[0],
                             xclass_field(&xapi_class_pbd, "SR"), &sr, NULL));
    xapi_host_record_free(h);
    return sr;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vessel-pool-objects-XXXXXX");
    char why[256];
    struct xerr *err = NULL;
    if (!f || !mkdtemp(f->dir))
        return -1;
    f->srv.data_dir = f->dir;
    vm_ops_register();
    if (xmodel_init() < 0 || db_open(":memory:", &f->srv.db, why, sizeof(why)) < 0 ||
        !bootstrap_run(&f->srv, false, &err) ||
        db_open(":memory:", &f->pool, why, sizeof(why)) < 0)
        return -1;
    struct db *db = f->srv.db;
    /* a PIF on bridge xenbrT, which the pool has too */
    f->net = network(db, "xenbrT");
    f->pool_net = network(f->pool, "xenbrT");
    struct xapi_pif_record *pif = xapi_pif_record_new();
    xstr_set(&pif->device, "ethT");
    xstr_set(&pif->host, f->srv.host_ref);
    xstr_set(&pif->network, f->net);
    f->pif = create(db, &xapi_class_pif, pif);
    /* a halted VM with a disk on the local SR, and one with a disk elsewhere */
    char *sr = local_sr(f);
    struct xapi_vdi_record *vdi = xapi_vdi_record_new();
    xstr_set(&vdi->SR, sr);
    f->vdi = create(db, &xapi_class_vdi, vdi);
    free(sr);
    struct xapi_vm_record *vm = xapi_vm_record_new();
    xstr_set(&vm->name_label, "halted");
    f->vm = create(db, &xapi_class_vm, vm);
    struct xapi_vbd_record *vbd = xapi_vbd_record_new();
    xstr_set(&vbd->VM, f->vm);
    xstr_set(&vbd->VDI, f->vdi);
    f->vbd = create(db, &xapi_class_vbd, vbd);
    struct xapi_vdi_record *far = xapi_vdi_record_new();
    xstr_set(&far->SR, "OpaqueRef:elsewhere");
    char *far_ref = create(db, &xapi_class_vdi, far);
    struct xapi_vm_record *other = xapi_vm_record_new();
    f->other_vm = create(db, &xapi_class_vm, other);
    struct xapi_vbd_record *ovbd = xapi_vbd_record_new();
    xstr_set(&ovbd->VM, f->other_vm);
    xstr_set(&ovbd->VDI, far_ref);
    free(create(db, &xapi_class_vbd, ovbd));
    free(far_ref);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    db_close(f->srv.db);
    db_close(f->pool);
    free(f->srv.pool_ref);
    free(f->srv.host_ref);
    char *refs[] = {f->net, f->pif, f->pool_net, f->vdi, f->vm, f->vbd, f->other_vm};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
        free(refs[i]);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void
moves_own_objects(void **state)
{
    struct fx *f = *state;
    struct db *db = f->srv.db, *pool = f->pool;
    const char *host = f->srv.host_ref;
    struct owned o;
    struct xerr *err = NULL;
    assert_true(pool_objects_find(db, pool, host, false, &o, &err));
    db_batch_begin(pool);
    assert_true(db_batch_end(pool, pool_objects_copy(db, pool, &o, &err), &err));

    struct xapi_host_record *h = NULL, *mine = NULL;
    assert_true(db_get(pool, &xapi_class_host, host, (void **)&h, NULL));
    assert_true(db_get(db, &xapi_class_host, host, (void **)&mine, NULL));
    assert_string_equal(h->uuid, mine->uuid);
    /* reverse links are made in the destination as the objects arrive */
    assert_int_equal(h->PBDs.n, mine->PBDs.n);
    assert_int_equal(h->host_CPUs.n, mine->host_CPUs.n);
    assert_int_equal(h->PIFs.n, mine->PIFs.n);
    assert_int_equal(h->resident_VMs.n, 1); /* the control domain */
    assert_true(db_exists(pool, &xapi_class_host_metrics, h->metrics));
    assert_true(db_exists(pool, &xapi_class_vm, h->control_domain));
    xapi_host_record_free(mine);
    /* the PIF is on the pool's network of the same bridge; ours is not carried */
    char *net = NULL;
    assert_true(db_get_field(pool, &xapi_class_pif, f->pif, xclass_field(&xapi_class_pif, "network"),
                             &net, NULL));
    assert_string_equal(net, f->pool_net);
    free(net);
    assert_false(db_exists(pool, &xapi_class_network, f->net));
    /* the halted VM with its disk on the local SR comes; the other does not */
    assert_true(db_exists(pool, &xapi_class_vm, f->vm));
    assert_true(db_exists(pool, &xapi_class_vbd, f->vbd));
    assert_true(db_exists(pool, &xapi_class_vdi, f->vdi));
    assert_false(db_exists(pool, &xapi_class_vm, f->other_vm));
    char *sr = local_sr(f);
    struct xapi_sr_record *s = NULL;
    assert_true(db_get(pool, &xapi_class_sr, sr, (void **)&s, NULL));
    assert_int_equal(s->VDIs.n, 1);
    assert_int_equal(s->PBDs.n, 1);
    xapi_sr_record_free(s);
    /* neither the pool object, the SMs nor the built-in templates */
    assert_int_equal(db_count(pool, &xapi_class_pool), 0);
    assert_int_equal(db_count(pool, &xapi_class_sm), 0);
    assert_int_equal(db_count(pool, &xapi_class_vm), 2);

    /* deleted from the source: everything but the networks */
    db_batch_begin(db);
    assert_true(db_batch_end(db, pool_objects_delete(db, &o, &err), &err));
    assert_false(db_exists(db, &xapi_class_host, host));
    assert_false(db_exists(db, &xapi_class_host_metrics, h->metrics));
    assert_false(db_exists(db, &xapi_class_sr, sr));
    assert_false(db_exists(db, &xapi_class_vm, f->vm));
    assert_false(db_exists(db, &xapi_class_pif, f->pif));
    assert_true(db_exists(db, &xapi_class_network, f->net));
    assert_true(db_exists(db, &xapi_class_vm, f->other_vm));
    free(sr);
    xapi_host_record_free(h);
    pool_objects_free(&o);
}

/* pool.eject's reading: a halted VM without disks is this host's only
 * when its affinity says so. */
static void
diskless_vms_need_affinity(void **state)
{
    struct fx *f = *state;
    struct xapi_vm_record *a = xapi_vm_record_new(), *b = xapi_vm_record_new();
    xstr_set(&a->affinity, f->srv.host_ref);
    char *with = create(f->srv.db, &xapi_class_vm, a), *without = create(f->srv.db, &xapi_class_vm, b);
    struct owned o;
    struct xerr *err = NULL;
    assert_true(pool_objects_find(f->srv.db, f->pool, f->srv.host_ref, true, &o, &err));
    assert_true(refs_has(&o.vms, with));
    assert_false(refs_has(&o.vms, without));
    assert_true(refs_has(&o.vms, f->vm));
    pool_objects_free(&o);
    assert_true(pool_objects_find(f->srv.db, f->pool, f->srv.host_ref, false, &o, &err));
    assert_true(refs_has(&o.vms, with) && refs_has(&o.vms, without));
    pool_objects_free(&o);
    free(with);
    free(without);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(moves_own_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(diskless_vms_need_affinity, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
