/* tests/fuzz/cbtlog_fuzz.c - fuzz the changed block logs' reader
 * (storage/sr_file_cbt.c).
 *
 * A `<uuid>.cbtlog` of a directory SR is read back by list_changed_blocks,
 * snapshots and the start-up check; a torn or damaged file must be refused
 * (-EINVAL), never read out of bounds, and whatever reads as a log must
 * read the same once written again (a fixed point).
 * Corpus: tests/fuzz/corpus/cbtlog/ (replayed under gcc by replay_main.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "storage/sr_file_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = sr_file_cbt_parse_roundtrip((const char *)data, size);
    if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
        abort(); /* -EPROTO: what was written does not read back the same */
    return 0;
}
