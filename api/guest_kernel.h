/* api/guest_kernel.h - which host files may boot a guest (PV_kernel, PV_ramdisk).
 *
 * Called from api/domains.c on every path that builds a domain (start, resume,
 * reboot into a new domain), before a disk server, tap or device model exists.
 * Any thread. */
#ifndef VESSEL_API_GUEST_KERNEL_H
#define VESSEL_API_GUEST_KERNEL_H

#include <stdbool.h>

#include "rpc/ctx.h"

/* Resolves @path (the VM's PV_kernel or PV_ramdisk; @field is "kernel" or
 * "ramdisk") and accepts it only when the resolved file is a regular file under
 * one of srv->guest_kernel_dirs and, when device models run under their own
 * uids, readable by them. *@resolved: the resolved path (malloc'd, the caller
 * frees); the domain is built from it, never from @path. Errors: INVALID_VALUE
 * [field, file, reason] as xapi raises it; INTERNAL_ERROR when out of memory. */
bool guest_kernel_resolve(const struct server *srv, const char *field, const char *path,
                          char **resolved, struct xerr **errp);

/* Sets srv->guest_kernel_dirs from @dirs (each made absolute and resolved; a
 * missing one is created 0755); with none given, DATA/guest-kernels. -errno
 * and the failing directory in *@bad. */
int guest_kernel_dirs_init(struct server *srv, const char *const *dirs, size_t n,
                           const char **bad);
void guest_kernel_dirs_free(struct server *srv);

#endif
