/* tools/vhd/sandbox.h - the least-privilege jail of `vhd serve` (see sandbox.c). */
#ifndef VESSEL_TOOLS_VHD_SANDBOX_H
#define VESSEL_TOOLS_VHD_SANDBOX_H

enum {
    SANDBOX_NO_NEW_PRIVS = 1 << 0,
    SANDBOX_LANDLOCK = 1 << 1,
    SANDBOX_SECCOMP = 1 << 2,
};

/* Enter the jail for the rest of the process's life. *@layers receives what was applied.
 * Returns 0, or -errno if a layer the kernel offers could not be applied. */
int sandbox_enter(unsigned *layers);

#endif /* VESSEL_TOOLS_VHD_SANDBOX_H */
