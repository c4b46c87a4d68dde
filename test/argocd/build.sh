#!/usr/bin/env bash
# Provides a real Argo CD for test/argocd.test.ts, cached OUTSIDE the repository so that every run
# after the first one returns at once:
#   - argocd v3.6.2: one multi-call binary built from the Go module proxy (argocd-application-controller,
#     argocd-repo-server and argocd-server are symlinks to it: it dispatches on its own name);
#   - its CRDs (manifests/crds), its ConfigMaps/Secret (manifests/base/config) and
#     hack/git-verify-wrapper.sh (the repo-server runs it for every manifest generation);
#   - kustomize v5.8.2 (v5.8.3 needs a dependency the module proxy refuses);
#   - redis-server: Debian's, installed with apt-get when missing (the cache holds a symlink).
#
#   bash test/argocd/build.sh                  provide them (builds them the first time)
#   bash test/argocd/build.sh --print-dir      ... and print the cache directory (the only stdout line)
#
# Layout: ${HARMONY_CACHE:-$HOME/.cache/harmony}/argocd/<version>/{bin,crds,config,hack,src,build.log}.
# Settings: HARMONY_CACHE, HARMONY_ARGOCD_VERSION (v3.6.2), HARMONY_KUSTOMIZE_VERSION (v5.8.2),
# HARMONY_ARGOCD_GOTOOLCHAIN (go1.27.4: Argo CD 3.6 needs Go >= 1.27, fetched through the module proxy).
# Helm comes from test/controlplane/build.sh. A failed build exits non-zero with the reason.
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
PRINT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --print-dir) PRINT=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'build.sh: unknown argument %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

VERSION=${HARMONY_ARGOCD_VERSION:-v3.6.2}
KUSTOMIZE_VERSION=${HARMONY_KUSTOMIZE_VERSION:-v5.8.2}
TOOLCHAIN=${HARMONY_ARGOCD_GOTOOLCHAIN:-go1.27.4}
ROOT=${HARMONY_CACHE:-$HOME/.cache/harmony}/argocd
DIR=$ROOT/$VERSION
BIN=$DIR/bin
NAMES="argocd argocd-application-controller argocd-repo-server argocd-server"

log() { printf '[argocd %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[argocd] ERROR: %s\n' "$*" >&2; exit 1; }
finish() {
  if [ "$PRINT" = 1 ]; then printf '%s\n' "$DIR"; fi
  exit 0
}
complete() {
  local x
  for x in $NAMES kustomize redis-server; do [ -x "$BIN/$x" ] || return 1; done
  [ -f "$DIR/crds/application-crd.yaml" ] && [ -f "$DIR/config/argocd-cm.yaml" ] &&
    [ -x "$DIR/hack/git-verify-wrapper.sh" ] && command -v git >/dev/null 2>&1
}

# ---- fast path ---------------------------------------------------------------------------------
if complete; then finish; fi

# ---- slow path: one build at a time per cache ------------------------------------------------
mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  log "another build.sh is building into $ROOT; waiting for it"
  flock 9
fi
if complete; then finish; fi

START=$SECONDS
mkdir -p "$BIN"

apt_install() {
  command -v apt-get >/dev/null 2>&1 || { log "no apt-get here"; return 1; }
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "not root and no sudo: cannot apt-get install $*"; return 1; }
    sudo=(sudo -n)
  fi
  log "apt-get install $*"
  "${sudo[@]}" apt-get update -qq >&2 || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# redis-server: Debian's (apt does not start it here; the test runs its own on a loopback port).
if ! [ -x "$BIN/redis-server" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then apt_install redis-server || die "apt-get install redis-server failed"; fi
  ln -sfn "$(command -v redis-server)" "$BIN/redis-server"
fi
command -v git >/dev/null 2>&1 || apt_install git || die "no git and apt-get install git failed"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH (nor /usr/local/go/bin/go): it is needed to build Argo CD and kustomize"
# Any local go fetches the toolchain Argo CD needs through the module proxy.
export GOTOOLCHAIN=$TOOLCHAIN CGO_ENABLED=0 GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"

json_field() { sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",\{0,1\}[[:space:]]*$/\1/p' | head -n 1; }

build_argocd() {
  local t0=$SECONDS json gomod moddir commit gover work=$DIR/src ld date
  log "github.com/argoproj/argo-cd/v3@$VERSION: downloading the module"
  json=$(go mod download -json "github.com/argoproj/argo-cd/v3@$VERSION") || return 1
  gomod=$(json_field GoMod <<<"$json")
  moddir=$(json_field Dir <<<"$json")
  commit=$(json_field Hash <<<"$json")
  [ -f "$gomod" ] && [ -d "$moddir" ] || { log "no go.mod/dir for argo-cd $VERSION"; return 1; }
  gover=$(sed -n 's/^go \([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$gomod")
  mkdir -p "$work" || return 1
  # Argo CD's go.mod replaces gitops-engine with a local directory (ignored outside it, and `go
  # install` refuses replaces): a throwaway module requires argo-cd, copies every other replace line
  # and takes gitops-engine at the same version from the proxy.
  {
    echo "// Throwaway module (test/argocd/build.sh): builds Argo CD $VERSION's multi-call binary."
    echo "module harmony.local/argocd"
    echo
    echo "go ${gover:-1.27.0}"
    echo
    echo "require github.com/argoproj/argo-cd/v3 $VERSION"
    echo "require github.com/argoproj/argo-cd/gitops-engine/v3 $VERSION"
    echo
    awk '/^replace \(/{b=1; print; next} b{if ($0 ~ /=> \.\//) next; print; if ($0 ~ /^\)/) b=0; next}
         /^replace / && $0 !~ /=> \.\//{print}' "$gomod"
  } >"$work/go.mod" || return 1
  rm -f "$work/go.sum"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/argoproj/argo-cd/v3/cmd"\n' >"$work/tools.go" || return 1
  log "go mod tidy (downloads the dependencies)"
  (cd "$work" && go mod tidy) || return 1
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local pkg=github.com/argoproj/argo-cd/v3/common
  ld="-s -w -X $pkg.version=${VERSION#v} -X $pkg.buildDate=$date -X $pkg.gitTag=$VERSION -X $pkg.gitTreeState=clean"
  if [ -n "$commit" ]; then ld+=" -X $pkg.gitCommit=$commit"; fi
  log "go build github.com/argoproj/argo-cd/v3/cmd (the slow part: ~4 min on 2 idle cores)"
  (cd "$work" && go build -ldflags "$ld" -o "$work/argocd" github.com/argoproj/argo-cd/v3/cmd) || return 1
  "$work/argocd" version --client --short >&2 || { log "argocd does not run"; return 1; }
  rm -rf "$DIR/crds" "$DIR/config" "$DIR/hack"
  mkdir -p "$DIR/crds" "$DIR/config" "$DIR/hack" || return 1
  cp "$moddir"/manifests/crds/*-crd.yaml "$DIR/crds/" || return 1
  cp "$moddir"/manifests/base/config/argocd-*.yaml "$DIR/config/" || return 1
  cp "$moddir/hack/git-verify-wrapper.sh" "$DIR/hack/" && chmod 0755 "$DIR/hack/git-verify-wrapper.sh" || return 1
  chmod -R u+w "$DIR/crds" "$DIR/config" "$DIR/hack" || return 1
  mv -f "$work/argocd" "$BIN/argocd" || return 1
  log "built argocd $VERSION in $((SECONDS - t0)) s"
}

build_kustomize() {
  local t0=$SECONDS
  log "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  rm -rf "$BIN/.kustomize.tmp"
  GOBIN="$BIN/.kustomize.tmp" go install -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION" \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" || return 1
  mv -f "$BIN/.kustomize.tmp/kustomize" "$BIN/kustomize" && rm -rf "$BIN/.kustomize.tmp" || return 1
  log "kustomize $KUSTOMIZE_VERSION in $((SECONDS - t0)) s"
}

if ! [ -x "$BIN/kustomize" ]; then
  build_kustomize 2>&1 | tee "$DIR/kustomize-build.log" >&2 || die "kustomize $KUSTOMIZE_VERSION did not build (log: $DIR/kustomize-build.log)"
fi
if ! [ -x "$BIN/argocd" ] || ! [ -x "$DIR/hack/git-verify-wrapper.sh" ]; then
  build_argocd 2>&1 | tee "$DIR/build.log" >&2 || die "Argo CD $VERSION did not build (log: $DIR/build.log)"
fi
for n in $NAMES; do [ "$n" = argocd ] || ln -sfn argocd "$BIN/$n"; done
complete || die "incomplete Argo CD in $DIR"
log "ready in $((SECONDS - START)) s: $DIR ($(du -shL "$BIN" | cut -f1))"
finish
