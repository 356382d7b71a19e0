#!/usr/bin/env bash
# Writes lockwatch(8) from the help texts of the binary itself, so that the
# man page and `--help` never disagree.
#   gen-man.sh LOCKWATCH OUTPUT
set -euo pipefail
(($# == 2)) || { echo "usage: gen-man.sh LOCKWATCH OUTPUT" >&2; exit 2; }
bin=$1 out=$2

# Help text as roff: backslashes escaped, a leading dot or quote kept as text.
roff() { sed -e 's/\\/\\e/g' -e 's/^[.'\'']/\\\&&/'; }

version=$("$bin" --version)
{
    printf '.TH LOCKWATCH 8 "" "%s" "System Administration"\n' "$version"
    printf '.SH NAME\nlockwatch \\- lockdep'"'"'s lock checks on a live kernel built without lockdep\n'
    printf '.SH SYNOPSIS\n.B lockwatch\n.I COMMAND\n[\\fIOPTIONS\\fR]\n'
    printf '.SH DESCRIPTION\n.nf\n'
    "$bin" --help | roff
    printf '.fi\n'
    # Every command --help lists, in its order.
    for cmd in $("$bin" --help | awk '/^SUBCOMMANDS:|^Subcommands:/ {on = 1; next}
                                       on && /^  [a-z]/ {print $1}'); do
        printf '.SH "lockwatch %s"\n.nf\n' "$cmd"
        "$bin" "$cmd" --help | roff
        printf '.fi\n'
    done
    printf '.SH FILES\n.TP\n.I /lib/systemd/system/lockwatch.service\nthe service (systemctl enable \\-\\-now lockwatch)\n'
    printf '.TP\n.I /var/lib/lockwatch/findings.jsonl\nthe service'"'"'s findings as JSON lines\n'
    printf '.TP\n.I /usr/share/doc/lockwatch/json-schema.json\nthe JSON Schema of those lines\n'
    printf '.SH "SEE ALSO"\n.BR journalctl (1),\n.BR systemd.exec (5)\n'
} >"$out.tmp"
mv "$out.tmp" "$out"
