#!/usr/bin/env bash
# The interpreters the chart tests run besides the control plane: Lua for the Argo CD health check
# (test/argocd-health.test.ts) and Prometheus's promtool for the alert rules
# (test/observability.test.ts). Idempotent: once they are there it only says where they are.
#
#   bash test/controlplane/lua.sh                  install what is missing
#   bash test/controlplane/lua.sh --print lua      ... and print the path of a current Lua (5.4/5.3)
#   bash test/controlplane/lua.sh --print lua5.1   ... of Lua 5.1, the dialect of Argo CD's gopher-lua
#   bash test/controlplane/lua.sh --print promtool
#
# Lua is Debian's lua5.4 and lua5.1 (a lua5.3 already on PATH stands in for 5.4). promtool is
# taken from PATH, or else copied out of Debian's prometheus package (apt-get download, dpkg-deb -x)
# into ${HARMONY_CACHE:-$HOME/.cache/harmony}/tools/bin: installing the package would also install and
# start a Prometheus server, which nothing here wants.
set -euo pipefail

PRINT=
case "${1:-}" in
  "") ;;
  --print)
    PRINT=${2:-}
    case "$PRINT" in lua | lua5.1 | promtool) ;; *) printf 'lua.sh: --print lua|lua5.1|promtool\n' >&2; exit 2 ;; esac
    ;;
  -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) printf 'lua.sh: unknown argument %s\n' "$1" >&2; exit 2 ;;
esac

TOOLS=${HARMONY_CACHE:-$HOME/.cache/harmony}/tools/bin
say() { printf '[lua.sh] %s\n' "$*" >&2; }
die() { printf '[lua.sh] ERROR: %s\n' "$*" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root to run: $*"; fi
}
APT_UPDATED=0
apt_update() {
  [ "$APT_UPDATED" = 1 ] && return 0
  as_root apt-get update -qq >&2
  APT_UPDATED=1
}

find_lua() {
  local x
  for x in lua5.4 lua5.3; do
    if command -v "$x" >/dev/null 2>&1; then command -v "$x"; return 0; fi
  done
  return 1
}

find_promtool() {
  if command -v promtool >/dev/null 2>&1; then command -v promtool; return 0; fi
  if [ -x "$TOOLS/promtool" ]; then printf '%s\n' "$TOOLS/promtool"; return 0; fi
  return 1
}

MISSING=()
find_lua >/dev/null || MISSING+=(lua5.4)
command -v lua5.1 >/dev/null 2>&1 || MISSING+=(lua5.1)
if [ ${#MISSING[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "no apt-get to install ${MISSING[*]}"
  say "installing ${MISSING[*]}"
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >&2
  find_lua >/dev/null || die "no Lua 5.4 after apt-get install"
  command -v lua5.1 >/dev/null 2>&1 || die "no lua5.1 after apt-get install"
fi

if ! find_promtool >/dev/null; then
  command -v apt-get >/dev/null 2>&1 || die "no promtool and no apt-get to fetch Debian's prometheus package"
  say "fetching promtool from Debian's prometheus package"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download needs no root, but does need package lists: update once if it finds nothing.
  (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || { apt_update && (cd "$tmp" && apt-get download prometheus >&2); }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  [ -x "$tmp/x/usr/bin/promtool" ] || die "Debian's prometheus package has no usr/bin/promtool"
  mkdir -p "$TOOLS"
  cp -f "$tmp/x/usr/bin/promtool" "$TOOLS/.promtool.tmp" && mv -f "$TOOLS/.promtool.tmp" "$TOOLS/promtool"
  "$TOOLS/promtool" --version >&2 || die "promtool does not run"
fi

case "$PRINT" in
  lua) find_lua ;;
  lua5.1) command -v lua5.1 ;;
  promtool) find_promtool ;;
  *) say "ready: $(find_lua), $(command -v lua5.1), $(find_promtool)" ;;
esac
