/* xenops/config.c - the plain-C domain description: free, copy, check, JSON.
 *
 * The JSON form is what the qemu backend leaves in each domain's run dir
 * (config.json: xenops_recover() needs it to restart or shut down an adopted
 * domain the right way) and what the argv golden tests feed in. Enum names are
 * the lower-case words of xenops.h; unknown keys are an error, so a typo in a
 * golden case does not silently test the default.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "xenops/xenops_int.h"

void
xenops_config_free(struct xenops_domain_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->uuid);
    free(cfg->name);
    free(cfg->kernel);
    free(cfg->initrd);
    free(cfg->cmdline);
    free(cfg->boot_order);
    for (size_t i = 0; i < cfg->n_disks; i++) {
        free(cfg->disks[i].path);
        free(cfg->disks[i].export_name);
    }
    free(cfg->disks);
    for (size_t i = 0; i < cfg->n_nics; i++) {
        free(cfg->nics[i].tap);
        free(cfg->nics[i].mac);
    }
    free(cfg->nics);
    free(cfg);
}

void
xenops_config_freep(struct xenops_domain_config **cfg)
{
    xenops_config_free(*cfg);
}

static bool
dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return true;
    return (*dst = strdup(src)) != NULL;
}

struct xenops_domain_config *
xenops_config_copy(const struct xenops_domain_config *cfg)
{
    _cleanup_(xenops_config_freep) struct xenops_domain_config *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *cfg;
    c->uuid = c->name = c->kernel = c->initrd = c->cmdline = c->boot_order = NULL;
    c->disks = NULL;
    c->n_disks = 0;
    c->nics = NULL;
    c->n_nics = 0;
    if (!dup_str(&c->uuid, cfg->uuid) || !dup_str(&c->name, cfg->name) ||
        !dup_str(&c->kernel, cfg->kernel) || !dup_str(&c->initrd, cfg->initrd) ||
        !dup_str(&c->cmdline, cfg->cmdline) || !dup_str(&c->boot_order, cfg->boot_order))
        return NULL;
    if (cfg->n_disks) {
        if (!(c->disks = calloc(cfg->n_disks, sizeof(*c->disks))))
            return NULL;
        for (size_t i = 0; i < cfg->n_disks; i++, c->n_disks++) {
            c->disks[i] = cfg->disks[i];
            c->disks[i].path = c->disks[i].export_name = NULL;
            if (!dup_str(&c->disks[i].path, cfg->disks[i].path) ||
                !dup_str(&c->disks[i].export_name, cfg->disks[i].export_name))
                return NULL;
        }
    }
    if (cfg->n_nics) {
        if (!(c->nics = calloc(cfg->n_nics, sizeof(*c->nics))))
            return NULL;
        for (size_t i = 0; i < cfg->n_nics; i++, c->n_nics++)
            if (!dup_str(&c->nics[i].tap, cfg->nics[i].tap) ||
                !dup_str(&c->nics[i].mac, cfg->nics[i].mac)) {
                return NULL;
            } else {
                c->nics[i].port = cfg->nics[i].port;
                c->nics[i].qemu_fd = cfg->nics[i].qemu_fd;
            }
    }
    return steal_ptr(&c);
}

static bool
uuid_ok(const char *u)
{
    if (!u || strlen(u) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !strchr("0123456789abcdefABCDEF", u[i]))
            return false;
    }
    return true;
}

/* Strings reach a qemu command line inside -option key=value lists: a comma
 * would start a new key, so paths with commas are refused rather than escaped. */
static bool
opt_safe(const char *s)
{
    return s && !strchr(s, ',') && !strchr(s, '\n');
}

int
xenops_config_check(const struct xenops_domain_config *cfg, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!cfg || !uuid_ok(cfg->uuid))
        *why = "uuid";
    else if (cfg->memory_bytes < (16u << 20) || cfg->memory_bytes % (1u << 20))
        *why = "memory_bytes";
    else if (cfg->vcpus < 1 || cfg->vcpus > 64)
        *why = "vcpus";
    else if (cfg->vcpus_max && (cfg->vcpus_max < cfg->vcpus || cfg->vcpus_max > 64))
        *why = "vcpus_max";
    else if (cfg->no_acpi && cfg->machine != XENOPS_MACHINE_MICROVM)
        *why = "no_acpi needs microvm";
    else if (cfg->name && strchr(cfg->name, ','))
        *why = "name";
    else if (cfg->boot == XENOPS_BOOT_DIRECT && !opt_safe(cfg->kernel))
        *why = "kernel";
    else if (cfg->boot == XENOPS_BOOT_DIRECT && cfg->initrd && !opt_safe(cfg->initrd))
        *why = "initrd";
    else if (cfg->boot == XENOPS_BOOT_FIRMWARE && cfg->machine == XENOPS_MACHINE_MICROVM)
        *why = "machine";
    else if (cfg->boot_order && strspn(cfg->boot_order, "acdn") != strlen(cfg->boot_order))
        *why = "boot_order";
    else if (cfg->on_poweroff == XENOPS_ACTION_PRESERVE || cfg->on_reboot == XENOPS_ACTION_PRESERVE)
        *why = "action";
    for (size_t i = 0; !*why && i < cfg->n_disks; i++) {
        const struct xenops_disk *d = &cfg->disks[i];
        if (!opt_safe(d->path) || (d->export_name && !opt_safe(d->export_name)))
            *why = "disk path";
        else if (d->cdrom && cfg->machine == XENOPS_MACHINE_MICROVM)
            *why = "cdrom on microvm";
    }
    for (size_t i = 0; !*why && i < cfg->n_nics; i++) {
        const struct xenops_nic *n = &cfg->nics[i];
        unsigned m[6];
        char end;
        if (!n->tap || !*n->tap || strlen(n->tap) > 15 || !opt_safe(n->tap))
            *why = "nic tap name";
        else if (!n->mac || sscanf(n->mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2],
                                   &m[3], &m[4], &m[5], &end) != 6)
            *why = "nic mac";
        else if (n->port > XENOPS_Q35_PORTS)
            *why = "nic port";
        for (size_t j = 0; !*why && n->port && j < i; j++)
            if (cfg->nics[j].port == n->port)
                *why = "nic port used twice";
    }
    return *why ? -EINVAL : 0;
}

void
xenops_config_assign_ports(struct xenops_domain_config *cfg)
{
    if (cfg->machine != XENOPS_MACHINE_Q35)
        return;
    bool used[XENOPS_Q35_PORTS + 1] = {false};
    for (size_t i = 0; i < cfg->n_nics; i++)
        if (cfg->nics[i].port <= XENOPS_Q35_PORTS)
            used[cfg->nics[i].port] = true;
    for (size_t i = 0; i < cfg->n_nics; i++) {
        for (unsigned p = 1; !cfg->nics[i].port && p <= XENOPS_Q35_PORTS; p++)
            if (!used[p]) {
                cfg->nics[i].port = p;
                used[p] = true;
            }
    }
}

/* ---- JSON ---- */

static const char *const machine_names[] = {"microvm", "pc", "q35"};
static const char *const boot_names[] = {"direct", "firmware"};
static const char *const accel_names[] = {"auto", "kvm", "tcg"};
static const char *const format_names[] = {"raw", "nbd"};
static const char *const action_names[] = {"destroy", "restart", "preserve"};

static int
enum_of(json_t *v, const char *const *names, int n, int *out)
{
    if (!json_is_string(v))
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (strcmp(json_string_value(v), names[i]) == 0)
            return *out = i, 0;
    return -EINVAL;
}

static int
str_of(json_t *v, char **out)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -EINVAL;
    return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

static int
disk_from_json(json_t *o, struct xenops_disk *d)
{
    const char *k;
    json_t *v;
    int rc = 0, e = 0;
    if (!json_is_object(o))
        return -EINVAL;
    json_object_foreach(o, k, v) {
        if (!strcmp(k, "path"))
            rc = str_of(v, &d->path);
        else if (!strcmp(k, "export"))
            rc = str_of(v, &d->export_name);
        else if (!strcmp(k, "format"))
            rc = enum_of(v, format_names, 2, &e), d->format = e;
        else if (!strcmp(k, "read_only") && json_is_boolean(v))
            d->read_only = json_is_true(v);
        else if (!strcmp(k, "cdrom") && json_is_boolean(v))
            d->cdrom = json_is_true(v);
        else
            rc = -EINVAL;
        if (rc < 0)
            return rc;
    }
    return d->path ? 0 : -EINVAL;
}

static int
field_from_json(struct xenops_domain_config *c, const char *k, json_t *v)
{
    int e = 0, rc;
    if (!strcmp(k, "uuid"))
        return str_of(v, &c->uuid);
    if (!strcmp(k, "name"))
        return str_of(v, &c->name);
    if (!strcmp(k, "kernel"))
        return str_of(v, &c->kernel);
    if (!strcmp(k, "initrd"))
        return str_of(v, &c->initrd);
    if (!strcmp(k, "cmdline"))
        return str_of(v, &c->cmdline);
    if (!strcmp(k, "boot_order"))
        return str_of(v, &c->boot_order);
    if (!strcmp(k, "memory_bytes") && json_is_integer(v) && json_integer_value(v) > 0)
        return c->memory_bytes = (uint64_t)json_integer_value(v), 0;
    if (!strcmp(k, "vcpus") && json_is_integer(v) && json_integer_value(v) > 0)
        return c->vcpus = (unsigned)json_integer_value(v), 0;
    if (!strcmp(k, "vcpus_max") && json_is_integer(v) && json_integer_value(v) > 0 &&
        json_integer_value(v) <= 64)
        return c->vcpus_max = (unsigned)json_integer_value(v), 0;
    if (!strcmp(k, "no_acpi") && json_is_boolean(v))
        return c->no_acpi = json_is_true(v), 0;
    if ((!strcmp(k, "uid") || !strcmp(k, "gid") || !strcmp(k, "cpu_weight") ||
         !strcmp(k, "cpu_cap")) &&
        json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < (1ll << 31)) {
        unsigned n = (unsigned)json_integer_value(v);
        if (k[0] == 'u')
            c->uid = n;
        else if (k[0] == 'g')
            c->gid = n;
        else if (!strcmp(k, "cpu_weight"))
            c->cpu_weight = n;
        else
            c->cpu_cap = n;
        return 0;
    }
    if (!strcmp(k, "start_paused") && json_is_boolean(v))
        return c->start_paused = json_is_true(v), 0;
    if (!strcmp(k, "boot"))
        return rc = enum_of(v, boot_names, 2, &e), c->boot = e, rc;
    if (!strcmp(k, "machine"))
        return rc = enum_of(v, machine_names, 3, &e), c->machine = e, rc;
    if (!strcmp(k, "accel"))
        return rc = enum_of(v, accel_names, 3, &e), c->accel = e, rc;
    if (!strcmp(k, "on_poweroff"))
        return rc = enum_of(v, action_names, 3, &e), c->on_poweroff = e, rc;
    if (!strcmp(k, "on_reboot"))
        return rc = enum_of(v, action_names, 3, &e), c->on_reboot = e, rc;
    if (!strcmp(k, "on_crash"))
        return rc = enum_of(v, action_names, 3, &e), c->on_crash = e, rc;
    if (!strcmp(k, "nics") && json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n && !(c->nics = calloc(n, sizeof(*c->nics))))
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_array_get(v, i);
            c->n_nics++;
            if (!json_is_object(o) || str_of(json_object_get(o, "tap"), &c->nics[i].tap) < 0 ||
                str_of(json_object_get(o, "mac"), &c->nics[i].mac) < 0)
                return -EINVAL;
            json_t *port = json_object_get(o, "port");
            if (port && (!json_is_integer(port) || json_integer_value(port) < 0 ||
                         json_integer_value(port) > XENOPS_Q35_PORTS))
                return -EINVAL;
            c->nics[i].port = port ? (unsigned)json_integer_value(port) : 0;
        }
        return 0;
    }
    if (!strcmp(k, "disks") && json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n && !(c->disks = calloc(n, sizeof(*c->disks))))
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            c->n_disks++;
            if ((rc = disk_from_json(json_array_get(v, i), &c->disks[i])) < 0)
                return rc;
        }
        return 0;
    }
    return -EINVAL;
}

int
xenops_config_from_json(const char *text, struct xenops_domain_config **out)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return -EINVAL;
    }
    _cleanup_(xenops_config_freep) struct xenops_domain_config *c = calloc(1, sizeof(*c));
    int rc = c ? 0 : -ENOMEM;
    const char *k;
    json_t *v;
    if (c) {
        c->vcpus = 1;
        c->memory_bytes = 128u << 20;
        json_object_foreach(root, k, v) {
            if ((rc = field_from_json(c, k, v)) < 0)
                break;
        }
    }
    json_decref(root);
    if (rc < 0)
        return rc;
    *out = steal_ptr(&c);
    return 0;
}

static json_t *
jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *
xenops_config_to_json(const struct xenops_domain_config *c)
{
    json_t *disks = json_array();
    for (size_t i = 0; disks && i < c->n_disks; i++) {
        const struct xenops_disk *d = &c->disks[i];
        json_array_append_new(disks, json_pack("{s:o,s:s,s:o,s:b,s:b}", "path", jstr(d->path),
                                               "format", format_names[d->format], "export",
                                               jstr(d->export_name), "read_only", d->read_only,
                                               "cdrom", d->cdrom));
    }
    json_t *nics = json_array();
    for (size_t i = 0; nics && i < c->n_nics; i++)
        json_array_append_new(nics, json_pack("{s:o,s:o,s:i}", "tap", jstr(c->nics[i].tap), "mac",
                                              jstr(c->nics[i].mac), "port",
                                              (int)c->nics[i].port));
    json_t *o = json_pack(
        "{s:o,s:o,s:I,s:i,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:b,s:s,s:s,s:s}", "uuid", jstr(c->uuid),
        "name", jstr(c->name), "memory_bytes", (json_int_t)c->memory_bytes, "vcpus", (int)c->vcpus,
        "boot", boot_names[c->boot], "machine", machine_names[c->machine], "kernel",
        jstr(c->kernel), "initrd", jstr(c->initrd), "cmdline", jstr(c->cmdline), "boot_order",
        jstr(c->boot_order), "disks", disks, "nics", nics ? nics : json_array(), "accel", accel_names[c->accel], "start_paused",
        c->start_paused, "on_poweroff", action_names[c->on_poweroff], "on_reboot",
        action_names[c->on_reboot], "on_crash", action_names[c->on_crash]);
    /* the ids and limits only when set: older readers and the golden cases
     * see what they always saw */
    if (o && c->uid)
        json_object_set_new(o, "uid", json_integer(c->uid));
    if (o && c->gid)
        json_object_set_new(o, "gid", json_integer(c->gid));
    if (o && c->cpu_weight)
        json_object_set_new(o, "cpu_weight", json_integer(c->cpu_weight));
    if (o && c->cpu_cap)
        json_object_set_new(o, "cpu_cap", json_integer(c->cpu_cap));
    if (o && c->vcpus_max)
        json_object_set_new(o, "vcpus_max", json_integer(c->vcpus_max));
    if (o && c->no_acpi)
        json_object_set_new(o, "no_acpi", json_true());
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
