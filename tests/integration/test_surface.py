#!/usr/bin/env python3
"""tests/integration/test_surface.py - the XenAPI surface management clients
call, against a fresh vesseld (--backend sim).

- RBAC as XenCenter reads it (XenModel/XenAPI/Session.cs SetRbacPermissions,
  XenModel/XenAPI-Extensions/Role.cs): a non-root session's
  get_rbac_permissions names its role and xapi's lower-cased permission names;
  every role and permission is a role record, a role's subroles are its
  permissions; role.get_permissions* and role.get_by_permission* agree.
- XenCenter's connection start (XenModel/Network/XenConnection.cs,
  XenModel/XenAPI/Session.cs, XenModel/XenObjectDownloader.cs) replayed with
  xmlrpc.client: every call succeeds.
- The walk: every method system.listMethods names is called once with
  well-typed arguments built from the data model (gen/vgen.py reads
  datamodel/, as the build does). None may answer NOT_IMPLEMENTED but those
  of ALLOWED_NOT_IMPLEMENTED, each with who builds it or why xapi answers so;
  the daemon keeps serving throughout, and host.shutdown_agent, called last,
  stops it cleanly.
Usage: test_surface.py BUILD/vesseld
"""
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import add_account, test_main, value  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOGUS = 'OpaqueRef:NULL'

# Messages that still answer NOT_IMPLEMENTED, and why: the walk fails when one
# of them is built (its line goes then), so the list is what is left to build.
ALLOWED_NOT_IMPLEMENTED = {
    # xapi's own answer on every host (ocaml/xapi/xapi_host.ml, xapi_vm.ml)
    'host.dmesg_clear': 'xapi', 'VM.query_services': 'xapi', 'VM.send_sysrq': 'xapi',
    'VM.send_trigger': 'xapi',
    # pools, joining and migration: built with pools (issue 15)
    'VM.migrate_send': 'issue 15 (pools)', 'host.migrate_receive': 'issue 15 (pools)',
    'VDI.pool_migrate': 'issue 15 (pools)',
}


def rbac(t, d, s, root):
    add_account(d, root, 'vmop', 'vmop-pw-1', 'vm-operator')
    sess = d.login('vmop', 'vmop-pw-1')
    perms = value(s.session.get_rbac_permissions(sess, sess))
    t.ok('vm-operator' in perms and 'vm.start' in perms and 'vm.get_record' in perms and
         'http/connect_console' in perms, 'a vm-operator session names its role and permissions',
         perms[:20])
    t.ok('vm.destroy' not in perms and 'pool-admin' not in perms and 'host.shutdown' not in perms,
         'and not those of higher roles')
    t.eq(value(s.session.get_rbac_permissions(root, root)), [],
         'the local superuser\'s list is empty (it may do anything)')
    roles = value(s.role.get_all_records(root))
    by_name = {r['name_label']: ref for ref, r in roles.items()}
    top = {n: by_name[n] for n in ('read-only', 'vm-operator', 'vm-admin', 'vm-power-admin',
                                   'pool-operator', 'pool-admin')}
    t.ok(len(roles) > 1000 and all(roles[r]['subroles'] == [] and roles[r]['is_internal']
                                   for r in roles if r not in top.values()),
         'role.get_all_records holds the %d permissions as roles without subroles' % len(roles))
    # XenCenter's Role.ValidRoleList: a role can call a method when one of
    # its subroles (resolved in the cache) is named like it
    def can(role, method):
        return any(roles[p]['name_label'] == method for p in roles[top[role]]['subroles'])
    t.ok(can('vm-operator', 'vm.clean_shutdown') and not can('vm-operator', 'vm.destroy') and
         can('vm-admin', 'vm.destroy') and can('pool-admin', 'pool.join') and
         can('read-only', 'vm.get_record') and not can('read-only', 'vm.start'),
         'subroles answer XenCenter\'s "which roles can call this" as xapi\'s do')
    t.eq(sorted(value(s.role.get_permissions_name_label(root, top['vm-operator']))),
         sorted(p for p in perms if p != 'vm-operator'),
         'role.get_permissions_name_label(vm-operator) is the session\'s list minus its name')
    t.eq(sorted(value(s.role.get_permissions(root, top['read-only']))),
         sorted(roles[top['read-only']]['subroles']), 'role.get_permissions is the subroles')
    start = by_name['vm.start']
    t.eq(value(s.role.get_permissions(root, start)), [start], 'a permission\'s own permission')
    want = sorted(top[n] for n in ('vm-operator', 'vm-admin', 'vm-power-admin', 'pool-operator',
                                   'pool-admin'))
    t.eq(sorted(value(s.role.get_by_permission(root, start))), want,
         'role.get_by_permission(vm.start): vm-operator and above')
    t.eq(sorted(value(s.role.get_by_permission_name_label(root, 'vm.start'))), want,
         'role.get_by_permission_name_label(vm.start): the same')
    t.eq(value(s.role.get_by_permission_name_label(root, 'no.such')), [],
         'an unknown permission: no role')
    import hashlib
    import uuid
    t.eq(roles[start]['uuid'], str(uuid.UUID(bytes=hashlib.md5(b'VM.start').digest())),
         'a permission\'s uuid is the MD5 of its name, as xapi\'s gen_rbac.ml')
    subj = value(s.session.get_subject(root, sess))
    sid = value(s.session.get_auth_user_sid(root, sess))
    t.eq(sid, value(s.subject.get_subject_identifier(root, subj)),
         'a non-root session\'s auth_user_sid is its subject\'s identifier')
    t.eq(value(s.auth.get_subject_identifier(root, 'vmop')), sid,
         'auth.get_subject_identifier finds the account')
    t.eq(value(s.auth.get_subject_information_from_identifier(root, sid)).get('subject-name'),
         'vmop', 'auth.get_subject_information_from_identifier: the subject\'s other_config')
    t.eq(value(s.auth.get_group_membership(root, sid)), [], 'a local account has no groups')
    t.eq(err(s.auth.get_group_membership(root, 'nobody')), ['SUBJECT_CANNOT_BE_RESOLVED'],
         'an unknown identifier cannot be resolved')
    t.eq(sorted(value(s.subject.get_permissions_name_label(root, subj))),
         sorted(p for p in perms if p != 'vm-operator'), 'subject.get_permissions_name_label')
    return sess


def xencenter_start(t, d, s, sess, label):
    """The calls XenCenter makes on connecting, in its order, all of which must
    succeed (a failure aborts its connection)."""
    calls = []

    def call(name, *args):
        obj, msg = name.split('.')
        r = getattr(getattr(s, obj), msg)(sess, *args)
        calls.append((name, r.get('Status'), r.get('ErrorDescription')))
        return r.get('Value')

    # Session.SetupSessionDetails: SetAPIVersion, SetADDetails, SetRbacPermissions
    pools = call('pool.get_all_records')
    pool = list(pools.values())[0] if pools else {'master': 'OpaqueRef:NULL'}
    call('host.get_record', pool['master'])
    superuser = call('session.get_is_local_superuser', sess)
    if not superuser:
        call('session.get_subject', sess)
        sid = call('session.get_auth_user_sid', sess)
        # UserDetails.UpdateDetails (XenModel/XenAPI/UserDetails.cs)
        call('auth.get_subject_information_from_identifier', sid)
        for group in call('auth.get_group_membership', sid) or []:
            call('auth.get_subject_information_from_identifier', group)
        call('session.get_rbac_permissions', sess)
        call('role.get_all_records')
    # XenObjectDownloader.GetAllObjects: roles, then event.from(["*"], "")
    call('role.get_all_records')
    batch = call('event.from', ['*'], '', 30.0)
    classes = sorted({e['class'] for e in batch['events']}) if batch else []
    # the next poll from the returned token
    call('event.from', ['*'], batch['token'] if batch else '', 0.1)
    bad = [c for c in calls if c[1] != 'Success']
    t.eq(bad, [], 'XenCenter\'s connection start (%s): every call succeeds' % label)
    t.ok('role' not in classes and 'vm' in classes and 'host' in classes,
         'event.from(*) covers the objects, not the roles (read with role.get_all_records)',
         classes)


def model_entries():
    """Every wire message with its typed parameters, as the generator sees them."""
    sys.path.insert(0, os.path.join(TOP, 'gen'))
    import vgen
    model = vgen.load(os.path.join(TOP, 'datamodel'))
    vgen.prepare(model)
    return model, {e['wire']: e for e in vgen.write_dispatch(model, io.StringIO())}


# Messages whose real effect would end the walk or touch the machine: their
# references are never real objects (they answer HANDLE_INVALID), and the
# session-less ones named here are called from a throwaway session.
NO_REAL_REFS = {'destroy', 'forget', 'db_forget', 'destroy_many', 'data_destroy', 'unplug',
                'unplug_force', 'plug', 'reconfigure_ip', 'reconfigure_ipv6', 'eject'}
THROWAWAY_SESSION = {'session.logout', 'session.local_logout', 'session.logout_subject_identifier'}
# event.next blocks until an event (without a timeout); host.restart_agent
# and the certificate resets re-execute the daemon (tested apart, above);
# host.shutdown_agent is called last, on purpose.
NOT_WALKED = {'event.next', 'host.restart_agent', 'host.shutdown_agent',
              'host.reset_server_certificate', 'host.emergency_reset_server_certificate'}
# Classes whose objects stand for the machine itself (its NICs, bridges) or
# for other sessions: the walk never hands their real objects to a message.
SAFE_CLASSES = {'VM', 'VDI', 'VBD', 'SR', 'host', 'blob', 'message', 'task', 'secret',
                'pool_update', 'host_cpu', 'host_metrics', 'VM_metrics', 'SM', 'PBD', 'role'}


def fixtures(s, root):
    """Objects the walk may pass: a halted VM with one disk, a blob, a task."""
    sr = value(s.pool.get_default_SR(root, value(s.pool.get_all(root))[0]))
    tmpl = value(s.VM.get_by_name_label(root, 'Direct kernel boot'))[0]
    vm = value(s.VM.clone(root, tmpl, 'surface-walk'))
    value(s.VM.set_is_a_template(root, vm, False))
    vdi = value(s.VDI.create(root, {'name_label': 'walk', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(4 << 20), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    vbd = value(s.VBD.create(root, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                                    'mode': 'RW', 'type': 'Disk', 'empty': False,
                                    'other_config': {}, 'qos_algorithm_type': '',
                                    'qos_algorithm_params': {}}))
    return {'VM': vm, 'VDI': vdi, 'VBD': vbd, 'SR': sr,
            'blob': value(s.blob.create(root, 'text/plain', False)),
            'task': value(s.task.create(root, 'walk', '')),
            'message': value(s.message.create(root, 'walk', '1', 'VM',
                                              value(s.VM.get_uuid(root, vm)), 'body'))}


def arg_for(t, name, refs, real):
    k = t.kind
    if k == 'string':
        return {'uuid': '00000000-0000-0000-0000-000000000000', 'expr': 'true'}.get(name, 'x')
    if k == 'int':
        return '1'
    if k == 'float':
        return 0.1 if name == 'timeout' else 1.0
    if k == 'bool':
        return False
    if k == 'datetime':
        return xmlrpc.client.DateTime('19700101T00:00:00Z')
    if k == 'ref':
        return refs.get(t.cls, BOGUS) if real and t.cls in SAFE_CLASSES else BOGUS
    if k == 'enum':
        return ENUMS[t.enum][0]
    if k == 'set':
        return []
    if k in ('map', 'record'):
        return {}
    return ''


ENUMS = {}


def walk(t, d, s, root):
    model, entries = model_entries()
    ENUMS.update(model['enums'])
    refs = fixtures(s, root)
    refs['host'] = value(s.pool.get_master(root, value(s.pool.get_all(root))[0]))
    refs['role'] = value(s.role.get_by_name_label(root, 'vm-admin'))[0]
    listed = s.system.listMethods()  # a bare array, as xapi's
    proxy = xmlrpc.client.ServerProxy(d.url('/'), allow_none=False)
    socket.setdefaulttimeout(60)
    not_impl, missing, broken, built, called = [], [], [], [], 0
    for wire in listed:
        if wire in NOT_WALKED or wire.startswith('system.'):
            continue
        e = entries.get(wire)
        if e is None:
            missing.append(wire)
            continue
        real = e['name'] not in NO_REAL_REFS and not wire.startswith('pool.')
        args = [arg_for(typ, n, refs, real) for (typ, n, dflt) in e['params'] if dflt is None]
        sess = root
        if wire in THROWAWAY_SESSION:
            sess = d.login()
        if e['session']:
            args = [sess] + args
        obj, msg = wire.split('.', 1)
        try:
            r = getattr(getattr(proxy, obj), msg)(*args)
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            broken.append((wire, repr(exc)))
            if d.proc.poll() is not None:
                break
            continue
        called += 1
        err = r.get('ErrorDescription') or []
        if err[:1] == ['NOT_IMPLEMENTED'] and wire not in ALLOWED_NOT_IMPLEMENTED and \
                not wire.startswith('pool.'):  # pool.*: built with pools (issue 15)
            not_impl.append(wire)
        if err[:1] != ['NOT_IMPLEMENTED'] and wire in ALLOWED_NOT_IMPLEMENTED:
            built.append(wire)
    t.ok(called > 1000, 'the walk called %d of %d listed methods' % (called, len(listed)))
    t.eq(missing, [], 'every listed method is in the data model')
    t.eq(broken, [], 'every call got an answer (no dropped connection, no crash)')
    t.eq(not_impl, [], 'no method answers NOT_IMPLEMENTED outside the allow-list')
    t.eq(sorted(built), [], 'every allow-listed method still answers NOT_IMPLEMENTED (once one '
         'is built, its line goes)')
    allowed_listed = [w for w in ALLOWED_NOT_IMPLEMENTED if w in listed]
    t.eq(sorted(set(ALLOWED_NOT_IMPLEMENTED) - set(allowed_listed)), [],
         'every allow-listed method is listed (a stale entry is removed)')
    t.ok(value(s.pool.get_all(root)) != [], 'the daemon still serves after the walk')
    r = proxy.host.shutdown_agent(root)
    t.eq(r.get('Status'), 'Success', 'host.shutdown_agent answers before stopping')
    try:
        rc = d.proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - reported as a failure below
        rc = None
    t.eq(rc, 0, 'host.shutdown_agent stops vesseld cleanly')


def ready_count(d):
    with open(d.log_path) as f:
        return len(re.findall(r'vesseld\.ready', f.read()))


def wait_restarted(t, d, before, what):
    """Waits for vesseld.ready number @before + 1 in the log (the same
    process after its exec), points @d at its new port and logs in."""
    port = None
    for _ in range(300):
        with open(d.log_path) as f:
            found = re.findall(r'vesseld\.ready .*http_port=(\d+) .*https_port=(-?\d+)', f.read())
        if len(found) > before:
            port, d.tls_port = int(found[-1][0]), int(found[-1][1])
            break
        time.sleep(0.1)
    t.ok(port is not None and d.proc.poll() is None,
         '%s: vesseld is ready again, in the same process (exec)' % what)
    if port is not None:
        d.port = port
    return d.proxy(), d.login()


def restart_agent(t, d, s, root):
    """Xen Orchestra's "restart toolstack" button: host.restart_agent answers,
    then the same process (an exec) comes back and serves from the same store."""
    host = value(s.pool.get_master(root, value(s.pool.get_all(root))[0]))
    before = ready_count(d)
    r = s.host.restart_agent(root, host)
    t.eq(r.get('Status'), 'Success', 'host.restart_agent answers before restarting')
    s, root = wait_restarted(t, d, before, 'restart_agent')
    t.eq(value(s.host.get_record(root, host))['uuid'] != '', True,
         'and serves the same store (the host record)')
    return s, root


def served_certificate(d):
    """The PEM of the certificate the HTTPS listener presents now."""
    import ssl
    return ssl.get_server_certificate(('127.0.0.1', d.tls_port))


def certificates(t, d, s, root, tmp):
    """host.install_server_certificate checks as xapi's gencert does, then the
    listener serves the new pair; reset makes a new self-signed one."""
    import ssl
    host = value(s.pool.get_master(root, value(s.pool.get_all(root))[0]))
    t.eq(err(s.host.install_server_certificate(root, host, 'x', 'not a key', '')),
         ['SERVER_CERTIFICATE_KEY_INVALID'], 'install: an unreadable key')
    ec_key = os.path.join(tmp, 'ec.key')
    subprocess.run(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out',
                    ec_key], check=True, capture_output=True)
    t.eq(err(s.host.install_server_certificate(root, host, 'x', open(ec_key).read(), ''))[:1],
         ['SERVER_CERTIFICATE_KEY_ALGORITHM_NOT_SUPPORTED'], 'install: RSA keys only, as xapi')
    key, crt = os.path.join(tmp, 'rsa.key'), os.path.join(tmp, 'rsa.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
                    '-keyout', key, '-out', crt, '-days', '30', '-subj', '/CN=vessel-surface'],
                   check=True, capture_output=True)
    other = os.path.join(tmp, 'other.key')
    subprocess.run(['openssl', 'genrsa', '-out', other, '2048'], check=True, capture_output=True)
    t.eq(err(s.host.install_server_certificate(root, host, open(crt).read(),
                                               open(other).read(), '')),
         ['SERVER_CERTIFICATE_KEY_MISMATCH'], 'install: a key the certificate does not name')
    t.eq(err(s.host.install_server_certificate(root, host, open(crt).read(), open(key).read(),
                                               'junk')),
         ['SERVER_CERTIFICATE_CHAIN_INVALID'], 'install: a chain that is no certificate')
    before = ready_count(d)
    value(s.host.install_server_certificate(root, host, open(crt).read(), open(key).read(), ''))
    s, root = wait_restarted(t, d, before, 'install_server_certificate')
    want = ssl.PEM_cert_to_DER_cert(open(crt).read())
    t.eq(ssl.PEM_cert_to_DER_cert(served_certificate(d)), want,
         'the HTTPS listener serves the installed certificate')
    t.eq(ssl.PEM_cert_to_DER_cert(value(s.host.get_server_certificate(root, host))), want,
         'and host.get_server_certificate returns it')
    before = ready_count(d)
    value(s.host.reset_server_certificate(root, host))
    s, root = wait_restarted(t, d, before, 'reset_server_certificate')
    t.ok(ssl.PEM_cert_to_DER_cert(served_certificate(d)) != want,
         'reset_server_certificate: a new self-signed certificate is served')
    return s, root

def err(r):
    """The ErrorDescription of a failed call, [] for a success."""
    return r.get('ErrorDescription') or [] if r.get('Status') != 'Success' else []


def overhead_mib(static_max, vcpus, multiplier=1.0, pv=False):
    """xapi's memory model (ocaml/xapi-idl/memory/memory.ml), HVM or PV."""
    mib = -(-static_max // (1 << 20))
    shadow = max(1, int(-(-(256 * vcpus + 2 * mib) // 256) * multiplier))
    return (0 if pv else 1) + 1 + shadow + -(-(38 * vcpus) // 256)


def host_behaviour(t, d, s, root, host):
    t.eq(err(s.host.call_plugin(root, host, 'zfs.py', 'list_zfs_pools', {})),
         ['XENAPI_MISSING_PLUGIN', 'zfs.py'], 'host.call_plugin: a missing plugin, as xapi')
    r = value(s.host.call_plugin(root, host, 'hyperthreading.py', 'get_hyperthreading', {}))
    t.ok(r in ('true', 'false'), 'host.call_plugin hyperthreading.py: Xen Orchestra\'s answer', r)
    t.eq(err(s.host.call_plugin(root, host, 'hyperthreading.py', 'nope', {})),
         ['UNKNOWN_XENAPI_PLUGIN_FUNCTION', 'nope'], 'an unknown function of a known plugin')
    t.eq(err(s.host.apply_edition(root, host, 'free', False)), [], 'apply_edition free')
    t.eq(err(s.host.apply_edition(root, host, 'enterprise', False)),
         ['INVALID_EDITION', 'enterprise'], 'apply_edition of a paid edition: INVALID_EDITION')
    t.eq(err(s.host.license_add(root, host, 'bm90IGEgbGljZW5jZQ==')),
         ['LICENSE_PROCESSING_ERROR'], 'license_add: the free edition takes no licence file')
    t.eq(err(s.host.set_iscsi_iqn(root, host, ''))[:1], ['INVALID_VALUE'], 'an empty IQN')
    value(s.host.set_iscsi_iqn(root, host, 'iqn.2026-12.org.vessel:test'))
    value(s.host.set_multipathing(root, host, True))
    h = value(s.host.get_record(root, host))
    t.ok(h['iscsi_iqn'] == 'iqn.2026-12.org.vessel:test' and
         h['other_config'].get('iscsi_iqn') == h['iscsi_iqn'] and h['multipathing'] and
         h['other_config'].get('multipathing') == 'true',
         'iSCSI IQN and multipathing: the fields and other_config, as xapi', h['other_config'])
    t.eq(value(s.host.enable_display(root, host)), 'enabled', 'enable_display: enabled')
    t.eq(err(s.host.disable_display(root, host)), ['FEATURE_RESTRICTED'],
         'disable_display: a feature the free edition lacks')
    t.eq(err(s.host.reboot(root, host)), ['HOST_NOT_DISABLED'],
         'host.reboot of an enabled host: HOST_NOT_DISABLED')
    t.eq(err(s.host.emergency_ha_disable(root, False)), ['HA_NOT_ENABLED'], 'no HA to disable')
    t.eq(err(s.host.retrieve_wlb_evacuate_recommendations(root, host)), ['WLB_NOT_INITIALIZED'],
         'no WLB configured')
    pem = value(s.host.get_server_certificate(root, host))
    t.ok(pem.startswith('-----BEGIN CERTIFICATE-----'), 'get_server_certificate: the PEM')
    m = value(s.host_metrics.get_record(root, h['metrics']))
    free = int(value(s.host.compute_free_memory(root, host)))
    t.ok(0 < free <= int(m['memory_total']), 'compute_free_memory: what a guest may take', free)
    t.eq(value(s.host.compute_memory_overhead(root, host)), h['memory_overhead'],
         'host.compute_memory_overhead: the host\'s overhead')
    t.ok('VM.start' in value(s.host.list_methods(root)), 'host.list_methods names the messages')
    t.eq(err(s.host.set_hostname_live(root, host, 'bad name!')),
         ['HOST_NAME_INVALID', 'hostname contains invalid characters'], 'a bad hostname')
    value(s.host.set_hostname_live(root, host, 'vessel-surface'))
    t.eq(value(s.host.get_hostname(root, host)), 'vessel-surface', 'set_hostname_live: recorded')
    t.eq(value(s.host.get_sched_gran(root, host)), 'cpu', 'sched-gran: cpu')
    t.eq(err(s.host.set_sched_gran(root, host, 'core')),
         ['OPERATION_NOT_ALLOWED', 'Disabled by xapi.conf'], 'set_sched_gran: off, as xapi')
    t.eq(err(s.host.local_management_reconfigure(root, 'eth0')), ['NOT_IN_EMERGENCY_MODE'],
         'local_management_reconfigure outside emergency mode')


def vm_behaviour(t, d, s, root, host, sr):
    tmpl = value(s.VM.get_by_name_label(root, 'Direct kernel boot'))[0]
    vm = value(s.VM.clone(root, tmpl, 'behaviour'))
    value(s.VM.set_is_a_template(root, vm, False))
    r = value(s.VM.get_record(root, vm))
    want = overhead_mib(int(r['memory_static_max']), int(r['VCPUs_max']),
                        float(r['HVM_shadow_multiplier']), r['domain_type'] == 'pv') << 20
    t.eq(int(value(s.VM.compute_memory_overhead(root, vm))), want,
         'VM.compute_memory_overhead: xapi\'s memory model')
    total = 1 << 30
    m = int(value(s.VM.maximise_memory(root, vm, str(total), False)))
    t.ok(m % (1 << 20) == 0 and
         m + (overhead_mib(m, int(r['VCPUs_max'])) << 20) <= total <
         m + (1 << 20) + (overhead_mib(m + (1 << 20), int(r['VCPUs_max'])) << 20),
         'VM.maximise_memory: the largest whole MiB that fits', m)
    t.eq(err(s.VM.assert_can_boot_here(root, vm, host)), [], 'assert_can_boot_here: yes')
    t.eq(value(s.VM.get_possible_hosts(root, vm)), [host], 'get_possible_hosts: this host')
    vdi = value(s.VDI.create(root, {'name_label': 'b', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(4 << 20), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(root, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'empty': False, 'other_config': {},
                              'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    t.eq(err(s.VM.assert_agile(root, vm)), ['HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED', sr],
         'assert_agile: a disk on an unshared SR')
    value(s.VM.copy_bios_strings(root, vm, host))
    t.eq(err(s.VM.copy_bios_strings(root, vm, host)), ['VM_BIOS_STRINGS_ALREADY_SET'],
         'copy_bios_strings once only')
    t.eq(value(s.VM.get_affinity(root, vm)), host, 'and the VM is pinned to that host')
    value(s.VM.add_to_NVRAM(root, vm, 'EFI-variables', 'AAAA'))
    t.eq(value(s.VM.get_NVRAM(root, vm)), {'EFI-variables': 'AAAA'}, 'add_to_NVRAM')
    value(s.VM.remove_from_NVRAM(root, vm, 'EFI-variables'))
    t.eq(value(s.VM.get_NVRAM(root, vm)), {}, 'remove_from_NVRAM')
    t.eq(err(s.VM.assert_operation_valid(root, vm, 'start')), [], 'start is valid when halted')
    t.eq(err(s.VM.assert_operation_valid(root, vm, 'pause'))[:1], ['VM_BAD_POWER_STATE'],
         'pause is not')
    t.eq(err(s.VM.call_plugin(root, vm, 'x', 'y', {})), ['XENAPI_MISSING_PLUGIN', 'x'],
         'VM.call_plugin: only the guest agent plugin exists')
    t.eq(err(s.VM.call_plugin(root, vm, 'guest-agent-operation', 'request-rdp-on', {}))[:2],
         ['XENAPI_PLUGIN_FAILURE', 'failed to execute fn'], 'and it needs a guest agent')
    t.eq(value(s.VM.get_SRs_required_for_recovery(root, vm, root)), [],
         'get_SRs_required_for_recovery: the SR is here')
    t.eq(err(s.VM.recover(root, vm, root, False)), ['DUPLICATE_VM', vm],
         'recover into the database the VM is in: DUPLICATE_VM unless forced')
    t.eq(value(s.VM.get_boot_record(root, vm))['uuid'], r['uuid'], 'get_boot_record')
    t.eq(value(s.VM.get_cooperative(root, vm)), True, 'get_cooperative: always, as xapi')
    blob = value(s.VM.create_new_blob(root, vm, 'notes', 'text/plain', False))
    t.eq(value(s.VM.get_blobs(root, vm)), {'notes': blob}, 'create_new_blob names the blob')
    return vm, vdi


def storage_behaviour(t, d, s, root, sr, vdi):
    t.eq(err(s.SR.assert_can_host_ha_statefile(root, sr)), ['SR_OPERATION_NOT_SUPPORTED', sr],
         'no HA statefile on a directory SR')
    t.eq(err(s.SR.enable_database_replication(root, sr)), ['SR_OPERATION_NOT_SUPPORTED', sr],
         'no metadata replication either')
    t.eq(err(s.SR.make(root, BOGUS, {}, '0', '', '', 'ext', '', {})), ['MESSAGE_DEPRECATED'],
         'SR.make is deprecated, as xapi says')
    uuid = value(s.VDI.get_uuid(root, vdi))
    size = value(s.VDI.get_virtual_size(root, vdi))
    value(s.VBD.destroy(root, value(s.VDI.get_VBDs(root, vdi))[0]))
    value(s.VDI.forget(root, vdi))
    back = value(s.VDI.introduce(root, uuid, 'back', '', sr, 'user', False, False, {}, uuid, {},
                                 {}, True, '0', '0', BOGUS, False,
                                 xmlrpc.client.DateTime('19700101T00:00:00Z'), BOGUS))
    rec = value(s.VDI.get_record(root, back))
    t.ok(rec['uuid'] == uuid and rec['virtual_size'] == size and rec['name_label'] == 'back',
         'VDI.introduce takes a forgotten VHD back', rec)
    t.eq(err(s.VDI.introduce(root, uuid, 'again', '', sr, 'user', False, False, {}, uuid, {},
                             {}, True, '0', '0', BOGUS, False,
                             xmlrpc.client.DateTime('19700101T00:00:00Z'), BOGUS))[:1],
         ['DB_UNIQUENESS_CONSTRAINT_VIOLATION'], 'twice: the uuid is taken')
    t.eq(err(s.VDI.introduce(root, '', 'x', '', sr, 'user', False, False, {}, 'no-such', {}, {},
                             True, '0', '0', BOGUS, False,
                             xmlrpc.client.DateTime('19700101T00:00:00Z'), BOGUS)),
         ['VDI_LOCATION_MISSING', sr, 'no-such'], 'a location with no file')
    pbd = value(s.SR.get_PBDs(root, sr))[0]
    t.eq(err(s.PBD.set_device_config(root, pbd, {'SRmaster': 'true'})),
         ['VALUE_NOT_SUPPORTED', 'SRmaster', 'true', 'This key is for internal use only'],
         'PBD.set_device_config: SRmaster is internal')


def net_behaviour(t, d, s, root):
    net = value(s.network.get_all(root))[0]
    t.eq(err(s.Bond.create(root, net, [], '', 'active-backup', {})),
         ['PIF_BOND_NEEDS_MORE_MEMBERS'], 'Bond.create of no member')
    t.eq(err(s.Bond.create(root, net, [], 'zz', 'lacp', {})), ['MAC_INVALID', 'zz'],
         'Bond.create with a bad MAC')
    t.eq(err(s.Bond.create(root, net, [], '', 'lacp', {'lacp-time': 'never'})),
         ['INVALID_VALUE', 'properties', 'lacp-time = never'], 'a bad lacp property')
    t.eq(err(s.PIF.introduce(root, value(s.host.get_all(root))[0], '', 'no-such-nic0', True))[:1],
         ['MAC_INVALID'], 'PIF.introduce of a NIC this host lacks (no MAC to take)')


def behaviours(t, d, s, root):
    host = value(s.pool.get_master(root, value(s.pool.get_all(root))[0]))
    sr = value(s.pool.get_default_SR(root, value(s.pool.get_all(root))[0]))
    host_behaviour(t, d, s, root, host)
    vm, vdi = vm_behaviour(t, d, s, root, host, sr)
    storage_behaviour(t, d, s, root, sr, vdi)
    net_behaviour(t, d, s, root)
    msgs = [value(s.message.create(root, 'm%d' % i, '1', 'VM',
                                   value(s.VM.get_uuid(root, vm)), '')) for i in range(3)]
    t.eq(err(s.message.destroy_many(root, msgs[:2] + [BOGUS]))[:1], ['HANDLE_INVALID'],
         'message.destroy_many with an unknown ref: an error ...')
    t.ok(all(m in value(s.message.get_all(root)) for m in msgs), '... and nothing destroyed')
    value(s.message.destroy_many(root, msgs))
    t.ok(not any(m in value(s.message.get_all(root)) for m in msgs), 'destroy_many: all gone')


def main():
    tmp = tempfile.mkdtemp(prefix='vessel-surface-')
    return test_main(sys.argv[1], lambda t, d: run(t, d, tmp), ['--backend', 'sim'], tls=True,
                     after=lambda: shutil.rmtree(tmp, ignore_errors=True))


def run(t, d, tmp):
    s = d.proxy()
    root = d.login()
    vmop = rbac(t, d, s, root)
    behaviours(t, d, s, root)
    xencenter_start(t, d, s, root, 'root')
    xencenter_start(t, d, s, vmop, 'vm-operator')
    s, root = restart_agent(t, d, s, root)
    s, root = certificates(t, d, s, root, tmp)
    walk(t, d, s, root)


if __name__ == '__main__':
    sys.exit(main())
