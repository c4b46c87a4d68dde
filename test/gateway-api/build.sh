#!/usr/bin/env bash
# Builds the official Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance v1.7.0) as a
# test binary, and its echo-basic backend as a static binary and an OCI image archive under the two
# tags the suite's manifests name. Cached under ${HARMONY_CACHE:-~/.cache/harmony}/gateway-api/<version>/
# behind a flock, so two runs never build at once and a warm run costs nothing.
#
#   bash test/gateway-api/build.sh              build what is missing; prints the cache dir on stdout
#   bash test/gateway-api/build.sh --print-dir  the cache dir only, no build
#
# Why the replace: conformance@v1.7.0 imports sigs.k8s.io/gateway-api-conformance-images v0.2.0,
# which the module proxy refuses (403). conformance@v1.6.3 still carries that echo server's source
# (echo-basic/); a local copy of it as that module, plus a `replace`, makes v1.7.0 build. The
# *.pb.go files are copied untouched (rewriting them breaks the embedded descriptor); the other
# files' imports of their own packages are moved to the new module path.
# Go 1.27 is fetched through the module proxy as a toolchain (GOTOOLCHAIN).
set -euo pipefail
VERSION=v1.7.0
ECHO_SOURCE_VERSION=v1.6.3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${HARMONY_CACHE:-$HOME/.cache/harmony}/gateway-api/$VERSION
[ "${1:-}" = "--print-dir" ] && { echo "$OUT"; exit 0; }
export GOTOOLCHAIN=${GOTOOLCHAIN_GATEWAY_API:-go1.27.1} GOFLAGS=-mod=mod CGO_ENABLED=0
log() { printf '[gateway-api build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock 9
if [ -x "$OUT/conformance.test" ] && [ -f "$OUT/echo-basic-v0.1.0.oci.tar" ] && [ -f "$OUT/echo-basic-v0.2.0.oci.tar" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

dir_of() { (cd "$WORK" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }
log "fetching conformance $VERSION and $ECHO_SOURCE_VERSION (echo-basic source)"
ECHO_SRC=$(dir_of "sigs.k8s.io/gateway-api/conformance@$ECHO_SOURCE_VERSION")
[ -d "$ECHO_SRC/echo-basic/grpcechoserver" ] || { log "no echo-basic source in $ECHO_SRC"; exit 1; }

# The images module, as conformance@v1.7.0 expects it.
mkdir -p "$WORK/images"
cp -r "$ECHO_SRC/echo-basic" "$WORK/images/echo-basic"
chmod -R u+w "$WORK/images"
find "$WORK/images" -name '*_test.go' -delete
# Its own Go files import each other under the conformance module's path; the generated *.pb.go
# files are left byte for byte as they are (their embedded descriptor must not change).
find "$WORK/images" -name '*.go' ! -name '*.pb.go' -exec \
  sed -i 's#sigs.k8s.io/gateway-api/conformance/echo-basic#sigs.k8s.io/gateway-api-conformance-images/echo-basic#g' {} +
printf 'module sigs.k8s.io/gateway-api-conformance-images\n\ngo 1.24\n' >"$WORK/images/go.mod"

# The suite: one test that runs it, in a throwaway module.
mkdir -p "$WORK/suite"
cat >"$WORK/suite/go.mod" <<MOD
module harmony.local/gateway-api-conformance

go 1.27.0

require (
	sigs.k8s.io/gateway-api $VERSION
	sigs.k8s.io/gateway-api/conformance $VERSION
	sigs.k8s.io/gateway-api-conformance-images v0.2.0
)

replace sigs.k8s.io/gateway-api-conformance-images => ../images
MOD
cat >"$WORK/suite/conformance_test.go" <<'GO'
package conformance

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

// Flags (-gateway-class, -conformance-profiles, -report-output, ...) are the suite's own.
func TestConformance(t *testing.T) { conformance.RunConformance(t) }
GO
(cd "$WORK/images" && go mod tidy)
log "building the suite (about 2 minutes cold)"
(cd "$WORK/suite" && go mod tidy && go test -c -o "$OUT/conformance.test.tmp" .)
mv "$OUT/conformance.test.tmp" "$OUT/conformance.test"

log "building echo-basic"
mkdir -p "$WORK/echo-layer"
(cd "$WORK/images" && go build -trimpath -ldflags='-s -w' -o "$WORK/echo-layer/echo-basic" ./echo-basic)
for tag in v0.1.0 v0.2.0; do
  node "$ROOT/scripts/oci-image.mjs" --out "$OUT/echo-basic-$tag.oci.tar" \
    --ref "registry.k8s.io/gateway-api/conformance/echo-basic:$tag" \
    --config '{"Entrypoint":["/echo-basic"],"User":"65532:65532"}' --layer "$WORK/echo-layer"
done
log "done: $OUT"
echo "$OUT"
