/* api/vdi_delta.h - the blocks in which two VDIs of one file SR differ, and a differencing
 * VHD that carries them (GET /export_raw_vdi?format=vhd&base=).
 *
 * Both answer from the VHD chains, as VDI.list_changed_blocks does (api/vdi_cbt.c): the
 * sectors that may differ between two VDIs are those held by the nodes of either chain
 * that the other chain lacks (nodes told apart by their footer uuids). Any thread; the
 * chains must not be coalesced meanwhile in a way that loses a node's identity (the
 * collector only folds a base with a single child, which neither VDI's divergent nodes
 * are).
 */
#ifndef VESSEL_API_VDI_DELTA_H
#define VESSEL_API_VDI_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhd/vhd.h"

/* The @block-byte blocks of VDI file @to_path (bit i for the block at i * @block, most
 * significant bit first in its byte, as xapi's CBT bitmaps) that may differ from VDI file
 * @from_path; both files in directory @dir, their parents found there by name. *@bits is
 * new (free()), *@n_bits the number of blocks of @to_path's virtual size. *@related (when
 * not NULL): whether the chains share a node (else every block either holds is marked).
 * 0 or -errno (as vhd_chain_open; -EINVAL for a parent name that is not a plain file
 * name). */
int vdi_delta_blocks(const char *dir, const char *from_path, const char *to_path,
                     uint32_t block, uint8_t **bits, size_t *n_bits, bool *related);

/* Creates @out_path (in @base_path's directory), a differencing VHD whose parent is
 * @base_path, holding the content of chain @to at every block marked in @bits (zeros
 * included: a block the base holds and @to does not must be cleared by the delta), and
 * nothing else. Its virtual size is @to's (the base must not be larger: -EINVAL).
 * @progress as the VHD library's. 0 or -errno; on failure @out_path is removed. */
int vdi_delta_write(struct vhd_chain *to, const char *base_path, const char *out_path,
                    const uint8_t *bits, uint32_t block, vhd_progress_fn *progress,
                    void *opaque);

#endif
