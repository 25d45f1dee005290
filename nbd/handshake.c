/* nbd/handshake.c - fixed newstyle negotiation.
 *
 * The server greets (NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES), checks the client's
 * flags (unknown bits end the connection), then answers options until EXPORT_NAME or a
 * successful GO moves to transmission, or ABORT ends it. Each option header is read, its
 * length checked against NBD_MAX_OPTION_BYTES *before* the body is read (a larger one ends
 * the connection), and every length inside the body is checked against what is left.
 * Unknown options are answered ERR_UNSUP and negotiation goes on (clients probe with
 * EXTENDED_HEADERS first). SET_META_CONTEXT before STRUCTURED_REPLY is ERR_INVALID.
 * Exports are found by name through the server's open() (INFO and the meta-context
 * options open and close one just to answer); STARTTLS hands the connection to the
 * transport's TLS handshake after its ACK, and a server that requires TLS answers
 * every other option but ABORT with ERR_TLS_REQD until then.
 * Facts: the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), 3.4.
 */
#include <errno.h>
#include <string.h>

#include "nbd/conn.h"
#include "nbd/proto.h"

static int
send_bytes(struct nbd_conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    return c->t->send(c->t->opaque, iov, blen ? 2 : 1);
}

static int
reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    uint8_t h[20];
    nbd_put64(h, NBD_REP_MAGIC);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, type);
    nbd_put32(h + 16, len);
    return send_bytes(c, h, sizeof(h), data, len);
}

uint16_t
nbd_transmission_flags(const struct nbd_export *exp)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF;
    if (exp->read_only)
        f |= NBD_FLAG_READ_ONLY | NBD_FLAG_CAN_MULTI_CONN; /* nothing to keep coherent */
    else
        f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
    return f;
}

/* The name in @data as a C string in @out (NBD_MAX_NAME_BYTES + 1): false when it is too
 * long or holds a NUL. */
static bool
name_copy(const uint8_t *data, uint32_t len, char *out)
{
    if (len > NBD_MAX_NAME_BYTES || memchr(data, 0, len))
        return false;
    memcpy(out, data, len);
    out[len] = 0;
    return true;
}

/* Finds export @name through the server: 0, or the NBD_REP_ERR_* that refuses it. */
static uint32_t
export_open(struct nbd_conn *c, const char *name, const struct nbd_export **out)
{
    int rc = c->srv->open(c->srv->opaque, name, c->tls, out);
    if (rc == 0)
        return 0;
    return rc == -ENOENT ? NBD_REP_ERR_UNKNOWN : NBD_REP_ERR_POLICY;
}

static void
export_close(struct nbd_conn *c, const struct nbd_export *exp)
{
    if (c->srv->close)
        c->srv->close(c->srv->opaque, exp);
}

static int
opt_export_name(struct nbd_conn *c, const uint8_t *data, uint32_t len)
{
    char name[NBD_MAX_NAME_BYTES + 1];
    const struct nbd_export *exp = NULL;
    if (!name_copy(data, len, name) || export_open(c, name, &exp) != 0)
        return -ENOENT;     /* the legacy option has no error reply: just close */
    c->exp = exp;
    uint8_t r[10 + 124] = {0};
    nbd_put64(r, exp->size);
    nbd_put16(r + 8, nbd_transmission_flags(exp));
    return send_bytes(c, r, c->no_zeroes ? 10 : sizeof(r), NULL, 0);
}

/* The INFO replies of @exp: EXPORT always, the others when asked for. */
static int
info_replies(struct nbd_conn *c, uint32_t opt, const struct nbd_export *exp, bool want_block,
             bool want_name, bool want_desc)
{
    uint8_t ie[12];
    nbd_put16(ie, NBD_INFO_EXPORT);
    nbd_put64(ie + 2, exp->size);
    nbd_put16(ie + 10, nbd_transmission_flags(exp));
    int rc = reply(c, opt, NBD_REP_INFO, ie, sizeof(ie));
    if (rc == 0 && want_block) {
        uint8_t ib[14];
        nbd_put16(ib, NBD_INFO_BLOCK_SIZE);
        nbd_put32(ib + 2, NBD_MIN_BLOCK);
        nbd_put32(ib + 6, NBD_PREF_BLOCK);
        nbd_put32(ib + 10, nbd_max_payload(exp));
        rc = reply(c, opt, NBD_REP_INFO, ib, sizeof(ib));
    }
    const char *strs[2] = {want_name ? (exp->name ? exp->name : "") : NULL,
                           want_desc ? exp->description : NULL};
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (!strs[k])
            continue;
        size_t sl = strlen(strs[k]);
        if (sl > NBD_MAX_NAME_BYTES)
            sl = NBD_MAX_NAME_BYTES;
        uint8_t tmp[2 + NBD_MAX_NAME_BYTES];
        nbd_put16(tmp, k == 0 ? NBD_INFO_NAME : NBD_INFO_DESCRIPTION);
        memcpy(tmp + 2, strs[k], sl);
        rc = reply(c, opt, NBD_REP_INFO, tmp, (uint32_t)(2 + sl));
    }
    return rc;
}

/* INFO (go == false) and GO. Returns 0 after replying; *@done when transmission starts. */
static int
opt_info_go(struct nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len, bool *done)
{
    if (len < 6)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    uint32_t name_len = nbd_get32(d);
    if (name_len > len - 6 || name_len > NBD_MAX_NAME_BYTES)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    uint16_t n_req = nbd_get16(d + 4 + name_len);
    if ((uint64_t)len != 4ull + name_len + 2 + 2ull * n_req)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    char name[NBD_MAX_NAME_BYTES + 1];
    if (!name_copy(d + 4, name_len, name))
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    bool want_block = false, want_name = false, want_desc = false;
    for (uint16_t i = 0; i < n_req; i++) {
        uint16_t what = nbd_get16(d + 4 + name_len + 2 + 2 * i);
        want_block |= what == NBD_INFO_BLOCK_SIZE;
        want_name |= what == NBD_INFO_NAME;
        want_desc |= what == NBD_INFO_DESCRIPTION;
    }
    const struct nbd_export *exp = NULL;
    uint32_t err = export_open(c, name, &exp);
    if (err)
        return reply(c, opt, err, NULL, 0);
    int rc = info_replies(c, opt, exp, want_block, want_name, want_desc);
    if (rc == 0)
        rc = reply(c, opt, NBD_REP_ACK, NULL, 0);
    if (rc == 0 && opt == NBD_OPT_GO) {
        c->exp = exp;
        *done = true;
    } else {
        export_close(c, exp);
    }
    return rc;
}

static int
opt_meta_context(struct nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    bool set = opt == NBD_OPT_SET_META_CONTEXT;
    if (set && !c->structured)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    if (len < 8)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    uint32_t name_len = nbd_get32(d);
    if (name_len > len - 8 || name_len > NBD_MAX_NAME_BYTES)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    uint32_t n_q = nbd_get32(d + 4 + name_len);
    uint32_t pos = 8 + name_len;
    /* Validate every query's length before answering any. */
    bool match = false;
    for (uint32_t i = 0; i < n_q; i++) {
        if (len - pos < 4)
            return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
        uint32_t ql = nbd_get32(d + pos);
        if (ql > len - pos - 4)
            return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
        const char *q = (const char *)d + pos + 4;
        if ((ql == 15 && !memcmp(q, "base:allocation", 15)) ||
            (!set && ql == 5 && !memcmp(q, "base:", 5)))
            match = true;
        pos += 4 + ql;
    }
    if (pos != len)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    char name[NBD_MAX_NAME_BYTES + 1];
    const struct nbd_export *exp = NULL;
    if (!name_copy(d + 4, name_len, name))
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    uint32_t err = export_open(c, name, &exp);
    if (err)
        return reply(c, opt, err, NULL, 0);
    export_close(c, exp);
    if (!set && n_q == 0)
        match = true;       /* LIST with no query lists every context */
    if (set)
        c->meta_base_allocation = match;
    if (match) {
        uint8_t r[4 + 15];
        nbd_put32(r, NBD_META_BASE_ALLOCATION_ID);
        memcpy(r + 4, "base:allocation", 15);
        int rc = reply(c, opt, NBD_REP_META_CONTEXT, r, sizeof(r));
        if (rc < 0)
            return rc;
    }
    return reply(c, opt, NBD_REP_ACK, NULL, 0);
}

static int
opt_list(struct nbd_conn *c, uint32_t len)
{
    if (len != 0)
        return reply(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, NULL, 0);
    if (!c->fixed)
        return reply(c, NBD_OPT_LIST, NBD_REP_ERR_POLICY, NULL, 0);
    const struct nbd_export *exp = c->srv->opaque;
    const char *name = exp->name ? exp->name : "";
    size_t nl = strlen(name);
    if (nl > NBD_MAX_NAME_BYTES)
        nl = NBD_MAX_NAME_BYTES;
    uint8_t r[4 + NBD_MAX_NAME_BYTES];
    nbd_put32(r, (uint32_t)nl);
    memcpy(r + 4, name, nl);
    int rc = reply(c, NBD_OPT_LIST, NBD_REP_SERVER, r, (uint32_t)(4 + nl));
    return rc < 0 ? rc : reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* STARTTLS: ACK, then the transport's TLS handshake; what was negotiated in clear is
 * forgotten (proto.md, "TLS support"). */
static int
opt_starttls(struct nbd_conn *c, uint32_t len)
{
    if (len != 0 || c->tls)
        return reply(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, NULL, 0);
    if (!c->t->starttls)
        return reply(c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY, NULL, 0);
    int rc = reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0);
    if (rc == 0)
        rc = c->t->starttls(c->t->opaque);
    if (rc < 0)
        return rc;
    c->tls = true;
    c->structured = false;
    c->meta_base_allocation = false;
    return 0;
}

/* One option. Returns 0 to continue, 1 to start transmission, 2 to end, <0 on error. */
static int
handle_option(struct nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    bool done = false;
    int rc;
    if (c->srv->tls_required && !c->tls && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
        if (opt == NBD_OPT_EXPORT_NAME)
            return -EACCES;     /* no error reply exists for it: close */
        return reply(c, opt, NBD_REP_ERR_TLS_REQD, NULL, 0);
    }
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        rc = opt_export_name(c, d, len);
        return rc < 0 ? rc : 1;
    case NBD_OPT_ABORT:
        reply(c, opt, NBD_REP_ACK, NULL, 0);     /* the client may already be gone */
        return 2;
    case NBD_OPT_LIST:
        return opt_list(c, len);
    case NBD_OPT_STARTTLS:
        return opt_starttls(c, len);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        rc = opt_info_go(c, opt, d, len, &done);
        return rc < 0 ? rc : done ? 1 : 0;
    case NBD_OPT_STRUCTURED_REPLY:
        if (len != 0)
            return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
        c->structured = true;
        return reply(c, opt, NBD_REP_ACK, NULL, 0);
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        return opt_meta_context(c, opt, d, len);
    default:
        return reply(c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
    }
}

int
nbd_handshake(struct nbd_conn *c)
{
    uint8_t g[18];
    nbd_put64(g, NBD_MAGIC);
    nbd_put64(g + 8, NBD_IHAVEOPT);
    nbd_put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    int rc = send_bytes(c, g, sizeof(g), NULL, 0);
    if (rc < 0)
        return rc;
    uint8_t cf[4];
    rc = c->t->recv(c->t->opaque, cf, sizeof(cf));
    if (rc < 0)
        return rc;
    uint32_t flags = nbd_get32(cf);
    if (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE) ||
        (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)))
        return -EPROTO;
    c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
    for (;;) {
        uint8_t h[16];
        rc = c->t->recv(c->t->opaque, h, sizeof(h));
        if (rc < 0)
            return rc;
        if (nbd_get64(h) != NBD_IHAVEOPT)
            return -EPROTO;
        uint32_t opt = nbd_get32(h + 8), len = nbd_get32(h + 12);
        if (len > NBD_MAX_OPTION_BYTES)
            return -EPROTO;             /* never read (or allocate) an oversized body */
        rc = nbd_conn_buffer(c, len);
        if (rc == 0 && len)
            rc = c->t->recv(c->t->opaque, c->buf, len);
        if (rc < 0)
            return rc;
        rc = handle_option(c, opt, c->buf, len);
        if (rc != 0)
            return rc == 1 ? 0 : rc == 2 ? 1 : rc;
    }
}
