/* rpc/events.c - event.from / event.next long polls (xapi's ocaml/xapi/xapi_event.ml).
 *
 * A call first looks for changes at once; if there are none and it may wait,
 * it becomes a waiter: its HTTP request stays suspended (no thread held) and
 * one events thread re-checks all waiters whenever db/ commits (the commit
 * hook sets `dirty` and signals) or a deadline passes. Waiters are answered
 * from that thread; the check reads the store's generations, so a commit is
 * reported within the time it takes to wake one thread.
 *
 * Subscriptions: "*" (every class that has events), "<class>" (any case), or
 * "<class>/<ref>" (one object). Tokens: "%020llu,%020llu", the store's
 * generation and a message generation that is always 0 (messages are ordinary
 * objects here, so their changes are in the first half).
 */
#include "rpc/events.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/hashmap.h"
#include "db/db.h"
#include "rpc/session.h"
#include "xapi_model.h"
#include "xapi_errors.h"

#define MASK_WORDS 4 /* up to 256 classes */
#define SESSION_RECHECK_MS 1000

struct sub_ref {
    unsigned cls_id;
    char *ref;
};

struct subscription {
    uint64_t mask[MASK_WORDS];      /* classes subscribed (whole or per object) */
    uint64_t whole[MASK_WORDS];     /* classes subscribed whole */
    struct sub_ref *refs;           /* per-object subscriptions */
    size_t n_refs;
};

struct waiter {
    struct rpc_call *call;
    bool legacy;
    uint64_t since;
    struct subscription sub;
    struct timespec deadline; /* legacy: none (tv_sec = 0) */
    struct waiter *next;
};

struct legacy_reg {
    char *session; /* key */
    struct subscription sub;
    uint64_t cursor;
};

struct events {
    struct server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    bool stop;
    bool dirty;
    struct waiter *waiters;
    struct hashmap legacy; /* session ref -> struct legacy_reg */
    uint64_t legacy_counter;
};

/* ------------------------------------------------------------------ subscriptions */

static void
sub_release(struct subscription *s)
{
    for (size_t i = 0; i < s->n_refs; i++)
        free(s->refs[i].ref);
    free(s->refs);
    memset(s, 0, sizeof(*s));
}

static void
mask_set(uint64_t *m, unsigned id)
{
    m[id / 64] |= 1ull << (id % 64);
}

static bool
mask_has(const uint64_t *m, unsigned id)
{
    return m[id / 64] & (1ull << (id % 64));
}

static bool
sub_add(struct subscription *s, const char *text, struct xerr **errp)
{
    if (strcmp(text, "*") == 0) {
        for (size_t i = 0; i < xapi_n_classes; i++)
            if (xapi_classes[i]->events) {
                mask_set(s->mask, xapi_classes[i]->id);
                mask_set(s->whole, xapi_classes[i]->id);
            }
        return true;
    }
    char name[128];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof(name))
        return xerr_event_subscription_parse_failure(errp, text);
    memcpy(name, text, len);
    name[len] = '\0';
    const struct xclass *cls = xapi_class_by_name_ci(name);
    if (!cls || !cls->events) {
        /* Classes we do not model have no objects, so no events: accept them
         * (clients subscribe to every class xapi has) but report nothing. The
         * same for classes without events (session, secret): a session's ref
         * is its bearer token and a secret's value is secret, so no reader
         * may learn them from the event stream, as in xapi (gen_events:false). */
        if (strncmp(name, "OpaqueRef", 9) == 0)
            return xerr_event_subscription_parse_failure(errp, text);
        return true;
    }
    mask_set(s->mask, cls->id);
    if (!slash) {
        mask_set(s->whole, cls->id);
        return true;
    }
    struct sub_ref *grown = realloc(s->refs, (s->n_refs + 1) * sizeof(*grown));
    if (!grown)
        return xerr_nomem(errp);
    s->refs = grown;
    if (!(s->refs[s->n_refs].ref = strdup(slash + 1)))
        return xerr_nomem(errp);
    s->refs[s->n_refs++].cls_id = cls->id;
    return true;
}

static bool
sub_parse(struct subscription *s, const struct xval *classes, struct xerr **errp)
{
    if (!classes || classes->kind != XVAL_ARRAY)
        return xerr_field_type_error(errp, "classes");
    for (size_t i = 0; i < classes->arr.n; i++) {
        const struct xval *c = classes->arr.items[i];
        if (c->kind != XVAL_STRING)
            return xerr_field_type_error(errp, "classes");
        if (!sub_add(s, c->str.s, errp))
            return false;
    }
    return true;
}

static bool
sub_wants(const struct subscription *s, const struct xclass *cls, const char *ref)
{
    if (mask_has(s->whole, cls->id))
        return true;
    for (size_t i = 0; i < s->n_refs; i++)
        if (s->refs[i].cls_id == cls->id && strcmp(s->refs[i].ref, ref) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ tokens */

void
events_format_token(uint64_t gen, char buf[48])
{
    snprintf(buf, 48, "%020" PRIu64 ",%020" PRIu64, gen, (uint64_t)0);
}

static bool
parse_token(const char *s, uint64_t *gen)
{
    char *end;
    if (!*s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long g = strtoull(s, &end, 10);
    if (errno || *end != ',' || end[1] < '0' || end[1] > '9')
        return false;
    strtoull(end + 1, &end, 10);
    if (errno || *end)
        return false;
    *gen = g;
    return true;
}

/* ------------------------------------------------------------------ reports */

struct counter {
    const struct subscription *sub;
    size_t n;
};

static void
count_change(void *opaque, const struct xclass *cls, enum db_change_op op, const char *ref,
             uint64_t gen, const void *rec)
{
    struct counter *c = opaque;
    if (sub_wants(c->sub, cls, ref))
        c->n++;
}

struct writer_ctx {
    struct events *ev;
    const struct subscription *sub;
    struct wire_writer *w;
    bool legacy;
};

static const char *const op_names[] = {"add", "mod", "del"};

static void
write_change(void *opaque, const struct xclass *cls, enum db_change_op op, const char *ref,
             uint64_t gen, const void *rec)
{
    struct writer_ctx *c = opaque;
    if (!sub_wants(c->sub, cls, ref))
        return;
    char id[24], ts[24];
    struct wire_writer *w = c->w;
    if (c->legacy) {
        snprintf(id, sizeof(id), "%" PRIu64, ++c->ev->legacy_counter);
        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    } else {
        snprintf(id, sizeof(id), "%" PRIu64, gen);
        snprintf(ts, sizeof(ts), "0.0");
    }
    wire_begin_struct(w);
    wire_member(w, "id");
    wire_string(w, id);
    wire_member(w, "timestamp");
    wire_string(w, ts);
    wire_member(w, "class");
    wire_string(w, cls->lower);
    wire_member(w, "operation");
    wire_string(w, op_names[op]);
    wire_member(w, "ref");
    wire_string(w, ref);
    if (rec) {
        wire_member(w, "obj_uuid");
        wire_string(w, xrecord_uuid(cls, rec));
        wire_member(w, "snapshot");
        xrecord_encode(cls, rec, w, false);
    }
    wire_end_struct(w);
}

struct from_reply {
    struct events *ev;
    const struct subscription *sub;
    bool full;       /* token "": every object as add */
    uint64_t since;
    bool lost;
};

static void
write_from_reply(void *opaque, struct wire_writer *w)
{
    struct from_reply *r = opaque;
    struct writer_ctx c = {r->ev, r->sub, w, false};
    uint64_t now = 0;
    wire_begin_struct(w);
    wire_member(w, "events");
    wire_begin_array(w);
    if (r->full)
        db_report_all(r->ev->srv->db, r->sub->mask, write_change, &c, &now);
    else if (!db_changes_since(r->ev->srv->db, r->since, r->sub->mask, write_change, &c, &now))
        r->lost = true; /* cannot happen: checked before replying */
    wire_end_array(w);
    wire_member(w, "valid_ref_counts");
    wire_begin_struct(w);
    for (size_t i = 0; i < xapi_n_classes; i++) {
        wire_member(w, xapi_classes[i]->lower);
        wire_int32(w, (int32_t)db_count(r->ev->srv->db, xapi_classes[i]));
    }
    wire_end_struct(w);
    wire_member(w, "token");
    char token[48];
    events_format_token(now, token);
    wire_string(w, token);
    wire_end_struct(w);
}

static void
write_next_reply(void *opaque, struct wire_writer *w)
{
    struct from_reply *r = opaque;
    struct writer_ctx c = {r->ev, r->sub, w, true};
    uint64_t now = 0;
    wire_begin_array(w);
    db_changes_since(r->ev->srv->db, r->since, r->sub->mask, write_change, &c, &now);
    wire_end_array(w);
}

/* How many changes the waiter would see; -1 when its token is too old. */
static long
pending_changes(struct events *ev, uint64_t since, const struct subscription *sub)
{
    struct counter c = {sub, 0};
    uint64_t now;
    if (!db_changes_since(ev->srv->db, since, sub->mask, count_change, &c, &now))
        return -1;
    return (long)c.n;
}

static void
reply_code(struct rpc_call *call, const char *code, const char *param)
{
    struct xerr *err = NULL;
    if (param)
        xerr_raise(&err, code, param);
    else
        xerr_raise0(&err, code);
    rpc_call_reply_error(call, err);
    xerr_free(err);
}

/* ------------------------------------------------------------------ legacy registration */

static void
legacy_free(void *p)
{
    struct legacy_reg *r = p;
    sub_release(&r->sub);
    free(r->session);
    free(r);
}

bool
events_register(struct events *ev, const char *session, const struct xset *classes, bool add,
                struct xerr **errp)
{
    pthread_mutex_lock(&ev->mu);
    struct legacy_reg *r = hashmap_get(&ev->legacy, session);
    if (!r && add) {
        r = calloc(1, sizeof(*r));
        if (!r || !(r->session = strdup(session)) || hashmap_put(&ev->legacy, r->session, r) < 0) {
            if (r)
                free(r->session);
            free(r);
            pthread_mutex_unlock(&ev->mu);
            return xerr_nomem(errp);
        }
        r->cursor = db_generation(ev->srv->db);
    }
    bool ok = true;
    if (r) {
        char *const *names = classes->items;
        if (add) {
            for (size_t i = 0; i < classes->n && ok; i++)
                ok = sub_add(&r->sub, names[i], errp);
        } else {
            /* Unregistering rebuilds the subscription without those classes. */
            struct subscription keep = {0};
            for (size_t c = 0; c < xapi_n_classes; c++) {
                const struct xclass *cls = xapi_classes[c];
                if (!mask_has(r->sub.whole, cls->id))
                    continue;
                bool drop = false;
                for (size_t i = 0; i < classes->n; i++)
                    drop |= strcmp(names[i], "*") == 0 || strcasecmp(names[i], cls->name) == 0;
                if (!drop)
                    sub_add(&keep, cls->name, NULL);
            }
            sub_release(&r->sub);
            r->sub = keep;
        }
    }
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

/* ------------------------------------------------------------------ waiting */

static void
deadline_after(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (seconds > 86400.0)
        seconds = 86400.0;
    long long ns = (long long)(seconds * 1e9);
    ts->tv_sec += ns / 1000000000LL;
    ts->tv_nsec += ns % 1000000000LL;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool
passed(const struct timespec *deadline, const struct timespec *now)
{
    if (deadline->tv_sec == 0)
        return false;
    return now->tv_sec > deadline->tv_sec ||
           (now->tv_sec == deadline->tv_sec && now->tv_nsec >= deadline->tv_nsec);
}

static void
waiter_free(struct waiter *w)
{
    sub_release(&w->sub);
    free(w);
}

static void
enqueue(struct events *ev, struct waiter *w)
{
    pthread_mutex_lock(&ev->mu);
    if (ev->stop) {
        pthread_mutex_unlock(&ev->mu);
        reply_code(w->call, "SESSION_INVALID", w->call->session_ref);
        waiter_free(w);
        return;
    }
    w->next = ev->waiters;
    ev->waiters = w;
    /* A commit between our check and now must not be missed: re-check. */
    ev->dirty = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static void
answer_legacy(struct events *ev, struct waiter *w)
{
    struct from_reply r = {ev, &w->sub, false, w->since, false};
    pthread_mutex_lock(&ev->mu);
    struct legacy_reg *reg = hashmap_get(&ev->legacy, w->call->session_ref);
    if (reg)
        reg->cursor = db_generation(ev->srv->db);
    pthread_mutex_unlock(&ev->mu);
    rpc_call_reply_success(w->call, write_next_reply, &r);
}

/* Returns true when @w was answered (and can be freed). */
static bool
try_answer(struct events *ev, struct waiter *w, const struct timespec *now, bool check_session)
{
    struct rpc_call *call = w->call;
    if (check_session && !db_exists(ev->srv->db, &xapi_class_session, call->session_ref)) {
        reply_code(call, "SESSION_INVALID", call->session_ref);
        return true;
    }
    long n = pending_changes(ev, w->since, &w->sub);
    if (n < 0) {
        reply_code(call, "EVENTS_LOST", NULL);
        return true;
    }
    if (n == 0 && !passed(&w->deadline, now))
        return false;
    if (w->legacy) {
        answer_legacy(ev, w);
    } else {
        struct from_reply r = {ev, &w->sub, false, w->since, false};
        rpc_call_reply_success(call, write_from_reply, &r);
    }
    return true;
}

static void *
events_main(void *arg)
{
    struct events *ev = arg;
    struct timespec last_session_check = {0};
    pthread_mutex_lock(&ev->mu);
    while (!ev->stop) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct timespec wake = now;
        wake.tv_sec += SESSION_RECHECK_MS / 1000;
        for (struct waiter *w = ev->waiters; w; w = w->next)
            if (w->deadline.tv_sec && (w->deadline.tv_sec < wake.tv_sec ||
                                       (w->deadline.tv_sec == wake.tv_sec &&
                                        w->deadline.tv_nsec < wake.tv_nsec)))
                wake = w->deadline;
        if (!ev->dirty && !passed(&wake, &now)) {
            /* CLOCK_MONOTONIC condvar: see events_start */
            pthread_cond_timedwait(&ev->cv, &ev->mu, &wake);
            if (ev->stop)
                break;
        }
        ev->dirty = false;
        struct waiter *list = ev->waiters;
        ev->waiters = NULL;
        pthread_mutex_unlock(&ev->mu);

        clock_gettime(CLOCK_MONOTONIC, &now);
        bool check_sessions = now.tv_sec - last_session_check.tv_sec >= 1;
        if (check_sessions)
            last_session_check = now;
        struct waiter *keep = NULL;
        while (list) {
            struct waiter *w = list;
            list = w->next;
            if (try_answer(ev, w, &now, true)) {
                waiter_free(w);
            } else {
                w->next = keep;
                keep = w;
            }
        }
        pthread_mutex_lock(&ev->mu);
        while (keep) {
            struct waiter *w = keep;
            keep = w->next;
            w->next = ev->waiters;
            ev->waiters = w;
        }
    }
    /* Stopping: every waiter gets an answer so its connection is released. */
    struct waiter *list = ev->waiters;
    ev->waiters = NULL;
    pthread_mutex_unlock(&ev->mu);
    while (list) {
        struct waiter *w = list;
        list = w->next;
        reply_code(w->call, "SESSION_INVALID", w->call->session_ref);
        waiter_free(w);
    }
    return NULL;
}

void
events_on_commit(void *opaque, uint64_t gen)
{
    struct events *ev = opaque;
    (void)gen;
    pthread_mutex_lock(&ev->mu);
    ev->dirty = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

int
events_start(struct server *srv, struct events **out)
{
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    ev->srv = srv;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ev->cv, &attr);
    pthread_condattr_destroy(&attr);
    hashmap_init(&ev->legacy);
    if (pthread_create(&ev->thread, NULL, events_main, ev) != 0) {
        events_free(ev);
        return -EAGAIN;
    }
    ev->started = true;
    *out = ev;
    return 0;
}

void
events_stop(struct events *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->stop = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    if (ev->started)
        pthread_join(ev->thread, NULL);
    ev->started = false;
}

void
events_free(struct events *ev)
{
    if (!ev)
        return;
    events_stop(ev);
    hashmap_release_with(&ev->legacy, legacy_free);
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    free(ev);
}

/* ------------------------------------------------------------------ entry points */

void
events_from(struct events *ev, struct rpc_call *call, struct xval *const *args)
{
    struct xerr *err = NULL;
    struct waiter *w = calloc(1, sizeof(*w));
    double timeout = 0;
    if (!w) {
        xerr_nomem(&err);
        goto fail;
    }
    w->call = call;
    if (!sub_parse(&w->sub, args[0], &err))
        goto fail;
    const char *token = args[1]->kind == XVAL_STRING ? args[1]->str.s : NULL;
    if (!token) {
        xerr_field_type_error(&err, "token");
        goto fail;
    }
    if (!xtype_value_decode(&xapi_type_float, args[2], &timeout, "timeout", &err))
        goto fail;
    if (*token == '\0') {
        struct from_reply r = {ev, &w->sub, true, 0, false};
        rpc_call_reply_success(call, write_from_reply, &r);
        waiter_free(w);
        return;
    }
    if (!parse_token(token, &w->since)) {
        xerr_event_from_token_parse_failure(&err, token);
        goto fail;
    }
    deadline_after(&w->deadline, timeout > 0 ? timeout : 0);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (timeout <= 0)
        w->deadline = now;
    if (try_answer(ev, w, &now, false)) {
        waiter_free(w);
        return;
    }
    enqueue(ev, w);
    return;
fail:
    if (w)
        waiter_free(w);
    rpc_call_reply_error(call, err);
    xerr_free(err);
}

void
events_next(struct events *ev, struct rpc_call *call)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        reply_code(call, "INTERNAL_ERROR", "out of memory");
        return;
    }
    w->call = call;
    w->legacy = true;
    pthread_mutex_lock(&ev->mu);
    struct legacy_reg *reg = hashmap_get(&ev->legacy, call->session_ref);
    bool ok = reg != NULL;
    if (ok) {
        w->since = reg->cursor;
        memcpy(w->sub.mask, reg->sub.mask, sizeof(w->sub.mask));
        memcpy(w->sub.whole, reg->sub.whole, sizeof(w->sub.whole));
        /* the waiter owns a copy of the per-object list: registration may change */
        if (reg->sub.n_refs && (w->sub.refs = calloc(reg->sub.n_refs, sizeof(struct sub_ref)))) {
            for (size_t i = 0; i < reg->sub.n_refs; i++) {
                w->sub.refs[w->sub.n_refs].cls_id = reg->sub.refs[i].cls_id;
                if ((w->sub.refs[w->sub.n_refs].ref = strdup(reg->sub.refs[i].ref)))
                    w->sub.n_refs++;
            }
        }
    }
    pthread_mutex_unlock(&ev->mu);
    if (!ok) {
        reply_code(call, "SESSION_NOT_REGISTERED", call->session_ref);
        waiter_free(w);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (try_answer(ev, w, &now, false)) {
        waiter_free(w);
        return;
    }
    enqueue(ev, w);
}
