// Runs Xen Orchestra's own stats parser (xo-server src/xapi-stats.mjs, copied
// beside this file by tests/integration/test_rrd_xo.py, never committed)
// against vesseld, as xo-server does for its host and VM stats views, and
// prints what it parsed as one JSON document on stdout.
//
// Environment: VESSEL_URL, VESSEL_SESSION, HOST_REF, HOST_UUID and VMS (a
// JSON list of {ref, uuid}). The xapi object is the part of xen-api's Xapi
// that XapiStats uses: call() over JSON-RPC, getResource() for /rrd_updates
// (session_id added as xen-api adds it) and getObject() with $ref and
// $resident_on.
import XapiStats from './xapi-stats.mjs'

const base = process.env.VESSEL_URL
const session = process.env.VESSEL_SESSION
const host = { $ref: process.env.HOST_REF, uuid: process.env.HOST_UUID }
const objects = { [host.$ref]: host }
const vms = JSON.parse(process.env.VMS)
for (const vm of vms) objects[vm.ref] = { $ref: vm.ref, uuid: vm.uuid, $resident_on: host }

let requests = 0
const xapi = {
  getObject: id => objects[id],
  async call(method, ...args) {
    const r = await fetch(new URL('/jsonrpc', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [session, ...args] }),
    })
    const j = await r.json()
    if (j.error) throw new Error(JSON.stringify(j.error))
    return j.result
  },
  async getResource(path, { query }) {
    const u = new URL(path, base)
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, String(v))
    u.searchParams.set('session_id', session)
    requests++
    const r = await fetch(u)
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`)
    return { body: { text: () => r.text() } }
  },
}

const stats = new XapiStats()
const out = { host: await stats.getHostStats(xapi, host.$ref, 'seconds'), vms: {} }
for (const vm of vms) out.vms[vm.uuid] = await stats.getVmStats(xapi, vm.ref, 'seconds')
out.requests = requests // xo-server's cache: one /rrd_updates serves the host and the VMs
out.hostMinutes = await stats.getHostStats(xapi, host.$ref, 'minutes')
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0) // XapiStats keeps cache timers
