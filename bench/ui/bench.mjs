// bench/ui/bench.mjs - run by bench/ui/run.sh (see there). Prints a table
// and "bench.ui.*=" lines.
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [nVms, nRunning] = process.argv.slice(2).map(Number)
const BASE = process.env.VESSEL_URL
const { chromium } = await import(
  pathToFileURL(path.join(process.env.VESSEL_UI_SRC, 'node_modules/playwright-core/index.mjs')).href)

let rid = 1
async function api(method, params) {
  const res = await fetch(BASE + '/jsonrpc', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', method, params, id: rid++ }),
  })
  const body = await res.json()
  if (body.error) throw new Error(`${method}: ${body.error.message} ${JSON.stringify(body.error.data)}`)
  return body.result
}

const root = await api('session.login_with_password', ['root', process.env.VESSEL_PASSWORD, '2.21', 'bench'])
const ticks = () => {
  const f = fs.readFileSync(`/proc/${process.env.VESSEL_PID}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(f[11]) + Number(f[12]) // utime + stime, in clock ticks
}
const hz = 100
// The disk servers' CPU (they answer the sampler's "stats"): every process
// whose command line names our data dir, but vesseld.
function serverTicks() {
  let sum = 0
  for (const pid of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x) && x !== process.env.VESSEL_PID)) {
    try {
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(process.env.VESSEL_TMP + '/data')) continue
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
      sum += Number(f[11]) + Number(f[12])
    } catch { /* gone meanwhile */ }
  }
  return sum
}
// vesseld's CPU over @ms, as a fraction of one core.
async function cpuOver(ms) {
  const c0 = ticks()
  const w0 = Date.now()
  await new Promise((r) => setTimeout(r, ms))
  return ((ticks() - c0) / hz) / ((Date.now() - w0) / 1000)
}
// The baseline: the same vesseld with no VM running (host sampling, housekeeping).
const idle = await cpuOver(30000)
console.log(`vesseld CPU with no VM running, 30 s: ${(idle * 100).toFixed(2)}% of one core`)
const vms = await api('VM.get_all_records', [root])
const tmpl = Object.keys(vms).find((r) => vms[r].name_label === 'Direct kernel boot')
let t0 = Date.now()
const made = []
for (let i = 0; i < nVms; i += 50) {
  const batch = []
  for (let j = i; j < Math.min(nVms, i + 50); j++) {
    batch.push(api('VM.clone', [root, tmpl, `bench-${String(j).padStart(4, '0')}`]).then(async (vm) => {
      await api('VM.set_is_a_template', [root, vm, false])
      made.push(vm)
    }))
  }
  await Promise.all(batch)
}
console.log(`--- first render with ${nVms} VMs ---`)
console.log(`made ${nVms} VMs through the API in ${Date.now() - t0} ms`)

const context = await chromium.launchPersistentContext(path.join(process.env.VESSEL_TMP, 'profile'), {
  executablePath: process.env.VESSEL_CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const page = context.pages()[0] ?? (await context.newPage())
// The peer of the first render: the same objects fetched by a client that
// draws nothing (one event.from from token "", the UI's first call).
const CLASSES = ['pool', 'host', 'host_metrics', 'VM', 'VM_metrics', 'VM_guest_metrics', 'SR', 'PBD', 'VDI', 'VBD',
  'VIF', 'network', 'PIF', 'task', 'console']
const tf0 = Date.now()
const everything = await api('event.from', [root, CLASSES, '', 30.0])
const tFetch = Date.now() - tf0
console.log(`event.from of every object (${everything.events.length} events), no drawing: ${tFetch} ms`)
const tLoad = Date.now()
await page.goto(BASE + '/')
await page.locator('input[name=username]').waitFor()
const pageReady = Date.now() - tLoad
await page.fill('input[name=username]', 'root')
await page.fill('input[name=password]', process.env.VESSEL_PASSWORD)
t0 = Date.now()
await page.click('[data-test=login]')
await page.waitForFunction((n) => document.querySelectorAll('[data-test=vm-list] tbody tr').length >= n, nVms,
  { timeout: 120000, polling: 20 })
const tList = Date.now() - t0
await page.waitForFunction((n) => document.querySelectorAll('[data-test=tree] [data-vm]').length >= n, nVms,
  { timeout: 120000, polling: 20 })
const tTree = Date.now() - t0
// Interactive: a click on the last VM opens its page.
const t1 = Date.now()
await page.click(`[data-test=vm-list] [data-vm="bench-${String(nVms - 1).padStart(4, '0')}"] a`)
await page.locator('[data-test=vm-page]').waitFor()
const tClick = Date.now() - t1
console.log(`login page ready: ${pageReady} ms`)
console.log(`login click -> VM list with ${nVms} rows: ${tList} ms; tree with them: ${tTree} ms`)
console.log(`click on a VM -> its page: ${tClick} ms`)
console.log(`bench.ui.first_render_${nVms}_vms_ms=${tList}`)
console.log(`bench.ui.first_render_us_per_vm=${((tList * 1000) / nVms).toFixed(0)}`)
console.log(`bench.ui.first_render_over_fetch_ratio=${(tList / tFetch).toFixed(2)}`)
await context.close()

// ---- metrics collection cost
// Each running VM gets a disk, so every step also asks its disk server for
// the VBD's counters (vbd_<device>_* sources), as on a real host.
console.log(`--- metrics: ${nRunning} running sim VMs with a disk each, 60 s ---`)
const pool = Object.values(await api('pool.get_all_records', [root]))[0]
for (const vm of made.slice(0, nRunning)) {
  const vdi = await api('VDI.create', [root, { SR: pool.default_SR, virtual_size: 16 << 20, type: 'user',
    sharable: false, read_only: false, other_config: {}, name_label: 'bench disk', name_description: '',
    sm_config: {}, xenstore_data: {}, tags: [] }])
  await api('VBD.create', [root, { VM: vm, VDI: vdi, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk',
    empty: false, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} }])
  await api('VM.start', [root, vm, false, false])
}
await new Promise((r) => setTimeout(r, 10000)) // let the first rates settle
const logBefore = fs.readFileSync(process.env.VESSEL_LOG, 'utf8').length
const s0 = serverTicks()
const cpu = await cpuOver(60000)
const servers = (serverTicks() - s0) / hz / 60
const samples = [...fs.readFileSync(process.env.VESSEL_LOG, 'utf8').slice(logBefore).matchAll(/rrd\.sample us=(\d+)/g)]
  .map((m) => Number(m[1]))
const avg = samples.length ? samples.reduce((a, b) => a + b, 0) / samples.length : NaN
console.log(`vesseld CPU over 60 s: ${(cpu * 100).toFixed(2)}% of one core (everything it does, idle API included)`)
console.log(`sampler per 5 s step: ${samples.length} steps, mean ${avg.toFixed(0)} us, max ${Math.max(...samples)} us`)
console.log(`sampler step, wall clock (mostly waiting for the disk servers' answers): ` +
  `${(avg / 5e6 * 100).toFixed(3)}% of the 5 s step`)
// /proc counts 10 ms ticks: an idle vesseld may show none in 30 s
const ratio = idle > 0 ? `${(cpu / idle).toFixed(2)}x` : 'n/a (idle under one 10 ms tick)'
console.log(`vesseld vs. with no VM running: ${ratio}, +${((cpu - idle) * 100).toFixed(2)} points, ` +
  `${((cpu - idle) * 100 / nRunning).toFixed(4)} points per running VM; ` +
  `the ${nRunning} disk servers together: ${(servers * 100).toFixed(2)}% of one core`)
console.log(`bench.ui.disk_servers_cpu_percent_${nRunning}_vms=${(servers * 100).toFixed(2)}`)
console.log(`bench.ui.vesseld_cpu_percent_idle=${(idle * 100).toFixed(2)}`)
console.log(`bench.ui.vesseld_cpu_percent_${nRunning}_vms=${(cpu * 100).toFixed(2)}`)
console.log(`bench.ui.vesseld_cpu_percent_per_running_vm=${((cpu - idle) * 100 / nRunning).toFixed(4)}`)
console.log(`bench.ui.rrd_sample_us_${nRunning}_vms=${avg.toFixed(0)}`)
console.log(`bench.ui.rrd_sample_step_share_percent=${(avg / 5e6 * 100).toFixed(3)}`)
