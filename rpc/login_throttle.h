/* rpc/login_throttle.h - who may try a password now: backoff per (address, account).
 *
 * Failed logins are counted per (address, account) and per address. Past
 * THROTTLE_FREE_FAILURES for a pair (THROTTLE_PEER_FREE_FAILURES for an
 * address, whatever the accounts tried), further tries are refused unchecked
 * for a backoff that doubles with each failure, from 1 s up to
 * THROTTLE_MAX_BACKOFF_S. A pair that logged in successfully before (within
 * THROTTLE_TRUST_S) is still checked while backed off, so the right password
 * passes, and only THROTTLE_TRUSTED_MAX_FAILURES failures turn that off: an
 * attacker sharing the owner's address gets no unlimited guesses.
 *
 * Memory is bounded: each table keeps at most its capacity of entries and drops
 * the least recently used one beyond it; a failure entry is forgotten
 * THROTTLE_FORGET_S after its last failure, a trusted pair after
 * THROTTLE_TRUST_S. IPv6 addresses count by their /64, which is what one host
 * can usually choose from. Not thread-safe: the caller locks (rpc/auth.c).
 */
#ifndef VESSEL_RPC_LOGIN_THROTTLE_H
#define VESSEL_RPC_LOGIN_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define THROTTLE_FREE_FAILURES 5
#define THROTTLE_PEER_FREE_FAILURES 20
#define THROTTLE_TRUSTED_MAX_FAILURES 50
#define THROTTLE_MAX_BACKOFF_S 300
#define THROTTLE_FORGET_S 900
#define THROTTLE_TRUST_S (30 * 86400)

struct login_throttle;

/* A throttle keeping at most @max_failures failure entries and @max_trusted
 * trusted pairs. NULL when out of memory. */
struct login_throttle *login_throttle_new(size_t max_failures, size_t max_trusted);
void login_throttle_free(struct login_throttle *t);

/* May @user try a password from @peer at @now? False: refuse without checking. */
bool login_throttle_admit(struct login_throttle *t, const char *peer, const char *user, time_t now);
void login_throttle_failed(struct login_throttle *t, const char *peer, const char *user, time_t now);
void login_throttle_succeeded(struct login_throttle *t, const char *peer, const char *user,
                              time_t now);
/* Entries held now (failures, trusted): for tests of the bounds. */
size_t login_throttle_size(const struct login_throttle *t, bool trusted);

#endif
