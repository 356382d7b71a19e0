#!/usr/bin/python3
"""Checks JSON lines against lockwatch's JSON Schema (docs/json-schema.json).

    check-json-schema.py SCHEMA FILE...

Every non-empty line of every FILE must be one JSON object that the schema
accepts. Prints one line per error (file, line, where in the object, why)
and exits 1 if there was any, 0 if every line passed (and says how many).
Needs python3-jsonschema (Debian).
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("check-json-schema.py: no jsonschema module: apt-get install python3-jsonschema")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    errors = lines = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                lines += 1
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as e:
                    print(f"{path}:{number}: not JSON: {e}")
                    errors += 1
                    continue
                for error in validator.iter_errors(item):
                    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
                    print(f"{path}:{number}: {where}: {error.message[:300]}")
                    errors += 1
    if lines == 0:
        print("check-json-schema.py: no JSON lines to check")
        return 1
    print(f"check-json-schema.py: {lines} lines, {errors} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
