# shellcheck shell=bash disable=SC2034  # lw_error is for the scripts that source this
# File safety for lockwatch's scripts, sourced by them. They run as root, so
# a directory they keep state in must be one nobody else can write (else
# another user could plant a symbolic link there and have root overwrite any
# file, or plant a kernel), and nothing they write may go through a symbolic
# link that was planted before. The rules, in tools/vm/README.md:
#   - a cache or state directory is created mode 0700; an existing one must
#     belong to the user running the script and be writable by nobody else,
#     and every directory above it must belong to root or that user and be
#     writable by nobody else unless sticky (/tmp), since whoever can write a
#     directory can rename what is in it;
#   - a file is written to a temporary file in its directory and renamed
#     into place, or created afresh with O_EXCL (bash's noclobber); a
#     symbolic link or a non-regular file where a file goes is refused.
# Every function returns non-zero with a one-line reason in $lw_error that
# says what to do; the caller dies with it under its own name and status.

lw_error=''

# The cache root every script shares, and what to do when it is unsafe.
lw_cache_root() {
    printf '%s\n' "${LOCKWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockwatch}"
}
lw_cache_hint='use a directory of your own (LOCKWATCH_CACHE=DIR)'

# Checks $1 (absolute, existing) and each directory on the way to it, both
# as written and with symbolic links resolved: a link in the way must belong
# to root or us (its target is checked with the resolved path), a directory
# above must belong to root or us and be writable by nobody else unless
# sticky. With $2 = final, $1 itself must be a directory that belongs to us
# and that nobody else can write; with $2 = above, $1 lies above the
# directory $3 that is wanted. $4: what to do instead.
lw__check_path() {
    local path=$1 kind=$2 want=${3:-$1} hint=${4:-use a directory of your own} resolved p i
    resolved=$(realpath -e -- "$path" 2>/dev/null) || {
        lw_error="refusing to use $want: it cannot be resolved (a dangling symbolic link?)"
        return 1
    }
    local -a paths=() kinds=()
    for p in "$path" "$resolved"; do
        local prefix='' comp
        local -a comps=()
        IFS=/ read -r -a comps <<<"${p#/}"
        paths+=(/) kinds+=(above)
        for comp in "${comps[@]}"; do
            [[ -n $comp ]] || continue
            prefix+=/$comp
            paths+=("$prefix") kinds+=(above)
        done
        kinds[${#kinds[@]} - 1]=$kind
    done
    local -a stats=()
    mapfile -t stats < <(stat -c '%F|%u|%a' -- "${paths[@]}" 2>/dev/null || true)
    ((${#stats[@]} == ${#paths[@]})) || {
        lw_error="refusing to use $want: cannot inspect the directories above it"
        return 1
    }
    for i in "${!paths[@]}"; do
        lw__check_one "$want" "${paths[i]}" "${kinds[i]}" "${stats[i]}" "$hint" || return 1
    done
}

# One entry of lw__check_path: $1 the directory asked for, $2 the entry,
# $3 above|final, $4 "type|uid|octal mode", $5 what to do instead.
lw__check_one() {
    local want=$1 p=$2 kind=$3 hint=$5 type uid mode
    IFS='|' read -r type uid mode <<<"$4"
    mode=$((8#$mode))
    if [[ $type == 'symbolic link' ]]; then
        ((uid == 0 || uid == EUID)) && return 0
        lw_error="refusing to use $want: the symbolic link $p on the way belongs to uid $uid; $hint"
        return 1
    fi
    if [[ $kind == final ]]; then
        [[ $type == directory ]] || { lw_error="refusing to use $want: it is not a directory"; return 1; }
        if ((uid != EUID)); then
            lw_error="refusing to use $want: it belongs to uid $uid, not to you (uid $EUID); remove it, or $hint"
            return 1
        fi
        if ((mode & 8#022)); then
            lw_error="refusing to use $want: it is writable by group or others (mode $(printf %04o "$mode")); run chmod go-w '$want'"
            return 1
        fi
        return 0
    fi
    if ((uid != 0 && uid != EUID)); then
        lw_error="refusing to use $want: $p above it belongs to uid $uid, who could replace it; $hint"
        return 1
    fi
    if ((mode & 8#022 && !(mode & 8#1000))); then
        lw_error="refusing to use $want: $p above it is writable by group or others without the sticky bit (mode $(printf %04o "$mode")); run chmod go-w '$p', or $hint"
        return 1
    fi
}

# lw_safe_dir DIR [HINT]: DIR made (mode 0700, with what is missing above
# it) and checked as above. HINT: what to do instead, for the messages.
lw_safe_dir() {
    local dir=$1 hint=${2:-} top
    [[ $dir == /* ]] || dir=$PWD/$dir
    top=$dir
    while [[ ! -e $top && ! -L $top ]]; do
        top=${top%/*}
        [[ -n $top ]] || top=/
    done
    if [[ $top != "$dir" ]]; then
        # What exists must be safe before anything is made under it.
        lw__check_path "$top" above "$dir" "$hint" || return 1
        (umask 077 && mkdir -p -- "$dir") 2>/dev/null || {
            lw_error="cannot create the directory $dir"
            return 1
        }
    fi
    lw__check_path "$dir" final "$dir" "$hint"
}

# lw_check_dir DIR [HINT]: like lw_safe_dir for a DIR that may exist; makes
# nothing.
lw_check_dir() {
    local dir=$1 hint=${2:-}
    [[ $dir == /* ]] || dir=$PWD/$dir
    [[ -e $dir || -L $dir ]] || return 0
    lw__check_path "$dir" final "$dir" "$hint"
}

# lw_check_file FILE: FILE is absent or a regular file (never a symbolic
# link, whatever it points to).
lw_check_file() {
    if [[ -L $1 ]]; then
        lw_error="refusing to write $1: it is a symbolic link; remove it"
        return 1
    fi
    if [[ -e $1 && ! -f $1 ]]; then
        lw_error="refusing to write $1: it is not a regular file; remove it"
        return 1
    fi
}

# lw_write_file FILE [MODE]: standard input into FILE through a temporary
# file in FILE's directory, renamed over it (rename replaces a link, never
# writes through it). MODE defaults to 0644.
lw_write_file() {
    local file=$1 mode=${2:-0644} tmp
    lw_check_file "$file" || return 1
    tmp=$(mktemp -- "$file.XXXXXX" 2>/dev/null) || {
        lw_error="cannot write $file: cannot create a temporary file beside it"
        return 1
    }
    if ! cat >"$tmp" || ! chmod "$mode" -- "$tmp" || ! mv -fT -- "$tmp" "$file"; then
        rm -f -- "$tmp"
        lw_error="cannot write $file"
        return 1
    fi
}

# lw_create_file FILE: FILE created empty and new (O_EXCL: a link planted
# between the check and the creation makes it fail, never followed); an
# older regular file is removed first.
lw_create_file() {
    local file=$1
    lw_check_file "$file" || return 1
    rm -f -- "$file" 2>/dev/null
    if ! (set -C && : >"$file") 2>/dev/null; then
        lw_error="cannot create $file (something else created it meanwhile, or no permission)"
        return 1
    fi
}
