#!/usr/bin/env bash
# callbridge.service: `systemd-analyze verify` (with ExecStart pointed at the built binary, since
# /usr/bin/callbridge exists only once the package is installed; systemd need not be PID 1 for
# this) must print nothing, and the directives the service relies on must be there.
set -euo pipefail
source=$1 binary=$2
unit=$source/debian/callbridge.service
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

sed "s|^ExecStart=/usr/bin/callbridge |ExecStart=$binary |" "$unit" >"$scratch/callbridge.service"
grep -q "^ExecStart=$binary serve" "$scratch/callbridge.service" || fail "ExecStart not found"
(cd "$scratch" && systemd-analyze --man=no verify ./callbridge.service) >"$scratch/out" 2>&1 ||
  { cat "$scratch/out"; fail "systemd-analyze verify failed"; }
[ ! -s "$scratch/out" ] || { cat "$scratch/out"; fail "systemd-analyze verify complained"; }

# A mistake must be caught: the same check on a misspelt directive.
sed 's/^LimitNOFILE=/LimitNOFILES=/' "$scratch/callbridge.service" >"$scratch/broken.service"
(cd "$scratch" && systemd-analyze --man=no verify ./broken.service) >"$scratch/out" 2>&1 || true
grep -q "Unknown key" "$scratch/out" || fail "verify did not notice a misspelt directive"

for line in "Type=notify" "ExecStart=/usr/bin/callbridge serve --config /etc/callbridge/callbridge.yaml" \
  'ExecReload=/bin/kill -HUP $MAINPID' "Restart=on-failure" \
  "EnvironmentFile=-/etc/callbridge/callbridge.env" "User=callbridge" "NoNewPrivileges=yes" \
  "ProtectSystem=strict" "ReadWritePaths=/var/lib/callbridge" "PrivateTmp=yes" "ProtectHome=yes" \
  "CapabilityBoundingSet=" "LimitNOFILE=65536" "WantedBy=multi-user.target"; do
  grep -qxF -- "$line" "$unit" || fail "callbridge.service lacks: $line"
done
echo "unit: ok"
