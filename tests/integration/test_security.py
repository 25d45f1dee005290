"""tests/integration/test_security.py - the security review's attacks, replayed.

Each finding of the review is performed as it was: the attacker's account
(read-only, vm-operator, vm-admin), the same request. Each must fail cleanly
and the daemon must keep serving. Then a sweep calls every method that
system.listMethods names with a read-only and a vm-operator session: what
their role may not do is denied, and no answer carries another session's ref
or a secret's value. The roles expected come from the data model itself
(gen/vgen.py reads datamodel/, as the build does).

Usage: test_security.py VESSELD
"""
import io
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, error, value  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = 'the-secret-value-6d1f'
ROLES = ['read-only', 'vm-operator', 'vm-admin', 'vm-power-admin', 'pool-operator', 'pool-admin']


def message_roles():
    """wire name -> least role, from the data model as the generator sees it."""
    sys.path.insert(0, os.path.join(TOP, 'gen'))
    import vgen
    model = vgen.load(os.path.join(TOP, 'datamodel'))
    vgen.prepare(model)
    entries = vgen.write_dispatch(model, io.StringIO())
    return {e['wire']: (e['role'], e['session']) for e in entries}


def sessions_and_secrets(t, d, root):
    s = d.proxy()
    ro = d.login('reader', 'reader-password')
    other = d.login('operator', 'operator-password')
    secrets = [SECRET]
    value(s.secret.create(root, {'value': SECRET}))
    forbidden = [root, other]

    # 1. event.from on "session" listed every session's ref: ro became root.
    r = value(s.event.__getattr__('from')(ro, ['session'], '', 1.0))
    t.eq(r['events'], [], 'finding 1: event.from(["session"]) as read-only lists no session')
    r = value(s.event.__getattr__('from')(ro, ['*'], '', 1.0))
    classes = sorted({e['class'] for e in r['events']})
    t.ok('session' not in classes and 'secret' not in classes,
         'finding 1: event.from(["*"]) holds no session or secret event', classes)
    t.ok(not any(x in repr(r) for x in forbidden + secrets),
         'finding 1: no other session ref or secret value in event.from(["*"])')
    token = value(s.event.__getattr__('from')(ro, ['vm'], '', 0.0))['token']
    value(s.event.register(ro, ['session', 'secret', 'vm']))
    poked = d.login()
    forbidden.append(poked)
    secrets.append(SECRET + '-2')
    value(s.secret.create(root, {'value': SECRET + '-2'}))
    vm = value(s.VM.get_by_name_label(root, 'Direct kernel boot'))[0]
    value(s.VM.add_to_other_config(root, vm, 'poke', '1'))
    r = value(s.event.next(ro))  # returns at the VM change; nothing of session or secret
    t.ok(r and all(e['class'] == 'vm' for e in r) and
         not any(x in repr(r) for x in forbidden + secrets),
         'finding 1: event.register + event.next carries no session or secret', r)
    r = value(s.event.__getattr__('from')(ro, ['session', 'secret'], token, 0.5))
    t.eq(r['events'], [], 'finding 1: a new session and secret produce no event for anyone')
    e = error(s.session.get_record(ro, root))
    t.eq(e and e[0], 'HANDLE_INVALID', 'finding 1: another session\'s record is not readable')
    root_uuid = value(s.session.get_uuid(root, root))
    e = error(s.session.get_by_uuid(ro, root_uuid))
    t.eq(e and e[0], 'UUID_INVALID', 'finding 1: session.get_by_uuid of another session')
    t.eq(value(s.session.get_uuid(ro, ro)) != root_uuid, True, 'a session reads its own record')
    e = error(s.session.get_all(ro))
    t.eq(e and e[0], 'MESSAGE_METHOD_UNKNOWN', 'finding 1: session.get_all does not exist')
    e = error(s.VM.set_name_label(root + 'x', 'x', 'y'))
    t.eq(e and e[0], 'SESSION_INVALID', 'a guessed ref is no session')

    # 3. Secrets readable by read-only.
    ref = value(s.secret.get_all(root))[0]
    for name, call in [('get_value', lambda: s.secret.get_value(ro, ref)),
                       ('get_record', lambda: s.secret.get_record(ro, ref)),
                       ('get_all_records', lambda: s.secret.get_all_records(ro)),
                       ('get_all', lambda: s.secret.get_all(ro)),
                       ('get_uuid', lambda: s.secret.get_uuid(ro, ref))]:
        e = error(call())
        t.eq(e and e[0], 'RBAC_PERMISSION_DENIED', 'finding 3: read-only secret.%s is denied' % name)
    e = error(s.secret.get_value(other, ref))
    t.eq(e and e[0], 'RBAC_PERMISSION_DENIED', 'finding 3: vm-operator secret.get_value is denied')
    t.eq(value(s.secret.get_value(root, ref)), SECRET, 'pool-admin reads the secret')
    t.eq(value(s.VM.get_all(ro)) is not None, True, 'the daemon keeps serving')
    return ro, other, forbidden, secrets


def tasks(t, d, root, ro, vm_admin):
    s = d.proxy()
    # 7. A task belongs to its session's account.
    vm = value(s.VM.get_by_name_label(root, 'Direct kernel boot'))[0]
    root_task = value(s.task.create(root, 'root-work', 'a transfer in flight'))
    for who, sess in [('read-only', ro), ('vm-admin', vm_admin)]:
        for name, call in [('cancel', lambda: s.task.cancel(sess, root_task)),
                           ('destroy', lambda: s.task.destroy(sess, root_task)),
                           ('set_status', lambda: s.task.set_status(sess, root_task, 'success')),
                           ('set_progress', lambda: s.task.set_progress(sess, root_task, 0.5)),
                           ('set_result', lambda: s.task.set_result(sess, root_task, 'x')),
                           ('set_error_info', lambda: s.task.set_error_info(sess, root_task, ['X'])),
                           ('add_to_other_config',
                            lambda: s.task.add_to_other_config(sess, root_task, 'k', 'v'))]:
            e = error(call())
            t.ok(e and e[0] == 'RBAC_PERMISSION_DENIED' and e[1] == 'task.destroy/any',
                 'finding 7: %s may not %s root\'s task' % (who, name), e)
    rec = value(s.task.get_record(root, root_task))
    t.ok(rec['status'] == 'pending' and rec['progress'] == 0.0 and not rec['current_operations'],
         'finding 7: root\'s task is untouched', rec)
    t.ok('owner' not in rec, 'a task\'s owner is not on the wire')
    # an HTTP transfer reporting into another account's task
    vdi = value(s.VDI.get_all(root))
    url = d.url('/export_raw_vdi?session_id=%s&vdi=%s&task_id=%s&format=raw' % (
        vm_admin, vdi[0] if vdi else 'OpaqueRef:NULL', root_task))
    try:
        urllib.request.urlopen(url, timeout=10).read()
        status = 200
    except urllib.error.HTTPError as ex:
        status = ex.code
    t.ok(status in (401, 403), 'finding 7: vm-admin cannot report a transfer into root\'s task',
         status)
    own = value(s.task.create(ro, 'mine', ''))
    t.eq(error(s.task.set_progress(ro, own, 0.5)), None, 'an account drives its own task')
    t.eq(error(s.task.destroy(ro, own)), None, 'and destroys it')
    t.eq(error(s.task.cancel(root, root_task)), None, 'pool-admin cancels any task')
    t.eq(value(s.VM.get_name_label(root, vm)), 'Direct kernel boot', 'the daemon keeps serving')


def sweep(t, d, root, sessions, forbidden, secrets):
    s = d.proxy()
    roles = message_roles()
    methods = [m for m in s.system.listMethods() if not m.startswith('system.')]
    t.ok(len(methods) > 1000, 'system.listMethods lists the API (%d methods)' % len(methods))
    for who, sess in sessions:
        rank = ROLES.index(who)
        allowed_own = [x for x in forbidden + [x for _, x in sessions] if x != sess] + secrets
        wrong, leaks, unknown = [], [], []
        for m in methods:
            bare = m[6:] if m.startswith('Async.') else m
            if bare not in roles:
                unknown.append(m)
                continue
            role, needs_session = roles[bare]
            if not needs_session or bare in ('session.logout', 'session.local_logout'):
                continue
            r = getattr(s, m)(sess)
            e = error(r) or []
            if e and e[0] == 'MESSAGE_PARAMETER_COUNT_MISMATCH':
                n = int(e[2])
                r = getattr(s, m)(sess, *(['OpaqueRef:NULL'] * n))
                e = error(r) or []
            denied = bool(e) and e[0] == 'RBAC_PERMISSION_DENIED'
            if ROLES.index(role) > rank and not denied:
                wrong.append((m, role, e[:1]))
            if ROLES.index(role) <= rank and denied:
                wrong.append((m, role, 'denied'))
            if any(x in repr(r) for x in allowed_own):
                leaks.append(m)
        t.eq(unknown, [], '%s sweep: every listed method is in the data model' % who)
        t.eq(wrong, [], '%s sweep: denied exactly what its role may not do (%d methods)'
             % (who, len(methods)))
        t.eq(leaks, [], '%s sweep: no answer holds another session\'s ref or a secret' % who)
        # and the reads that succeed, on real objects
        leaks = []
        for m in methods:
            if m.endswith('.get_all_records') and not m.startswith('Async.'):
                r = getattr(s, m)(sess)
                if any(x in repr(r) for x in allowed_own):
                    leaks.append(m)
        t.eq(leaks, [], '%s: no get_all_records answer holds a session ref or a secret' % who)
    t.ok(value(s.VM.get_all(root)) is not None, 'the daemon keeps serving after the sweeps')


def data_dir_modes(t, d, binary):
    data = os.path.join(d.dir, 'data')
    t.eq(stat.S_IMODE(os.stat(data).st_mode), 0o700, 'finding 6: the data dir is 0700')
    loose = [f for f in os.listdir(data) if os.path.isfile(os.path.join(data, f)) and
             stat.S_IMODE(os.stat(os.path.join(data, f)).st_mode) & 0o077]
    t.eq(loose, [], 'finding 6: every file in it is private')
    # an existing data dir left 0755 with a 0644 store is made private at start
    d.stop()
    os.chmod(data, 0o755)
    os.chmod(os.path.join(data, 'vessel.db'), 0o644)
    d.start()
    t.eq(stat.S_IMODE(os.stat(data).st_mode), 0o700, 'finding 6: a 0755 data dir becomes 0700')
    t.eq(stat.S_IMODE(os.stat(os.path.join(data, 'vessel.db')).st_mode), 0o600,
         'finding 6: a 0644 vessel.db becomes 0600')
    with open(d.log_path) as f:
        t.ok('vesseld.data_dir_private' in f.read(), 'and the change is logged')
    # a data dir owned by someone else is refused
    other = os.path.join(d.dir, 'foreign')
    os.mkdir(other, 0o700)
    os.chown(other, 65534, 65534)
    p = subprocess.run([binary, '--data-dir', other, '--listen', '127.0.0.1:0',
                        '--tls-listen', 'none', '--nbd-listen', 'none', '--unix', os.path.join(d.dir, 'x.sock')],
                       capture_output=True, timeout=20)
    t.ok(p.returncode != 0 and b'vesseld.data_dir' in p.stderr,
         'finding 6: a data dir owned by another user is refused with a clear message',
         p.stderr[-500:])
    return d.login()


def audit_log(t, d, root, ro):
    s = d.proxy()
    vm = value(s.VM.get_by_name_label(root, 'Direct kernel boot'))[0]
    value(s.VM.add_to_other_config(root, vm, 'audited', 'yes'))
    error(s.VM.set_name_label(ro, vm, 'not allowed'))
    error(d.proxy().session.login_with_password('reader', 'wrong-password-xyz'))
    with open(os.path.join(d.dir, 'data', 'audit.log')) as f:
        text = f.read()
    lines = text.splitlines()
    t.ok(any('call=VM.add_to_other_config' in ln and 'user=root' in ln and 'self=' + vm in ln and
             'outcome=ok' in ln for ln in lines), 'audit: a change is recorded with who and what')
    t.ok(any('call=VM.set_name_label' in ln and 'user=reader' in ln and
             'outcome=RBAC_PERMISSION_DENIED' in ln for ln in lines),
         'audit: a denied call is recorded with its outcome')
    t.ok(any('call=session.login_with_password' in ln and 'user=reader' in ln and
             'outcome=SESSION_AUTHENTICATION_FAILED' in ln for ln in lines),
         'audit: a failed login is recorded')
    t.ok(not any('call=VM.get_' in ln for ln in lines), 'audit: reads are not recorded')
    t.ok(root not in text and ro not in text and 'wrong-password-xyz' not in text,
         'audit: no session ref and no password in the audit log')
    t.eq(stat.S_IMODE(os.stat(os.path.join(d.dir, 'data', 'audit.log')).st_mode), 0o600,
         'audit: the log is 0600')
    with open(d.log_path) as f:
        t.ok(root not in f.read(), 'no session ref in vesseld\'s own log')


def main():
    binary = sys.argv[1]
    t = Tap()
    d = Vesseld(binary, extra=['--backend', 'sim', '--log-level', 'debug'])
    try:
        d.start()
        root = d.login()
        add_account(d, root, 'reader', 'reader-password', 'read-only')
        add_account(d, root, 'operator', 'operator-password', 'vm-operator')
        add_account(d, root, 'admin', 'admin-password', 'vm-admin')
        ro, other, forbidden, secrets = sessions_and_secrets(t, d, root)
        vm_admin = d.login('admin', 'admin-password')
        tasks(t, d, root, ro, vm_admin)
        audit_log(t, d, root, ro)
        sweep(t, d, root, [('read-only', ro), ('vm-operator', other)], forbidden, secrets)
        data_dir_modes(t, d, binary)
    finally:
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
