/* tests/unit/vhd/test_append_race.c - opening an image while its one writer appends blocks.
 *
 * Two writers extend an image while others open it read-only: `vhd serve` allocating
 * blocks in the leaf it serves, and the collector folding a child into its base
 * (vhd_coalesce(), batched: the parent's trailing footer is cut at the first new block and
 * put back at the end of the batch). Meanwhile vesseld opens chains through those files: a
 * live snapshot's vhd_snapshot() (footers and links of the whole chain), a VDI export or a
 * disk server's reload (the whole chain, BATs validated). Such an open once failed a live
 * snapshot with "trailing footer: bad cookie or checksum"
 * (tests/integration/test_snapshot_flush.py). Each case here keeps one writer appending in
 * a thread while the test opens the image in a loop: every open must succeed and read what
 * was there before the writer started, and enough opens must overlap the writer for the
 * case to mean something (it failed in almost every round before the fix).
 * A third case places one allocation exactly between the reader's fstat() and its read of
 * the BAT (the test wraps fstat64 at link time, meson.build): a window too narrow for the
 * threads to hit in seconds, but a reader preempted there on a busy host is in it. A
 * fourth leaves a leaf cut after a block whose last sector a guest made look like a footer.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/vhd/fixture.h"

#define MiB (1024u * 1024)
#define BLOCK (2 * MiB)
#define DISK (64 * MiB)
#define CHILD_BLOCKS 24u         /* blocks the fold copies into the base */
#define LEAF_BLOCKS 24u          /* blocks the served leaf allocates */
#define ROUNDS_MAX 100          /* rounds at most, until OVERLAPS_MIN (one is usual) */
#define OVERLAPS_MIN 20          /* opens that must have run while the writer appended (each
                                  * one failed before the fix) */

struct writer {
    pthread_t thread;
    const char *file;
    int rc;
    atomic_bool done;
};

enum reader { SNAPSHOT, RELOAD, EXPORT, READERS };
static const char *const reader_name[READERS] = {"snapshot", "reload", "export"};

struct tally {
    unsigned rounds, opens, overlaps, failed[READERS], wrong;
    char first_error[200];
};

/* Count reader @r's result @rc in @t, keeping the first failure's reason. */
static int
note(struct tally *t, enum reader r, int rc)
{
    if (rc < 0 && t->failed[SNAPSHOT] + t->failed[RELOAD] + t->failed[EXPORT] == 0)
        snprintf(t->first_error, sizeof(t->first_error), "%s: %s (%s)", reader_name[r],
                 vhd_last_error(), strerror(-rc));
    t->failed[r] += rc < 0;
    return rc;
}

/* The sector the test checks in block @b: its first, with a pattern of @seed. */
static void
expect_sector(uint8_t *buf, unsigned b, unsigned seed)
{
    fill(buf, 512, seed + b);
}

/* The case's files, named once (path() keeps only four names). */
struct files {
    char base[128], child[128], leaf[128], work[128];
};

static void
files_fresh(struct files *f)
{
    snprintf(f->base, sizeof(f->base), "%s", path("base.vhd"));
    snprintf(f->child, sizeof(f->child), "%s", path("child.vhd"));
    snprintf(f->leaf, sizeof(f->leaf), "%s", path("leaf.vhd"));
    snprintf(f->work, sizeof(f->work), "%s", path("work.vhd"));
    unlink(f->base);
    unlink(f->child);
    unlink(f->leaf);
    unlink(f->work);
}

/* Open the chain of @f's leaf (through its child when @with_child) as vesseld's readers
 * do, check what it reads; count it in @t. */
static void
open_once(const struct files *f, bool with_child, unsigned blocks, unsigned seed,
          const struct writer *w, struct tally *t)
{
    bool during = !w->done;
    struct vhd_chain *c = NULL;
    /* a live snapshot: footers and links of the whole chain */
    if (note(t, SNAPSHOT, vhd_snapshot(f->leaf, f->work)) == 0) {
        /* the disk server's reload onto it, from descriptors (tools/vhd/serve.c) */
        const char *files[] = {f->work, f->leaf, with_child ? f->child : f->base, f->base};
        unsigned n = with_child ? 4 : 3;
        int fds[4];
        for (unsigned i = 0; i < n; i++)
            assert_true((fds[i] = open(files[i], i == 0 ? O_RDWR : O_RDONLY)) >= 0);
        if (note(t, RELOAD, vhd_chain_open_fds(fds, n, VHD_OPEN_RDWR, &c)) == 0)
            note(t, RELOAD, vhd_chain_close(c));
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        unlink(f->work);
    }
    /* an export: the whole chain by name, BATs validated, read */
    if (note(t, EXPORT, vhd_chain_open(f->leaf, VHD_OPEN_RDONLY, &c)) == 0) {
        uint8_t got[512], want[512];
        int rc = 0;
        for (unsigned b = 0; b < blocks && rc == 0; b++) {
            rc = note(t, EXPORT, vhd_chain_read(c, got, (uint64_t)b * BLOCK, sizeof(got)));
            expect_sector(want, b, seed);
            if (rc == 0 && memcmp(got, want, sizeof(got)) != 0)
                t->wrong++;
        }
        vhd_chain_close(c);
    }
    t->opens++;
    if (during && !w->done)
        t->overlaps++;
}

static void
write_blocks(const char *file, unsigned first, unsigned n, unsigned seed)
{
    struct vhd_chain *c;
    static uint8_t buf[BLOCK];
    assert_int_equal(vhd_chain_open(file, VHD_OPEN_RDWR, &c), 0);
    for (unsigned b = first; b < first + n; b++) {
        memset(buf, 0, sizeof(buf));
        expect_sector(buf, b, seed);
        assert_int_equal(vhd_chain_write(c, buf, (uint64_t)b * BLOCK, sizeof(buf), false), 0);
    }
    assert_int_equal(vhd_chain_close(c), 0);
}

static void *
fold(void *opaque)
{
    struct writer *w = opaque;
    w->rc = vhd_coalesce(w->file, NULL, NULL);
    atomic_store(&w->done, true);
    return NULL;
}

static void
report(const char *what, const struct tally *t)
{
    print_message("# %s: %u rounds, %u opens, %u while the writer appended; failed: %u snapshot, %u reload, "
                  "%u export; %u read wrong%s%s\n",
                  what, t->rounds, t->opens, t->overlaps, t->failed[SNAPSHOT], t->failed[RELOAD],
                  t->failed[EXPORT], t->wrong, t->first_error[0] ? "; first: " : "",
                  t->first_error);
}

static void
assert_clean(const struct tally *t)
{
    for (unsigned r = 0; r < READERS; r++)
        assert_int_equal(t->failed[r], 0);
    assert_int_equal(t->wrong, 0);
    assert_true(t->overlaps >= OVERLAPS_MIN);
}

/* A disk server's writes (serve_writes): blocks @first .. @first + @n - 1. */
struct serve {
    struct writer w;
    unsigned first, n;
};

/* One race, repeated until OVERLAPS_MIN opens ran while its writer appended: @begin
 * makes round @round's files in @f and starts the writer (returned); vesseld's readers
 * open the chain until it is done; then the file @sound names checks sound. */
struct race {
    const char *what;
    bool with_child;  /* the readers' chain: leaf -> child -> base, or leaf -> base */
    unsigned blocks;  /* the blocks they check */
    struct writer *(*begin)(const struct files *f, unsigned round, void *space);
    const char *(*sound)(const struct files *f);
};

static void
run_race(const struct race *r)
{
    struct tally t = {0};
    for (unsigned round = 0; round < ROUNDS_MAX && t.overlaps < OVERLAPS_MIN;
         round++, t.rounds++) {
        struct files f;
        files_fresh(&f);
        union {
            struct writer w;
            struct serve s;
        } space;
        struct writer *w = r->begin(&f, round, &space);
        while (!w->done)
            open_once(&f, r->with_child, r->blocks, round, w, &t);
        pthread_join(w->thread, NULL);
        assert_int_equal(w->rc, 0);
        assert_sound(r->sound(&f));
    }
    report(r->what, &t);
    assert_clean(&t);
}

static struct writer *
begin_fold(const struct files *f, unsigned round, void *space)
{
    assert_int_equal(vhd_create(f->base, DISK, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_snapshot(f->base, f->child), 0);
    write_blocks(f->child, 0, CHILD_BLOCKS, round);
    assert_int_equal(vhd_snapshot(f->child, f->leaf), 0);
    struct writer *w = space;
    *w = (struct writer){.file = f->child};
    assert_int_equal(pthread_create(&w->thread, NULL, fold, w), 0);
    return w;
}

static const char *
base_of(const struct files *f)
{
    return f->base;
}

/* A live snapshot's chain leaf -> child -> base while the collector folds the child
 * into the base (api/storage_gc.c step_interior: no pause, no lock, guests run). */
static void
test_chain_opens_during_fold(void **state)
{
    (void)state;
    run_race(&(struct race){"fold", true, CHILD_BLOCKS, begin_fold, base_of});
}

static void *
serve_writes(void *opaque)
{
    struct serve *s = opaque;
    struct vhd_chain *c;
    static uint8_t buf[4096];
    s->w.rc = vhd_chain_open(s->w.file, VHD_OPEN_RDWR, &c);
    for (unsigned b = s->first; s->w.rc == 0 && b < s->first + s->n; b++) {
        fill(buf, sizeof(buf), 1000 + b);
        /* a guest's 4 KiB write into a fresh block: one allocation each, as `vhd serve`
         * does it (whole request under its chain lock, answered once written) */
        s->w.rc = vhd_chain_write(c, buf, (uint64_t)b * BLOCK + 4096, sizeof(buf), false);
    }
    if (s->w.rc == 0)
        s->w.rc = vhd_chain_close(c);
    else
        vhd_chain_close(c);
    atomic_store(&s->w.done, true);
    return NULL;
}

static struct writer *
begin_serve(const struct files *f, unsigned round, void *space)
{
    assert_int_equal(vhd_create(f->base, DISK, VHD_TYPE_DYNAMIC), 0);
    write_blocks(f->base, 0, 4, round);
    assert_int_equal(vhd_snapshot(f->base, f->leaf), 0);
    struct serve *s = space;
    *s = (struct serve){.w = {.file = f->leaf}, .first = 4, .n = LEAF_BLOCKS};
    assert_int_equal(pthread_create(&s->w.thread, NULL, serve_writes, s), 0);
    return &s->w;
}

static const char *
leaf_of(const struct files *f)
{
    return f->leaf;
}

/* A served leaf opened read-only (a VDI exported while its guest writes, a changed
 * blocks list) while its disk server allocates blocks. */
static void
test_leaf_opens_while_served(void **state)
{
    (void)state;
    run_race(&(struct race){"served leaf", false, 4, begin_serve, leaf_of});
}

/* ld --wrap=fstat64: the library's fstat() of a file opened read-only can run a writer's
 * allocation once, right after the size is taken (glibc names fstat fstat64 in a build
 * with 64-bit file offsets, as this one). */
int __real_fstat64(int fd, struct stat *st);
int __wrap_fstat64(int fd, struct stat *st);

static struct vhd_chain *hook_writer;   /* armed: the chain whose leaf the hook extends */
static uint64_t hook_block;
static bool hook_fired;

int
__wrap_fstat64(int fd, struct stat *st)
{
    int rc = __real_fstat64(fd, st);
    struct vhd_chain *w = hook_writer;
    if (rc == 0 && w) {
        hook_writer = NULL;
        uint8_t buf[4096];
        fill(buf, sizeof(buf), 2000);
        hook_fired = vhd_chain_write(w, buf, hook_block * BLOCK, sizeof(buf), false) == 0;
    }
    return rc;
}

/* A reader takes the leaf's size, then `vhd serve` allocates a block (BAT entry and
 * footer written after the file grew), then the reader reads the footer where the file
 * ended and the BAT, which names a block past that end. */
static void
test_block_appended_after_size_taken(void **state)
{
    (void)state;
    struct files f;
    files_fresh(&f);
    assert_int_equal(vhd_create(f.base, DISK, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_snapshot(f.base, f.leaf), 0);
    write_blocks(f.leaf, 0, 1, 0);
    struct vhd_chain *w, *r;
    assert_int_equal(vhd_chain_open(f.leaf, VHD_OPEN_RDWR, &w), 0);
    hook_block = 5;
    hook_writer = w;
    int rc = vhd_chain_open(f.leaf, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS, &r);
    hook_writer = NULL;
    assert_true(hook_fired);
    if (rc < 0)
        print_error("open: %s (%s)\n", vhd_last_error(), strerror(-rc));
    assert_int_equal(rc, 0);
    uint8_t got[4096], want[4096];
    fill(want, sizeof(want), 2000);
    assert_int_equal(vhd_chain_read(r, got, hook_block * BLOCK, sizeof(got)), 0);
    assert_memory_equal(got, want, sizeof(got));    /* the block it found is whole */
    expect_sector(want, 0, 0);
    assert_int_equal(vhd_chain_read(r, got, 0, 512), 0);
    assert_memory_equal(got, want, 512);
    vhd_chain_close(r);
    assert_int_equal(vhd_chain_close(w), 0);
    assert_sound(f.leaf);
}

/* The footer copy at 0 of @file with another UUID (checksum recomputed, spec 1.2): what a
 * guest that knows the format could write into its disk. */
static void
forged_footer(const char *file, uint8_t out[512])
{
    int fd = open(file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, out, 512, 0), 512);
    close(fd);
    for (unsigned i = 68; i < 84; i++)  /* the UUID */
        out[i] ^= 0x5a;
    memset(out + 64, 0, 4);             /* the checksum: one's complement of the byte sum */
    uint32_t sum = 0;
    for (unsigned i = 0; i < 512; i++)
        sum += out[i];
    sum = ~sum;
    for (unsigned i = 0; i < 4; i++)
        out[64 + i] = (uint8_t)(sum >> (24 - 8 * i));
}

/* Between the cut of the trailing footer and the extension over a new block (write.c
 * (1)), a served leaf ends with the last sector of its last block: guest data. A guest
 * that wrote a footer there must not have a reader take it for the leaf's. */
static void
test_guest_footer_at_the_cut(void **state)
{
    (void)state;
    struct files f;
    files_fresh(&f);
    assert_int_equal(vhd_create(f.base, DISK, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_snapshot(f.base, f.leaf), 0);
    struct vhd_chain *c;
    struct vhd_info real, seen;
    assert_int_equal(vhd_chain_open(f.leaf, VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_info(c, 0, &real), 0);
    vhd_chain_close(c);
    uint8_t sector[512];
    forged_footer(f.leaf, sector);
    assert_int_equal(vhd_chain_open(f.leaf, VHD_OPEN_RDWR, &c), 0);
    assert_int_equal(vhd_chain_write(c, sector, BLOCK - 512, 512, false), 0);
    assert_int_equal(vhd_chain_close(c), 0);
    struct stat st;
    assert_int_equal(stat(f.leaf, &st), 0);
    assert_int_equal(truncate(f.leaf, st.st_size - 512), 0);  /* the cut, as write.c (1) */
    assert_int_equal(vhd_chain_open(f.leaf, VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_info(c, 0, &seen), 0);
    assert_memory_equal(seen.uuid, real.uuid, sizeof(real.uuid));
    assert_true(seen.head_footer_used);
    uint8_t got[512];
    assert_int_equal(vhd_chain_read(c, got, BLOCK - 512, sizeof(got)), 0);
    assert_memory_equal(got, sector, sizeof(got));  /* guest data, read as such */
    vhd_chain_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_opens_during_fold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_opens_while_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_appended_after_size_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_footer_at_the_cut, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
