#!/usr/bin/env bash
# The .deb scripts/package built: control fields, conffiles, file list with modes, and its
# contents unpacked into a scratch root (dpkg-deb -x): the binary runs, the schema and the
# completion are the binary's own, the configuration validates.
set -euo pipefail
# VERSION: CMake's project(VERSION), the one place the version is written.
package_dir=$1 source=$2 version=$3
deb=$(ls -t "$package_dir"/callbridge_*.deb | head -n 1)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { dpkg-deb --field "$deb" "$1"; }

[ "$(field Package)" = callbridge ] || fail "Package: $(field Package)"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture"
[ "$(field Version)" = "$version" ] || fail "Version $(field Version), CMake says $version"
depends=$(field Depends)
for library in libc6 libstdc++6 libpcre2-8-0 libyaml-cpp0.7 libssl3 libsqlite3-0 adduser; do
  [[ ",$depends," == *", $library"[\ ,]* || "$depends" == "$library"[\ ,]* ]] ||
    fail "Depends lacks $library: $depends"
done
[ -n "$(field Description)" ] && [ -n "$(field Maintainer)" ] && [ -n "$(field Installed-Size)" ] ||
  fail "missing Description, Maintainer or Installed-Size"

dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$scratch" ./conffiles ./postinst ./prerm ./postrm
[ "$(cat "$scratch/conffiles")" = "/etc/callbridge/callbridge.yaml
/etc/callbridge/callbridge.env" ] || fail "conffiles: $(cat "$scratch/conffiles")"
for script in postinst prerm postrm; do
  sh -n "$scratch/$script" || fail "$script: sh -n"
  cmp -s "$scratch/$script" "$source/debian/$script" || fail "$script differs from debian/$script"
done

# The file list: path, mode and owner of what matters.
dpkg-deb --contents "$deb" | awk '{print $1, $2, $6}' >"$scratch/list"
expect() { grep -qxF -- "$1" "$scratch/list" || { cat "$scratch/list"; fail "no entry: $1"; }; }
expect "-rwxr-xr-x root/root ./usr/bin/callbridge"
expect "-rw-r--r-- root/root ./etc/callbridge/callbridge.yaml"
expect "-rw-r----- root/root ./etc/callbridge/callbridge.env"
expect "-rw-r--r-- root/root ./lib/systemd/system/callbridge.service"
expect "-rw-r--r-- root/root ./usr/share/callbridge/callbridge.schema.json"
expect "-rw-r--r-- root/root ./usr/share/bash-completion/completions/callbridge"
expect "-rw-r--r-- root/root ./usr/share/doc/callbridge/copyright"
expect "-rw-r--r-- root/root ./usr/share/doc/callbridge/install.md"
for sample in "$source"/samples/*.yaml; do
  expect "-rw-r--r-- root/root ./usr/share/doc/callbridge/samples/$(basename "$sample")"
done
! grep -q "var/lib/callbridge" "$scratch/list" || fail "the journal directory belongs to postinst"

root=$scratch/root
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/callbridge" --version | grep -q "^callbridge $version (commit " || fail "--version"
cmp -s <("$root/usr/bin/callbridge" schema) "$root/usr/share/callbridge/callbridge.schema.json" ||
  fail "packaged schema differs from callbridge schema"
cmp -s <("$root/usr/bin/callbridge" completion bash) \
  "$root/usr/share/bash-completion/completions/callbridge" || fail "packaged completion differs"
bash -n "$root/usr/share/bash-completion/completions/callbridge" || fail "completion: bash -n"
cmp -s "$root/lib/systemd/system/callbridge.service" "$source/debian/callbridge.service" ||
  fail "unit differs from debian/callbridge.service"
"$root/usr/bin/callbridge" validate -c "$root/etc/callbridge/callbridge.yaml" >/dev/null ||
  fail "the packaged configuration does not validate"
echo "package $deb: ok"
