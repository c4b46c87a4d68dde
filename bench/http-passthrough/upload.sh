#!/usr/bin/env bash
# bench/http-passthrough/upload.sh: what a 1 MiB request body (a STOW-RS-sized upload) costs the
# data plane, per engine, paired (issue 18). wrk POSTs 1 MiB bodies (upload.lua) through each
# target to upstream.mjs's /sink, which reads them to the end and answers with the length.
#
#   ROUNDS=5 DURATION=5 CONNS=16 bash bench/http-passthrough/upload.sh
#
# Targets: harmony (client = "undici"), harmony-llhttp (client = "llhttp"), and with
# HARMONY_BASE_CLI=<dist/cli.js> also base and base-llhttp (another build, e.g. build-base.sh's).
# Each runs pinned to PROXY_CPU (1), wrk and the upstream to LOAD_CPU (0), node flags as run.sh.
# Per turn: proxy CPU (utime + stime of /proc/<pid>/stat) ÷ MiB uploaded, and MB/s uploaded; the
# summary is the median over rounds, and each target's CPU ÷ harmony-llhttp's in the same round.
# Ports are dynamic. A benchmark, not a test: the exit code says only whether it could run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5} CONNS=${CONNS:-16}
PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
HARMONY_CLI=${HARMONY_CLI:-$ROOT/dataplane/dist/cli.js}
HARMONY_BASE_CLI=${HARMONY_BASE_CLI:-}
HARMONY_NODE_FLAGS=${HARMONY_NODE_FLAGS-"--max-semi-space-size=2"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/harmony-upload.XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 600); do curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

UP=$(free_port)
PORT=$UP taskset -c "$LOAD_CPU" node "$HERE/upstream.mjs" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP/1k"

NAMES=() URLS=() TPIDS=()
start() { # NAME CLI OPTION_LINE
  local port mport dir=$WORK/$1
  port=$(free_port) mport=$(free_port)
  mkdir -p "$dir"
  sed -e "s|@UPSTREAM_PORT@|$UP|g" -e "s|@HARMONY_PORT@|$port|g" -e "s|@HARMONY_MGMT_PORT@|$mport|g" \
    -e "s|@ACCESS_LOG@|true|g" -e '/^workers = /d' "$HERE/harmony.toml.tmpl" >"$dir/harmony.toml"
  [[ -z $3 ]] || echo "$3" >>"$dir/harmony.toml"
  NODE_ENV=production taskset -c "$PROXY_CPU" node $HARMONY_NODE_FLAGS "$2" --config "$dir/harmony.toml" \
    >"$dir/access.log" 2>"$dir/stderr.log" &
  PIDS+=($!) TPIDS+=($!) NAMES+=("$1") URLS+=("http://127.0.0.1:$port")
  wait_http "http://127.0.0.1:$mport/readyz"
}
start harmony "$HARMONY_CLI" ""
start harmony-llhttp "$HARMONY_CLI" 'client = "llhttp"'
if [[ -n $HARMONY_BASE_CLI ]]; then
  start base "$HARMONY_BASE_CLI" ""
  start base-llhttp "$HARMONY_BASE_CLI" 'client = "llhttp"'
fi
for u in "${URLS[@]}"; do
  [[ $(curl -fsS --data-binary @<(head -c 1048576 /dev/zero) "$u/sink") == 1048576 ]] || { echo "preflight failed: $u" >&2; exit 1; }
done

HZ=$(getconf CLK_TCK)
: >"$WORK/turns.tsv"
n=${#NAMES[@]}
for ((r = 0; r < ROUNDS; r++)); do
  for ((k = 0; k < n; k++)); do
    i=$(((k + r) % n))
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -s "$HERE/upload.lua" "${URLS[i]}/sink" >/dev/null
    c0=$(cpu_ticks "${TPIDS[i]}")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$HERE/upload.lua" "${URLS[i]}/sink")
    c1=$(cpu_ticks "${TPIDS[i]}")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%d\t%s\t%s\t%s\t%s\n' "$r" "${NAMES[i]}" "$reqs" "$(((c1 - c0)))" "$p99" >>"$WORK/turns.tsv"
    echo "round $((r + 1)) ${NAMES[i]}: $reqs uploads, $(((c1 - c0) * 1000 / HZ)) ms CPU, p99 $p99" >&2
  done
done
python3 - "$WORK/turns.tsv" "$HZ" "$DURATION" <<'EOF'
import statistics as st, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
hz, dur = int(sys.argv[2]), float(sys.argv[3])
by = {}
for r, name, reqs, ticks, p99 in rows:
    by.setdefault(name, {})[int(r)] = (int(reqs), int(ticks) * 1000 / hz / max(int(reqs), 1), p99)
print("| target | uploads/s | MB/s up | proxy CPU ms/MiB | CPU ÷ harmony-llhttp | p99 per round |")
print("|---|---|---|---|---|---|")
ref = by.get("harmony-llhttp", {})
for name, rounds in by.items():
    ratios = [v[1] / ref[r][1] for r, v in rounds.items() if r in ref and ref[r][1]]
    rps = st.median(v[0] / dur for v in rounds.values())
    print(f"| {name} | {rps:,.0f} | {rps * 1.048576:,.0f} | {st.median(v[1] for v in rounds.values()):.2f} "
          f"| {st.median(ratios):.2f} | {' / '.join(v[2] for _, v in sorted(rounds.items()))} |")
EOF
echo "work dir: $WORK" >&2
