#!/usr/bin/env bash
# Build the lock-scenario test module (lockwatch_scenarios.ko) for one of the
# kernels tools/vm/run-vm.sh boots.
#
#   build-module.sh [--kernel debian|seed|lockdep] [--version VER] --out DIR
#
#   debian   (default) Debian's stock cloud kernel; VER defaults to the
#            version tools/vm/fetch-kernel.sh resolves. Needs that kernel's
#            headers (linux-headers-VER); as root they are installed when
#            missing.
#   seed, lockdep   the test kernels of tools/kernel/build-kernel.sh, against
#            their O= build tree (build-<flavor>/ in the kernel cache), which
#            must still hold the configuration of the cached kernel. The
#            module's vermagic is checked against that kernel's.
# Modules built for seed and lockdep are not interchangeable (same release,
# different struct layouts): use one DIR per kernel. The last line on stdout
# is the .ko.
set -euo pipefail

die() { echo "build-module.sh: $2" >&2; exit "$1"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib/safe-files.sh
. "$here/../lib/safe-files.sh"
kernel=debian version='' out=''
while (($#)); do
    case $1 in
        --kernel) (($# >= 2)) || die 2 "--kernel needs debian, seed or lockdep"; kernel=$2; shift 2 ;;
        --version) (($# >= 2)) || die 2 "--version needs a value"; version=$2; shift 2 ;;
        --out) (($# >= 2)) || die 2 "--out needs a directory"; out=$2; shift 2 ;;
        -h|--help) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' (usage: build-module.sh [--kernel debian|seed|lockdep] [--version VER] --out DIR)" ;;
    esac
done
[[ -n $out ]] || die 2 "--out DIR is required"
case $kernel in debian|seed|lockdep) ;; *) die 2 "--kernel must be debian, seed or lockdep, not '$kernel'" ;; esac
[[ $kernel == debian || -z $version ]] || die 2 "--version is for --kernel debian only"
# Root builds in DIR: nobody else may write there (a link planted for a file
# make writes would have root overwrite its target). Checked before anything
# else runs.
lw_safe_dir "$out" "use a directory of your own for --out" || die 3 "--out: $lw_error"
for f in lockwatch_scenarios.c Kbuild module.lds.S build.log; do
    lw_check_file "$out/$f" || die 3 "$lw_error"
done

# Sets tree (the kernel build directory) and make_args for --kernel debian.
debian_tree() {
    if [[ -z $version ]]; then
        local dir
        dir=$("$here/../vm/fetch-kernel.sh") || die 3 "cannot resolve Debian's kernel (fetch-kernel.sh failed)"
        version=${dir##*/debian-}
    fi
    [[ $version =~ ^[0-9][0-9a-z.+~-]*$ ]] || die 2 "bad kernel version '$version'"
    tree=/usr/src/linux-headers-$version
    if [[ ! -f $tree/Makefile ]]; then
        ((EUID == 0)) || die 3 "$tree missing: apt-get install linux-headers-$version"
        echo "build-module.sh: installing linux-headers-$version" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "linux-headers-$version" >/dev/null 2>&1 ||
            die 3 "cannot install linux-headers-$version (apt-get install failed)"
    fi
    make_args=()
}

# Sets tree, make_args and expect_vermagic for --kernel seed|lockdep.
test_kernel_tree() {
    local image kdir
    image=$("$here/../kernel/build-kernel.sh" "$kernel" 2>/dev/null | tail -n1) ||
        die 3 "no $kernel kernel (tools/kernel/build-kernel.sh $kernel failed)"
    kdir=$(dirname "$image")
    tree=$(dirname "$kdir")/build-$kernel
    [[ -f $tree/Makefile && -f $tree/.config ]] || die 3 "no build tree $tree (rebuild: tools/kernel/build-kernel.sh $kernel)"
    cmp -s "$tree/.config" "$kdir/config" ||
        die 3 "$tree/.config differs from $kdir/config (the tree was rebuilt for another kernel)"
    [[ -f $tree/scripts/mod/modpost ]] || die 3 "$tree has no scripts/mod/modpost (not a complete build)"
    local release
    release=$(<"$tree/include/config/kernel.release")
    expect_vermagic=$(strings -a "$kdir/vmlinux" | grep -m1 -E "^$release SMP" || true)
    [[ -n $expect_vermagic ]] || die 3 "no vermagic string for $release in $kdir/vmlinux"
    # No Module.symvers beside a kernel built without modules of its own:
    # vmlinux.symvers names what vmlinux exports.
    make_args=()
    [[ -f $tree/Module.symvers || ! -f $tree/vmlinux.symvers ]] ||
        make_args+=(KBUILD_EXTRA_SYMBOLS="$tree/vmlinux.symvers")
    # Without `make modules_prepare` there is no scripts/module.lds: make
    # one in the module's directory (the Kbuild file's always-y).
    [[ -f $tree/scripts/module.lds ]] || own_lds=1
}

tree='' make_args=() expect_vermagic='' own_lds=0
if [[ $kernel == debian ]]; then debian_tree; else test_kernel_tree; fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
cp "$here/lockwatch_scenarios.c" "$here/Kbuild" "$out/"
if ((own_lds)); then
    cp "$tree/source/scripts/module.lds.S" "$out/" ||
        die 3 "no scripts/module.lds.S in $tree/source"
    make_args+=(LOCKWATCH_OWN_MODULE_LDS=y ARCH_MODULE_LDS="$out/module.lds")
fi
log=$out/build.log
if ! make -C "$tree" M="$out" "${make_args[@]}" modules >"$log" 2>&1; then
    grep -m1 -E 'error|Error' "$log" >&2 || true
    die 3 "module build failed; log: $log"
fi
ko=$out/lockwatch_scenarios.ko
[[ -f $ko ]] || die 3 "the build made no $ko; log: $log"
if [[ -n $expect_vermagic ]]; then
    got=$(modinfo -F vermagic "$ko" 2>/dev/null || strings -a "$ko" | sed -n 's/^vermagic=//p')
    [[ ${got%% } == "${expect_vermagic%% }" ]] ||
        die 3 "vermagic '$got' of $ko is not the $kernel kernel's '$expect_vermagic'"
fi
echo "$ko"
