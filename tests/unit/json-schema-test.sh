#!/usr/bin/env bash
# Every JSON output lockwatch's commands make from the recorded traces
# (tests/traces), in every form (--json FILE, --format json, --json-brief),
# checked against docs/json-schema.json; and the schema is not a rubber
# stamp: a line with a field of the wrong type fails.
#     json-schema-test.sh LOCKWATCH SOURCE_DIR
set -uo pipefail
lockwatch=$1 src=$2
check="$src/tools/check-json-schema.py"
schema="$src/docs/json-schema.json"
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || { echo "SKIP: no python3-jsonschema"; exit 77; }
dir=$(mktemp -d /tmp/lockwatch-schema.XXXXXX)
trap 'rm -rf "$dir"' EXIT
for trace in "$src"/tests/traces/*.jsonl; do
    name=$(basename "$trace" .jsonl)
    "$lockwatch" replay "$trace" --format none --json "$dir/$name.full.jsonl"
    "$lockwatch" replay "$trace" --format none --json-brief --json "$dir/$name.brief.jsonl"
    "$lockwatch" replay "$trace" --format json >"$dir/$name.stdout.jsonl"
done
"$check" "$schema" "$dir"/*.jsonl || exit 1
head -1 "$dir"/seed_000*.full.jsonl | sed 's/"cpu":[0-9]*/"cpu":"one"/' >"$dir/bad.jsonl"
if "$check" "$schema" "$dir/bad.jsonl" >"$dir/bad.txt"; then
    echo "FAIL: a line with \"cpu\":\"one\" passed"; exit 1
fi
grep -q '^.*bad.jsonl:1: cpu: ' "$dir/bad.txt" || { cat "$dir/bad.txt"; echo "FAIL: not named"; exit 1; }
echo PASS
