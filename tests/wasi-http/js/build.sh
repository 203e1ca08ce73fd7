#!/bin/sh
# Build the JavaScript wasi:http/proxy component: ./build.sh OUT.wasm
#
# Uses the toolchain pinned in sdk/js/package-lock.json (jco 1.35.0, componentize-js 0.23.0),
# which sdk/js/build.mjs installs into sdk/js/node_modules with `npm ci` if it is not there yet:
# every JavaScript build in the repository shares that one node_modules. The WIT is the WASI
# 0.2 WIT in ../wit (wasi:http@0.2.12). All componentize-js features stay on: `http` and
# `fetch-event` are what make `addEventListener("fetch", ...)` the wasi:http/incoming-handler
# export and `fetch()` the wasi:http/outgoing-handler import.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.wasm" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
case $1 in
    /*) out=$1 ;;
    *) out=$(pwd)/$1 ;;
esac
sdk=$here/../../../sdk/js

node "$sdk/build.mjs" --install-tools
mkdir -p "$(dirname "$out")"

# componentize-js 0.23's engine (StarlingMonkey) implements wasi:http@0.2.10: its fetch-event
# export is `wasi:http/incoming-handler@0.2.10`, and componentize fails ("failed to find export
# of interface `wasi:http/incoming-handler@0.2.12`") against a 0.2.12 world. So it builds
# against a copy of ../wit with the versions written as 0.2.10 (0.2.x patch releases are
# compatible; the one item marked `@since(version = 0.2.12)`, wasi:cli/exit's
# `exit-with-code`, is not used). The component then imports wasi:http/types and
# outgoing-handler @0.2.10 and the rest of WASI @0.2.12 (from componentize-js's preview1
# adapter), and exports wasi:http/incoming-handler@0.2.10; a host with 0.2.12 links them
# by semver.
wit=$(mktemp -d)
trap 'rm -rf "$wit"' EXIT
cp -r "$here/../wit/." "$wit/"
find "$wit" -name '*.wit' -exec sed -i \
    -e 's/@0\.2\.12\([^0-9]\)/@0.2.10\1/g' \
    -e 's/since(version = 0\.2\.12)/since(version = 0.2.10)/' {} +

node "$sdk/node_modules/@bytecodealliance/jco/dist/jco.js" componentize "$here/app.js" \
    --wit "$wit" --world-name proxy -o "$out" >&2
echo "built $out" >&2
