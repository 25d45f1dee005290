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
Usage: test_surface.py BUILD/vesseld
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, value  # noqa: E402


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
        call('session.get_auth_user_sid', sess)
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


def main():
    t = Tap()
    d = Vesseld(sys.argv[1], extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        root = d.login()
        vmop = rbac(t, d, s, root)
        xencenter_start(t, d, s, root, 'root')
        xencenter_start(t, d, s, vmop, 'vm-operator')
    except Exception as exc:  # a crash of the test is a failure, with its reason
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
