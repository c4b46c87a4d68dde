#!/usr/bin/env bash
# Provides everything the real-node suite (test/cluster/) runs, cached OUTSIDE the repository so that a
# warm call returns at once:
#   - kube-apiserver, kube-controller-manager, etcd, helm, kubelet, kube-scheduler, kube-proxy:
#     test/controlplane/build.sh --node (same throwaway module, pins and version ldflags);
#   - CoreDNS (cluster DNS, run as a host process on the bridge): `go install` of a pinned release;
#   - the pause image's binary: a static C program that sleeps until SIGTERM/SIGINT (no registry here);
#   - Debian packages containerd, runc, containernetworking-plugins, iptables, conntrack, nftables (apt-get, when
#     missing: CI starts from a clean machine). Installing them starts no daemon.
#
#   bash test/cluster/build.sh                 provide them (builds the first time)
#   bash test/cluster/build.sh --print-dir     ... and print the cache dir (the only stdout line); its
#                                              bin/ holds (links to) every binary above, pause/ the pause binary
#
# Layout: ${HARMONY_CACHE:-$HOME/.cache/harmony}/cluster/{bin,pause}. Settings: HARMONY_CACHE,
# HARMONY_COREDNS_VERSION (v1.15.0). Cold: ~8 min (Kubernetes) + ~2 min (CoreDNS); warm: < 1 s.
set -euo pipefail

PRINT=0
case "${1:-}" in
  --print-dir) PRINT=1 ;;
  "") ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COREDNS_VERSION=${HARMONY_COREDNS_VERSION:-v1.15.0}
CACHE=${HARMONY_CACHE:-$HOME/.cache/harmony}/cluster
DEBS=(containerd runc containernetworking-plugins iptables conntrack nftables)
log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

have_debs() { [ -x /usr/bin/containerd ] && [ -x /usr/sbin/runc ] && [ -x /usr/lib/cni/bridge ] && command -v iptables-save >/dev/null && command -v conntrack >/dev/null && command -v nft >/dev/null; }
ready() {
  have_debs || return 1
  local x
  for x in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd helm kubectl coredns; do
    [ -x "$CACHE/bin/$x" ] || return 1
  done
  [ -x "$CACHE/pause/pause" ]
}
finish() {
  if [ "$PRINT" = 1 ]; then printf '%s\n' "$CACHE"; fi
  exit 0
}

if ready; then finish; fi
mkdir -p "$CACHE/bin" "$CACHE/pause"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  log "another build.sh is building into $CACHE; waiting for it"
  flock 9
fi
if ready; then finish; fi
START=$SECONDS

if ! have_debs; then
  if [ "$(id -u)" != 0 ]; then
    # the suite skips itself without root; `make test` goes on
    log "not root: the real-node suite (it needs root) will skip; nothing installed"
    exit 0
  fi
  log "apt-get install ${DEBS[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${DEBS[@]}" >&2
  have_debs || die "apt-get did not provide ${DEBS[*]}"
fi

KBIN=$(bash "$ROOT/test/controlplane/build.sh" --node --print-bin-dir) || die "test/controlplane/build.sh --node failed"
for x in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd helm; do
  ln -sfn "$KBIN/$x" "$CACHE/bin/$x"
done
# kubectl: built beside them when the machine had none, else the machine's
if [ -x "$KBIN/kubectl" ]; then ln -sfn "$KBIN/kubectl" "$CACHE/bin/kubectl"; else ln -sfn "$(command -v kubectl)" "$CACHE/bin/kubectl"; fi

if [ ! -x "$CACHE/bin/coredns" ]; then
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null || die "no Go toolchain: needed for CoreDNS $COREDNS_VERSION"
  log "go install github.com/coredns/coredns@$COREDNS_VERSION"
  rm -rf "$CACHE/.coredns.tmp"
  CGO_ENABLED=0 GOFLAGS=-trimpath GOBIN="$CACHE/.coredns.tmp" go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2
  mv -f "$CACHE/.coredns.tmp/coredns" "$CACHE/bin/coredns" && rm -rf "$CACHE/.coredns.tmp"
fi

if [ ! -x "$CACHE/pause/pause" ]; then
  command -v gcc >/dev/null || die "no gcc: needed for the pause binary (apt-get install gcc libc6-dev)"
  # The pod sandbox's process: holds the namespaces, reaps nothing, exits on SIGTERM/SIGINT.
  cat >"$CACHE/pause/pause.c" <<'EOF'
#include <signal.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
int main(void) {
  signal(SIGTERM, bye);
  signal(SIGINT, bye);
  for (;;) pause();
}
EOF
  gcc -static -O2 -s -o "$CACHE/pause/pause.tmp" "$CACHE/pause/pause.c" && mv -f "$CACHE/pause/pause.tmp" "$CACHE/pause/pause"
fi

ready || die "incomplete: $CACHE"
log "ready in $((SECONDS - START)) s: $CACHE"
finish
