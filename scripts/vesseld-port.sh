# scripts/vesseld-port.sh - sourced by shell tests and benches that start vesseld
# with --listen 127.0.0.1:0: the port it picked, read from its "vesseld.ready"
# log line.
#
#   vesseld_port LOG PID [TENTHS]   prints the port, or nothing when vesseld
#                                   exited or was not ready within TENTHS/10 s
#                                   (default 100 tenths)
vesseld_port() {
  local log=$1 pid=$2 tenths=${3:-100} port=
  for _ in $(seq "$tenths"); do
    port=$(sed -n 's/.*vesseld\.ready.* http_port=\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  printf '%s' "$port"
}
