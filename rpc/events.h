/* rpc/events.h - event.from and event.next: long polls on the store's changes.
 *
 * A call that finds no change after its token waits here without a thread: its
 * HTTP request stays suspended and a waiter is queued. One thread sleeps on a
 * condition variable that db/'s commit hook signals; on every commit (and at
 * the nearest deadline) it re-checks the waiters, answers those with events or
 * past their deadline, and those whose session died (SESSION_INVALID). Tokens
 * are "%020llu,%020llu": the store generation, and a message generation (0:
 * messages are ordinary objects here).
 */
#ifndef VESSEL_RPC_EVENTS_H
#define VESSEL_RPC_EVENTS_H

#include "rpc/call.h"

int events_start(struct server *srv, struct events **out);
/* Answers every waiter (SESSION_INVALID) and stops the thread; later calls
 * are answered at once. The struct stays valid for late callers until
 * events_free, which is called after the HTTP server has stopped. */
void events_stop(struct events *ev);
void events_free(struct events *ev);
/* db_commit_fn for db_set_commit_hook. */
void events_on_commit(void *opaque, uint64_t gen);
/* Serves event.from / event.next for @call (the session is checked). Replies
 * now or later; takes ownership of @call. */
void events_from(struct events *ev, struct rpc_call *call, struct xval *const *args);
void events_next(struct events *ev, struct rpc_call *call);
/* Legacy registration, per session (event.register / unregister). */
bool events_register(struct events *ev, const char *session, const struct xset *classes,
                     bool add, struct xerr **errp);
/* The token for "now" (event.inject's answer is just before a change). */
void events_format_token(uint64_t gen, char buf[48]);

#endif
