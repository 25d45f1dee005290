// The XenAPI over JSON-RPC (POST /jsonrpc on the page's own origin), as any
// XenAPI host serves it: {"jsonrpc":"2.0","method","params","id"} in, the
// result or {"error":{"message":CODE,"data":[params]}} out.
//
// The session reference is a bearer token: it lives in this module's memory
// and in sessionStorage (so a reload of the tab keeps it, a new tab or a closed
// browser does not); never in localStorage or a cookie.

export type Ref = string
export type Rec = Record<string, any>

export const NULL_REF = 'OpaqueRef:NULL'
const STORAGE_KEY = 'vessel.session'

export class XapiError extends Error {
  code: string
  params: string[]
  constructor(code: string, params: string[]) {
    super(params.length ? `${code}: ${params.join(', ')}` : code)
    this.code = code
    this.params = params
  }
}

let nextId = 1

export async function rpc(method: string, params: unknown[], signal?: AbortSignal): Promise<any> {
  let resp: Response
  try {
    resp = await fetch('/jsonrpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', method, params, id: nextId++ }),
      credentials: 'omit',
      signal,
    })
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e
    throw new XapiError('CONNECTION_FAILED', [String((e as Error).message ?? e)])
  }
  if (!resp.ok) throw new XapiError('HTTP_ERROR', [String(resp.status), resp.statusText])
  const body = await resp.json()
  if (body.error) {
    const err = body.error
    const data = Array.isArray(err.data) ? err.data.map(String) : err.data ? [String(err.data)] : []
    throw new XapiError(String(err.message ?? err.code ?? 'INTERNAL_ERROR'), data)
  }
  return body.result
}

export class Session {
  ref: Ref
  user: string
  constructor(ref: Ref, user: string) {
    this.ref = ref
    this.user = user
  }
  call(method: string, ...args: unknown[]): Promise<any> {
    return rpc(method, [this.ref, ...args])
  }
  // Async.<method>: answers a task ref at once; the store follows the task.
  callAsync(method: string, ...args: unknown[]): Promise<Ref> {
    return rpc('Async.' + method, [this.ref, ...args])
  }

  static async login(user: string, password: string): Promise<Session> {
    const ref = await rpc('session.login_with_password', [user, password, '2.21', 'vessel-ui'])
    const s = new Session(ref, user)
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ ref, user }))
    return s
  }

  static async resume(): Promise<Session | null> {
    const saved = sessionStorage.getItem(STORAGE_KEY)
    if (!saved) return null
    try {
      const { ref, user } = JSON.parse(saved)
      const s = new Session(ref, user)
      await s.call('session.get_this_host', ref) // still valid?
      return s
    } catch {
      sessionStorage.removeItem(STORAGE_KEY)
      return null
    }
  }

  async logout(): Promise<void> {
    sessionStorage.removeItem(STORAGE_KEY)
    try {
      await rpc('session.logout', [this.ref])
    } catch {
      /* already gone */
    }
  }
}

// Roles, least to most powerful, as xapi orders them (ocaml/idl/datamodel_roles.ml).
export const ROLES = ['read-only', 'vm-operator', 'vm-admin', 'vm-power-admin', 'pool-operator', 'pool-admin'] as const
export type Role = (typeof ROLES)[number]

export function roleLevel(r: string): number {
  return ROLES.indexOf(r as Role)
}

// The session's strongest role: the local superuser (no subject) has them
// all; otherwise the subject's roles, by name. session.get_rbac_permissions
// is not relied on (some hosts answer it with an empty list).
export async function sessionRole(s: Session): Promise<Role> {
  try {
    if (await s.call('session.get_is_local_superuser', s.ref)) return 'pool-admin'
  } catch {
    /* older hosts: fall through */
  }
  let subject: Ref
  try {
    subject = await s.call('session.get_subject', s.ref)
  } catch {
    return 'read-only'
  }
  if (!subject || subject === NULL_REF) return 'pool-admin'
  let best = 0
  try {
    const roles: Ref[] = await s.call('subject.get_roles', subject)
    for (const r of roles) {
      const name: string = await s.call('role.get_name_label', r)
      best = Math.max(best, roleLevel(name))
    }
  } catch {
    return 'read-only'
  }
  return ROLES[best]
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let i = 0
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}
