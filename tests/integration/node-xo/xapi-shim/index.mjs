// parseDateTime as xo-server uses it: a XenAPI datetime ("20261206T15:18:24Z",
// as host.get_servertime answers over JSON-RPC) to unix seconds.
export function parseDateTime(input) {
  if (typeof input === 'number') return input || null
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2}):(\d{2}):(\d{2})Z?$/.exec(String(input))
  if (m === null) throw new RangeError(`unable to parse XAPI datetime ${JSON.stringify(input)}`)
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1e3
}
