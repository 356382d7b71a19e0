#!/usr/bin/env bash
# Install every Debian package that lockwatch's build, tests and test VM need
# (listed in tools/debian-packages.txt). Idempotent: prints nothing and makes
# no network access when everything is already installed. Builds nothing.
#
# Usage: tools/setup.sh            (as root, or with sudo available)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list="$here/debian-packages.txt"

die() { echo "setup.sh: $*" >&2; exit 1; }

[[ -r $list ]] || die "package list $list not found"
for tool in dpkg-query apt-get; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: this script needs Debian 12 (bookworm) or a derivative"
done

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$' | sort -u)
((${#wanted[@]})) || die "package list $list is empty"

# One dpkg-query call; packages it does not know are simply not printed.
declare -A installed=()
while read -r pkg status; do
    [[ $status == ii* ]] && installed[${pkg%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${wanted[@]}" 2>/dev/null || true)
missing=()
for pkg in "${wanted[@]}"; do
    [[ -n ${installed[$pkg]:-} ]] || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
        die "not root and sudo not found; run as root to install: ${missing[*]}"
    sudo=(sudo)
fi

echo "setup.sh: installing ${#missing[@]} package(s): ${missing[*]}" >&2
log=$(mktemp "${TMPDIR:-/tmp}/lockwatch-setup.XXXXXX.log")
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1; then
    die "apt-get update failed (network or sources.list?); log: $log"
fi
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    err=$(grep -E '^E: ' "$log" | head -n1 || true)
    die "apt-get install failed${err:+: $err}; log: $log"
fi
rm -f "$log"
echo "setup.sh: done" >&2
