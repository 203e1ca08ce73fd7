#!/bin/sh
# Build the Python wasi:http/proxy component: ./build.sh OUT.wasm
#
# Uses the componentize-py that sdk/python/build.py installs (sdk/python/.venv, or
# $FLAGON_PYTHON_VENV), installing it first if needed. The WIT is the WASI 0.2 WIT in
# ../wit (wasi:http@0.2.12). The component exports wasi:http/incoming-handler and imports
# wasi:http/{types,outgoing-handler}, wasi:io, wasi:clocks, wasi:random, wasi:cli and
# wasi:filesystem. CPython's libc also imports wasi:sockets, which Flagon never links; those
# imports are replaced by stubs that trap if called (the app opens no socket), as the SDK's
# build does for handlers.
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
sdk=$here/../../../sdk/python
venv=${FLAGON_PYTHON_VENV:-$sdk/.venv}

python3 "$sdk/build.py" --install-tools --venv "$venv" >&2
mkdir -p "$(dirname "$out")"
# An empty VIRTUAL_ENV: componentize-py adds its site-packages to the app's path, so this keeps
# the site-packages of whatever python3 is on PATH out of the component.
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
mkdir -p "$empty/lib/site-packages" "$empty/py"
cp "$here/app.py" "$empty/py/"
VIRTUAL_ENV=$empty "$venv/bin/componentize-py" -q \
    -d "$here/../wit" -w wasi:http/proxy@0.2.12 \
    componentize -p "$empty/py" app -o "$empty/raw.wasm"
python3 "$sdk/build.py" --venv "$venv" --stub-only "$empty/raw.wasm" \
    --stub-prefix wasi:sockets/ --output "$out" >&2
echo "built $out" >&2
