#!/usr/bin/env bash
# Build lockwatch's test kernels from Debian's linux-source-6.1.
#
#   build-kernel.sh seed|lockdep [--jobs N]
#
#   seed     the seed bug put back (seed-bug.patch), tinyconfig + seed.config,
#            no lockdep: the kernel lockwatch must catch the bug on.
#   lockdep  the same tree with lockdep.config added (PROVE_LOCKING): lockdep
#            itself reports the seed bug there.
#
# Results are cached in
#   ${LOCKWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockwatch}/kernels/<flavor>-<key>/
# holding bzImage, vmlinux (with DWARF and BTF), System.map and config, and,
# when the config has loadable modules, modules/lib/modules/<release>/ (the
# modules_install tree, stripped of DWARF but keeping their BTF).
# <key> is the first 16 hex digits of a sha256 over the flavor, the source
# package's Debian version, and the sha256 of the patch, of the flavor's config
# fragments and of this script (the list is kept in <dir>/inputs). A run
# whose result is cached only prints it. The O= build tree of each flavor
# (build-<flavor>/) and the patched source (src-<key>/) stay in the cache, so
# a rebuild after a change is incremental.
#
# Progress goes to stderr; the last line on stdout is the bzImage path.
#
# Environment:
#   LOCKWATCH_CACHE          cache root (see above)
#   LOCKWATCH_LINUX_SOURCE   source tarball (default: the linux-source-6.1 package's)
set -euo pipefail

readonly PKG=linux-source-6.1
readonly ARCH=x86_64
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
readonly PATCH="$HERE/seed-bug.patch"

die() { echo "build-kernel: error: $*" >&2; exit 1; }
say() { echo "build-kernel: $*" >&2; }
usage() { echo "usage: build-kernel.sh seed|lockdep [--jobs N]" >&2; exit 2; }

flavor=""
jobs="$(nproc 2>/dev/null || echo 1)"
while [[ $# -gt 0 ]]; do
	case "$1" in
	seed|lockdep) [[ -z "$flavor" ]] || usage; flavor="$1" ;;
	--jobs|-j) [[ $# -ge 2 ]] || usage; jobs="$2"; shift ;;
	--jobs=*) jobs="${1#--jobs=}" ;;
	-h|--help) usage ;;
	*) echo "build-kernel: unknown argument: $1" >&2; usage ;;
	esac
	shift
done
[[ -n "$flavor" ]] || usage
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive number, got '$jobs'"

fragments=("$HERE/seed.config")
[[ "$flavor" == lockdep ]] && fragments+=("$HERE/lockdep.config")

# ---- prerequisites --------------------------------------------------------
tarball="${LOCKWATCH_LINUX_SOURCE:-/usr/src/$PKG.tar.xz}"
pkgver="$(dpkg-query -W -f='${Version}' "$PKG" 2>/dev/null || true)"
if [[ -z "${LOCKWATCH_LINUX_SOURCE:-}" ]]; then
	[[ -n "$pkgver" && -f "$tarball" ]] ||
		die "$PKG is not installed (no $tarball): apt-get install $PKG"
else
	[[ -f "$tarball" ]] || die "source tarball $tarball not found"
	# Not the packaged tarball: key on its content instead of a version.
	pkgver="file:$(sha256sum "$tarball" | cut -d' ' -f1)"
fi
for f in "$PATCH" "${fragments[@]}"; do
	[[ -f "$f" ]] || die "missing $f"
done
# Work from a snapshot of the inputs, so that the key always describes what
# was built even when the files change during a build.
snap="$(mktemp -d "${TMPDIR:-/tmp}/lockwatch-kernel.XXXXXX")"
trap 'rm -rf "$snap"' EXIT
cp "$PATCH" "${fragments[@]}" "$SELF" "$snap/"
patch_file="$snap/$(basename "$PATCH")"
self_copy="$snap/$(basename "$SELF")"
for i in "${!fragments[@]}"; do fragments[i]="$snap/$(basename "${fragments[i]}")"; done
# >>> file safety: not part of the cache key
# Lines between markers like these check where this script writes (it runs
# as root) and leave the kernel it builds as it is, so the snapshot that the
# key hashes leaves them out: kernels cached before they changed stay valid.
# Anything that can change what is built belongs outside them.
sed -i '/^# >>> file safety/,/^# <<< file safety/d' "$self_copy"
# <<< file safety
need_tool() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: apt-get install $2"; }
need_tool pahole dwarves
need_tool gcc gcc
need_tool make make
need_tool flex flex
need_tool bison bison
need_tool bc bc
need_tool perl perl
need_tool patch patch
need_tool xz xz-utils
need_tool flock util-linux
[[ -f /usr/include/libelf.h || -f /usr/include/elfutils/libelf.h ]] ||
	die "libelf headers not found (objtool needs them): apt-get install libelf-dev"
[[ -f /usr/include/openssl/ssl.h ]] ||
	die "OpenSSL headers not found: apt-get install libssl-dev"

# ---- cache layout -----------------------------------------------------------
cache="${LOCKWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockwatch}/kernels"
inputs="$(
	echo "flavor $flavor"
	echo "package $PKG $pkgver"
	for f in "$patch_file" "${fragments[@]}" "$self_copy"; do
		echo "file $(basename "$f") $(sha256sum < "$f" | cut -d' ' -f1)"
	done
)"
key="$(sha256sum <<<"$inputs" | cut -c1-16)"
srckey="$(printf 'package %s %s\npatch %s\n' "$PKG" "$pkgver" \
	"$(sha256sum < "$patch_file" | cut -d' ' -f1)" | sha256sum | cut -c1-16)"
out="$cache/$flavor-$key"
src="$cache/src-$srckey"
build="$cache/build-$flavor"
log="$cache/logs/$flavor-$key.log"
# >>> file safety: not part of the cache key
# Only root (or whoever runs this) may write where root builds and keeps
# kernels: another user could plant a symbolic link for a file written
# below, or a kernel. Leftover links where files go are refused.
# shellcheck source=SCRIPTDIR/../lib/safe-files.sh
. "$HERE/../lib/safe-files.sh"
for d in "$(dirname "$cache")" "$cache" "$cache/logs"; do
	lw_safe_dir "$d" "$lw_cache_hint" || die "$lw_error"
done
for d in "$out" "$src" "$build"; do
	lw_check_dir "$d" "$lw_cache_hint" || die "$lw_error"
done
for f in "$cache/.build-$flavor.lock" "$cache/.src.lock" "$log"; do
	lw_check_file "$f" || die "$lw_error"
done
# <<< file safety
mkdir -p "$cache/logs"

result_ok() {
	[[ -f "$1/bzImage" && -f "$1/vmlinux" && -f "$1/System.map" && -f "$1/config" ]] || return 1
	# A config with modules must come with them.
	! grep -q '=m$' "$1/config" || [[ -d "$1/modules/lib/modules" ]]
}
if result_ok "$out"; then
	say "cached $flavor kernel: $out"
	echo "$out/bzImage"
	exit 0
fi

# One build per flavor at a time; the source tree is shared between flavors.
exec 8>"$cache/.build-$flavor.lock"
flock -n 8 || { say "another $flavor build is running; waiting for it"; flock 8; }
if result_ok "$out"; then
	say "cached $flavor kernel: $out"
	echo "$out/bzImage"
	exit 0
fi

started=$SECONDS
phase() { say "[$(( SECONDS - started ))s] $*"; }

run_logged() { # run a command with its output appended to the log
	echo "+ $*" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		echo "----- last 40 lines of $log -----" >&2
		tail -n 40 "$log" >&2
		echo "-----" >&2
		die "$flavor kernel: '$1 ${2:-}...' failed, full log: $log"
	fi
}

: >"$log"
phase "building the $flavor kernel (key $key, $PKG $pkgver, $jobs jobs); log: $log"

# ---- source tree ------------------------------------------------------------
(
	flock 9
	if [[ ! -f "$src/.lockwatch-ready" ]]; then
		phase "extracting $tarball"
		rm -rf "$src" "$src.tmp"
		mkdir -p "$src.tmp"
		run_logged tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
		phase "applying $(basename "$PATCH")"
		run_logged patch -p1 -d "$src.tmp" -i "$patch_file"
		grep -q 'wait_pidfd\.lock' "$src.tmp/fs/proc/base.c" ||
			die "$(basename "$PATCH") applied but fs/proc/base.c has no wait_pidfd.lock"
		touch "$src.tmp/.lockwatch-ready"
		mv "$src.tmp" "$src"
	else
		phase "source tree ready: $src"
	fi
) 9>"$cache/.src.lock"

# ---- configuration ----------------------------------------------------------
mkdir -p "$build"
mk() { run_logged nice -n 10 make -C "$src" O="$build" ARCH="$ARCH" "$@"; }

phase "configuring: tinyconfig + ${fragments[*]##*/}"
mk tinyconfig
run_logged env ARCH="$ARCH" "$src/scripts/kconfig/merge_config.sh" -m -O "$build" \
	"$build/.config" "${fragments[@]}"
mk olddefconfig

# What the fragments asked for (last fragment wins) against what Kconfig kept.
declare -A want=() optional=()
for f in "${fragments[@]}"; do
	while IFS= read -r line; do
		if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
			want[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
		elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
			want[${BASH_REMATCH[1]}]=n
		elif [[ "$line" =~ ^#\ optional:\ (.*)$ ]]; then
			for o in ${BASH_REMATCH[1]}; do optional[$o]=1; done
		fi
	done <"$f"
done
declare -A have=()
while IFS= read -r line; do
	if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		have[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
	fi
done <"$build/.config"
dropped=() skipped=()
for opt in $(printf '%s\n' "${!want[@]}" | sort); do
	w="${want[$opt]}" h="${have[$opt]:-n}"
	[[ "$w" == "$h" ]] && continue
	if [[ -n "${optional[$opt]:-}" ]]; then
		skipped+=("$opt")
	else
		[[ "$h" == n ]] && h="not set"
		dropped+=("$opt=$w (got $h)")
	fi
done
for opt in "${skipped[@]}"; do say "note: optional $opt is not available"; done
if [[ ${#dropped[@]} -gt 0 ]]; then
	for d in "${dropped[@]}"; do echo "  $d" >&2; done
	die "make olddefconfig did not keep ${#dropped[@]} requested option(s), listed above ($build/.config)"
fi
# lockwatch hooks the out-of-line lock functions: none may be inlined.
inlined="$(grep -E '^CONFIG_INLINE_(SPIN|READ|WRITE)_[A-Z_]+=y' "$build/.config" || true)"
[[ -z "$inlined" ]] || die "lock functions would be inlined: $(echo $inlined)"
phase "config checked: ${#want[@]} options kept, no CONFIG_INLINE_{SPIN,READ,WRITE}_*"

# ---- build --------------------------------------------------------------------
phase "make -j$jobs bzImage (nice 10; output in $log)"
mk -j"$jobs" bzImage
with_modules=0
if grep -q '=m$' "$build/.config"; then
	with_modules=1
	phase "make -j$jobs modules"
	mk -j"$jobs" modules
fi

for f in arch/x86/boot/bzImage vmlinux System.map .config; do
	[[ -f "$build/$f" ]] || die "build finished without $f"
done
if command -v readelf >/dev/null 2>&1; then
	sections="$(readelf -S -W "$build/vmlinux")"
	grep -q ' \.BTF ' <<<"$sections" || die "vmlinux has no .BTF section"
	grep -q ' \.debug_info ' <<<"$sections" || die "vmlinux has no DWARF .debug_info"
fi

phase "installing into $out"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$build/arch/x86/boot/bzImage" "$build/vmlinux" "$build/System.map" "$out.tmp/"
cp "$build/.config" "$out.tmp/config"
if ((with_modules)); then
	# modules.dep, for the guest's modprobe.
	depmod="$(PATH="$PATH:/usr/sbin:/sbin" command -v depmod)" ||
		die "depmod not found: apt-get install kmod"
	# DWARF stripped (INSTALL_MOD_STRIP): the guest needs the code and .BTF.
	mk INSTALL_MOD_PATH="$out.tmp/modules" INSTALL_MOD_STRIP=1 DEPMOD="$depmod" modules_install
	rm -f "$out.tmp"/modules/lib/modules/*/{build,source}
fi
cp "$log" "$out.tmp/build.log"
printf '%s\nkey %s\n' "$inputs" "$key" >"$out.tmp/inputs"
rm -rf "$out"
mv "$out.tmp" "$out"
phase "done: $out"
echo "$out/bzImage"
