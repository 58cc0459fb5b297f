#!/usr/bin/env bash
# Installs a real n8n from the npm registry into a cache outside the clone, once per machine.
#
# n8n 2.x needs Node 24; 1.123.81 runs on Node 20 with two overrides: its own xlsx dependency is a
# tarball outside the registries, and its isolated-vm does not build on Node 20. The install is
# about 1.8 GB and takes minutes, so it is kept in ${XDG_CACHE_HOME:-~/.cache}/flowledger/n8n/<version>
# and reused; a second caller waits on the lock and then finds it done. Prints the install folder.
set -euo pipefail

version="${FLOWLEDGER_N8N_VERSION:-1.123.81}"
root="${FLOWLEDGER_N8N_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flowledger/n8n}"
target="$root/$version"

installed() { [ -f "$target/.installed" ] && [ -x "$target/node_modules/.bin/n8n" ]; }

if installed; then
    echo "$target"
    exit 0
fi

command -v npm >/dev/null || { echo "n8n install: npm is not on PATH (n8n needs Node 20)" >&2; exit 1; }
mkdir -p "$root"
exec 9>"$root/.lock-$version"
flock 9
if installed; then
    echo "$target"
    exit 0
fi

work="$(mktemp -d "$root/.installing-$version.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cat >"$work/package.json" <<JSON
{
  "name": "flowledger-n8n-$version",
  "private": true,
  "dependencies": { "n8n": "$version" },
  "overrides": { "xlsx": "0.18.5", "isolated-vm": "5.0.4" }
}
JSON
echo "n8n install: installing n8n@$version into $target (about 1.8 GB, some minutes)" >&2
(cd "$work" && npm install --no-audit --no-fund --omit=dev --loglevel=error >&2)
touch "$work/.installed"
rm -rf "$target"
mv "$work" "$target"
trap - EXIT
echo "$target"
