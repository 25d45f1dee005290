/* db/store.c - picks the backend named by the store's path and passes each
 * call to it (db/store.h). */
#include "db/store.h"

#include <string.h>

#define ETCD_SCHEME "etcd:"

int
store_open(const char *path, struct store **out, char *why, size_t why_len)
{
    if (strncmp(path, ETCD_SCHEME, strlen(ETCD_SCHEME)) == 0)
        return store_etcd_open(path + strlen(ETCD_SCHEME), out, why, why_len);
    return store_sqlite_open(path, out, why, why_len);
}

void
store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}

int
store_load(struct store *st, const struct xclass *cls, store_row_fn *fn, void *opaque)
{
    return st->ops->load(st, cls, fn, opaque);
}

int
store_load_tombstones(struct store *st, store_tomb_fn *fn, void *opaque)
{
    return st->ops->load_tombstones(st, fn, opaque);
}

uint64_t
store_generation(struct store *st)
{
    return st->ops->generation(st);
}

int
store_begin(struct store *st)
{
    return st->ops->begin(st);
}

int
store_put(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen_created,
          uint64_t gen_modified, uint64_t gen_read, const char *json, size_t len)
{
    return st->ops->put(st, cls, ref, gen_created, gen_modified, gen_read, json, len);
}

int
store_delete(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen,
             uint64_t gen_created, uint64_t gen_read)
{
    return st->ops->del(st, cls, ref, gen, gen_created, gen_read);
}

int
store_commit(struct store *st, uint64_t gen, uint64_t *committed)
{
    return st->ops->commit(st, gen, committed);
}

void
store_rollback(struct store *st)
{
    st->ops->rollback(st);
}

int
store_prune_tombstones(struct store *st, uint64_t gen)
{
    return st->ops->prune_tombstones(st, gen);
}

const char *
store_error(struct store *st)
{
    return st->ops->error(st);
}

bool
store_shared(struct store *st)
{
    return st->ops->follow != NULL;
}

int
store_follow(struct store *st, store_change_fn *fn, void *opaque)
{
    return st->ops->follow ? st->ops->follow(st, fn, opaque) : 0;
}

int
store_latest(struct store *st, uint64_t *gen)
{
    if (!st->ops->latest) {
        *gen = st->ops->generation(st);
        return 0;
    }
    return st->ops->latest(st, gen);
}

void
store_expect(struct store *st, uint64_t gen)
{
    if (st->ops->expect)
        st->ops->expect(st, gen);
}
