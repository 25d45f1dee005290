/* tests/fuzz/rrd_fuzz.c - fuzz common/rrd.c's loader and what a loaded rrd does.
 *
 * The files in DATA/rrd/ are read back at start; a torn or corrupted file must be
 * refused (-EINVAL), never read out of bounds. Whatever loads is then
 * updated, exported (XML and JSON rrd_updates, the XML dump) and saved
 * again, and the saved bytes must load to the same bytes (a fixed point).
 * Corpus: tests/fuzz/corpus/rrd/ (replayed under gcc by replay_main.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/rrd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond))                                                                             \
            abort();                                                                             \
    } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rrd *r = NULL;
    int rc = rrd_load((const char *)data, size, &r);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc < 0)
        return 0;
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, x = STRBUF_INIT;
    FUZZ_CHECK(rrd_save(r, &a) == 0);
    struct rrd *again = NULL;
    FUZZ_CHECK(rrd_load(a.buf, a.len, &again) == 0);
    FUZZ_CHECK(rrd_save(again, &b) == 0);
    FUZZ_CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
    struct rrd_source src = {"host:x:", r};
    (void)rrd_updates_export(&src, 1, -600, 5, -1, false, &x);
    (void)rrd_updates_export(&src, 1, -86400, 3600, 0, true, &x);
    double v[4] = {1, 2, 3, 4};
    (void)rrd_update(r, rrd_last_updated(r) + 5, v, 4);
    (void)rrd_dump_xml(r, &x);
    rrd_free(again);
    rrd_free(r);
    strbuf_release(&a);
    strbuf_release(&b);
    strbuf_release(&x);
    return 0;
}
