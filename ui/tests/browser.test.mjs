// Vessel's web UI in a real browser: headless Chromium (Debian's) driven by
// playwright-core, against a vesseld on the sim backend.
//
// Run by tests/integration/run-ui.sh, which starts vesseld and sets:
//   VESSEL_URL                 http://127.0.0.1:PORT (the UI and /jsonrpc)
//   VESSEL_PASSWORD            root's password
//   VESSEL_READER_PASSWORD     the password of "reader" (made read-only here)
//   VESSEL_CHROMIUM            the browser binary
//   VESSEL_SCREENSHOTS         where the screenshots go
//   VESSEL_TMP                 a scratch dir (browser profile, upload file)
// Output is TAP; the tests run in order and share one browser page.
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

// ---------------------------------------------------------------- the API side

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

let root // another client's session: root through the API, not the browser
let template
async function newVm(name) {
  const vm = await api('VM.clone', [root, template, name])
  await api('VM.set_is_a_template', [root, vm, false])
  return vm
}

// ---------------------------------------------------------------- the browser

let context
let page
const cspViolations = []
const pageErrors = []

function watchPage(p) {
  p.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text())
  })
  p.on('pageerror', (e) => pageErrors.push(String(e)))
}

async function login(p, user, password) {
  await p.goto(BASE + '/')
  await p.fill('input[name=username]', user)
  await p.fill('input[name=password]', password)
  await p.click('[data-test=login]')
}

async function shot(p, name) {
  await p.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true })
}

before(async () => {
  root = await api('session.login_with_password', ['root', PASSWORD, '2.21', 'ui-test'])
  const vms = await api('VM.get_all_records', [root])
  template = Object.keys(vms).find((r) => vms[r].name_label === 'Direct kernel boot')
  const reader = await api('subject.create', [root, {
    subject_identifier: 'local:reader', other_config: { 'subject-name': 'reader' },
  }])
  const [ro] = await api('role.get_by_name_label', [root, 'read-only'])
  await api('subject.add_to_roles', [root, reader, ro])

  context = await chromium.launchPersistentContext(path.join(TMP, 'profile'), {
    executablePath: process.env.VESSEL_CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
  })
  page = context.pages()[0] ?? (await context.newPage())
  watchPage(page)
})

after(async () => {
  await context?.close()
})

test('the UI is served with its security headers', async () => {
  const res = await fetch(BASE + '/')
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type'), /^text\/html/)
  const csp = res.headers.get('content-security-policy')
  assert.match(csp, /(^|; )script-src 'self';/, 'scripts from this origin only, none inline')
  assert.match(csp, /(^|; )default-src 'self';/)
  assert.match(csp, /(^|; )connect-src 'self';/)
  assert.match(csp, /frame-ancestors 'none'/)
  assert.doesNotMatch(csp, /unsafe-eval|https?:|\*/)
  assert.equal(res.headers.get('x-frame-options'), 'DENY')
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer')
  const html = await res.text()
  const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)[1]
  const asset = await fetch(BASE + js)
  assert.match(asset.headers.get('content-type'), /^text\/javascript/)
  assert.match(asset.headers.get('cache-control'), /immutable/)
  const again = await fetch(BASE + js, { headers: { 'if-none-match': asset.headers.get('etag') } })
  assert.equal(again.status, 304, 'a known ETag is answered 304')
  assert.equal((await fetch(BASE + '/assets/..%2f..%2fvesseld')).status, 404)
  assert.equal((await fetch(BASE + '/no-such-file.js')).status, 404)
})

test('a wrong password shows the XenAPI error code', async () => {
  await login(page, 'root', 'not-the-password')
  const err = page.locator('[data-test=login-error]')
  await err.waitFor({ timeout: 10000 })
  assert.match(await err.textContent(), /SESSION_AUTHENTICATION_FAILED/)
  await shot(page, 'login')
})

test('log in as root', async () => {
  await login(page, 'root', PASSWORD)
  await page.locator('[data-test=tree]').waitFor({ timeout: 10000 })
  await page.locator('[data-test=connection]:has-text("live")').waitFor({ timeout: 10000 })
  assert.match(await page.locator('[data-test=who]').textContent(), /root \(pool-admin\)/)
  await page.locator('[data-test=vm-list]').waitFor({ timeout: 10000 })
})

test('a VM made by another client shows up within 2 s, without reload', async () => {
  const name = 'from-api-' + Date.now()
  const t0 = Date.now()
  await newVm(name)
  await page.locator(`[data-test=vm-list] [data-vm="${name}"]`).waitFor({ timeout: 2000 })
  const ms = Date.now() - t0
  console.log(`# the new VM appeared after ${ms} ms`)
  assert.ok(ms <= 2000)
  await page.locator(`[data-test=tree] [data-vm="${name}"]`).waitFor({ timeout: 2000 })
  await shot(page, 'pool')
})

let vmName
test('start a VM from the UI and see its power state change', async () => {
  vmName = 'ui-vm-' + Date.now()
  await newVm(vmName)
  await page.click(`[data-test=vm-list] [data-vm="${vmName}"] a`)
  await page.locator('[data-test=vm-page]').waitFor()
  assert.equal(await page.locator('[data-test=power-state]').textContent(), 'Halted')
  await page.click('[data-op=start]')
  await page.locator('[data-test=power-state]:has-text("Running")').waitFor({ timeout: 15000 })
  await page.locator('[data-op=clean_shutdown]').waitFor({ timeout: 5000 })
  assert.equal(await page.locator('[data-op=start]').count(), 0, 'no start button on a running VM')
  await shot(page, 'vm')
})

test('a snapshot from the UI', async () => {
  const snap = 'snap-' + Date.now()
  await page.fill('[data-test=new-name]', snap)
  await page.click('[data-op=snapshot]')
  await page.locator(`[data-test=snapshots] li:has-text("${snap}")`).waitFor({ timeout: 15000 })
  const vms = await api('VM.get_all_records', [root])
  const s = Object.values(vms).find((v) => v.name_label === snap)
  assert.ok(s && s.is_a_snapshot, 'the API sees the snapshot')
})

test('pause and unpause, with the task list showing the tasks', async () => {
  await page.click('[data-op=pause]')
  await page.locator('[data-test=power-state]:has-text("Paused")').waitFor({ timeout: 15000 })
  await page.click('[data-op=unpause]')
  await page.locator('[data-test=power-state]:has-text("Running")').waitFor({ timeout: 15000 })
  await page.locator('[data-test=tasks] .task[data-status=success]').first().waitFor({ timeout: 5000 })
})

test('the serial console in the page: replay, then typed keys echoed', async () => {
  await page.locator('[data-test=consoles]').waitFor({ timeout: 5000 })
  await page.click('[data-open=vt100]')
  const screen = page.locator('[data-protocol=vt100] .xterm-rows')
  await page.locator('[data-protocol=vt100][data-status=connected]').waitFor({ timeout: 10000 })
  await screen.locator('text=VESSEL-GUEST-UP').waitFor({ timeout: 10000 })
  await page.click('[data-protocol=vt100] .console-screen')
  await page.keyboard.type('typed-in-browser')
  await screen.locator('text=typed-in-browser').waitFor({ timeout: 10000 })
  await shot(page, 'vm-console')
})

test('graphs from /rrd_updates on the VM and host pages show data points', async () => {
  // The VM page (still open) first: its vCPU graph.
  await page.locator('[data-test=graph-vm-memory]').waitFor({ timeout: 5000 })
  try {
    await page.waitForFunction(() => Number(document.querySelector('[data-test=graph-vm-memory]')?.dataset.points) > 0,
      null, { timeout: 40000 })
  } catch (e) {
    const title = await page.locator('[data-test=graph-vm-memory] h3').textContent()
    const vm = (await api('VM.get_all_records', [root]))
    const uuid = Object.values(vm).find((v) => v.name_label === vmName)?.uuid
    const r = await fetch(`${BASE}/rrd_updates?session_id=${root}&start=-120&interval=5&cf=AVERAGE&vm_uuid=${uuid}`)
    throw new Error(`${e.message}; the graph says "${title}"; /rrd_updates: ${r.status} ${(await r.text()).slice(0, 600)}`)
  }
  const host = Object.values(await api('host.get_all_records', [root]))[0]
  const hostRef = await api('host.get_by_uuid', [root, host.uuid])
  await page.goto(`${BASE}/#/host/${encodeURIComponent(hostRef)}`)
  await page.locator('[data-test=host-page]').waitFor()
  await page.waitForFunction(() => Number(document.querySelector('[data-test=graph-cpu]')?.dataset.points) > 0,
    null, { timeout: 20000 })
  await page.locator('[data-test=graph-cpu] canvas').waitFor({ timeout: 5000 })
  const points = await page.locator('[data-test=graph-cpu]').getAttribute('data-points')
  console.log(`# host CPU graph: ${points} data points`)
  await shot(page, 'host')
})

test('a disk upload with visible progress', async () => {
  const pool = Object.values(await api('pool.get_all_records', [root]))[0]
  await page.goto(`${BASE}/#/sr/${encodeURIComponent(pool.default_SR)}`)
  await page.locator('[data-test=sr-page]').waitFor()
  await shot(page, 'sr')
  const size = 48 << 20
  const file = path.join(TMP, 'upload.img')
  const buf = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4096) buf.write('vessel-ui-upload', i)
  fs.writeFileSync(file, buf)
  // Every value the percentage shows, as the page shows it.
  await page.evaluate(() => {
    window.__seen = []
    new MutationObserver(() => {
      const el = document.querySelector('[data-test=upload-percent]')
      if (el) window.__seen.push(el.textContent)
    }).observe(document.body, { subtree: true, childList: true, characterData: true })
  })
  await page.setInputFiles('[data-test=upload-file]', file)
  await page.click('[data-test=upload] button[type=submit]')
  await page.locator('[data-test=upload-progress]').waitFor({ timeout: 5000 })
  await page.locator('[data-test=upload-percent]:has-text("100%")').waitFor({ timeout: 60000 })
  await page.locator('[data-test=vdis] [data-vdi="upload.img"]').waitFor({ timeout: 10000 })
  const seen = await page.evaluate(() => window.__seen)
  console.log(`# upload percentages shown: ${[...new Set(seen)].join(' ')}`)
  assert.ok(seen.length >= 1)
  const vdis = await api('VDI.get_all_records', [root])
  const v = Object.values(vdis).find((x) => x.name_label === 'upload.img')
  assert.equal(Number(v.virtual_size), size)
  await shot(page, 'sr-after-upload')
})

test('a read-only account sees no button it may not press', async () => {
  const p = await context.newPage() // sessionStorage is per tab: a fresh login
  watchPage(p)
  await login(p, 'reader', READER_PASSWORD)
  await p.locator('[data-test=who]:has-text("read-only")').waitFor({ timeout: 10000 })
  await p.locator(`[data-test=vm-list] [data-vm="${vmName}"] a`).click()
  await p.locator('[data-test=vm-page]').waitFor()
  assert.equal(await p.locator('[data-op=start], [data-op=clean_shutdown], [data-op=snapshot], [data-op=destroy]').count(), 0)
  assert.equal(await p.locator('[data-test=vm-actions] button').count(), 0)
  assert.equal(await p.locator('[data-test=vm-edit], [data-test=add-disk], [data-test=add-nic]').count(), 0)
  await shot(p, 'vm-read-only')
  // A halted VM: still no start button.
  const halted = 'ro-halted-' + Date.now()
  await newVm(halted)
  await p.locator(`[data-test=tree] [data-vm="${halted}"] a`).click()
  await p.locator(`[data-test=vm-name]:has-text("${halted}")`).waitFor()
  assert.equal(await p.locator('[data-op]').count(), 0)
  await p.close()
})

test('edit a halted VM, add and detach a disk, add and remove a NIC', async () => {
  const name = 'edit-me-' + Date.now()
  const vm = await newVm(name)
  await page.goto(`${BASE}/#/vm/${encodeURIComponent(vm)}`)
  await page.locator(`[data-test=vm-name]:has-text("${name}")`).waitFor()
  const form = page.locator('[data-test=vm-edit]')
  await form.locator('label:has-text("Name") input').fill(name + '-renamed')
  await form.locator('label:has-text("Description") input').fill('edited in the browser')
  await form.locator('label:has-text("vCPUs") input').fill('2')
  await form.locator('label:has-text("Memory") input').fill('512')
  await form.locator('button[type=submit]').click()
  await page.locator(`[data-test=vm-name]:has-text("${name}-renamed")`).waitFor({ timeout: 10000 })
  // The form saves field after field: wait for the last one (memory).
  let rec
  for (let i = 0; i < 100; i++) {
    rec = await api('VM.get_record', [root, vm])
    if (Number(rec.memory_static_max) === 512 * 1048576) break
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.equal(rec.name_description, 'edited in the browser')
  assert.equal(Number(rec.VCPUs_max), 2)
  assert.equal(Number(rec.VCPUs_at_startup), 2)
  assert.equal(Number(rec.memory_static_max), 512 * 1048576)

  const disks = page.locator('[data-test=disks] tbody tr')
  const before = await disks.count()
  await page.locator('[data-test=add-disk] input[aria-label="disk name"]').fill('extra')
  await page.locator('[data-test=add-disk] input[aria-label="size GiB"]').fill('0.01')
  await page.locator('[data-test=add-disk] button[type=submit]').click()
  await page.locator('[data-test=disks] tbody tr:has-text("extra")').waitFor({ timeout: 10000 })
  assert.equal(await disks.count(), before + 1)
  await page.locator('[data-test=disks] tbody tr:has-text("extra") button:has-text("detach")').click()
  await page.click('[data-test=confirm-yes]')
  await page.waitForFunction((n) => document.querySelectorAll('[data-test=disks] tbody tr').length === n, before,
    { timeout: 10000 })

  await page.locator('[data-test=add-nic] button[type=submit]').click()
  await page.locator('[data-test=nics] tbody tr').first().waitFor({ timeout: 10000 })
  assert.equal((await api('VM.get_VIFs', [root, vm])).length, 1)
  await page.locator('[data-test=nics] tbody tr button:has-text("remove")').click()
  await page.click('[data-test=confirm-yes]')
  await page.waitForFunction(() => document.querySelectorAll('[data-test=nics] tbody tr').length === 0, null,
    { timeout: 10000 })
  assert.equal((await api('VM.get_VIFs', [root, vm])).length, 0)
  await shot(page, 'vm-edited')
})

test('destroy a VM with its disks, after a confirmation', async () => {
  const name = 'doomed-' + Date.now()
  const vm = await api('VM.clone', [root, template, name])
  await api('VM.provision', [root, vm])
  await api('VM.set_is_a_template', [root, vm, false])
  const vbds = await api('VM.get_VBDs', [root, vm])
  const vdi = await api('VBD.get_VDI', [root, vbds[0]])
  await page.goto(`${BASE}/#/vm/${encodeURIComponent(vm)}`)
  await page.locator(`[data-test=vm-name]:has-text("${name}")`).waitFor()
  await page.click('[data-op=destroy]')
  await page.locator('[data-test=confirm]').waitFor()
  await page.click('[data-test=confirm-yes]')
  await page.locator('[data-test=pool-page]').waitFor({ timeout: 15000 })
  const all = await api('VM.get_all', [root])
  assert.ok(!all.includes(vm), 'the VM is gone')
  const vdis = await api('VDI.get_all', [root])
  assert.ok(!vdis.includes(vdi), 'its disk is gone')
})

test('no CSP violation and no script error in the pages', async () => {
  assert.deepEqual(cspViolations, [])
  assert.deepEqual(pageErrors, [])
})
