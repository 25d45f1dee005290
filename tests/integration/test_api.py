#!/usr/bin/env python3
"""tests/integration/test_api.py - the XenAPI server driven over HTTP with
Python's xmlrpc.client (a client nobody on the team wrote) and raw JSON-RPC.

Covers: login and sessions, the first-start objects, implicit messages of
every class, setters and map/set rules, errors with their parameters, Async
calls through tasks, event.from, RBAC with a non-root account, restart
(nothing lost, nothing duplicated). Usage: test_api.py BUILD/vesseld
"""
import json
import os
import subprocess
import sys
import threading
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, error, test_main, value  # noqa: E402

CLASSES = ['session', 'subject', 'role', 'task', 'pool', 'host', 'host_metrics', 'host_cpu', 'VM',
           'VM_metrics', 'VM_guest_metrics', 'console', 'VBD', 'VBD_metrics', 'VDI', 'SR', 'SM',
           'PBD', 'network', 'VIF', 'VIF_metrics', 'PIF', 'PIF_metrics', 'message', 'blob',
           'secret', 'Bond', 'VLAN', 'pool_update']


def first_start(t, d):
    s = d.proxy()
    sess = d.login()
    t.ok(sess.startswith('OpaqueRef:'), 'login returns an OpaqueRef session')
    two = s.session.login_with_password('root', ROOT_PASSWORD)
    t.ok(value(two).startswith('OpaqueRef:'), 'login with two arguments (as XO sends)')
    methods = s.system.listMethods()
    t.ok(isinstance(methods, list) and 'VM.get_all_records' in methods,
         'system.listMethods is a bare array naming VM.get_all_records')
    listed = {m[:-len('.get_all_records')] for m in methods if m.endswith('.get_all_records')}
    want = set(CLASSES) - {'session'}
    t.ok(want <= listed, 'every class with records is derivable from listMethods',
         sorted(want - listed))
    for cls in sorted(listed):
        r = getattr(s, cls).get_all_records(sess)
        t.ok(isinstance(r, dict) and r.get('Status') == 'Success', '%s.get_all_records succeeds' % cls,
             r if not isinstance(r, dict) else r.get('ErrorDescription'))
    pools = value(s.pool.get_all_records(sess))
    t.eq(len(pools), 1, 'exactly one pool')
    pool_ref, pool = list(pools.items())[0]
    host = value(s.host.get_record(sess, pool['master']))
    t.eq((host['API_version_major'], host['API_version_minor']), ('2', '21'),
         'master host reports API 2.21 with ints as strings')
    t.ok(host['software_version'].get('platform_version') == '3.4.0', 'software_version.platform_version')
    cpus = value(s.host.get_host_CPUs(sess, pool['master']))
    t.eq(len(cpus), os.cpu_count(), 'one host_cpu per CPU')
    metrics = value(s.host_metrics.get_record(sess, host['metrics']))
    t.ok(int(metrics['memory_total']) > 0, 'host_metrics.memory_total is the machine memory')
    vms = value(s.VM.get_all_records(sess))
    dom0 = [v for v in vms.values() if v['is_control_domain']]
    t.ok(len(dom0) == 1 and dom0[0]['power_state'] == 'Running' and dom0[0]['domid'] == '0',
         'one control domain, Running, domid 0')
    t.eq(host['control_domain'] in vms and vms[host['control_domain']]['is_control_domain'], True,
         'host.control_domain names it')
    t.ok(dom0 and dom0[0]['resident_on'] == pool['master'], 'dom0 is resident on the host')
    t.ok(pool['master'] and dom0 and vms and
         host['control_domain'] in value(s.host.get_resident_VMs(sess, pool['master'])),
         'host.resident_VMs is kept from VM.resident_on (reverse link)')
    templates = {v['name_label']: r for r, v in vms.items() if v['is_a_template']}
    t.ok('Direct kernel boot' in templates and 'Other install media' in templates,
         'built-in templates exist', sorted(templates))
    t.ok(all(vms[r]['is_default_template'] for r in templates.values()), 'templates are default templates')
    roles = value(s.role.get_all_records(sess))
    names = {v['name_label']: r for r, v in roles.items()}
    t.eq(names.get('pool-admin'), 'OpaqueRef:0165f154-ba3e-034e-6b27-5d271af109ba',
         'pool-admin role ref is the deterministic one')
    t.ok(len(value(s.SM.get_all(sess))) >= 2, 'SM records exist')
    t.ok(len(value(s.network.get_all(sess))) >= 1, 'a network exists')
    return sess, pool_ref, pool['master'], templates


def implicit_messages(t, d, sess, templates):
    s = d.proxy()
    tmpl = templates['Direct kernel boot']
    vm = value(s.VM.clone(sess, tmpl, 'it-vm'))
    t.ok(vm.startswith('OpaqueRef:'), 'VM.clone of a template returns a ref')
    rec = value(s.VM.get_record(sess, vm))
    t.eq(rec['name_label'], 'it-vm', 'clone has the new name')
    t.eq(rec['is_default_template'], False, 'clone is not a default template')
    t.eq(value(s.VM.get_other_config(sess, tmpl)).get('default_template'), 'true',
         'the built-in template has other_config:default_template')
    t.ok('default_template' not in rec['other_config'],
         'its clone does not (Xen Orchestra would take it for a built-in and refuse to delete it)')
    cp = value(s.VM.copy(sess, tmpl, 'it-copy', 'OpaqueRef:NULL'))
    t.ok('default_template' not in value(s.VM.get_other_config(sess, cp)), 'nor does a copy')
    value(s.VM.destroy(sess, cp))
    t.ok(rec['metrics'] != 'OpaqueRef:NULL' and value(s.VM_metrics.get_record(sess, rec['metrics'])),
         'clone has its own VM_metrics')
    t.eq(value(s.VM.get_by_uuid(sess, rec['uuid'])), vm, 'get_by_uuid finds it')
    t.ok(vm in value(s.VM.get_by_name_label(sess, 'it-vm')), 'get_by_name_label finds it')
    t.eq(value(s.VM.get_name_label(sess, vm)), 'it-vm', 'field getter')
    value(s.VM.set_name_label(sess, vm, 'renamed'))
    t.eq(value(s.VM.get_name_label(sess, vm)), 'renamed', 'set_name_label changes it')
    value(s.VM.add_to_other_config(sess, vm, 'folder', '/a'))
    t.eq(value(s.VM.get_other_config(sess, vm)).get('folder'), '/a', 'add_to_other_config')
    e = error(s.VM.add_to_other_config(sess, vm, 'folder', '/b'))
    t.eq(e, ['MAP_DUPLICATE_KEY', 'VM', 'other_config', rec['uuid'], 'folder'],
         'add_to an existing key: MAP_DUPLICATE_KEY [class, field, uuid, key]')
    value(s.VM.remove_from_other_config(sess, vm, 'folder'))
    value(s.VM.remove_from_other_config(sess, vm, 'absent'))
    t.ok('folder' not in value(s.VM.get_other_config(sess, vm)), 'remove_from (absent key is a no-op)')
    value(s.VM.add_tags(sess, vm, 'web'))
    value(s.VM.add_tags(sess, vm, 'web'))
    t.eq(value(s.VM.get_tags(sess, vm)), ['web'], 'add_tags twice keeps one')
    value(s.VM.remove_tags(sess, vm, 'web'))
    t.eq(value(s.VM.get_tags(sess, vm)), [], 'remove_tags')
    e = error(s.VM.set_power_state(sess, vm, 'Running'))
    t.ok(e and e[0] == 'MESSAGE_METHOD_UNKNOWN', 'no setter for a read-only field', e)
    e = error(s.VM.set_actions_after_crash(sess, vm, 'not-an-action'))
    t.ok(e and e[0] in ('INVALID_VALUE', 'NOT_IMPLEMENTED'), 'bad enum value refused', e)
    e = error(s.VM.set_VCPUs_max(sess, vm, 'many'))
    t.ok(e and e[0] in ('INVALID_VALUE', 'FIELD_TYPE_ERROR', 'NOT_IMPLEMENTED'), 'bad int refused', e)
    e = error(s.VM.set_name_label(sess, vm, ['a list']))
    t.eq(e and e[0], 'FIELD_TYPE_ERROR', 'wrong type: FIELD_TYPE_ERROR')
    value(s.VM.set_affinity(sess, vm, 'OpaqueRef:NULL'))
    e = error(s.VM.set_affinity(sess, vm, 'OpaqueRef:00000000-0000-0000-0000-000000000000'))
    t.eq(e, ['HANDLE_INVALID', 'host', 'OpaqueRef:00000000-0000-0000-0000-000000000000'],
         'a ref field must name a live object of its class')
    e = error(s.VM.get_record(sess, 'OpaqueRef:nope'))
    t.eq(e, ['HANDLE_INVALID', 'VM', 'OpaqueRef:nope'], 'HANDLE_INVALID [class, ref]')
    e = error(s.host.get_record(sess, vm))
    t.eq(e, ['HANDLE_INVALID', 'host', vm], 'a ref of another class is HANDLE_INVALID')
    e = error(s.VM.get_by_uuid(sess, 'no-such-uuid'))
    t.eq(e, ['UUID_INVALID', 'VM', 'no-such-uuid'], 'UUID_INVALID [class, uuid]')
    e = error(s.VM.get_record(sess))
    t.eq(e, ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_record', '1', '0'],
         'arity: MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received]')
    e = error(s.VM.no_such_message(sess))
    t.eq(e, ['MESSAGE_METHOD_UNKNOWN', 'VM.no_such_message'], 'MESSAGE_METHOD_UNKNOWN')
    e = error(s.VM.start(sess, vm, False, False))
    t.eq(e, ['VM_IS_TEMPLATE', vm, 'start'], 'a template cannot start: VM_IS_TEMPLATE [vm, op]')
    e = error(s.VM.send_sysrq(sess, vm, 'b'))
    t.ok(e and e[0] == 'NOT_IMPLEMENTED', 'a message not built yet says NOT_IMPLEMENTED', e)
    t.eq(error(s.VM_get_name_label(sess, vm)), None,
         'Class_message spelling is accepted (VM_get_name_label)')
    # constructor
    net = value(s.network.create(sess, {'name_label': 'it-net', 'name_description': 'd',
                                        'MTU': '1500', 'other_config': {}}))
    t.eq(value(s.network.get_name_label(sess, net)), 'it-net', 'network.create with a struct')
    e = error(s.network.create(sess, {'name_label': 'x'}))
    t.ok(e and e[0] in ('FIELD_TYPE_ERROR', 'INVALID_VALUE'), 'create without a mandatory field', e)
    value(s.network.destroy(sess, net))
    t.eq(error(s.network.get_record(sess, net))[0], 'HANDLE_INVALID', 'destroy removes it')
    # a clone of a template is still a template until VM.provision (xapi's ocaml/xapi/xapi_vm_clone.ml)
    expr = 'field "name__label" = "renamed" and not field "is_a_template" = "false"'
    where = value(s.VM.get_all_records_where(sess, expr))
    t.eq(list(where), [vm], 'get_all_records_where with the xe expression language')
    t.eq(error(s.VM.get_all_records_where(sess, 'field "x" ='))[0], 'INVALID_VALUE',
         'bad where expression: INVALID_VALUE')
    e = error(s.VM.clone(sess, dom_ref(s, sess), 'x'))
    t.ok(e and e[0] in ('OPERATION_NOT_ALLOWED', 'VM_BAD_POWER_STATE'), 'the control domain cannot be cloned', e)
    e = error(s.VM.destroy(sess, dom_ref(s, sess)))
    t.ok(e and e[0] in ('OPERATION_NOT_ALLOWED', 'VM_BAD_POWER_STATE'), 'the control domain cannot be destroyed', e)
    e = error(s.VM.destroy(sess, templates['Direct kernel boot']))
    t.eq(e, ['VM_CANNOT_DELETE_DEFAULT_TEMPLATE', templates['Direct kernel boot']],
         'a default template cannot be destroyed')
    return vm


def dom_ref(s, sess):
    for r, v in value(s.VM.get_all_records(sess)).items():
        if v['is_control_domain']:
            return r


def async_tasks(t, d, sess, templates):
    s = d.proxy()
    task = value(getattr(s, 'Async.VM.clone')(sess, templates['Other install media'], 'async-vm'))
    t.ok(task.startswith('OpaqueRef:'), 'Async.VM.clone returns a task ref at once')
    deadline = time.time() + 10
    rec = None
    while time.time() < deadline:
        rec = value(s.task.get_record(sess, task))
        if rec['status'] != 'pending':
            break
        time.sleep(0.02)
    t.eq(rec['status'], 'success', 'the task succeeds')
    t.eq(rec['name_label'], 'Async.VM.clone', 'task name_label is the Async wire name')
    t.eq(rec['progress'], 1.0, 'progress 1.0 at the end')
    ok = rec['result'].startswith('<value>OpaqueRef:') and rec['result'].endswith('</value>')
    t.ok(ok, 'task.result is an XML-RPC <value> fragment holding the ref', rec['result'])
    new_vm = rec['result'][len('<value>'):-len('</value>')]
    t.eq(value(s.VM.get_name_label(sess, new_vm)), 'async-vm', 'the result names the new VM')
    task2 = value(getattr(s, 'Async.VM.clone')(sess, 'OpaqueRef:bad', 'x'))
    while value(s.task.get_status(sess, task2)) == 'pending':
        time.sleep(0.02)
    rec2 = value(s.task.get_record(sess, task2))
    t.eq((rec2['status'], rec2['error_info']), ('failure', ['HANDLE_INVALID', 'VM', 'OpaqueRef:bad']),
         'a failing Async call: status failure, error_info the error')
    value(s.task.destroy(sess, task))
    t.eq(error(s.task.get_record(sess, task))[0], 'HANDLE_INVALID', 'task.destroy removes a done task')
    e = error(getattr(s, 'Async.VM.get_record')(sess, new_vm))
    t.eq(e and e[0], 'Fault', 'no Async form for a getter')
    mine = value(s.task.create(sess, 'my-task', 'made by a client'))
    value(s.task.set_progress(sess, mine, 0.5))
    t.eq(value(s.task.get_progress(sess, mine)), 0.5, 'task.create + set_progress')
    t.eq(error(s.task.set_progress(sess, mine, 7.0))[0], 'INVALID_VALUE', 'progress outside 0..1 refused')
    return new_vm


def events(t, d, sess, vm):
    s = d.proxy()
    pool = value(s.pool.get_all(sess))[0]
    token = value(s.event.inject(sess, 'pool', pool))
    r = value(getattr(s.event, 'from')(sess, ['pool'], token, 5.0))
    t.ok(any(e['class'] == 'pool' and e['operation'] == 'mod' and e['ref'] == pool for e in r['events']),
         'event.inject then event.from sees the pool mod')
    counts = r['valid_ref_counts']
    t.ok(all(c.lower() in counts for c in CLASSES), 'valid_ref_counts names every class',
         sorted(set(c.lower() for c in CLASSES) - set(counts)))
    t.ok(isinstance(counts.get('vm'), int), 'valid_ref_counts values are <i4> ints')
    t.ok(len(r['token']) == 41 and r['token'][20] == ',', 'token has xapi\'s %020d,%020d shape')
    token = r['token']
    # a change made by another session wakes a waiting event.from
    other = d.login()
    result = {}

    def waiter():
        p = d.proxy()
        t0 = time.time()
        result['r'] = getattr(p.event, 'from')(sess, ['vm'], token, 10.0)
        result['dt'] = time.time() - t0

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.3)
    value(s.VM.set_name_label(other, vm, 'changed-by-other'))
    th.join(15)
    r = value(result.get('r'))
    evs = [e for e in r['events'] if e['ref'] == vm]
    t.ok(evs and evs[0]['operation'] == 'mod' and evs[0]['class'] == 'vm' and
         evs[0]['snapshot']['name_label'] == 'changed-by-other',
         'a blocked event.from wakes on another session\'s change, with the snapshot')
    t.ok(result.get('dt', 99) < 2.0, 'it woke promptly (%.3f s)' % result.get('dt', 99))
    token = r['token']
    t0 = time.time()
    r = value(getattr(s.event, 'from')(sess, ['vm'], token, 0.5))
    t.ok(r['events'] == [] and 0.4 <= time.time() - t0 < 3, 'a timeout is not an error: events = []')
    clone = value(s.VM.clone(sess, vm, 'short-lived'))
    value(s.VM.destroy(sess, clone))
    r = value(getattr(s.event, 'from')(sess, ['vm'], token, 1.0))
    t.ok(not any(e['ref'] == clone for e in r['events']),
         'an object created and deleted since the token is not reported')
    tok2 = r['token']
    clone = value(s.VM.clone(sess, vm, 'to-delete'))
    r = value(getattr(s.event, 'from')(sess, ['vm'], tok2, 1.0))
    t.ok(any(e['ref'] == clone and e['operation'] == 'add' for e in r['events']), 'add event for a new VM')
    value(s.VM.destroy(sess, clone))
    r = value(getattr(s.event, 'from')(sess, ['vm'], r['token'], 1.0))
    dels = [e for e in r['events'] if e['ref'] == clone]
    t.ok(dels and dels[0]['operation'] == 'del' and 'snapshot' not in dels[0], 'del event, no snapshot')
    r = value(getattr(s.event, 'from')(sess, ['*'], '', 0.0))
    t.ok(len(r['events']) > 10 and all(e['operation'] == 'add' for e in r['events']),
         'token "" reports every object as add')
    t.eq(error(getattr(s.event, 'from')(sess, ['vm'], 'garbage', 0.1)),
         ['EVENT_FROM_TOKEN_PARSE_FAILURE', 'garbage'], 'bad token: EVENT_FROM_TOKEN_PARSE_FAILURE')
    t.eq(error(getattr(s.event, 'from')(sess, ['vm'], '00000000099999999999,00000000000000000000', 0.1)),
         ['EVENTS_LOST'], 'a token from the future: EVENTS_LOST')
    r = value(getattr(s.event, 'from')(sess, ['vm/' + vm], token, 0.1))
    t.ok(all(e['ref'] == vm for e in r['events']), 'class/ref subscription reports only that object')
    # legacy
    value(s.event.register(sess, ['vm']))
    value(s.VM.set_name_label(other, vm, 'legacy'))
    evs = value(s.event.next(sess))
    t.ok(any(e['ref'] == vm for e in evs), 'event.register + event.next')
    value(s.event.unregister(sess, ['vm']))
    other2 = d.login()
    t.eq(error(s.event.next(other2)), ['SESSION_NOT_REGISTERED', other2], 'event.next unregistered')
    # logout wakes a blocked call with SESSION_INVALID
    res = {}
    now = value(getattr(s.event, 'from')(other2, ['vm'], '', 0.0))['token']

    def blocked():
        res['r'] = getattr(d.proxy().event, 'from')(other2, ['vm'], now, 20.0)

    th = threading.Thread(target=blocked)
    th.start()
    time.sleep(0.3)
    value(s.session.logout(other2))
    th.join(10)
    t.eq(error(res.get('r')), ['SESSION_INVALID', other2], 'logout wakes a blocked event.from: SESSION_INVALID')
    t.eq(error(s.VM.get_all(other2)), ['SESSION_INVALID', other2], 'a logged-out session is SESSION_INVALID')


def jsonrpc(t, d, sess):
    for version in ('2.0', None):
        status, headers, body = d.jsonrpc('VM.get_all', [sess], version=version, req_id=7)
        t.eq(headers.get('Content-Type'), 'application/json', 'JSON-RPC %s Content-Type exactly' % version)
        reply = json.loads(body)
        t.ok(reply.get('id') == 7 and isinstance(reply.get('result'), list),
             'JSON-RPC %s success' % version, reply)
    status, headers, body = d.jsonrpc('VM.get_record', [sess, 'OpaqueRef:x'], req_id='a')
    reply = json.loads(body)
    t.eq(reply.get('error'), {'code': 1, 'message': 'HANDLE_INVALID', 'data': ['VM', 'OpaqueRef:x']},
         'JSON-RPC 2.0 error object')
    status, headers, body = d.jsonrpc('VM.get_record', [sess, 'OpaqueRef:x'], version=None)
    t.eq(json.loads(body).get('error'), ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'], 'JSON-RPC 1.0 error array')
    status, headers, body = d.jsonrpc('host.get_all_records', [sess])
    recs = json.loads(body)['result']
    h = list(recs.values())[0]
    t.ok(isinstance(h['API_version_major'], int), 'JSON-RPC ints are numbers')
    status, _, _ = d.post('/jsonrpc', b'{"method": "VM.get_all", "params": [], ', 'application/json')
    t.eq(status, 500, 'malformed JSON: HTTP 500')
    status, _, _ = d.post('/', b'<methodCall><methodName>x</methodName><params>', 'text/xml')
    t.eq(status, 500, 'malformed XML: HTTP 500')
    deep = b'<methodCall><methodName>VM.get_all</methodName><params><param>' + \
        b'<value><array><data>' * 5000 + b'</data></array></value>' * 5000 + b'</param></params></methodCall>'
    status, _, _ = d.post('/', deep, 'text/xml')
    t.eq(status, 500, 'deeply nested body refused')
    t.ok(value(d.proxy().VM.get_all(sess)) is not None, 'the server still answers after bad bodies')


def rbac(t, d, sess):
    s = d.proxy()
    vessel = os.path.join(os.path.dirname(d.binary), 'vesseld')
    p = subprocess.run([vessel, 'passwd', 'alice', '--data-dir', os.path.join(d.dir, 'data')],
                       input=b'alice-password\n', capture_output=True)
    t.ok(p.returncode == 0, 'vesseld passwd sets a local account', p.stderr)
    e = error(s.session.login_with_password('alice', 'alice-password', '1.0', 'it'))
    t.eq(e and e[0], 'SESSION_AUTHORIZATION_FAILED', 'an account with no subject cannot log in')
    ro = value(s.role.get_by_name_label(sess, 'read-only'))[0]
    subj = value(s.subject.create(sess, {'subject_identifier': 'local:alice',
                                         'other_config': {'subject-name': 'alice'},
                                         'roles': ['OpaqueRef:0165f154-ba3e-034e-6b27-5d271af109ba']}))
    t.eq(value(s.subject.get_roles(sess, subj)), [],
         'a new subject has no role, whatever the create call says (xapi with RBAC)')
    e = error(s.session.login_with_password('alice', 'alice-password', '1.0', 'it'))
    t.eq(e and e[0], 'RBAC_PERMISSION_DENIED', 'a subject without roles cannot log in')
    value(s.subject.add_to_roles(sess, subj, ro))
    t.eq(value(s.subject.get_roles(sess, subj)), [ro], 'subject holds read-only')
    alice = value(s.session.login_with_password('alice', 'alice-password', '1.0', 'it'))
    t.ok(value(s.VM.get_all(alice)) is not None, 'read-only may read')
    vm = value(s.VM.get_all(alice))[0]
    e = error(s.VM.set_name_label(alice, vm, 'nope'))
    t.ok(e and e[0] == 'RBAC_PERMISSION_DENIED' and e[1] == 'vm.set_name_label',
         'read-only may not write: RBAC_PERMISSION_DENIED [permission, text]', e)
    e = error(s.VM.clone(alice, vm, 'nope'))
    t.eq(e and e[0], 'RBAC_PERMISSION_DENIED', 'read-only may not clone')
    vm_admin = value(s.role.get_by_name_label(sess, 'vm-admin'))[0]
    value(s.subject.add_to_roles(sess, subj, vm_admin))
    e = error(s.VM.set_name_label(alice, vm, value(s.VM.get_name_label(sess, vm))))
    t.eq(e, None, 'adding vm-admin applies to the live session at once')
    e = error(s.pool.set_name_label(alice, value(s.pool.get_all(sess))[0], 'x'))
    t.eq(e and e[0], 'RBAC_PERMISSION_DENIED', 'vm-admin may not change the pool')
    # wrong passwords, then throttling per (address, account)
    codes = [error(s.session.login_with_password('alice', 'wrong%d' % i))[0] for i in range(6)]
    t.ok(all(c == 'SESSION_AUTHENTICATION_FAILED' for c in codes),
         'wrong passwords: SESSION_AUTHENTICATION_FAILED')
    e = error(s.session.login_with_password('alice', 'alice-password'))
    t.eq(e, None, 'the right password still passes from an address it succeeded from before')
    p = subprocess.run([vessel, 'passwd', 'carol', '--data-dir', os.path.join(d.dir, 'data')],
                       input=b'carol-password\n', capture_output=True)
    carol = value(s.subject.create(sess, {'subject_identifier': 'local:carol',
                                          'other_config': {'subject-name': 'carol'}}))
    value(s.subject.add_to_roles(sess, carol, ro))
    codes = [error(s.session.login_with_password('carol', 'wrong%d' % i))[0] for i in range(6)]
    e = error(s.session.login_with_password('carol', 'carol-password'))
    t.ok(e and e[0] == 'SESSION_AUTHENTICATION_FAILED' and 'Too many' in e[2],
         'an account never logged in from this address is throttled, even with the right password', e)
    e = error(s.session.login_with_password('alice', 'alice-password'))
    t.eq(e, None, 'another account from the same address is not locked out by it')
    value(s.subject.remove_from_roles(sess, carol, ro))
    t.eq(value(s.subject.get_roles(sess, carol)), [], 'a subject may lose its last role')
    e = error(s.session.login_with_password('nosuchuser', 'x'))
    t.eq(e and e[0], 'SESSION_AUTHENTICATION_FAILED', 'unknown user: same error')
    u = d.unix_proxy()
    local = value(u.session.login_with_password('root', 'anything', '1.0', 'local'))
    t.ok(value(u.session.get_is_local_superuser(local, local)) is True,
         'login on the unix socket is the local superuser')


def restart(t, d, sess):
    s = d.proxy()
    before = {c: sorted(value(getattr(s, c).get_all(sess))) for c in ('VM', 'host', 'pool', 'network', 'role')}
    vm = before['VM'][0]
    rec_before = value(s.VM.get_record(sess, vm))
    t.eq(d.stop(), 0, 'SIGTERM stops vesseld cleanly (exit 0)')
    d.start()
    s = d.proxy()
    t.eq(error(s.VM.get_all(sess)), None, 'sessions survive a restart')
    after = {c: sorted(value(getattr(s, c).get_all(sess))) for c in before}
    t.eq(after, before, 'restart finds every object again, with the same refs, no duplicates')
    t.eq(value(s.VM.get_record(sess, vm)), rec_before, 'records are identical after restart')


def durability(t, d):
    """kill -9 in the middle of a stream of writes: every acknowledged write is there."""
    sess = d.login()
    s = d.proxy()
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items() if v['is_a_template']][0]
    vm = value(s.VM.clone(sess, tmpl, 'durable'))
    acked = []
    stop = threading.Event()

    def writer():
        p = d.proxy()
        i = 0
        while not stop.is_set() and i < 100000:
            try:
                r = p.VM.add_to_other_config(sess, vm, 'k%d' % i, 'v%d' % i)
            except Exception:
                return
            if r.get('Status') == 'Success':
                acked.append(i)
            i += 1

    th = threading.Thread(target=writer)
    th.start()
    time.sleep(1.0)
    d.kill()
    stop.set()
    th.join(10)
    d.start()
    oc = value(d.proxy().VM.get_other_config(d.login(), vm))
    missing = [i for i in acked if oc.get('k%d' % i) != 'v%d' % i]
    t.ok(len(acked) > 20 and not missing,
         'after kill -9, all %d acknowledged writes are there' % len(acked), missing[:10])


def tls(t, binary):
    """HTTPS with a certificate made on first start and kept across restarts."""
    import hashlib
    import ssl
    d = Vesseld(binary, tls=True)
    try:
        d.start()
        t.ok(d.tls_port and d.tls_port > 0, 'the HTTPS listener is up (port %s)' % d.tls_port)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = xmlrpc.client.ServerProxy('https://127.0.0.1:%d/' % d.tls_port, context=ctx)
        sess = value(s.session.login_with_password('root', ROOT_PASSWORD))
        t.ok(len(value(s.VM.get_all(sess))) >= 3, 'XML-RPC over HTTPS')

        def fingerprint():
            with ssl.create_connection(('127.0.0.1', d.tls_port)) as raw:
                with ctx.wrap_socket(raw) as tls_sock:
                    return hashlib.sha256(tls_sock.getpeercert(binary_form=True)).hexdigest()

        first = fingerprint()
        key = os.path.join(d.dir, 'data', 'tls', 'key.pem')
        t.eq(oct(os.stat(key).st_mode & 0o777), '0o600', 'the generated key is mode 0600')
        d.stop()
        d.start()
        t.eq(fingerprint(), first, 'the certificate is kept across restarts')
    finally:
        d.cleanup()


def main():
    binary = sys.argv[1]
    t = Tap()
    try:
        tls(t, binary)
    except Exception as exc:
        import traceback
        t.ok(False, 'tls test raised %s' % type(exc).__name__, traceback.format_exc())
    return test_main(binary, run, t=t)


def run(t, d):
    sess, pool, host, templates = first_start(t, d)
    vm = implicit_messages(t, d, sess, templates)
    async_tasks(t, d, sess, templates)
    events(t, d, sess, vm)
    jsonrpc(t, d, sess)
    rbac(t, d, sess)
    restart(t, d, sess)
    durability(t, d)


if __name__ == '__main__':
    sys.exit(main())
