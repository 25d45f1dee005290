/* api/host_admin.c - host.* administration messages as xapi answers them on
 * a standalone host (ocaml/xapi/xapi_host.ml, message_forwarding.ml): no
 * pool peers, no HA, no WLB, no licensing server (the free edition), no
 * integrated GPU, no external authentication service.
 *
 * Most settings are host fields a client reads back (multipathing, iSCSI
 * IQN, NUMA policy, power-on mode, display); where xapi also reconfigures a
 * daemon of XenServer's dom0 that vesseld does not have (multipathd, iscsid,
 * the X server on the console, stunnel) the field is the whole effect and the
 * file says so at the message. Refusals are xapi's own errors for the same
 * situation: a host that is not disabled cannot be rebooted
 * (HOST_NOT_DISABLED), HA that is off cannot be disabled (HA_NOT_ENABLED),
 * no WLB is configured (WLB_NOT_INITIALIZED), no update repository is
 * enabled (NO_REPOSITORY_ENABLED).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <unistd.h>

#include "api/placement.h"
#include "common/fileio.h"
#include "common/log.h"
#include "http/tls_cert.h"
#include "api/host_admin.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

/*==== Helpers ====*/

static bool
host_get(struct call_ctx *ctx, const char *host, struct xapi_host_record **out,
         struct xerr **errp)
{
    return db_get(ctx->db, &xapi_class_host, host, (void **)out, errp);
}

static bool
host_exists(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return db_exists(ctx->db, &xapi_class_host, host) ||
           xerr_handle_invalid(errp, "host", host);
}

typedef bool host_edit_fn(struct xapi_host_record *h, const void *arg);

struct host_edit {
    host_edit_fn *fn;
    const void *arg;
};

static bool
host_edit_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct host_edit *e = opaque;
    return e->fn(rec, e->arg) || xerr_nomem(errp);
}

/* Runs @fn on the live record of @host in one write (false from @fn: out of memory). */
static bool
host_edit(struct call_ctx *ctx, const char *host, host_edit_fn *fn, const void *arg,
          struct xerr **errp)
{
    struct host_edit e = {fn, arg};
    return db_update(ctx->db, &xapi_class_host, host, host_edit_apply, &e, errp);
}

/*==== Guidance, TLS verification, scheduling ====*/

static bool
clear_guidances(struct xapi_host_record *h, const void *arg)
{
    (void)arg;
    free(h->pending_guidances.items);
    h->pending_guidances.items = NULL;
    h->pending_guidances.n = 0;
    return true;
}

bool
api_host_emergency_clear_mandatory_guidance(struct call_ctx *ctx, struct xerr **errp)
{
    return host_edit(ctx, ctx->srv->host_ref, clear_guidances, NULL, errp);
}

static bool
set_tls_verification(struct xapi_host_record *h, const void *arg)
{
    h->tls_verification_enabled = *(const bool *)arg;
    return true;
}

/* The host only records whether it verifies its peers: a standalone host
 * has no peers to verify. */
bool
api_host_emergency_disable_tls_verification(struct call_ctx *ctx, struct xerr **errp)
{
    bool off = false;
    return host_edit(ctx, ctx->srv->host_ref, set_tls_verification, &off, errp);
}

/* Only after a pool enabled verification (xapi_host.ml): re-enabling what
 * the pool never turned on is refused. */
bool
api_host_emergency_reenable_tls_verification(struct call_ctx *ctx, struct xerr **errp)
{
    struct xapi_pool_record *pool = NULL;
    if (!db_get(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, (void **)&pool, errp))
        return false;
    bool pool_on = pool->tls_verification_enabled;
    xapi_pool_record_free(pool);
    if (!pool_on)
        return xerr_tls_verification_not_enabled_in_pool(errp);
    bool on = true;
    return host_edit(ctx, ctx->srv->host_ref, set_tls_verification, &on, errp);
}

static bool
set_numa(struct xapi_host_record *h, const void *arg)
{
    h->numa_affinity_policy = *(const enum xapi_host_numa_affinity_policy *)arg;
    return true;
}

bool
api_host_set_numa_affinity_policy(struct call_ctx *ctx, const char *self,
                                  enum xapi_host_numa_affinity_policy value, struct xerr **errp)
{
    return host_edit(ctx, self, set_numa, &value, errp);
}

/* Xen's sched-gran boot option; without an entry xapi answers cpu, and
 * changing it is off unless xapi.conf allows it (it never is here). */
bool
api_host_get_sched_gran(struct call_ctx *ctx, const char *self, enum xapi_host_sched_gran *result,
                        struct xerr **errp)
{
    if (!host_exists(ctx, self, errp))
        return false;
    *result = XAPI_HOST_SCHED_GRAN_CPU;
    return true;
}

bool
api_host_set_sched_gran(struct call_ctx *ctx, const char *self, enum xapi_host_sched_gran value,
                        struct xerr **errp)
{
    if (!host_exists(ctx, self, errp))
        return false;
    return xerr_operation_not_allowed(errp, "Disabled by xapi.conf");
}

bool
api_host_set_uefi_certificates(struct call_ctx *ctx, const char *host, const char *value,
                               struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    return xerr_operation_not_allowed(
        errp, "To set UEFI certificates use: `Pool.set_custom_uefi_certificates`");
}

/*==== Storage paths: multipathing, iSCSI IQN ====*/

/* As xapi_host.ml: the field, then other_config mirrors it (clients read
 * either). No multipathd or iscsid runs here: the field is the effect. */
static bool
set_multipathing(struct xapi_host_record *h, const void *arg)
{
    h->multipathing = *(const bool *)arg;
    return xmap_put_str((struct xmap *)&h->other_config, "multipathing",
                        h->multipathing ? "true" : "false") == 0;
}

bool
api_host_set_multipathing(struct call_ctx *ctx, const char *host, bool value, struct xerr **errp)
{
    return host_edit(ctx, host, set_multipathing, &value, errp);
}

static bool
set_iqn(struct xapi_host_record *h, const void *arg)
{
    return xstr_set(&h->iscsi_iqn, arg) &&
           xmap_put_str((struct xmap *)&h->other_config, "iscsi_iqn", arg) == 0;
}

bool
api_host_set_iscsi_iqn(struct call_ctx *ctx, const char *host, const char *value,
                       struct xerr **errp)
{
    if (!value[0])
        return xerr_invalid_value(errp, "value", value);
    return host_edit(ctx, host, set_iqn, value, errp);
}

/*==== Display (xapi_host.ml update_display) ====*/

static bool
set_display(struct xapi_host_record *h, const void *arg)
{
    h->display = *(const enum xapi_host_display *)arg;
    return true;
}

static bool
update_display(struct call_ctx *ctx, const char *host, bool enable,
               enum xapi_host_display *result, struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    enum xapi_host_display now = h->display, next = now;
    xapi_host_record_free(h);
    switch (now) {
    case XAPI_HOST_DISPLAY_ENABLED:
        next = enable ? now : XAPI_HOST_DISPLAY_DISABLE_ON_REBOOT;
        break;
    case XAPI_HOST_DISPLAY_DISABLE_ON_REBOOT:
        next = enable ? XAPI_HOST_DISPLAY_ENABLED : now;
        break;
    case XAPI_HOST_DISPLAY_DISABLED:
        next = enable ? XAPI_HOST_DISPLAY_ENABLE_ON_REBOOT : now;
        break;
    case XAPI_HOST_DISPLAY_ENABLE_ON_REBOOT:
        next = enable ? now : XAPI_HOST_DISPLAY_DISABLED;
        break;
    }
    if (next != now && !host_edit(ctx, host, set_display, &next, errp))
        return false;
    *result = next;
    return true;
}

bool
api_host_enable_display(struct call_ctx *ctx, const char *host, enum xapi_host_display *result,
                        struct xerr **errp)
{
    return update_display(ctx, host, true, result, errp);
}

/* Disabling the host's display is the Integrated_GPU feature, which the free
 * edition lacks (xapi: FEATURE_RESTRICTED). */
bool
api_host_disable_display(struct call_ctx *ctx, const char *host, enum xapi_host_display *result,
                         struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    return xerr_feature_restricted(errp);
}

/*==== Local storage caching (IntelliCache) ====*/

/* xapi's assert_bacon_mode: the host must be disabled and run no guest. */
static bool
assert_disabled(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    bool enabled = h->enabled;
    xapi_host_record_free(h);
    return !enabled || xerr_host_not_disabled(errp);
}

bool
api_host_enable_local_storage_caching(struct call_ctx *ctx, const char *host, const char *sr,
                                      struct xerr **errp)
{
    if (!assert_disabled(ctx, host, errp))
        return false;
    if (!db_exists(ctx->db, &xapi_class_sr, sr))
        return xerr_handle_invalid(errp, "SR", sr);
    /* no SR driver here has the SR_SUPPORTS_LOCAL_CACHING capability */
    return xerr_sr_operation_not_supported(errp, sr);
}

bool
api_host_disable_local_storage_caching(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return assert_disabled(ctx, host, errp); /* no cache SR was ever set */
}

/*==== Power-on, software, licence ====*/

struct power_on_args {
    const char *mode;
    const struct xapi_string_string_map *config;
};

static bool
set_power_on(struct xapi_host_record *h, const void *arg)
{
    const struct power_on_args *a = arg;
    struct xapi_string_string_map copy = {0};
    for (size_t i = 0; i < a->config->n; i++)
        if (xmap_put_str((struct xmap *)&copy, a->config->keys[i], a->config->values[i]) < 0) {
            xtype_value_clear(&xapi_type_string_string_map, &copy);
            return false;
        }
    if (!xstr_set(&h->power_on_mode, a->mode)) {
        xtype_value_clear(&xapi_type_string_string_map, &copy);
        return false;
    }
    xtype_value_clear(&xapi_type_string_string_map, &h->power_on_config);
    h->power_on_config = copy;
    return true;
}

bool
api_host_set_power_on_mode(struct call_ctx *ctx, const char *self, const char *power_on_mode,
                           const struct xapi_string_string_map *power_on_config,
                           struct xerr **errp)
{
    struct power_on_args a = {power_on_mode, power_on_config};
    return host_edit(ctx, self, set_power_on, &a, errp);
}

/* Powering on another host (wake-on-LAN, iLO, DRAC, IPMI) needs a power-on
 * mode, and this host is live anyway (message_forwarding.ml). */
bool
api_host_power_on(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    bool no_mode = h->power_on_mode[0] == '\0';
    xapi_host_record_free(h);
    if (no_mode)
        return xerr_host_power_on_mode_disabled(errp);
    return xerr_host_is_live(errp, host);
}

bool
api_host_refresh_pack_info(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_exists(ctx, host, errp); /* software_version is fixed by the build */
}

/* The free edition's licensing daemon (v6d) knows one edition and no
 * licence file (xapi_host.ml apply_edition_internal). */
bool
api_host_apply_edition(struct call_ctx *ctx, const char *host, const char *edition, bool force,
                       struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    if (strcmp(edition, "free") != 0)
        return xerr_invalid_edition(errp, edition);
    return true;
}

bool
api_host_license_add(struct call_ctx *ctx, const char *host, const char *contents,
                     struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    return xerr_license_processing_error(errp);
}

bool
api_host_license_remove(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_exists(ctx, host, errp); /* the free edition has no licence to remove */
}

bool
api_host_apply_updates(struct call_ctx *ctx, const char *self, const char *hash,
                       struct xapi_string_set_set *result, struct xerr **errp)
{
    if (!host_exists(ctx, self, errp))
        return false;
    return xerr_no_repository_enabled(errp);
}

/*==== WLB, external authentication, HA ====*/

bool
api_host_retrieve_wlb_evacuate_recommendations(struct call_ctx *ctx, const char *self,
                                               struct xapi_ref_string_set_map *result,
                                               struct xerr **errp)
{
    if (!host_exists(ctx, self, errp))
        return false;
    return xerr_wlb_not_initialized(errp);
}

/* No external directory service can be joined from here: the only accounts
 * are local (rpc/auth.c). xapi's checks come first, in its order. */
bool
api_host_enable_external_auth(struct call_ctx *ctx, const char *host,
                              const struct xapi_string_string_map *config,
                              const char *service_name, const char *auth_type,
                              struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    bool ok = true;
    if (h->external_auth_type[0])
        ok = xerr_auth_already_enabled(errp, h->external_auth_type,
                                       h->external_auth_service_name);
    else
        ok = xerr_auth_unknown_type(errp, auth_type);
    xapi_host_record_free(h);
    return ok;
}

bool
api_host_disable_external_auth(struct call_ctx *ctx, const char *host,
                               const struct xapi_string_string_map *config, struct xerr **errp)
{
    return host_exists(ctx, host, errp); /* already disabled: nothing to do, as xapi */
}

bool
api_host_emergency_ha_disable(struct call_ctx *ctx, bool soft, struct xerr **errp)
{
    return xerr_ha_not_enabled(errp);
}

/*==== Memory ====*/

bool
api_host_compute_memory_overhead(struct call_ctx *ctx, const char *host, int64_t *result,
                                 struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    *result = h->memory_overhead;
    xapi_host_record_free(h);
    return true;
}

/* What a new guest may take on any host of the pool, the figure placement
 * uses (api/placement.h). */
bool
api_host_compute_free_memory(struct call_ctx *ctx, const char *host, int64_t *result,
                             struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    xapi_host_record_free(h);
    *result = placement_host_free_memory(ctx->db, host);
    return *result >= 0 || xerr_internal(errp, "host %s has no metrics", host);
}

/*==== Names, logs, services ====*/

/* xapi_host.ml: letters, digits, '-' and '.', not starting or ending with
 * '-', 1 to 63 characters. */
static bool
hostname_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

static bool
set_hostname(struct xapi_host_record *h, const void *arg)
{
    return xstr_set(&h->hostname, arg);
}

/* The record only: vesseld does not rename the machine it runs on (the
 * operating system's own tools own /etc/hostname). */
bool
api_host_set_hostname_live(struct call_ctx *ctx, const char *host, const char *hostname,
                           struct xerr **errp)
{
    if (!hostname_valid(hostname))
        return xerr_host_name_invalid(errp, "hostname contains invalid characters");
    if (!host_exists(ctx, host, errp))
        return false;
    return host_edit(ctx, host, set_hostname, hostname, errp);
}

bool
api_host_syslog_reconfigure(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!host_get(ctx, host, &h, errp))
        return false;
    const char *dest = xmap_get_str((const struct xmap *)&h->logging, "syslog_destination");
    log_info("host.syslog_reconfigure", "destination=%s applied=no (vesseld logs to its stderr)",
             dest && dest[0] ? dest : "local");
    xapi_host_record_free(h);
    return true;
}

/* xapi's system-status report capabilities (ocaml/xapi/system_status.ml):
 * what a status report of this host may contain. */
bool
api_host_get_system_status_capabilities(struct call_ctx *ctx, const char *host, char **result,
                                        struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    static const char xml[] =
        "<?xml version=\"1.0\" ?>\n<system-status-capabilities>\n"
        "<capability content-type=\"text/plain\" default-checked=\"yes\" key=\"vesseld-logs\" "
        "max-size=\"-1\" max-time=\"-1\" min-size=\"-1\" min-time=\"-1\" pii=\"maybe\" />\n"
        "<capability content-type=\"text/plain\" default-checked=\"yes\" key=\"host-config\" "
        "max-size=\"-1\" max-time=\"-1\" min-size=\"-1\" min-time=\"-1\" pii=\"no\" />\n"
        "<capability content-type=\"text/plain\" default-checked=\"yes\" key=\"xenserver-databases\" "
        "max-size=\"-1\" max-time=\"-1\" min-size=\"-1\" min-time=\"-1\" pii=\"yes\" />\n"
        "</system-status-capabilities>\n";
    return (*result = strdup(xml)) != NULL || xerr_nomem(errp);
}

/* The host's kernel ring buffer: the console data xapi reads from Xen. */
bool
api_host_dmesg(struct call_ctx *ctx, const char *host, char **result, struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
    if (len <= 0)
        return (*result = strdup("")) != NULL || xerr_nomem(errp);
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        return xerr_nomem(errp);
    int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
    buf[n > 0 ? n : 0] = '\0';
    *result = buf;
    return true;
}

bool
api_host_get_log(struct call_ctx *ctx, const char *host, char **result, struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    /* vesseld logs to its standard error, which its supervisor keeps (the
     * journal); there is no log file of its own to hand back */
    return (*result = strdup("")) != NULL || xerr_nomem(errp);
}

bool
api_host_send_debug_keys(struct call_ctx *ctx, const char *host, const char *keys,
                         struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    /* Xen's debug keys print hypervisor state to its console; the host here
     * has no hypervisor console: accepted and logged, as Xen ignores an
     * unknown key */
    log_info("host.send_debug_keys", "keys=%zu", strlen(keys));
    return true;
}

bool
api_host_bugreport_upload(struct call_ctx *ctx, const char *host, const char *url,
                          const struct xapi_string_string_map *options, struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    if (!url[0])
        return xerr_invalid_value(errp, "url", "");
    return xerr_system_status_retrieval_failed(errp, "no status report tool on this host");
}

bool
api_host_list_methods(struct call_ctx *ctx, struct xapi_string_set *result, struct xerr **errp)
{
    for (size_t i = 0; i < xapi_n_messages; i++)
        if (xset_append_str((struct xset *)result, xapi_messages[i].wire_name) < 0)
            return xerr_nomem(errp);
    return true;
}

bool
api_host_get_uncooperative_resident_VMs(struct call_ctx *ctx, const char *self,
                                        struct xapi_ref_set *result, struct xerr **errp)
{
    return host_exists(ctx, self, errp); /* always empty, as in xapi */
}

bool
api_host_sync_data(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_exists(ctx, host, errp); /* no master to copy blobs and RRDs from */
}

bool
api_host_backup_rrds(struct call_ctx *ctx, const char *host, double delay, struct xerr **errp)
{
    /* the RRD store writes itself to disk on its own schedule (api/rrd_store.c) */
    return host_exists(ctx, host, errp);
}

/*==== Shutdown and reboot ====*/

/* message_forwarding.ml: a host is shut down or rebooted only once disabled
 * (host.disable), which moves nothing here. */
static bool
power_precheck(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return assert_disabled(ctx, host, errp);
}

bool
api_host_reboot(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    if (!power_precheck(ctx, host, errp))
        return false;
    return xerr_operation_not_allowed(errp, "vesseld does not power off the machine it runs on");
}

bool
api_host_shutdown(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    if (!power_precheck(ctx, host, errp))
        return false;
    return xerr_operation_not_allowed(errp, "vesseld does not power off the machine it runs on");
}

/*==== HTTPS ====*/

static bool
set_https_only(struct xapi_host_record *h, const void *arg)
{
    h->https_only = *(const bool *)arg;
    return true;
}

bool
api_host_set_https_only(struct call_ctx *ctx, const char *self, bool value, struct xerr **errp)
{
    return host_edit(ctx, self, set_https_only, &value, errp);
}

/* The certificate the HTTPS listener presents (PEM), as xapi's
 * Certificates.get_server_certificate reads stunnel's. */
bool
api_host_get_server_certificate(struct call_ctx *ctx, const char *host, char **result,
                                struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    if (!ctx->srv->tls_cert_path)
        return (*result = strdup("")) != NULL || xerr_nomem(errp);
    char *pem = NULL;
    int rc = tls_cert_read_file(ctx->srv->tls_cert_path, &pem);
    if (rc == -ENOENT) /* no HTTPS listener was ever started: no certificate */
        return (*result = strdup("")) != NULL || xerr_nomem(errp);
    if (rc < 0)
        return xerr_internal(errp, "reading the server certificate: %s", strerror(-rc));
    *result = pem;
    return true;
}

/*==== Management interface ====*/

struct mgmt_find {
    const char *host;
    char *ref;
};

static bool
mgmt_find_one(void *opaque, const char *ref, const void *rec)
{
    struct mgmt_find *f = opaque;
    const struct xapi_pif_record *p = rec;
    if (!p->management || strcmp(p->host, f->host) != 0)
        return true;
    f->ref = strdup(ref);
    return false;
}

bool
api_host_get_management_interface(struct call_ctx *ctx, const char *host, char **result,
                                  struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    struct mgmt_find f = {host, NULL};
    db_foreach(ctx->db, &xapi_class_pif, mgmt_find_one, &f);
    if (!f.ref) /* xapi raises Not_found, which reaches clients as an internal error */
        return xerr_internal(errp, "the host has no management interface (PIF.management)");
    *result = f.ref;
    return true;
}

static bool
pif_unmanage(void *opaque, void *rec, struct xerr **errp)
{
    (void)opaque;
    (void)errp;
    ((struct xapi_pif_record *)rec)->management = false;
    return true;
}

struct pif_refs {
    const char *host;
    struct xapi_ref_set refs;
    bool nomem;
};

static bool
mgmt_pifs(void *opaque, const char *ref, const void *rec)
{
    struct pif_refs *l = opaque;
    const struct xapi_pif_record *p = rec;
    if (p->management && strcmp(p->host, l->host) == 0 &&
        xset_append_str((struct xset *)&l->refs, ref) < 0)
        l->nomem = true;
    return !l->nomem;
}

/* As host.management_reconfigure (api/pif.c), a record: no PIF is the
 * management one afterwards; the listeners stay as vesseld was started. */
bool
api_host_management_disable(struct call_ctx *ctx, struct xerr **errp)
{
    struct pif_refs l = {ctx->srv->host_ref, {0, NULL}, false};
    db_foreach(ctx->db, &xapi_class_pif, mgmt_pifs, &l);
    bool ok = !l.nomem || xerr_nomem(errp);
    db_batch_begin(ctx->db);
    for (size_t i = 0; ok && i < l.refs.n; i++)
        ok = db_update(ctx->db, &xapi_class_pif, l.refs.items[i], pif_unmanage, NULL, errp);
    ok = db_batch_end(ctx->db, ok, errp);
    xtype_value_clear(&xapi_type_ref_PIF_set, &l.refs);
    return ok;
}

/* Only in a pool member's emergency mode (its master unreachable), which a
 * standalone host never is. */
bool
api_host_local_management_reconfigure(struct call_ctx *ctx, const char *interface,
                                      struct xerr **errp)
{
    return xerr_not_in_emergency_mode(errp);
}

/*==== The agent itself ====*/

static void *
stop_soon(void *arg)
{
    (void)arg;
    sleep(1); /* the reply goes out first, as xapi's one-second fuse */
    kill(getpid(), SIGTERM);
    return NULL;
}

bool
host_agent_stop_soon(struct xerr **errp)
{
    pthread_t t;
    if (pthread_create(&t, NULL, stop_soon, NULL) != 0)
        return xerr_internal(errp, "cannot schedule the stop");
    pthread_detach(t);
    return true;
}

/* vesseld stops cleanly (as on SIGTERM) a second after answering. */
bool
api_host_shutdown_agent(struct call_ctx *ctx, struct xerr **errp)
{
    log_info("host.shutdown_agent", "stop_in_s=1");
    return host_agent_stop_soon(errp);
}

/* A clean stop, then the same program again (daemon/main.c): guests keep
 * running and are found again at start. */
bool
api_host_restart_agent(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    if (!host_exists(ctx, host, errp))
        return false;
    log_info("host.restart_agent", "restart_in_s=1");
    ctx->srv->restart_requested = true;
    return host_agent_stop_soon(errp);
}
