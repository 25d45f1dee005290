/* rpc/auth.h - local accounts: password hashes and login throttling.
 *
 * Accounts live in DATA/passwd ("name:hash" lines, mode 0600), hashed with
 * yescrypt through libcrypt; the file is re-read when it changes, so
 * `vesseld passwd` works on a running daemon. A check for an unknown user
 * does the same hashing work as for a known one (no timing oracle). Failed
 * logins back off per (address, account) as rpc/login_throttle.h describes;
 * the tables hold at most AUTH_MAX_TRACKED failure entries and
 * AUTH_MAX_TRUSTED pairs that logged in before. Thread-safe.
 */
#ifndef VESSEL_RPC_AUTH_H
#define VESSEL_RPC_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_MAX_TRACKED 100000
#define AUTH_MAX_TRUSTED 10000

struct auth;

int auth_open(const char *passwd_path, struct auth **out);
void auth_close(struct auth *a);

enum auth_result { AUTH_OK, AUTH_BAD, AUTH_THROTTLED };
enum auth_result auth_check(struct auth *a, const char *user, const char *password,
                            const char *peer);
/* Sets (or adds) @user's password. 0 or negative errno. */
int auth_set_password(struct auth *a, const char *user, const char *password);
bool auth_has_user(struct auth *a, const char *user);
/* Writes a random password of 20 characters into @out (>= 21 bytes). */
void auth_random_password(char *out, size_t len);

#endif
