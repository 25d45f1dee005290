/* tests/fuzz/vhd_fuzz.c - fuzz the VHD parser, reader, checker and writer with one file.
 *
 * The input bytes become a memfd, opened as a single image: read-only (with the footer
 * copy at 0 allowed) then every extent is walked and read (capped so a huge virtual size
 * stays fast), `check` runs on /proc/self/fd/N, and a read-write open writes a sector at
 * both ends and flushes. Anything may fail with -errno; nothing may crash, leak or touch
 * memory it does not own (run under ASan/UBSan). Corpus: tests/fuzz/corpus/vhd/, made by
 * tests/storage/make_hostile.py (one mutant per hostile row of spec section 5).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhd/vhd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
walk(struct vhd_chain *c)
{
    static uint8_t buf[256 * 1024];
    uint64_t size = vhd_chain_size(c), off = 0;
    unsigned steps = 0;
    while (off < size && steps++ < 64) {
        uint64_t run;
        bool alloc;
        if (vhd_chain_block_status(c, off, size - off, &run, &alloc) < 0 || run == 0)
            break;
        uint64_t n = run < sizeof(buf) ? run : sizeof(buf);
        (void)vhd_chain_read(c, buf, off, (size_t)n);
        off += run;
    }
    if (size >= 4096)
        (void)vhd_chain_read(c, buf, size - 4096, 4096);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("vhd-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    struct vhd_chain *c;
    if (vhd_chain_open_fd(fd, VHD_OPEN_RDONLY | VHD_OPEN_HEAD_FOOTER, &c) == 0) {
        struct vhd_info info;
        vhd_chain_info(c, 0, &info);
        walk(c);
        vhd_chain_close(c);
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct vhd_check_report report;
    (void)vhd_check(path, &report);
    if (vhd_chain_open_fd(fd, VHD_OPEN_RDWR, &c) == 0) {
        uint8_t sec[4096];
        memset(sec, 0x5A, sizeof(sec));
        uint64_t vsize = vhd_chain_size(c);
        (void)vhd_chain_write(c, sec, 0, vsize < sizeof(sec) ? (size_t)vsize : sizeof(sec), false);
        if (vsize > 8192)
            (void)vhd_chain_write(c, sec, vsize - 1000, 1000, true);
        (void)vhd_chain_zero(c, 0, vsize < 65536 ? vsize : 65536, false);
        walk(c);
        vhd_chain_close(c);
    }
    close(fd);
    return 0;
}
