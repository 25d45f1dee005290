// What the UI knows of the host: every object of the classes it shows, kept
// current by one event.from long poll (token "" first: all objects as "add";
// then each answer's token). No polling, no reload. Also the errors to show,
// the tasks this UI started, and the session's role.
import { reactive, shallowReactive, watch } from 'vue'
import { NULL_REF, Session, XapiError, roleLevel, sessionRole, type Rec, type Ref, type Role } from './xapi'

export const CLASSES = [
  'pool', 'host', 'host_metrics', 'VM', 'VM_metrics', 'VM_guest_metrics', 'SR', 'PBD', 'VDI', 'VBD',
  'VIF', 'network', 'PIF', 'task', 'console',
] as const
export type ClassName = (typeof CLASSES)[number]

export interface ShownError {
  id: number
  code: string
  params: string[]
  what: string
}

type Tables = { [K in ClassName]: Record<Ref, Rec> }

function emptyTables(): Tables {
  const t = {} as Tables
  for (const c of CLASSES) t[c] = shallowReactive({}) as Record<Ref, Rec>
  return t
}

export const state = reactive({
  session: null as Session | null,
  role: 'read-only' as Role,
  db: emptyTables(),
  loaded: false,
  connected: false,
  errors: [] as ShownError[],
  confirm: null as null | { text: string; resolve: (ok: boolean) => void },
})

let errorId = 1
export function showError(what: string, e: unknown): void {
  const err = e instanceof XapiError ? e : new XapiError('CLIENT_ERROR', [String((e as Error)?.message ?? e)])
  state.errors.push({ id: errorId++, code: err.code, params: err.params, what })
  if (state.errors.length > 5) state.errors.shift()
}

export function dismissError(id: number): void {
  state.errors = state.errors.filter((e) => e.id !== id)
}

// The in-page confirmation dialog (no window.confirm: it blocks the page).
export function confirmAction(text: string): Promise<boolean> {
  return new Promise((resolve) => {
    state.confirm = { text, resolve }
  })
}

export function can(role: Role): boolean {
  return roleLevel(state.role) >= roleLevel(role)
}

// Runs a call and reports its failure as an error line; answers its result or undefined.
export async function act<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
  try {
    return await f()
  } catch (e) {
    showError(what, e)
    return undefined
  }
}

export function rec(cls: ClassName, ref: Ref | undefined | null): Rec | undefined {
  if (!ref || ref === NULL_REF) return undefined
  return state.db[cls][ref]
}

// ------------------------------------------------------------ the event loop

let loopGeneration = 0

// Events name their class in lower case ("vm", "vm_guest_metrics"), as xapi does.
const CLASS_BY_LOWER: Record<string, ClassName> = Object.fromEntries(CLASSES.map((c) => [c.toLowerCase(), c]))

function apply(ev: Rec): void {
  const cls = CLASS_BY_LOWER[String(ev.class).toLowerCase()]
  const table = cls && state.db[cls]
  if (!table) return
  if (ev.operation === 'del') delete table[ev.ref]
  else if (ev.snapshot) table[ev.ref] = ev.snapshot
}

async function eventLoop(s: Session, gen: number): Promise<void> {
  let token = ''
  let backoff = 500
  while (gen === loopGeneration) {
    try {
      const r = await s.call('event.from', [...CLASSES], token, 30.0)
      if (gen !== loopGeneration) return
      for (const ev of r.events) apply(ev)
      token = r.token
      state.loaded = true
      state.connected = true
      backoff = 500
    } catch (e) {
      if (gen !== loopGeneration) return
      state.connected = false
      if (e instanceof XapiError && e.code === 'SESSION_INVALID') {
        showError('the session ended', e)
        logout()
        return
      }
      if (e instanceof XapiError && e.code === 'EVENTS_LOST') token = ''
      await new Promise((r) => setTimeout(r, backoff))
      backoff = Math.min(backoff * 2, 10000)
    }
  }
}

export async function startSession(s: Session): Promise<void> {
  state.db = emptyTables()
  state.loaded = false
  state.session = s
  state.role = await sessionRole(s)
  const gen = ++loopGeneration
  void eventLoop(s, gen)
}

export function logout(): void {
  loopGeneration++
  const s = state.session
  state.session = null
  state.db = emptyTables()
  state.loaded = false
  if (s) void s.logout()
}

// ------------------------------------------------------------ helpers

export function sortedByName(t: Record<Ref, Rec>, keep: (r: Rec) => boolean): [Ref, Rec][] {
  return Object.entries(t)
    .filter(([, r]) => keep(r))
    .sort((a, b) => String(a[1].name_label).localeCompare(String(b[1].name_label)))
}

export function isVm(r: Rec): boolean {
  return !r.is_a_template && !r.is_a_snapshot && !r.is_control_domain
}

// ------------------------------------------------------------ tasks

// A task's result is XML-RPC encoded ("<value>OpaqueRef:…</value>").
function taskResult(r: string): string {
  const m = /<value>(?:<string>)?([^<]*)(?:<\/string>)?<\/value>/.exec(String(r ?? ''))
  return m ? m[1] : String(r ?? '')
}

// Resolves with the task's record once it is no longer pending. The record
// comes from the event stream; a slow check of task.get_record covers a host
// whose event.from does not show this session its tasks.
function waitTask(task: Ref): Promise<Rec> {
  return new Promise((resolve) => {
    let timer = 0
    const check = () => {
      const t = state.db.task[task]
      if (t && t.status !== 'pending') {
        clearInterval(timer)
        stopWatch()
        resolve(t)
      }
    }
    const stopWatch = watch(() => state.db.task[task]?.status, check)
    timer = window.setInterval(async () => {
      try {
        const t = await state.session!.call('task.get_record', task)
        if (t.status !== 'pending') state.db.task[task] = t
        check()
      } catch {
        /* gone or no session: keep waiting for the event */
      }
    }, 5000)
    check()
  })
}

// Runs Async.<method> and waits for its task; errors are shown with their
// XenAPI code and parameters. Answers the task's result (a ref, usually) or
// undefined on failure.
export async function runTask(what: string, method: string, ...args: unknown[]): Promise<string | undefined> {
  const s = state.session
  if (!s) return undefined
  try {
    let task: Ref
    try {
      task = await s.callAsync(method, ...args)
    } catch (e) {
      if (e instanceof XapiError && e.code === 'MESSAGE_METHOD_UNKNOWN') return String(await s.call(method, ...args))
      throw e
    }
    const t = await waitTask(task)
    if (t.status === 'success') return taskResult(t.result)
    const info: string[] = (t.error_info ?? []).map(String)
    throw new XapiError(info[0] ?? (t.status === 'cancelled' ? 'TASK_CANCELLED' : 'INTERNAL_ERROR'), info.slice(1))
  } catch (e) {
    showError(what, e)
    return undefined
  }
}

// The records behind a list of refs (a VM's VBDs, ...), skipping unknown ones.
export function pairs(cls: ClassName, refs: Ref[] | undefined, by = ''): [Ref, Rec][] {
  const out: [Ref, Rec][] = []
  for (const r of refs ?? []) {
    const x = rec(cls, r)
    if (x) out.push([r, x])
  }
  if (by) out.sort((a, b) => String(a[1][by]).localeCompare(String(b[1][by]), undefined, { numeric: true }))
  return out
}
