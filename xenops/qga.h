/* xenops/qga.h - the QEMU guest agent's wire (qemu-ga on the virtio-serial
 * port org.qemu.guest_agent.0, reached through a chardev socket).
 *
 * The agent answers one command at a time, in order, with one JSON object per
 * line, and nothing tells the host whether a command written while the guest
 * had the port closed will run later. So every exchange begins with
 * guest-sync-delimited and a fresh id: only that command may ever sit stale
 * in the channel (harmless), and everything before its reply (marked by a
 * 0xFF byte) is dropped. Facts: QEMU qga/qapi-schema.json (guest-sync-
 * delimited, guest-shutdown, guest-info, guest-get-osinfo, guest-network-
 * get-interfaces, guest-get-fsinfo), docs/interop/qemu-ga.rst.
 * Internal to xenops/. Not thread-safe per connection: the caller serialises.
 */
#ifndef VESSEL_XENOPS_QGA_H
#define VESSEL_XENOPS_QGA_H

#include <jansson.h>
#include <stdint.h>

#include "xenops/qmp.h"
#include "xenops/xenops.h"

/* Syncs with the agent on @fd: 0, -ETIMEDOUT when it did not answer within
 * @timeout_ms (no agent listens), -EPIPE / -errno when the channel broke. */
int qga_sync(int fd, struct qmp_reader *r, uint64_t id, unsigned timeout_ms);
/* Runs @cmd (with @args, consumed, may be NULL) after a sync and returns its
 * "return" value in *ret (a new reference). -EIO when the agent answers with
 * an error (e.g. a command the guest's agent does not have). */
int qga_call(int fd, struct qmp_reader *r, uint64_t id, const char *cmd, json_t *args,
             unsigned timeout_ms, json_t **ret);
/* guest-shutdown with @mode ("powerdown", "reboot"), after a sync: the agent
 * does not answer a shutdown that succeeds, so 0 means it was delivered to a
 * listening agent. */
int qga_shutdown(int fd, struct qmp_reader *r, uint64_t id, const char *mode,
                 unsigned timeout_ms);
/* Everything the guest tells about itself (xenops_guest_info), from
 * guest-info, guest-get-osinfo, guest-network-get-interfaces and
 * guest-get-fsinfo; a command the agent lacks leaves its part empty. */
int qga_guest_info(int fd, struct qmp_reader *r, uint64_t *id, unsigned timeout_ms,
                   struct xenops_guest_info **out);
/* The same from the commands' replies (NULL where one failed): pure, for tests. */
struct xenops_guest_info *qga_info_from_json(const json_t *info, const json_t *osinfo,
                                             const json_t *ifaces, const json_t *fsinfo);

#endif
