#!/usr/bin/env bash
# Every sample and the packaged configuration validate against `callbridge schema`, with
# Debian's python3-jsonschema; a broken file is rejected (the check can fail).
set -euo pipefail
binary=$1 source=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$binary" schema >"$scratch/schema.json"
printf 'rules:\n  - name: x\n    event: inbound\n    order: many\n    request: {url: "response://x"}\n' \
  >"$scratch/bad.yaml"
/usr/bin/python3 - "$scratch/schema.json" "$scratch/bad.yaml" "$source"/samples/*.yaml \
  "$source/debian/callbridge.yaml" <<'PY'
import json, sys, yaml, jsonschema

# YAML 1.2 as editors read it: 2026-01-01 is text, as it is to callbridge's loader.
class Loader(yaml.SafeLoader):
    pass
Loader.yaml_implicit_resolvers = {
    k: [(tag, regexp) for tag, regexp in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
def load(path):
    return yaml.load(open(path), Loader=Loader)

schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
bad = list(validator.iter_errors(load(sys.argv[2])))
if not bad:
    sys.exit("a rule with order: many validated")
failed = 0
for path in sys.argv[3:]:
    text = open(path).read()
    errors = list(validator.iter_errors(load(path)))
    for e in errors:
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    failed += len(errors) > 0
    if "# yaml-language-server: $schema=/usr/share/callbridge/callbridge.schema.json" not in text:
        print(f"{path}: no yaml-language-server schema line")
        failed += 1
print(f"{len(sys.argv) - 3} files, {failed} failed")
sys.exit(1 if failed else 0)
PY
