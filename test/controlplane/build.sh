#!/usr/bin/env bash
# Provides the real Kubernetes control-plane binaries the tests run: kube-apiserver,
# kube-controller-manager, etcd and helm (and kubectl when none is on PATH), cached OUTSIDE the
# repository so that every run after the first one returns at once.
#
#   bash test/controlplane/build.sh                  provide the binaries (builds them the first time)
#   bash test/controlplane/build.sh --print-bin-dir  ... and print their directory (the only stdout line)
#   bash test/controlplane/build.sh --node           ... plus kubelet, kube-scheduler and kube-proxy (the
#                                                    real-node suite, test/cluster/build.sh), same pins
#
# Where they come from:
#   - KUBEBUILDER_ASSETS set (the envtest layout: kube-apiserver, etcd, kubectl): those are used, linked
#     into $CACHE/envtest-<hash>/bin; kube-controller-manager and helm are taken from there too when
#     present, else built as below (kube-controller-manager at the assets' apiserver version).
#   - otherwise kube-apiserver and kube-controller-manager are `go build`s of k8s.io/kubernetes at a
#     release tag (the first of HARMONY_K8S_TAGS that builds), inside a throwaway module that pins every
#     k8s.io staging module to the matching v0.x.y tag (the list is derived from the `=> ./staging/...`
#     replace lines of k8s.io/kubernetes's own go.mod), with the version ldflags Kubernetes' release
#     build sets; etcd is Debian's etcd-server (installed with apt-get; HARMONY_ETCD=source, or apt being
#     unavailable, builds the etcd release that k8s.io/kubernetes requires from source instead); helm is
#     `go install helm.sh/helm/v3/cmd/helm` with its release ldflags.
#
# Layout: ${HARMONY_CACHE:-$HOME/.cache/harmony}/controlplane/<k8s tag>/{bin,src,build.log}.
# Settings: HARMONY_CACHE, HARMONY_K8S_TAGS ("v1.34.3 v1.35.4"), HARMONY_HELM_VERSION (v3.18.4),
# HARMONY_ETCD (debian|source), HARMONY_ETCD_VERSION (source build; default: what Kubernetes requires).
# A missing Go toolchain or a failed build exits non-zero with the reason: nothing is ever skipped.
set -euo pipefail

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
PRINT=0
# Extra k8s.io/kubernetes commands a real node needs (--node): built like the control plane's.
NODE_CMDS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --print-bin-dir) PRINT=1 ;;
    --node) NODE_CMDS=(kubelet kube-scheduler kube-proxy) ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'build.sh: unknown argument %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

K8S_TAGS=${HARMONY_K8S_TAGS:-"v1.34.3 v1.35.4"}
HELM_VERSION=${HARMONY_HELM_VERSION:-v3.18.4}
ETCD_FROM=${HARMONY_ETCD:-debian}
ETCD_VERSION=${HARMONY_ETCD_VERSION:-}
CACHE=${HARMONY_CACHE:-$HOME/.cache/harmony}/controlplane
case "$ETCD_FROM" in debian | source) ;; *) printf 'build.sh: HARMONY_ETCD must be debian or source\n' >&2; exit 2 ;; esac

log() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[controlplane] ERROR: %s\n' "$*" >&2; exit 1; }
finish() {
  if [ "$PRINT" = 1 ]; then printf '%s\n' "$1"; fi
  exit 0
}

has_kubectl() { [ -x "$1/kubectl" ] || command -v kubectl >/dev/null 2>&1; }
complete() {
  local x
  for x in kube-apiserver kube-controller-manager etcd helm "${NODE_CMDS[@]}"; do [ -x "$1/$x" ] || return 1; done
  has_kubectl "$1"
}

# ---- fast path: everything is already there --------------------------------------------------
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  ASSETS=$(cd "$KUBEBUILDER_ASSETS" 2>/dev/null && pwd -P) || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS is not a directory"
  for x in kube-apiserver etcd; do
    [ -x "$ASSETS/$x" ] || die "KUBEBUILDER_ASSETS=$ASSETS has no executable $x (envtest layout: kube-apiserver, etcd, kubectl)"
  done
  ENVTEST_BIN=$CACHE/envtest-$(printf '%s' "$ASSETS" | sha256sum | cut -c1-12)/bin
  if complete "$ENVTEST_BIN"; then finish "$ENVTEST_BIN"; fi
else
  for tag in $K8S_TAGS; do
    if complete "$CACHE/$tag/bin"; then finish "$CACHE/$tag/bin"; fi
  done
fi

# ---- slow path: one build at a time per cache ------------------------------------------------
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  log "another build.sh is building into $CACHE; waiting for it"
  flock 9
fi
# (the other build may have finished what we need)
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if complete "$ENVTEST_BIN"; then finish "$ENVTEST_BIN"; fi
else
  for tag in $K8S_TAGS; do
    if complete "$CACHE/$tag/bin"; then finish "$CACHE/$tag/bin"; fi
  done
fi

GO_READY=0
need_go() {
  [ "$GO_READY" = 1 ] && return 0
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null 2>&1 ||
    die "no Go toolchain on PATH (nor /usr/local/go/bin/go): it is needed to build kube-apiserver, kube-controller-manager and helm. Install Go >= 1.24, or set KUBEBUILDER_ASSETS to envtest binaries."
  export CGO_ENABLED=0 GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"
  log "using $(go version)"
  GO_READY=1
}

# A string field of `go mod download -json` output (first occurrence).
json_field() { sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",\{0,1\}[[:space:]]*$/\1/p' | head -n 1; }

# module_info MODULE@VERSION: downloads it; sets MOD_GOMOD (path of its go.mod) and MOD_HASH (its
# commit, when the proxy knows it).
module_info() {
  local json
  MOD_GOMOD='' MOD_HASH=''
  json=$(go mod download -json "$1") || {
    printf 'go mod download -json %s failed:\n%s\n' "$1" "$json" >&2
    return 1
  }
  MOD_GOMOD=$(json_field GoMod <<<"$json")
  MOD_HASH=$(json_field Hash <<<"$json")
  [ -f "$MOD_GOMOD" ] || { printf 'go mod download -json %s gave no go.mod\n' "$1" >&2; return 1; }
}

# build_k8s TAG BIN CMD...: builds k8s.io/kubernetes/cmd/CMD at TAG into BIN. Runs inside `if`, where
# errexit is off, so every step checks its own status.
build_k8s() {
  local tag=$1 bin=$2 t0=$SECONDS commit gomod gover staging m c
  shift 2
  local work=$CACHE/$tag/src
  local staging_version="v0.${tag#v1.}"
  mkdir -p "$work" "$bin" || return 1
  log "k8s.io/kubernetes@$tag: resolving its go.mod"
  module_info "k8s.io/kubernetes@$tag" || return 1
  gomod=$MOD_GOMOD commit=$MOD_HASH
  gover=$(sed -n 's/^go \([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$gomod")
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/k8s\.io/.*#\1#p' "$gomod")
  [ -n "$staging" ] || { log "no '=> ./staging/src/k8s.io/...' replace lines in $gomod"; return 1; }
  log "pinning $(wc -w <<<"$staging") staging modules to $staging_version"
  {
    echo "// Throwaway module (build.sh): builds k8s.io/kubernetes $tag commands with its staging modules pinned."
    echo "module harmony.local/controlplane"
    echo
    echo "go ${gover:-1.24.0}"
    echo
    # Kubernetes' own GODEBUG defaults (e.g. godebug default=go1.24) so the binaries behave as released.
    awk '/^godebug \(/{b=1} b{print; if ($0 ~ /^\)/) b=0; next} /^godebug /{print}' "$gomod"
    echo
    echo "require k8s.io/kubernetes $tag"
    echo
    for m in $staging; do echo "replace $m => $m $staging_version"; done
  } >"$work/go.mod" || return 1
  rm -f "$work/go.sum"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "$@"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >"$work/tools.go" || return 1
  log "go mod tidy (downloads the dependencies)"
  (cd "$work" && go mod tidy) || return 1
  local v=${tag#v} date ld="-s -w" pkg
  local major=${v%%.*} minor=${v#*.}
  minor=${minor%%.*}
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$tag -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    if [ -n "$commit" ]; then ld+=" -X $pkg.gitCommit=$commit"; fi
  done
  local pkgs=()
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "go build $* ($tag; the slow part on a cold machine)"
  rm -rf "$work/out" && mkdir -p "$work/out" || return 1
  (cd "$work" && go build -ldflags "$ld" -o "$work/out/" "${pkgs[@]}") || return 1
  for c in "$@"; do
    local probe=(--version)
    if [ "$c" = kubectl ]; then probe=(version --client); fi
    "$work/out/$c" "${probe[@]}" >&2 || { log "$c does not run"; return 1; }
    mv -f "$work/out/$c" "$bin/$c" || return 1
  done
  rm -rf "$work/out"
  log "built $* at $tag in $((SECONDS - t0)) s"
}

# build_etcd BIN: etcd from source, at HARMONY_ETCD_VERSION or the go.etcd.io/etcd/server/v3 version
# that k8s.io/kubernetes@$TAG requires.
build_etcd() {
  local bin=$1 t0=$SECONDS version=$ETCD_VERSION commit gomod gover work
  if [ -z "$version" ]; then
    module_info "k8s.io/kubernetes@$TAG" || return 1
    gomod=$MOD_GOMOD
    version=$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/server/v3 \(v[0-9][^ ]*\).*#\1#p' "$gomod" | head -n 1)
    [ -n "$version" ] || version=v3.6.4
  fi
  work=$CACHE/etcd-$version/src
  mkdir -p "$work" || return 1
  log "building etcd $version from source"
  module_info "go.etcd.io/etcd/server/v3@$version" || return 1
  gomod=$MOD_GOMOD commit=$MOD_HASH
  gover=$(sed -n 's/^go \([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$gomod")
  # The server module's go.mod has replace lines (ignored outside it), so `go install mod@version`
  # refuses it: build it from a throwaway module instead.
  printf 'module harmony.local/etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "${gover:-1.24}" "$version" >"$work/go.mod" || return 1
  rm -f "$work/go.sum"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$work/tools.go" || return 1
  (cd "$work" && go mod tidy) || return 1
  (cd "$work" && go build -ldflags "-s -w${commit:+ -X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:0:8}}" -o "$work/etcd" go.etcd.io/etcd/server/v3) || return 1
  "$work/etcd" --version >&2 || return 1
  mv -f "$work/etcd" "$bin/etcd" || return 1
  log "built etcd $version in $((SECONDS - t0)) s"
}

debian_etcd() {
  [ -x /usr/bin/etcd ] && return 0
  command -v apt-get >/dev/null 2>&1 || { log "no apt-get here"; return 1; }
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "not root and no sudo: cannot apt-get install etcd-server"; return 1; }
    sudo=(sudo -n)
  fi
  log "installing Debian's etcd-server (apt-get update; apt-get install etcd-server)"
  "${sudo[@]}" apt-get update -qq >&2 || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >&2 || return 1
  [ -x /usr/bin/etcd ]
}

provide_etcd() {
  local bin=$1
  [ -x "$bin/etcd" ] && return 0
  if [ "$ETCD_FROM" = debian ]; then
    if debian_etcd; then
      cp -f /usr/bin/etcd "$bin/.etcd.tmp" && mv -f "$bin/.etcd.tmp" "$bin/etcd" || return 1
      log "etcd: $("$bin/etcd" --version | head -n 1) (Debian etcd-server)"
      return 0
    fi
    log "Debian's etcd-server is not available; building etcd from source instead"
  fi
  need_go
  build_etcd "$bin"
}

install_helm() {
  local bin=$1 t0=$SECONDS commit gomod kminor ld
  [ -x "$bin/helm" ] && return 0
  need_go
  log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  module_info "helm.sh/helm/v3@$HELM_VERSION" || return 1
  gomod=$MOD_GOMOD commit=$MOD_HASH
  kminor=$(sed -n 's#^[[:space:]]*k8s\.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -n 1)
  # The ldflags helm's own Makefile sets, so `helm version` reports the release.
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  if [ -n "$commit" ]; then ld+=" -X helm.sh/helm/v3/internal/version.gitCommit=$commit"; fi
  if [ -n "$kminor" ]; then
    ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor"
    ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor"
  fi
  rm -rf "$bin/.helm.tmp"
  GOBIN="$bin/.helm.tmp" go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || return 1
  mv -f "$bin/.helm.tmp/helm" "$bin/helm" && rm -rf "$bin/.helm.tmp" || return 1
  log "helm: $("$bin/helm" version --short) in $((SECONDS - t0)) s"
}

START=$SECONDS
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  BIN=$ENVTEST_BIN
  mkdir -p "$BIN"
  for x in kube-apiserver etcd kubectl kube-controller-manager helm; do
    if [ -x "$ASSETS/$x" ]; then ln -sfn "$ASSETS/$x" "$BIN/$x"; fi
  done
  TAG=$("$ASSETS/kube-apiserver" --version | awk '{print $2}')
  [[ "$TAG" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || TAG=${K8S_TAGS%% *}
  NEED=()
  [ -x "$BIN/kube-controller-manager" ] || NEED+=(kube-controller-manager)
  for x in "${NODE_CMDS[@]}"; do [ -x "$BIN/$x" ] || NEED+=("$x"); done
  has_kubectl "$BIN" || NEED+=(kubectl)
  if [ ${#NEED[@]} -gt 0 ]; then
    log "KUBEBUILDER_ASSETS=$ASSETS lacks ${NEED[*]}: building it at $TAG"
    need_go
    mkdir -p "$CACHE/$TAG"
    build_k8s "$TAG" "$BIN" "${NEED[@]}" 2>&1 | tee "$CACHE/$TAG/build.log" >&2 ||
      die "building ${NEED[*]} at $TAG failed (log: $CACHE/$TAG/build.log)"
  fi
else
  TAG=
  for tag in $K8S_TAGS; do
    bin=$CACHE/$tag/bin
    mkdir -p "$bin"
    NEED=()
    for x in kube-apiserver kube-controller-manager "${NODE_CMDS[@]}"; do [ -x "$bin/$x" ] || NEED+=("$x"); done
    has_kubectl "$bin" || NEED+=(kubectl)
    if [ ${#NEED[@]} -gt 0 ]; then
      need_go
      if ! build_k8s "$tag" "$bin" "${NEED[@]}" 2>&1 | tee "$CACHE/$tag/build.log" >&2; then
        log "building ${NEED[*]} at $tag FAILED (log: $CACHE/$tag/build.log); trying the next tag"
        continue
      fi
    fi
    TAG=$tag
    break
  done
  [ -n "$TAG" ] || die "kube-apiserver/kube-controller-manager did not build at any of: $K8S_TAGS (logs: $CACHE/<tag>/build.log)"
  BIN=$CACHE/$TAG/bin
fi

provide_etcd "$BIN" || die "no etcd: neither Debian's etcd-server nor a source build worked (see above)"
install_helm "$BIN" || die "helm $HELM_VERSION did not build (see above)"
complete "$BIN" || die "incomplete control plane in $BIN"
log "ready in $((SECONDS - START)) s: $BIN ($(du -shL "$BIN" | cut -f1))"
finish "$BIN"
