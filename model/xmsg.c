/* model/xmsg.c - finding a wire method in the generated message table.
 *
 * The table is sorted by wire name by the generator, so lookup is a binary
 * search; xapi also accepts "<class>_<message>" (xapi's doc/content/xen-api/wire-protocol.md), tried by
 * turning the first '_' that follows a known class name into '.'.
 */
#include "model/xmsg.h"

#include <stdlib.h>
#include <string.h>

const char *const xrole_names[XR_COUNT] = {
    "read-only", "vm-operator", "vm-admin", "vm-power-admin", "pool-operator", "pool-admin",
};

int
xrole_parse(const char *name)
{
    for (int i = 0; i < XR_COUNT; i++)
        if (strcmp(xrole_names[i], name) == 0)
            return i;
    return -1;
}

static int
compare_wire(const void *key, const void *elem)
{
    return strcmp(key, ((const struct xmsg *)elem)->wire_name);
}

const struct xmsg *
xmsg_lookup(const char *wire_name)
{
    const struct xmsg *m =
        bsearch(wire_name, xapi_messages, xapi_n_messages, sizeof(struct xmsg), compare_wire);
    if (m || strchr(wire_name, '.'))
        return m;
    /* VM_start: try each '_' as the class/message boundary (class names hold '_'). */
    size_t len = strlen(wire_name);
    if (len > 200)
        return NULL;
    char buf[256];
    for (const char *u = strchr(wire_name, '_'); u; u = strchr(u + 1, '_')) {
        memcpy(buf, wire_name, len + 1);
        buf[u - wire_name] = '.';
        m = bsearch(buf, xapi_messages, xapi_n_messages, sizeof(struct xmsg), compare_wire);
        if (m)
            return m;
    }
    return NULL;
}
