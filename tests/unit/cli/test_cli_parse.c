/* tests/unit/cli/test_cli_parse.c - xe without a server: the command line,
 * XE_EXTRA_ARGS and ~/.xe, CLI names of classes and fields, user text into
 * typed values, and the output format (values, aligned blocks, --minimal).
 * Every usage error the parser can give has a case here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/xmodel.h"
#include "xapi_model.h"

static int
parse(struct cli_opts *o, struct cli_args *a, char *why, int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    memset(o, 0, sizeof(*o));
    memset(a, 0, sizeof(*a));
    return cli_parse_argv(argc, argv, o, a, why, 256);
}

/* ------------------------------------------------------------------ argv */

static void
test_argv_command_and_args(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    assert_int_equal(parse(&o, &a, why, 6, "-s", "h1", "vm-param-set", "uuid=u1",
                           "other-config:foo=bar=baz", "--minimal"),
                     0);
    assert_string_equal(o.server, "h1");
    assert_string_equal(a.command, "vm-param-set");
    assert_true(a.minimal);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.v[1].key, "other-config");
    assert_string_equal(a.v[1].subkey, "foo");
    assert_string_equal(a.v[1].value, "bar=baz");
    assert_string_equal(cli_arg_get(&a, "uuid"), "u1");
    assert_null(cli_arg_get(&a, "other-config")); /* subkeyed args are not plain */
    cli_opts_release(&o);
    cli_args_release(&a);
}

static void
test_argv_options_anywhere(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    assert_int_equal(parse(&o, &a, why, 11, "vm-list", "-p", "8080", "-u", "bob", "-pw", "pw",
                           "--nossl", "--unix=/s", "--insecure", "--debug"),
                     0);
    assert_int_equal(o.port, 8080);
    assert_string_equal(o.username, "bob");
    assert_string_equal(o.password, "pw");
    assert_string_equal(o.unix_path, "/s");
    assert_true(o.nossl && o.insecure && o.debug);
    assert_int_equal(a.n, 0);
    cli_opts_release(&o);
    cli_args_release(&a);
}

static void
test_argv_quoting_is_the_shells(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    /* what the shell made of name-label="my vm, 2" and a value with ':' */
    assert_int_equal(parse(&o, &a, why, 4, "vm-list", "name-label=my vm, 2", "PV-args=a:b=c",
                           "name-description="),
                     0);
    assert_string_equal(cli_arg_get(&a, "name-label"), "my vm, 2");
    assert_string_equal(a.v[1].key, "PV-args");
    assert_null(a.v[1].subkey); /* ':' after the first '=' is the value's */
    assert_string_equal(a.v[1].value, "a:b=c");
    assert_string_equal(cli_arg_get(&a, "name-description"), "");
    cli_opts_release(&o);
    cli_args_release(&a);
}

static void
test_argv_repeated_keys_last_wins(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    assert_int_equal(parse(&o, &a, why, 5, "vm-param-set", "name-label=a", "other-config:k=1",
                           "other-config:k=2", "name-label=b"),
                     0);
    assert_string_equal(cli_arg_get(&a, "name-label"), "b");
    assert_int_equal(a.n, 4); /* all kept, in order, for param-set */
    assert_string_equal(a.v[2].value, "2");
    cli_opts_release(&o);
    cli_args_release(&a);
}

static void
test_argv_subkey_with_colons(void **state)
{
    (void)state;
    struct cli_arg arg;
    assert_int_equal(cli_arg_split("other-config:a:b=c:d", &arg), 0);
    assert_string_equal(arg.key, "other-config");
    assert_string_equal(arg.subkey, "a:b");
    assert_string_equal(arg.value, "c:d");
    free(arg.key);
    free(arg.subkey);
    free(arg.value);
}

static void
test_argv_errors(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    assert_int_equal(parse(&o, &a, why, 2, "vm-list", "-s"), -EINVAL);
    assert_non_null(strstr(why, "-s needs a value"));
    cli_opts_release(&o);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 3, "vm-list", "-p", "http"), -EINVAL);
    assert_non_null(strstr(why, "invalid port"));
    cli_opts_release(&o);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 3, "vm-list", "-p", "70000"), -EINVAL);
    cli_opts_release(&o);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 2, "vm-list", "--bogus"), -EINVAL);
    assert_non_null(strstr(why, "unknown flag '--bogus'"));
    cli_opts_release(&o);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 2, "vm-list", "=x"), -EINVAL);
    assert_non_null(strstr(why, "bad argument '=x'"));
    cli_opts_release(&o);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 2, "vm-list", ":k=x"), -EINVAL);
    cli_opts_release(&o);
    cli_args_release(&a);
    struct cli_arg arg;
    assert_int_equal(cli_arg_split("novalue", &arg), -EINVAL);
}

static void
test_argv_positional_and_empty(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    assert_int_equal(parse(&o, &a, why, 0), 0);
    assert_null(a.command);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 3, "help", "vm-list", "--all"), 0);
    assert_string_equal(a.command, "help");
    assert_true(a.all);
    assert_int_equal(a.n, 1);
    assert_null(a.v[0].value);
    assert_string_equal(a.v[0].key, "vm-list");
    cli_opts_release(&o);
    cli_args_release(&a);
}

/* ------------------------------------------------------------------ rc, env */

static void
test_rc_file(void **state)
{
    (void)state;
    struct cli_opts o = {0};
    char why[256];
    assert_int_equal(cli_parse_rc("# comment\nserver = \"h2\"\nport=444\n\nnossl=true\n"
                                  "username=alice\npassword=\"p w\"\n",
                                  &o, why, sizeof(why)),
                     0);
    assert_string_equal(o.server, "h2");
    assert_int_equal(o.port, 444);
    assert_true(o.nossl);
    assert_string_equal(o.password, "p w");
    cli_opts_release(&o);
    assert_int_equal(cli_parse_rc("server\n", &o, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "line 1"));
    cli_opts_release(&o);
    assert_int_equal(cli_parse_rc("colour=red\n", &o, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "unknown option 'colour'"));
    cli_opts_release(&o);
    assert_int_equal(cli_parse_rc("nossl=maybe\n", &o, why, sizeof(why)), -EINVAL);
    cli_opts_release(&o);
}

static void
test_extra_args(void **state)
{
    (void)state;
    struct cli_opts o = {0};
    char why[256];
    assert_int_equal(cli_parse_extra_args("server=h3,port=81,password=a\\,b,--nossl", &o, why,
                                          sizeof(why)),
                     0);
    assert_string_equal(o.server, "h3");
    assert_int_equal(o.port, 81);
    assert_string_equal(o.password, "a,b");
    assert_true(o.nossl);
    cli_opts_release(&o);
    assert_int_equal(cli_parse_extra_args("-s,h4,-u,root", &o, why, sizeof(why)), 0);
    assert_string_equal(o.server, "h4");
    assert_string_equal(o.username, "root");
    cli_opts_release(&o);
    assert_int_equal(cli_parse_extra_args("-s", &o, why, sizeof(why)), -EINVAL);
    cli_opts_release(&o);
    assert_int_equal(cli_parse_extra_args("justaword", &o, why, sizeof(why)), -EINVAL);
    cli_opts_release(&o);
}

static void
test_precedence(void **state)
{
    (void)state;
    struct cli_opts cmd = {0}, env = {0}, rc = {0};
    char why[256];
    struct cli_args a = {0};
    char *argv[] = {"-s", "cmdline", "vm-list"};
    assert_int_equal(cli_parse_argv(3, argv, &cmd, &a, why, sizeof(why)), 0);
    assert_int_equal(cli_parse_extra_args("server=env,port=82", &env, why, sizeof(why)), 0);
    assert_int_equal(cli_parse_rc("server=rc\nport=83\nusername=u\n", &rc, why, sizeof(why)),
                     0);
    cli_opts_merge(&cmd, &env);
    cli_opts_merge(&cmd, &rc);
    assert_string_equal(cmd.server, "cmdline");
    assert_int_equal(cmd.port, 82);
    assert_string_equal(cmd.username, "u");
    cli_opts_release(&cmd);
    cli_opts_release(&env);
    cli_opts_release(&rc);
    cli_args_release(&a);
}

static void
test_bools(void **state)
{
    (void)state;
    bool b;
    assert_true(cli_parse_bool("TRUE", &b) && b);
    assert_true(cli_parse_bool("no", &b) && !b);
    assert_true(cli_parse_bool("1", &b) && b);
    assert_false(cli_parse_bool("2", &b));
}

/* ------------------------------------------------------------------ names */

static void
test_names(void **state)
{
    (void)state;
    char buf[64];
    assert_ptr_equal(cli_class_by_cli_name("vm"), &xapi_class_vm);
    assert_ptr_equal(cli_class_by_cli_name("vm-metrics"), &xapi_class_vm_metrics);
    assert_ptr_equal(cli_class_by_cli_name("SR"), &xapi_class_sr);
    assert_null(cli_class_by_cli_name("vmx"));
    assert_string_equal(cli_class_cli_name(&xapi_class_vm_guest_metrics, buf, sizeof(buf)),
                        "vm-guest-metrics");
    assert_string_equal(cli_field_cli_name("VCPUs_max", buf, sizeof(buf)), "VCPUs-max");
    const struct xfield *f = cli_field_find(&xapi_class_vm, "name-label");
    assert_non_null(f);
    assert_string_equal(f->name, "name_label");
    assert_ptr_equal(cli_field_find(&xapi_class_vm, "vcpus-MAX"),
                     cli_field_find(&xapi_class_vm, "VCPUs_max"));
    assert_null(cli_field_find(&xapi_class_vm, "name"));
    assert_string_equal(cli_field_qual(cli_field_find(&xapi_class_vm, "uuid")), " RO");
    assert_string_equal(cli_field_qual(f), " RW");
    assert_string_equal(cli_field_qual(cli_field_find(&xapi_class_vm, "other-config")), "MRW");
    assert_string_equal(cli_field_qual(cli_field_find(&xapi_class_vm, "VBDs")), "SRO");
    assert_string_equal(cli_field_qual(cli_field_find(&xapi_class_vm, "tags")), "SRW");
}

/* ------------------------------------------------------------------ values */

static bool
fake_resolve(void *opaque, const char *ref_class, const char *uuid, char **ref,
             struct xerr **errp)
{
    (void)opaque;
    if (strcmp(uuid, "missing") == 0)
        return xerr_raise(errp, "UUID_INVALID", ref_class, uuid);
    return asprintf(ref, "OpaqueRef:%s-of-%s", ref_class, uuid) > 0;
}

static const char *
fake_uuid(void *opaque, const char *ref_class, const char *ref)
{
    (void)opaque;
    (void)ref_class;
    return strcmp(ref, "OpaqueRef:dead") == 0 ? NULL : ref + 10;
}

static char *
text_of(const struct xtype *t, const void *p)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "");
    cli_value_text(t, p, fake_uuid, NULL, &sb);
    return strbuf_steal(&sb, NULL);
}

static void
test_value_parse_scalars(void **state)
{
    (void)state;
    union xvalue_storage v;
    struct xerr *err = NULL;
    assert_true(cli_value_parse(&xapi_type_int, "42", &v, "f", NULL, NULL, &err));
    assert_int_equal(v.i, 42);
    assert_false(cli_value_parse(&xapi_type_int, "4x", &v, "f", NULL, NULL, &err));
    assert_string_equal(err->code, "INVALID_VALUE");
    assert_string_equal(err->params[1], "4x");
    xerr_free(err);
    err = NULL;
    assert_true(cli_value_parse(&xapi_type_bool, "yes", &v, "f", NULL, NULL, &err));
    assert_true(v.b);
    assert_false(cli_value_parse(&xapi_type_bool, "perhaps", &v, "f", NULL, NULL, &err));
    xerr_free(err);
    err = NULL;
    assert_true(cli_value_parse(&xapi_type_vm_power_state, "RUNNING", &v, "f", NULL, NULL,
                                &err));
    assert_int_equal(v.e, XAPI_VM_POWER_STATE_RUNNING);
    assert_false(cli_value_parse(&xapi_type_vm_power_state, "flying", &v, "f", NULL, NULL,
                                 &err));
    xerr_free(err);
    err = NULL;
    assert_true(cli_value_parse(&xapi_type_ref_SR, "u-1", &v, "f", fake_resolve, NULL, &err));
    assert_string_equal(v.p, "OpaqueRef:SR-of-u-1");
    free(v.p);
    assert_true(cli_value_parse(&xapi_type_ref_SR, "", &v, "f", fake_resolve, NULL, &err));
    assert_string_equal(v.p, "OpaqueRef:NULL");
    free(v.p);
    assert_false(cli_value_parse(&xapi_type_ref_SR, "missing", &v, "f", fake_resolve, NULL,
                                 &err));
    assert_string_equal(err->code, "UUID_INVALID");
    xerr_free(err);
}

static void
test_value_parse_containers(void **state)
{
    (void)state;
    struct xset s;
    struct xmap m;
    struct xerr *err = NULL;
    assert_true(cli_value_parse(&xapi_type_string_set, "a,b\\,c,d", &s, "f", NULL, NULL, &err));
    assert_int_equal(s.n, 3);
    assert_string_equal(((char **)s.items)[1], "b,c");
    char *t = text_of(&xapi_type_string_set, &s);
    assert_string_equal(t, "a; b,c; d");
    free(t);
    xtype_value_clear(&xapi_type_string_set, &s);
    assert_true(cli_value_parse(&xapi_type_string_set, "", &s, "f", NULL, NULL, &err));
    assert_int_equal(s.n, 0);
    xtype_value_clear(&xapi_type_string_set, &s);
    assert_true(cli_value_parse(&xapi_type_string_string_map, "k1:v1,k2:v:2", &m, "f", NULL,
                                NULL, &err));
    assert_int_equal(m.n, 2);
    t = text_of(&xapi_type_string_string_map, &m);
    assert_string_equal(t, "k1: v1; k2: v:2");
    free(t);
    xtype_value_clear(&xapi_type_string_string_map, &m);
    assert_false(cli_value_parse(&xapi_type_string_string_map, "k1:v1,nocolon", &m, "f", NULL,
                                 NULL, &err));
    assert_string_equal(err->code, "INVALID_VALUE");
    xerr_free(err);
}

static void
test_value_text(void **state)
{
    (void)state;
    bool b = false;
    int64_t i = -7;
    double d = 0.5;
    int e = XAPI_VM_POWER_STATE_HALTED;
    int64_t when = 0;
    char *ref = "OpaqueRef:abc", *dead = "OpaqueRef:dead", *null = "OpaqueRef:NULL";
    char *t;
    assert_string_equal(t = text_of(&xapi_type_bool, &b), "false");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_int, &i), "-7");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_float, &d), "0.5");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_vm_power_state, &e), "halted");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_datetime, &when), "19700101T00:00:00Z");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_ref_VM, &ref), "abc");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_ref_VM, &dead), "<not in database>");
    free(t);
    assert_string_equal(t = text_of(&xapi_type_ref_VM, &null), "<not in database>");
    free(t);
}

/* ------------------------------------------------------------------ blocks */

static char *
capture_block(const char *const *keys, const char *const *vals, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_print_block(f, keys, vals, n);
    fclose(f);
    return buf;
}

static void
test_block_alignment(void **state)
{
    (void)state;
    const char *keys[] = {"uuid ( RO)", "name-label ( RW)", "power-state ( RO)"};
    const char *vals[] = {"3f1a", "web01", "running"};
    char *out = capture_block(keys, vals, 3);
    assert_string_equal(out, "uuid ( RO)           : 3f1a\n"
                             "     name-label ( RW): web01\n"
                             "    power-state ( RO): running\n");
    free(out);
}

static void
test_field_key(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    cli_field_key(cli_field_find(&xapi_class_vm, "other_config"), &sb);
    assert_string_equal(sb.buf, "other-config (MRW)");
    strbuf_reset(&sb);
    cli_field_key(cli_field_find(&xapi_class_vm, "memory_target"), &sb);
    assert_string_equal(sb.buf, "memory-target ( RO) [DEPRECATED]");
    strbuf_release(&sb);
}

static void
test_minimal_escape(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    cli_minimal_escape(&sb, "a,b\\c");
    assert_string_equal(sb.buf, "a\\,b\\\\c");
    strbuf_release(&sb);
}

static void
test_class_types(void **state)
{
    (void)state;
    const struct cli_class_types *t = cli_class_types(&xapi_class_host);
    assert_non_null(t);
    assert_int_equal(t->record_map.kind, XT_MAP);
    assert_ptr_equal(t->record.cls, &xapi_class_host);
    assert_ptr_equal(cli_class_types(&xapi_class_host), t);
}

/* ------------------------------------------------------------------ sizes, --force */

static void
test_sizes(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(cli_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(cli_parse_size("10GiB", &v), 0);
    assert_int_equal(v, 10LL << 30);
    assert_int_equal(cli_parse_size("512MiB", &v), 0);
    assert_int_equal(v, 512LL << 20);
    assert_int_equal(cli_parse_size("512m", &v), 0);
    assert_int_equal(v, 512LL << 20);
    assert_int_equal(cli_parse_size("1KiB", &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(cli_parse_size("2T", &v), 0);
    assert_int_equal(v, 2LL << 40);
    assert_int_equal(cli_parse_size("3GB", &v), 0); /* binary, as xapi's */
    assert_int_equal(v, 3LL << 30);
    assert_int_equal(cli_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cli_parse_size("", &v), -EINVAL);
    assert_int_equal(cli_parse_size(NULL, &v), -EINVAL);
    assert_int_equal(cli_parse_size("-1", &v), -EINVAL);
    assert_int_equal(cli_parse_size("GiB", &v), -EINVAL);
    assert_int_equal(cli_parse_size("10 GiB", &v), -EINVAL);
    assert_int_equal(cli_parse_size("10PiB", &v), -EINVAL);
    assert_int_equal(cli_parse_size("1.5GiB", &v), -EINVAL);
    assert_int_equal(cli_parse_size("9999999999TiB", &v), -EINVAL); /* overflow */
    assert_int_equal(cli_parse_size("99999999999999999999", &v), -EINVAL);
}

static void
test_force(void **state)
{
    (void)state;
    struct cli_opts o;
    struct cli_args a;
    char why[256];
    bool f = true;
    assert_int_equal(parse(&o, &a, why, 2, "vm-shutdown", "vm=x"), 0);
    assert_int_equal(cli_arg_force(&a, &f), 0);
    assert_false(f);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 3, "vm-shutdown", "vm=x", "--force"), 0);
    assert_int_equal(cli_arg_force(&a, &f), 0);
    assert_true(f);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 3, "vm-shutdown", "force=true", "--multiple"), 0);
    assert_int_equal(cli_arg_force(&a, &f), 0);
    assert_true(f && a.multiple);
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 3, "vm-shutdown", "force=no", "--force"), 0);
    assert_int_equal(cli_arg_force(&a, &f), 0);
    assert_true(f); /* --force wins */
    cli_args_release(&a);
    assert_int_equal(parse(&o, &a, why, 2, "vm-shutdown", "force=maybe"), 0);
    assert_int_equal(cli_arg_force(&a, &f), -EINVAL);
    cli_args_release(&a);
    cli_opts_release(&o);
}

int
main(void)
{
    if (xmodel_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_command_and_args),
        cmocka_unit_test(test_argv_options_anywhere),
        cmocka_unit_test(test_argv_quoting_is_the_shells),
        cmocka_unit_test(test_argv_repeated_keys_last_wins),
        cmocka_unit_test(test_argv_subkey_with_colons),
        cmocka_unit_test(test_argv_errors),
        cmocka_unit_test(test_argv_positional_and_empty),
        cmocka_unit_test(test_rc_file),
        cmocka_unit_test(test_extra_args),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_value_parse_scalars),
        cmocka_unit_test(test_value_parse_containers),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_block_alignment),
        cmocka_unit_test(test_field_key),
        cmocka_unit_test(test_minimal_escape),
        cmocka_unit_test(test_class_types),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_force),
    };
    return cmocka_run_group_tests_name("cli-parse", tests, NULL, NULL);
}
