/* api/helper_ids.c - the uids a domain's helper processes run under.
 *
 * Pure arithmetic on the server's configured bases, used by api/domains.c
 * (device models), api/disk_servers.c (disk servers) and api/vif_tap.c (the
 * taps the device model opens), so none of them needs another.
 */
#include "api/helper_ids.h"

/* Each domain's helpers run under ids no other domain's share, so one
 * guest's device model or disk server that is taken over reaches nothing of
 * another's (ptrace, /proc/PID/mem, sockets): base + domid, as xapi's
 * qemu-dm depriv does. The range wraps after DOMAINS_UID_RANGE domains of one
 * vesseld's life; domids of running domains are never that far apart. */
#define DOMAINS_UID_RANGE 65536

unsigned
domains_qemu_uid(const struct server *srv, int64_t domid)
{
    return srv->qemu_uid_base ? srv->qemu_uid_base + (unsigned)(domid % DOMAINS_UID_RANGE) : 0;
}

unsigned
domains_vhd_uid(const struct server *srv, int64_t domid)
{
    return srv->vhd_uid_base ? srv->vhd_uid_base + (unsigned)(domid % DOMAINS_UID_RANGE) : 0;
}
