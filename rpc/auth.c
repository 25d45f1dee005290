/* rpc/auth.c - the passwd file, yescrypt checks, login throttling.
 *
 * The file is replaced atomically (write a temporary, fsync, rename) so a
 * crash never leaves it half written. Who may try a password when is
 * rpc/login_throttle.c's to say; this file only reports outcomes to it.
 */
#include "rpc/auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/strbuf.h"
#include "rpc/login_throttle.h"

struct account {
    char *name;
    char *hash;
};

struct auth {
    pthread_mutex_t mu;
    char *path;
    struct timespec mtime;
    struct account *accounts;
    size_t n_accounts;
    struct login_throttle *throttle;
    char dummy_hash[CRYPT_OUTPUT_SIZE];
};

static void
accounts_clear(struct auth *a)
{
    for (size_t i = 0; i < a->n_accounts; i++) {
        free(a->accounts[i].name);
        explicit_bzero(a->accounts[i].hash, strlen(a->accounts[i].hash));
        free(a->accounts[i].hash);
    }
    free(a->accounts);
    a->accounts = NULL;
    a->n_accounts = 0;
}

/* Re-reads the file when its mtime changed. Called with mu held. */
static void
accounts_refresh(struct auth *a)
{
    struct stat st;
    if (stat(a->path, &st) != 0) {
        accounts_clear(a);
        return;
    }
    if (st.st_mtim.tv_sec == a->mtime.tv_sec && st.st_mtim.tv_nsec == a->mtime.tv_nsec &&
        a->accounts)
        return;
    FILE *f = fopen(a->path, "r");
    if (!f)
        return;
    accounts_clear(a);
    a->mtime = st.st_mtim;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            continue;
        *colon = '\0';
        struct account *grown = realloc(a->accounts, (a->n_accounts + 1) * sizeof(*grown));
        if (!grown)
            break;
        a->accounts = grown;
        char *name = strdup(line), *hash = strdup(colon + 1);
        if (!name || !hash) {
            free(name);
            free(hash);
            break;
        }
        a->accounts[a->n_accounts++] = (struct account){name, hash};
    }
    fclose(f);
}

static const char *
account_hash(struct auth *a, const char *user)
{
    for (size_t i = 0; i < a->n_accounts; i++)
        if (strcmp(a->accounts[i].name, user) == 0)
            return a->accounts[i].hash;
    return NULL;
}

static int
make_hash(const char *password, char out[CRYPT_OUTPUT_SIZE])
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)))
        return -errno ? -errno : -EINVAL;
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    char *h = crypt_r(password, salt, &cd);
    if (!h || h[0] == '*')
        return -EINVAL;
    snprintf(out, CRYPT_OUTPUT_SIZE, "%s", h);
    explicit_bzero(&cd, sizeof(cd));
    return 0;
}

int
auth_open(const char *passwd_path, struct auth **out)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a || !(a->path = strdup(passwd_path))) {
        free(a);
        return -ENOMEM;
    }
    pthread_mutex_init(&a->mu, NULL);
    if (!(a->throttle = login_throttle_new(AUTH_MAX_TRACKED, AUTH_MAX_TRUSTED))) {
        auth_close(a);
        return -ENOMEM;
    }
    char pw[32];
    auth_random_password(pw, sizeof(pw));
    int rc = make_hash(pw, a->dummy_hash);
    if (rc < 0) {
        auth_close(a);
        return rc;
    }
    accounts_refresh(a);
    *out = a;
    return 0;
}

void
auth_close(struct auth *a)
{
    if (!a)
        return;
    accounts_clear(a);
    login_throttle_free(a->throttle);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

enum auth_result
auth_check(struct auth *a, const char *user, const char *password, const char *peer)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&a->mu);
    if (!login_throttle_admit(a->throttle, peer, user, now)) {
        pthread_mutex_unlock(&a->mu);
        return AUTH_THROTTLED;
    }
    accounts_refresh(a);
    const char *known = account_hash(a, user);
    char hash[CRYPT_OUTPUT_SIZE];
    snprintf(hash, sizeof(hash), "%s", known ? known : a->dummy_hash);
    pthread_mutex_unlock(&a->mu);

    /* The expensive part runs unlocked: logins do not queue behind each other. */
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    bool ok = false;
    if (cd) {
        char *h = crypt_r(password, hash, cd);
        if (h && h[0] != '*') {
            size_t n = strlen(hash);
            unsigned diff = strlen(h) != n;
            for (size_t i = 0; i < n && h[i]; i++)
                diff |= (unsigned)(h[i] ^ hash[i]);
            ok = diff == 0 && known;
        }
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
    }
    pthread_mutex_lock(&a->mu);
    if (ok)
        login_throttle_succeeded(a->throttle, peer, user, now);
    else
        login_throttle_failed(a->throttle, peer, user, now);
    pthread_mutex_unlock(&a->mu);
    return ok ? AUTH_OK : AUTH_BAD;
}

bool
auth_has_user(struct auth *a, const char *user)
{
    pthread_mutex_lock(&a->mu);
    accounts_refresh(a);
    bool yes = account_hash(a, user) != NULL;
    pthread_mutex_unlock(&a->mu);
    return yes;
}

int
auth_set_password(struct auth *a, const char *user, const char *password)
{
    if (!*user || strchr(user, ':') || strchr(user, '\n'))
        return -EINVAL;
    char hash[CRYPT_OUTPUT_SIZE];
    int rc = make_hash(password, hash);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->mu);
    accounts_refresh(a);
    /* The hashes are secret: the file is written whole, 0600 (common/fileio.h). */
    struct strbuf sb = STRBUF_INIT;
    bool replaced = false;
    for (size_t i = 0; i < a->n_accounts; i++) {
        bool me = strcmp(a->accounts[i].name, user) == 0;
        strbuf_printf(&sb, "%s:%s\n", a->accounts[i].name, me ? hash : a->accounts[i].hash);
        replaced |= me;
    }
    if (!replaced)
        strbuf_printf(&sb, "%s:%s\n", user, hash);
    rc = strbuf_ok(&sb) ? fileio_write_atomic(a->path, sb.buf, sb.len, 0600) : -ENOMEM;
    if (sb.buf)
        explicit_bzero(sb.buf, sb.len);
    strbuf_release(&sb);
    a->mtime.tv_sec = 0; /* force a re-read */
    accounts_clear(a);
    accounts_refresh(a);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void
auth_random_password(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char b[64];
    size_t n = len - 1 < 20 ? len - 1 : 20;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[b[i] % (sizeof(alphabet) - 1)];
    out[n] = '\0';
}
