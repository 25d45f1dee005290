/* common/cleanup.h - scope-bound cleanup, one set for every folder.
 *
 * A variable declared with one of these is released when it goes out of
 * scope, so each early `return` of a chain of checks is right without a
 * `goto out` (the habit qemu's docs/devel/style.rst "Automatic memory
 * deallocation" and systemd's _cleanup_ describe). Ownership leaves a scope only
 * through steal_ptr()/steal_fd(); such variables start NULL / -1. Undoing a side
 * effect (killing a process just spawned) is not cleanup: write it as a visible
 * rollback step.
 *
 *   _cleanup_free_ char *path = NULL;        free(path) at scope exit
 *   _cleanup_close_ int fd = -1;             close(fd) when >= 0
 *   _cleanup_fclose_ FILE *f = NULL;         fclose(f) when non-NULL
 *   _cleanup_(xapi_vm_record_freep) struct xapi_vm_record *rec = NULL;
 *
 * A type's own release function for use with _cleanup_() takes a pointer to the
 * variable (`void thing_freep(struct thing **p)`), as the generated
 * xapi_<class>_record_freep do.
 */
#ifndef VESSEL_COMMON_CLEANUP_H
#define VESSEL_COMMON_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void
cleanup_freep(void *p)
{
    free(*(void **)p);
}

/* close() keeps errno: a cleanup at an error return must not clobber the
 * errno the caller is about to read. */
static inline void
cleanup_closep(const int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void
cleanup_fclosep(FILE **f)
{
    if (*f) {
        int saved = errno;
        fclose(*f);
        errno = saved;
    }
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(cleanup_freep)
#define _cleanup_close_ _cleanup_(cleanup_closep)
#define _cleanup_fclose_ _cleanup_(cleanup_fclosep)

/* Takes the value out of *@pp, leaving NULL, so the cleanup frees nothing. */
static inline void *
cleanup_steal_ptr(void *pp)
{
    void **p = pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_ptr(pp) cleanup_steal_ptr(pp)

static inline int
steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
