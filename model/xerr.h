/* model/xerr.h - a XenAPI error on its way to the client.
 *
 * From db/ upward, functions take `struct xerr **errp` last and return
 * success; the first error set wins, and errp may be NULL (the caller does not
 * care why). An xerr carries the wire code and its string parameters, plus
 * where it was raised, for the log line rpc/ writes when it reports it.
 * Setters for every code of datamodel/errors.json are generated into
 * build/generated/xapi_errors.h with the parameters named, so the arity of an
 * error cannot be wrong; the functions here are what they call.
 */
#ifndef VESSEL_MODEL_XERR_H
#define VESSEL_MODEL_XERR_H

#include <stdbool.h>
#include <stddef.h>

struct xerr {
    char *code;
    char **params;
    size_t n_params;
    const char *file;
    int line;
};

/* Sets *errp (when errp and no earlier error) to @code with @n string params
 * (NULL params become ""). Always returns false. Out of memory while building
 * the error leaves a static INTERNAL_ERROR-shaped fallback. */
bool xerr_set_at(struct xerr **errp, const char *file, int line, const char *code, size_t n,
                 const char *const *params);
__attribute__((format(printf, 4, 5))) bool xerr_internal_at(struct xerr **errp, const char *file,
                                                            int line, const char *fmt, ...);
#define xerr_internal(errp, ...) xerr_internal_at((errp), __FILE__, __LINE__, __VA_ARGS__)
#define xerr_nomem(errp) xerr_internal_at((errp), __FILE__, __LINE__, "out of memory")
/* Raise a code with a literal parameter list: xerr_raise(errp, "X", a, b). */
#define xerr_raise(errp, code, ...)                                                                \
    xerr_set_at((errp), __FILE__, __LINE__, (code),                                                \
                sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *),                      \
                (const char *[]){__VA_ARGS__})
#define xerr_raise0(errp, code) xerr_set_at((errp), __FILE__, __LINE__, (code), 0, NULL)

void xerr_free(struct xerr *e);
void xerr_freep(struct xerr **e);
struct xerr *xerr_copy(const struct xerr *e);
/* Moves *src into *errp (first error wins); *src becomes NULL. Returns false. */
bool xerr_propagate(struct xerr **errp, struct xerr **src);
/* "CODE [p1, p2]" for logs, into @buf. */
const char *xerr_describe(const struct xerr *e, char *buf, size_t len);

#endif
