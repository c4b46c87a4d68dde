#!/usr/bin/env bash
# Provides a real kube-apiserver, kube-controller-manager, etcd and helm for the tests, cached
# outside the repository so later runs start in seconds.
#
#   bash test/controlplane/build.sh                 build (or reuse) and print nothing else
#   bash test/controlplane/build.sh --print-bin-dir  ... then print the bin directory
#
# KUBEBUILDER_ASSETS (the envtest layout) wins when set. Otherwise kube-apiserver and
# kube-controller-manager are built with `go build` of k8s.io/kubernetes at a release tag, in a
# throwaway module that pins every k8s.io staging module to the matching v0.x tag; etcd comes
# from Debian's etcd-server (built from source if that is unavailable); helm from `go install`.
# A missing toolchain or a failed build exits non-zero: tests never silently skip.
set -euo pipefail

K8S_TAGS=${K8S_TAGS:-"v1.34.3 v1.35.4"}
HELM_VERSION=${HELM_VERSION:-v3.18.4}
ETCD_SOURCE_VERSION=${ETCD_SOURCE_VERSION:-v3.5.21}
CACHE=${HARMONY_CACHE:-$HOME/.cache/harmony}/controlplane
PRINT=0
[ "${1:-}" = "--print-bin-dir" ] && PRINT=1

log() { printf '[controlplane] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for b in kube-apiserver etcd; do [ -x "$KUBEBUILDER_ASSETS/$b" ] || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no $b"; done
  [ $PRINT = 1 ] && echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "Go toolchain not found (needed to build kube-apiserver); install Go >= 1.24"
export GOFLAGS=-trimpath CGO_ENABLED=0

have_all() { [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ] && [ -x "$1/etcd" ] && [ -x "$1/helm" ]; }

# Reuse any complete cache.
for tag in $K8S_TAGS; do
  if have_all "$CACHE/$tag/bin"; then
    [ $PRINT = 1 ] && echo "$CACHE/$tag/bin"
    exit 0
  fi
done

build_k8s() {
  local tag=$1 bin=$2 work=$CACHE/$1/src
  local minor=${tag#v1.}
  mkdir -p "$work" "$bin"
  log "building kube-apiserver and kube-controller-manager $tag (slow the first time)"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$tag" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || return 1
  {
    echo "module harmony.local/controlplane"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require k8s.io/kubernetes $tag"
    echo
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\1#p' "$gomod" | while read -r m; do
      echo "replace $m => $m v0.$minor"
    done
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true)
  local major=${tag#v}; major=${major%%.*}
  local minorn=${tag#v*.}; minorn=${minorn%%.*}
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$tag -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minorn -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$work" && go build -ldflags "$ld" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver) || return 1
  (cd "$work" && go build -ldflags "$ld" -o "$bin/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager) || return 1
}

provide_etcd() {
  local bin=$1
  if [ ! -x /usr/bin/etcd ]; then
    log "installing etcd-server from Debian"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null) || log "etcd-server from Debian unavailable"
  fi
  if [ -x /usr/bin/etcd ] && [ "${ETCD_FROM_SOURCE:-0}" != 1 ]; then
    ln -sf /usr/bin/etcd "$bin/etcd"
    return 0
  fi
  log "building etcd $ETCD_SOURCE_VERSION from source"
  GOBIN=$bin go install "go.etcd.io/etcd/server/v3@$ETCD_SOURCE_VERSION" && mv "$bin/server" "$bin/etcd" 2>/dev/null || [ -x "$bin/etcd" ]
}

for tag in $K8S_TAGS; do
  bin=$CACHE/$tag/bin
  mkdir -p "$bin"
  if [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/kube-controller-manager" ]; then
    if ! build_k8s "$tag" "$bin" 2>"$CACHE/$tag/build.log"; then
      log "build of $tag failed; last lines of $CACHE/$tag/build.log:"
      tail -n 20 "$CACHE/$tag/build.log" >&2 || true
      continue
    fi
  fi
  [ -x "$bin/etcd" ] || provide_etcd "$bin" || die "no etcd (Debian package and source build both failed)"
  if [ ! -x "$bin/helm" ]; then
    log "installing helm $HELM_VERSION"
    GOBIN=$bin go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || die "helm $HELM_VERSION did not build"
  fi
  have_all "$bin" || die "incomplete control plane in $bin"
  [ $PRINT = 1 ] && echo "$bin"
  exit 0
done
die "no Kubernetes tag in ($K8S_TAGS) could be built"
