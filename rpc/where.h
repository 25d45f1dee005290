/* rpc/where.h - the expression language of get_all_records_where and
 * get_all_where (what `xe <class>-list param=value` sends).
 *
 * Grammar, limits and errors are in rpc/where.c's header. Any thread may call
 * these; a compiled expression is read-only while it is matched, so one may be
 * matched from several threads at once.
 */
#ifndef VESSEL_RPC_WHERE_H
#define VESSEL_RPC_WHERE_H

#include <stdbool.h>

#include "model/xerr.h"
#include "model/xtype.h"

/* Limits on one expression (docs/request-limits.md). Both are far
 * above what xe writes (one term per param=value) and small enough that a
 * match costs at most WHERE_MAX_TERMS comparisons per record. */
#define WHERE_MAX_TERMS 1024 /* true, false and value = value terms */
#define WHERE_MAX_DEPTH 64   /* nested parentheses and `not`s */

struct where_expr;

/* Compiles @expr against the fields of @cls. On success a new expression,
 * freed with where_free(); matching it costs stack bounded by WHERE_MAX_DEPTH
 * and memory used is linear in strlen(@expr). Errors: INVALID_VALUE [expr,
 * reason] for a syntax error or an expression over a limit (as xapi's
 * Db_filter.Expression_error; the expr is cut at 256 bytes in the error). */
struct where_expr *where_compile(const struct xclass *cls, const char *expr, struct xerr **errp);
/* Whether record @rec of the class @e was compiled for matches. */
bool where_match(const struct where_expr *e, const void *rec);
void where_free(struct where_expr *e);

#endif
