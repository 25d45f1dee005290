// The graphical console in the page: noVNC over /console's WebSocket to a
// real QEMU guest's VNC server (qemu backend; TCG is enough). The guest is
// "Other install media" with an empty disk: SeaBIOS draws its banner, which
// is the frame checked for. Run by tests/integration/run-ui.sh BUILD
// vnc.test.mjs qemu (same environment as browser.test.mjs).
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { chromium } from 'playwright-core'

const BASE = process.env.VESSEL_URL
const PASSWORD = process.env.VESSEL_PASSWORD
const SHOTS = process.env.VESSEL_SCREENSHOTS
const TMP = process.env.VESSEL_TMP

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

let context
let page
let root
let vm

before(async () => {
  root = await api('session.login_with_password', ['root', PASSWORD, '2.21', 'ui-vnc-test'])
  const vms = await api('VM.get_all_records', [root])
  const tmpl = Object.keys(vms).find((r) => vms[r].name_label === 'Other install media')
  vm = await api('VM.clone', [root, tmpl, 'vnc-guest'])
  await api('VM.provision', [root, vm])
  await api('VM.set_is_a_template', [root, vm, false])
  await api('VM.start', [root, vm, false, false])
  context = await chromium.launchPersistentContext(path.join(TMP, 'profile'), {
    executablePath: process.env.VESSEL_CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 1000 },
  })
  page = context.pages()[0] ?? (await context.newPage())
})

after(async () => {
  await context?.close()
  if (vm) await api('VM.hard_shutdown', [root, vm]).catch(() => {})
})

test('noVNC connects through the WebSocket console and draws a frame', async () => {
  await page.goto(BASE + '/')
  await page.fill('input[name=username]', 'root')
  await page.fill('input[name=password]', PASSWORD)
  await page.click('[data-test=login]')
  await page.locator('[data-test=vm-list] [data-vm="vnc-guest"] a').click()
  await page.locator('[data-open=rfb]').click()
  await page.locator('[data-protocol=rfb][data-status=connected]').waitFor({ timeout: 30000 })
  // Pixels that are not black: the guest's firmware has drawn something.
  await page.waitForFunction(() => {
    const c = document.querySelector('[data-protocol=rfb] canvas')
    if (!c || !c.width) return false
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
    let lit = 0
    for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) lit++
    return lit > 100
  }, null, { timeout: 30000 })
  const size = await page.evaluate(() => {
    const c = document.querySelector('[data-protocol=rfb] canvas')
    return [c.width, c.height]
  })
  console.log(`# noVNC canvas ${size[0]}x${size[1]}`)
  assert.ok(size[0] > 0 && size[1] > 0)
  await page.locator('[data-protocol=rfb]').screenshot({ path: path.join(SHOTS, 'vm-vnc.png') })
})
