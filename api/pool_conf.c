/* api/pool_conf.c - DATA/pool.conf and DATA/ptoken (api/pool_conf.h). */
#include "api/pool_conf.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/fileio.h"

#define POOL_CONF "pool.conf"
#define PTOKEN "ptoken"

static char *
path_of(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

void
pool_conf_clear(struct pool_conf *c)
{
    free(c->store);
    free(c->endpoints);
    free(c->prefix);
    c->store = c->endpoints = c->prefix = NULL;
}

bool
pool_conf_valid(const struct pool_conf *c)
{
    return c->store && strcmp(c->store, "etcd") == 0 && c->endpoints && *c->endpoints &&
           !strchr(c->endpoints, ';') && c->prefix && c->prefix[0] == '/' &&
           !strpbrk(c->prefix, ";@");
}

int
pool_conf_read(const char *data_dir, struct pool_conf *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    char *path = path_of(data_dir, POOL_CONF), *text = NULL;
    size_t len = 0;
    int rc = path ? fileio_read_all(path, 65536, &text, &len) : -ENOMEM;
    free(path);
    if (rc < 0) {
        snprintf(why, why_len, "%s", strerror(-rc));
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    const char *store = json_string_value(json_object_get(root, "store"));
    const char *endpoints = json_string_value(json_object_get(root, "endpoints"));
    const char *prefix = json_string_value(json_object_get(root, "prefix"));
    if (store && endpoints && prefix) {
        out->store = strdup(store);
        out->endpoints = strdup(endpoints);
        out->prefix = strdup(prefix);
    }
    json_decref(root);
    if (!pool_conf_valid(out)) {
        pool_conf_clear(out);
        snprintf(why, why_len, "not {\"store\":\"etcd\",\"endpoints\":...,\"prefix\":\"/...\"}");
        return -EINVAL;
    }
    return 0;
}

int
pool_conf_write(const char *data_dir, const struct pool_conf *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "store", c->store, "endpoints", c->endpoints,
                          "prefix", c->prefix);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *path = path_of(data_dir, POOL_CONF);
    int rc = text && path ? fileio_write_atomic(path, text, strlen(text), 0600) : -ENOMEM;
    json_decref(o);
    free(text);
    free(path);
    return rc;
}

int
pool_conf_remove(const char *data_dir)
{
    char *path = path_of(data_dir, POOL_CONF);
    int rc = !path ? -ENOMEM : unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
    free(path);
    return rc;
}

int
pool_secret_read(const char *data_dir, char **out)
{
    char *path = path_of(data_dir, PTOKEN), *text = NULL;
    size_t len = 0;
    int rc = path ? fileio_read_all(path, 4096, &text, &len) : -ENOMEM;
    free(path);
    if (rc < 0)
        return rc;
    text[strcspn(text, "\r\n")] = '\0';
    if (!*text) {
        free(text);
        return -ENOENT;
    }
    *out = text;
    return 0;
}

int
pool_secret_write(const char *data_dir, const char *secret)
{
    char *path = path_of(data_dir, PTOKEN);
    int rc = path ? fileio_write_atomic(path, secret, strlen(secret), 0600) : -ENOMEM;
    free(path);
    return rc;
}

int
pool_secret_ensure(const char *data_dir, char **out)
{
    int rc = pool_secret_read(data_dir, out);
    if (rc != -ENOENT)
        return rc;
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -EIO;
    char hex[2 * sizeof(raw) + 1];
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof(raw));
    if ((rc = pool_secret_write(data_dir, hex)) < 0)
        return rc;
    *out = strdup(hex);
    return *out ? 0 : -ENOMEM;
}
