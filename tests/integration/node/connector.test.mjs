// Vessel integration test: Xen Orchestra's `xen-api` npm connector (a XenAPI
// client nobody on the team wrote) against a running vesseld.
//
// Run by tests/integration/run-node.sh, which starts vesseld and sets:
//   VESSEL_URL       http://127.0.0.1:PORT
//   VESSEL_PASSWORD  root's password
// Output is TAP (node --test --test-reporter=tap); every top-level test() is
// one TAP line, so keep them flat (no nested subtests).
//
// All traffic goes through a small recording proxy on 127.0.0.1 so the test
// can tell which transport (JSON-RPC on /jsonrpc or XML-RPC on /xmlrpc) the
// connector picked.
import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { createClient } from 'xen-api'

const BASE = process.env.VESSEL_URL
const PASSWORD = process.env.VESSEL_PASSWORD
if (!BASE || !PASSWORD) {
  throw new Error('VESSEL_URL and VESSEL_PASSWORD must be set (use tests/integration/run-node.sh)')
}
const upstream = new URL(BASE)

// Classes vesseld must serve now (issue 2, "Data model and generator").
const CLASSES = [
  'session', 'subject', 'role', 'task', 'event', 'pool', 'host', 'host_metrics', 'host_cpu',
  'VM', 'VM_metrics', 'VM_guest_metrics', 'console', 'VBD', 'VBD_metrics', 'VDI', 'SR', 'SM',
  'PBD', 'network', 'VIF', 'VIF_metrics', 'PIF', 'PIF_metrics', 'message', 'blob', 'secret',
  'Bond', 'VLAN', 'pool_update',
]
// Classes that have no get_all_records in the XenAPI (session, event).
const NO_GET_ALL = new Set(['session', 'event'])

const REF_RE = /^OpaqueRef:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const WAIT_MS = 8000 // every wait below is bounded by this

// ---------------------------------------------------------------------------
// recording proxy

const seen = [] // {path, reqType, resType, status}
const upstreamAgent = new http.Agent({ keepAlive: true })
// Each client uses its own base URL http://127.0.0.1:PROXY/<tag>/ so its
// requests can be told apart; the proxy strips /<tag> before forwarding.
const proxy = http.createServer((req, res) => {
  const m = /^\/(c-[a-z0-9]+)(\/.*)$/.exec(req.url)
  const rec = { client: m?.[1], path: m ? m[2] : req.url, reqType: req.headers['content-type'] }
  seen.push(rec)
  const up = http.request(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: rec.path,
      headers: req.headers,
      agent: upstreamAgent,
    },
    upRes => {
      rec.status = upRes.statusCode
      rec.resType = upRes.headers['content-type']
      res.writeHead(upRes.statusCode, upRes.headers)
      upRes.pipe(res)
    }
  )
  up.on('error', err => {
    rec.status = 502
    res.writeHead(502, { 'content-type': 'text/plain' })
    res.end(String(err))
  })
  req.pipe(up)
})
let proxyUrl

// ---------------------------------------------------------------------------
// raw JSON-RPC helper (a session that is NOT the connector's)

async function raw(method, params) {
  const res = await fetch(new URL('/jsonrpc', BASE), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  assert.equal(res.status, 200, `${method}: HTTP ${res.status}`)
  const body = await res.json()
  if (body.error) {
    const e = new Error(`${body.error.message}(${(body.error.data ?? []).join(', ')})`)
    e.code = body.error.message
    e.params = body.error.data
    throw e
  }
  return body.result
}

// poll `pred` until it returns a truthy value or WAIT_MS passes
async function waitFor(what, pred, ms = WAIT_MS) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await pred()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}

const warnings = []
const origWarn = console.warn
console.warn = (...args) => {
  warnings.push(args.map(a => (a instanceof Error ? `${a.code ?? ''} ${a.message}` : String(a))).join(' '))
}

function makeClient(tag, transport, extra = {}) {
  const opts = {
    url: `${proxyUrl}/c-${tag}/`,
    auth: { user: 'root', password: PASSWORD },
    allowUnauthorized: true,
    debounce: 20, // pause between two event.from calls (default 200 ms)
    // after an unexpected event-loop error the connector waits this long
    // (default 60 s); its own re-login race (event.inject while the session is
    // being renewed) would otherwise stall the loop past the test's waits
    eventPollDelay: 100,
    ...extra,
  }
  if (transport !== undefined) opts.transport = transport
  const xapi = createClient(opts)
  xapi.fetchErrors = []
  xapi.on('eventFetchingError', e => xapi.fetchErrors.push(e))
  return xapi
}

const byType = (xapi, type) => Object.values(xapi.objects.indexes.type[type] ?? {})

let xapi // auto transport: should pick JSON-RPC
let xmlXapi // forced XML-RPC transport
let rawSession
let templateRef
const cleanupVms = []

before(async () => {
  await new Promise(resolve => proxy.listen(0, '127.0.0.1', resolve))
  proxyUrl = `http://127.0.0.1:${proxy.address().port}`
  rawSession = await raw('session.login_with_password', ['root', PASSWORD])
})

after(async () => {
  for (const ref of cleanupVms) {
    await raw('VM.destroy', [rawSession, ref]).catch(() => {})
  }
  await raw('session.logout', [rawSession]).catch(() => {})
  for (const c of [xapi, xmlXapi]) {
    if (c === undefined) continue
    await c.disconnect().catch(() => {})
    // abort the pending event.from long poll so the process can exit
    await c._undiciDispatcher.destroy().catch(() => {})
  }
  upstreamAgent.destroy()
  proxy.closeAllConnections()
  await new Promise(resolve => proxy.close(resolve))
  console.warn = origWarn
  if (warnings.length) console.error('# connector warnings:\n# ' + warnings.join('\n# '))
})

// ---------------------------------------------------------------------------

test('connect with the auto transport logs in over JSON-RPC', async () => {
  xapi = makeClient('auto')
  await xapi.connect()
  assert.equal(xapi.status, 'connected')
  assert.match(xapi.sessionId, REF_RE)
  const mine = seen.filter(r => r.client === 'c-auto')
  const json = mine.filter(r => r.path === '/jsonrpc')
  const xml = mine.filter(r => r.path !== '/jsonrpc')
  assert.ok(json.length >= 3, 'login, pool.get_all_records and system.listMethods went to /jsonrpc')
  assert.deepEqual(xml, [], 'no fallback to XML-RPC')
  for (const r of json) {
    assert.equal(r.reqType, 'application/json')
    assert.equal(r.resType, 'application/json', 'Content-Type exactly application/json')
    assert.equal(r.status, 200)
  }
})

test('pool.get_all_records gives the single pool with master and other_config', async () => {
  const pool = xapi.pool
  assert.ok(pool, 'xapi.pool is set after connect')
  assert.match(pool.$ref, REF_RE)
  assert.match(pool.master, REF_RE)
  assert.equal(typeof pool.other_config, 'object')
  const pools = await xapi.call('pool.get_all_records')
  assert.deepEqual(Object.keys(pools), [pool.$ref])
  const host = await xapi.getRecord('host', pool.master)
  assert.equal(typeof host.address, 'string')
  assert.ok(host.address.length > 0, 'host.address is set')
  // the connector resolves the master's address through this helper
  assert.equal(typeof (await xapi.getHostBackupUrl(host)).hostname, 'string')
})

test('system.listMethods gives every class through *.get_all_records', async () => {
  const methods = await xapi._call('system.listMethods')
  assert.ok(Array.isArray(methods), 'a bare array of names')
  const types = xapi._types // what the connector derived from system.listMethods
  assert.ok(Array.isArray(types))
  for (const cls of CLASSES) {
    if (NO_GET_ALL.has(cls)) continue
    assert.ok(types.includes(cls), `class ${cls} derived from ${cls}.get_all_records`)
  }
  assert.equal(new Set(types).size, types.length, 'no duplicate classes')
  for (const m of ['VM.clone', 'VM.get_record', 'event.from', 'event.inject', 'task.destroy', 'session.logout']) {
    assert.ok(methods.includes(m), `${m} listed`)
  }
})

test('the object cache is filled from get_all_records of every class', async () => {
  await Promise.race([xapi.objectsFetched, sleep(WAIT_MS).then(() => Promise.reject(new Error('objectsFetched timed out')))])
  const refreshWarnings = warnings.filter(w => w.startsWith('_refreshCachedRecords') || w.startsWith('_watchEvents'))
  assert.deepEqual(refreshWarnings, [], 'no class failed its get_all_records and event.inject worked')
  for (const type of ['pool', 'host', 'VM', 'SM', 'network', 'PIF', 'host_cpu', 'host_metrics']) {
    assert.ok(byType(xapi, type).length > 0, `cache has ${type} objects`)
  }
  // the cache agrees with a fresh get_all_records
  const vms = await xapi.call('VM.get_all_records')
  assert.equal(byType(xapi, 'VM').length, Object.keys(vms).length)
  const dom0 = byType(xapi, 'VM').find(vm => vm.is_control_domain)
  assert.ok(dom0, 'control domain VM present')
  assert.equal(dom0.power_state, 'Running')
  // $-getters resolve refs through the cache
  assert.equal(xapi.pool.$master.$ref, xapi.pool.master)
  const tpl = byType(xapi, 'VM').find(vm => vm.is_a_template && !vm.is_control_domain)
  assert.ok(tpl, 'a built-in template exists')
  templateRef = tpl.$ref
  assert.equal(xapi.getObject(tpl.uuid), tpl, 'object found by uuid')
})

test("the event.from loop sees another session's add, mod and del", async () => {
  const cloneName = 'node-evt-' + process.pid
  // the change is made by a different session (raw JSON-RPC, not the connector)
  const ref = await raw('VM.clone', [rawSession, templateRef, cloneName])
  cleanupVms.push(ref)
  assert.match(ref, REF_RE)
  const added = await waitFor('add event of the clone', () => xapi.getObjectByRef(ref, undefined))
  assert.equal(added.name_label, cloneName)
  assert.equal(added.is_a_template, true, 'a clone of a template is a template')

  await raw('VM.set_name_label', [rawSession, ref, cloneName + '-renamed'])
  await waitFor('name_label mod event', () => xapi.getObjectByRef(ref, {}).name_label === cloneName + '-renamed')

  await raw('VM.add_to_other_config', [rawSession, ref, 'vessel-test', 'node'])
  await waitFor('other_config mod event', () => xapi.getObjectByRef(ref, {}).other_config?.['vessel-test'] === 'node')

  await raw('VM.destroy', [rawSession, ref])
  cleanupVms.splice(cleanupVms.indexOf(ref), 1)
  await waitFor('del event', () => xapi.getObjectByRef(ref, undefined) === undefined)
  assert.deepEqual(xapi.fetchErrors.map(String), [], 'no event.from error (valid_ref_counts readable)')
})

test('barrier() round-trips pool.add_to_other_config through the event loop', async () => {
  await Promise.race([xapi.barrier(), sleep(WAIT_MS).then(() => Promise.reject(new Error('barrier timed out')))])
})

test('call() of VM.clone returns the new ref directly', async () => {
  const ref = await xapi.call('VM.clone', templateRef, 'node-sync-clone')
  cleanupVms.push(ref)
  assert.match(ref, REF_RE)
  assert.equal(await xapi.call('VM.get_name_label', ref), 'node-sync-clone')
})

test('callAsync() of VM.clone follows the task and parses its XML-RPC result', async () => {
  const tasksBefore = new Set(byType(xapi, 'task').map(t => t.$ref))
  const ref = await Promise.race([
    xapi.callAsync('VM.clone', templateRef, 'node-async-clone'),
    sleep(WAIT_MS).then(() => Promise.reject(new Error('callAsync timed out'))),
  ])
  cleanupVms.push(ref)
  assert.match(ref, REF_RE, 'task.result <value>OpaqueRef:...</value> parsed to the ref')
  assert.equal(await xapi.call('VM.get_name_label', ref), 'node-async-clone')
  // the connector destroys the task once settled; the del event removes it
  const newTasks = () => byType(xapi, 'task').filter(t => !tasksBefore.has(t.$ref) && t.name_label?.includes('clone'))
  await waitFor('task.destroy after callAsync', () => newTasks().length === 0)
})

test('callAsync() failure rejects with the task error_info', async () => {
  const bad = 'OpaqueRef:00000000-0000-0000-0000-00000000dead'
  await assert.rejects(
    Promise.race([
      xapi.callAsync('VM.clone', bad, 'x'),
      sleep(WAIT_MS).then(() => Promise.reject(new Error('callAsync timed out'))),
    ]),
    e => {
      assert.equal(e.code, 'HANDLE_INVALID')
      assert.deepEqual(e.params, ['VM', bad])
      return true
    }
  )
})

test('a bad ref gives HANDLE_INVALID [class, ref]', async () => {
  const bad = 'OpaqueRef:00000000-0000-0000-0000-000000000bad'
  await assert.rejects(xapi.call('VM.get_record', bad), e => {
    assert.equal(e.code, 'HANDLE_INVALID')
    assert.deepEqual(e.params, ['VM', bad])
    return true
  })
  await assert.rejects(xapi.call('VM.set_name_label', bad, 'x'), { code: 'HANDLE_INVALID' })
})

test('wrong arity gives MESSAGE_PARAMETER_COUNT_MISMATCH, unknown method MESSAGE_METHOD_UNKNOWN', async () => {
  await assert.rejects(xapi.call('VM.get_name_label'), e => {
    assert.equal(e.code, 'MESSAGE_PARAMETER_COUNT_MISMATCH')
    assert.equal(e.params[0], 'VM.get_name_label')
    assert.equal(e.params.length, 3)
    assert.match(String(e.params[1]), /^[0-9]+$/)
    assert.match(String(e.params[2]), /^[0-9]+$/)
    assert.equal(Number(e.params[1]) - Number(e.params[2]), 1, 'one argument missing')
    return true
  })
  await assert.rejects(xapi.call('VM.no_such_message', templateRef), e => {
    assert.equal(e.code, 'MESSAGE_METHOD_UNKNOWN')
    assert.deepEqual(e.params, ['VM.no_such_message'])
    return true
  })
})

test("MESSAGE_PARAMETER_COUNT_MISMATCH counts without the session, as xapi's generated server", async () => {
  await assert.rejects(xapi.call('VM.get_name_label'), e => {
    assert.deepEqual(e.params, ['VM.get_name_label', '1', '0'])
    return true
  })
})

test('SESSION_INVALID makes the connector log in again and retry', async () => {
  const old = xapi.sessionId
  await raw('session.logout', [old])
  // next call fails with SESSION_INVALID, the connector re-logs in once and retries
  const pools = await xapi.call('pool.get_all')
  assert.deepEqual(pools, [xapi.pool.$ref])
  assert.notEqual(xapi.sessionId, old)
  assert.match(xapi.sessionId, REF_RE)
  // and the event loop restarts on the new session: it still sees changes
  const ref = await raw('VM.clone', [rawSession, templateRef, 'node-after-relogin'])
  cleanupVms.push(ref)
  await waitFor('event after re-login', () => xapi.getObjectByRef(ref, undefined))
})

test('the XML-RPC transport works too (posts to /xmlrpc, text/xml both ways)', async () => {
  xmlXapi = makeClient('xml', 'xml-rpc')
  await xmlXapi.connect()
  await Promise.race([xmlXapi.objectsFetched, sleep(WAIT_MS).then(() => Promise.reject(new Error('objectsFetched timed out')))])
  const mine = seen.filter(r => r.client === 'c-xml')
  assert.ok(mine.length >= 4)
  for (const r of mine) {
    assert.equal(r.path, '/xmlrpc')
    assert.equal(r.reqType, 'text/xml')
    assert.ok(r.resType === 'text/xml' || r.resType === 'application/xml', `response type ${r.resType}`)
  }
  assert.equal(xmlXapi.pool.$ref, xapi.pool.$ref)
  assert.equal(byType(xmlXapi, 'VM').length, byType(xapi, 'VM').length)
})

test('XML-RPC: events (timeout sent as a double), Async tasks and errors', async () => {
  // change made by the JSON-RPC connector's session, seen by the XML-RPC one
  const ref = await xapi.call('VM.clone', templateRef, 'node-xml-evt')
  cleanupVms.push(ref)
  await waitFor('add event over XML-RPC', () => xmlXapi.getObjectByRef(ref, undefined))
  await xapi.call('VM.add_to_other_config', ref, 'k', 'v')
  await waitFor('mod event over XML-RPC', () => xmlXapi.getObjectByRef(ref, {}).other_config?.k === 'v')
  assert.deepEqual(xmlXapi.fetchErrors.map(String), [], 'no event.from error over XML-RPC')

  const aref = await Promise.race([
    xmlXapi.callAsync('VM.clone', templateRef, 'node-xml-async'),
    sleep(WAIT_MS).then(() => Promise.reject(new Error('callAsync timed out'))),
  ])
  cleanupVms.push(aref)
  assert.match(aref, REF_RE)

  const bad = 'OpaqueRef:00000000-0000-0000-0000-000000000bad'
  await assert.rejects(xmlXapi.call('VM.get_record', bad), e => {
    assert.equal(e.code, 'HANDLE_INVALID')
    assert.deepEqual(e.params, ['VM', bad])
    return true
  })
  await assert.rejects(xmlXapi.call('VM.get_name_label'), { code: 'MESSAGE_PARAMETER_COUNT_MISMATCH' })
})

test('disconnect logs the session out', async () => {
  for (const c of [xapi, xmlXapi]) {
    const sid = c.sessionId
    await c.disconnect()
    assert.equal(c.status, 'disconnected')
    // the logout is fire-and-forget in the connector: wait for it
    await waitFor('session.logout of ' + sid, async () => {
      try {
        await raw('session.get_this_host', [sid, sid])
        return false
      } catch (e) {
        return e.code === 'SESSION_INVALID'
      }
    })
  }
})
