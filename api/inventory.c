/* api/inventory.c - DATA/inventory: which host of the store this vesseld is. */
#include "api/inventory.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

#define KEY "INSTALLATION_UUID="

static bool
uuid_well_formed(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

int
inventory_read(const char *data_dir, char uuid[37])
{
    char path[4096], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/inventory", data_dir);
    int rc = fileio_read_all(path, 64 * 1024, &text, &len);
    if (rc < 0)
        return rc;
    rc = -EINVAL;
    /* xapi's inventory is KEY='value' lines; quotes are accepted, not needed */
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, KEY, strlen(KEY)) != 0)
            continue;
        char *v = line + strlen(KEY);
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
            v++;
            n -= 2;
        }
        if (uuid_well_formed(v, n)) {
            memcpy(uuid, v, 36);
            uuid[36] = '\0';
            rc = 0;
        }
        break;
    }
    free(text);
    return rc;
}

int
inventory_write(const char *data_dir, const char *uuid)
{
    char path[4096], text[64];
    snprintf(path, sizeof(path), "%s/inventory", data_dir);
    int n = snprintf(text, sizeof(text), KEY "'%s'\n", uuid);
    return fileio_write_atomic(path, text, (size_t)n, 0600);
}
