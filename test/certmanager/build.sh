#!/usr/bin/env bash
# Provides the real cert-manager controller and its CRDs for test/network-certmanager.test.ts,
# cached OUTSIDE the repository so that every run after the first one returns at once.
#
#   bash test/certmanager/build.sh                  provide them (builds the controller the first time)
#   bash test/certmanager/build.sh --print-dir      ... and print the cache directory (the only stdout line)
#
# Layout: ${HARMONY_CACHE:-$HOME/.cache/harmony}/cert-manager/<version>/
#   bin/controller   test/certmanager/main.go built against github.com/cert-manager/cert-manager at
#                    <version> (from the Go module proxy, in a throwaway module): cert-manager's own
#                    control loops, wired as its cmd/controller does. That main module
#                    (github.com/cert-manager/cert-manager/cmd/controller) is not on the proxy (404).
#   crds/*.yaml      the CRDs from the root module's deploy/crds (the same release)
#   build.log        the last build's output
# Settings: HARMONY_CACHE, HARMONY_CERT_MANAGER_VERSION (default v1.21.2).
# One build at a time per cache (flock). A missing Go toolchain or a failed build exits non-zero
# with the reason: the test then skips saying so, never silently.
set -euo pipefail

PRINT=0
case "${1:-}" in
  --print-dir) PRINT=1 ;;
  "") ;;
  -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) printf 'build.sh: unknown argument %s\n' "$1" >&2; exit 2 ;;
esac

VERSION=${HARMONY_CERT_MANAGER_VERSION:-v1.21.2}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${HARMONY_CACHE:-$HOME/.cache/harmony}/cert-manager/$VERSION
log() { printf '[cert-manager %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cert-manager] ERROR: %s\n' "$*" >&2; exit 1; }
done_() {
  if [ "$PRINT" = 1 ]; then printf '%s\n' "$DIR"; fi
  exit 0
}
# The main.go it was built from is part of the cache key: an edited main.go rebuilds.
STAMP=$(sha256sum "$HERE/main.go" | cut -c1-16)
complete() { [ -x "$DIR/bin/controller" ] && [ "$(cat "$DIR/bin/.main" 2>/dev/null)" = "$STAMP" ] && ls "$DIR"/crds/*.yaml >/dev/null 2>&1; }

complete && done_
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  log "another build.sh is building into $DIR; waiting for it"
  flock 9
fi
complete && done_

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH (nor /usr/local/go/bin/go): it is needed to build the cert-manager controller"
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
t0=$SECONDS
work=$DIR/src
rm -rf "$work" && mkdir -p "$work" "$DIR/bin" "$DIR/crds"
{
  log "building cert-manager $VERSION with $(go version)"
  # The root module: cert-manager's control loops, and in deploy/crds the CRDs of this release.
  # -json prints a failure (no such version, no proxy) as an "Error" field on stdout.
  json=$(go mod download -json "github.com/cert-manager/cert-manager@$VERSION") ||
    die "go mod download github.com/cert-manager/cert-manager@$VERSION failed: $(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
  root=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json" | head -n 1)
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$json" | head -n 1)
  [ -d "$root/deploy/crds" ] || die "github.com/cert-manager/cert-manager@$VERSION has no deploy/crds (got '$root')"
  gover=$(sed -n 's/^go \([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$gomod")
  cat >"$work/go.mod" <<EOF2
// Throwaway module (test/certmanager/build.sh): cert-manager's controller loops at $VERSION.
module harmony.local/certmanager

go ${gover:-1.25.0}

require github.com/cert-manager/cert-manager $VERSION
EOF2
  cp "$HERE/main.go" "$work/main.go"
  log "go mod tidy (downloads the dependencies)"
  (cd "$work" && go mod tidy)
  log "go build (the slow part on a cold machine)"
  (cd "$work" && go build -ldflags "-s -w" -o "$DIR/bin/controller.tmp" .)
  "$DIR/bin/controller.tmp" --help >/dev/null 2>&1 || die "the built controller does not run"
  # Only the CRDs (plain YAML in this release); Helm-templated files would not apply.
  for f in "$root"/deploy/crds/*.yaml; do
    if grep -q '{{' "$f"; then die "$f is a Helm template, not a plain CRD"; fi
    cp "$f" "$DIR/crds/"
    chmod u+w "$DIR/crds/$(basename "$f")"
  done
  mv -f "$DIR/bin/controller.tmp" "$DIR/bin/controller"
  echo "$STAMP" >"$DIR/bin/.main"
  log "built cert-manager $VERSION in $((SECONDS - t0)) s"
} 2>&1 | tee "$DIR/build.log" >&2
complete || die "build failed (see $DIR/build.log)"
done_
