/* cli/args.c - xe's command line, XE_EXTRA_ARGS and ~/.xe.
 *
 * argv holds connection options (-s host, -p port, -u user, -pw password,
 * -pwf file, --nossl, --insecure, --debug, --unix path) anywhere, xe flags
 * (--minimal, --multiple, --all, --force, --progress), the command (the first other
 * token), and its arguments key=value or key:subkey=value (the key ends at the
 * first '=', so values may hold '=' and ':'; the subkey starts after the first
 * ':' of the key, so subkeys may hold ':'). Quoting is the shell's business:
 * a value is taken byte for byte. XE_EXTRA_ARGS and ~/.xe give the same
 * options as key=value (xapi's ocaml/xapi-cli-server/cli_frontend.ml and records.ml: precedence command line >
 * env > rc file > default). Nothing here talks to a server.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "common/errtext.h"

enum {
    OPT_SERVER = 1 << 0,
    OPT_PORT = 1 << 1,
    OPT_USER = 1 << 2,
    OPT_PASSWORD = 1 << 3,
    OPT_PWFILE = 1 << 4,
    OPT_UNIX = 1 << 5,
    OPT_NOSSL = 1 << 6,
    OPT_INSECURE = 1 << 7,
    OPT_DEBUG = 1 << 8,
};

static int
fail(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errtext_vset(why, why_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

bool
cli_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static int
set_str(char **dst, const char *v)
{
    char *d = strdup(v);
    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

/* Sets option @key (long rc-file name) to @v. */
static int
opt_set(struct cli_opts *o, const char *key, const char *v, char *why, size_t why_len)
{
    bool b;
    if (strcmp(key, "server") == 0) {
        o->set |= OPT_SERVER;
        return set_str(&o->server, v);
    }
    if (strcmp(key, "username") == 0) {
        o->set |= OPT_USER;
        return set_str(&o->username, v);
    }
    if (strcmp(key, "password") == 0) {
        o->set |= OPT_PASSWORD;
        return set_str(&o->password, v);
    }
    if (strcmp(key, "passwordfile") == 0) {
        o->set |= OPT_PWFILE;
        return set_str(&o->passwordfile, v);
    }
    if (strcmp(key, "unix") == 0) {
        o->set |= OPT_UNIX;
        return set_str(&o->unix_path, v);
    }
    if (strcmp(key, "port") == 0) {
        char *end;
        long p = strtol(v, &end, 10);
        if (!*v || *end || p <= 0 || p > 65535)
            return fail(why, why_len, "invalid port '%s'", v);
        o->port = (int)p;
        o->set |= OPT_PORT;
        return 0;
    }
    struct {
        const char *name;
        bool *field;
        unsigned bit;
    } bools[] = {{"nossl", &o->nossl, OPT_NOSSL},
                 {"insecure", &o->insecure, OPT_INSECURE},
                 {"debug", &o->debug, OPT_DEBUG}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        if (strcmp(key, bools[i].name) != 0)
            continue;
        if (!cli_parse_bool(v, &b))
            return fail(why, why_len, "invalid value for %s: '%s'", key, v);
        *bools[i].field = b;
        o->set |= bools[i].bit;
        return 0;
    }
    return fail(why, why_len, "unknown option '%s'", key);
}

/* Short options that take a value, and their long names. */
static const char *
short_opt(const char *tok)
{
    static const char *const map[][2] = {{"-s", "server"},      {"-p", "port"},
                                         {"-u", "username"},    {"-pw", "password"},
                                         {"-pwf", "passwordfile"}, {"--unix", "unix"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(tok, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

int
cli_arg_split(const char *tok, struct cli_arg *out)
{
    memset(out, 0, sizeof(*out));
    const char *eq = strchr(tok, '=');
    if (!eq || eq == tok)
        return -EINVAL;
    const char *colon = memchr(tok, ':', (size_t)(eq - tok));
    size_t klen = (size_t)((colon ? colon : eq) - tok);
    if (klen == 0)
        return -EINVAL;
    out->key = strndup(tok, klen);
    out->subkey = colon ? strndup(colon + 1, (size_t)(eq - colon - 1)) : NULL;
    out->value = strdup(eq + 1);
    if (!out->key || !out->value || (colon && !out->subkey)) {
        free(out->key);
        free(out->subkey);
        free(out->value);
        memset(out, 0, sizeof(*out));
        return -ENOMEM;
    }
    return 0;
}

static int
args_push(struct cli_args *a, struct cli_arg *arg)
{
    struct cli_arg *nv = realloc(a->v, (a->n + 1) * sizeof(*nv));
    if (!nv) {
        free(arg->key);
        free(arg->subkey);
        free(arg->value);
        return -ENOMEM;
    }
    a->v = nv;
    a->v[a->n++] = *arg;
    return 0;
}

/* A --flag: a connection option or an xe flag. 1: not a flag token. */
static int
parse_flag(const char *tok, struct cli_opts *o, struct cli_args *a, char *why, size_t why_len)
{
    if (strncmp(tok, "--", 2) != 0)
        return 1;
    const char *name = tok + 2;
    if (strncmp(name, "unix=", 5) == 0)
        return opt_set(o, "unix", name + 5, why, why_len);
    if (strcmp(name, "minimal") == 0)
        a->minimal = true;
    else if (strcmp(name, "multiple") == 0)
        a->multiple = true;
    else if (strcmp(name, "all") == 0)
        a->all = true;
    else if (strcmp(name, "force") == 0)
        a->force = true;
    else if (strcmp(name, "progress") == 0)
        a->progress = true;
    else if (strcmp(name, "nossl") == 0 || strcmp(name, "insecure") == 0 ||
             strcmp(name, "debug") == 0)
        return opt_set(o, name, "true", why, why_len);
    else if (strcmp(name, "debug-on-fail") == 0)
        ; /* accepted for compatibility: errors are always fully printed */
    else
        return fail(why, why_len, "unknown flag '%s'", tok);
    return 0;
}

int
cli_parse_argv(int argc, char *const *argv, struct cli_opts *opts, struct cli_args *args,
               char *why, size_t why_len)
{
    for (int i = 0; i < argc; i++) {
        const char *tok = argv[i];
        const char *lname = short_opt(tok);
        int rc;
        if (lname) {
            if (i + 1 >= argc)
                return fail(why, why_len, "option %s needs a value", tok);
            if ((rc = opt_set(opts, lname, argv[++i], why, why_len)) < 0)
                return rc;
            continue;
        }
        if ((rc = parse_flag(tok, opts, args, why, why_len)) <= 0) {
            if (rc < 0)
                return rc;
            continue;
        }
        if (!args->command && !strchr(tok, '=')) {
            if (!(args->command = strdup(tok)))
                return -ENOMEM;
            continue;
        }
        struct cli_arg arg;
        if (!strchr(tok, '=')) {
            /* a positional word: only `help <command>` takes one */
            memset(&arg, 0, sizeof(arg));
            if (!(arg.key = strdup(tok)))
                return -ENOMEM;
        } else if ((rc = cli_arg_split(tok, &arg)) < 0) {
            return rc == -EINVAL ? fail(why, why_len, "bad argument '%s'", tok) : rc;
        }
        if ((rc = args_push(args, &arg)) < 0)
            return rc;
    }
    return 0;
}

/* Strips surrounding blanks and one pair of double quotes, in place. */
static char *
trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

int
cli_parse_rc(const char *text, struct cli_opts *opts, char *why, size_t why_len)
{
    char *copy = strdup(text);
    if (!copy)
        return -ENOMEM;
    int rc = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            rc = fail(why, why_len, "~/.xe: line %d: expected key=value", lineno);
            break;
        }
        *eq = '\0';
        if ((rc = opt_set(opts, trim(l), trim(eq + 1), why, why_len)) < 0)
            break;
    }
    free(copy);
    return rc;
}

int
cli_parse_extra_args(const char *s, struct cli_opts *opts, char *why, size_t why_len)
{
    /* Split on unescaped commas into words, then parse them like argv
     * (key=value words are rc-style options). */
    size_t n = 0, cap = 8;
    char **words = calloc(cap, sizeof(*words));
    char *cur = malloc(strlen(s) + 1);
    int rc = 0;
    if (!words || !cur) {
        free(words);
        free(cur);
        return -ENOMEM;
    }
    size_t len = 0;
    for (const char *p = s;; p++) {
        if (*p == '\\' && (p[1] == ',' || p[1] == '\\')) {
            cur[len++] = *++p;
            continue;
        }
        if (*p && *p != ',') {
            cur[len++] = *p;
            continue;
        }
        cur[len] = '\0';
        if (len > 0) {
            if (n + 1 >= cap) {
                char **nw = realloc(words, (cap *= 2) * sizeof(*nw));
                if (!nw) {
                    rc = -ENOMEM;
                    break;
                }
                words = nw;
            }
            if (!(words[n++] = strdup(cur))) {
                rc = -ENOMEM;
                break;
            }
        }
        len = 0;
        if (!*p)
            break;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *lname = short_opt(words[i]);
        char *eq = strchr(words[i], '=');
        if (lname) {
            if (i + 1 >= n)
                rc = fail(why, why_len, "XE_EXTRA_ARGS: option %s needs a value", words[i]);
            else
                rc = opt_set(opts, lname, words[++i], why, why_len);
        } else if (strncmp(words[i], "--", 2) == 0) {
            rc = opt_set(opts, words[i] + 2, "true", why, why_len);
        } else if (eq) {
            *eq = '\0';
            rc = opt_set(opts, words[i], eq + 1, why, why_len);
        } else {
            rc = fail(why, why_len, "XE_EXTRA_ARGS: cannot parse '%s'", words[i]);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(words[i]);
    free(words);
    free(cur);
    return rc;
}

static void
merge_str(char **dst, char *const *src, unsigned bit, struct cli_opts *d, const struct cli_opts *s)
{
    if (!(d->set & bit) && (s->set & bit) && *src) {
        char *c = strdup(*src);
        if (c) {
            free(*dst);
            *dst = c;
            d->set |= bit;
        }
    }
}

void
cli_opts_merge(struct cli_opts *dst, const struct cli_opts *src)
{
    merge_str(&dst->server, &src->server, OPT_SERVER, dst, src);
    merge_str(&dst->username, &src->username, OPT_USER, dst, src);
    merge_str(&dst->password, &src->password, OPT_PASSWORD, dst, src);
    merge_str(&dst->passwordfile, &src->passwordfile, OPT_PWFILE, dst, src);
    merge_str(&dst->unix_path, &src->unix_path, OPT_UNIX, dst, src);
    if (!(dst->set & OPT_PORT) && (src->set & OPT_PORT)) {
        dst->port = src->port;
        dst->set |= OPT_PORT;
    }
    if (!(dst->set & OPT_NOSSL) && (src->set & OPT_NOSSL)) {
        dst->nossl = src->nossl;
        dst->set |= OPT_NOSSL;
    }
    if (!(dst->set & OPT_INSECURE) && (src->set & OPT_INSECURE)) {
        dst->insecure = src->insecure;
        dst->set |= OPT_INSECURE;
    }
    if (!(dst->set & OPT_DEBUG) && (src->set & OPT_DEBUG)) {
        dst->debug = src->debug;
        dst->set |= OPT_DEBUG;
    }
}

void
cli_opts_release(struct cli_opts *o)
{
    free(o->server);
    free(o->username);
    free(o->password);
    free(o->passwordfile);
    free(o->unix_path);
    memset(o, 0, sizeof(*o));
}

void
cli_args_release(struct cli_args *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].key);
        free(a->v[i].subkey);
        free(a->v[i].value);
    }
    free(a->v);
    free(a->command);
    memset(a, 0, sizeof(*a));
}

const char *
cli_arg_get(const struct cli_args *a, const char *key)
{
    for (size_t i = a->n; i-- > 0;)
        if (!a->v[i].subkey && a->v[i].value && strcmp(a->v[i].key, key) == 0)
            return a->v[i].value;
    return NULL;
}

/* Binary units, as xe's vdi-create and vm-disk-add take them ("10GiB",
 * "512MiB", "10G"); decimal SI units ("GB") are accepted as binary too, as
 * xapi's Record_util.bytes_of_string does. */
int
cli_parse_size(const char *text, int64_t *out)
{
    static const struct {
        const char *suffix;
        int shift;
    } units[] = {
        {"", 0},    {"B", 0},    {"K", 10},  {"KB", 10}, {"KiB", 10}, {"M", 20},
        {"MB", 20}, {"MiB", 20}, {"G", 30},  {"GB", 30}, {"GiB", 30}, {"T", 40},
        {"TB", 40}, {"TiB", 40},
    };
    if (!text || *text < '0' || *text > '9')
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        if (n > (unsigned long long)INT64_MAX >> units[i].shift)
            return -EINVAL;
        *out = (int64_t)(n << units[i].shift);
        return 0;
    }
    return -EINVAL;
}

int
cli_arg_force(const struct cli_args *a, bool *force)
{
    const char *v = cli_arg_get(a, "force");
    *force = a->force;
    if (v && !cli_parse_bool(v, force))
        return -EINVAL;
    if (a->force)
        *force = true;
    return 0;
}
