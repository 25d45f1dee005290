# cli/xe-completion.bash - bash completion for xe.
#
# Commands come from `xe help --all --minimal`, a command's parameter names
# from `xe help --minimal <command>` (neither needs a server), and uuids are
# fetched live with `xe <class>-list --minimal` when completing uuid= or
# <class>-uuid=. Install: source it, or copy to
# /usr/share/bash-completion/completions/xe.

_xe_commands=""

_xe()
{
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local xe="${COMP_WORDS[0]}"
    COMPREPLY=()
    # the command: the first word that is not an option or key=value
    local cmd="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -s|-p|-u|-pw|-pwf|--unix) ((i++)) ;;
            -*|*=*) ;;
            *) cmd="$w"; break ;;
        esac
    done
    if [[ -z "$cmd" ]]; then
        [[ -z "$_xe_commands" ]] && _xe_commands="$("$xe" help --all --minimal 2>/dev/null | tr ',' ' ')"
        COMPREPLY=($(compgen -W "$_xe_commands" -- "$cur"))
        return 0
    fi
    if [[ "$cur" == *=* ]]; then
        local key="${cur%%=*}" val="${cur#*=}" cls=""
        case "$key" in
            uuid) cls="${cmd%%-*}"
                  case "$cmd" in vm-metrics-*|vm-guest-metrics-*|host-metrics-*|host-cpu-*|vbd-metrics-*|vif-metrics-*|pif-metrics-*|pool-update-*)
                      cls="${cmd%-param-*}"; cls="${cls%-list}" ;; esac ;;
            *-uuid) cls="${key%-uuid}" ;;
            vm|template) cls="vm" ;;
            on) cls="host" ;;
            mode|type|force|paused|shared|bootable)
                local vals=""
                case "$cmd:$key" in
                    pif-reconfigure-ip:mode) vals="static dhcp none" ;;
                    vbd-create:mode) vals="RW RO" ;;
                    vbd-create:type) vals="Disk CD" ;;
                    vdi-create:type) vals="user system suspend crashdump ephemeral" ;;
                    sr-create:type) vals="ext file" ;;
                    *:force|*:paused|*:shared|*:bootable) vals="true false" ;;
                esac
                COMPREPLY=($(compgen -P "$key=" -W "$vals" -- "$val"))
                return 0 ;;
            param-name)
                local fields
                fields="$("$xe" help --minimal "${cmd%-param-*}-list" 2>/dev/null | tr ',' '\n' | grep -v '^--' | grep -v '^params$')"
                COMPREPLY=($(compgen -P "$key=" -W "$fields" -- "$val"))
                return 0 ;;
            *) return 0 ;;
        esac
        local uuids
        uuids="$("$xe" "$cls-list" --minimal 2>/dev/null | tr ',' ' ')"
        COMPREPLY=($(compgen -P "$key=" -W "$uuids" -- "$val"))
        return 0
    fi
    local params
    params="$("$xe" help --minimal "$cmd" 2>/dev/null | tr ',' '\n' | grep -v '^<' | sed -e '/^--/!s/[^:]$/&=/')"
    COMPREPLY=($(compgen -W "$params" -- "$cur"))
    # no space after key= or map-key:
    compopt -o nospace 2>/dev/null
    return 0
}
complete -F _xe xe
