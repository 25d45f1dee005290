// Hash routes (#/vm/OpaqueRef:...): the server serves one page, and a link
// copied to another tab works once logged in there.
import { ref } from 'vue'

export interface Route {
  kind: string // 'home' | 'vm' | 'sr' | 'host' | 'pool' | 'network' | 'new-vm' | 'tasks'
  ref: string
}

function parse(): Route {
  const [, kind = 'home', r = ''] = location.hash.replace(/^#/, '').split('/')
  return { kind: kind || 'home', ref: decodeURIComponent(r) }
}

export const route = ref<Route>(parse())
window.addEventListener('hashchange', () => (route.value = parse()))

export function href(kind: string, r = ''): string {
  return r ? `#/${kind}/${encodeURIComponent(r)}` : `#/${kind}`
}

export function go(kind: string, r = ''): void {
  location.hash = href(kind, r)
}
