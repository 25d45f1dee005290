/* api/pool_conf.h - what a pool member keeps outside the store: the pool's
 * store settings (DATA/pool.conf) and the pool secret (DATA/ptoken, 0600, as
 * xapi's /etc/xensource/ptoken).
 *
 * pool.conf is JSON: {"store":"etcd","endpoints":"URL[,URL...]","prefix":"/P"}.
 * Written by pool.join, removed by pool.eject, read by vesseld at start
 * (daemon/main.c: it overrides the SQLite default; --store on the command
 * line wins).
 */
#ifndef VESSEL_API_POOL_CONF_H
#define VESSEL_API_POOL_CONF_H

#include <stdbool.h>
#include <stddef.h>

struct pool_conf {
    char *store;     /* "etcd" */
    char *endpoints; /* comma-separated URLs */
    char *prefix;    /* "/vessel/pool0" */
};

/* Reads DATA/pool.conf. 0 and *@out filled (pool_conf_clear it), -ENOENT
 * when there is none, another negative errno (and a reason in @why) when it
 * cannot be read or is not the shape above. */
int pool_conf_read(const char *data_dir, struct pool_conf *out, char *why, size_t why_len);
/* Writes DATA/pool.conf atomically (0600). 0 or a negative errno. */
int pool_conf_write(const char *data_dir, const struct pool_conf *c);
int pool_conf_remove(const char *data_dir);
void pool_conf_clear(struct pool_conf *c);
/* Whether the settings are ones vesseld can open (etcd, an endpoint list
 * without ';', a prefix starting with '/' without ';' or '@'). */
bool pool_conf_valid(const struct pool_conf *c);

/* The pool secret: DATA/ptoken. pool_secret_read: 0 and *out (free()), or a
 * negative errno. pool_secret_ensure makes one (32 random bytes, hex) when
 * there is none. */
int pool_secret_read(const char *data_dir, char **out);
int pool_secret_write(const char *data_dir, const char *secret);
int pool_secret_ensure(const char *data_dir, char **out);

#endif
