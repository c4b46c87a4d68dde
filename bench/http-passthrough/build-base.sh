#!/usr/bin/env bash
# bench/http-passthrough/build-base.sh COMMIT: builds the data plane of an older commit into
# dataplane/.tmp/base-<commit>/ (git-ignored) and prints its cli.js, for the `harmony-base` target:
#
#   HARMONY_BASE_CLI=$(bash bench/http-passthrough/build-base.sh v0.3.0) \
#     TARGETS="nginx floor harmony harmony-base" bash bench/http-passthrough/run.sh
#
# Only the data plane's sources, schema and package.json come from COMMIT; it compiles and runs
# against this checkout's node_modules. When COMMIT's dependencies differ (an undici bump, say),
# that is not the old build: check out COMMIT fully (git worktree add, npm ci, npm run build) and
# point HARMONY_BASE_CLI at its dataplane/dist/cli.js instead.
set -euo pipefail
[[ $# == 1 ]] || { echo "usage: $0 COMMIT" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
sha=$(git rev-parse --short=12 "$1^{commit}")
out=dataplane/.tmp/base-$sha
if [[ ! -f $out/dist/cli.js ]]; then
  rm -rf "$out"
  mkdir -p "$out"
  git archive "$sha" dataplane/src dataplane/schema dataplane/package.json | tar -x -C "$out" --strip-components=1
  # Same compiler settings as dataplane/tsconfig.build.json, from three levels down.
  printf '{"extends":"../../../tsconfig.base.json","compilerOptions":{"rootDir":"src","outDir":"dist"},"include":["src"]}\n' \
    >"$out/tsconfig.json"
  npx tsc -p "$out/tsconfig.json" >&2
fi
echo "$ROOT/$out/dist/cli.js"
