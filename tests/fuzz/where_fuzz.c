/* tests/fuzz/where_fuzz.c - fuzz target for get_all_records_where's
 * expression language (rpc/where.c).
 *
 * Each input is an expression, compiled against the VM class and matched
 * against two VMs. Checks, besides "no crash, no leak, no deep recursion":
 *  - a refusal is INVALID_VALUE [expr, reason] with the expression cut at
 *    256 bytes (plus "...");
 *  - what compiles agrees with itself rewritten: `not (E)` matches exactly
 *    where E does not, and `true and (E)` / `false or (E)` exactly where E
 *    does (when the rewriting stays inside the nesting limit).
 * A mismatch aborts: libFuzzer reports it as a crash. Inputs of the attack
 * shapes of issue 11 (long and/or chains, deep nesting, many literals) are
 * in the corpus, small; the limits make their big versions cost the same.
 *
 * Debugging a failure: build the gcc replay (tests/fuzz/where_replay) and run
 * it on the crashing file; it prints which check failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/xmodel.h"
#include "rpc/where.h"
#include "xapi_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct xapi_vm_record *vms[2];

static void
check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "where_fuzz: check failed: %s\n", what);
        abort();
    }
}

static void
init_once(void)
{
    if (vms[0])
        return;
    check(xmodel_init() == 0, "xmodel_init");
    vms[0] = xapi_vm_record_new();
    vms[1] = xapi_vm_record_new();
    check(vms[0] && vms[1], "out of memory");
    xstr_set(&vms[1]->name_label, "web \"1\"");
    xstr_set(&vms[1]->name_description, "a\\b");
    vms[1]->power_state = XAPI_VM_POWER_STATE_RUNNING;
    vms[1]->is_a_template = true;
    vms[1]->VCPUs_max = 8;
}

/* Bit i: whether the expression matches vms[i]; -1 when it is refused. */
static int
matches(const char *text, bool check_refusal)
{
    struct xerr *err = NULL;
    struct where_expr *e = where_compile(&xapi_class_vm, text, &err);
    if (!e) {
        check(err && strcmp(err->code, "INVALID_VALUE") == 0 && err->n_params == 2,
              "a refusal is INVALID_VALUE [expr, reason]");
        if (check_refusal) {
            const char *shown = err->params[0];
            size_t len = strlen(text), n = strlen(shown);
            if (len <= 256) {
                check(strcmp(shown, text) == 0, "the error echoes a short expression whole");
            } else {
                /* cut at 256 bytes or a little less (a UTF-8 boundary), then "..." */
                check(n >= 3 && n <= 256 + 3 && strcmp(shown + n - 3, "...") == 0 &&
                          strncmp(shown, text, n - 3) == 0,
                      "the error echoes a long expression cut");
            }
        }
        xerr_free(err);
        return -1;
    }
    check(err == NULL, "no error on success");
    int bits = 0;
    for (int i = 0; i < 2; i++)
        bits |= where_match(e, vms[i]) << i;
    where_free(e);
    return bits;
}

static int
wrapped(const char *pre, const char *text, const char *post)
{
    size_t n = strlen(pre) + strlen(text) + strlen(post) + 1;
    char *s = malloc(n);
    check(s != NULL, "out of memory");
    snprintf(s, n, "%s%s%s", pre, text, post);
    int r = matches(s, false);
    free(s);
    return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    char *text = malloc(size + 1);
    check(text != NULL, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0'; /* an embedded NUL ends the expression, as on the wire */
    int r = matches(text, true);
    if (r >= 0) {
        int n = wrapped("not (", text, ")");
        check(n < 0 || n == (~r & 3), "not (E) is the negation of E");
        int a = wrapped("true and (", text, ")");
        check(a < 0 || a == r, "true and (E) is E");
        int o = wrapped("false or (", text, ")");
        check(o < 0 || o == r, "false or (E) is E");
    }
    free(text);
    return 0;
}
