#!/usr/bin/env python3
"""tests/integration/test_network_api.py - networks, VIFs, PIFs and VLANs
through the API of a real vesseld (--backend sim), checked against the kernel.

Everything runs inside a network namespace this script makes (vessel-test-
<pid>) and deletes at the end, whatever happened: the script re-runs itself
inside it with `ip netns exec`, starts vesseld there, makes a veth pair as a
fake NIC (declared to PIF.scan through VESSEL_NET_EXTRA_NICS, since a veth
has no /sys/class/net/X/device) and checks bridges, links and addresses with
`ip`. No traffic leaves the namespace. Without root it skips.
Usage: test_network_api.py BUILD/vesseld
"""
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, error, value  # noqa: E402

NIC = 'vnic0'
NIC_PEER = 'vnic0p'
MAC_RE = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')


def ip(*args, check=False):
    return subprocess.run(['ip'] + list(args), capture_output=True, text=True, check=check)


def link(name):
    """The `ip -d -j link` record of @name, or None."""
    r = ip('-d', '-j', 'link', 'show', 'dev', name)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)[0]


def links():
    return {l['ifname']: l for l in json.loads(ip('-d', '-j', 'link', 'show').stdout)}


def kind(name):
    l = link(name)
    return l and l.get('linkinfo', {}).get('info_kind')


def ipv4(name):
    r = ip('-j', '-4', 'addr', 'show', 'dev', name)
    if r.returncode != 0:
        return []
    return ['%s/%d' % (a['local'], a['prefixlen']) for i in json.loads(r.stdout)
            for a in i.get('addr_info', [])]


def xapi_gen_mac(device, seed):
    """xapi_vif_helpers.ml gen_mac, in Python, to check the server's."""
    h = hashlib.md5(seed.encode()).digest()
    for _ in range(2 * device):
        h = hashlib.md5(h).digest()
    h2 = hashlib.md5(h).digest()
    b = [h[0], h[1], h[2], h[3], h2[1], h2[2]]
    b[0] = (b[0] | 2) & ~1
    return ':'.join('%02x' % x for x in b)


def kernel_has_vlan():
    ok = ip('link', 'add', 'link', NIC, 'name', 'vprobe.9', 'type', 'vlan', 'id', '9').returncode == 0
    ip('link', 'del', 'vprobe.9')
    return ok


def networks(t, s, sess):
    n1 = value(s.network.create(sess, {'name_label': 'n1', 'name_description': '', 'MTU': '1400',
                                       'other_config': {}}))
    r1 = value(s.network.get_record(sess, n1))
    t.ok(re.match(r'^xapi\d+$', r1['bridge']), 'network.create names a bridge xapi<N>', r1['bridge'])
    l = link(r1['bridge'])
    t.ok(l is not None and kind(r1['bridge']) == 'bridge', 'the bridge exists in the namespace', l)
    t.eq(l and l['mtu'], 1400, "the bridge has the network's MTU")
    t.ok(l and 'UP' in l['flags'], 'the bridge is up')
    t.eq(r1['other_config'].get('vessel_bridge_created'), 'true', 'the network records that it made the bridge')
    n2 = value(s.network.create(sess, {'name_label': 'n2', 'name_description': '', 'MTU': '1500',
                                       'other_config': {}, 'bridge': 'vbrtest'}))
    t.eq(kind('vbrtest'), 'bridge', 'network.create with bridge=vbrtest makes that bridge')
    t.ok(r1['bridge'] != value(s.network.get_bridge(sess, n2)), 'two networks, two bridges')
    e = error(s.network.create(sess, {'name_label': 'dup', 'name_description': '', 'MTU': '1500',
                                      'other_config': {}, 'bridge': 'vbrtest'}))
    t.eq(e, ['BRIDGE_NAME_EXISTS', 'vbrtest'], 'a bridge name another network has: BRIDGE_NAME_EXISTS')
    e = error(s.network.create(sess, {'name_label': 'lo', 'name_description': '', 'MTU': '1500',
                                      'other_config': {}, 'bridge': NIC}))
    t.eq(e, ['BRIDGE_NAME_EXISTS', NIC], 'a NIC name is not taken as a bridge')
    t.ok(link(NIC) is not None and link(NIC).get('master') is None, 'and the NIC is untouched')
    # an existing bridge (made by hand) is used, and not removed on destroy
    ip('link', 'add', 'vbrhand', 'type', 'bridge', check=True)
    n3 = value(s.network.create(sess, {'name_label': 'hand', 'name_description': '', 'MTU': '1500',
                                       'other_config': {}, 'bridge': 'vbrhand'}))
    value(s.network.destroy(sess, n3))
    t.eq(kind('vbrhand'), 'bridge', "destroy leaves a bridge vesseld did not make")
    ip('link', 'del', 'vbrhand')
    value(s.network.set_default_locking_mode(sess, n2, 'disabled'))
    t.eq(value(s.network.get_default_locking_mode(sess, n2)), 'disabled',
         'network.set_default_locking_mode')
    value(s.network.set_default_locking_mode(sess, n2, 'unlocked'))
    value(s.network.add_purpose(sess, n2, 'nbd'))
    value(s.network.add_purpose(sess, n2, 'nbd'))
    t.eq(value(s.network.get_purpose(sess, n2)), ['nbd'], 'network.add_purpose, twice: once')
    e = error(s.network.add_purpose(sess, n2, 'insecure_nbd'))
    t.eq(e, ['NETWORK_INCOMPATIBLE_PURPOSES', 'insecure_nbd', 'nbd'],
         'nbd and insecure_nbd on one network: NETWORK_INCOMPATIBLE_PURPOSES')
    value(s.network.remove_purpose(sess, n2, 'nbd'))
    t.eq(value(s.network.get_purpose(sess, n2)), [], 'network.remove_purpose')
    return n1, n2


def vifs(t, s, sess, n1):
    vms = value(s.VM.get_all_records(sess))
    tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, 'net-vm'))
    value(s.VM.set_is_a_template(sess, vm, False))

    def vif(device, mac='', vm_=vm, **extra):
        rec = {'device': device, 'network': n1, 'VM': vm_, 'MAC': mac, 'MTU': '1500',
               'other_config': {}, 'qos_algorithm_type': '', 'qos_algorithm_params': {}}
        rec.update(extra)
        return s.VIF.create(sess, rec)

    t.eq(value(s.VM.get_allowed_VIF_devices(sess, vm)), [str(i) for i in range(16)],
         "VM.get_allowed_VIF_devices: xapi's 0..15 on a VM without NICs")
    v0 = value(vif('0'))
    t.eq(value(s.VM.get_allowed_VIF_devices(sess, vm)), [str(i) for i in range(1, 16)],
         'a NIC takes its position out of the list')
    r0 = value(s.VIF.get_record(sess, v0))
    first = int(r0['MAC'][:2], 16) if MAC_RE.match(r0['MAC']) else 1
    t.ok(MAC_RE.match(r0['MAC']) and first & 2 and not first & 1,
         'an empty MAC is generated: locally administered unicast', r0['MAC'])
    t.eq(r0['MAC_autogenerated'], True, 'MAC_autogenerated')
    t.eq(r0['MTU'], '1400', "the VIF's MTU is its network's")
    t.eq((r0['currently_attached'], r0['locking_mode']), (False, 'network_default'),
         'a new VIF is unplugged, locking_mode network_default')
    t.ok(value(s.VIF_metrics.get_record(sess, r0['metrics'])) is not None, 'VIF_metrics made')
    t.eq(error(vif('0')), ['DEVICE_ALREADY_EXISTS', '0'], 'a device slot used on the VM: DEVICE_ALREADY_EXISTS')
    t.eq(error(vif('x')), ['INVALID_DEVICE', 'x'], 'a device that is not a slot number: INVALID_DEVICE')
    t.eq(error(vif('1', 'zz:00:00:00:00:01')), ['MAC_INVALID', 'zz:00:00:00:00:01'], 'MAC_INVALID for a bad MAC')
    t.eq(error(vif('1', '02:00:00:00:01')), ['MAC_INVALID', '02:00:00:00:01'], 'MAC_INVALID for five octets')
    t.eq(error(vif('1', '01:00:5e:00:00:01')), ['MAC_INVALID', '01:00:5e:00:00:01'], 'MAC_INVALID for a multicast MAC')
    v1 = value(vif('1', '02:AB:00:00:00:01'))
    r1 = value(s.VIF.get_record(sess, v1))
    t.eq((r1['MAC'], r1['MAC_autogenerated']), ('02:AB:00:00:00:01', False), 'a given MAC is kept')
    t.eq(error(vif('2', ipv4_allowed=['not-an-ip'])), ['INVALID_IP_ADDRESS_SPECIFIED', 'ipv4_allowed'],
         'ipv4_allowed must hold addresses')
    t.eq(error(vif('2', qos_algorithm_type='bogus'))[0], 'INVALID_VALUE', 'an unknown QoS algorithm: INVALID_VALUE')
    # xapi's MAC rule with the VM's mac_seed
    vm2 = value(s.VM.clone(sess, tmpl, 'net-vm2'))
    value(s.VM.set_is_a_template(sess, vm2, False))
    seed = '6a3d4f5e-0000-4000-8000-123456789abc'
    value(s.VM.remove_from_other_config(sess, vm2, 'mac_seed'))  # a clone has its own seed; set a known one
    value(s.VM.add_to_other_config(sess, vm2, 'mac_seed', seed))
    v3 = value(vif('3', vm_=vm2))
    t.eq(value(s.VIF.get_MAC(sess, v3)), xapi_gen_mac(3, seed), "with other_config:mac_seed, xapi's gen_mac")
    # locking mode, QoS
    value(s.VIF.set_locking_mode(sess, v0, 'disabled'))
    t.eq(value(s.VIF.get_locking_mode(sess, v0)), 'disabled', 'set_locking_mode')
    value(s.VIF.add_ipv4_allowed(sess, v0, '10.0.0.1'))
    t.eq(value(s.VIF.get_ipv4_allowed(sess, v0)), ['10.0.0.1'], 'add_ipv4_allowed')
    t.eq(error(s.VIF.add_ipv4_allowed(sess, v0, '10.0.0')), ['INVALID_IP_ADDRESS_SPECIFIED', 'ipv4_allowed'],
         'add_ipv4_allowed checks the address')
    t.eq(error(s.VIF.set_qos_algorithm_type(sess, v0, 'fq')), ['INVALID_VALUE', 'qos_algorithm_type', 'fq'],
         'set_qos_algorithm_type: only ratelimit')
    value(s.VIF.set_qos_algorithm_type(sess, v0, 'ratelimit'))
    t.eq(error(s.VIF.add_to_qos_algorithm_params(sess, v0, 'kbps', 'fast'))[0], 'INVALID_VALUE',
         'kbps must be a positive integer')
    value(s.VIF.add_to_qos_algorithm_params(sess, v0, 'kbps', '1000'))
    t.eq(value(s.VIF.get_qos_algorithm_params(sess, v0)), {'kbps': '1000'}, 'ratelimit kbps stored')
    # plug / unplug need a running VM
    t.eq(error(s.VIF.plug(sess, v0)), ['VM_BAD_POWER_STATE', vm, 'running', 'halted'],
         'plug on a halted VM: VM_BAD_POWER_STATE')
    value(s.VM.start(sess, vm, False, False))
    t.eq(value(s.VIF.get_currently_attached(sess, v0)), True, 'VM.start attaches its VIFs')
    t.eq(error(s.VIF.plug(sess, v0)), ['DEVICE_ALREADY_ATTACHED', v0], 'plug of an attached VIF: DEVICE_ALREADY_ATTACHED')
    value(s.VIF.unplug(sess, v0))
    t.eq(value(s.VIF.get_currently_attached(sess, v0)), False, 'unplug on a running VM (sim): detached')
    value(s.VIF.plug(sess, v0))
    t.eq(value(s.VIF.get_currently_attached(sess, v0)), True, 'plug on a running VM (sim): attached')
    t.eq(error(s.VIF.destroy(sess, v0)), ['OPERATION_NOT_ALLOWED', 'VIF currently attached to a running VM'],
         'destroy of a VIF plugged to a running VM is refused')
    value(s.VIF.unplug(sess, v0))
    t.eq(error(s.VIF.unplug(sess, v0)), ['DEVICE_ALREADY_DETACHED', v0], 'unplug twice: DEVICE_ALREADY_DETACHED')
    value(s.VM.hard_shutdown(sess, vm))
    t.eq(value(s.VIF.get_currently_attached(sess, v1)), False, 'VM shutdown detaches its VIFs')
    e = error(s.network.destroy(sess, n1))
    t.ok(e and e[0] == 'NETWORK_CONTAINS_VIF' and set(e[1:]) == {v0, v1, v3},
         'network.destroy with VIFs: NETWORK_CONTAINS_VIF [vifs]', e)
    m0 = r0['metrics']
    for v in (v0, v1, v3):
        value(s.VIF.destroy(sess, v))
    t.eq(error(s.VIF.get_record(sess, v0))[0], 'HANDLE_INVALID', 'VIF.destroy removes it')
    t.eq(error(s.VIF_metrics.get_record(sess, m0))[0], 'HANDLE_INVALID', '... with its VIF_metrics')
    value(s.VM.destroy(sess, vm))
    value(s.VM.destroy(sess, vm2))


def pifs(t, s, sess, host, n2):
    before = value(s.PIF.get_all_records(sess))
    value(s.PIF.scan(sess, host))
    after = value(s.PIF.get_all_records(sess))
    found = [(r, p) for r, p in after.items() if p['device'] == NIC]
    t.eq(len(found), 1, 'PIF.scan finds the fake NIC')
    pif, rec = found[0] if found else (None, {})
    t.eq((rec.get('MAC'), rec.get('physical'), rec.get('VLAN'), rec.get('MTU')),
         (link(NIC)['address'], True, '-1', str(link(NIC)['mtu'])), 'with its MAC, MTU, physical, untagged')
    m = value(s.PIF_metrics.get_record(sess, rec['metrics'])) if found else {}
    t.eq(m.get('carrier'), True, 'PIF_metrics.carrier')
    net = value(s.network.get_record(sess, rec['network'])) if found else {}
    t.ok(net.get('bridge', '').startswith('xenbr'), 'the NIC gets a network of its own (xenbr<N>)', net)
    t.ok(link(net.get('bridge', 'none')) is None and link(NIC).get('master') is None,
         'records only: no bridge made, the NIC stays out of bridges')
    t.eq(len(after) - len(before), 1, 'one PIF, no other')
    value(s.PIF.scan(sess, host))
    t.eq(len(value(s.PIF.get_all(sess))), len(after), 'a second scan duplicates nothing')
    t.eq(error(s.PIF.destroy(sess, pif)), ['PIF_IS_PHYSICAL', pif], 'PIF.destroy of a NIC: PIF_IS_PHYSICAL')
    e = error(s.network.destroy(sess, rec['network']))
    t.eq(e, ['NETWORK_CONTAINS_PIF', pif], 'network.destroy with a PIF: NETWORK_CONTAINS_PIF')
    # IP configuration
    value(s.PIF.reconfigure_ip(sess, pif, 'Static', '192.0.2.5', '255.255.255.0', '192.0.2.1', '192.0.2.53'))
    t.eq(ipv4(NIC), ['192.0.2.5/24'], 'reconfigure_ip Static puts the address on the link')
    r = value(s.PIF.get_record(sess, pif))
    t.eq((r['ip_configuration_mode'], r['IP'], r['netmask'], r['gateway'], r['DNS']),
         ('Static', '192.0.2.5', '255.255.255.0', '192.0.2.1', '192.0.2.53'), 'and records it')
    t.eq(error(s.PIF.reconfigure_ip(sess, pif, 'Static', '192.0.2.300', '255.255.255.0', '', '')),
         ['INVALID_IP_ADDRESS_SPECIFIED', 'IP'], 'a bad IP: INVALID_IP_ADDRESS_SPECIFIED')
    t.eq(error(s.PIF.reconfigure_ip(sess, pif, 'Static', '192.0.2.6', '255.0.255.0', '', '')),
         ['INVALID_IP_ADDRESS_SPECIFIED', 'netmask'], 'a bad netmask')
    value(s.host.management_reconfigure(sess, pif))
    t.eq(value(s.PIF.get_management(sess, pif)), True, 'host.management_reconfigure records the PIF')
    t.eq(value(s.host.get_address(sess, host)), '192.0.2.5', "and the host's address")
    t.eq(error(s.PIF.unplug(sess, pif)), ['PIF_IS_MANAGEMENT_INTERFACE', pif], 'the management PIF cannot be unplugged')
    value(s.PIF.reconfigure_ip(sess, pif, 'DHCP', '', '', '', ''))
    t.eq(value(s.PIF.get_ip_configuration_mode(sess, pif)), 'DHCP', 'DHCP is recorded')
    t.eq(ipv4(NIC), [], 'leaving Static removes the address vesseld set')
    # VLANs
    t.eq(error(s.VLAN.create(sess, pif, '5000', n2)), ['VLAN_TAG_INVALID', '5000'], 'VLAN tag 5000: VLAN_TAG_INVALID')
    vlan_net = value(s.network.create(sess, {'name_label': 'v42', 'name_description': '', 'MTU': '1500',
                                             'other_config': {}}))
    vbridge = value(s.network.get_bridge(sess, vlan_net))
    if kernel_has_vlan():
        vlan = value(s.VLAN.create(sess, pif, '42', vlan_net))
        vr = value(s.VLAN.get_record(sess, vlan))
        l = link(NIC + '.42')
        t.ok(l and l['linkinfo']['info_data']['id'] == 42 and l['link'] == NIC,
             'VLAN.create makes a link tagged 42 on the NIC', l)
        t.eq(l and l.get('master'), vbridge, "in the VLAN network's bridge")
        up = value(s.PIF.get_record(sess, vr['untagged_PIF']))
        t.eq((up['VLAN'], up['network'], up['physical'], up['VLAN_master_of']), ('42', vlan_net, False, vlan),
             'the untagged PIF')
        t.eq(vr['tagged_PIF'], pif, 'tagged_PIF')
        t.ok(vlan in value(s.PIF.get_VLAN_slave_of(sess, pif)), 'PIF.VLAN_slave_of')
        t.eq(error(s.VLAN.create(sess, pif, '42', n2)), ['PIF_VLAN_EXISTS', NIC], 'the same tag twice: PIF_VLAN_EXISTS')
        value(s.VLAN.destroy(sess, vlan))
        t.ok(link(NIC + '.42') is None, 'VLAN.destroy removes the link')
        t.eq(error(s.PIF.get_record(sess, up and vr['untagged_PIF']))[0], 'HANDLE_INVALID', 'and the untagged PIF')
        pifs_ = value(s.pool.create_VLAN(sess, NIC, vlan_net, '43'))
        t.eq(len(pifs_), 1, 'pool.create_VLAN: one PIF per host')
        t.ok(link(NIC + '.43') is not None, 'with its link')
        value(s.PIF.destroy(sess, pifs_[0]))
        t.ok(link(NIC + '.43') is None, 'PIF.destroy of a VLAN PIF removes the VLAN')
    else:
        print('# this kernel has no 802.1Q support: VLAN.create checked for a clean failure')
        pifs_before = sorted(value(s.PIF.get_all(sess)))
        links_before = sorted(l['ifname'] for l in json.loads(ip('-j', 'link', 'show').stdout or '[]'))
        e = error(s.VLAN.create(sess, pif, '42', vlan_net))
        t.ok(e and e[0] == 'INTERNAL_ERROR' and '802.1Q' in e[1], 'VLAN.create fails cleanly without 8021q', e)
        t.ok(link(NIC + '.42') is None and value(s.VLAN.get_all(sess)) == [], 'and leaves no link, no VLAN')
        t.eq(sorted(value(s.PIF.get_all(sess))), pifs_before, 'and no untagged PIF record')
        t.eq(value(s.network.get_PIFs(sess, vlan_net)), [], 'the network stays without a PIF')
        e = error(s.pool.create_VLAN(sess, NIC, vlan_net, '43'))
        t.ok(e and e[0] == 'INTERNAL_ERROR', 'pool.create_VLAN likewise', e)
        e = error(s.PIF.create_VLAN(sess, NIC, vlan_net, value(s.session.get_this_host(sess, sess)),
                                    '44'))
        t.ok(e and e[0] == 'INTERNAL_ERROR' and '802.1Q' in e[1], 'PIF.create_VLAN likewise', e)
        links_after = sorted(l['ifname'] for l in json.loads(ip('-j', 'link', 'show').stdout or '[]'))
        t.eq(links_after, links_before, 'the failed creates left no link on the host')
        t.eq(sorted(value(s.PIF.get_all(sess))), pifs_before, 'and no PIF record from any of them')
    t.eq(error(s.pool.create_VLAN(sess, 'nosuch9', vlan_net, '43')), ['INVALID_VALUE', 'device', 'nosuch9'],
         'pool.create_VLAN of an unknown device')
    value(s.network.destroy(sess, vlan_net))
    t.ok(link(vbridge) is None, "destroying the VLAN network removes its bridge")


def inner(binary):
    t = Tap()
    ip('link', 'set', 'lo', 'up', check=True)
    ip('link', 'add', NIC, 'type', 'veth', 'peer', 'name', NIC_PEER, check=True)
    ip('link', 'set', NIC, 'up', check=True)
    ip('link', 'set', NIC_PEER, 'up', check=True)
    os.environ['VESSEL_NET_EXTRA_NICS'] = NIC
    start_links = set(links())
    d = Vesseld(binary, extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        host = value(s.pool.get_all_records(sess)).popitem()[1]['master']
        t.eq(set(links()), start_links, 'vesseld starts without touching the host networking')
        n1, n2 = networks(t, s, sess)
        b1 = value(s.network.get_bridge(sess, n1))
        vifs(t, s, sess, n1)
        pifs(t, s, sess, host, n2)
        value(s.network.destroy(sess, n1))
        value(s.network.destroy(sess, n2))
        t.ok(link(b1) is None and link('vbrtest') is None, 'network.destroy removes the bridges it made')
        left = set(links()) - start_links
        t.eq(left, set(), 'nothing left behind: no bridge, no tap, no VLAN link')
        t.eq(ipv4(NIC), [], 'no address left on the NIC')
        t.ok(d.stop() == 0, 'vesseld stops cleanly')
    except Exception as e:  # report, then clean up
        t.ok(False, 'unexpected exception', repr(e))
        try:
            with open(d.log_path) as f:
                for line in f.read().splitlines()[-15:]:
                    print('# ' + line)
        except OSError:
            pass
    finally:
        d.cleanup()
    return t.done()


def outer(argv):
    if os.geteuid() != 0:
        print('1..0 # SKIP needs root to make a network namespace')
        return 0
    ns = 'vessel-test-%d' % os.getpid()
    if subprocess.run(['ip', 'netns', 'add', ns], capture_output=True).returncode != 0:
        print('1..0 # SKIP no network namespace support')
        return 0
    try:
        return subprocess.run(['ip', 'netns', 'exec', ns, sys.executable, os.path.abspath(__file__),
                               '--inner'] + argv[1:]).returncode
    finally:
        # anything still running in the namespace is ours (a vesseld the inner
        # run could not stop): end it by pid, then remove the namespace
        pids = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(['ip', 'netns', 'del', ns])


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--inner':
        sys.exit(inner(sys.argv[2]))
    sys.exit(outer(sys.argv))
