/* rpc/ctx.h - what every call carries: the server's shared state and the
 * caller's identity.
 *
 * rpc/dispatch.c builds a call_ctx per call after checking the session and the
 * role; handlers (generated wrappers, api/) read it. The server struct is
 * created by daemon/main.c and lives for the process; its fields are set
 * before the listeners start and read-only afterwards (each subsystem it
 * points to locks for itself).
 */
#ifndef VESSEL_RPC_CTX_H
#define VESSEL_RPC_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "model/xmsg.h"
#include "http/http.h"

struct db;
struct workpool;
struct events;
struct auth;
struct tasks;
struct domains;
struct audit;
struct rrd_store;
struct peers;

struct server {
    struct db *db;
    const char *data_dir;
    const char *store_spec; /* db_open's path: a SQLite file or "etcd:ENDPOINTS;PREFIX" */
    char *pool_ref;      /* the pool (one per store) */
    char *host_ref;      /* this host */
    struct workpool *workers; /* Async and long calls, VDI transfers (elastic) */
    struct events *events;    /* event.from / event.next waiters */
    struct auth *auth;        /* local accounts, login throttling */
    struct tasks *tasks;      /* cancellation flags of running tasks */
    struct domains *domains;  /* the guest backend (api/domains.h) */
    struct audit *audit;      /* the audit log (rpc/audit.h), or NULL */
    struct rrd_store *rrd;    /* metrics (api/rrd_store.h), or NULL before they start */
    struct peers *peers;      /* calls to the pool's other hosts (rpc/peers.h) */
    int session_idle_s;       /* idle sessions expire after this */
    int task_keep_s;          /* finished tasks are destroyed after this */
    int clean_shutdown_timeout_s; /* clean_shutdown/clean_reboot wait this long */
    volatile bool stopping;
    /* Guests boot kernels and ramdisks only from these (resolved) directories
     * (api/guest_kernel.c). */
    char **guest_kernel_dirs;
    size_t n_guest_kernel_dirs;
    /* Helper processes' ids (api/domains.c domains_qemu_uid): each device
     * model runs as qemu_uid_base + domid, each disk server as vhd_uid_base +
     * domid (gid the same number); 0: as vesseld itself. */
    unsigned qemu_uid_base, vhd_uid_base;
    const char *cgroup_root; /* cgroup v2 mount for the per-VM groups */
    const char *tls_cert_path; /* the HTTPS listener's certificate (PEM) */
    const char *tls_key_path;  /* and its private key */
    /* host.restart_agent: after a clean stop, main() executes vesseld again */
    volatile bool restart_requested;
    /* pool.join/eject: the restart drops --store and the etcd options, so
     * that DATA/pool.conf (or its absence) says where the objects are */
    volatile bool restart_store_from_data_dir;
};

struct call_ctx {
    struct server *srv;
    struct db *db;
    const struct xmsg *msg;
    const char *session;  /* the caller's session ref ("" for session-less calls) */
    const char *user;     /* account name behind the session */
    enum xrole role;      /* the session's effective role */
    bool superuser;       /* local root: every permission */
    const char *task;     /* the task this call reports into, or NULL when sync */
    const char *peer;     /* client address ("unix" on the local socket) */
    enum http_transport transport;
    const char *originator;
    bool pool_session;    /* another host's slave session: the call is never forwarded */
};

/* Checks @ctx->role against what @needed requires; RBAC_PERMISSION_DENIED
 * [permission, text] names the wire permission ("vm.start"). */
bool ctx_require_role(const struct call_ctx *ctx, enum xrole needed, const char *permission,
                      struct xerr **errp);
/* True when the task this call runs in was asked to cancel (task.cancel). */
bool ctx_cancelled(const struct call_ctx *ctx);
/* Reports progress 0..1 into the call's task (no-op for sync calls). */
void ctx_progress(const struct call_ctx *ctx, double progress);

#endif
