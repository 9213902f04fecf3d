#!/usr/bin/env bash
# Runs staticcheck, at the version pinned by tools/staticcheck/go.mod, with the arguments
# given (make check: ./... and -tags e2e ./...).
#
# The binary is built once into the tools cache, as tools/build.sh does for the sandbox's
# tools: one folder keyed by the hash of the tools module's go.mod and go.sum, so a clean
# clone builds it on its first run (downloading the module once) and every later run, or a
# change of the pin, reuses or rebuilds exactly what the pin says. Set PRESCALE_TOOLS_CACHE
# to move the cache (default: ${XDG_CACHE_HOME:-$HOME/.cache}/prescale).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/tools/staticcheck"
cache_root="${PRESCALE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prescale}"
hash="$(cd "$mod" && cat go.mod go.sum | sha256sum | cut -c1-16)"
bin="$cache_root/staticcheck-$hash/staticcheck"

if [[ ! -x "$bin" ]]; then
	mkdir -p "$(dirname "$bin")"
	echo "staticcheck: building the pinned version into $(dirname "$bin")" >&2
	(cd "$mod" && go build -trimpath -o "$bin.tmp" honnef.co/go/tools/cmd/staticcheck)
	mv "$bin.tmp" "$bin"
fi
cd "$root"
exec "$bin" "$@"
