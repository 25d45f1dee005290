// Vessel's web UI, the pages beyond the first run (browser.test.mjs): VM
// copy, boot settings, a new VM with its disk size and boot settings, CD insert/eject, disk resize/attach/detach, a NIC's
// network and locking mode, networks and VLANs, VDI snapshot chains, disk
// download, and what a read-only session sees of each. Each action is done
// in the page and checked through the API, as another client sees it.
//
// Run by tests/integration/run-ui.sh BUILD pages.test.mjs (same environment
// as browser.test.mjs). Output is TAP; the tests run in order on one page.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { chromium } from 'playwright-core'

const BASE = process.env.VESSEL_URL
const PASSWORD = process.env.VESSEL_PASSWORD
const READER_PASSWORD = process.env.VESSEL_READER_PASSWORD
const SHOTS = process.env.VESSEL_SCREENSHOTS
const TMP = process.env.VESSEL_TMP
if (!BASE || !PASSWORD || !READER_PASSWORD || !SHOTS || !TMP) {
  throw new Error('run through tests/integration/run-ui.sh')
}

let rid = 1
async function api(method, params) {
  const res = await fetch(new URL('/jsonrpc', BASE), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', method, params, id: rid++ }),
  })
  const body = await res.json()
  if (body.error) throw new Error(`${method}: ${body.error.message} ${JSON.stringify(body.error.data)}`)
  return body.result
}

// Polls the API until @f answers something true (the page's calls land
// one after another); its last answer.
async function until(f, ms = 10000) {
  const end = Date.now() + ms
  let r
  while (Date.now() < end) {
    r = await f()
    if (r) return r
    await new Promise((x) => setTimeout(x, 100))
  }
  return f()
}

let root
let template
let sr
async function newVm(name, withDisk = false) {
  const vm = await api('VM.clone', [root, template, name])
  if (withDisk) {
    const vdi = await newVdi(name + ' disk', 8 << 20)
    await api('VBD.create', [root, { VM: vm, VDI: vdi, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk',
      empty: false, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} }])
  }
  await api('VM.set_is_a_template', [root, vm, false])
  return vm
}
async function newVdi(name, size) {
  return api('VDI.create', [root, { SR: sr, virtual_size: size, type: 'user', sharable: false, read_only: false,
    other_config: {}, name_label: name, name_description: '', sm_config: {}, xenstore_data: {}, tags: [] }])
}

let context
let page
const pageErrors = []
const cspViolations = []
function watchPage(p) {
  p.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()) })
  p.on('pageerror', (e) => pageErrors.push(String(e)))
}
async function login(p, user, password) {
  await p.goto(BASE + '/')
  await p.fill('input[name=username]', user)
  await p.fill('input[name=password]', password)
  await p.click('[data-test=login]')
  await p.locator('[data-test=tree]').waitFor({ timeout: 10000 })
}
async function shot(p, name) {
  await p.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true })
}
async function openVm(p, vm) {
  await p.goto(`${BASE}/#/vm/${encodeURIComponent(vm)}`)
  await p.locator('[data-test=vm-page]').waitFor({ timeout: 10000 })
}

before(async () => {
  root = await api('session.login_with_password', ['root', PASSWORD, '2.21', 'ui-pages-test'])
  const vms = await api('VM.get_all_records', [root])
  template = Object.keys(vms).find((r) => vms[r].name_label === 'Direct kernel boot')
  sr = (await api('pool.get_all_records', [root]))[Object.keys(await api('pool.get_all_records', [root]))[0]].default_SR
  const reader = await api('subject.create', [root, {
    subject_identifier: 'local:reader', other_config: { 'subject-name': 'reader' },
  }])
  const [ro] = await api('role.get_by_name_label', [root, 'read-only'])
  await api('subject.add_to_roles', [root, reader, ro])
  context = await chromium.launchPersistentContext(path.join(TMP, 'profile-pages'), {
    executablePath: process.env.VESSEL_CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
  })
  page = context.pages()[0] ?? (await context.newPage())
  watchPage(page)
  await login(page, 'root', PASSWORD)
})

after(async () => {
  await context?.close()
  // The NIC test's network has a real bridge on this host (a sim backend's
  // too): remove it, or each run leaves one behind.
  for (const net of await api('network.get_by_name_label', [root, 'nic-target']).catch(() => [])) {
    for (const vif of await api('network.get_VIFs', [root, net])) await api('VIF.destroy', [root, vif])
    await api('network.destroy', [root, net])
  }
})

let copied
test('copy a VM onto an SR: a new VM with its own disk', async () => {
  const vm = await newVm('copy-src-' + Date.now(), true)
  await openVm(page, vm)
  await page.fill('[data-test=new-name]', 'copied-vm')
  await page.selectOption('[data-test=copy-sr]', sr)
  await page.click('[data-op=copy]')
  await page.locator('[data-test=vm-name]:has-text("copied-vm")').waitFor({ timeout: 20000 })
  const all = await api('VM.get_all_records', [root])
  copied = Object.keys(all).find((r) => all[r].name_label === 'copied-vm')
  assert.ok(copied && copied !== vm, 'the API sees the copy')
  const srcVdi = await api('VBD.get_VDI', [root, (await api('VM.get_VBDs', [root, vm]))[0]])
  const dstVdi = await api('VBD.get_VDI', [root, all[copied].VBDs[0]])
  assert.notEqual(dstVdi, srcVdi, 'the copy has a disk of its own')
  assert.equal(await api('VDI.get_SR', [root, dstVdi]), sr)
  await shot(page, 'vm-copied')
})

test('boot settings: a kernel with arguments, then the firmware boot order', async () => {
  await openVm(page, copied)
  const form = page.locator('[data-test=boot-edit]')
  await form.locator('[aria-label="boot mode"]').selectOption('direct')
  await form.locator('[aria-label="kernel"]').fill('vmlinuz-ui-test')
  await form.locator('[aria-label="initrd"]').fill('initrd-ui-test')
  await form.locator('[aria-label="kernel arguments"]').fill('console=ttyS0 quiet')
  await form.locator('button[type=submit]').click()
  const direct = await until(async () => {
    const x = await api('VM.get_record', [root, copied])
    return x.PV_args === 'console=ttyS0 quiet' ? x : null
  })
  assert.ok(direct, 'PV_args set')
  assert.equal(direct.PV_kernel, 'vmlinuz-ui-test')
  assert.equal(direct.PV_ramdisk, 'initrd-ui-test')
  await form.locator('[aria-label="boot mode"]').selectOption('firmware')
  await form.locator('[aria-label="boot order"]').fill('dc')
  await form.locator('button[type=submit]').click()
  const r = await until(async () => {
    const x = await api('VM.get_record', [root, copied])
    return x.HVM_boot_params.order === 'dc' && x.PV_kernel === '' ? x : null
  })
  assert.ok(r, 'PV_kernel cleared and HVM_boot_params:order = dc')
  await shot(page, 'vm-boot')
})

test('a CD drive: add it, insert an image, eject it', async () => {
  const iso = await newVdi('install-' + Date.now(), 4 << 20)
  await page.click('[data-op=add-cd]')
  const row = page.locator('[data-test=disks] tr[data-type=CD]')
  await row.waitFor({ timeout: 10000 })
  assert.match(await row.textContent(), /\(empty\)/)
  await row.locator('[data-test=cd-pick]').selectOption(iso)
  await row.locator('[data-op=insert]').click()
  await row.locator('[data-op=eject]').waitFor({ timeout: 10000 })
  const vbd = (await api('VM.get_VBDs', [root, copied]))
  const cd = []
  for (const b of vbd) if ((await api('VBD.get_type', [root, b])) === 'CD') cd.push(b)
  assert.equal(await api('VBD.get_VDI', [root, cd[0]]), iso, 'the API sees the image in the drive')
  await shot(page, 'vm-cd-inserted')
  await row.locator('[data-op=eject]').click()
  await row.locator('[data-op=insert]').waitFor({ timeout: 10000 })
  assert.equal(await api('VBD.get_empty', [root, cd[0]]), true, 'ejected')
})

test('disks: resize one, attach an existing one, detach it', async () => {
  const row = page.locator('[data-test=disks] tr[data-type=Disk]').first()
  const vdi = await api('VBD.get_VDI', [root, (await api('VM.get_VBDs', [root, copied])).find(Boolean)])
  const before = Number(await api('VDI.get_virtual_size', [root, vdi]))
  await row.locator('[data-op=resize]').click()
  await row.locator('[aria-label="new size GiB"]').fill('0.02')
  await row.locator('[data-test=resize] button[type=submit]').click()
  const size = await until(async () => {
    const n = Number(await api('VDI.get_virtual_size', [root, vdi]))
    return n > before ? n : 0
  }, 15000)
  assert.ok(size >= 0.02 * 1073741824 - 512, `resized to ${size}`)
  const spare = await newVdi('spare-' + Date.now(), 2 << 20)
  await page.locator('[data-test=attach-disk] select').selectOption(spare)
  await page.locator('[data-test=attach-disk] button[type=submit]').click()
  const attached = page.locator('[data-test=disks] tr[data-type=Disk]:has-text("spare-")')
  await attached.waitFor({ timeout: 10000 })
  assert.equal((await api('VDI.get_VBDs', [root, spare])).length, 1, 'the API sees it attached')
  await shot(page, 'vm-disks')
  await attached.locator('[data-op=detach]').click()
  await page.click('[data-test=confirm-yes]')
  await attached.waitFor({ state: 'detached', timeout: 10000 })
  assert.equal((await api('VDI.get_VBDs', [root, spare])).length, 0, 'detached, the disk kept')
})

test("a NIC's network and locking mode", async () => {
  const nets = await api('network.get_all_records', [root])
  const first = Object.keys(nets)[0]
  const other = await api('network.create', [root, { name_label: 'nic-target', name_description: '', MTU: 1500,
    other_config: {}, tags: [] }])
  await api('VIF.create', [root, { device: '0', network: first, VM: copied, MAC: '', MTU: 1500, other_config: {},
    qos_algorithm_type: '', qos_algorithm_params: {} }])
  const row = page.locator('[data-test=nics] tr[data-vif="0"]')
  await row.waitFor({ timeout: 10000 })
  const mac = (await row.locator('.mono').textContent()).trim()
  await row.locator('[data-test=nic-network]').selectOption(other)
  const moved = await until(async () => {
    for (const v of await api('VM.get_VIFs', [root, copied])) {
      const r = await api('VIF.get_record', [root, v]).catch(() => null) // the old one may go meanwhile
      if (r?.network === other) return r
    }
    return null
  })
  assert.ok(moved, 'the API sees the NIC on the other network')
  assert.equal(moved.MAC, mac, 'with the same MAC')
  assert.equal(moved.device, '0')
  await page.locator('[data-test=nics] tr[data-vif="0"] [data-test=nic-locking]').selectOption('locked')
  const locked = await until(async () => {
    const [v] = await api('VM.get_VIFs', [root, copied])
    return (await api('VIF.get_locking_mode', [root, v])) === 'locked'
  })
  assert.ok(locked, 'locking_mode = locked')
  await shot(page, 'vm-nics')
})

let vlanNet
test('networks: create one, create a VLAN, see which VMs are on each, destroy', async () => {
  await page.click('[data-test=networks-link]')
  await page.locator('[data-test=networks-page]').waitFor()
  const target = page.locator('[data-test=networks] tr[data-network="nic-target"]')
  await target.waitFor({ timeout: 10000 })
  assert.match(await target.locator('[data-test=network-vms]').textContent(), /copied-vm/)
  await page.locator('[data-test=create-network] [aria-label="network name"]').fill('made-in-ui')
  await page.locator('[data-test=create-network] button[type=submit]').click()
  await page.locator('[data-test=network-page] h1:has-text("made-in-ui")').waitFor({ timeout: 10000 })
  assert.equal((await api('network.get_by_name_label', [root, 'made-in-ui'])).length, 1)
  await page.click('[data-test=networks-link]')
  await page.locator('[data-test=create-vlan] [aria-label="VLAN network name"]').fill('vlan-42')
  await page.locator('[data-test=create-vlan] [aria-label="VLAN tag"]').fill('42')
  await page.locator('[data-test=create-vlan] button[type=submit]').click()
  // A host whose kernel has no 802.1Q support refuses VLANs: then the page
  // shows the XenAPI error and leaves no half-made network behind.
  const made = page.locator('[data-test=vlan-tag]:has-text("VLAN 42")')
  const refused = page.locator('[data-test=error]:has-text("create VLAN")')
  await Promise.race([made.waitFor({ timeout: 10000 }), refused.waitFor({ timeout: 10000 })])
  if (await made.count()) {
    ;[vlanNet] = await api('network.get_by_name_label', [root, 'vlan-42'])
    const pifs = await api('network.get_PIFs', [root, vlanNet])
    assert.equal(Number(await api('PIF.get_VLAN', [root, pifs[0]])), 42, 'the API sees a VLAN 42 PIF')
    await shot(page, 'network-vlan')
    await page.click('[data-op=network-destroy]')
    await page.click('[data-test=confirm-yes]')
    await page.locator('[data-test=networks-page]').waitFor({ timeout: 10000 })
    assert.ok(!(await api('network.get_all', [root])).includes(vlanNet), 'the VLAN network is gone')
    assert.equal((await api('VLAN.get_all', [root])).length, 0, 'and its VLAN')
  } else {
    assert.match(await refused.textContent(), /[A-Z_]{5,}/, 'the error shows its XenAPI code')
    console.log(`# VLAN refused by this host: ${(await refused.textContent()).trim()}`)
    await shot(page, 'network-vlan-refused')
    assert.ok(await until(async () => (await api('network.get_by_name_label', [root, 'vlan-42'])).length === 0),
      'the network made for it is removed')
  }
  // destroy the plain network made above
  const [mine] = await api('network.get_by_name_label', [root, 'made-in-ui'])
  await page.goto(`${BASE}/#/network/${encodeURIComponent(mine)}`)
  await page.click('[data-op=network-destroy]')
  await page.click('[data-test=confirm-yes]')
  await page.locator('[data-test=networks-page]').waitFor({ timeout: 10000 })
  assert.ok(!(await api('network.get_all', [root])).includes(mine), 'network.destroy from the page')
  await shot(page, 'networks')
})

test('SR page: a disk snapshot shows in its chain; a disk downloads', async () => {
  const name = 'chain-' + Date.now()
  const vdi = await newVdi(name, 3 << 20)
  await page.goto(`${BASE}/#/sr/${encodeURIComponent(sr)}`)
  const row = page.locator(`[data-test=vdis] tr[data-vdi="${name}"][data-depth="0"]`)
  await row.waitFor({ timeout: 10000 })
  await row.locator('[data-op=vdi-snapshot]').click()
  const snap = page.locator(`[data-test=vdis] tr[data-depth="1"][data-snapshot-of="${name}"]`)
  await snap.waitFor({ timeout: 15000 })
  // the snapshot row follows its disk's row
  const order = await page.locator('[data-test=vdis] tbody tr').evaluateAll((rows, n) => {
    const i = rows.findIndex((r) => r.dataset.vdi === n && r.dataset.depth === '0')
    return rows[i + 1]?.dataset.snapshotOf
  }, name)
  assert.equal(order, name, 'the snapshot is listed under its disk')
  assert.equal((await api('VDI.get_snapshots', [root, vdi])).length, 1, 'the API sees one snapshot')
  await shot(page, 'sr-chains')
  const [download] = await Promise.all([page.waitForEvent('download'), row.locator('[data-op=download-raw]').click()])
  const file = path.join(TMP, 'downloaded.img')
  await download.saveAs(file)
  assert.equal(fs.statSync(file).size, Number(await api('VDI.get_virtual_size', [root, vdi])),
    'the raw image is the disk\'s virtual size')
})

test('a new VM from a template: disk size and boot settings', async () => {
  await page.goto(`${BASE}/#/new-vm/${encodeURIComponent(template)}`)
  await page.locator('[data-test=new-vm-page]').waitFor({ timeout: 10000 })
  await page.fill('[data-test=new-vm-name]', 'sized-vm')
  await page.fill('[data-test=new-vm-disk]', '2')
  await page.fill('[data-test=new-vm-kernel]', 'vmlinuz-new-vm')
  await page.fill('[data-test=new-vm-ramdisk]', 'initrd-new-vm')
  await page.fill('[data-test=new-vm-args]', 'console=ttyS0 quiet new-vm-arg')
  await page.click('[data-test=new-vm-create]')
  await page.locator('[data-test=vm-name]:has-text("sized-vm")').waitFor({ timeout: 30000 })
  const [vm] = await api('VM.get_by_name_label', [root, 'sized-vm'])
  const rec = await until(async () => {
    const r = await api('VM.get_record', [root, vm])
    return r.PV_args.includes('new-vm-arg') ? r : null
  })
  assert.equal(rec.is_a_template, false)
  assert.equal(rec.PV_kernel, 'vmlinuz-new-vm')
  assert.equal(rec.PV_ramdisk, 'initrd-new-vm')
  assert.equal(rec.VBDs.length, 1, 'the template\'s disk was provisioned')
  const vdi = await api('VBD.get_VDI', [root, rec.VBDs[0]])
  assert.equal(Number(await api('VDI.get_virtual_size', [root, vdi])), 2 * 1073741824, 'at the size asked for')
  await shot(page, 'new-vm-created')
})

test('a read-only session sees none of these buttons', async () => {
  const p = await context.newPage()
  watchPage(p)
  await login(p, 'reader', READER_PASSWORD)
  await p.locator('[data-test=who]:has-text("read-only")').waitFor({ timeout: 10000 })
  await openVm(p, copied)
  assert.equal(await p.locator('[data-op=copy], [data-op=eject], [data-op=insert], [data-op=resize], ' +
    '[data-op=detach], [data-op=add-cd], [data-test=attach-disk], [data-test=boot-edit], [data-test=copy-sr]').count(), 0)
  assert.equal(await p.locator('[data-test=nic-network], [data-test=nic-locking]').count(), 0)
  await p.goto(`${BASE}/#/new-vm/${encodeURIComponent(template)}`)
  await p.locator('[data-test=new-vm-page]').waitFor()
  assert.equal(await p.locator('[data-test=new-vm-create]').count(), 0, 'no new VM form')
  await openVm(p, copied)
  assert.match(await p.locator('[data-test=boot]').textContent(), /Boot order/, 'boot settings shown, read-only')
  await shot(p, 'vm-pages-read-only')
  await p.goto(`${BASE}/#/networks`)
  await p.locator('[data-test=networks-page]').waitFor()
  assert.equal(await p.locator('[data-test=create-network], [data-test=create-vlan]').count(), 0)
  const [net] = await api('network.get_by_name_label', [root, 'nic-target'])
  await p.goto(`${BASE}/#/network/${encodeURIComponent(net)}`)
  await p.locator('[data-test=network-page]').waitFor()
  assert.equal(await p.locator('[data-op=network-destroy]').count(), 0)
  await p.goto(`${BASE}/#/sr/${encodeURIComponent(sr)}`)
  await p.locator('[data-test=sr-page]').waitFor()
  assert.equal(await p.locator('[data-op=vdi-snapshot], [data-op=download-raw], [data-op=download-vhd], [data-op=vdi-destroy]').count(), 0)
  await p.close()
})

test('no CSP violation and no script error in these pages', async () => {
  assert.deepEqual(cspViolations, [])
  assert.deepEqual(pageErrors, [])
})
