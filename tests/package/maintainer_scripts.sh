#!/usr/bin/env bash
# The maintainer scripts: syntax (sh -n) and their logic, run against a scratch root
# (DPKG_ROOT) with the commands they call replaced on PATH by stubs that log their arguments.
set -euo pipefail
source=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for script in postinst prerm postrm; do
  sh -n "$source/debian/$script" || fail "$script: sh -n"
  [ -x "$source/debian/$script" ] || fail "$script is not executable"
done

stubs=$scratch/stubs calls=$scratch/calls
mkdir -p "$stubs"
for command in adduser chown chmod systemctl dpkg-statoverride getent; do
  cat >"$stubs/$command" <<STUB
#!/bin/sh
echo "$command \$*" >>"$calls"
case "$command" in
  getent) [ -f "$scratch/user-exists" ] ;;
  dpkg-statoverride) [ -f "$scratch/statoverride" ] ;;
  systemctl) [ "\$1" != is-active ] || [ -f "$scratch/active" ] ;;
esac
STUB
  chmod +x "$stubs/$command"
done

run() {  # run SCRIPT ARGS...: with the stubs, against the scratch root; resets the call log
  : >"$calls"
  env PATH="$stubs:/usr/bin:/bin" DPKG_ROOT="$scratch/root" sh -e "$source/debian/$1" "${@:2}" ||
    fail "$1 $* exited $?"
}
expect() { grep -qxF -- "$1" "$calls" || { cat "$calls" >&2; fail "expected call: $1"; }; }
refuse() { ! grep -qF -- "$1" "$calls" || { cat "$calls" >&2; fail "unexpected call: $1"; }; }

root=$scratch/root
mkdir -p "$root/etc/callbridge"
touch "$root/etc/callbridge/callbridge.yaml" "$root/etc/callbridge/callbridge.env"

# First install, no systemd running: user, journal directory, secrets' group; nothing else.
run postinst configure
expect "adduser --system --group --no-create-home --home /var/lib/callbridge --gecos callbridge CRM/PBX bridge callbridge"
[ -d "$root/var/lib/callbridge" ] || fail "no /var/lib/callbridge"
expect "chown callbridge:callbridge $root/var/lib/callbridge"
expect "chmod 0750 $root/var/lib/callbridge"
expect "chown root:callbridge $root/etc/callbridge/callbridge.env"
expect "chmod 0640 $root/etc/callbridge/callbridge.env"
refuse systemctl

# Reinstall or upgrade under systemd: the user and the journal are kept as they are; the unit
# files are reloaded; a running bridge restarts, a stopped one is not started or enabled.
touch "$scratch/user-exists" "$scratch/statoverride"
mkdir -p "$root/run/systemd/system"
run postinst configure 0.0.9
refuse adduser
refuse "chown callbridge:callbridge"
refuse "chown root:callbridge"
expect "systemctl daemon-reload"
expect "systemctl is-active --quiet callbridge.service"
refuse try-restart
refuse enable
touch "$scratch/active"
run postinst configure 0.0.9
expect "systemctl try-restart callbridge.service"

# Other postinst actions do nothing.
run postinst abort-upgrade 0.1.0
[ ! -s "$calls" ] || fail "postinst abort-upgrade called: $(cat "$calls")"

# prerm stops the bridge on removal, not on upgrade.
run prerm remove
expect "systemctl stop callbridge.service"
run prerm upgrade 0.1.1
refuse "systemctl stop"

# remove keeps the configuration; purge deletes it, and keeps the journal and the user.
echo "calls" >"$root/var/lib/callbridge/callbridge.db"
run postrm remove
[ -f "$root/etc/callbridge/callbridge.yaml" ] || fail "remove deleted the configuration"
run postrm purge
[ ! -e "$root/etc/callbridge" ] || fail "purge left /etc/callbridge"
[ -f "$root/var/lib/callbridge/callbridge.db" ] || fail "purge deleted the journal"
refuse deluser
expect "systemctl daemon-reload"
echo "maintainer scripts: ok"
