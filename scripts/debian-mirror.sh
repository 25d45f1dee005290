# scripts/debian-mirror.sh - sourced: the Debian mirror this machine's apt uses.

# The first deb.debian.org-style URI apt uses for suite $1 (deb822 .sources
# first, then the one-line format); VESSEL_DEBIAN_MIRROR overrides it.
debian_mirror() {
    local suite=$1
    [ -n "${VESSEL_DEBIAN_MIRROR:-}" ] && { echo "$VESSEL_DEBIAN_MIRROR"; return; }
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v s="$suite" '
            /^[ \t]*$/ { if (uri != "" && ok) exit; uri = ""; ok = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END { if (uri != "" && ok) print uri }' "$f"
    done | head -n 1 | grep . && return
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] && awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }' "$f"
    done | head -n 1 | grep . && return
    echo http://deb.debian.org/debian
}
