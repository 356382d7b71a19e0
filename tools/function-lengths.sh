#!/usr/bin/env bash
# The longest functions of lockwatch's C and C++ sources, by lines from the
# signature to the closing brace (universal-ctags' idea of a function).
#
#   function-lengths.sh [--top N]     list the N longest (default 15)
#   function-lengths.sh --check       fail if a function in userspace/ runs
#                                     past 100 lines or one in bpf/ past 80
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
top=15 check=0
while (($#)); do
    case $1 in
        --top) (($# >= 2)) || { echo "function-lengths.sh: --top needs a number" >&2; exit 2; }
               top=$2; shift 2 ;;
        --check) check=1; shift ;;
        -h|--help) sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "function-lengths.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
command -v ctags >/dev/null 2>&1 && ctags --version 2>/dev/null | grep -q Universal ||
    { echo "function-lengths.sh: needs universal-ctags (apt-get install universal-ctags)" >&2; exit 3; }

# "lines name file", longest first. Lambdas show up under ctags' __anon names.
lengths=$(cd "$root" && ctags -x --_xformat='%{end} %n %N %F' --kinds-C++=f --kinds-C=f \
        --fields=+ne -R --languages=C,C++ --map-C=+.bpf.h userspace bpf |
    awk '$1 != "" { print $1 - $2 + 1, $3, $4 }' | sort -rn)

if ((!check)); then
    head -n "$top" <<<"$lengths"
    exit 0
fi
over=$(awk '($3 ~ /^userspace\// && $1 > 100) || ($3 ~ /^bpf\// && $1 > 80)' <<<"$lengths")
if [[ -n $over ]]; then
    echo "function-lengths.sh: functions over the limit (userspace/ 100 lines, bpf/ 80):" >&2
    echo "$over" >&2
    exit 1
fi
echo "function-lengths.sh: every function within its limit; longest: $(head -n1 <<<"$lengths")"
