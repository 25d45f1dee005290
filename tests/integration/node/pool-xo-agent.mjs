// Vessel integration test helper: Xen Orchestra's `xen-api` connector (npm)
// held open on a pool while tests/integration/test_pool_xo.py changes the
// pool, kills its master and asks what the connector's object cache saw.
//
// One JSON object a line on stdin (a command), one a line on stdout (its
// answer, {ok: true, ...} or {ok: false, error}). Times are wall-clock
// milliseconds (Date.now()), comparable with the caller's time.time().
//
//   {cmd: 'connect', url, password}   connect, wait for the first full fetch
//   {cmd: 'view'}                     the cache: pool.master, the hosts and
//                                     what each one has, refs of each class
//   {cmd: 'wait', type, ref, fields, since, timeout}
//                                     when the cache first held the object
//                                     with those field values at or after
//                                     `since` (waits up to `timeout` ms)
//   {cmd: 'state'}                    status, URL history, errors, reconnects
//   {cmd: 'events', since}            when event.from returned since `since`
//   {cmd: 'reconnect', timeout}       disconnect, then connect until it works
//   {cmd: 'compare'}                  the cache against get_all_records now
//   {cmd: 'quit'}
//
// The environment names the connector's install: XO_NODE_MODULES (the
// node_modules folder tests/integration/run-node.sh fills with `npm ci`).
//
// The connector is left to itself as xo-server leaves it
// (xo-server/src/xo-mixins/xen-servers.mjs): when its host is gone, its
// event loop reports eventFetchingError and calls event.from again on the
// same URL after eventPollDelay, forever; xo-server only marks the pool
// disconnected until an event.from succeeds again. It logs in again only on
// connect() (a server reconnected in XO) or when a call answers
// SESSION_INVALID; a login answered HOST_IS_SLAVE [address] is retried with
// the URL's hostname replaced by that address, protocol and port unchanged
// (index.mjs _sessionOpenRetryOptions). 'reconnect' is that connect().
import path from 'node:path'
import readline from 'node:readline'
import { pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const modules = process.env.XO_NODE_MODULES
if (!modules) throw new Error('XO_NODE_MODULES must name the connector\'s node_modules')
const { createClient } = await import(pathToFileURL(path.join(modules, 'xen-api', 'index.mjs')).href)

let xapi
const history = [] // {t, type, ref, obj}: every add or update the cache made
const eventReturns = [] // Date.now() when an event.from answered
const fetchErrors = [] // {t, error}: the connector's event loop failures
const urls = [] // {t, hostname}: every URL the connector took
const reconnects = [] // {t, done, errors: [..]}
const taskRefetches = [] // Date.now() of each refetch of every task
let pending = [] // waiters woken by every cache change

const errText = e => (e?.code ? `${e.code}${e.params ? ' ' + JSON.stringify(e.params) : ''}` : String(e?.message ?? e))

function record(items) {
  const t = Date.now()
  for (const obj of Object.values(items)) history.push({ t, type: obj.$type, ref: obj.$ref, obj })
  const w = pending
  pending = []
  w.forEach(wake => wake())
}

async function reconnect({ timeout }) {
  const r = { t: Date.now(), errors: [] }
  reconnects.push(r)
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      await xapi.disconnect()
      await xapi.connect()
      break
    } catch (e) {
      r.errors.push(errText(e))
      if (Date.now() > deadline) throw e
      await sleep(200)
    }
  }
  r.done = Date.now()
  r.hostname = xapi._url.hostname
  return { hostname: r.hostname }
}

async function connect({ url, password }) {
  xapi = createClient({
    url,
    auth: { user: 'root', password },
    allowUnauthorized: true, // each host's own self-signed certificate
    debounce: 200, // the connector's default pause between two event.from calls
    eventPollDelay: 200, // the default is a minute between two retries of event.from
  })
  urls.push({ t: Date.now(), hostname: xapi._url.hostname })
  const setUrl = xapi._setUrl.bind(xapi)
  xapi._setUrl = u => {
    urls.push({ t: Date.now(), hostname: u.hostname })
    setUrl(u)
  }
  // the event loop fetches every task again when event.from's
  // valid_ref_counts.task differs from the number of tasks in its cache
  const refresh = xapi._refreshCachedRecords.bind(xapi)
  xapi._refreshCachedRecords = types => {
    if (types.length === 1 && types[0] === 'task') taskRefetches.push(Date.now())
    return refresh(types)
  }
  xapi.objects.on('add', record)
  xapi.objects.on('update', record)
  xapi.on('eventFetchingSuccess', () => eventReturns.push(Date.now()))
  xapi.on('eventFetchingError', e => fetchErrors.push({ t: Date.now(), error: errText(e) }))
  await xapi.connect()
  await xapi.objectsFetched
  return { hostname: xapi._url.hostname }
}

const byType = type => Object.values(xapi.objects.indexes.type[type] ?? {})

function view() {
  const vms = byType('VM')
  const hosts = {}
  for (const h of byType('host')) {
    const metrics = xapi.getObjectByRef(h.metrics, undefined)
    hosts[h.$ref] = {
      uuid: h.uuid,
      address: h.address,
      metrics: h.metrics,
      live: metrics?.live,
      PIFs: h.PIFs,
      PBDs: h.PBDs,
      control_domains: vms.filter(v => v.is_control_domain && v.resident_on === h.$ref).map(v => v.$ref),
      resident_VMs: vms.filter(v => !v.is_control_domain && v.resident_on === h.$ref).map(v => v.$ref),
    }
  }
  const refs = {}
  for (const type of ['host_metrics', 'PIF', 'PBD', 'SR', 'VM', 'VDI']) refs[type] = byType(type).map(o => o.$ref)
  const pbds = {}
  for (const p of byType('PBD')) pbds[p.$ref] = { host: p.host, SR: p.SR }
  const srs = {}
  for (const s of byType('SR')) srs[s.$ref] = { local: s.other_config?.['vessel-local'] === 'true' }
  return { master: xapi.pool?.master, hosts, refs, pbds, srs }
}

// barrier()'s own keys, which it removes after their event came back
const noBarrierKeys = m => Object.fromEntries(Object.entries(m ?? {}).filter(([k]) => !k.startsWith('xo:barrier:')))

// XenAPI sets have no order: two hosts list a host's host_CPUs (a set made
// from the host_cpu records that name it) in their own orders
const canon = v => JSON.stringify(Array.isArray(v) ? [...v].sort() : v)

// The cache against a fresh get_all_records of every class: what the event
// stream missed (an object, a deletion, a field's last change)
async function compare() {
  // every change made before this call is in the cache once a change made
  // now has come back through the event loop
  await xapi.barrier()
  const diffs = []
  for (const type of xapi._types) {
    let records
    try {
      records = await xapi.call(`${type}.get_all_records`)
    } catch (e) {
      continue // MESSAGE_REMOVED and the like: the connector skips them too
    }
    const cached = Object.fromEntries(byType(type).map(o => [o.$ref, o]))
    for (const [ref, rec] of Object.entries(records)) {
      const c = cached[ref]
      if (c === undefined) {
        diffs.push({ type, ref, missing: true })
        continue
      }
      for (const [k, v] of Object.entries(rec)) {
        let [a, b] = [c[k], v]
        if (type === 'pool' && k === 'other_config') [a, b] = [a, b].map(noBarrierKeys)
        if (canon(a) !== canon(b)) diffs.push({ type, ref, field: k, cache: c[k], now: v })
      }
    }
    for (const ref of Object.keys(cached)) if (!(ref in records)) diffs.push({ type, ref, stale: true })
  }
  return { diffs }
}

function matches(obj, fields) {
  return Object.entries(fields).every(([k, v]) => obj[k] === v)
}

async function wait({ type, ref, fields, since, timeout }) {
  const deadline = Date.now() + timeout
  for (;;) {
    const hit = history.find(h => h.t >= since && h.type === type && h.ref === ref && matches(h.obj, fields))
    if (hit) return { t: hit.t }
    const left = deadline - Date.now()
    if (left <= 0) {
      const now = xapi.getObjectByRef(ref, undefined)
      return { timeout: true, current: now ? Object.fromEntries(Object.keys(fields).map(k => [k, now[k]])) : null }
    }
    await Promise.race([new Promise(resolve => pending.push(resolve)), sleep(Math.min(left, 100))])
  }
}

function state() {
  return {
    status: xapi.status,
    hostname: xapi._url.hostname,
    urls,
    fetchErrors: fetchErrors.slice(-20),
    reconnects,
    taskRefetches,
  }
}

async function quit() {
  if (xapi !== undefined) {
    await xapi.disconnect().catch(() => {})
    // the pending event.from long poll would keep the process alive
    await xapi._undiciDispatcher.destroy().catch(() => {})
  }
  return {}
}

const commands = {
  connect,
  view,
  wait,
  state,
  events: ({ since }) => ({ returns: eventReturns.filter(t => t >= since) }),
  reconnect,
  compare,
  quit,
}

// warnings of the connector (its event loop's errors) go to stderr, which
// the test keeps in a log file
console.warn = (...args) => console.error('warn:', ...args.map(a => (a instanceof Error ? errText(a) : String(a))))

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  let answer
  let req = {}
  try {
    req = JSON.parse(line)
    const f = commands[req.cmd]
    if (!f) throw new Error('unknown command ' + req.cmd)
    answer = { ok: true, ...(await f(req)) }
  } catch (e) {
    answer = { ok: false, error: errText(e) }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
  if (req.cmd === 'quit') break
}
process.exit(0)
