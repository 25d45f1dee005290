/* tests/fuzz/xva_fuzz.c - fuzz target for the XVA reader (decompression, tar,
 * chunk order, checksums) and ova.xml's header parser.
 *
 * Each input is read twice as one archive: whole, and in pieces of 1 to 97
 * bytes chosen by its first byte, with checksums checked. Both readings must
 * agree (same result, same chunks handed out): a reader whose outcome depends
 * on how the bytes arrive would accept over one network what it refuses over
 * another. Every ova.xml is parsed by xva_header_parse. A disagreement aborts.
 *
 * Debugging a failure: run tests/fuzz/xva_replay on the crashing file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/xva.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
    size_t n_chunks, bytes;
    uint64_t sum;
    size_t n_objects;
};

static int
on_ova(void *opaque, const char *xml, size_t len)
{
    struct tally *t = opaque;
    struct xva_header h;
    char why[128];
    if (xva_header_parse(xml, len, &h, why, sizeof(why)) == 0) {
        t->n_objects = h.n_objects;
        xva_header_release(&h);
    }
    return 0;
}

static int
on_chunk(void *opaque, const char *prefix, uint64_t no, const char *data, size_t len)
{
    struct tally *t = opaque;
    if (len == 0 || len > XVA_CHUNK_SIZE || !prefix[0]) {
        fprintf(stderr, "xva_fuzz: chunk of %zu bytes handed out\n", len);
        abort();
    }
    t->n_chunks++;
    t->bytes += len;
    t->sum += no + (unsigned char)data[len - 1];
    return 0;
}

static const struct xva_reader_ops ops = {on_ova, on_chunk};

static int
read_in_steps(const uint8_t *data, size_t size, size_t step, struct tally *t)
{
    struct xva_reader *r = xva_reader_new(&ops, t, true);
    if (!r)
        return -ENOMEM;
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += step)
        rc = xva_reader_feed(r, (const char *)data + off, size - off < step ? size - off : step);
    if (rc == 0)
        rc = xva_reader_finish(r, size & 1);
    xva_reader_free(r);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tally a = {0}, b = {0};
    int ra = read_in_steps(data, size, size ? size : 1, &a);
    int rb = read_in_steps(data, size, size ? 1 + data[0] % 97 : 1, &b);
    if (ra != rb || a.n_chunks != b.n_chunks || a.bytes != b.bytes || a.sum != b.sum ||
        a.n_objects != b.n_objects) {
        fprintf(stderr, "xva_fuzz: whole read %d (%zu chunks), piecewise %d (%zu chunks)\n", ra,
                a.n_chunks, rb, b.n_chunks);
        abort();
    }
    return 0;
}
