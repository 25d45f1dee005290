/* tests/unit/fault/test_fault_db.c - the store under failing allocations and I/O.
 *
 * Each write (create, field update, destroy) is walked with the n-th
 * allocation or store write failing, for every n along its path. A failed
 * write must answer a XenAPI error, leave the record as it was in memory and
 * on disk (a reopen finds exactly what memory holds) and not move the store's
 * generation; ASan (the suite's second run) checks nothing leaked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db.h"
#include "fault_walk.h"
#include "model/xmodel.h"
#include "xapi_model.h"

struct fx {
    char path[256];
    struct db *db;
    struct xerr *err;
    void *next_rec;    /* the record the next create attempt hands over */
    char *ref;         /* the object updates and destroys work on */
    uint64_t gen;      /* generation before the attempt */
    size_t count;      /* networks before the attempt */
};

static struct db *
open_db(const char *path)
{
    struct db *db = NULL;
    char why[256] = "";
    assert_int_equal(db_open(path, &db, why, sizeof(why)), 0);
    return db;
}

static void *
network_named(const char *name)
{
    struct xapi_network_record *n = xapi_network_record_new();
    assert_non_null(n);
    free(n->name_label);
    n->name_label = strdup(name);
    assert_non_null(n->name_label);
    return n;
}

static char *
name_of(struct fx *f, const char *ref)
{
    void *rec = NULL;
    if (!db_get(f->db, &xapi_class_network, ref, &rec, NULL))
        return NULL;
    char *name = strdup(((struct xapi_network_record *)rec)->name_label);
    xrecord_free(&xapi_class_network, rec);
    return name;
}

static void
before(struct fx *f)
{
    xerr_free(f->err);
    f->err = NULL;
    f->gen = db_generation(f->db);
    f->count = db_count(f->db, &xapi_class_network);
}

/* After a failed attempt: an error with a code, the generation unchanged. */
static void
assert_clean_failure(struct fx *f, const char *site)
{
    if (!f->err || !f->err->code[0])
        fail_msg("no XenAPI error after a fault at %s", site);
    assert_int_equal(db_generation(f->db), f->gen);
}

/* ---- create ---- */

static bool
create_step(void *opaque)
{
    struct fx *f = opaque;
    before(f);
    void *rec = f->next_rec;
    f->next_rec = NULL;
    char *ref = NULL;
    bool ok = db_create(f->db, &xapi_class_network, NULL, rec, &ref, &f->err);
    free(f->ref);
    f->ref = ref;
    return ok;
}

static void
create_check(void *opaque, bool ok, unsigned long n, const char *site)
{
    struct fx *f = opaque;
    if (ok) { /* absorbed: undo, so the next attempt starts alike */
        assert_int_equal(db_count(f->db, &xapi_class_network), f->count + 1);
        assert_true(db_destroy(f->db, &xapi_class_network, f->ref, NULL));
    } else {
        assert_clean_failure(f, site);
        assert_int_equal(db_count(f->db, &xapi_class_network), f->count);
    }
    f->next_rec = network_named("created");
}

/* ---- update ---- */

static bool
update_step(void *opaque)
{
    struct fx *f = opaque;
    before(f);
    const char *name = "renamed";
    return db_set_field(f->db, &xapi_class_network, f->ref,
                        xclass_field(&xapi_class_network, "name_label"), &name, &f->err);
}

static void
update_check(void *opaque, bool ok, unsigned long n, const char *site)
{
    struct fx *f = opaque;
    char *name = name_of(f, f->ref);
    assert_non_null(name);
    if (ok) {
        assert_string_equal(name, "renamed");
        const char *back = "target";
        assert_true(db_set_field(f->db, &xapi_class_network, f->ref,
                                 xclass_field(&xapi_class_network, "name_label"), &back, NULL));
    } else {
        assert_clean_failure(f, site);
        if (strcmp(name, "target") != 0)
            fail_msg("a failed update (fault %lu at %s) left the record changed: %s", n, site,
                     name);
    }
    free(name);
}

/* ---- destroy ---- */

static bool
destroy_step(void *opaque)
{
    struct fx *f = opaque;
    before(f);
    return db_destroy(f->db, &xapi_class_network, f->ref, &f->err);
}

static void
destroy_check(void *opaque, bool ok, unsigned long n, const char *site)
{
    struct fx *f = opaque;
    if (ok) {
        assert_false(db_exists(f->db, &xapi_class_network, f->ref));
        assert_true(db_create(f->db, &xapi_class_network, f->ref, network_named("target"),
                              NULL, NULL));
    } else {
        assert_clean_failure(f, site);
        assert_true(db_exists(f->db, &xapi_class_network, f->ref));
    }
}

/* What memory holds is what a reopen finds: nothing half-written reached disk. */
static void
assert_disk_matches_memory(struct fx *f)
{
    size_t n = db_count(f->db, &xapi_class_network);
    char *name = f->ref ? name_of(f, f->ref) : NULL;
    db_close(f->db);
    f->db = open_db(f->path);
    assert_int_equal(db_count(f->db, &xapi_class_network), n);
    if (name) {
        char *again = name_of(f, f->ref);
        assert_non_null(again);
        assert_string_equal(again, name);
        free(again);
    }
    free(name);
}

static void
test_writes_under_faults(void **state)
{
    struct fx *f = *state;
    f->next_rec = network_named("created");
    unsigned long points = 0;
    points += fault_walk("db.create", FAULT_ALLOC | FAULT_IO, create_step, create_check, f);
    assert_disk_matches_memory(f);
    free(f->ref);
    f->ref = NULL;
    assert_true(db_create(f->db, &xapi_class_network, NULL, network_named("target"), &f->ref,
                          NULL));
    points += fault_walk("db.update", FAULT_ALLOC | FAULT_IO, update_step, update_check, f);
    assert_disk_matches_memory(f);
    points += fault_walk("db.destroy", FAULT_ALLOC | FAULT_IO, destroy_step, destroy_check, f);
    assert_disk_matches_memory(f);
    assert_true(points >= 6);
    /* the store still takes writes after all that */
    assert_true(db_create(f->db, &xapi_class_network, NULL, network_named("after"), NULL, NULL));
}

static void
test_open_under_faults(void **state)
{
    struct fx *f = *state;
    assert_true(db_create(f->db, &xapi_class_network, NULL, network_named("kept"), NULL, NULL));
    size_t n = db_count(f->db, &xapi_class_network);
    db_close(f->db);
    f->db = NULL;
    unsigned long k;
    for (k = 1;; k++) {
        fault_arm(FAULT_ALLOC | FAULT_IO, k);
        struct db *db = NULL;
        char why[256] = "";
        int rc = db_open(f->path, &db, why, sizeof(why));
        bool fired = fault_fired();
        fault_disarm();
        if (!fired) {
            assert_int_equal(rc, 0);
            f->db = db;
            break;
        }
        if (rc == 0)
            db_close(db); /* absorbed */
        else
            assert_true(rc < 0);
    }
    printf("# db.open: %lu failure points, each a clean error\n", k - 1);
    assert_int_equal(db_count(f->db, &xapi_class_network), n);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/vessel-fault-db-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(f->path);
    close(fd);
    unlink(f->path);
    f->db = open_db(f->path);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    db_close(f->db);
    xerr_free(f->err);
    if (f->next_rec)
        xrecord_free(&xapi_class_network, f->next_rec);
    free(f->ref);
    char p[300];
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    free(f);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_under_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_under_faults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
