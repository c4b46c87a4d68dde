#!/usr/bin/env bash
# Vendors the Gateway API CRDs (standard channel) from the Go module cache into this directory, each
# file with the upstream license header. Re-run after changing VERSION; the files are committed so
# that tests and the chart need no Go and no network.
#
#   bash crds/gateway-api/vendor.sh
set -euo pipefail
VERSION=v1.7.0
HERE=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.1} GOFLAGS=-mod=mod
DIR=$(cd /tmp && go mod download -json "sigs.k8s.io/gateway-api@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$DIR/config/crd/standard" ] || { echo "vendor.sh: no CRDs under $DIR" >&2; exit 1; }
cp "$DIR/LICENSE" "$HERE/LICENSE"
for f in "$DIR"/config/crd/standard/*.yaml; do
  {
    printf '# Copyright The Kubernetes Authors. Licensed under the Apache License, Version 2.0 (LICENSE).\n'
    printf '# Vendored from sigs.k8s.io/gateway-api@%s config/crd/standard/%s by vendor.sh; do not edit.\n' \
      "$VERSION" "$(basename "$f")"
    cat "$f"
  } >"$HERE/$(basename "$f")"
done
echo "vendored $(ls "$DIR"/config/crd/standard/*.yaml | wc -l) files of gateway-api $VERSION into $HERE"
